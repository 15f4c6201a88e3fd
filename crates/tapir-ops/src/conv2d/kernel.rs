//! The GEMM lowering of `conv2d` (see the module doc of `conv2d` for the math and symbols).
//!
//! One sample at a time, `im2col` copies every window of `x_n` into the columns of a matrix
//! `cols [C*kh*kw, OH*OW]`, so that the convolution of group `g` is one matrix product
//! `y_g = W_g cols_g`. Backward reuses the same matrix: `dW_g += dy_g cols_g^T`, and
//! `dcols_g = W_g^T dy_g` goes back to the image with `col2im`, the transpose of `im2col`.
//!
//! The batch is split into chunks of [`SAMPLES_PER_CHUNK`] samples, one rayon task each.
//! Each sample's output and input gradient is computed by one task alone; the weight and
//! bias gradients are summed per chunk and the partial sums added in chunk order. The
//! chunks do not depend on the thread count, so neither does any bit of the result.
//!
//! Room left for speed: the buffers live in a [`Scratch`] that could outlive a call (a pool
//! per thread), and a specialised lowering (one input channel, 1x1 kernels that need no
//! copy) would replace `im2col` for its case without touching the products.

use std::ops::Range;

use ndarray::linalg::general_mat_mul;
use ndarray::{
    Array1, Array2, Array3, Array4, ArrayRef2, ArrayView1, ArrayView2, ArrayView3, ArrayView4,
    ArrayViewMut2, ArrayViewMut3, ArrayViewMut4, Axis, Slice, Zip,
};
use rayon::prelude::*;
use tapir_core::Float;

/// Samples per parallel task. Fixed, not derived from the thread count: the chunks decide
/// the order of the weight-gradient sums, which must not change with the machine.
pub(crate) const SAMPLES_PER_CHUNK: usize = 4;

/// One spatial axis of the convolution, resolved by the shape rule.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct AxisGeometry {
    /// Input length (`H` or `W`).
    pub input: usize,
    /// Output length (`OH` or `OW`).
    pub output: usize,
    /// Kernel length (`kh` or `kw`).
    pub kernel: usize,
    /// Stride (`s_h` or `s_w`).
    pub stride: usize,
    /// Dilation (`d_h` or `d_w`).
    pub dilation: usize,
    /// Zero padding before the input (`pad_top` or `pad_left`).
    pub pad_before: usize,
}

impl AxisGeometry {
    /// The output positions `o` whose tap `k` falls inside the input rather than the padding:
    /// `0 <= o*s + k*d - pad_before < input`.
    ///
    /// No overflow: the shape rule checked `input + padding` and showed
    /// `(output - 1)*s + (kernel - 1)*d < input + padding`.
    fn valid(&self, k: usize) -> Range<usize> {
        let offset = k * self.dilation;
        let end = self.pad_before + self.input;
        let lo = self.pad_before.saturating_sub(offset).div_ceil(self.stride);
        let hi = end
            .saturating_sub(offset)
            .div_ceil(self.stride)
            .min(self.output);
        lo.min(hi)..hi
    }

    /// The input position of output `o`, tap `k`; only for `o` in [`Self::valid`]`(k)`.
    fn input_position(&self, o: usize, k: usize) -> usize {
        o * self.stride + k * self.dilation - self.pad_before
    }

    /// The input positions tap `k` reads for the outputs `outputs` (a non-empty part of
    /// [`Self::valid`]`(k)`), as a strided slice of an input row.
    fn input_slice(&self, outputs: &Range<usize>, k: usize) -> Slice {
        let first = self.input_position(outputs.start, k);
        let last = self.input_position(outputs.end - 1, k);
        // Two outputs that both read the input are `stride` apart inside it: a stride beyond
        // isize::MAX (beyond any array's length) leaves one, where the step is moot.
        let step = isize::try_from(self.stride).unwrap_or(isize::MAX);
        Slice::from(first..last + 1).step_by(step)
    }
}

