//! `softmax`: exponentials normalised to sum to 1 along one axis.
//!
//! For each lane `x` along `axis` (every other index held fixed), with `m = max_j x_j`:
//!
//! - Output: `y_i = exp(x_i - m) / s`, `s = sum_j exp(x_j - m)`. Subtracting `m` changes
//!   nothing mathematically but keeps every exponent at most 0, so logits of 1e4 give
//!   finite results instead of `inf / inf`.
//! - Gradient: `dL/dx_i = y_i (dL/dy_i - sum_j dL/dy_j y_j)`.
//! - Shape: `y` has the shape of `x`. `axis` counts from the end when negative, as PyTorch's
//!   `dim` does. A scalar has no axis to normalise along: an error.

use ndarray::{ArrayD, ArrayViewD, Axis, Zip};
use serde::Deserialize;
use tapir_core::{Arity, BackwardCx, CaseInput, Float, Gen, GradcheckCase, Op, OpType, Result};

use crate::shape;

/// `softmax` along `axis`, as `torch.softmax(x, dim=axis)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Softmax {
    /// The axis to normalise along; negative counts from the end. Default `-1`, the last.
    #[serde(default = "last_axis")]
    pub axis: isize,
}

fn last_axis() -> isize {
    -1
}

impl Default for Softmax {
    fn default() -> Self {
        Softmax { axis: last_axis() }
    }
}

/// Floating-point operations per element: the max, a subtraction, the exponential (counted
/// as one), its share of the sum and the division.
const FLOPS_PER_ELEMENT: u64 = 5;

impl<F: Float> Op<F> for Softmax {
    fn name(&self) -> &'static str {
        <Self as OpType>::NAME
    }

    fn arity(&self) -> Arity {
        Arity::Exactly(1)
    }

    fn output_shape(&self, inputs: &[&[usize]]) -> Result<Vec<usize>> {
        let output = shape::unary(<Self as OpType>::NAME, inputs)?;
        shape::resolve_axis(<Self as OpType>::NAME, self.axis, &output)?;
        Ok(output)
    }

    fn forward(&self, inputs: &[ArrayViewD<F>]) -> Result<ArrayD<F>> {
        let x = &inputs[0];
        let axis = Axis(shape::resolve_axis(
            <Self as OpType>::NAME,
            self.axis,
            x.shape(),
        )?);
        let mut y = x.to_owned();
        for mut lane in y.lanes_mut(axis) {
            let m = lane.fold(F::neg_infinity(), |m, &x| m.max(x));
            lane.mapv_inplace(|x| (x - m).exp());
            let s = lane.sum();
            lane.mapv_inplace(|e| e / s);
        }
        Ok(y)
    }

    fn backward(&self, cx: &BackwardCx<F>) -> Result<Vec<Option<ArrayD<F>>>> {
        if !cx.needs_grad(0) {
            return Ok(vec![None]);
        }
        let axis = Axis(shape::resolve_axis(
            <Self as OpType>::NAME,
            self.axis,
            cx.output.shape(),
        )?);
        let mut dx = cx.output_grad.to_owned();
        let y = cx.output.view();
        Zip::from(dx.lanes_mut(axis))
            .and(y.lanes(axis))
            .for_each(|mut dx, y| {
                // dx holds dL/dy on entry.
                let dot = Zip::from(&dx)
                    .and(&y)
                    .fold(F::zero(), |acc, &dy, &y| acc + dy * y);
                Zip::from(&mut dx)
                    .and(&y)
                    .for_each(|dx, &y| *dx = y * (*dx - dot));
            });
        Ok(vec![Some(dx)])
    }

    fn flops(&self, inputs: &[&[usize]]) -> u64 {
        shape::elementwise_flops(inputs, FLOPS_PER_ELEMENT)
    }
}

impl OpType for Softmax {
    const NAME: &'static str = "softmax";

