//! The GEMM lowering of `conv2d` (see the module doc of `conv2d` for the math and symbols).
//!
//! `im2col` copies every window of a sample `x_n` into the columns of a matrix
//! `cols [C*kh*kw, OH*OW]`, so that the convolution of group `g` is one matrix product
//! `y_g = W_g cols_g`, one sample at a time. Backward lowers each sample again and adds its
//! share `dy_g cols_g^T` to the weight gradient, while `cols` is still in cache (1.1-1.3x
//! faster on W1's forward and backward than one product over a chunk's samples side by side);
//! `dcols_g = W_g^T dy_g` goes back to the image with `col2im`, the transpose of `im2col`.
//!
//! The batch is split into chunks of [`SAMPLES_PER_CHUNK`] samples, one rayon task each.
//! Each sample's output and input gradient is computed by one task alone; the weight and
//! bias gradients are summed per chunk, sample by sample, and the partial sums added in
//! chunk order. The
//! chunks do not depend on the thread count, so neither does any bit of the result.
//!
//! Convolutions with few input channels take the direct kernel of [`direct`](super::direct)
//! for the output (and the output made again) and the weight gradient, sample by sample in
//! the same chunks; the input gradient is always `dcols` and `col2im`. A sample whose `dy_n`
//! is almost all zeros takes [`sparse`](super::sparse) in backward instead, whichever route
//! its forward took.
//!
//! Everything works on row-major slices (of the inputs, copied once if not in standard
//! layout), and the lowered matrices live in per-thread buffers
//! ([`scratch`](super::scratch)) that outlive the call.

use std::ops::Range;

use std::borrow::Cow;

use ndarray::{
    Array1, Array2, Array3, Array4, ArrayRef2, ArrayView, ArrayView1, ArrayView2, ArrayView3,
    ArrayView4, ArrayViewMut2, Axis, Dimension, Slice,
};
use rayon::prelude::*;
use tapir_core::Float;
use tapir_core::lanes::{Arch, Simd, WithSimd};

use super::direct::{self, Direct};
use super::scratch::Buffer;
use super::sparse;

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
    fn valid(&self, k: usize) -> Range<usize> {
        self.inside(k * self.dilation, self.stride, self.output)
    }

    /// The taps `k` of output `o`'s window that fall inside the input rather than the
    /// padding: the same condition as [`Self::valid`], solved for `k`.
    pub(super) fn taps_inside(&self, o: usize) -> Range<usize> {
        self.inside(o * self.stride, self.dilation, self.kernel)
    }

    /// The `t` in `0..count` with `0 <= offset + t*step - pad_before < input`: a range,
    /// since the position grows with `t`.
    ///
    /// No overflow: the shape rule checked `input + padding` and showed
    /// `(output - 1)*s + (kernel - 1)*d < input + padding`.
    fn inside(&self, offset: usize, step: usize, count: usize) -> Range<usize> {
        let end = self.pad_before + self.input;
        let lo = self.pad_before.saturating_sub(offset).div_ceil(step);
        let hi = end.saturating_sub(offset).div_ceil(step).min(count);
        lo.min(hi)..hi
    }

    /// The input position of output `o`, tap `k`; only for `o` in [`Self::valid`]`(k)` (so `k`
    /// in [`Self::taps_inside`]`(o)`).
    pub(super) fn input_position(&self, o: usize, k: usize) -> usize {
        o * self.stride + k * self.dilation - self.pad_before
    }
}

#[cfg(test)]
impl AxisGeometry {
    /// An axis of `input` elements padded by `before` and `after`, `kernel` taps `dilation`
    /// apart, windows `stride` apart, its output length from the shape rule: for tests that
    /// build a geometry by hand.
    pub(crate) fn resolved(
        input: usize,
        kernel: usize,
        stride: usize,
        dilation: usize,
        (before, after): (usize, usize),
    ) -> Self {
        let output = crate::shape::window_output_len(
            "conv2d",
            "a test axis",
            input,
            before,
            after,
            kernel,
            dilation,
            stride,
        )
        .unwrap_or_else(|e| panic!("{e}"));
        AxisGeometry {
            input,
            output,
            kernel,
            stride,
            dilation,
            pad_before: before,
        }
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
    /// `C*H*W`: elements of one input sample.
    pub(crate) fn sample_len(&self) -> usize {
        self.channels * self.height.input * self.width.input
    }
    /// `C*kh*kw`: rows of `cols`, all groups.
    fn lowered_rows(&self) -> usize {
        self.channels * self.height.kernel * self.width.kernel
    }
}

/// The GEMM route's view of one call: its geometry, and for each tap the output rows and
/// columns that read the image rather than the padding ([`AxisGeometry::valid`], two
/// divisions each), resolved once per call for [`im2col`] and [`col2im`], which loop over
/// the lowered matrix's rows sample after sample (per row, the divisions showed in `perf`).
struct Lowering<'a> {
    geometry: &'a Geometry,
    /// `valid(p)` of the height, for each `p` in `0..kh`.
    rows: Vec<Range<usize>>,
    /// `valid(q)` of the width, for each `q` in `0..kw`.
    columns: Vec<Range<usize>>,
}

