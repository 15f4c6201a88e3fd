//! Broadcasting and its reverse, written once: views of two inputs stretched to a common
//! shape (the forward of `add` and `mul`), and sums over axes (their backward, which sums the
//! gradient over the stretched axes, and the forward of `sum` and `mean`).

use ndarray::{ArrayD, ArrayViewD, Axis, CowArray, IxDyn, Zip};
use tapir_core::{Error, Float, Result, buffers};

use crate::shape;

/// Views of `a` and `b` broadcast to their common shape; for elementwise binary ops.
pub fn broadcast_pair<'a, F: Float>(
    op: &'static str,
    a: &'a ArrayViewD<F>,
    b: &'a ArrayViewD<F>,
) -> Result<(ArrayViewD<'a, F>, ArrayViewD<'a, F>)> {
    let out = shape::broadcast_shapes(op, a.shape(), b.shape())?;
    let stretch = |x: &'a ArrayViewD<F>| {
        x.broadcast(out.as_slice())
            .ok_or_else(|| Error::shape(op, format!("cannot broadcast {:?} to {out:?}", x.shape())))
    };
    Ok((stretch(a)?, stretch(b)?))
}

/// `f(a, b)` for every pair of elements of `a` and `b` broadcast to their common shape (the
/// forward of `add` and `mul`), written into memory from [`buffers`], which the tape gives
/// back when the result dies: the next step reuses it instead of faulting in fresh pages.
pub fn broadcast_map<F: Float>(
    op: &'static str,
    a: &ArrayViewD<F>,
    b: &ArrayViewD<F>,
    f: impl Fn(F, F) -> F,
) -> Result<ArrayD<F>> {
    let (a, b) = broadcast_pair(op, a, b)?;
    let mut out = buffers::array_for_overwrite(a.raw_dim());
    Zip::from(&mut out)
        .and(&a)
        .and(&b)
        .for_each(|out, &a, &b| *out = f(a, b));
    Ok(out)
}

/// The number of elements two inputs broadcast to (0 for shapes that do not); for `flops`.
pub fn broadcast_len(inputs: &[&[usize]]) -> u64 {
    match inputs {
        [a, b] => shape::broadcast_shapes("", a, b)
            .ok()
            .and_then(|s| shape::element_count("", &s).ok())
            .map_or(0, |n| n as u64),
        _ => 0,
    }
}

/// Sums `array` over the axes flagged in `reduced`, keeping each as an axis of size 1.
///
/// Each axis is summed in one pass with ndarray's `sum_axis`, in increasing axis order, so the
/// result does not depend on anything but the values.
pub fn sum_keeping_axes<'a, F: Float>(
    op: &'static str,
    array: impl Into<CowArray<'a, F, IxDyn>>,
    reduced: &[bool],
) -> Result<ArrayD<F>> {
    let mut sum: CowArray<F, IxDyn> = array.into();
    if reduced.len() != sum.ndim() {
        return Err(Error::shape(
            op,
            format!(
                "cannot reduce an array of shape {:?} over {} axis flags",
                sum.shape(),
                reduced.len()
            ),
        ));
    }
    for (axis, _) in reduced.iter().enumerate().filter(|(_, flag)| **flag) {
        // `axis` is below `reduced.len()`, which is the rank (checked above).
        sum = sum.sum_axis(Axis(axis)).insert_axis(Axis(axis)).into();
    }
    Ok(sum.into_owned())
}

