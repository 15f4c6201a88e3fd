//! `log_softmax`: the logarithm of [`softmax`](crate::softmax), computed directly.
//!
//! For each lane `x` along `axis` (every other index held fixed), with `m = max_j x_j`:
//!
//! - Output: `y_i = x_i - m - ln s`, `s = sum_j exp(x_j - m)`. Every exponent is at most 0
//!   and `s >= 1`, so logits of 1e4 give finite results, and no probability is rounded to 0
//!   before its logarithm is taken (`ln(softmax(x))` would give `-inf` there).
//! - Gradient: `dL/dx_i = dL/dy_i - p_i sum_j dL/dy_j`, with `p_i = exp(y_i)` the softmax.
//! - Shape: `y` has the shape of `x`. `axis` counts from the end when negative, as PyTorch's
//!   `dim` does. A scalar has no axis to normalise along: an error.

use ndarray::{ArrayD, ArrayViewD, Axis, Zip};
use serde::Deserialize;
use tapir_core::{Arity, BackwardCx, CaseInput, Float, Gen, GradcheckCase, Op, OpType, Result};

use crate::shape;

/// `log_softmax` along `axis`, as `torch.log_softmax(x, dim=axis)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LogSoftmax {
    /// The axis to normalise along; negative counts from the end. Default `-1`, the last.
    #[serde(default = "last_axis")]
    pub axis: isize,
}

fn last_axis() -> isize {
    -1
}

impl Default for LogSoftmax {
    fn default() -> Self {
        LogSoftmax { axis: last_axis() }
    }
}

/// Floating-point operations per element: the max, a subtraction, the exponential (counted
/// as one), its share of the sum and the final subtraction.
const FLOPS_PER_ELEMENT: u64 = 5;

impl<F: Float> Op<F> for LogSoftmax {
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
            let ln_s = lane.fold(F::zero(), |s, &x| s + (x - m).exp()).ln();
            lane.mapv_inplace(|x| x - m - ln_s);
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
                let total = dx.sum();
                Zip::from(&mut dx)
                    .and(&y)
                    .for_each(|dx, &y| *dx -= y.exp() * total);
            });
        Ok(vec![Some(dx)])
    }

    fn flops(&self, inputs: &[&[usize]]) -> u64 {
        shape::elementwise_flops(inputs, FLOPS_PER_ELEMENT)
    }
}

impl OpType for LogSoftmax {
    const NAME: &'static str = "log_softmax";

    fn gradcheck_cases() -> Vec<GradcheckCase> {
        // Log-softmax is smooth everywhere, so any values do; [-2, 2) spreads the
        // probabilities (about 0.02 to 0.9 over 4 classes) so that no term is negligible.
        let logits = Gen::Uniform {
            low: -2.0,
            high: 2.0,
        };
        let on = |axis| LogSoftmax { axis };
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
    fn forward_by_hand() {
        // Row [0, ln 3]: m = ln 3, s = exp(-ln 3) + exp(0) = 4/3, so
        // y = [0 - ln 3 - ln(4/3), 0 - ln(4/3)] = [ln(1/4), ln(3/4)].
        // Row [0, 0]: m = 0, s = 2, y = [-ln 2, -ln 2].
        let x = arr2(&[[0.0, 3f64.ln()], [0.0, 0.0]]).into_dyn();
        let y = Op::<f64>::forward(&LogSoftmax::default(), &[x.view()]).unwrap();
        let expected = [0.25f64.ln(), 0.75f64.ln(), -(2f64.ln()), -(2f64.ln())];
        for (got, want) in y.iter().zip(expected) {
            assert!((got - want).abs() < 1e-15, "{y}");
        }
        // Along axis 0, column 1 is [ln 3, 0]: [ln(3/4), ln(1/4)].
        let y = Op::<f64>::forward(&LogSoftmax { axis: 0 }, &[x.view()]).unwrap();
        assert!((y[[0, 1]] - 0.75f64.ln()).abs() < 1e-15);
        assert!((y[[1, 1]] - 0.25f64.ln()).abs() < 1e-15);
    }

    #[test]
    fn backward_by_hand() {
        let mut tape = Tape::<f64>::new();
        let x = tape.leaf(arr1(&[0.0, 0.0]).into_dyn(), true);
        let y = tape.apply(LogSoftmax::default(), &[&x]).unwrap();
        let grads = tape
            .backward_from(&y, arr1(&[1.0, 0.0]).into_dyn())
            .unwrap();
        // p = exp(-ln 2) = [1/2, 1/2], sum dL/dy = 1, so dL/dx = [1 - 1/2, 0 - 1/2].
        let dx = grads.get(&x).unwrap();
        assert!(
            (dx[[0]] - 0.5).abs() < 1e-15 && (dx[[1]] + 0.5).abs() < 1e-15,
            "{dx}"
        );
    }

    #[test]
    fn huge_logits_stay_finite() {
        let op = LogSoftmax::default();
        // m = 1e4, s = exp(0) + exp(-2e4) = 1: y = [0, -2e4], exactly.
        let y = Op::<f32>::forward(&op, &[arr1(&[1e4f32, -1e4]).into_dyn().view()]).unwrap();
        assert_eq!(y.as_slice().unwrap(), &[0.0, -2e4]);
        // m = 1e4, s = 2: y = [-ln 2, -ln 2].
        let y = Op::<f64>::forward(&op, &[arr1(&[1e4f64, 1e4]).into_dyn().view()]).unwrap();
        assert_eq!(y.as_slice().unwrap(), &[-(2f64.ln()), -(2f64.ln())]);
    }

    #[test]
    fn axis_out_of_range_is_an_error() {
        let err = Op::<f64>::output_shape(&LogSoftmax { axis: 3 }, &[&[2, 3, 4]]).unwrap_err();
        assert_eq!(
            err.to_string(),
            "log_softmax: invalid hyperparameter: axis 3 is out of range for an input of rank 3 (shape [2, 3, 4]); use an axis from -3 to 2"
        );
        assert!(matches!(err, Error::Hyperparameter { .. }));
    }

    #[test]
    fn builds_from_hyperparameter_text() {
        let registry = crate::builtin_registry();
        let entry = registry.get("log_softmax").unwrap();
        let op = entry.build_f32("(axis: 0)").unwrap();
        assert_eq!(op.output_shape(&[&[2, 3]]).unwrap(), vec![2, 3]);
        let err = entry.build_f32("(axis: \"last\")").unwrap_err().to_string();
        assert_eq!(
            err,
            "log_softmax: hyperparameters at line 1, column 8: Expected integer"
        );
    }
}