impl<'a> Lowering<'a> {
    fn new(geometry: &'a Geometry) -> Self {
        let valid = |axis: &AxisGeometry| (0..axis.kernel).map(|k| axis.valid(k)).collect();
        Lowering {
            geometry,
            rows: valid(&geometry.height),
            columns: valid(&geometry.width),
        }
    }
}

/// `cols[(c,p,q), (i,j)] = x_n[c, i*s_h + p*d_h - pad_top, j*s_w + q*d_w - pad_left]`, or 0
/// where that position is padding. `x_n` is `[C, H, W]` row-major; every element of the
/// sample's `[C*kh*kw, P]` matrix `cols` is written.
///
/// Rows are copied a window row at a time, `OW` elements each: short copies, many of them
/// (3,456 per sample for a 3x3 kernel over 16 channels of 24x24 outputs). With windows one
/// row apart (`s_h = d_h = 1`), row `(c,p,q)` is row `(c,p-1,q)` one output row on, so all
/// but its last output row that the image covers is one long move within `cols` (with
/// padding too: the rows the image covers shift by one from `p-1` to `p`).
fn im2col<F: Float>(lowering: &Lowering, x_n: &[F], cols: &mut [F]) {
    let geometry = lowering.geometry;
    let (height, width) = (&geometry.height, &geometry.width);
    let (kh, kw, ow) = (height.kernel, width.kernel, width.output);
    let (plane, positions) = (height.input * width.input, geometry.positions());
    let shifts = height.stride == 1 && height.dilation == 1;
    for row in 0..geometry.lowered_rows() {
        let (c, p, q) = (row / (kh * kw), row / kw % kh, row % kw);
        let start = row * positions;
        let (rows, columns) = (lowering.rows[p].clone(), lowering.columns[q].clone());
        let dst = &mut cols[start..start + positions];
        if columns.is_empty() || rows.is_empty() {
            dst.fill(F::zero()); // this tap sees only padding
            continue;
        }
        // Output rows the image does not cover are padding.
        dst[..rows.start * ow].fill(F::zero());
        dst[rows.end * ow..].fill(F::zero());
        // The rows left to copy from the image: all the image covers...
        let mut fresh = rows.clone();
        // ...unless row (c,p-1,q), kw rows above in the same channel, holds all but the
        // last one output row on (padding columns included: the same `q`). With `s_h = d_h =
        // 1` the rows the image covers for `p-1` start at most one row later and end no
        // earlier than those for `p`, so it always does.
        if shifts && p > 0 {
            let above = &lowering.rows[p - 1];
            debug_assert!(above.start <= rows.start + 1 && above.end >= rows.end);
            let from = start - kw * positions;
            cols.copy_within(
                from + (rows.start + 1) * ow..from + rows.end * ow,
                start + rows.start * ow,
            );
            fresh = rows.end - 1..rows.end;
        }
        let dst = &mut cols[start..start + positions];
        if columns.len() < ow {
            dst[fresh.start * ow..fresh.end * ow].fill(F::zero());
        }
        let x_c = &x_n[c * plane..(c + 1) * plane];
        let first = width.input_position(columns.start, q);
        for i in fresh {
            let from = height.input_position(i, p) * width.input + first;
            let to = &mut dst[i * ow + columns.start..i * ow + columns.end];
            if width.stride == 1 {
                to.copy_from_slice(&x_c[from..from + to.len()]);
            } else {
                let taps = x_c[from..].iter().step_by(width.stride);
                to.iter_mut().zip(taps).for_each(|(t, &x)| *t = x);
            }
        }
    }
}

/// The transpose of [`im2col`]: adds `dcols[(c,p,q), (i,j)]` to
/// `dx_n[c, i*s_h + p*d_h - pad_top, j*s_w + q*d_w - pad_left]`, dropping what falls in the
/// padding. Rows are visited in a fixed order, so overlapping windows sum the same way always.
fn col2im<F: Float>(lowering: &Lowering, dcols: &[F], dx_n: &mut [F]) {
    Arch::new().dispatch(Col2im {
        lowering,
        dcols,
        dx_n,
    })
}

