//! `concat`: inputs joined end to end along one axis, like `torch.cat(xs, dim=axis)`.
//!
//! - Output: for inputs `x_0, ..., x_(n-1)` with sizes `d_i` along `axis`, `y` is `x_0`, then
//!   `x_1`, ... along `axis`: `y[.., o_i + j, ..] = x_i[.., j, ..]` with offsets
//!   `o_i = d_0 + ... + d_(i-1)`.
//! - Gradients: `dL/dx_i = dL/dy[.., o_i .. o_i + d_i, ..]`, the slice `x_i` filled.
//! - Shape: the inputs' common shape, with `d_0 + ... + d_(n-1)` along `axis`; every other
//!   axis must agree. A negative `axis` counts from the end.

use ndarray::{ArrayD, ArrayViewD, Axis};
use rayon::prelude::*;
use serde::Deserialize;
use tapir_core::{
    Arity, BackwardCx, CaseInput, Error, Float, Gen, GradcheckCase, Op, OpType, Result, buffers,
};

use crate::{elementwise, shape};

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
        let shapes: Vec<&[usize]> = inputs.iter().map(|x| x.shape()).collect();
        let shape = Op::<F>::output_shape(self, &shapes)?;
        let axis = self.axis(&shape)?;
        let blocks = Blocks::new(&shape, axis);
        let inputs: Vec<_> = inputs.iter().map(|x| x.as_standard_layout()).collect();
        let parts = inputs
            .iter()
            .map(|x| {
                let part = elementwise::row_major(<Self as OpType>::NAME, x.as_slice())?;
                Ok((part, x.len_of(Axis(axis)) * blocks.inner))
            })
            .collect::<Result<Vec<(&[F], usize)>>>()?;
        // Row `o` of the output is block `o` of each input, one after another.
        let mut y = buffers::for_overwrite::<F>(blocks.outer * blocks.row);
        blocks.each_row(&mut y, blocks.row, |o, row| {
            let mut at = 0;
            for &(part, block) in &parts {
                row[at..at + block].copy_from_slice(&part[o * block..(o + 1) * block]);
                at += block;
            }
        });
        elementwise::shaped(<Self as OpType>::NAME, &shape, y)
    }

    fn backward(&self, cx: &BackwardCx<F>) -> Result<Vec<Option<ArrayD<F>>>> {
        let op = <Self as OpType>::NAME;
        let shapes: Vec<&[usize]> = cx.inputs.iter().map(|x| x.shape()).collect();
        let shape = Op::<F>::output_shape(self, &shapes)?;
        if cx.output_grad.shape() != shape.as_slice() {
            return Err(Error::shape(
                op,
                format!(
                    "the output gradient has shape {:?}, the inputs make {shape:?}",
                    cx.output_grad.shape()
                ),
            ));
        }
        let dy = cx.output_grad.as_standard_layout();
        let axis = self.axis(&shape)?;
        let blocks = Blocks::new(&shape, axis);
        let dy_all = elementwise::row_major(op, dy.as_slice())?;
        let mut offset = 0; // o_i
        let mut grads = Vec::with_capacity(cx.inputs.len());
        for (i, x) in cx.inputs.iter().enumerate() {
            let len = x.len_of(Axis(axis)); // d_i; the shape rule checked the rank
            if cx.needs_grad(i) {
                // Block `o` of input i's gradient is row `o` of dL/dy from offset o_i on.
                let (start, block) = (offset * blocks.inner, len * blocks.inner);
                let mut dx = buffers::for_overwrite::<F>(blocks.outer * block);
                blocks.each_row(&mut dx, block, |o, dx| {
                    let from = o * blocks.row + start;
                    dx.copy_from_slice(&dy_all[from..from + block]);
                });
                grads.push(Some(elementwise::shaped(op, x.shape(), dx)?));
            } else {
                grads.push(None);
            }
            offset += len;
        }
        Ok(grads)
    }
}

/// The output (or its gradient) in standard layout as `outer` rows of `row` elements:
/// `outer` is the product of the sizes before the axis, `inner` of those after it, and
/// a row holds each input's block of `d_i * inner` elements.
struct Blocks {
    outer: usize,
    inner: usize,
    row: usize,
}

