//! `matmul`: the matrix product of two inputs, plain or batched (PyTorch's `torch.mm` and
//! `torch.bmm`).
//!
//! - Output: `C = A B`, `C[i, j] = sum over p of A[i, p] B[p, j]`; batched, `C[s] = A[s] B[s]`
//!   for every batch index `s`.
//! - Gradients, from `dC = dL/dC`:
//!   - `dA = dC B^T`, the shape of `A`;
//!   - `dB = A^T dC`, the shape of `B`.
//! - Shape: `[m, k] x [k, n] -> [m, n]`, or `[b, m, k] x [b, k, n] -> [b, m, n]`. Both inputs
//!   have the same rank; batches are not broadcast.

use ndarray::{ArrayD, ArrayView3, ArrayViewD, ArrayViewMut3, Axis, Ix3};
use serde::Deserialize;
use tapir_core::{
    Arity, BackwardCx, CaseInput, Error, Float, Gen, GradcheckCase, Op, OpType, Result,
};

use crate::shape;

const NAME: &str = "matmul";

/// `matmul`: `A B` for matrices, or for two batches of them. No hyperparameters.
#[derive(Debug, Clone, Copy, Default, PartialEq, Deserialize)]
pub struct Matmul;

/// The sizes of one product: `b` batches of `[m, k] x [k, n]` (`b = 1` unbatched).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Dims {
    batch: usize,
    m: usize,
    k: usize,
    n: usize,
}

impl Matmul {
    fn dims(inputs: &[&[usize]]) -> Result<Dims> {
        shape::expect_inputs(NAME, inputs, 2)?;
        let (a, b) = (inputs[0], inputs[1]);
        let (batch, (m, k), (k2, n)) = match (a, b) {
            (&[m, k], &[k2, n]) => (1, (m, k), (k2, n)),
            (&[batch, m, k], &[batch2, k2, n]) => {
                if batch != batch2 {
                    return Err(Error::shape(
                        NAME,
                        format!(
                            "batch sizes differ: left {a:?} has {batch}, right {b:?} has {batch2}"
                        ),
                    ));
                }
                (batch, (m, k), (k2, n))
            }
            _ => {
                return Err(Error::shape(
                    NAME,
                    format!(
                        "inputs must both have rank 2 ([m, k] x [k, n]) or both rank 3 \
                         ([b, m, k] x [b, k, n]), got {a:?} and {b:?}"
                    ),
                ));
            }
        };
        if k != k2 {
            return Err(Error::shape(
                NAME,
                format!(
                    "inner dimensions differ: left {a:?} has {k} columns, right {b:?} has {k2} rows"
                ),
            ));
        }
        Ok(Dims { batch, m, k, n })
    }
}

impl<F: Float> Op<F> for Matmul {
    fn name(&self) -> &'static str {
        <Self as OpType>::NAME
    }

    fn arity(&self) -> Arity {
        Arity::Exactly(2)
    }

    fn output_shape(&self, inputs: &[&[usize]]) -> Result<Vec<usize>> {
        let Dims { batch, m, n, .. } = Self::dims(inputs)?;
        let output = if inputs[0].len() == 3 {
            vec![batch, m, n]
        } else {
            vec![m, n]
        };
        shape::allocatable(NAME, "output", &output)?;
        Ok(output)
    }

    fn forward(&self, inputs: &[ArrayViewD<F>]) -> Result<ArrayD<F>> {
        let shapes: Vec<&[usize]> = inputs.iter().map(|a| a.shape()).collect();
        let mut c = ArrayD::zeros(Op::<F>::output_shape(self, &shapes)?);
        // C = A B
        products(
            batched(&inputs[0])?,
            batched(&inputs[1])?,
            batched_mut(&mut c)?,
        );
        Ok(c)
    }

    fn backward(&self, cx: &BackwardCx<F>) -> Result<Vec<Option<ArrayD<F>>>> {
        let shapes: Vec<&[usize]> = cx.inputs.iter().map(|a| a.shape()).collect();
        let output = Op::<F>::output_shape(self, &shapes)?;
        if cx.output_grad.shape() != output.as_slice() {
            return Err(Error::shape(
                NAME,
                format!(
                    "output gradient has shape {:?}, the output has {output:?}",
                    cx.output_grad.shape()
                ),
            ));
        }
        let (a, b, dc) = (
            batched(&cx.inputs[0])?,
            batched(&cx.inputs[1])?,
            batched(&cx.output_grad)?,
        );
        let da = if cx.needs_grad(0) {
            // dA = dC B^T
            let mut da = ArrayD::zeros(cx.inputs[0].shape());
            products(dc, b.permuted_axes([0, 2, 1]), batched_mut(&mut da)?);
            Some(da)
        } else {
            None
        };
        let db = if cx.needs_grad(1) {
            // dB = A^T dC
            let mut db = ArrayD::zeros(cx.inputs[1].shape());
            products(a.permuted_axes([0, 2, 1]), dc, batched_mut(&mut db)?);
            Some(db)
        } else {
            None
        };
        Ok(vec![da, db])
    }

    fn flops(&self, inputs: &[&[usize]]) -> u64 {
        Self::dims(inputs).map_or(0, |Dims { batch, m, k, n }| {
            [batch, m, k, n]
                .iter()
                .fold(2u64, |acc, &d| acc.saturating_mul(d as u64))
        })
    }
}

