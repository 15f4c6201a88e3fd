//! `global_avg_pool`: the mean of each channel's whole `[H, W]` plane, as PyTorch's
//! `nn.AdaptiveAvgPool2d(1)` followed by a flatten to `[N, C]`.
//!
//! - Output: `y[n, c] = (sum_{a, b} x[n, c, a, b]) / (H W)`.
//! - Gradient: `dL/dx[n, c, a, b] = dL/dy[n, c] / (H W)`, the same for every pixel of the plane.
//! - Shape: `[N, C, H, W] -> [N, C]`, with `H W >= 1`.

use ndarray::{ArrayD, ArrayViewD};
use serde::Deserialize;
use tapir_core::{Arity, BackwardCx, CaseInput, Float, Gen, GradcheckCase, Op, OpType, Result};

use crate::pooling;
use crate::shape;

/// `global_avg_pool`: the mean of each channel plane. No hyperparameters.
#[derive(Debug, Clone, Copy, Default, PartialEq, Deserialize)]
pub struct GlobalAvgPool;

impl<F: Float> Op<F> for GlobalAvgPool {
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
        let (n, c, hw) = pooling::global_shape(Self::NAME, inputs[0].shape())?;
        let x = inputs[0].as_standard_layout();
        let x = pooling::elements(&x);
        let area = F::from_usize(hw);
        pooling::from_planes(Self::NAME, &[n, c], 1, hw, |p, y| {
            y.fill(pooling::plane(&x, p, hw).iter().copied().sum::<F>() / area);
        })
    }

    fn backward(&self, cx: &BackwardCx<F>) -> Result<Vec<Option<ArrayD<F>>>> {
        if !cx.needs_grad(0) {
            return Ok(vec![None]);
        }
        let (n, c, hw) = pooling::global_shape(Self::NAME, cx.inputs[0].shape())?;
        pooling::check_backward(Self::NAME, cx, &[n, c], false)?;
        let dy = cx.output_grad.as_standard_layout();
        let dy = pooling::elements(&dy);
        let area = F::from_usize(hw);
        let dx = pooling::from_planes(Self::NAME, cx.inputs[0].shape(), hw, hw, |p, dx| {
            dx.fill(pooling::plane(&dy, p, 1)[0] / area);
        })?;
        Ok(vec![Some(dx)])
    }

    fn flops(&self, inputs: &[&[usize]]) -> u64 {
        // One addition per input element (and a division per plane, not counted).
        shape::elementwise_flops(inputs, 1)
    }
}

impl OpType for GlobalAvgPool {
    const NAME: &'static str = "global_avg_pool";

    fn gradcheck_cases() -> Vec<GradcheckCase> {
        // The mean is linear in x, smooth everywhere: plain uniform inputs.
        let uniform = Gen::uniform();
        vec![
            GradcheckCase::new(
                "batch 2 channels 3",
                GlobalAvgPool,
                vec![CaseInput::new("x", &[2, 3, 3, 4], uniform)],
            ),
            GradcheckCase::new(
                "odd 5x3",
                GlobalAvgPool,
                vec![CaseInput::new("x", &[1, 2, 5, 3], uniform)],
            ),
        ]
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::{Array, IxDyn, arr2};
    use tapir_core::Tape;

    #[test]
    fn forward_and_backward_by_hand() {
        // Plane 0: (1 + 4 + 3 + 2) / 4 = 2.5. Plane 1: (5 + 5 + 0 - 1) / 4 = 2.25.
        let x = Array::from_shape_vec(
            IxDyn(&[1, 2, 2, 2]),
            vec![1.0, 4.0, 3.0, 2.0, 5.0, 5.0, 0.0, -1.0],
        )
        .unwrap();
        let mut tape = Tape::<f64>::new();
        let xv = tape.leaf(x, true);
        let y = tape.apply(GlobalAvgPool, &[&xv]).unwrap();
        assert_eq!(*y.value(), arr2(&[[2.5, 2.25]]).into_dyn());
        // Every pixel gets its plane's gradient over 4: 4 / 4 = 1 and 8 / 4 = 2.
        let grads = tape
            .backward_from(&y, arr2(&[[4.0, 8.0]]).into_dyn())
            .unwrap();
        let expected = Array::from_shape_vec(
            IxDyn(&[1, 2, 2, 2]),
            vec![1.0, 1.0, 1.0, 1.0, 2.0, 2.0, 2.0, 2.0],
        )
        .unwrap();
        assert_eq!(grads.get(&xv).unwrap(), &expected);
    }

    #[test]
    fn bad_shapes_are_errors() {
        let err = |input: &[usize]| {
            Op::<f32>::output_shape(&GlobalAvgPool, &[input])
                .unwrap_err()
                .to_string()
        };
        assert_eq!(
            err(&[2, 3, 4, 5, 6]),
            "global_avg_pool: input must have rank 4 (N, C, H, W), got shape [2, 3, 4, 5, 6]"
        );
        assert_eq!(
            err(&[1, 1, 0, 0]),
            "global_avg_pool: input [1, 1, 0, 0] has no pixels; pooling needs height and width of at least 1"
        );
    }

    #[test]
    fn builds_from_hyperparameter_text() {
        let registry = crate::builtin_registry();
        let entry = registry.get("global_avg_pool").unwrap();
        let op = entry.build_f64("()").unwrap();
        assert_eq!(op.output_shape(&[&[2, 3, 4, 5]]).unwrap(), vec![2, 3]);
    }
}
