//! `cargo bench`: the speed workloads W1-W6 and the sgemm reference, in one process so that
//! their ratios are measured under the same load.
//!
//! | id | workload | shapes |
//! |---|---|---|
//! | PEAK | sgemm | `C[1024,1024] = A[1024,1024] B[1024,1024]` through `tapir_core::gemm` |
//! | W1 | conv-mid | `x[32,16,28,28]`, `w[32,16,3,3]`, bias, stride 1, padding 1 (f32 and f64) |
//! | W2 | conv-first | `x[64,1,56,56]`, `w[16,1,5,5]`, bias, stride 1, no padding |
//! | W3 | dense | `x[64,3136]`, `w[128,3136]`, bias |
//! | W4 | maxpool | `x[32,32,28,28]`, kernel 2, stride 2 |
//! | W5 | cnn-step | one SGD step of `graphs/cnn-2.ron`, batch 64 |
//! | W6 | fcn-step | one SGD step of `graphs/fcn.ron`, batch 64 |
//! | G1 | inception-step | one SGD step of `graphs/inception.ron`, batch 64 (and 4), its four branches side by side and one at a time |
//!
//! "fwd" is the op's forward alone, no tape; "fwd_bwd" adds the op's backward for the
//! gradient of `sum(output)` with respect to the input and every weight and bias. A step
//! is `Network::loss_and_grads` then `p -= 0.01 * grad` for every parameter.
//!
//! Throughput is counted in "elements": FLOP for W1-W3 and sgemm (2 per multiply-add of
//! the conv and dense layers, a backward counting twice its forward), so `Gelem/s` reads as
//! GFLOP/s; images for W5, W6 and G1 (`elem/s` is images/s); input elements for W4.
//!
//! Data is seeded: inputs N(0, 1), weights and biases U(-1/sqrt(fan_in), 1/sqrt(fan_in)),
//! labels uniform in {0, 1}. The thread count is rayon's: compare
//! `RAYON_NUM_THREADS=1 cargo bench` with `RAYON_NUM_THREADS=2 cargo bench`; the sgemm
//! reference runs on one thread either way. `cargo bench -- W5` runs one workload.

mod conv;
mod data;
mod dense;
mod pool;
mod sgemm;
mod step;

use std::time::Duration;

use criterion::{Criterion, criterion_main};

/// The `tapir` binary's allocator, so the steps are timed as `tapir train` runs them;
/// `cargo bench --no-default-features` times them on the system's allocator.
#[cfg(feature = "mimalloc")]
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Warm-up of at least 0.5 s, then at least 30 samples over at least 3 s: every call of the
/// slowest workload is timed alone, and the whole run takes a few minutes.
pub fn config() -> Criterion {
    Criterion::default()
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(3))
        .sample_size(30)
        .nresamples(20_000)
        .without_plots()
        .configure_from_args()
}

criterion_main!(
    sgemm::benches,
    conv::benches,
    dense::benches,
    pool::benches,
    step::benches
);
