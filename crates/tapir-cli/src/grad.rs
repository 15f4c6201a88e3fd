//! `tapir grad`: forward and backward on given data, everything written to a safetensors
//! file: the loss, the outputs, and the gradient of every parameter and input.

use std::path::PathBuf;
use std::sync::Arc;

use clap::Args;
use tapir_core::Float;
use tapir_core::ndarray::{ArrayD, IxDyn};
use tapir_graph::{Dtype, Graph, InputKind, Network, TensorFile, save_tensors};

use crate::output::{Failure, Out, count, load_graph, note, require_loss};

/// Compute the loss, the outputs and every gradient on given data
///
/// Writes to the --out file: `loss` (a scalar), every output under its node's name, every
/// parameter's gradient as `grad.<parameter>` (`grad.conv.weight`) and every input's as
/// `grad.<input>` (`grad.image`). Names and layouts are PyTorch's.
#[derive(Debug, Args)]
#[command(after_help = "Examples:
  tapir grad graphs/cnn-1.ron --params cnn-1.safetensors --inputs batch.safetensors --out grads.safetensors
  tapir grad graphs/cnn-1.ron --seed 7 --inputs batch.safetensors --out grads.safetensors --f64

The inputs file holds one tensor per network input, named like it, batch axis first
(`image` [N, 1, 56, 56]), and the class labels as `labels` [N], integers or floats.")]
pub struct GradArgs {
    /// The network file (RON)
    graph: PathBuf,
    /// The parameters (safetensors, PyTorch's names and layouts) [default: drawn from --seed]
    #[arg(long, value_name = "P.safetensors")]
    params: Option<PathBuf>,
    /// The inputs (safetensors): one tensor per network input, and `labels`
    #[arg(long, value_name = "I.safetensors")]
    inputs: PathBuf,
    /// Where to write the loss, the outputs and the gradients (safetensors)
    #[arg(long, value_name = "G.safetensors")]
    out: PathBuf,
    /// Compute and write in f64 instead of f32
    #[arg(long)]
    f64: bool,
    /// Seed of the parameters when --params is not given, drawn as the network's `init` says
    #[arg(long, default_value_t = 0, conflicts_with = "params")]
    seed: u64,
}

/// Runs forward and backward in the precision asked for and writes the results.
pub fn run(args: &GradArgs, out: &mut Out) -> Result<(), Failure> {
    let graph = load_graph(&args.graph)?;
    require_loss(&graph)?;
    if args.f64 {
        run_in::<f64>(args, graph, out)
    } else {
        run_in::<f32>(args, graph, out)
    }
}

fn run_in<F: Float>(args: &GradArgs, graph: Arc<Graph>, out: &mut Out) -> Result<(), Failure> {
    let at_graph = |e: tapir_core::Error| Failure::new(format_args!("{}: {e}", graph.name));
    let network = Network::<F>::new(Arc::clone(&graph)).map_err(at_graph)?;
    let params = match &args.params {
        Some(path) => TensorFile::open(path)?.params::<F>(&graph)?,
        None => {
            note(format_args!(
                "no --params given: parameters drawn from seed {} (weights {:?}, biases {:?}, \
                 as {} says)",
                args.seed, graph.init.weights, graph.init.biases, graph.name
            ));
            network.init_params(args.seed)
        }
    };
    let inputs = TensorFile::open(&args.inputs)?.inputs::<F>(&graph)?;
    let batch = inputs.first().and_then(|i| i.shape().first().copied());
    let result = network.loss_and_grads(&params, inputs, true).map_err(|e| {
        Failure::new(format_args!(
            "{} on {}: {e}",
            graph.name,
            args.inputs.display()
        ))
    })?;

    let mut tensors: Vec<(String, ArrayD<F>)> = vec![(
        "loss".to_string(),
        ArrayD::from_elem(IxDyn(&[]), result.loss),
    )];
    for &output in &graph.outputs {
        let name = graph.value_name(output);
        let value = result
            .forward
            .value(output)
            .ok_or_else(|| Failure::new(format_args!("BUG: output \"{name}\" was not computed")))?;
        tensors.push((name.to_string(), value.value().clone()));
    }
    for (name, grad) in result.params.tensors {
        tensors.push((format!("grad.{name}"), grad));
    }
    for ((input, grad), value) in graph
        .inputs
        .iter()
        .zip(result.inputs)
        .zip(&result.forward.inputs)
    {
        if input.kind == InputKind::Labels {
            continue; // class indices have no gradient
        }
        // An input the loss does not reach has a zero gradient, written like any other.
        let grad = grad.unwrap_or_else(|| ArrayD::zeros(value.shape()));
        tensors.push((format!("grad.{}", input.name), grad));
    }
    let dtype = Dtype::of::<F>();
    save_tensors(
        &args.out,
        tensors.iter().map(|(name, value)| (name.as_str(), value)),
        dtype,
    )?;

    out.line(format_args!(
        "{} on {} ({} samples), in {}: loss {}",
        graph.name,
        args.inputs.display(),
        batch.unwrap_or(0),
        F::NAME,
        result.loss
    ))?;
    out.line(format_args!(
        "wrote {} ({}, {dtype}):",
        args.out.display(),
        count(tensors.len(), "tensor")
    ))?;
    let width = tensors.iter().map(|(n, _)| n.len()).max().unwrap_or(0);
    for (name, value) in &tensors {
        out.line(format_args!("  {name:<width$}  {:?}", value.shape()))?;
    }
    Ok(())
}
