//! Adding an op to tapir, end to end: define it, register it next to the built-ins, prove its
//! gradient, then use it in a network file like any built-in op.
//!
//! Run it with `cargo run --release --example custom_op`; `cargo test --workspace` runs the
//! tests at the bottom, which call the same functions as `main`.
//!
//! The op is Swish, `y = x sigmoid(beta x)` (Ramachandran, Zoph and Le 2017; SiLU when
//! `beta = 1`). Everything an op needs lives in one place, in this order: the math, the
//! hyperparameters, the shape rule, forward, backward, and the gradient-check cases. A
//! built-in op in `crates/tapir-ops/src/` looks the same; `graphs/README.md` documents the
//! network format this example writes.

use std::error::Error as StdError;
use std::sync::Arc;

use ndarray::{ArrayD, ArrayViewD, Zip};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::Deserialize;
use tapir_core::gradcheck::{Config, Report};
use tapir_core::{
    Arity, BackwardCx, CaseInput, Error, Float, Gen, GradcheckCase, Op, OpType, Registry, Result,
};
use tapir_graph::{Graph, LossGrads, Network, Params};

// Step 1: the op.

/// `swish`: `x sigmoid(beta x)`, elementwise.
///
/// With `s = sigmoid(beta x) = 1 / (1 + exp(-beta x))`:
///
/// - Output: `y = x s`.
/// - Gradient: `ds/dx = beta s (1 - s)`, so `dy/dx = s + beta x s (1 - s) = s + beta y (1 - s)`
///   and `dL/dx = (s + beta y (1 - s)) dL/dy`.
/// - Shape: `y` has the shape of `x`.
///
/// `beta` is a hyperparameter, fixed by the network file. (A learnable `beta` would be a
/// parameter instead: declared by `Op::params`, it follows the data inputs in every call and
/// gets its own gradient, as `dense.rs` does with its weight.)
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
struct Swish {
    /// The gate's slope: any finite number; 1 by default (SiLU).
    #[serde(default = "one")]
    beta: f64,
}

fn one() -> f64 {
    1.0
}

/// The name the registry knows the op by; network files write it `Swish`.
const NAME: &str = "swish";

/// `sigmoid(z)`, with `exp` of a non-positive argument only: no overflow for large `|z|`.
fn sigmoid<F: Float>(z: F) -> F {
    if z >= F::zero() {
        F::one() / (F::one() + (-z).exp())
    } else {
        let e = z.exp();
        e / (F::one() + e)
    }
}

// The op is written once, generic over the element type: the registry builds it in `f32` for
// training and in `f64` for gradient checks.
impl<F: Float> Op<F> for Swish {
    fn name(&self) -> &'static str {
        NAME
    }

    fn arity(&self) -> Arity {
        Arity::Exactly(1)
    }

    // The shape rule runs when a network is loaded, before any data exists: hyperparameter
    // errors found here are reported at the node, with the file's line and column.
    fn output_shape(&self, inputs: &[&[usize]]) -> Result<Vec<usize>> {
        if !self.beta.is_finite() {
            return Err(Error::hyperparameter(
                NAME,
                format!("beta must be a finite number, got {}", self.beta),
            ));
        }
        // The built-ins' helper for elementwise ops: one input, same shape out.
        tapir_ops::shape::unary(NAME, inputs)
    }

    fn forward(&self, inputs: &[ArrayViewD<F>]) -> Result<ArrayD<F>> {
        let beta = F::from_f64(self.beta);
        // y = x s
        Ok(inputs[0].mapv(|x| x * sigmoid(beta * x)))
    }

    fn backward(&self, cx: &BackwardCx<F>) -> Result<Vec<Option<ArrayD<F>>>> {
        if !cx.needs_grad(0) {
            return Ok(vec![None]);
        }
        let beta = F::from_f64(self.beta);
        // dL/dx = (s + beta y (1 - s)) dL/dy, with s recomputed from x and y taken from the
        // forward output the tape kept.
        let dx = Zip::from(&cx.inputs[0])
            .and(&cx.output)
            .and(&cx.output_grad)
            .map_collect(|&x, &y, &dy| {
                let s = sigmoid(beta * x);
                (s + beta * y * (F::one() - s)) * dy
            });
        Ok(vec![Some(dx)])
    }

    fn flops(&self, inputs: &[&[usize]]) -> u64 {
        // Per element: beta x, exp, add, divide, multiply (exp counted as one).
        inputs
            .first()
            .map_or(0, |s| 5 * s.iter().product::<usize>() as u64)
    }
}

