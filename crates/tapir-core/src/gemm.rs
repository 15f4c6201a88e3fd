//! The matrix product under every heavy kernel (conv2d, dense, matmul): `c = alpha a b`, or
//! `c += alpha a b`.
//!
//! Matrices that lie in memory as one slice, rows or columns contiguous (every matrix the
//! kernels build), go to faer's product, whose kernels are chosen at run time for the
//! machine's vector units (AVX2 with FMA, AVX-512); others go to ndarray's. Either runs on
//! the calling thread: callers split work across threads themselves, in a fixed order, so
//! that results do not depend on the thread count.

use faer::linalg::matmul::matmul;
use faer::traits::ComplexField;
use faer::{Accum, MatMut, MatRef, Par};
use ndarray::linalg::general_mat_mul;
use ndarray::{ArrayView2, ArrayViewMut2, LinalgScalar};

use crate::Float;

/// `c = alpha a b`, or `c += alpha a b` when `accumulate`, for `a [m, k]`, `b [k, n]` and
/// `c [m, n]`.
///
/// # Panics
/// If the shapes do not chain: a bug in the caller, as for `ndarray`'s `dot`.
pub fn gemm<F: Float>(
    alpha: F,
    a: &ArrayView2<F>,
    b: &ArrayView2<F>,
    accumulate: bool,
    c: &mut ArrayViewMut2<F>,
) {
    F::gemm(alpha, a, b, accumulate, c);
}

/// [`gemm`] for an element type faer multiplies (`f32`, `f64`).
pub(crate) fn product<T: ComplexField + LinalgScalar>(
    alpha: T,
    a: &ArrayView2<T>,
    b: &ArrayView2<T>,
    accumulate: bool,
    c: &mut ArrayViewMut2<T>,
) {
    let ((m, k), (k2, n)) = (a.dim(), b.dim());
    assert!(
        k == k2 && c.dim() == (m, n),
        "BUG: gemm of [{m}, {k}] by [{k2}, {n}] into {:?}",
        c.dim()
    );
    if m == 0 || n == 0 {
        return;
    }
    if k == 0 {
        // An empty sum: the product is zero.
        if !accumulate {
            c.fill(T::zero());
        }
        return;
    }
    let beta = if accumulate { T::one() } else { T::zero() };
    let (Some(a_layout), Some(b_layout)) = (
        Layout::of(a.dim(), a.strides()),
        Layout::of(b.dim(), b.strides()),
    ) else {
        return general_mat_mul(alpha, a, b, beta, c);
    };
    let Some(c_layout) = Layout::of(c.dim(), c.strides()) else {
        return general_mat_mul(alpha, a, b, beta, c);
    };
    let (Some(a_data), Some(b_data)) = (a.as_slice_memory_order(), b.as_slice_memory_order())
    else {
        return general_mat_mul(alpha, a, b, beta, c);
    };
    let dst_dim = c.dim();
    let Some(c_data) = c.as_slice_memory_order_mut() else {
        return general_mat_mul(alpha, a, b, beta, c);
    };
    let a = a_layout.matrix(a_data, a.dim());
    let b = b_layout.matrix(b_data, b.dim());
    let dst = c_layout.matrix_mut(c_data, dst_dim);
    let accum = if accumulate {
        Accum::Add
    } else {
        Accum::Replace
    };
    matmul(dst, accum, a, b, alpha, Par::Seq);
}

/// How a matrix that is one slice in memory is laid out in it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Layout {
    /// Rows contiguous, this many elements apart.
    RowMajor(usize),
    /// Columns contiguous, this many elements apart.
    ColumnMajor(usize),
}

impl Layout {
    /// The layout of a matrix of `(rows, columns)` with ndarray's `strides`, if it is row-
    /// or column-major (a stride along an axis of length 1 says nothing, so it is ignored).
    fn of((rows, columns): (usize, usize), strides: &[isize]) -> Option<Layout> {
        let stride = |axis: usize, len: usize| {
            if len <= 1 {
                None
            } else {
                strides.get(axis).copied()
            }
        };
        match (stride(0, rows), stride(1, columns)) {
            (row, Some(1) | None) => {
                let row_stride = row.map_or(Some(columns), |s| usize::try_from(s).ok())?;
                (row_stride >= columns).then_some(Layout::RowMajor(row_stride))
            }
            (Some(1), Some(column)) => {
                let column_stride = usize::try_from(column).ok()?;
                (column_stride >= rows).then_some(Layout::ColumnMajor(column_stride))
            }
            _ => None,
        }
    }