/// Everything the kernel needs to know about one call, resolved (and overflow-checked) by
/// the shape rule.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Geometry {
    /// Samples `N`.
    pub batch: usize,
    /// Input channels `C`.
    pub channels: usize,
    /// Output channels `F`.
    pub filters: usize,
    /// Groups `G`.
    pub groups: usize,
    /// The height axis.
    pub height: AxisGeometry,
    /// The width axis.
    pub width: AxisGeometry,
}

impl Geometry {
    /// `C/G`: input channels each filter sees.
    pub fn channels_per_group(&self) -> usize {
        self.channels / self.groups
    }
    /// `F/G`: filters per group.
    pub fn filters_per_group(&self) -> usize {
        self.filters / self.groups
    }
    /// `K = C/G * kh * kw`: the length of one filter, the inner dimension of each product.
    pub fn patch_len(&self) -> usize {
        self.channels_per_group() * self.height.kernel * self.width.kernel
    }
    /// `P = OH * OW`: output positions per map.
    pub fn positions(&self) -> usize {
        self.height.output * self.width.output
    }
    /// Rows of group `g` in `cols` and `dcols`.
    fn patch_rows(&self, g: usize) -> Range<usize> {
        g * self.patch_len()..(g + 1) * self.patch_len()
    }
    /// Rows of group `g` in the weight matrix and in `y_n`.
    fn filter_rows(&self, g: usize) -> Range<usize> {
        g * self.filters_per_group()..(g + 1) * self.filters_per_group()
    }
}

/// Per-task buffers, allocated once per task and reused for every sample of it; sized on
/// first use so that a later change can keep them across calls.
#[derive(Debug)]
struct Scratch<F: Float> {
    /// `cols [C*kh*kw, P]`, the lowered sample.
    cols: Array2<F>,
    /// `dcols [C*kh*kw, P]`, the gradient of `cols`.
    dcols: Array2<F>,
}

impl<F: Float> Scratch<F> {
    fn new() -> Self {
        Scratch {
            cols: Array2::zeros((0, 0)),
            dcols: Array2::zeros((0, 0)),
        }
    }

    /// Resizes a buffer to `[C*kh*kw, P]` unless it has that shape already. Its contents are
    /// left to the caller, which overwrites every element.
    fn fit(buffer: &mut Array2<F>, geometry: &Geometry) {
        // No overflow: the shape rule counted `C * kh * kw * OH * OW` with checked arithmetic.
        let rows = geometry.channels * geometry.height.kernel * geometry.width.kernel;
        let dim = (rows, geometry.positions());
        if buffer.dim() != dim {
            *buffer = Array2::zeros(dim);
        }
    }
}

/// `cols[(c,p,q), (i,j)] = x_n[c, i*s_h + p*d_h - pad_top, j*s_w + q*d_w - pad_left]`, or 0
/// where that position is padding. `x_n` is `[C, H, W]`; every element of `cols` is written.
fn im2col<F: Float>(geometry: &Geometry, x_n: ArrayView3<F>, cols: &mut Array2<F>) {
    let (height, width) = (&geometry.height, &geometry.width);
    let (kh, kw, ow) = (height.kernel, width.kernel, width.output);
    for (row, mut dst) in cols.outer_iter_mut().enumerate() {
        let (c, p, q) = (row / (kh * kw), row / kw % kh, row % kw);
        let (rows, columns) = (height.valid(p), width.valid(q));
        if rows.len() < height.output || columns.len() < ow {
            dst.fill(F::zero());
        }
        if columns.is_empty() {
            continue; // this tap sees only padding
        }
        let x_c = x_n.index_axis(Axis(0), c);
        let taps = width.input_slice(&columns, q);
        for i in rows {
            let src = x_c
                .row(height.input_position(i, p))
                .slice_axis_move(Axis(0), taps);
            let span = i * ow + columns.start..i * ow + columns.end;
            dst.slice_axis_mut(Axis(0), Slice::from(span)).assign(&src);
        }
    }
}

