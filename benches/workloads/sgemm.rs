//! PEAK: `C = A B` with 1024x1024 `f32` matrices through `tapir_core::gemm`, the product
//! every tapir kernel lowers to: the limit the other workloads are measured against.

use criterion::{Criterion, SamplingMode, Throughput, criterion_group};
use ndarray::{Array2, Ix2};

use crate::data;

fn sgemm(c: &mut Criterion) {
    let n = 1024;
    let matrix = |seed| {
        data::normal::<f32>(&[n, n], seed)
            .into_dimensionality::<Ix2>()
            .expect("a 2-D shape")
    };
    let (a, b) = (matrix(1), matrix(2));
    let mut out = Array2::<f32>::zeros((n, n));
    let mut group = c.benchmark_group("PEAK_sgemm");
    group.sampling_mode(SamplingMode::Flat);
    group.throughput(Throughput::Elements(2 * (n as u64).pow(3)));
    group.bench_function("1024", |bench| {
        bench.iter(|| tapir_core::gemm(1.0, &a.view(), &b.view(), false, &mut out.view_mut()))
    });
    group.finish();
}

criterion_group! {
    name = benches;
    config = crate::config();
    targets = sgemm
}