    /// The matrix over `data` (its elements in memory order, from the first).
    fn matrix<T>(self, data: &[T], (rows, columns): (usize, usize)) -> MatRef<'_, T> {
        match self {
            Layout::RowMajor(stride) => {
                MatRef::from_row_major_slice_with_stride(data, rows, columns, stride)
            }
            Layout::ColumnMajor(stride) => {
                MatRef::from_column_major_slice_with_stride(data, rows, columns, stride)
            }
        }
    }

    /// The matrix over `data`, to write.
    fn matrix_mut<T>(self, data: &mut [T], (rows, columns): (usize, usize)) -> MatMut<'_, T> {
        match self {
            // The transpose of the column-major view, not faer 0.23's
            // `from_row_major_slice_with_stride_mut`: that one builds a column-major view
            // with the row stride as its column stride, and the product then writes outside
            // the slice (`every_layout_gives_the_product` catches it).
            Layout::RowMajor(stride) => {
                MatMut::from_column_major_slice_with_stride_mut(data, columns, rows, stride)
                    .transpose_mut()
            }
            Layout::ColumnMajor(stride) => {
                MatMut::from_column_major_slice_with_stride_mut(data, rows, columns, stride)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use ndarray::{Array2, ArrayView2, Axis};

    use super::Layout;

    /// `alpha a b (+ c)` by the definition, in f64.
    fn naive(
        alpha: f64,
        a: &ArrayView2<f64>,
        b: &ArrayView2<f64>,
        c: Option<&Array2<f64>>,
    ) -> Array2<f64> {
        let (m, n) = (a.nrows(), b.ncols());
        Array2::from_shape_fn((m, n), |(i, j)| {
            let sum: f64 = (0..a.ncols()).map(|k| a[[i, k]] * b[[k, j]]).sum();
            alpha * sum + c.map_or(0.0, |c| c[[i, j]])
        })
    }

    fn filled(rows: usize, columns: usize, seed: usize) -> Array2<f64> {
        Array2::from_shape_fn((rows, columns), |(i, j)| {
            ((i * 31 + j * 17 + seed * 7) % 23) as f64 * 0.25 - 2.0
        })
    }

    fn close(got: &Array2<f64>, want: &Array2<f64>) {
        assert_eq!(got.dim(), want.dim());
        for (g, w) in got.iter().zip(want) {
            assert!((g - w).abs() < 1e-9, "{g} != {w}");
        }
    }

    #[test]
    fn every_layout_gives_the_product() {
        let (a, b) = (filled(37, 19, 1), filled(19, 41, 2));
        let (a_t, b_t) = (a.t().to_owned(), b.t().to_owned());
        let wide = filled(37, 60, 3);
        let want = naive(1.5, &a.view(), &b.view(), None);
        let cases: Vec<(&str, ArrayView2<f64>, ArrayView2<f64>)> = vec![
            ("row-major", a.view(), b.view()),
            ("column-major (transposed views)", a_t.t(), b_t.t()),
            ("mixed", a.view(), b_t.t()),
        ];
        for (name, a, b) in cases {
            // NaN in c: replacing must not read it.
            let mut c = Array2::from_elem((37, 41), f64::NAN);
            super::gemm(1.5, &a, &b, false, &mut c.view_mut());
            assert!(c.iter().all(|v| v.is_finite()), "{name}");
            close(&c, &want);
        }
        // Columns of a wider matrix (not one slice: ndarray's product), and a column-major
        // destination, accumulating.
        let a_strided = wide.slice_axis(Axis(1), (3..22).into());
        assert!(a_strided.as_slice_memory_order().is_none());
        let start = filled(41, 37, 4);
        let mut c = start.clone().reversed_axes();
        let mut c_view = c.view_mut();
        super::gemm(-0.5, &a_strided, &b.view(), true, &mut c_view);
        close(
            &c,
            &naive(-0.5, &a_strided, &b.view(), Some(&start.t().to_owned())),
        );
    }

    #[test]
    fn empty_and_degenerate_shapes() {
        // k = 0: the product is 0, added to c or replacing it.
        let (a, b) = (Array2::<f64>::zeros((3, 0)), Array2::<f64>::zeros((0, 4)));
        let mut c = Array2::from_elem((3, 4), 7.0);
        super::gemm(1.0, &a.view(), &b.view(), true, &mut c.view_mut());
        assert!(c.iter().all(|&v| v == 7.0));
        super::gemm(1.0, &a.view(), &b.view(), false, &mut c.view_mut());
        assert!(c.iter().all(|&v| v == 0.0));
        // Vectors: a row times a column, a column times a row.
        let (row, column) = (filled(1, 9, 5), filled(9, 1, 6));
        let mut dot = Array2::zeros((1, 1));
        super::gemm(1.0, &row.view(), &column.view(), false, &mut dot.view_mut());
        close(&dot, &naive(1.0, &row.view(), &column.view(), None));
        let mut outer = Array2::zeros((9, 9));
        super::gemm(
            1.0,
            &column.view(),
            &row.view(),
            false,
            &mut outer.view_mut(),
        );
        close(&outer, &naive(1.0, &column.view(), &row.view(), None));
        // Rows of a matrix, as the grouped convolution takes them.
        let tall = filled(12, 5, 7);
        let rows = tall.slice_axis(Axis(0), (4..8).into());
        let mut c = Array2::zeros((4, 41));
        let b = filled(5, 41, 8);
        super::gemm(1.0, &rows, &b.view(), false, &mut c.view_mut());
        close(&c, &naive(1.0, &rows, &b.view(), None));
    }

    #[test]
    fn layouts_are_read_from_strides() {
        assert_eq!(Layout::of((3, 4), &[4, 1]), Some(Layout::RowMajor(4)));
        assert_eq!(Layout::of((3, 4), &[1, 3]), Some(Layout::ColumnMajor(3)));
        assert_eq!(Layout::of((1, 4), &[99, 1]), Some(Layout::RowMajor(4)));
        assert_eq!(Layout::of((3, 1), &[1, 99]), Some(Layout::RowMajor(1)));
        assert_eq!(Layout::of((3, 4), &[-4, 1]), None);
        assert_eq!(Layout::of((3, 4), &[8, 2]), None);
    }
}
