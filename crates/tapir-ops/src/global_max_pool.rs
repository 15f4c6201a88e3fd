//! `global_max_pool`: the largest value of each channel's whole `[H, W]` plane, as PyTorch's
//! `nn.AdaptiveMaxPool2d(1)` followed by a flatten to `[N, C]`.
//!
//! - Output: `y[n, c] = max_{a, b} x[n, c, a, b]`. A NaN in the plane makes the output NaN,
//!   as in PyTorch (and, as there, the last NaN takes the gradient).
//! - Gradient: let `m(n, c)` be the argmax of the plane, the FIRST maximum in row-major order
//!   when several are equal. Then `dL/dx[n, c, a, b] = dL/dy[n, c]` at `(a, b) = m(n, c)`,
//!   and `0` elsewhere.
//! - Shape: `[N, C, H, W] -> [N, C]`, with `H W >= 1`.
//!
//! **After a ReLU** ([`AfterRelu`]`<GlobalMaxPool>`, what a network runs when a `relu` feeds the pool
//! and nothing else reads it): `y = global_max_pool(relu(x)) = relu(global_max_pool(x))` in
//! one pass over `x` (`relu` never decreases and keeps NaN). If `y > 0` or NaN, the gradient
//! goes where it goes without the ReLU, and `relu` passes it on there; if `y = 0`, `relu(x)`
//! is 0 all over the plane, its first pixel takes the pool's gradient and `relu` stops it
//! (`x <= 0` there): nothing flows back. The same bits as the two ops one after the other.
//!
//! **After a ReLU after a `conv2d`** of short filters, the pooling also runs inside the
//! convolution, sample by sample (`conv2d::ConvReluPool`, see `conv2d/fused.rs`), through
//! the same plane-by-plane code as here.

use std::sync::Arc;

use ndarray::{ArrayD, ArrayViewD};
use serde::Deserialize;
use tapir_core::{Arity, BackwardCx, CaseInput, Float, Gen, GradcheckCase, Op, OpType, Result};

use crate::conv2d::{self, Conv2d};
use crate::pooling::{self, PlanePool, PlanePooling};
use crate::relu::{AfterRelu, fuse_after_relu, relu};
use crate::shape::{self, Padding, Pair};

/// `global_max_pool`: the maximum of each channel plane. No hyperparameters.
#[derive(Debug, Clone, Copy, Default, PartialEq, Deserialize)]
pub struct GlobalMaxPool;

/// [`GlobalMaxPool`] over planes of `hw` pixels.
pub(crate) struct GlobalPlanes {
    hw: usize,
}

impl<F: Float> PlanePool<F> for GlobalPlanes {
    fn plane_lens(&self) -> (usize, usize) {
        (self.hw, 1)
    }

    fn work_per_plane(&self) -> usize {
        self.hw
    }

    fn forward_plane(&self, x: &[F], y: &mut [F], after_relu: bool) {
        let max = plane_max(x);
        y.fill(if after_relu { relu(max) } else { max });
    }

    fn backward_plane(&self, x: &[F], y: &[F], dy: &[F], dx: &mut [F], after_relu: bool) {
        let (max, dy) = (y[0], dy[0]);
        if after_relu && max == F::zero() {
            return; // relu(x) is 0 all over the plane: nothing flows back.
        }
        // The forward output holds the plane's maximum: its first occurrence is the argmax.
        let m = if max.is_nan() {
            first_max(x).0
        } else {
            // Not found only if `output` is not this input's maximum: then, as for NaN, the
            // rule's own answer.
            x.iter()
                .position(|&v| v == max)
                .unwrap_or_else(|| first_max(x).0)
        };
        dx[m] = dy;
    }
}