/// The gradient of a broadcast: sums `grad` (of the broadcast shape) back to `shape`, over the
/// leading axes `shape` lacks and over the axes where `shape` has size 1 and `grad` does not.
pub fn sum_to_shape<'a, F: Float>(
    op: &'static str,
    grad: impl Into<CowArray<'a, F, IxDyn>>,
    shape: &[usize],
) -> Result<ArrayD<F>> {
    let grad: CowArray<F, IxDyn> = grad.into();
    let mismatch = || {
        Error::shape(
            op,
            format!(
                "a gradient of shape {:?} does not broadcast from shape {shape:?}",
                grad.shape()
            ),
        )
    };
    let leading = grad.ndim().checked_sub(shape.len()).ok_or_else(mismatch)?;
    let mut reduced = vec![true; leading];
    for (&target, &size) in shape.iter().zip(&grad.shape()[leading..]) {
        if target != size && target != 1 {
            return Err(mismatch());
        }
        reduced.push(target != size);
    }
    if !reduced.contains(&true) {
        if !grad.is_view() {
            return Ok(grad.into_owned());
        }
        // A copy of a borrowed gradient, into memory the next step can reuse.
        let mut owned = buffers::array_for_overwrite(grad.raw_dim());
        owned.assign(&grad);
        return Ok(owned);
    }
    let mut sum = sum_keeping_axes(op, grad, &reduced)?;
    for _ in 0..leading {
        // The leading axes were summed to size 1: index 0 exists.
        sum = sum.index_axis_move(Axis(0), 0);
    }
    Ok(sum)
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::{arr1, arr2, arr3};

    #[test]
    fn sums_back_to_the_broadcast_input() {
        let g = arr2(&[[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]]).into_dyn();
        // [2, 3] -> [3]: column sums 1+4, 2+5, 3+6.
        let to_row = sum_to_shape("t", g.view(), &[3]).unwrap();
        assert_eq!(to_row, arr1(&[5.0, 7.0, 9.0]).into_dyn());
        // [2, 3] -> [2, 1]: row sums 1+2+3, 4+5+6.
        let to_column = sum_to_shape("t", g.view(), &[2, 1]).unwrap();
        assert_eq!(to_column, arr2(&[[6.0], [15.0]]).into_dyn());
        // [2, 3] -> [1]: everything, 21.
        assert_eq!(
            sum_to_shape("t", g.view(), &[1]).unwrap(),
            arr1(&[21.0]).into_dyn()
        );
        // Same shape: unchanged, from a view (copied) and from an owned array alike; from a
        // transposed view, in logical order.
        assert_eq!(sum_to_shape("t", g.view(), &[2, 3]).unwrap(), g);
        assert_eq!(sum_to_shape("t", g.clone(), &[2, 3]).unwrap(), g);
        let t = g.view().reversed_axes();
        assert_eq!(sum_to_shape("t", t.view(), &[3, 2]).unwrap(), t);
    }

    #[test]
    fn broadcast_map_writes_every_element_of_the_common_shape() {
        // [2, 3] (stored transposed) with [3], and [2, 1] with [3]: as ndarray's own
        // broadcasting arithmetic gives them (a debug build fills unwritten memory with NaN).
        let a = arr2(&[[1.0, 4.0], [2.0, 5.0], [3.0, 6.0]]).into_dyn();
        let a = a.view().reversed_axes();
        let row = arr1(&[10.0, 20.0, 30.0]).into_dyn();
        let sum = broadcast_map("t", &a, &row.view(), |x, y| x + y).unwrap();
        assert_eq!(sum, &a + &row);
        let column = arr2(&[[2.0], [3.0]]).into_dyn();
        let product = broadcast_map("t", &column.view(), &row.view(), |x, y| x * y).unwrap();
        assert_eq!(
            product,
            arr2(&[[20.0, 40.0, 60.0], [30.0, 60.0, 90.0]]).into_dyn()
        );
        // [2, 3] with [2]: no common shape.
        let pair = arr1(&[1.0, 2.0]).into_dyn();
        assert!(broadcast_map("t", &a, &pair.view(), |x, _| x).is_err());
    }

    #[test]
    fn keeps_the_summed_axes() {
        let x = arr3(&[[[1.0, 2.0], [3.0, 4.0]]]).into_dyn();
        // Axes 0 and 2 of [1, 2, 2]: 1+2, 3+4.
        let sum = sum_keeping_axes("t", x.view(), &[true, false, true]).unwrap();
        assert_eq!(sum, arr3(&[[[3.0], [7.0]]]).into_dyn());
    }

    #[test]
    fn shapes_that_do_not_broadcast_are_errors() {
        let g = ArrayD::<f64>::zeros(vec![2, 3]);
        let err = sum_to_shape("t", g.view(), &[2]).unwrap_err().to_string();
        assert_eq!(
            err,
            "t: a gradient of shape [2, 3] does not broadcast from shape [2]"
        );
        assert!(sum_to_shape("t", g.view(), &[1, 2, 3]).is_err());
        assert!(sum_keeping_axes("t", g.view(), &[true]).is_err());
    }
}
