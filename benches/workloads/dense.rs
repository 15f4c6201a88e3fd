//! W3: a dense layer, 3136 -> 128, batch 64.

use criterion::{Criterion, SamplingMode, Throughput, criterion_group};
use tapir_ops::Dense;

use crate::conv::{forward, forward_backward};
use crate::data;

fn w3(c: &mut Criterion) {
    let op = Dense::new(128);
    let inputs = vec![
        data::normal::<f32>(&[64, 3136], 1),
        data::fan_in_uniform(&[128, 3136], 3136, 2),
        data::fan_in_uniform(&[128], 3136, 3),
    ];
    let flop = 2 * 64 * 3136 * 128;
    let mut group = c.benchmark_group("W3_dense");
    group.sampling_mode(SamplingMode::Flat);
    group.throughput(Throughput::Elements(flop));
    group.bench_function("f32_fwd", |b| b.iter(|| forward(&op, &inputs)));
    group.throughput(Throughput::Elements(3 * flop));
    group.bench_function("f32_fwd_bwd", |b| b.iter(|| forward_backward(&op, &inputs)));
    group.finish();
}

criterion_group! {
    name = benches;
    config = crate::config();
    targets = w3
}
