//! `concat`: inputs joined end to end along one axis, like `torch.cat(xs, dim=axis)`.
//!
//! - Output: for inputs `x_0, ..., x_(n-1)` with sizes `d_i` along `axis`, `y` is `x_0`, then
//!   `x_1`, ... along `axis`: `y[.., o_i + j, ..] = x_i[.., j, ..]` with offsets
//!   `o_i = d_0 + ... + d_(i-1)`.
//! - Gradients: `dL/dx_i = dL/dy[.., o_i .. o_i + d_i, ..]`, the slice `x_i` filled.
//! - Shape: the inputs' common shape, with `d_0 + ... + d_(n-1)` along `axis`; every other
//!   axis must agree. A negative `axis` counts from the end.

use ndarray::{ArrayD, ArrayViewD, Axis, Slice};
use serde::Deserialize;
use tapir_core::{
    Arity, BackwardCx, CaseInput, Error, Float, Gen, GradcheckCase, Op, OpType, Result,
};

use crate::shape;

/// `concat`: the inputs, joined along `axis`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Concat {
    /// The axis to join along; negative counts from the end. Defaults to 1, the channels of
    /// an NCHW batch (PyTorch's `torch.cat` defaults to 0, the batch axis).
    #[serde(default = "one")]
    pub axis: isize,
}

fn one() -> isize {
    1
}

impl Default for Concat {
    fn default() -> Self {
        Concat { axis: one() }
    }
}

impl Concat {
    /// The axis to join along, resolved against the first input's shape.
    fn axis(&self, first: &[usize]) -> Result<usize> {
        shape::resolve_axis(<Self as OpType>::NAME, self.axis, first)
    }
}

impl<F: Float> Op<F> for Concat {
    fn name(&self) -> &'static str {
        <Self as OpType>::NAME
    }

    fn arity(&self) -> Arity {
        Arity::AtLeast(1)
    }

    fn output_shape(&self, inputs: &[&[usize]]) -> Result<Vec<usize>> {
        let op = <Self as OpType>::NAME;
        Arity::AtLeast(1).check(op, inputs.len())?;
        let first = inputs[0];
        let axis = self.axis(first)?;
        let mut out = first.to_vec();
        for (index, &input) in inputs.iter().enumerate().skip(1) {
            if input.len() != first.len() {
                return Err(Error::shape(
                    op,
                    format!(
                        "input {index} has rank {}, input 0 has rank {} (shapes {input:?} and {first:?}); all inputs need the same rank",
                        input.len(),
                        first.len()
                    ),
                ));
            }
            for (other, (&size, &expected)) in input.iter().zip(first).enumerate() {
                if other != axis && size != expected {
                    return Err(Error::shape(
                        op,
                        format!(
                            "input {index} has size {size} on axis {other}, input 0 has {expected} (shapes {input:?} and {first:?}); inputs may differ only on the concat axis {axis}"
                        ),
                    ));
                }
            }
            out[axis] = out[axis]
                .checked_add(input[axis])
                .ok_or_else(|| Error::shape(op, format!("axis {axis}: the sizes overflow")))?;
        }
        Ok(out)
    }

    fn forward(&self, inputs: &[ArrayViewD<F>]) -> Result<ArrayD<F>> {
        let op = <Self as OpType>::NAME;
        let axis = self.axis(inputs[0].shape())?;
        ndarray::concatenate(Axis(axis), inputs)
            .map_err(|e| Error::shape(op, format!("cannot concatenate along axis {axis}: {e}")))
    }

    fn backward(&self, cx: &BackwardCx<F>) -> Result<Vec<Option<ArrayD<F>>>> {
        let op = <Self as OpType>::NAME;
        let axis = self.axis(cx.inputs[0].shape())?;
        let dy = &cx.output_grad;
        let total = dy.len_of(Axis(axis));
        let mut offset = 0; // o_i
        let mut grads = Vec::with_capacity(cx.inputs.len());
        for (i, x) in cx.inputs.iter().enumerate() {
            let len = x.len_of(Axis(axis)); // d_i
            let end = offset + len;
            if end > total {
                return Err(Error::shape(
                    op,
                    format!(
                        "the output gradient has {total} entries on axis {axis}, the inputs {end} or more"
                    ),
                ));
            }
            grads.push(cx.needs_grad(i).then(|| {
                dy.slice_axis(Axis(axis), Slice::from(offset..end))
                    .to_owned()
            }));
            offset = end;
        }
        Ok(grads)
    }
}

impl OpType for Concat {
    const NAME: &'static str = "concat";