    fn gradcheck_cases() -> Vec<GradcheckCase> {
        // Softmax is smooth everywhere, so any values do; [-2, 2) spreads the probabilities
        // (about 0.02 to 0.9 over 4 classes) so that no gradient term is negligible.
        let logits = Gen::Uniform {
            low: -2.0,
            high: 2.0,
        };
        let on = |axis| Softmax { axis };
        vec![
            GradcheckCase::new(
                "last axis of 3x4",
                on(-1),
                vec![CaseInput::new("x", &[3, 4], logits)],
            ),
            GradcheckCase::new(
                "axis 1 of 2x3x4",
                on(1),
                vec![CaseInput::new("x", &[2, 3, 4], logits)],
            ),
            GradcheckCase::new(
                "axis 0 of 2x3x4",
                on(0),
                vec![CaseInput::new("x", &[2, 3, 4], logits)],
            ),
        ]
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::{arr1, arr2};
    use tapir_core::{Error, Tape};

    #[test]
    fn zero_logits_give_exactly_one_half() {
        // exp(0 - 0) = 1 for both classes, s = 1 + 1 = 2, y = 1 / 2: every step is exact.
        let y32 = Op::<f32>::forward(
            &Softmax::default(),
            &[arr1(&[0.0f32, 0.0]).into_dyn().view()],
        )
        .unwrap();
        assert_eq!(y32.as_slice().unwrap(), &[0.5f32, 0.5]);
        let y64 = Op::<f64>::forward(
            &Softmax::default(),
            &[arr1(&[0.0f64, 0.0]).into_dyn().view()],
        )
        .unwrap();
        assert_eq!(y64.as_slice().unwrap(), &[0.5f64, 0.5]);
    }

    #[test]
    fn normalises_along_the_chosen_axis() {
        let x = arr2(&[[0.0, 3f64.ln()], [0.0, 0.0]]).into_dyn();
        // Along axis 0, column 0 is [0, 0]: [1/2, 1/2]; column 1 is [ln 3, 0]:
        // exp gives [3, 1], s = 4, so [3/4, 1/4].
        let y = Op::<f64>::forward(&Softmax { axis: 0 }, &[x.view()]).unwrap();
        let expected = [[0.5, 0.75], [0.5, 0.25]];
        for (got, want) in y.iter().zip(expected.iter().flatten()) {
            assert!((got - want).abs() < 1e-15, "{y}");
        }
        // Along the last axis, row 0 is [0, ln 3]: [1/4, 3/4]; -2 names the same axis as 0.
        let y = Op::<f64>::forward(&Softmax::default(), &[x.view()]).unwrap();
        assert!((y[[0, 0]] - 0.25).abs() < 1e-15 && (y[[0, 1]] - 0.75).abs() < 1e-15);
        let y0 = Op::<f64>::forward(&Softmax { axis: -2 }, &[x.view()]).unwrap();
        let y1 = Op::<f64>::forward(&Softmax { axis: 0 }, &[x.view()]).unwrap();
        assert_eq!(y0, y1);
    }

    #[test]
    fn backward_by_hand() {
        let mut tape = Tape::<f64>::new();
        let x = tape.leaf(arr1(&[0.0, 0.0]).into_dyn(), true);
        let y = tape.apply(Softmax::default(), &[&x]).unwrap();
        let grads = tape
            .backward_from(&y, arr1(&[1.0, 0.0]).into_dyn())
            .unwrap();
        // y = [1/2, 1/2], dL/dy = [1, 0]: sum dL/dy y = 1/2, so
        // dL/dx = [1/2 (1 - 1/2), 1/2 (0 - 1/2)] = [1/4, -1/4].
        assert_eq!(grads.get(&x).unwrap().as_slice().unwrap(), &[0.25, -0.25]);
    }

    #[test]
    fn huge_logits_stay_finite() {
        let op = Softmax::default();
        // Without the max subtracted, exp(1e4) overflows and [1e4, 1e4] gives inf / inf.
        let y = Op::<f32>::forward(&op, &[arr1(&[1e4f32, 1e4]).into_dyn().view()]).unwrap();
        assert_eq!(y.as_slice().unwrap(), &[0.5, 0.5]);
        // exp(-2e4) underflows to 0 against exp(0) = 1.
        let y = Op::<f32>::forward(&op, &[arr1(&[1e4f32, -1e4]).into_dyn().view()]).unwrap();
        assert_eq!(y.as_slice().unwrap(), &[1.0, 0.0]);
    }

    #[test]
    fn axis_out_of_range_is_an_error() {
        let err = Op::<f32>::output_shape(&Softmax { axis: 2 }, &[&[3, 4]]).unwrap_err();
        assert_eq!(
            err.to_string(),
            "softmax: invalid hyperparameter: axis 2 is out of range for an input of rank 2 (shape [3, 4]); use an axis from -2 to 1"
        );
        assert!(matches!(err, Error::Hyperparameter { .. }));
        let err = Op::<f32>::output_shape(&Softmax { axis: -3 }, &[&[3, 4]]).unwrap_err();
        assert!(err.to_string().contains("axis -3 is out of range"), "{err}");
    }

    #[test]
    fn builds_from_hyperparameter_text() {
        let registry = crate::builtin_registry();
        let entry = registry.get("softmax").unwrap();
        let op = entry.build_f64("()").unwrap();
        assert_eq!(op.output_shape(&[&[2, 3]]).unwrap(), vec![2, 3]);
        assert!(entry.build_f64("(axis: -2)").is_ok());
        // PyTorch calls it `dim`; the message points to the right name.
        let err = entry.build_f64("(dim: 1)").unwrap_err().to_string();
        assert_eq!(
            err,
            "softmax: hyperparameters at line 1, column 2: Unexpected field named `dim` in `Softmax`, expected `axis` instead"
        );
    }
}
