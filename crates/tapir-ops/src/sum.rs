//! `sum`: the sum over some axes, or all, like `torch.sum(x, dim=axes, keepdim=keep_dims)`.
//!
//! - Output: `y[k] = sum over i in I(k) of x[i]`, where `I(k)` holds the input indices that
//!   agree with the output index `k` on every kept axis.
//! - Gradient: `dL/dx[i] = dL/dy[k(i)]`: the gradient broadcast back over the reduced axes.
//! - Shape: the input's shape without the reduced axes (`[]` when all are), or with each of
//!   them set to 1 under `keep_dims`.
//!
//! `mean` is this op divided by the count; both run the shared `Reduction` below.

use ndarray::{ArrayD, ArrayViewD, Axis};
use serde::Deserialize;
use tapir_core::{
    Arity, BackwardCx, CaseInput, Error, Float, Gen, GradcheckCase, Op, OpType, Result,
};

use crate::broadcast::sum_keeping_axes;
use crate::shape;

/// `sum`: the sum over `axes` (all by default).
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Sum {
    /// The axes to reduce, negative counting from the end; `None` reduces all of them.
    pub axes: Option<Vec<isize>>,
    /// Keep each reduced axis, with size 1, as PyTorch's `keepdim`.
    pub keep_dims: bool,
}

impl<F: Float> Op<F> for Sum {
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
        self.reduction().forward(&inputs[0], false)
    }

    fn backward(&self, cx: &BackwardCx<F>) -> Result<Vec<Option<ArrayD<F>>>> {
        self.reduction().backward(cx, false)
    }

    fn flops(&self, inputs: &[&[usize]]) -> u64 {
        shape::elementwise_flops(inputs, 1)
    }
}

impl Sum {
    fn reduction(&self) -> Reduction<'_> {
        Reduction {
            op: <Self as OpType>::NAME,
            axes: self.axes.as_deref(),
            keep_dims: self.keep_dims,
        }
    }
}

/// A sum over axes, optionally divided by the number of terms: `sum`, and `mean`.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Reduction<'a> {
    /// The op's name, for messages.
    pub op: &'static str,
    /// The axes reduced; `None` for all.
    pub axes: Option<&'a [isize]>,
    /// Whether reduced axes stay, with size 1.
    pub keep_dims: bool,
}

impl Reduction<'_> {
    /// The shape rule (see the module doc).
    pub fn output_shape(&self, inputs: &[&[usize]]) -> Result<Vec<usize>> {
        shape::expect_inputs(self.op, inputs, 1)?;
        let input = inputs[0];
        let reduced = shape::reduced_axes(self.op, self.axes, input)?;
        Ok(self.reduced_shape(input, &reduced))
    }

    fn reduced_shape(&self, input: &[usize], reduced: &[bool]) -> Vec<usize> {
        input
            .iter()
            .zip(reduced)
            .filter_map(|(&size, &flag)| match (flag, self.keep_dims) {
                (false, _) => Some(size),
                (true, true) => Some(1),
                (true, false) => None,
            })
            .collect()
    }

    /// The number of terms of each output element: the product of the reduced sizes.
    fn count(input: &[usize], reduced: &[bool]) -> usize {
        input
            .iter()
            .zip(reduced)
            .filter(|(_, flag)| **flag)
            .map(|(&size, _)| size)
            .product()
    }

    /// `y = sum over the reduced axes of x`, divided by their count if `divide`.
    pub fn forward<F: Float>(&self, x: &ArrayViewD<F>, divide: bool) -> Result<ArrayD<F>> {
        let reduced = shape::reduced_axes(self.op, self.axes, x.shape())?;
        let mut y = sum_keeping_axes(self.op, x.view(), &reduced)?;
        if divide {
            // As PyTorch: 0 / 0 = NaN when a reduced axis is empty.
            let n = F::from_usize(Self::count(x.shape(), &reduced));
            y.mapv_inplace(|s| s / n);
        }
        if !self.keep_dims {
            for axis in (0..reduced.len()).rev().filter(|&axis| reduced[axis]) {
                // `sum_keeping_axes` left the reduced axis with size 1: index 0 exists.
                y = y.index_axis_move(Axis(axis), 0);
            }
        }
        Ok(y)
    }

    /// `dL/dx = dL/dy` broadcast over the reduced axes, divided by their count if `divide`.
    pub fn backward<F: Float>(
        &self,
        cx: &BackwardCx<F>,
        divide: bool,
    ) -> Result<Vec<Option<ArrayD<F>>>> {
        if !cx.needs_grad(0) {
            return Ok(vec![None]);
        }
        let x_shape = cx.inputs[0].shape();
        let reduced = shape::reduced_axes(self.op, self.axes, x_shape)?;
        let out = self.reduced_shape(x_shape, &reduced);
        if cx.output_grad.shape() != out.as_slice() {
            return Err(Error::shape(
                self.op,
                format!(
                    "the output gradient has shape {:?}, the output {out:?}",
                    cx.output_grad.shape()
                ),
            ));
        }
        let mut dy = cx.output_grad.view();
        if !self.keep_dims {
            for axis in (0..reduced.len()).filter(|&axis| reduced[axis]) {
                // Ascending: every axis before `axis` is in place, so `axis <= dy.ndim()`.
                dy = dy.insert_axis(Axis(axis));
            }
        }
        let spread = dy.broadcast(x_shape).ok_or_else(|| {
            Error::shape(
                self.op,
                format!("cannot broadcast {:?} back to {x_shape:?}", dy.shape()),
            )
        })?;
        let grad = if divide {
            let n = F::from_usize(Self::count(x_shape, &reduced));
            spread.mapv(|g| g / n)
        } else {
            spread.to_owned()
        };
        Ok(vec![Some(grad)])
    }
}