    fn gradcheck_cases() -> Vec<GradcheckCase> {
        // Concatenation is linear: any values do, uniform ones are the plainest.
        let u = Gen::uniform();
        let inputs = |shapes: [&[usize]; 3]| {
            ["x0", "x1", "x2"]
                .into_iter()
                .zip(shapes)
                .map(|(name, shape)| CaseInput::new(name, shape, u))
                .collect()
        };
        vec![
            GradcheckCase::new(
                "3 inputs on axis 1",
                Concat { axis: 1 },
                inputs([&[2, 1, 3], &[2, 2, 3], &[2, 3, 3]]),
            ),
            GradcheckCase::new(
                "3 inputs on axis 0",
                Concat { axis: 0 },
                inputs([&[1, 3], &[2, 3], &[3, 3]]),
            ),
        ]
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::{arr1, arr2};
    use tapir_core::Tape;

    fn shape_error(axis: isize, inputs: &[&[usize]]) -> String {
        Op::<f64>::output_shape(&Concat { axis }, inputs)
            .unwrap_err()
            .to_string()
    }

    #[test]
    fn forward_and_backward_by_hand() {
        let mut tape = Tape::<f64>::new();
        let a = tape.leaf(arr2(&[[1.0], [2.0]]).into_dyn(), true); // [2, 1]
        let b = tape.leaf(arr2(&[[3.0, 4.0], [5.0, 6.0]]).into_dyn(), true); // [2, 2]
        let y = tape.apply(Concat::default(), &[&a, &b]).unwrap();
        // Along axis 1, each row is a's row then b's: [1 | 3, 4], [2 | 5, 6].
        assert_eq!(
            y.value(),
            &arr2(&[[1.0, 3.0, 4.0], [2.0, 5.0, 6.0]]).into_dyn()
        );
        let dy = arr2(&[[10.0, 20.0, 30.0], [40.0, 50.0, 60.0]]).into_dyn();
        let grads = tape.backward_from(&y, dy).unwrap();
        // a gets column 0 of dL/dy (offset 0, size 1), b columns 1..3 (offset 1, size 2).
        assert_eq!(grads.get(&a).unwrap(), &arr2(&[[10.0], [40.0]]).into_dyn());
        assert_eq!(
            grads.get(&b).unwrap(),
            &arr2(&[[20.0, 30.0], [50.0, 60.0]]).into_dyn()
        );
    }

    #[test]
    fn negative_axis_and_one_input() {
        let a = arr1(&[1.0f32, 2.0]).into_dyn();
        let b = arr1(&[3.0f32]).into_dyn();
        // Axis -1 of a vector is axis 0: [1, 2] then [3].
        let y = Op::<f32>::forward(&Concat { axis: -1 }, &[a.view(), b.view()]).unwrap();
        assert_eq!(y, arr1(&[1.0, 2.0, 3.0]).into_dyn());
        // One input is a copy.
        assert_eq!(
            Op::<f32>::output_shape(&Concat { axis: 0 }, &[&[4]]).unwrap(),
            vec![4]
        );
    }

    #[test]
    fn bad_shapes_and_axes_are_errors() {
        assert_eq!(
            shape_error(1, &[&[2, 3], &[2, 3, 1]]),
            "concat: input 1 has rank 3, input 0 has rank 2 (shapes [2, 3, 1] and [2, 3]); all inputs need the same rank"
        );
        assert_eq!(
            shape_error(1, &[&[2, 3, 4], &[2, 1, 4], &[2, 5, 5]]),
            "concat: input 2 has size 5 on axis 2, input 0 has 4 (shapes [2, 5, 5] and [2, 3, 4]); inputs may differ only on the concat axis 1"
        );
        assert_eq!(
            shape_error(2, &[&[2, 3], &[2, 3]]),
            "concat: invalid hyperparameter: axis 2 is out of range for an input of rank 2 (shape [2, 3]); use an axis from -2 to 1"
        );
        assert_eq!(
            shape_error(-3, &[&[2, 3]]),
            "concat: invalid hyperparameter: axis -3 is out of range for an input of rank 2 (shape [2, 3]); use an axis from -2 to 1"
        );
        assert_eq!(
            shape_error(0, &[&[]]),
            "concat: invalid hyperparameter: axis 0 is out of range: the input has rank 0 (shape []) and no axes"
        );
        assert_eq!(
            shape_error(0, &[]),
            "concat: expects at least 1 inputs, got 0"
        );
    }

    #[test]
    fn builds_from_hyperparameter_text() {
        let registry = crate::builtin_registry();
        let entry = registry.get("concat").unwrap();
        let default = entry.build_f64("()").unwrap();
        assert_eq!(
            default.output_shape(&[&[2, 3], &[2, 4]]).unwrap(),
            vec![2, 7]
        );
        let axis_0 = entry.build_f32("(axis: 0)").unwrap();
        assert_eq!(
            axis_0.output_shape(&[&[2, 3], &[4, 3]]).unwrap(),
            vec![6, 3]
        );
        assert_eq!(
            entry
                .build_f64("(axis: 1, dim: 0)")
                .unwrap_err()
                .to_string(),
            "concat: hyperparameters at line 1, column 11: Unexpected field named `dim` in `Concat`, expected `axis` instead"
        );
    }
}
