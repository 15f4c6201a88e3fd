//! W5 and W6: one SGD training step of `graphs/cnn-2.ron` and `graphs/fcn.ron`, batch 64;
//! G1: the same step of the branching `graphs/inception.ron`, batch 64 and 4, its branches
//! side by side and one at a time.

use std::sync::Arc;

use criterion::{BatchSize, Criterion, SamplingMode, Throughput, criterion_group};
use ndarray::ArrayD;
use tapir_core::{ParamRole, Schedule};
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

/// Times a step of `graphs/GRAPH` on `batch` samples under each of `schedules`, named by the
/// schedule's name.
fn training_step(
    c: &mut Criterion,
    id: &str,
    graph: &str,
    batch: usize,
    schedules: &[(&str, Schedule)],
) {
    let (network, mut params) = network(graph);
    let shape: Vec<usize> = std::iter::once(batch)
        .chain(network.graph().inputs[0].shape.iter().copied())
        .collect();
    let images = data::normal::<f32>(&shape, 1);
    let labels = data::labels::<f32>(batch, 2);
    let mut group = c.benchmark_group(id);
    group.sampling_mode(SamplingMode::Flat);
    group.throughput(Throughput::Elements(batch as u64));
    for (name, schedule) in schedules {
        let network = network.clone().with_schedule(*schedule);
        group.bench_function(*name, |b| {
            b.iter_batched(
                || vec![images.clone(), labels.clone()],
                // As `tapir train` runs its steps: all on a thread of the pool, where the
                // step's memory is allocated and freed (see `tapir_train::train_epoch`).
                |inputs| tapir_core::on_pool(|| step(&network, &mut params, inputs)),
                BatchSize::LargeInput,
            )
        });
    }
    group.finish();
}

const SIDE_BY_SIDE: &[(&str, Schedule)] = &[("f32_step", Schedule::SideBySide)];

fn w5(c: &mut Criterion) {
    training_step(c, "W5_cnn_step", "cnn-2.ron", BATCH, SIDE_BY_SIDE);
}

fn w6(c: &mut Criterion) {
    training_step(c, "W6_fcn_step", "fcn.ron", BATCH, SIDE_BY_SIDE);
}

/// The four branches of `inception.ron` side by side (as `tapir train` runs them) against
/// one at a time, each op still split across the threads: what running independent nodes
/// in parallel gains. One thread runs both the same way; compare with two. At batch 4 an
/// op has one chunk of samples and cannot split; at 64 every op splits.
fn g1(c: &mut Criterion) {
    let schedules = [
        ("f32_step_side_by_side", Schedule::SideBySide),
        ("f32_step_one_at_a_time", Schedule::OneAtATime),
    ];
    training_step(c, "G1_inception_step", "inception.ron", BATCH, &schedules);
    training_step(
        c,
        "G1_inception_step_batch4",
        "inception.ron",
        4,
        &schedules,
    );
}

criterion_group! {
    name = benches;
    config = crate::config();
    targets = w5, w6, g1
}