impl OpType for Sum {
    const NAME: &'static str = "sum";

    fn gradcheck_cases() -> Vec<GradcheckCase> {
        // The sum is linear: any values do, uniform ones are the plainest.
        let case = |label: &str, axes: Option<Vec<isize>>, keep_dims| {
            GradcheckCase::new(
                label,
                Sum { axes, keep_dims },
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

    fn sum(axes: Option<&[isize]>, keep_dims: bool) -> Sum {
        Sum {
            axes: axes.map(<[isize]>::to_vec),
            keep_dims,
        }
    }

    fn shape_error(axes: &[isize], input: &[usize]) -> String {
        Op::<f64>::output_shape(&sum(Some(axes), false), &[input])
            .unwrap_err()
            .to_string()
    }

    #[test]
    fn forward_by_hand() {
        let x = arr2(&[[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]]).into_dyn();
        let forward = |op: Sum| Op::<f64>::forward(&op, &[x.view()]).unwrap();
        // All: 1+2+3+4+5+6 = 21, shape [].
        assert_eq!(forward(sum(None, false)), arr0(21.0).into_dyn());
        // Axis 0, the columns: 1+4, 2+5, 3+6.
        assert_eq!(
            forward(sum(Some(&[0]), false)),
            arr1(&[5.0, 7.0, 9.0]).into_dyn()
        );
        // Axis -1, the rows, kept: [[1+2+3], [4+5+6]].
        assert_eq!(
            forward(sum(Some(&[-1]), true)),
            arr2(&[[6.0], [15.0]]).into_dyn()
        );
        // Both, kept: [[21]].
        assert_eq!(
            forward(sum(Some(&[1, 0]), true)),
            arr2(&[[21.0]]).into_dyn()
        );
    }

    #[test]
    fn backward_spreads_the_gradient() {
        let mut tape = Tape::<f64>::new();
        let x = tape.leaf(ArrayD::zeros(vec![2, 3]), true);
        let y = tape.apply(sum(Some(&[1]), false), &[&x]).unwrap();
        let grads = tape
            .backward_from(&y, arr1(&[10.0, 20.0]).into_dyn())
            .unwrap();
        // Every element of row i fed y[i] once: dL/dx[i, j] = dL/dy[i].
        assert_eq!(
            grads.get(&x).unwrap(),
            &arr2(&[[10.0, 10.0, 10.0], [20.0, 20.0, 20.0]]).into_dyn()
        );
    }

    #[test]
    fn bad_axes_are_errors() {
        assert_eq!(
            shape_error(&[2], &[2, 3]),
            "sum: invalid hyperparameter: axis 2 is out of range for an input of rank 2 (shape [2, 3]); use an axis from -2 to 1"
        );
        assert_eq!(
            shape_error(&[1, -1], &[2, 3]),
            "sum: invalid hyperparameter: axis -1 (axis 1 of shape [2, 3]) is repeated in axes [1, -1]"
        );
        assert_eq!(
            shape_error(&[], &[2, 3]),
            "sum: invalid hyperparameter: axes is empty; leave it out to reduce over all axes"
        );
    }

    #[test]
    fn builds_from_hyperparameter_text() {
        let registry = crate::builtin_registry();
        let entry = registry.get("sum").unwrap();
        let all = entry.build_f64("()").unwrap();
        assert_eq!(all.output_shape(&[&[2, 3]]).unwrap(), Vec::<usize>::new());
        let kept = entry.build_f32("(axes: [0], keep_dims: true)").unwrap();
        assert_eq!(kept.output_shape(&[&[2, 3]]).unwrap(), vec![1, 3]);
        assert_eq!(
            entry.build_f64("(axes: 0)").unwrap_err().to_string(),
            "sum: hyperparameters at line 1, column 8: Expected opening `[`"
        );
    }
}
