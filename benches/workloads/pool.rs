//! W4: max pooling 2x2, stride 2, over `[32, 32, 28, 28]`.

use criterion::{Criterion, SamplingMode, Throughput, criterion_group};
use tapir_ops::MaxPool2d;
use tapir_ops::shape::Pair;

use crate::conv::{forward, forward_backward};
use crate::data;

fn w4(c: &mut Criterion) {
    let op = MaxPool2d {
        kernel: Pair::Both(2),
        stride: Some(Pair::Both(2)),
        padding: Pair::Both(0),
    };
    let inputs = vec![data::normal::<f32>(&[32, 32, 28, 28], 1)];
    let mut group = c.benchmark_group("W4_maxpool");
    group.sampling_mode(SamplingMode::Flat);
    // No FLOP to count: throughput in input elements.
    group.throughput(Throughput::Elements(32 * 32 * 28 * 28));
    group.bench_function("f32_fwd", |b| b.iter(|| forward(&op, &inputs)));
    group.bench_function("f32_fwd_bwd", |b| b.iter(|| forward_backward(&op, &inputs)));
    group.finish();
}

criterion_group! {
    name = benches;
    config = crate::config();
    targets = w4
}
