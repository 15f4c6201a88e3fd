//! W5 and W6: one SGD training step of `graphs/cnn-2.ron` and `graphs/fcn.ron`, batch 64.

use std::sync::Arc;

use criterion::{BatchSize, Criterion, SamplingMode, Throughput, criterion_group};
use ndarray::ArrayD;
use tapir_core::ParamRole;
use tapir_graph::{Graph, Network, Params};

use crate::data;

const BATCH: usize = 64;
const LEARNING_RATE: f32 = 0.01;

/// The network of `graphs/NAME`, with its parameters drawn U(-1/sqrt(fan_in), ...).
fn network(name: &str) -> (Network<f32>, Params<f32>) {
    let path = format!("{}/graphs/{name}", env!("CARGO_MANIFEST_DIR"));
    let graph = Graph::load(&path, &tapir_ops::builtin_registry())
        .unwrap_or_else(|e| panic!("{}", e.render()));
    let network = Network::new(Arc::new(graph)).expect("the graph's ops build");
    let tensors = network
        .graph()
        .params()
        .enumerate()
        .map(|(k, param)| {
            let fan_in = match param.spec.role {
                ParamRole::Weight { fan_in, .. } | ParamRole::Bias { fan_in } => fan_in,
            };
            let value = data::fan_in_uniform(&param.spec.shape, fan_in, 10 + k as u64);
            (param.name.clone(), value)
        })
        .collect();
    (network, Params { tensors })
}

/// Forward, backward and `p -= 0.01 * grad` for every parameter.
fn step(network: &Network<f32>, params: &mut Params<f32>, inputs: Vec<ArrayD<f32>>) -> f32 {
    let result = network
        .loss_and_grads(params, inputs, false)
        .expect("the workload's inputs fit the network");
    for ((_, p), (_, grad)) in params.tensors.iter_mut().zip(&result.params.tensors) {
        p.scaled_add(-LEARNING_RATE, grad);
    }
    result.loss
}

fn training_step(c: &mut Criterion, id: &str, graph: &str) {
    let (network, mut params) = network(graph);
    let shape: Vec<usize> = std::iter::once(BATCH)
        .chain(network.graph().inputs[0].shape.iter().copied())
        .collect();
    let images = data::normal::<f32>(&shape, 1);
    let labels = data::labels::<f32>(BATCH, 2);
    let mut group = c.benchmark_group(id);
    group.sampling_mode(SamplingMode::Flat);
    group.throughput(Throughput::Elements(BATCH as u64));
    group.bench_function("f32_step", |b| {
        b.iter_batched(
            || vec![images.clone(), labels.clone()],
            // As `tapir train` runs its steps: all on a thread of the pool, where the step's
            // memory is allocated and freed (see `tapir_train::train_epoch`).
            |inputs| tapir_core::on_pool(|| step(&network, &mut params, inputs)),
            BatchSize::LargeInput,
        )
    });
    group.finish();
}

fn w5(c: &mut Criterion) {
    training_step(c, "W5_cnn_step", "cnn-2.ron");
}

fn w6(c: &mut Criterion) {
    training_step(c, "W6_fcn_step", "fcn.ron");
}

criterion_group! {
    name = benches;
    config = crate::config();
    targets = w5, w6
}
