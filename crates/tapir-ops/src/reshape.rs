//! `reshape`: the same elements, in the same row-major order, in another shape.
//!
//! - Output: `y = x` read row-major into `shape`, like `torch.reshape(x, shape)`. The batch
//!   axis is part of `shape`; one entry may be `-1`, inferred as
//!   `elements(x) / product(other entries)`.
//! - Gradient: `dL/dx = dL/dy` read row-major back into the shape of `x`.
//! - Shape: `shape` with its `-1` replaced; `elements(y) = elements(x)`.

use ndarray::{ArrayD, ArrayViewD};
use serde::Deserialize;
use tapir_core::{
    Arity, BackwardCx, CaseInput, Error, Float, Gen, GradcheckCase, Op, OpType, Result,
};

use crate::shape;

/// `reshape`: the input's elements in `shape`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Reshape {
    /// The output shape, batch axis included; each entry at least 1, or one `-1` to infer.
    pub shape: Vec<isize>,
}

impl<F: Float> Op<F> for Reshape {
    fn name(&self) -> &'static str {
        <Self as OpType>::NAME
    }

    fn arity(&self) -> Arity {
        Arity::Exactly(1)
    }

    fn output_shape(&self, inputs: &[&[usize]]) -> Result<Vec<usize>> {
        let op = <Self as OpType>::NAME;
        shape::expect_inputs(op, inputs, 1)?;
        let input = inputs[0];
        let mut inferred = None;
        let mut known = 1usize;
        let mut out = Vec::with_capacity(self.shape.len());
        for (axis, &size) in self.shape.iter().enumerate() {
            if size == -1 {
                if let Some(first) = inferred.replace(axis) {
                    return Err(Error::hyperparameter(
                        op,
                        format!(
                            "shape {:?} has -1 at axes {first} and {axis}; at most one size can be inferred",
                            self.shape
                        ),
                    ));
                }
                out.push(0); // replaced below
                continue;
            }
            let size = usize::try_from(size).ok().filter(|&s| s >= 1).ok_or_else(|| {
                Error::hyperparameter(
                    op,
                    format!(
                        "shape {:?} has {size} at axis {axis}; sizes must be at least 1, or -1 to infer one",
                        self.shape
                    ),
                )
            })?;
            known = known.checked_mul(size).ok_or_else(|| {
                Error::hyperparameter(
                    op,
                    format!(
                        "shape {:?} has more elements than fit in memory",
                        self.shape
                    ),
                )
            })?;
            out.push(size);
        }
        let count = shape::element_count(op, input)?;
        match inferred {
            // `known` is at least 1: every entry but the -1 is.
            Some(axis) if count % known == 0 => out[axis] = count / known,
            Some(_) => {
                return Err(Error::shape(
                    op,
                    format!(
                        "cannot reshape input {input:?} ({count} elements) to {:?}: {count} is not a multiple of {known}, the product of the other sizes",
                        self.shape
                    ),
                ));
            }
            None if known != count => {
                return Err(Error::shape(
                    op,
                    format!(
                        "cannot reshape input {input:?} ({count} elements) to {:?} ({known} elements); the element counts must match",
                        self.shape
                    ),
                ));
            }
            None => {}
        }
        Ok(out)
    }

    fn forward(&self, inputs: &[ArrayViewD<F>]) -> Result<ArrayD<F>> {
        let out = Op::<F>::output_shape(self, &[inputs[0].shape()])?;
        reshaped(<Self as OpType>::NAME, &inputs[0], &out)
    }

    fn backward(&self, cx: &BackwardCx<F>) -> Result<Vec<Option<ArrayD<F>>>> {
        if !cx.needs_grad(0) {
            return Ok(vec![None]);
        }
        let grad = reshaped(
            <Self as OpType>::NAME,
            &cx.output_grad,
            cx.inputs[0].shape(),
        )?;
        Ok(vec![Some(grad)])
    }
}

/// `x`'s elements, row-major, in `shape` (a copy); an error names `op` if the element counts
/// differ. Shared with the ops that are reshapes in disguise (`flatten`).
pub fn reshaped<F: Float>(
    op: &'static str,
    x: &ArrayViewD<F>,
    shape: &[usize],
) -> Result<ArrayD<F>> {
    x.to_shape(shape.to_vec())
        .map(|y| y.into_owned())
        .map_err(|e| {
            Error::shape(
                op,
                format!("cannot reshape {:?} to {shape:?}: {e}", x.shape()),
            )
        })
}

