//! The value probe: an op can keep the batch axis in its shapes and still mix the samples of
//! a batch in its values (`Softmax` along axis 0, or along the only axis of one number per
//! sample). Shapes cannot show it; running the op once on two samples can.

use ndarray::{ArrayD, ArrayViewD, Axis};
use tapir_core::Op;

/// The batch size the probe runs at: the smallest with a second sample.
pub(super) const BATCH: usize = 2;

/// The probe is skipped above this many elements (inputs, parameters and output at batch
/// [`BATCH`]) or FLOPs: loading stays fast, and a layer that large is rarely the one that
/// mixes samples.
const MAX_ELEMENTS: usize = 4 << 20;
const MAX_FLOPS: u64 = 1 << 30;

/// The seed of the probe's values: loading a file gives the same verdict every time.
const SEED: u64 = 0x9E0B_E5A3;

/// Whether `op` mixes samples: it runs at a batch of [`BATCH`] on random values, then again
/// with only the second sample of each data input changed, and the first sample's output
/// must stay the same to the bit. `data` holds the data inputs' shapes at that batch.
///
/// `None` where the probe does not apply: the work is over the limits above, or the op
/// refuses random values (class labels, which must be integers). Run time reports those.
pub(super) fn mixes_samples(op: &dyn Op<f64>, data: &[Vec<usize>]) -> Option<bool> {
    let data_refs: Vec<&[usize]> = data.iter().map(Vec::as_slice).collect();
    let params = op.params(&data_refs).ok()?;
    let mut shapes = data.to_vec();
    shapes.extend(params.into_iter().map(|p| p.shape));
    let refs: Vec<&[usize]> = shapes.iter().map(Vec::as_slice).collect();
    let output = op.output_shape(&refs).ok()?;
    let mut elements: usize = 0;
    for shape in shapes.iter().chain([&output]) {
        elements = elements.checked_add(tapir_core::allocatable_elements(shape)?)?;
    }
    if elements > MAX_ELEMENTS || op.flops(&refs) > MAX_FLOPS {
        return None;
    }
    // Plain vectors and slices, not ndarray's iterators over dynamic shapes: the probe runs
    // on every load, and this crate is built without optimisation in tests.
    let mut state = SEED;
    let mut values: Vec<ArrayD<f64>> = Vec::new();
    for shape in &shapes {
        let count = tapir_core::allocatable_elements(shape)?;
        let data: Vec<f64> = (0..count).map(|_| uniform(&mut state)).collect();
        values.push(ArrayD::from_shape_vec(shape.as_slice(), data).ok()?);
    }
    let before = first_sample(op, &values, &output)?;
    // Row-major with the batch first: the second sample is the second half of the data.
    for value in values.iter_mut().take(data.len()) {
        let data = value.as_slice_mut()?;
        let half = data.len() / BATCH;
        data[half..]
            .iter_mut()
            .for_each(|x| *x = uniform(&mut state));
    }
    let after = first_sample(op, &values, &output)?;
    Some(before != after)
}

/// The next of a stream of numbers uniform in [-1, 1), by SplitMix64 (Steele et al. 2014):
/// the probe needs varied values, not statistics, and draws many per load.
fn uniform(state: &mut u64) -> f64 {
    *state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^= z >> 31;
    // The top 53 bits as a fraction in [0, 1), then scaled to [-1, 1).
    (z >> 11) as f64 / (1u64 << 53) as f64 * 2.0 - 1.0
}

/// The bits of the first sample of `op`'s output on `values`, if it runs and keeps to its
/// shape rule.
fn first_sample(op: &dyn Op<f64>, values: &[ArrayD<f64>], output: &[usize]) -> Option<Vec<u64>> {
    let views: Vec<ArrayViewD<f64>> = values.iter().map(|v| v.view()).collect();
    let y = op.forward(&views).ok()?;
    if y.shape() != output || y.ndim() == 0 {
        return None;
    }
    let first = y.index_axis(Axis(0), 0);
    Some(match first.as_slice() {
        Some(data) => data.iter().map(|x| x.to_bits()).collect(),
        None => first.iter().map(|x| x.to_bits()).collect(),
    })
}