/// The transpose of [`im2col`]: adds `dcols[(c,p,q), (i,j)]` to
/// `dx_n[c, i*s_h + p*d_h - pad_top, j*s_w + q*d_w - pad_left]`, dropping what falls in the
/// padding. Rows are visited in a fixed order, so overlapping windows sum the same way always.
fn col2im<F: Float>(geometry: &Geometry, dcols: &Array2<F>, mut dx_n: ArrayViewMut3<F>) {
    let (height, width) = (&geometry.height, &geometry.width);
    let (kh, kw, ow) = (height.kernel, width.kernel, width.output);
    for (row, src) in dcols.outer_iter().enumerate() {
        let (c, p, q) = (row / (kh * kw), row / kw % kh, row % kw);
        let (rows, columns) = (height.valid(p), width.valid(q));
        if columns.is_empty() {
            continue;
        }
        let mut dx_c = dx_n.index_axis_mut(Axis(0), c);
        let taps = width.input_slice(&columns, q);
        for i in rows {
            let mut dx_row = dx_c.row_mut(height.input_position(i, p));
            let dst = dx_row.slice_axis_mut(Axis(0), taps);
            let span = i * ow + columns.start..i * ow + columns.end;
            let src = src.slice_axis(Axis(0), Slice::from(span));
            Zip::from(dst).and(src).for_each(|d, &s| *d += s);
        }
    }
}

/// Rows `range` of matrix `m`.
fn rows<F: Float>(m: &ArrayRef2<F>, range: Range<usize>) -> ArrayView2<'_, F> {
    m.slice_axis(Axis(0), Slice::from(range))
}

/// Rows `range` of matrix `m`, to write.
fn rows_mut<F: Float>(m: &mut ArrayRef2<F>, range: Range<usize>) -> ArrayViewMut2<'_, F> {
    m.slice_axis_mut(Axis(0), Slice::from(range))
}

/// Forward: `y [N, F, P]` from `x [N, C, H, W]`, the weight as a matrix `w [F, K]` and the
/// bias `b [F]`.
pub(crate) fn forward<F: Float>(
    geometry: &Geometry,
    x: ArrayView4<F>,
    w: ArrayView2<F>,
    b: Option<ArrayView1<F>>,
) -> Array3<F> {
    let mut y = Array3::zeros((geometry.batch, geometry.filters, geometry.positions()));
    let tasks: Vec<_> = y
        .axis_chunks_iter_mut(Axis(0), SAMPLES_PER_CHUNK)
        .zip(x.axis_chunks_iter(Axis(0), SAMPLES_PER_CHUNK))
        .collect();
    tasks
        .into_par_iter()
        .for_each_init(Scratch::new, |scratch, (mut y_chunk, x_chunk)| {
            Scratch::fit(&mut scratch.cols, geometry);
            for (mut y_n, x_n) in y_chunk.outer_iter_mut().zip(x_chunk.outer_iter()) {
                im2col(geometry, x_n, &mut scratch.cols);
                // y_n starts as b broadcast over positions (or 0) and the products add to it.
                if let Some(b) = &b {
                    Zip::from(y_n.rows_mut())
                        .and(b)
                        .for_each(|mut row, &b_f| row.fill(b_f));
                }
                for g in 0..geometry.groups {
                    let (filters, patch) = (geometry.filter_rows(g), geometry.patch_rows(g));
                    // y_g += W_g cols_g
                    general_mat_mul(
                        F::one(),
                        &rows(&w, filters.clone()),
                        &rows(&scratch.cols, patch),
                        F::one(),
                        &mut rows_mut(&mut y_n, filters),
                    );
                }
            }
        });
    y
}

/// Which gradients backward computes: input, weight, bias.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Wanted {
    pub x: bool,
    pub w: bool,
    pub b: bool,
}

/// The gradients backward computed: `dx [N, C, H, W]`, `dw [F, K]`, `db [F]`.
#[derive(Debug)]
pub(crate) struct Gradients<F: Float> {
    pub x: Option<Array4<F>>,
    pub w: Option<Array2<F>>,
    pub b: Option<Array1<F>>,
}

/// One chunk's share of the weight and bias gradients.
type Partial<F> = (Option<Array2<F>>, Option<Array1<F>>);