/// [`col2im`] on SIMD vectors: with a stride of 1 along the width, each output row of a
/// window adds to a run of `dx`, a vector at a time (left to the compiler, the loop ran on
/// the baseline instruction set's 4 lanes: 8% of W1's forward+backward).
struct Col2im<'a, F> {
    lowering: &'a Lowering<'a>,
    dcols: &'a [F],
    dx_n: &'a mut [F],
}

impl<F: Float> WithSimd for Col2im<'_, F> {
    type Output = ();

    #[inline(always)]
    fn with_simd<S: Simd>(self, simd: S) {
        let Col2im {
            lowering,
            dcols,
            dx_n,
        } = self;
        let geometry = lowering.geometry;
        let (height, width) = (&geometry.height, &geometry.width);
        let (kh, kw, ow) = (height.kernel, width.kernel, width.output);
        let plane = height.input * width.input;
        for row in 0..geometry.lowered_rows() {
            let (c, p, q) = (row / (kh * kw), row / kw % kh, row % kw);
            let (rows, columns) = (lowering.rows[p].clone(), lowering.columns[q].clone());
            if columns.is_empty() {
                continue;
            }
            let start = row * geometry.positions();
            let src = &dcols[start..start + geometry.positions()];
            let dx_c = &mut dx_n[c * plane..(c + 1) * plane];
            let first = width.input_position(columns.start, q);
            for i in rows {
                let to = height.input_position(i, p) * width.input + first;
                let from = &src[i * ow + columns.start..i * ow + columns.end];
                if width.stride == 1 {
                    add_into(simd, &mut dx_c[to..to + from.len()], from);
                } else {
                    let taps = dx_c[to..].iter_mut().step_by(width.stride);
                    taps.zip(from).for_each(|(d, &s)| *d += s);
                }
            }
        }
    }
}

/// `dst += src`, element by element, a vector at a time. A run not a whole number of
/// vectors ends on a vector that overlaps the one before, loaded before anything is stored,
/// so that the lanes both cover get the same sum twice. (A masked load and store through
/// `pulp` costs a call through a table; an overlapping load of what was just stored waits
/// for the store: each of the two showed in the profile.)
#[inline(always)]
fn add_into<S: Simd, F: Float>(simd: S, dst: &mut [F], src: &[F]) {
    let (lanes, len) = (F::lanes::<S>(), dst.len().min(src.len()));
    let (dst, src) = (&mut dst[..len], &src[..len]);
    if len < lanes {
        let sum = F::add_lanes(simd, F::load(simd, dst), F::load(simd, src));
        return F::store(simd, dst, sum);
    }
    let last = len - lanes..len;
    let last_sum = F::add_lanes(
        simd,
        F::load(simd, &dst[last.clone()]),
        F::load(simd, &src[last.clone()]),
    );
    for (d, s) in dst.chunks_exact_mut(lanes).zip(src.chunks_exact(lanes)) {
        F::store(
            simd,
            d,
            F::add_lanes(simd, F::load(simd, d), F::load(simd, s)),
        );
    }
    F::store(simd, &mut dst[last], last_sum);
}

/// The elements of a chunk's weight gradient, row-major: it is made by `Array2::zeros`, in
/// standard layout, so its slice is its whole buffer.
fn weight_grad_elements<F: Float>(dw: &mut Array2<F>) -> &mut [F] {
    dw.as_slice_mut()
        .unwrap_or_else(|| panic!("BUG: a weight gradient not in standard layout"))
}

/// The elements of `array` in row-major order: its own memory when it is in standard
/// layout, else a copy.
fn row_major<'a, F: Float, D: Dimension>(array: ArrayView<'a, F, D>) -> Cow<'a, [F]> {
    match array.to_slice() {
        Some(slice) => Cow::Borrowed(slice),
        None => Cow::Owned(array.iter().copied().collect()),
    }
}

/// `data` as a `[rows, columns]` matrix.
fn matrix<F: Float>(data: &[F], rows: usize, columns: usize) -> ArrayView2<'_, F> {
    ArrayView2::from_shape((rows, columns), &data[..rows * columns])
        .unwrap_or_else(|e| panic!("BUG: a [{rows}, {columns}] matrix: {e}"))
}

/// `data` as a `[rows, columns]` matrix, to write.
fn matrix_mut<F: Float>(data: &mut [F], rows: usize, columns: usize) -> ArrayViewMut2<'_, F> {
    ArrayViewMut2::from_shape((rows, columns), &mut data[..rows * columns])
        .unwrap_or_else(|e| panic!("BUG: a [{rows}, {columns}] matrix: {e}"))
}

/// Rows `range` of matrix `m`.
fn rows<F: Float>(m: &ArrayRef2<F>, range: Range<usize>) -> ArrayView2<'_, F> {
    m.slice_axis(Axis(0), Slice::from(range))
}