/// `out[s] = a[s] b[s]` for every batch index `s`; the shapes were checked by the caller.
fn products<F: Float>(a: ArrayView3<'_, F>, b: ArrayView3<'_, F>, mut out: ArrayViewMut3<'_, F>) {
    for ((a, b), mut out) in a.outer_iter().zip(b.outer_iter()).zip(out.outer_iter_mut()) {
        tapir_core::gemm(F::one(), &a, &b, false, &mut out);
    }
}

/// A 2-D or 3-D array as a batch of matrices (a 2-D one is a batch of one).
fn batched<'a, F: Float>(array: &ArrayViewD<'a, F>) -> Result<ArrayView3<'a, F>> {
    let mut view = array.clone();
    if view.ndim() == 2 {
        view.insert_axis_inplace(Axis(0));
    }
    view.into_dimensionality::<Ix3>()
        .map_err(|_| rank_error(array.shape()))
}

/// [`batched`], writable.
fn batched_mut<F: Float>(array: &mut ArrayD<F>) -> Result<ArrayViewMut3<'_, F>> {
    let shape = array.shape().to_vec();
    let mut view = array.view_mut();
    if view.ndim() == 2 {
        view.insert_axis_inplace(Axis(0));
    }
    view.into_dimensionality::<Ix3>()
        .map_err(|_| rank_error(&shape))
}

fn rank_error(shape: &[usize]) -> Error {
    Error::shape(
        NAME,
        format!("expected an array of rank 2 or 3, got shape {shape:?}"),
    )
}

impl OpType for Matmul {
    const NAME: &'static str = NAME;

