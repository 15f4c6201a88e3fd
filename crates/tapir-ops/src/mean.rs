//! `mean`: the mean over some axes, or all, like `torch.mean(x, dim=axes, keepdim=keep_dims)`.
//!
//! - Output: `y[k] = (1/n) * sum over i in I(k) of x[i]`, where `I(k)` holds the input indices
//!   that agree with the output index `k` on every kept axis, and `n = |I(k)|` is the product
//!   of the reduced axes' sizes (`0/0 = NaN` when one is empty, as in PyTorch).
//! - Gradient: `dL/dx[i] = dL/dy[k(i)] / n`: the gradient broadcast back over the reduced
//!   axes, divided by the count.
//! - Shape: as `sum`: the input's shape without the reduced axes (`[]` when all are), or with
//!   each of them set to 1 under `keep_dims`.

use ndarray::{ArrayD, ArrayViewD};
use serde::Deserialize;
use tapir_core::{Arity, BackwardCx, CaseInput, Float, Gen, GradcheckCase, Op, OpType, Result};

use crate::shape;
use crate::sum::Reduction;

/// `mean`: the mean over `axes` (all by default).
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Mean {
    /// The axes to reduce, negative counting from the end; `None` reduces all of them.
    pub axes: Option<Vec<isize>>,
    /// Keep each reduced axis, with size 1, as PyTorch's `keepdim`.
    pub keep_dims: bool,
}

impl Mean {
    fn reduction(&self) -> Reduction<'_> {
        Reduction {
            op: <Self as OpType>::NAME,
            axes: self.axes.as_deref(),
            keep_dims: self.keep_dims,
        }
    }
}

impl<F: Float> Op<F> for Mean {
    fn name(&self) -> &'static str {
        <Self as OpType>::NAME
    }

    fn arity(&self) -> Arity {
        Arity::Exactly(1)
    }

    fn output_shape(&self, inputs: &[&[usize]]) -> Result<Vec<usize>> {
        self.reduction().output_shape(inputs)
    }

    fn forward(&self, inputs: &[ArrayViewD<F>]) -> Result<ArrayD<F>> {
        self.reduction().forward(&inputs[0], true)
    }

    fn backward(&self, cx: &BackwardCx<F>) -> Result<Vec<Option<ArrayD<F>>>> {
        self.reduction().backward(cx, true)
    }

    fn flops(&self, inputs: &[&[usize]]) -> u64 {
        // One add per input element, one division per output element.
        let divisions = Op::<F>::output_shape(self, inputs)
            .map_or(0, |output| shape::elementwise_flops(&[&output], 1));
        shape::elementwise_flops(inputs, 1).saturating_add(divisions)
    }
}

impl OpType for Mean {
    const NAME: &'static str = "mean";

    fn gradcheck_cases() -> Vec<GradcheckCase> {
        // The mean is linear: any values do, uniform ones are the plainest.
        let case = |label: &str, axes: Option<Vec<isize>>, keep_dims| {
            GradcheckCase::new(
                label,
                Mean { axes, keep_dims },
                vec![CaseInput::new("x", &[2, 3, 4], Gen::uniform())],
            )
        };
        vec![
            case("all axes", None, false),
            case("axis 1", Some(vec![1]), false),
            case("first and last axes kept", Some(vec![0, -1]), true),
        ]
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::{arr0, arr1, arr2};
    use tapir_core::Tape;

    fn mean(axes: Option<&[isize]>, keep_dims: bool) -> Mean {
        Mean {
            axes: axes.map(<[isize]>::to_vec),
            keep_dims,
        }
    }

    #[test]
    fn forward_by_hand() {
        let x = arr2(&[[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]]).into_dyn();
        let forward = |op: Mean| Op::<f64>::forward(&op, &[x.view()]).unwrap();
        // All: 21 / 6 = 3.5.
        assert_eq!(forward(mean(None, false)), arr0(3.5).into_dyn());
        // Axis 0, the columns: (1+4)/2, (2+5)/2, (3+6)/2.
        assert_eq!(
            forward(mean(Some(&[0]), false)),
            arr1(&[2.5, 3.5, 4.5]).into_dyn()
        );
        // Axis 1, the rows, kept: [[6/3], [15/3]].
        assert_eq!(
            forward(mean(Some(&[1]), true)),
            arr2(&[[2.0], [5.0]]).into_dyn()
        );
    }

    #[test]
    fn backward_divides_by_the_count() {
        let mut tape = Tape::<f64>::new();
        let x = tape.leaf(ArrayD::zeros(vec![2, 4]), true);
        let y = tape.apply(mean(Some(&[-1]), false), &[&x]).unwrap();
        let grads = tape
            .backward_from(&y, arr1(&[4.0, 8.0]).into_dyn())
            .unwrap();
        // Each row's mean has 4 terms: dL/dx[i, j] = dL/dy[i] / 4 = 1, 2.
        assert_eq!(
            grads.get(&x).unwrap(),
            &arr2(&[[1.0, 1.0, 1.0, 1.0], [2.0, 2.0, 2.0, 2.0]]).into_dyn()
        );
    }

    #[test]
    fn bad_axes_are_errors() {
        let err = Op::<f32>::output_shape(&mean(Some(&[-3]), false), &[&[2, 3]]).unwrap_err();
        assert_eq!(
            err.to_string(),
            "mean: invalid hyperparameter: axis -3 is out of range for an input of rank 2 (shape [2, 3]); use an axis from -2 to 1"
        );
        let err = Op::<f32>::output_shape(&mean(Some(&[0, 0]), true), &[&[2, 3]]).unwrap_err();
        assert_eq!(
            err.to_string(),
            "mean: invalid hyperparameter: axis 0 (axis 0 of shape [2, 3]) is repeated in axes [0, 0]"
        );
    }

    #[test]
    fn an_empty_axis_gives_nan_as_in_pytorch() {
        let x = ArrayD::<f32>::zeros(vec![2, 0]);
        let y = Op::<f32>::forward(&mean(Some(&[1]), false), &[x.view()]).unwrap();
        assert_eq!(y.shape(), &[2]);
        assert!(y.iter().all(|v| v.is_nan()));
    }

    #[test]
    fn builds_from_hyperparameter_text() {
        let registry = crate::builtin_registry();
        let entry = registry.get("mean").unwrap();
        let op = entry.build_f64("(axes: Some([1, 2]))").unwrap();
        assert_eq!(op.output_shape(&[&[2, 3, 4]]).unwrap(), vec![2]);
        assert_eq!(
            entry.build_f64("(keep_dims: 1)").unwrap_err().to_string(),
            "mean: hyperparameters at line 1, column 13: Expected boolean"
        );
    }
}