/// Backward: the wanted gradients from `x`, the weight matrix `w [F, K]` and `dy [N, F, P]`.
pub(crate) fn backward<F: Float>(
    geometry: &Geometry,
    x: ArrayView4<F>,
    w: ArrayView2<F>,
    dy: ArrayView3<F>,
    wanted: Wanted,
) -> Gradients<F> {
    let mut dx = wanted.x.then(|| Array4::zeros(x.raw_dim()));
    let dx_chunks: Vec<Option<_>> = match &mut dx {
        Some(dx) => dx
            .axis_chunks_iter_mut(Axis(0), SAMPLES_PER_CHUNK)
            .map(Some)
            .collect(),
        None => (0..geometry.batch.div_ceil(SAMPLES_PER_CHUNK))
            .map(|_| None)
            .collect(),
    };
    let tasks: Vec<_> = dx_chunks
        .into_iter()
        .zip(x.axis_chunks_iter(Axis(0), SAMPLES_PER_CHUNK))
        .zip(dy.axis_chunks_iter(Axis(0), SAMPLES_PER_CHUNK))
        .collect();
    // An indexed parallel iterator collects in task order, whatever thread ran each task.
    let partials: Vec<Partial<F>> = tasks
        .into_par_iter()
        .map_init(Scratch::new, |scratch, ((dx_chunk, x_chunk), dy_chunk)| {
            backward_chunk(geometry, w, wanted, scratch, dx_chunk, x_chunk, dy_chunk)
        })
        .collect();

    let mut dw = wanted.w.then(|| Array2::zeros(w.raw_dim()));
    let mut db = wanted.b.then(|| Array1::zeros(geometry.filters));
    for (partial_w, partial_b) in partials {
        if let (Some(sum), Some(part)) = (&mut dw, partial_w) {
            *sum += &part;
        }
        if let (Some(sum), Some(part)) = (&mut db, partial_b) {
            *sum += &part;
        }
    }
    Gradients {
        x: dx,
        w: dw,
        b: db,
    }
}

/// Backward over one chunk of samples: writes its rows of `dx` and returns its partial `dw`
/// and `db`.
fn backward_chunk<F: Float>(
    geometry: &Geometry,
    w: ArrayView2<F>,
    wanted: Wanted,
    scratch: &mut Scratch<F>,
    mut dx_chunk: Option<ArrayViewMut4<F>>,
    x_chunk: ArrayView4<F>,
    dy_chunk: ArrayView3<F>,
) -> Partial<F> {
    let mut dw = wanted.w.then(|| Array2::zeros(w.raw_dim()));
    let mut db = wanted.b.then(|| Array1::zeros(geometry.filters));
    if wanted.w {
        Scratch::fit(&mut scratch.cols, geometry);
    }
    if wanted.x {
        Scratch::fit(&mut scratch.dcols, geometry);
    }
    for (n, (x_n, dy_n)) in x_chunk.outer_iter().zip(dy_chunk.outer_iter()).enumerate() {
        if let Some(db) = &mut db {
            // db[f] += sum_{i,j} dy[n,f,i,j]
            Zip::from(db)
                .and(dy_n.rows())
                .for_each(|db_f, dy_f| *db_f += dy_f.sum());
        }
        if let Some(dw) = &mut dw {
            im2col(geometry, x_n, &mut scratch.cols);
            for g in 0..geometry.groups {
                let (filters, patch) = (geometry.filter_rows(g), geometry.patch_rows(g));
                // dW_g += dy_g cols_g^T
                general_mat_mul(
                    F::one(),
                    &rows(&dy_n, filters.clone()),
                    &rows(&scratch.cols, patch).t(),
                    F::one(),
                    &mut rows_mut(dw, filters),
                );
            }
        }
        if let Some(dx_chunk) = &mut dx_chunk {
            for g in 0..geometry.groups {
                let (filters, patch) = (geometry.filter_rows(g), geometry.patch_rows(g));
                // dcols_g = W_g^T dy_g
                general_mat_mul(
                    F::one(),
                    &rows(&w, filters.clone()).t(),
                    &rows(&dy_n, filters),
                    F::zero(),
                    &mut rows_mut(&mut scratch.dcols, patch),
                );
            }
            col2im(
                geometry,
                &scratch.dcols,
                dx_chunk.index_axis_mut(Axis(0), n),
            );
        }
    }
    (dw, db)
}
