//! What the elementwise ops share: a function applied to every element (forward), or to
//! every pair of output gradient and saved value (backward), on row-major slices: one loop
//! the compiler vectorises for small arrays, split across rayon's threads for large ones.
//! Results are written into memory from [`buffers`], which the tape gives back when they
//! die: a large result reuses the last step's memory instead of faulting in fresh pages.
//!
//! Each element is computed alone, so the split changes no bit of the result.
//!
//! `concat`, which copies slices the same way, uses [`CHUNK`], [`row_major`] and [`shaped`]
//! too.

use ndarray::{ArrayD, ArrayViewD, IxDyn};
use rayon::prelude::*;
use tapir_core::{Error, Float, Result, buffers};

/// Elements per parallel task: below this, handing work to another thread costs more than
/// it saves (and gradient checks make thousands of tiny calls).
pub(crate) const CHUNK: usize = 1 << 15;

/// `f(x)` for every element of `x`, in `x`'s shape.
pub(crate) fn map<F: Float>(
    op: &'static str,
    x: &ArrayViewD<F>,
    f: impl Fn(F) -> F + Sync,
) -> Result<ArrayD<F>> {
    let x_std = x.as_standard_layout();
    let x_slice = row_major(op, x_std.as_slice())?;
    // Every element is written: no need to zero the memory first.
    let mut y = buffers::for_overwrite::<F>(x_slice.len());
    let apply = |y: &mut [F], x: &[F]| {
        for (y, &x) in y.iter_mut().zip(x) {
            *y = f(x);
        }
    };
    if x_slice.len() > CHUNK {
        y.par_chunks_mut(CHUNK)
            .zip(x_slice.par_chunks(CHUNK))
            .for_each(|(y, x)| apply(y, x));
    } else {
        apply(&mut y, x_slice);
    }
    shaped(op, x.shape(), y)
}

/// `f(dy, v)` for every element of the output gradient `dy` and the same element of `v`
/// (the op's input or output, whichever its derivative reads), in `dy`'s shape.
pub(crate) fn map_grad<F: Float>(
    op: &'static str,
    dy: &ArrayViewD<F>,
    v: &ArrayViewD<F>,
    f: impl Fn(F, F) -> F + Sync,
) -> Result<ArrayD<F>> {
    if dy.shape() != v.shape() {
        return Err(Error::shape(
            op,
            format!(
                "the output gradient has shape {:?}, the value it pairs with {:?}",
                dy.shape(),
                v.shape()
            ),
        ));
    }
    let (dy_std, v_std) = (dy.as_standard_layout(), v.as_standard_layout());
    let (dy_slice, v_slice) = (
        row_major(op, dy_std.as_slice())?,
        row_major(op, v_std.as_slice())?,
    );
    let mut dx = buffers::for_overwrite::<F>(dy_slice.len());
    let apply = |dx: &mut [F], dy: &[F], v: &[F]| {
        for ((dx, &dy), &v) in dx.iter_mut().zip(dy).zip(v) {
            *dx = f(dy, v);
        }
    };
    if dy_slice.len() > CHUNK {
        dx.par_chunks_mut(CHUNK)
            .zip(dy_slice.par_chunks(CHUNK))
            .zip(v_slice.par_chunks(CHUNK))
            .for_each(|((dx, dy), v)| apply(dx, dy, v));
    } else {
        apply(&mut dx, dy_slice, v_slice);
    }
    shaped(op, dy.shape(), dx)
}

/// The elements of a standard-layout array, which always has them as one slice.
pub(crate) fn row_major<'a, F>(op: &'static str, slice: Option<&'a [F]>) -> Result<&'a [F]> {
    slice.ok_or_else(|| Error::Contract {
        op,
        message: "BUG: a standard-layout array is not one slice".into(),
    })
}

/// `data` as an array of `shape` (which has exactly `data.len()` elements): an op's result
/// written into a vector from the buffer shelf.
pub(crate) fn shaped<F: Float>(
    op: &'static str,
    shape: &[usize],
    data: Vec<F>,
) -> Result<ArrayD<F>> {
    ArrayD::from_shape_vec(IxDyn(shape), data).map_err(|e| Error::Contract {
        op,
        message: format!("BUG: a result of shape {shape:?}: {e}"),
    })
}

#[cfg(test)]
mod tests {
    use ndarray::{Array, ArrayD, IxDyn};

    #[test]
    fn large_arrays_in_any_layout_keep_shape_and_order_on_any_thread_count() {
        // Three chunks and a bit, stored transposed: the result is in logical order.
        let n = 3 * super::CHUNK + 5;
        let x = Array::from_shape_fn((n / 5, 5), |(i, j)| (i * 5 + j) as f32)
            .into_dyn()
            .reversed_axes();
        let on = |threads: usize| {
            let pool = rayon::ThreadPoolBuilder::new()
                .num_threads(threads)
                .build()
                .unwrap();
            pool.install(|| {
                let y = super::map("test", &x.view(), |v| v * 2.0).unwrap();
                let dx = super::map_grad("test", &y.view(), &x.view(), |a, b| a - b).unwrap();
                (y, dx)
            })
        };
        let (one, two) = (on(1), on(2));
        assert_eq!(one, two);
        assert_eq!(one.0, x.mapv(|v| v * 2.0));
        assert_eq!(one.1, x);
    }

    #[test]
    fn mismatched_shapes_are_an_error_not_a_panic() {
        let (a, b) = (
            ArrayD::<f64>::zeros(IxDyn(&[2, 3])),
            ArrayD::zeros(IxDyn(&[3, 2])),
        );
        let err = super::map_grad("relu", &a.view(), &b.view(), |a, _| a).unwrap_err();
        assert_eq!(
            err.to_string(),
            "relu: the output gradient has shape [2, 3], the value it pairs with [3, 2]"
        );
    }
}