/// Rows `range` of matrix `m`, to write.
fn rows_mut<F: Float>(m: &mut ArrayRef2<F>, range: Range<usize>) -> ArrayViewMut2<'_, F> {
    m.slice_axis_mut(Axis(0), Slice::from(range))
}

/// The weight matrix `w [F, K]` and the bias as the kernels read them, made once per call.
///
/// With one group and a bias, and the GEMM route to run the output's product, `W` gains the
/// bias as one more column, `[F, K+1]`, and the lowered matrix a row of ones under its `K`
/// rows, so that the product adds the bias itself: the output is written once, by the
/// product, instead of filled with the bias in a pass before a product that reads it back
/// (W1's forward 6-9% faster, its forward+backward 1-4%, in alternating calls of one
/// process). With several groups, each group's product would need its own row of ones;
/// those start from the bias as before.
struct Weights<'a, F: Float> {
    w: ArrayView2<'a, F>,
    /// `w`'s elements, row-major, for the sparse route's per-nonzero reads: borrowed, since
    /// `Conv2d` reshapes the weight to `w` in row-major order.
    row_major: Cow<'a, [F]>,
    b: Option<ArrayView1<'a, F>>,
    /// `[W | b]`, when there is one group, a bias and a product to run.
    with_bias: Option<Array2<F>>,
}

impl<'a, F: Float> Weights<'a, F> {
    /// `w [F, K]` and the bias `b` of the output (when it is made); `product` says whether
    /// the GEMM route makes it (not the direct kernel).
    fn new(
        geometry: &Geometry,
        w: ArrayView2<'a, F>,
        b: Option<ArrayView1<'a, F>>,
        product: bool,
    ) -> Self {
        let with_bias = b.filter(|_| product && geometry.groups == 1).map(|b| {
            let lowered = geometry.lowered_rows();
            let mut with_bias = Array2::zeros((geometry.filters, lowered + 1));
            with_bias
                .slice_axis_mut(Axis(1), Slice::from(0..lowered))
                .assign(&w);
            with_bias.column_mut(lowered).assign(&b);
            with_bias
        });
        Weights {
            w,
            row_major: row_major(w),
            b,
            with_bias,
        }
    }

    /// Rows of the lowered matrix the product reads: `C*kh*kw`, and the row of ones.
    fn cols_rows(&self, geometry: &Geometry) -> usize {
        geometry.lowered_rows() + usize::from(self.with_bias.is_some())
    }
}

/// `y_n = b + W cols_n` for one sample, group by group: `cols` holds the sample's lowered
/// matrix (and room for [`Weights::cols_rows`] rows), `y_n` (`[F, P]`, row-major) is
/// overwritten.
fn product<F: Float>(geometry: &Geometry, weights: &Weights<F>, cols: &mut [F], y_n: &mut [F]) {
    let positions = geometry.positions();
    let lowered = geometry.lowered_rows();
    let mut y_n = matrix_mut(y_n, geometry.filters, positions);
    if let Some(with_bias) = &weights.with_bias {
        // y_n = [W | b] [cols; 1]
        cols[lowered * positions..(lowered + 1) * positions].fill(F::one());
        let cols = matrix(cols, lowered + 1, positions);
        tapir_core::gemm(F::one(), &with_bias.view(), &cols, false, &mut y_n);
        return;
    }
    // With a bias, y_n starts as b broadcast over positions and the products add to it.
    if let Some(b) = &weights.b {
        for (mut row, &b_f) in y_n.rows_mut().into_iter().zip(b) {
            row.fill(b_f);
        }
    }
    let cols = matrix(cols, lowered, positions);
    for g in 0..geometry.groups {
        let (filters, patch) = (geometry.filter_rows(g), geometry.patch_rows(g));
        // y_g = W_g cols_g (+ y_g)
        tapir_core::gemm(
            F::one(),
            &rows(&weights.w, filters.clone()),
            &rows(&cols, patch),
            weights.b.is_some(),
            &mut rows_mut(&mut y_n, filters),
        );
    }
}

/// The samples of task `chunk`: [`SAMPLES_PER_CHUNK`] of them, fewer in the last one.
fn chunk_samples(batch: usize, chunk: usize) -> Range<usize> {
    let start = (chunk * SAMPLES_PER_CHUNK).min(batch);
    start..(start + SAMPLES_PER_CHUNK).min(batch)
}

/// Sample `n` of `data`, `len` elements per sample.
fn sample<F>(data: &[F], len: usize, n: usize) -> &[F] {
    &data[n * len..(n + 1) * len]
}