impl OpType for Swish {
    const NAME: &'static str = NAME;

    // Configurations whose gradients are proved against finite differences. Swish is smooth
    // everywhere, so uniform inputs need no care about kinks or ties.
    fn gradcheck_cases() -> Vec<GradcheckCase> {
        let wide = Gen::Uniform {
            low: -3.0,
            high: 3.0,
        };
        // Far out, the gate saturates (s near 0 or 1): the tails must get their small
        // gradients, not NaN.
        let saturated = Gen::Uniform {
            low: -8.0,
            high: 8.0,
        };
        vec![
            GradcheckCase::new(
                "beta 1 (SiLU)",
                Swish { beta: 1.0 },
                vec![CaseInput::new("x", &[2, 3, 4], wide)],
            ),
            GradcheckCase::new(
                "beta 2.5 NCHW",
                Swish { beta: 2.5 },
                vec![CaseInput::new("x", &[2, 2, 3, 3], wide)],
            ),
            GradcheckCase::new(
                "negative beta",
                Swish { beta: -0.5 },
                vec![CaseInput::new("x", &[6], wide)],
            ),
            GradcheckCase::new(
                "saturated",
                Swish { beta: 1.0 },
                vec![CaseInput::new("x", &[8], saturated)],
            ),
        ]
    }
}

// Step 2: the registry.

/// Every built-in op, and Swish: one line makes a user's op as first-class as a built-in.
fn registry() -> Result<Registry> {
    let mut registry = Registry::new();
    tapir_ops::register_builtins(&mut registry)?;
    registry.register::<Swish>()?;
    Ok(registry)
}

// Step 3: the gradient check.

/// Runs every gradient-check case the registry holds for Swish, with the same checker and
/// tolerance as the built-in ops' test suite; returns each case's label and report.
fn gradcheck_swish(registry: &Registry) -> Result<Vec<(String, Report)>> {
    let entry = registry
        .get(NAME)
        .ok_or_else(|| Error::Registry(format!("\"{NAME}\" is not registered")))?;
    (entry.gradcheck_cases)()
        .into_iter()
        .map(|case| Ok((case.label.clone(), case.run(&Config::default())?)))
        .collect()
}

// Step 4: a network that uses the op.

/// A small CNN in the network format of `graphs/`, with Swish as its activation. The file
/// names the op `Swish`, as `MaxPool2d` names the built-in `max_pool2d`.
const NETWORK: &str = r#"
Network(
    inputs: { "image": [1, 12, 12] },
    nodes: {
        "conv":   (op: Conv2d(filters: 4, kernel: 3, padding: Same), input: "image"), // [4, 12, 12]
        "swish":  (op: Swish(beta: 1.5), input: "conv"),
        "pool":   (op: GlobalMaxPool, input: "swish"),                              // [4]
        "logits": (op: Dense(units: 3), input: "pool"),                             // 3 classes
    },
    outputs: ["logits"],
    loss: SoftmaxCrossEntropy(logits: "logits"),
)
"#;

/// Loads and checks [`NETWORK`]: names, ops, hyperparameters, cycles and every shape.
fn load_network(registry: &Registry) -> std::result::Result<Graph, tapir_graph::GraphError> {
    Graph::parse("custom_op.ron", NETWORK, registry)
}

// Step 5: forward and backward.

/// A batch of `batch` random images (pixels in [0, 1)) and class labels (in 0..3), drawn from
/// `seed`, in the order of the graph's inputs: `image`, then the loss's `labels`.
fn random_batch(batch: usize, seed: u64) -> Vec<ArrayD<f32>> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let image = ArrayD::from_shape_simple_fn(vec![batch, 1, 12, 12], || rng.random::<f32>());
    // Labels are class indices stored as floats: every tapir tensor is float.
    let labels = ArrayD::from_shape_simple_fn(vec![batch], || rng.random_range(0..3) as f32);
    vec![image, labels]
}