impl<F: Float> Op<F> for GlobalMaxPool {
    fn name(&self) -> &'static str {
        <Self as OpType>::NAME
    }

    fn arity(&self) -> Arity {
        Arity::Exactly(1)
    }

    fn output_shape(&self, inputs: &[&[usize]]) -> Result<Vec<usize>> {
        shape::expect_inputs(Self::NAME, inputs, 1)?;
        let (n, c, _) = pooling::global_shape(Self::NAME, inputs[0])?;
        Ok(vec![n, c])
    }

    fn forward(&self, inputs: &[ArrayViewD<F>]) -> Result<ArrayD<F>> {
        pooling::pool(self, &inputs[0], false)
    }

    fn backward(&self, cx: &BackwardCx<F>) -> Result<Vec<Option<ArrayD<F>>>> {
        pooling::unpool(self, cx, false)
    }

    fn flops(&self, inputs: &[&[usize]]) -> u64 {
        // One comparison per input element.
        shape::elementwise_flops(inputs, 1)
    }

    fn fused_after(
        &self,
        producer: &dyn Op<F>,
        producer_inputs: &[&[usize]],
    ) -> Option<Arc<dyn Op<F>>> {
        let _ = producer_inputs; // a ReLU fuses whatever its shape
        fuse_after_relu(self, producer)
    }
}

impl<F: Float> PlanePooling<F> for GlobalMaxPool {
    const RELU_FUSED_NAME: &'static str = "relu_global_max_pool";
    const CONV_FUSED_NAME: &'static str = "conv2d_relu_global_max_pool";
    type Planes = GlobalPlanes;

    fn planes(&self, input: &[usize]) -> Result<GlobalPlanes> {
        let (_, _, hw) = pooling::global_shape(Self::NAME, input)?;
        Ok(GlobalPlanes { hw })
    }
}

/// The index and value of the first largest element of a plane (a NaN wins, as in PyTorch).
fn first_max<F: Float>(plane: &[F]) -> (usize, F) {
    // The plane as one row of H W pixels: row-major order is kept.
    pooling::argmax(plane, plane.len(), (0, 1), (0, plane.len()))
}

/// The largest element of a plane, NaN if it holds one: [`first_max`]'s value.
///
/// `if v > m { v } else { m }` is a branch-free `max` that vectorises (`first_max` does not);
/// it skips NaN, so a plane holding one is redone with `first_max`.
fn plane_max<F: Float>(plane: &[F]) -> F {
    // Eight independent running maxima, one per lane: a single running maximum is a chain
    // of dependent comparisons that neither vectorises nor pipelines.
    const LANES: usize = 8;
    let keep_larger = |m: F, v: F| if v > m { v } else { m };
    let mut lanes = [F::neg_infinity(); LANES];
    let mut nan = false;
    let chunks = plane.chunks_exact(LANES);
    let tail = chunks.remainder();
    for chunk in chunks {
        for (m, &v) in lanes.iter_mut().zip(chunk) {
            *m = keep_larger(*m, v);
            nan |= v.is_nan();
        }
    }
    let max = tail.iter().chain(&lanes).fold(F::neg_infinity(), |m, &v| {
        nan |= v.is_nan();
        keep_larger(m, v)
    });
    if nan { first_max(plane).1 } else { max }
}

impl OpType for GlobalMaxPool {
    const NAME: &'static str = "global_max_pool";