impl OpType for Reshape {
    const NAME: &'static str = "reshape";

    fn gradcheck_cases() -> Vec<GradcheckCase> {
        // Reshaping is linear: any values do, uniform ones are the plainest.
        vec![GradcheckCase::new(
            "2x3x4 to 4x-1",
            Reshape { shape: vec![4, -1] },
            vec![CaseInput::new("x", &[2, 3, 4], Gen::uniform())],
        )]
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::{arr1, arr2};
    use tapir_core::Tape;

    fn reshape(shape: &[isize]) -> Reshape {
        Reshape {
            shape: shape.to_vec(),
        }
    }

    fn shape_error(shape: &[isize], input: &[usize]) -> String {
        Op::<f64>::output_shape(&reshape(shape), &[input])
            .unwrap_err()
            .to_string()
    }

    #[test]
    fn forward_and_backward_by_hand() {
        let mut tape = Tape::<f64>::new();
        let x = tape.leaf(arr2(&[[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]]).into_dyn(), true);
        let y = tape.apply(reshape(&[-1, 2]), &[&x]).unwrap();
        // 6 elements / 2 = 3 rows, filled row-major: [[1, 2], [3, 4], [5, 6]].
        assert_eq!(
            y.value(),
            &arr2(&[[1.0, 2.0], [3.0, 4.0], [5.0, 6.0]]).into_dyn()
        );
        let dy = arr2(&[[10.0, 20.0], [30.0, 40.0], [50.0, 60.0]]).into_dyn();
        let grads = tape.backward_from(&y, dy).unwrap();
        // The gradient goes back element for element, in the same row-major order.
        assert_eq!(
            grads.get(&x).unwrap(),
            &arr2(&[[10.0, 20.0, 30.0], [40.0, 50.0, 60.0]]).into_dyn()
        );
    }

    #[test]
    fn flattens_to_one_axis_and_to_a_scalar() {
        let x = arr2(&[[1.0f32, 2.0], [3.0, 4.0]]).into_dyn();
        let y = Op::<f32>::forward(&reshape(&[-1]), &[x.view()]).unwrap();
        assert_eq!(y, arr1(&[1.0, 2.0, 3.0, 4.0]).into_dyn());
        // An empty shape holds one element: a one-element input becomes a scalar.
        assert_eq!(
            Op::<f32>::output_shape(&reshape(&[]), &[&[1, 1]]).unwrap(),
            Vec::<usize>::new()
        );
    }

    #[test]
    fn bad_shapes_are_errors() {
        assert_eq!(
            shape_error(&[4, 2], &[2, 3]),
            "reshape: cannot reshape input [2, 3] (6 elements) to [4, 2] (8 elements); the element counts must match"
        );
        assert_eq!(
            shape_error(&[4, -1], &[2, 3]),
            "reshape: cannot reshape input [2, 3] (6 elements) to [4, -1]: 6 is not a multiple of 4, the product of the other sizes"
        );
        assert_eq!(
            shape_error(&[-1, 3, -1], &[2, 3]),
            "reshape: invalid hyperparameter: shape [-1, 3, -1] has -1 at axes 0 and 2; at most one size can be inferred"
        );
        assert_eq!(
            shape_error(&[0, 6], &[2, 3]),
            "reshape: invalid hyperparameter: shape [0, 6] has 0 at axis 0; sizes must be at least 1, or -1 to infer one"
        );
        assert_eq!(
            shape_error(&[6, -2], &[2, 3]),
            "reshape: invalid hyperparameter: shape [6, -2] has -2 at axis 1; sizes must be at least 1, or -1 to infer one"
        );
        assert!(matches!(
            Op::<f64>::output_shape(&reshape(&[6]), &[&[6], &[6]]),
            Err(Error::Arity { .. })
        ));
    }

    #[test]
    fn builds_from_hyperparameter_text() {
        let registry = crate::builtin_registry();
        let entry = registry.get("reshape").unwrap();
        let op = entry.build_f64("(shape: [3, -1])").unwrap();
        assert_eq!(op.output_shape(&[&[2, 3]]).unwrap(), vec![3, 2]);
        assert_eq!(
            entry.build_f64("(shape: 6)").unwrap_err().to_string(),
            "reshape: hyperparameters at line 1, column 9: Expected opening `[`"
        );
        // A bad size parses, and the shape rule refuses it.
        let op = entry.build_f32("(shape: [0])").unwrap();
        assert!(op.output_shape(&[&[2]]).is_err());
    }
}
