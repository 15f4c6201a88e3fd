//! W1 (conv-mid, f32 and f64) and W2 (conv-first: one input channel, 5x5).

use std::hint::black_box;

use criterion::{Criterion, Throughput, criterion_group};
use ndarray::ArrayD;
use tapir_core::{BackwardCx, Float, Op, buffers};
use tapir_ops::Conv2d;
use tapir_ops::shape::{Padding, Pair};

use crate::data;

/// The op's forward alone.
///
/// Every large tensor a call makes goes back to tapir's buffer shelf
/// ([`tapir_core::buffers`]) when the call is done, as the tape gives back each one it frees:
/// the next call reuses the memory, as the next step of training does. Freed to the
/// allocator instead, an output of megabytes comes back from the operating system on the
/// next call as fresh pages, each faulted in and cleared: in W2 (11 MB out) that was a fifth
/// of a `perf` profile of forward+backward, a cost a training step does not pay.
pub fn forward<F: Float>(op: &dyn Op<F>, inputs: &[ArrayD<F>]) {
    let views: Vec<_> = inputs.iter().map(|a| a.view()).collect();
    let y = op.forward(&views).expect("the workload's shapes are valid");
    buffers::give_array(black_box(y));
}

/// Forward, then the gradients of `sum(output)` for every input; the memory goes back to
/// the shelf as in [`forward`].
pub fn forward_backward<F: Float>(op: &dyn Op<F>, inputs: &[ArrayD<F>]) {
    let views: Vec<_> = inputs.iter().map(|a| a.view()).collect();
    let y = op.forward(&views).expect("the workload's shapes are valid");
    // The gradient of a sum: ones, in memory from the shelf as the tape's seed would be.
    let mut dy = ArrayD::from_shape_vec(y.raw_dim(), buffers::for_overwrite(y.len()))
        .expect("a buffer of the output's length");
    dy.fill(F::one());
    let needs_grad = vec![true; inputs.len()];
    let cx = BackwardCx {
        inputs: &views,
        output: y.view(),
        output_grad: dy.view(),
        needs_grad: &needs_grad,
    };
    let grads = op.backward(&cx).expect("the workload's shapes are valid");
    for grad in black_box(grads).into_iter().flatten() {
        buffers::give_array(grad);
    }
    buffers::give_array(dy);
    buffers::give_array(y);
}

/// `x`, weight and bias of a conv whose weight is `w`.
fn conv_inputs<F: Float>(x: &[usize], w: &[usize]) -> Vec<ArrayD<F>> {
    let fan_in = w[1] * w[2] * w[3];
    vec![
        data::normal(x, 1),
        data::fan_in_uniform(w, fan_in, 2),
        data::fan_in_uniform(&[w[0]], fan_in, 3),
    ]
}

/// Benchmarks `fwd` and `fwd_bwd` of `op` on `inputs`, `flop` counting the forward.
fn fwd_and_bwd<F: Float>(
    c: &mut Criterion,
    group: &str,
    op: &Conv2d,
    inputs: &[ArrayD<F>],
    flop: u64,
) where
    Conv2d: Op<F>,
{
    let mut group = c.benchmark_group(group);
    group.sampling_mode(criterion::SamplingMode::Flat);
    group.throughput(Throughput::Elements(flop));
    group.bench_function(format!("{}_fwd", F::NAME), |b| {
        b.iter(|| forward(op, inputs))
    });
    group.throughput(Throughput::Elements(3 * flop));
    group.bench_function(format!("{}_fwd_bwd", F::NAME), |b| {
        b.iter(|| forward_backward(op, inputs))
    });
    group.finish();
}

fn w1(c: &mut Criterion) {
    let op = Conv2d {
        padding: Padding::All(1),
        ..Conv2d::new(32, Pair::Both(3))
    };
    let (x, w) = ([32, 16, 28, 28], [32, 16, 3, 3]);
    // 2 * N * F * OH * OW * C * kh * kw
    let flop = 2 * 32 * 32 * 28 * 28 * 16 * 3 * 3;
    fwd_and_bwd(c, "W1_conv_mid", &op, &conv_inputs::<f32>(&x, &w), flop);
    fwd_and_bwd(c, "W1_conv_mid", &op, &conv_inputs::<f64>(&x, &w), flop);
}

fn w2(c: &mut Criterion) {
    let op = Conv2d::new(16, Pair::Both(5));
    let (x, w) = ([64, 1, 56, 56], [16, 1, 5, 5]);
    let flop = 2 * 64 * 16 * 52 * 52 * 5 * 5;
    fwd_and_bwd(c, "W2_conv_first", &op, &conv_inputs::<f32>(&x, &w), flop);
}

criterion_group! {
    name = benches;
    config = crate::config();
    targets = w1, w2
}