/// The loss and every parameter's gradient on `inputs`.
fn loss_and_grads(
    network: &Network<f32>,
    params: &Params<f32>,
    inputs: Vec<ArrayD<f32>>,
) -> Result<LossGrads<f32>> {
    // `false`: no gradients for the inputs themselves, only for the parameters.
    network.loss_and_grads(params, inputs, false)
}

/// One step of plain gradient descent: `p -= rate dL/dp` for every parameter.
fn descend(params: &Params<f32>, grads: &Params<f32>, rate: f32) -> Params<f32> {
    let mut next = params.clone();
    for (name, value) in &mut next.tensors {
        if let Some(grad) = grads.get(name) {
            value.zip_mut_with(grad, |p, &g| *p -= rate * g);
        }
    }
    next
}

/// The L2 norm of a tensor, for printing gradients at a glance.
fn norm(tensor: &ArrayD<f32>) -> f32 {
    tensor.iter().map(|x| x * x).sum::<f32>().sqrt()
}

fn main() -> std::result::Result<(), Box<dyn StdError>> {
    println!("1. The op: Swish, y = x sigmoid(beta x)\n");

    println!("2. Registered next to the built-ins:");
    let registry = registry()?;
    let names: Vec<&str> = registry.names().collect();
    println!("   {} ops: {}\n", names.len(), names.join(", "));

    println!("3. Gradient check against central finite differences (f64):");
    let mut failed = Vec::new();
    for (label, report) in gradcheck_swish(&registry)? {
        for tensor in &report.tensors {
            let verdict = if tensor.passed { "passed" } else { "FAILED" };
            println!(
                "   {label:<14} {:<2} max relative error {:.2e}  {verdict}",
                tensor.name, tensor.max_rel_error
            );
            if !tensor.passed {
                failed.push(format!("{label}: {}", tensor.name));
            }
        }
    }
    if !failed.is_empty() {
        return Err(format!("gradient check failed: {}", failed.join(", ")).into());
    }
    println!();

    println!("4. A network that uses it, loaded and checked:");
    // A load error is rendered with the file's line, a caret under the problem and a hint.
    let graph = Arc::new(load_network(&registry).map_err(|e| e.render())?);
    println!("{}", graph.summary());

    println!("5. Forward and backward in f32 on a random batch of 8:");
    let network = Network::<f32>::new(Arc::clone(&graph))?;
    // The file's `init` rule (He weights, zero biases by default), drawn from this seed.
    let params = network.init_params(7);
    let before = loss_and_grads(&network, &params, random_batch(8, 1))?;
    println!("   loss {:.6}", before.loss);
    for (name, grad) in &before.params.tensors {
        println!(
            "   dL/d{name:<14} shape {:?}, norm {:.6}",
            grad.shape(),
            norm(grad)
        );
    }
    // The gradient points uphill: a small step against it lowers the loss.
    let stepped = descend(&params, &before.params, 0.1);
    let after = loss_and_grads(&network, &stepped, random_batch(8, 1))?;
    println!(
        "   after one gradient-descent step (rate 0.1): loss {:.6}\n",
        after.loss
    );

    println!("6. The whole network's gradient, Swish included, against finite differences:");
    let check = graph.gradcheck(2, &network_check_config())?;
    for tensor in &check.report.tensors {
        let verdict = if tensor.passed { "passed" } else { "FAILED" };
        println!(
            "   {:<14} max relative error {:.2e}  {verdict}",
            tensor.name, tensor.max_rel_error
        );
    }
    if !check.report.passed() {
        return Err("the network's gradient check failed".into());
    }
    Ok(())
}