impl Blocks {
    fn new(shape: &[usize], axis: usize) -> Self {
        let inner: usize = shape[axis + 1..].iter().product();
        Blocks {
            outer: shape[..axis].iter().product(),
            inner,
            row: shape[axis] * inner,
        }
    }

    /// Calls `fill(o, row)` on each of the `outer` rows of `len` elements of `data`, split
    /// across rayon's threads when there is enough to copy.
    fn each_row<F: Float>(
        &self,
        data: &mut [F],
        len: usize,
        fill: impl Fn(usize, &mut [F]) + Sync,
    ) {
        if data.is_empty() {
            return; // a size of 0 somewhere: nothing to copy (and no rows to split into)
        }
        if data.len() > elementwise::CHUNK {
            data.par_chunks_mut(len)
                .with_min_len(elementwise::CHUNK.div_ceil(len))
                .enumerate()
                .for_each(|(o, row)| fill(o, row));
        } else {
            data.chunks_mut(len)
                .enumerate()
                .for_each(|(o, row)| fill(o, row));
        }
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
    fn large_inputs_on_any_axis_and_thread_count_match_slicing() {
        // Three inputs of [3, d_i, 5, 4104] (above one parallel chunk per row on axis 1),
        // the second stored transposed, one empty; on every axis the output must be
        // ndarray's own concatenation and each gradient the slice of dL/dy.
        for axis in 0..4 {
            let shape = |d: usize| {
                let mut shape = vec![3, 2, 5, 4104];
                shape[axis] = d;
                shape
            };
            let numbered = |d: usize, from: usize| {
                let shape = shape(d);
                let len: usize = shape.iter().product();
                ArrayD::from_shape_vec(shape, (from..from + len).map(|v| v as f32).collect())
                    .unwrap()
            };
            let a = numbered(2, 0);
            // b's values, stored with its axes reversed: a view that is not row-major.
            let b_stored = numbered(3, 1 << 20)
                .reversed_axes()
                .as_standard_layout()
                .into_owned();
            let empty = numbered(0, 0);
            let inputs = [a.view(), b_stored.view().reversed_axes(), empty.view()];
            assert!(!inputs[1].is_standard_layout());
            let expected = ndarray::concatenate(Axis(axis), &inputs).unwrap();
            let dy = expected.mapv(|v| -v);
            for threads in [1, 2] {
                let pool = rayon::ThreadPoolBuilder::new()
                    .num_threads(threads)
                    .build()
                    .unwrap();
                let concat = Concat {
                    axis: axis as isize,
                };
                let y = pool
                    .install(|| Op::<f32>::forward(&concat, &inputs))
                    .unwrap();
                assert_eq!(y, expected, "axis {axis}, {threads} threads");
                let needs_grad = [true, true, true];
                let cx = BackwardCx {
                    inputs: &inputs,
                    output: y.view(),
                    output_grad: dy.view(),
                    needs_grad: &needs_grad,
                };
                let grads = pool.install(|| Op::<f32>::backward(&concat, &cx)).unwrap();
                for (grad, x) in grads.iter().zip(&inputs) {
                    assert_eq!(grad.as_ref().unwrap(), &x.mapv(|v| -v), "axis {axis}");
                }
            }
        }
    }

    #[test]
    fn a_misshaped_output_gradient_is_an_error_not_a_panic() {
        let (a, b) = (ArrayD::<f32>::zeros(vec![2, 1]), ArrayD::zeros(vec![2, 2]));
        for wrong in [vec![2, 2], vec![2, 3, 1], vec![3, 3]] {
            let dy = ArrayD::<f32>::zeros(wrong.clone());
            let cx = BackwardCx {
                inputs: &[a.view(), b.view()],
                output: dy.view(),
                output_grad: dy.view(),
                needs_grad: &[true, true],
            };
            let err = Op::<f32>::backward(&Concat::default(), &cx).unwrap_err();
            assert_eq!(
                err.to_string(),
                format!("concat: the output gradient has shape {wrong:?}, the inputs make [2, 3]")
            );
        }
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
