//! Seeded data for the workloads, drawn in `f64` and rounded, so both precisions see the
//! same numbers.

use ndarray::ArrayD;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, Normal, Uniform};
use tapir_core::Float;

/// Inputs: N(0, 1).
pub fn normal<F: Float>(shape: &[usize], seed: u64) -> ArrayD<F> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    // Safe: a standard deviation of 1 is valid.
    let normal = Normal::new(0.0, 1.0).unwrap();
    ArrayD::from_shape_simple_fn(shape, || F::from_f64(normal.sample(&mut rng)))
}

/// Weights and biases: U(-1/sqrt(fan_in), 1/sqrt(fan_in)), PyTorch's default for both.
pub fn fan_in_uniform<F: Float>(shape: &[usize], fan_in: usize, seed: u64) -> ArrayD<F> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let bound = 1.0 / (fan_in.max(1) as f64).sqrt();
    // Safe: the bound is finite and positive, so low < high.
    let uniform = Uniform::new(-bound, bound).unwrap();
    ArrayD::from_shape_simple_fn(shape, || F::from_f64(uniform.sample(&mut rng)))
}

/// Class labels: uniform in {0, 1}, as floats (the loss's label input).
pub fn labels<F: Float>(batch: usize, seed: u64) -> ArrayD<F> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    // Safe: 0..2 is not empty.
    let uniform = Uniform::new(0usize, 2).unwrap();
    ArrayD::from_shape_simple_fn(vec![batch], || F::from_usize(uniform.sample(&mut rng)))
}