/// The sum of `xs`, in 16 running sums (one per lane of the widest vectors) added up at
/// the end: an order fixed by the length alone, and a loop the compiler vectorises, which
/// one running sum is not (2.2-2.5x faster than `ndarray`'s `sum` on rows of 2,704 floats in
/// cache).
fn sum<F: Float>(xs: &[F]) -> F {
    const LANES: usize = 16;
    let mut lanes = [F::zero(); LANES];
    let chunks = xs.chunks_exact(LANES);
    let tail = chunks.remainder();
    for chunk in chunks {
        for (lane, &x) in lanes.iter_mut().zip(chunk) {
            *lane += x;
        }
    }
    lanes
        .iter()
        .chain(tail)
        .fold(F::zero(), |total, &x| total + x)
}

/// What becomes of each sample's output `y_n [F, P]` in [`forward_samples`]: with
/// `Some((len, finish))`, `finish(y_n, r_n)` writes all of the sample's `len` results `r_n`
/// (a pooling of its maps, while they are in cache) and `y_n` itself is not kept.
pub(crate) type Finish<'a, F> = Option<(usize, &'a (dyn Fn(&[F], &mut [F]) + Sync))>;

/// Forward: `y [N, F, P]` from `x [N, C, H, W]`, the weight as a matrix `w [F, K]` and the
/// bias `b [F]`.
pub(crate) fn forward<F: Float>(
    geometry: &Geometry,
    x: ArrayView4<F>,
    w: ArrayView2<F>,
    b: Option<ArrayView1<F>>,
) -> Array3<F> {
    let y = forward_samples(geometry, x, w, b, None);
    Array3::from_shape_vec((geometry.batch, geometry.filters, geometry.positions()), y)
        .unwrap_or_else(|e| panic!("BUG: the output of {geometry:?}: {e}"))
}