    fn gradcheck_cases() -> Vec<GradcheckCase> {
        // Distinct values, evenly spaced far beyond the finite-difference step: no nudge can
        // change a plane's argmax, so max is smooth at every point checked.
        let distinct = Gen::Distinct {
            low: -1.0,
            high: 1.0,
        };
        vec![
            GradcheckCase::new(
                "batch 2 channels 3",
                GlobalMaxPool,
                vec![CaseInput::new("x", &[2, 3, 3, 4], distinct)],
            ),
            GradcheckCase::new(
                "odd 5x3",
                GlobalMaxPool,
                vec![CaseInput::new("x", &[1, 2, 5, 3], distinct)],
            ),
            // One pixel per plane: the max is the identity.
            GradcheckCase::new(
                "1x1 planes",
                GlobalMaxPool,
                vec![CaseInput::new("x", &[2, 3, 1, 1], distinct)],
            ),
            // After a ReLU (the fused op): none of the values within 0.01 of the kink at 0,
            // and planes of 2 pixels mostly negative, so that several send nothing back.
            GradcheckCase::new(
                "after relu",
                AfterRelu(GlobalMaxPool),
                vec![CaseInput::new(
                    "x",
                    &[2, 3, 3, 4],
                    Gen::Distinct {
                        low: -0.99,
                        high: 1.0,
                    },
                )],
            ),
            // After a ReLU after a convolution (the fused op of the three), as `cnn-1` runs:
            // uniform draws make a tie or a map value within the step of 0 improbable.
            conv2d::conv_relu_case(
                "after padded conv2d and relu",
                Conv2d {
                    padding: Padding::All(2),
                    ..Conv2d::new(3, Pair::Both(3))
                },
                GlobalMaxPool,
                &[2, 1, 4, 5],
            ),
            GradcheckCase::new(
                "after relu mostly negative",
                AfterRelu(GlobalMaxPool),
                vec![CaseInput::new(
                    "x",
                    &[3, 4, 1, 2],
                    Gen::Distinct {
                        low: -1.49,
                        high: 0.5,
                    },
                )],
            ),
        ]
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::{Array, ArrayD, IxDyn, arr2};
    use tapir_core::Tape;

    #[test]
    fn forward_and_backward_by_hand() {
        // Plane 0 is [[1, 4], [3, 2]]: max 4 at (0, 1). Plane 1 is [[5, 5], [0, -1]]: max 5,
        // twice; the first in row-major order, (0, 0), takes the gradient.
        let x = Array::from_shape_vec(
            IxDyn(&[1, 2, 2, 2]),
            vec![1.0, 4.0, 3.0, 2.0, 5.0, 5.0, 0.0, -1.0],
        )
        .unwrap();
        let mut tape = Tape::<f64>::new();
        let xv = tape.leaf(x, true);
        let y = tape.apply(GlobalMaxPool, &[&xv]).unwrap();
        assert_eq!(*y.value(), arr2(&[[4.0, 5.0]]).into_dyn());
        let grads = tape
            .backward_from(&y, arr2(&[[10.0, 20.0]]).into_dyn())
            .unwrap();
        let expected = Array::from_shape_vec(
            IxDyn(&[1, 2, 2, 2]),
            vec![0.0, 10.0, 0.0, 0.0, 20.0, 0.0, 0.0, 0.0],
        )
        .unwrap();
        assert_eq!(grads.get(&xv).unwrap(), &expected);
    }

    #[test]
    fn nan_wins_and_minus_infinity_is_a_maximum() {
        // Plane 0 is [1, NaN, 7, NaN]: the output is NaN and, as in PyTorch, each NaN wins
        // over what came before, so the last one takes the gradient. Plane 1 is all -inf:
        // the maximum -inf, first at index 0.
        let x = Array::from_shape_vec(
            IxDyn(&[1, 2, 2, 2]),
            vec![1.0, f64::NAN, 7.0, f64::NAN]
                .into_iter()
                .chain([f64::NEG_INFINITY; 4])
                .collect(),
        )
        .unwrap();
        let mut tape = Tape::<f64>::new();
        let xv = tape.leaf(x, true);
        let y = tape.apply(GlobalMaxPool, &[&xv]).unwrap();
        assert!(y.value()[[0, 0]].is_nan());
        assert_eq!(y.value()[[0, 1]], f64::NEG_INFINITY);
        let grads = tape
            .backward_from(&y, arr2(&[[10.0, 20.0]]).into_dyn())
            .unwrap();
        let expected = Array::from_shape_vec(
            IxDyn(&[1, 2, 2, 2]),
            vec![0.0, 0.0, 0.0, 10.0, 20.0, 0.0, 0.0, 0.0],
        )
        .unwrap();
        assert_eq!(grads.get(&xv).unwrap(), &expected);
    }

    #[test]
    fn bad_shapes_are_errors() {
        let err = |input: &[usize]| {
            Op::<f32>::output_shape(&GlobalMaxPool, &[input])
                .unwrap_err()
                .to_string()
        };
        assert_eq!(
            err(&[2, 3, 4]),
            "global_max_pool: input must have rank 4 (N, C, H, W), got shape [2, 3, 4]"
        );
        assert_eq!(
            err(&[2, 3, 4, 0]),
            "global_max_pool: input [2, 3, 4, 0] has no pixels; pooling needs height and width of at least 1"
        );
    }

    #[test]
    fn builds_from_hyperparameter_text() {
        let registry = crate::builtin_registry();
        let entry = registry.get("global_max_pool").unwrap();
        let op = entry.build_f32("()").unwrap();
        assert_eq!(op.output_shape(&[&[2, 3, 4, 5]]).unwrap(), vec![2, 3]);
        assert_eq!(
            entry.build_f64("(kernel: 2)").unwrap_err().to_string(),
            "global_max_pool: hyperparameters at line 1, column 1: Expected unit"
        );
    }

    #[test]
    fn after_a_relu_the_fused_op_gives_the_same_bits_as_the_two_ops() {
        // Planes of four pixels, every combination of {2, 1, 0, -0.0, -1, NaN, -inf}: ties,
        // zeros (the kink), NaN before and after the maximum, planes with no positive pixel.
        let values = [2.0, 1.0, 0.0, -0.0, -1.0, f32::NAN, f32::NEG_INFINITY];
        let planes = values.len().pow(4);
        let x = Array::from_shape_fn((planes, 1, 2, 2), |(n, _, i, j)| {
            values[n / values.len().pow((i * 2 + j) as u32) % values.len()]
        })
        .into_dyn();
        let dy = Array::from_shape_fn((planes, 1), |(n, _)| match n % 3 {
            0 => -0.0,
            k => k as f32,
        })
        .into_dyn();
        let run = |fused: bool| {
            let mut tape = Tape::<f32>::new();
            let leaf = tape.leaf(x.clone(), true);
            let y = if fused {
                let op =
                    Op::<f32>::fused_after(&GlobalMaxPool, &crate::Relu, &[&[1, 2, 3, 3]]).unwrap();
                tape.apply_shared(op, &[&leaf]).unwrap()
            } else {
                let r = tape.apply(crate::Relu, &[&leaf]).unwrap();
                tape.apply(GlobalMaxPool, &[&r]).unwrap()
            };
            let grads = tape.backward_from(&y, dy.clone()).unwrap();
            let bits = |a: &ArrayD<f32>| a.mapv(f32::to_bits);
            (bits(y.value()), bits(grads.get(&leaf).unwrap()))
        };
        assert_eq!(run(true), run(false));
    }

    #[test]
    fn after_a_relu_by_hand() {
        // Planes: [-1, 3, 3, 2] -> 3, first at index 1; [-1, -2, 0, -3] -> relu's 0, nothing
        // flows back; [NaN, -1, -2, -3] -> NaN, which relu keeps, and the gradient reaches it.
        let x = Array::from_shape_vec(
            IxDyn(&[1, 3, 2, 2]),
            vec![
                -1.0,
                3.0,
                3.0,
                2.0,
                -1.0,
                -2.0,
                0.0,
                -3.0,
                f64::NAN,
                -1.0,
                -2.0,
                -3.0,
            ],
        )
        .unwrap();
        let mut tape = Tape::<f64>::new();
        let leaf = tape.leaf(x, true);
        let y = tape.apply(AfterRelu(GlobalMaxPool), &[&leaf]).unwrap();
        assert_eq!([y.value()[[0, 0]], y.value()[[0, 1]]], [3.0, 0.0]);
        assert!(y.value()[[0, 2]].is_nan());
        let grads = tape
            .backward_from(&y, arr2(&[[10.0, 20.0, 30.0]]).into_dyn())
            .unwrap();
        let mut expected = vec![0.0; 12];
        expected[1] = 10.0;
        expected[8] = 30.0;
        assert_eq!(
            grads.get(&leaf).unwrap(),
            &Array::from_shape_vec(IxDyn(&[1, 3, 2, 2]), expected).unwrap()
        );
    }
}