/// Each checked element costs two forward passes: a seeded sample of each tensor suffices.
fn network_check_config() -> Config {
    Config {
        max_elements_per_tensor: Some(16),
        ..Config::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn swish_is_computed_as_the_math_says() {
        // beta 0: s = 1/2 everywhere, so y = x / 2 and dy/dx = 1/2.
        // beta ln 3 at x = 1: s = 1 / (1 + 1/3) = 3/4, y = 3/4 and
        // dy/dx = s + beta y (1 - s) = 3/4 + ln 3 * 3/16.
        let ln3 = 3f64.ln();
        let cases = [
            (0.0, -2.0, -1.0, 0.5),
            (ln3, 1.0, 0.75, 0.75 + ln3 * 3.0 / 16.0),
        ];
        for (beta, x, y, slope) in cases {
            let op = Swish { beta };
            let x = ndarray::arr1(&[x]).into_dyn();
            let out = Op::<f64>::forward(&op, &[x.view()]).unwrap();
            let dy = ndarray::arr1(&[1.0]).into_dyn();
            let cx = BackwardCx {
                inputs: &[x.view()],
                output: out.view(),
                output_grad: dy.view(),
                needs_grad: &[true],
            };
            let dx = Op::<f64>::backward(&op, &cx).unwrap().remove(0).unwrap();
            assert!((out[[0]] - y).abs() < 1e-15, "beta {beta}: y {}", out[[0]]);
            assert!(
                (dx[[0]] - slope).abs() < 1e-15,
                "beta {beta}: dy/dx {}",
                dx[[0]]
            );
        }
    }

    #[test]
    fn swish_passes_every_gradient_check() {
        let registry = registry().unwrap();
        let reports = gradcheck_swish(&registry).unwrap();
        assert_eq!(reports.len(), 4);
        for (label, report) in reports {
            assert!(report.passed(), "{label}: {:.3e}", report.max_rel_error());
        }
    }

    #[test]
    fn a_name_is_registered_once() {
        let mut registry = registry().unwrap();
        let error = registry.register::<Swish>().unwrap_err().to_string();
        assert_eq!(
            error,
            "registry: an op named \"swish\" is registered already"
        );
    }

    #[test]
    fn the_network_loads_learns_and_passes_its_gradient_check() {
        let registry = registry().unwrap();
        let graph = Arc::new(load_network(&registry).unwrap_or_else(|e| panic!("{}", e.render())));
        assert!(graph.warnings.is_empty());
        let swish = graph.node("swish").unwrap();
        assert_eq!(
            (swish.op, swish.shape.as_slice()),
            ("swish", &[4, 12, 12][..])
        );
        assert_eq!(graph.node("logits").unwrap().shape, [3]);
        // conv: 4 * 1 * 3 * 3 + 4; logits: 3 * 4 + 3.
        assert_eq!(graph.param_count(), 40 + 15);

        let network = Network::<f32>::new(Arc::clone(&graph)).unwrap();
        let params = network.init_params(7);
        let before = loss_and_grads(&network, &params, random_batch(8, 1)).unwrap();
        assert!(before.loss.is_finite() && before.loss > 0.0);
        for (name, grad) in &before.params.tensors {
            assert!(norm(grad) > 0.0, "{name} has no gradient");
        }
        let stepped = descend(&params, &before.params, 0.1);
        let after = loss_and_grads(&network, &stepped, random_batch(8, 1)).unwrap();
        assert!(
            after.loss < before.loss,
            "{} !< {}",
            after.loss,
            before.loss
        );

        let check = graph.gradcheck(2, &network_check_config()).unwrap();
        assert!(
            check.report.passed(),
            "{:.3e}",
            check.report.max_rel_error()
        );
    }

    #[test]
    fn a_bad_swish_in_a_file_is_a_located_error() {
        let registry = registry().unwrap();
        let error = |op: &str| {
            let text = NETWORK.replace("Swish(beta: 1.5)", op);
            Graph::parse("custom_op.ron", &text, &registry)
                .unwrap_err()
                .headline()
        };
        assert_eq!(
            error("Swish(beta: inf)"),
            "custom_op.ron:6:30: node \"swish\": Swish: beta must be a finite number, got inf"
        );
        assert_eq!(
            error("Swish(bta: 1.5)"),
            "custom_op.ron:6:30: node \"swish\": Swish: no hyperparameter named `bta`"
        );
    }
}