/// The forward pass, sample by sample, each sample's output kept or handed to `finish`: the
/// results of all samples, row-major.
pub(crate) fn forward_samples<F: Float>(
    geometry: &Geometry,
    x: ArrayView4<F>,
    w: ArrayView2<F>,
    b: Option<ArrayView1<F>>,
    finish: Finish<F>,
) -> Vec<F> {
    let (filters, positions) = (geometry.filters, geometry.positions());
    let x = row_major(x);
    let sample_in = geometry.sample_len();
    let sample_out = finish.map_or(filters * positions, |(len, _)| len);
    // Every element is written below: by `product`, or by `finish`.
    let mut out = tapir_core::buffers::for_overwrite(geometry.batch * sample_out);
    let direct = Direct::new(geometry, &w, b.as_ref());
    let lowering = Lowering::new(geometry);
    let weights = Weights::new(geometry, w, b, direct.is_none());
    let cols_rows = weights.cols_rows(geometry);
    out.par_chunks_mut(SAMPLES_PER_CHUNK * sample_out.max(1))
        .enumerate()
        .for_each(|(chunk, out_chunk)| {
            let mut cols = direct
                .is_none()
                .then(|| Buffer::take(cols_rows * positions));
            let mut padded = None;
            let mut convolve = |x_n: &[F], y_n: &mut [F]| match (&direct, &mut cols) {
                (Some(direct), _) => {
                    let x_pad = direct::padded_input(direct, x_n, &mut padded);
                    direct.forward(x_pad, y_n);
                }
                (None, Some(cols)) => {
                    im2col(&lowering, x_n, cols.as_mut_slice());
                    product(geometry, &weights, cols.as_mut_slice(), y_n);
                }
                (None, None) => unreachable!("BUG: the GEMM route without its buffer"),
            };
            let mut y = finish.map(|_| Buffer::take(filters * positions));
            let out_samples = out_chunk.chunks_mut(sample_out.max(1));
            for (n, out_n) in chunk_samples(geometry.batch, chunk).zip(out_samples) {
                let x_n = sample(&x, sample_in, n);
                match (&mut y, finish) {
                    (Some(y_n), Some((_, finish))) => {
                        convolve(x_n, y_n.as_mut_slice());
                        finish(y_n.as_slice(), out_n);
                    }
                    _ => convolve(x_n, out_n),
                }
            }
        });
    out
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

/// `dy_of(n, y_n, dy_n)`: sample `n`'s output gradient `dy_n` from its output `y_n`.
pub(crate) type GradOfOutput<'a, F> = &'a (dyn Fn(usize, &[F], &mut [F]) + Sync);

/// Where backward finds `dy = dL/dy`.
#[derive(Clone, Copy)]
pub(crate) enum OutputGrad<'a, F: Float> {
    /// Given, `[N, F, P]`.
    Given(ArrayView3<'a, F>),
    /// Made sample by sample from the output, which is computed again from `x` (with the
    /// bias `bias`): `dy_of(n, y_n, dy_n)` writes all of sample `n`'s `dy_n [F, P]` from its
    /// `y_n [F, P]`. For a convolution fused with what follows it, whose output was never kept.
    FromOutput {
        bias: Option<ArrayView1<'a, F>>,
        dy_of: GradOfOutput<'a, F>,
    },
}

/// One chunk's share of the weight and bias gradients.
type Partial<F> = (Option<Array2<F>>, Option<Array1<F>>);

/// Backward: the wanted gradients from `x`, the weight matrix `w [F, K]` and `dy`.
pub(crate) fn backward<F: Float>(
    geometry: &Geometry,
    x: ArrayView4<F>,
    w: ArrayView2<F>,
    dy: OutputGrad<F>,
    wanted: Wanted,
) -> Gradients<F> {
    let x_shape = x.raw_dim();
    let x = row_major(x);
    let given = match &dy {
        OutputGrad::Given(dy) => Some(row_major(*dy)),
        OutputGrad::FromOutput { .. } => None,
    };
    let sample_in = geometry.sample_len();
    // Each sample's part is zeroed by the task that adds into it, while in cache.
    let mut dx = wanted
        .x
        .then(|| tapir_core::buffers::for_overwrite(geometry.batch * sample_in));
    // One task per chunk of samples, with its part of dx.
    let mut dx_rest = dx.as_deref_mut();
    let mut tasks = Vec::new();
    for chunk in 0..geometry.batch.div_ceil(SAMPLES_PER_CHUNK) {
        let samples = chunk_samples(geometry.batch, chunk);
        let dx_chunk = match dx_rest.take() {
            Some(rest) => {
                let (dx_chunk, rest) = rest.split_at_mut(samples.len() * sample_in);
                dx_rest = Some(rest);
                Some(dx_chunk)
            }
            None => None,
        };
        tasks.push((samples, dx_chunk));
    }
    // The bias of the output made again, for a fused convolution.
    let bias = match &dy {
        OutputGrad::FromOutput { bias, .. } => bias.as_ref(),
        OutputGrad::Given(_) => None,
    };
    let direct = Direct::new(geometry, &w, bias);
    let lowering = Lowering::new(geometry);
    let weights = Weights::new(geometry, w, bias.copied(), direct.is_none());
    // An indexed parallel iterator collects in task order, whatever thread ran each task.
    let partials: Vec<Partial<F>> = tasks
        .into_par_iter()
        .map(|(samples, dx_chunk)| {
            let dy = match (&given, dy) {
                (Some(given), _) => ChunkGrad::Given(given),
                (None, OutputGrad::FromOutput { dy_of, .. }) => ChunkGrad::FromOutput(dy_of),
                (None, OutputGrad::Given(_)) => unreachable!("BUG: a given dy not read"),
            };
            backward_chunk(
                &lowering,
                direct.as_ref(),
                &x,
                &weights,
                wanted,
                samples,
                dx_chunk,
                dy,
            )
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
        x: dx.map(|dx| {
            Array4::from_shape_vec(x_shape, dx)
                .unwrap_or_else(|e| panic!("BUG: the input gradient of {geometry:?}: {e}"))
        }),
        w: dw,
        b: db,
    }
}

/// A task's `dy`: [`OutputGrad`], with a given one made a slice.
enum ChunkGrad<'a, F: Float> {
    /// `dy` of the whole batch, row-major.
    Given(&'a [F]),
    /// Made from the output, as [`OutputGrad::FromOutput`] says.
    FromOutput(GradOfOutput<'a, F>),
}

/// Backward over the chunk of `samples` of the batch (row-major `x [N, C, H, W]`), sample
/// by sample: writes their part of `dx` and returns the chunk's partial `dw` and `db`. Each
/// gradient adds the samples in order, so the sums are those of any other order of the
/// loops.
#[allow(clippy::too_many_arguments)] // each is one piece of the chunk's work
fn backward_chunk<F: Float>(
    lowering: &Lowering,
    direct: Option<&Direct<F>>,
    x: &[F],
    weights: &Weights<F>,
    wanted: Wanted,
    samples: Range<usize>,
    mut dx_chunk: Option<&mut [F]>,
    dy: ChunkGrad<F>,
) -> Partial<F> {
    let geometry = lowering.geometry;
    let (filters, positions) = (geometry.filters, geometry.positions());
    let sample_in = geometry.sample_len();
    let sample_out = filters * positions;
    let lowered = geometry.lowered_rows();
    let w = weights.w;
    let recompute = matches!(dy, ChunkGrad::FromOutput(_));
    // The direct kernel makes the output again and the weight gradient; the input gradient
    // stays a product and `col2im` (see `direct.rs` for why).
    let gemm = direct.is_none();
    // Each sample's lowered matrix is built once, for the output made again and the weight
    // gradient, while it stays in cache for both products.
    let cols_len = weights.cols_rows(geometry) * positions;
    let mut cols = (gemm && (wanted.w || recompute)).then(|| Buffer::take(cols_len));
    let mut dcols = wanted.x.then(|| Buffer::take(lowered * positions));
    let mut padded = None;
    let mut made = recompute.then(|| (Buffer::take(sample_out), Buffer::take(sample_out)));
    let mut dw = wanted.w.then(|| Array2::zeros(w.raw_dim()));
    let mut db = wanted.b.then(|| Array1::zeros(filters));

    for (s, n) in samples.enumerate() {
        let x_n = sample(x, sample_in, n);
        // A given dy_n that is almost all zeros needs neither the lowered matrix nor the
        // padded input (a recomputed one is known only after both).
        let sparse_given = match &dy {
            ChunkGrad::Given(dy) => sparse::is_sparse(sample(dy, sample_out, n)),
            ChunkGrad::FromOutput(_) => false,
        };
        let x_pad = match direct {
            Some(direct) if !sparse_given && (wanted.w || recompute) => {
                Some(direct::padded_input(direct, x_n, &mut padded))
            }
            _ => None,
        };
        if let (Some(cols), false) = (&mut cols, sparse_given) {
            im2col(lowering, x_n, cols.as_mut_slice());
        }
        let dy_n: &[F] = match (&dy, &mut made) {
            (ChunkGrad::Given(dy), _) => sample(dy, sample_out, n),
            (ChunkGrad::FromOutput(dy_of), Some((y_n, dy_n))) => {
                match (direct, x_pad, &mut cols) {
                    (Some(direct), Some(x_pad), _) => {
                        direct.forward(x_pad, y_n.as_mut_slice());
                    }
                    (None, _, Some(cols)) => {
                        product(geometry, weights, cols.as_mut_slice(), y_n.as_mut_slice())
                    }
                    _ => unreachable!("BUG: a recomputed output without its input"),
                }
                dy_of(n, y_n.as_slice(), dy_n.as_mut_slice());
                dy_n.as_slice()
            }
            _ => unreachable!("BUG: a recomputed output without its buffers"),
        };
        if let Some(db) = &mut db {
            // db[f] = sum_{n,i,j} dy[n,f,i,j]
            for (db_f, dy_f) in db.iter_mut().zip(dy_n.chunks(positions.max(1))) {
                *db_f += sum(dy_f);
            }
        }
        if sparse_given || (recompute && sparse::is_sparse(dy_n)) {
            let dw = dw.as_mut().map(weight_grad_elements);
            let dx_n = dx_chunk
                .as_deref_mut()
                .map(|dx_chunk| &mut dx_chunk[s * sample_in..(s + 1) * sample_in]);
            sparse::backward_sample(geometry, x_n, &weights.row_major, dy_n, dw, dx_n);
            continue;
        }
        if let (Some(dw), Some(direct), Some(x_pad)) = (&mut dw, direct, x_pad) {
            direct.weight_grad(x_pad, dy_n, weight_grad_elements(dw));
        }
        let dy_n = matrix(dy_n, filters, positions);
        if let (Some(dw), Some(cols)) = (&mut dw, &cols) {
            // dW_g += dy_g cols_g^T
            let cols = matrix(cols.as_slice(), lowered, positions);
            for g in 0..geometry.groups {
                let (filters, patch) = (geometry.filter_rows(g), geometry.patch_rows(g));
                tapir_core::gemm(
                    F::one(),
                    &rows(&dy_n, filters.clone()),
                    &rows(&cols, patch).t(),
                    true,
                    &mut rows_mut(dw, filters),
                );
            }
        }
        if let (Some(dx_chunk), Some(dcols)) = (&mut dx_chunk, &mut dcols) {
            let mut dcols_m = matrix_mut(dcols.as_mut_slice(), lowered, positions);
            for g in 0..geometry.groups {
                let (filters, patch) = (geometry.filter_rows(g), geometry.patch_rows(g));
                // dcols_g = W_g^T dy_g
                tapir_core::gemm(
                    F::one(),
                    &rows(&w, filters.clone()).t(),
                    &rows(&dy_n, filters),
                    false,
                    &mut rows_mut(&mut dcols_m, patch),
                );
            }
            let dx_n = &mut dx_chunk[s * sample_in..(s + 1) * sample_in];
            dx_n.fill(F::zero());
            col2im(lowering, dcols.as_slice(), dx_n);
        }
    }
    (dw, db)
}

#[cfg(test)]
mod tests {
    use rand::{Rng, SeedableRng};
    use rand_chacha::ChaCha8Rng;

    use super::*;

    /// `(input, kernel, stride, dilation, padding before, padding after)` of one axis.
    type Axis = (usize, usize, usize, usize, usize, usize);

    /// One sample of two channels, `height` by `width`.
    fn geometry(height: &Axis, width: &Axis) -> Geometry {
        let axis = |&(input, kernel, stride, dilation, before, after): &Axis| {
            AxisGeometry::resolved(input, kernel, stride, dilation, (before, after))
        };
        Geometry {
            batch: 1,
            channels: 2,
            filters: 1,
            groups: 1,
            height: axis(height),
            width: axis(width),
        }
    }

    /// `(index into cols, index into x_n)` of every element of the lowered matrix that
    /// reads the image (not padding), row by row of `cols`, as the definition of
    /// [`im2col`] says.
    fn reads(g: &Geometry) -> Vec<(usize, usize)> {
        let (h, w) = (&g.height, &g.width);
        let mut reads = Vec::new();
        for c in 0..g.channels {
            for p in 0..h.kernel {
                for q in 0..w.kernel {
                    let row = (c * h.kernel + p) * w.kernel + q;
                    for i in 0..h.output {
                        for j in 0..w.output {
                            let r = (i * h.stride + p * h.dilation).wrapping_sub(h.pad_before);
                            let s = (j * w.stride + q * w.dilation).wrapping_sub(w.pad_before);
                            if r < h.input && s < w.input {
                                let at = row * g.positions() + i * w.output + j;
                                reads.push((at, (c * h.input + r) * w.input + s));
                            }
                        }
                    }
                }
            }
        }
        reads
    }

    fn random<F: Float>(len: usize, rng: &mut ChaCha8Rng) -> Vec<F> {
        (0..len)
            .map(|_| F::from_f64(rng.random_range(-1.0..1.0)))
            .collect()
    }

    fn bits<F: Float>(xs: &[F]) -> Vec<u64> {
        xs.iter().map(|&x| Float::to_f64(x).to_bits()).collect()
    }

    /// Heights with and without padding on either side (wider than the kernel too), a
    /// stride and a dilation: `im2col` moves rows within `cols` for the first four.
    const HEIGHTS: [Axis; 6] = [
        (5, 3, 1, 1, 1, 1),
        (6, 3, 1, 1, 0, 0),
        (4, 3, 1, 1, 4, 0),
        (7, 2, 1, 1, 0, 3),
        (6, 2, 2, 1, 0, 1),
        (9, 3, 1, 2, 2, 1),
    ];

    /// Runs shorter than a vector, a whole number of vectors, and in between, with strides,
    /// dilation and padding on either side.
    const WIDTHS: [Axis; 9] = [
        (1, 1, 1, 1, 0, 0),
        (7, 3, 1, 1, 1, 1),
        (16, 1, 1, 1, 0, 0),
        (18, 3, 1, 1, 0, 0),
        (28, 3, 1, 1, 1, 1),
        (33, 2, 1, 1, 0, 3),
        (40, 5, 1, 2, 2, 0),
        (56, 5, 1, 1, 0, 0),
        (30, 3, 2, 1, 1, 1),
    ];

    /// On every geometry: `im2col` writes every element of `cols`, the image element it
    /// reads or zero; `col2im` adds every element of `dcols` to the image element it was read
    /// from, in the order of its rows (the same bits as one addition at a time).
    fn lowering_follows_its_definition<F: Float>() {
        let mut rng = ChaCha8Rng::seed_from_u64(12);
        for (height, width) in HEIGHTS
            .iter()
            .flat_map(|h| WIDTHS.iter().map(move |w| (h, w)))
        {
            let g = geometry(height, width);
            let lowering = Lowering::new(&g);
            let what = format!("{}, height {height:?}, width {width:?}", F::NAME);
            let x: Vec<F> = random(g.sample_len(), &mut rng);
            let dcols: Vec<F> = random(g.lowered_rows() * g.positions(), &mut rng);
            let mut cols_expected = vec![F::zero(); dcols.len()];
            let mut dx_expected = vec![F::zero(); x.len()];
            for (at, pixel) in reads(&g) {
                cols_expected[at] = x[pixel];
                dx_expected[pixel] += dcols[at];
            }
            // NaN wherever `im2col` would leave an element unwritten.
            let mut cols = vec![F::nan(); dcols.len()];
            im2col(&lowering, &x, &mut cols);
            assert_eq!(bits(&cols), bits(&cols_expected), "im2col, {what}");
            let mut dx = vec![F::zero(); x.len()];
            col2im(&lowering, &dcols, &mut dx);
            assert_eq!(bits(&dx), bits(&dx_expected), "col2im, {what}");
        }
    }

    #[test]
    fn im2col_reads_each_window_element_and_col2im_adds_it_back() {
        lowering_follows_its_definition::<f64>();
        lowering_follows_its_definition::<f32>();
    }
}