    fn gradcheck_cases() -> Vec<GradcheckCase> {
        // The product is bilinear, smooth everywhere: plain uniform inputs. Sizes all differ
        // (m != k != n), so a transposed gradient has the wrong shape instead of passing.
        let u = Gen::uniform();
        vec![
            GradcheckCase::new(
                "3x4 by 4x2",
                Matmul,
                vec![
                    CaseInput::new("a", &[3, 4], u),
                    CaseInput::new("b", &[4, 2], u),
                ],
            ),
            GradcheckCase::new(
                "batched 2x3x4 by 2x4x5",
                Matmul,
                vec![
                    CaseInput::new("a", &[2, 3, 4], u),
                    CaseInput::new("b", &[2, 4, 5], u),
                ],
            ),
        ]
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::{arr2, arr3};
    use tapir_core::Tape;

    fn shape_error(inputs: &[&[usize]]) -> String {
        Op::<f64>::output_shape(&Matmul, inputs)
            .unwrap_err()
            .to_string()
    }

    #[test]
    fn forward_and_backward_by_hand() {
        let mut tape = Tape::<f64>::new();
        let a = tape.leaf(arr2(&[[1.0, 2.0], [3.0, 4.0]]).into_dyn(), true);
        let b = tape.leaf(arr2(&[[5.0], [-1.0]]).into_dyn(), true);
        let c = tape.apply(Matmul, &[&a, &b]).unwrap();
        // [1*5 + 2*(-1), 3*5 + 4*(-1)] = [3, 11]
        assert_eq!(c.value(), &arr2(&[[3.0], [11.0]]).into_dyn());
        let grads = tape
            .backward_from(&c, arr2(&[[1.0], [2.0]]).into_dyn())
            .unwrap();
        // dA = dC B^T = [[1], [2]] [[5, -1]] = [[5, -1], [10, -2]]
        assert_eq!(
            grads.get(&a).unwrap(),
            &arr2(&[[5.0, -1.0], [10.0, -2.0]]).into_dyn()
        );
        // dB = A^T dC = [[1*1 + 3*2], [2*1 + 4*2]] = [[7], [10]]
        assert_eq!(grads.get(&b).unwrap(), &arr2(&[[7.0], [10.0]]).into_dyn());
    }

    #[test]
    fn batches_multiply_separately() {
        // Batch 0 multiplies by the identity, batch 1 by 2 times it.
        let a = arr3(&[[[1.0, 2.0]], [[3.0, 4.0]]]).into_dyn();
        let b = arr3(&[[[1.0, 0.0], [0.0, 1.0]], [[2.0, 0.0], [0.0, 2.0]]]).into_dyn();
        let c = Op::<f64>::forward(&Matmul, &[a.view(), b.view()]).unwrap();
        assert_eq!(c, arr3(&[[[1.0, 2.0]], [[6.0, 8.0]]]).into_dyn());
    }

    #[test]
    fn shape_rule_and_flops() {
        let rule = |inputs: &[&[usize]]| Op::<f32>::output_shape(&Matmul, inputs).unwrap();
        assert_eq!(rule(&[&[3, 4], &[4, 2]]), vec![3, 2]);
        assert_eq!(rule(&[&[5, 3, 4], &[5, 4, 2]]), vec![5, 3, 2]);
        assert_eq!(
            Op::<f32>::flops(&Matmul, &[&[5, 3, 4], &[5, 4, 2]]),
            2 * 5 * 3 * 4 * 2
        );
    }

    #[test]
    fn bad_shapes_are_errors_that_show_them() {
        assert_eq!(
            shape_error(&[&[3, 4], &[5, 2]]),
            "matmul: inner dimensions differ: left [3, 4] has 4 columns, right [5, 2] has 5 rows"
        );
        assert_eq!(
            shape_error(&[&[2, 3, 4], &[3, 4, 2]]),
            "matmul: batch sizes differ: left [2, 3, 4] has 2, right [3, 4, 2] has 3"
        );
        assert_eq!(
            shape_error(&[&[2, 3, 4], &[4, 2]]),
            "matmul: inputs must both have rank 2 ([m, k] x [k, n]) or both rank 3 \
             ([b, m, k] x [b, k, n]), got [2, 3, 4] and [4, 2]"
        );
        assert_eq!(
            shape_error(&[&[4], &[4]]),
            "matmul: inputs must both have rank 2 ([m, k] x [k, n]) or both rank 3 \
             ([b, m, k] x [b, k, n]), got [4] and [4]"
        );
        assert_eq!(shape_error(&[&[4, 4]]), "matmul: expects 2 inputs, got 1");
        // No elements to read, but an output too large to hold.
        assert!(shape_error(&[&[usize::MAX, 0], &[0, 2]]).contains("more elements than fit"));
    }

    #[test]
    fn a_direct_forward_with_bad_shapes_is_an_error_not_a_panic() {
        let a = ArrayD::<f64>::zeros(vec![3, 4]);
        let b = ArrayD::<f64>::zeros(vec![5, 2]);
        assert!(Op::<f64>::forward(&Matmul, &[a.view(), b.view()]).is_err());
    }

    #[test]
    fn builds_from_hyperparameter_text() {
        let registry = crate::builtin_registry();
        let entry = registry.get("matmul").unwrap();
        assert_eq!(entry.build_f32("()").unwrap().name(), "matmul");
        assert!(entry.build_f32("(transpose: true)").is_err());
    }
}
