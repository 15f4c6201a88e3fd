//! conv2d's direct kernel, for few input channels per group (a network's first layer, where
//! `C = 1` or 3): the output and the weight gradient computed from the sums of the module
//! doc of `conv2d` as written, on SIMD vectors, with no lowered matrix.
//!
//! Why: with `K = C/G*kh*kw` small (25 for one channel and a 5x5 filter), the product
//! `y_g = W_g cols_g` does only 25 multiply-adds per element of `y` it writes, after
//! `im2col` wrote `cols`, `kh*kw` times the size of the input: the GEMM route is bound by
//! memory, not arithmetic. The direct kernel keeps a tile of outputs in registers (4
//! filters x 3 vectors of one output row), reads each input vector once per tap for all 4
//! filters, and writes each output once.
//!
//! Taken when every window is dense and one row apart (stride 1 and dilation 1 on both
//! axes) and a group has 1 to [`MAX_DIRECT_CHANNELS`] input channels; other convolutions
//! take the GEMM route of `kernel.rs`.
//!
//! With stride and dilation 1, the padded input `x_pad` (the input with its padding
//! written out; `x_n` itself when there is none) gives
//! - the output as a valid cross-correlation (`Correlate`):
//!   `y_n[f,i,j] = b[f] + sum_{c,p,q} w[f,c,p,q] x_pad[c,i+p,j+q]`;
//! - the weight gradient as one dot product per tap (`WeightGrad`):
//!   `dw[f,c,p,q] += sum_{i,j} dy_n[f,i,j] x_pad[c,i+p,j+q]`, a vector of a row at a time.
//!
//! The input gradient stays `dcols = W^T dy` and `col2im`. As a correlation of `dy` (padded
//! by `kh-1`) with the filters turned by 180 degrees it has one output channel, so a tile
//! shares each loaded vector with one filter instead of 4: that measured slower than the
//! product on W2, and a version with tiles of 4 output rows (each loaded vector feeding up
//! to `kh` of them) measured the same (backward over forward time 1.91 against 1.89, the
//! fastest of 40 calls, four alternating runs). A network's first layer needs no input
//! gradient anyway.
//!
//! Every sum runs in a fixed order (taps in `(c,p,q)` order onto the bias, a dot product's
//! vectors in row order and its lanes as `pulp` adds them), one sample at a time, so the
//! bits do not depend on the thread count. They do depend on the instruction set (vector
//! width, fused multiply-add), as the matrix product's do.

use ndarray::{ArrayView1, ArrayView2};
use tapir_core::Float;
use tapir_core::lanes::{Arch, Simd, WithSimd};

use super::kernel::{AxisGeometry, Geometry};
use super::scratch::Buffer;

/// Input channels per group up to which the direct kernel runs: a first layer's 1 or 3
/// channels. A choice, not a measured threshold: the workloads have 1 channel (W2, the
/// CNNs' first layers, measured faster here) or 16 (W1 and the second layers, left to the
/// product, which runs them at 50-60 GFLOP/s).
pub(crate) const MAX_DIRECT_CHANNELS: usize = 4;

/// Filters per register tile in the correlation; times [`TILE_VECTORS`], the accumulators
/// (12 of the 16 vector registers of AVX2; the rest hold the inputs and a weight). Tiles of
/// 8 filters with AVX-512's 32 registers measured slower on W2's forward (the fastest of 40
/// calls 4.0-5.1 against 3.5-3.9 ms, three alternating runs).
const TILE_FILTERS: usize = 4;
/// Vectors of one output row per register tile in the correlation.
const TILE_VECTORS: usize = 3;
/// Filters per tile in the weight gradient.
const GRAD_FILTERS: usize = 2;
/// Taps of a filter row per tile in the weight gradient (a 5-wide filter's row in one): with
/// [`GRAD_FILTERS`], up to 10 running dot products, enough to hide the latency of a fused
/// multiply-add.
const GRAD_TAPS: usize = 5;

/// A convolution the direct kernel runs, with its weights laid out for it.
pub(crate) struct Direct<F: Float> {
    geometry: Geometry,
    /// Group `g`'s weights tap by tap: `taps[g][(c,p,q)][f] = w[g*F/G + f, (c,p,q)]`.
    taps: Vec<F>,
    /// The bias `[F]`, if any, that the output starts from.
    bias: Option<Vec<F>>,
    arch: Arch,
}

impl<F: Float> Direct<F> {
    /// The direct kernel for `geometry`, the weight matrix `w [F, C/G*kh*kw]` and the bias
    /// `b [F]` (of the output, when it is made), or `None` when the convolution is not one it
    /// runs.
    pub(crate) fn new(
        geometry: &Geometry,
        w: &ArrayView2<F>,
        b: Option<&ArrayView1<F>>,
    ) -> Option<Self> {
        let dense = |axis: &AxisGeometry| axis.stride == 1 && axis.dilation == 1;
        // No input channel: the GEMM route writes the bias alone.
        let applies = (1..=MAX_DIRECT_CHANNELS).contains(&geometry.channels_per_group())
            && dense(&geometry.height)
            && dense(&geometry.width)
            && geometry.positions() > 0;
        if !applies {
            return None;
        }
        let filters = geometry.filters_per_group();
        let patch = geometry.patch_len();
        let mut taps = Vec::with_capacity(geometry.filters * patch);
        for g in 0..geometry.groups {
            let first = g * filters;
            for t in 0..patch {
                taps.extend((first..first + filters).map(|f| w[[f, t]]));
            }
        }
        Some(Direct {
            geometry: *geometry,
            taps,
            bias: b.map(|b| b.to_vec()),
            arch: Arch::new(),
        })
    }

    /// `[rows, columns]` of one channel of the padded input: the valid correlation with a
    /// `kh x kw` filter gives exactly `[OH, OW]`.
    fn padded_plane(&self) -> (usize, usize) {
        let (height, width) = (&self.geometry.height, &self.geometry.width);
        (
            height.output + height.kernel - 1,
            width.output + width.kernel - 1,
        )
    }

    /// Elements of one sample's padded input, all channels.
    fn padded_len(&self) -> usize {
        let (rows, columns) = self.padded_plane();
        self.geometry.channels * rows * columns
    }

    /// Whether the input has padding on some side, so that its padded plane is larger.
    fn pads(&self) -> bool {
        let (height, width) = (&self.geometry.height, &self.geometry.width);
        (height.pad_before, width.pad_before) != (0, 0)
            || self.padded_plane() != (height.input, width.input)
    }

    /// Sample `x_n [C, H, W]` with its padding written out: `x_n` itself when there is none,
    /// else built in `scratch` (of [`Self::padded_len`] elements).
    fn padded<'a>(&self, x_n: &'a [F], scratch: &'a mut [F]) -> &'a [F] {
        if !self.pads() {
            return x_n;
        }
        let (height, width) = (&self.geometry.height, &self.geometry.width);
        let (rows, columns) = self.padded_plane();
        let plane = height.input * width.input;
        for (c, out) in scratch.chunks_mut(rows * columns).enumerate() {
            let x_c = &x_n[c * plane..(c + 1) * plane];
            embed(
                x_c,
                width.input,
                height.pad_before,
                width.pad_before,
                out,
                columns,
            );
        }
        scratch
    }

    /// Group `group`'s channels of `x_pad`, from [`Self::padded`].
    fn group_planes<'a>(&self, x_pad: &'a [F], group: usize) -> Planes<'a, F> {
        let g = &self.geometry;
        let (rows, columns) = self.padded_plane();
        let channels = g.channels_per_group();
        let len = channels * rows * columns;
        Planes {
            data: &x_pad[group * len..(group + 1) * len],
            rows,
            columns,
            channels,
            kernel: (g.height.kernel, g.width.kernel),
        }
    }

    /// `y_n [F, OH, OW] = b + w * x_pad`, overwritten; `x_pad` from [`Self::padded`].
    pub(crate) fn forward(&self, x_pad: &[F], y_n: &mut [F]) {
        let g = &self.geometry;
        let filters = g.filters_per_group();
        let (taps_len, output_len) = (filters * g.patch_len(), filters * g.positions());
        for group in 0..g.groups {
            self.arch.dispatch(Correlate {
                input: self.group_planes(x_pad, group),
                taps: &self.taps[group * taps_len..(group + 1) * taps_len],
                bias: self
                    .bias
                    .as_deref()
                    .map(|b| &b[group * filters..(group + 1) * filters]),
                output: &mut y_n[group * output_len..(group + 1) * output_len],
            });
        }
    }

    /// `dw [F, C/G*kh*kw] += dy_n * x_pad`: one sample's share of the weight gradient.
    pub(crate) fn weight_grad(&self, x_pad: &[F], dy_n: &[F], dw: &mut [F]) {
        let g = &self.geometry;
        let filters = g.filters_per_group();
        let (dw_len, output_len) = (filters * g.patch_len(), filters * g.positions());
        for group in 0..g.groups {
            self.arch.dispatch(WeightGrad {
                input: self.group_planes(x_pad, group),
                dy: &dy_n[group * output_len..(group + 1) * output_len],
                dw: &mut dw[group * dw_len..(group + 1) * dw_len],
            });
        }
    }
}

/// One group's channels of the padded input, `[channels, rows, columns]` row-major, read by
/// `kh x kw` windows: `[rows-kh+1, columns-kw+1]` of them, one per output.
#[derive(Clone, Copy)]
struct Planes<'a, F> {
    data: &'a [F],
    rows: usize,
    columns: usize,
    channels: usize,
    /// `(kh, kw)`.
    kernel: (usize, usize),
}

impl<'a, F> Planes<'a, F> {
    /// `[OH, OW]`: the windows along each axis.
    fn outputs(&self) -> (usize, usize) {
        (
            self.rows + 1 - self.kernel.0,
            self.columns + 1 - self.kernel.1,
        )
    }

    /// Channel `c`'s row `r` from column `from`, `len` elements.
    fn row(&self, c: usize, r: usize, from: usize, len: usize) -> &'a [F] {
        let start = (c * self.rows + r) * self.columns + from;
        &self.data[start..start + len]
    }
}

/// Writes `plane` (rows of `plane_columns`) into `out` (rows of `out_columns`) with its
/// first element at row `top`, column `left`; the rest of `out` is zeros. With stride 1 the
/// padded plane is exactly the input and its padding, `OH + kh - 1 = pad_top + H +
/// pad_bottom`, so the plane always fits.
fn embed<F: Float>(
    plane: &[F],
    plane_columns: usize,
    top: usize,
    left: usize,
    out: &mut [F],
    out_columns: usize,
) {
    out.fill(F::zero());
    for (row, from) in plane.chunks(plane_columns.max(1)).enumerate() {
        let start = (top + row) * out_columns + left;
        out[start..start + from.len()].copy_from_slice(from);
    }
}

/// `output[f] = bias[f] + sum_{c,p,q} taps[(c,p,q)][f] input[c, i+p, j+q]` over every
/// output position `(i,j)`: the valid cross-correlation of `input` with filters stored tap
/// by tap.
struct Correlate<'a, F> {
    input: Planes<'a, F>,
    /// `[channels*kh*kw, filters]`.
    taps: &'a [F],
    bias: Option<&'a [F]>,
    /// `[filters, OH, OW]`, overwritten.
    output: &'a mut [F],
}

impl<F: Float> WithSimd for Correlate<'_, F> {
    type Output = ();

    #[inline(always)]
    fn with_simd<S: Simd>(mut self, simd: S) {
        // The common filter widths get their own code, with the loop over a filter row
        // unrolled and its loads scheduled together; other widths loop.
        match self.input.kernel.1 {
            3 => self.all_filters::<S, 3>(simd),
            5 => self.all_filters::<S, 5>(simd),
            _ => self.all_filters::<S, 0>(simd),
        }
    }
}

impl<F: Float> Correlate<'_, F> {
    /// Every filter, [`TILE_FILTERS`] at a time; the filter's width is `KW`, or
    /// `self.input.kernel.1` when `KW` is 0.
    #[inline(always)]
    fn all_filters<S: Simd, const KW: usize>(&mut self, simd: S) {
        let (kh, kw) = self.input.kernel;
        let filters = self.taps.len() / (self.input.channels * kh * kw).max(1);
        let mut first = 0;
        while first + TILE_FILTERS <= filters {
            self.filter_block::<S, TILE_FILTERS, KW>(simd, first);
            first += TILE_FILTERS;
        }
        for f in first..filters {
            self.filter_block::<S, 1, KW>(simd, f);
        }
    }

    /// Filters `first..first+FB`, a tile of [`TILE_VECTORS`] vectors at a time along each
    /// output row, the rest of the row a vector at a time. The last vector ends at the row's
    /// end, overlapping the one before, rather than loading and storing part of a vector
    /// (masked, dearer than whole ones); the outputs it computes twice come out the same
    /// both times, lane by lane the same operations in the same order.
    #[inline(always)]
    fn filter_block<S: Simd, const FB: usize, const KW: usize>(&mut self, simd: S, first: usize) {
        let (out_rows, out_columns) = self.input.outputs();
        let lanes = F::lanes::<S>();
        let tile = TILE_VECTORS * lanes;
        for i in 0..out_rows {
            let mut j = 0;
            while j + tile <= out_columns {
                self.tile::<S, FB, TILE_VECTORS, KW>(simd, first, i, j, tile);
                j += tile;
            }
            while j < out_columns {
                let (start, width) = if out_columns >= lanes {
                    (j.min(out_columns - lanes), lanes)
                } else {
                    (j, out_columns - j)
                };
                self.tile::<S, FB, 1, KW>(simd, first, i, start, width);
                j = start + width;
            }
        }
    }

    /// Outputs `(first + fb, i, j..j+width)` for `fb < FB`, `width <= JV` vectors: the
    /// accumulators stay in registers across all taps and are stored once.
    #[inline(always)]
    fn tile<S: Simd, const FB: usize, const JV: usize, const KW: usize>(
        &mut self,
        simd: S,
        first: usize,
        i: usize,
        j: usize,
        width: usize,
    ) {
        let input = self.input;
        let kh = input.kernel.0;
        let kw = if KW == 0 { input.kernel.1 } else { KW };
        let (out_rows, out_columns) = input.outputs();
        let filters = self.taps.len() / (input.channels * kh * kw);
        let lanes = F::lanes::<S>();
        let lane_count = |v: usize| width.saturating_sub(v * lanes).min(lanes);
        let mut acc = [[F::splat(simd, F::zero()); JV]; FB];
        if let Some(bias) = self.bias {
            for (acc_f, &b) in acc.iter_mut().zip(&bias[first..first + FB]) {
                *acc_f = [F::splat(simd, b); JV];
            }
        }
        // The taps run in (c, p, q) order, `filters` weights apart.
        let mut tap = first;
        for c in 0..input.channels {
            for p in 0..kh {
                let row = input.row(c, i + p, j, width + kw - 1);
                for q in 0..kw {
                    let weights = &self.taps[tap..tap + FB];
                    tap += filters;
                    let mut xs = [F::splat(simd, F::zero()); JV];
                    for (v, x) in xs.iter_mut().enumerate() {
                        let from = q + v * lanes;
                        *x = F::load(simd, &row[from..from + lane_count(v)]);
                    }
                    for (acc_f, &w) in acc.iter_mut().zip(weights) {
                        let w = F::splat(simd, w);
                        for (a, &x) in acc_f.iter_mut().zip(&xs) {
                            *a = F::mul_add_lanes(simd, w, x, *a);
                        }
                    }
                }
            }
        }
        for (fb, acc_f) in acc.iter().enumerate() {
            let row = ((first + fb) * out_rows + i) * out_columns + j;
            let row = &mut self.output[row..row + width];
            for (v, &a) in acc_f.iter().enumerate() {
                let from = v * lanes;
                F::store(simd, &mut row[from..from + lane_count(v)], a);
            }
        }
    }
}

/// `dw[f, (c,p,q)] += sum_{i,j} dy[f,i,j] input[c, i+p, j+q]` for every filter and tap.
struct WeightGrad<'a, F> {
    input: Planes<'a, F>,
    /// `[filters, OH, OW]`.
    dy: &'a [F],
    /// `[filters, channels*kh*kw]`, added to.
    dw: &'a mut [F],
}

impl<F: Float> WithSimd for WeightGrad<'_, F> {
    type Output = ();

    #[inline(always)]
    fn with_simd<S: Simd>(mut self, simd: S) {
        let (kh, kw) = self.input.kernel;
        let filters = self.dw.len() / (self.input.channels * kh * kw).max(1);
        let mut first = 0;
        while first + GRAD_FILTERS <= filters {
            self.filter_block::<S, GRAD_FILTERS>(simd, first);
            first += GRAD_FILTERS;
        }
        for f in first..filters {
            self.filter_block::<S, 1>(simd, f);
        }
    }
}

impl<F: Float> WeightGrad<'_, F> {
    /// The taps of filters `first..first+FB`, [`GRAD_TAPS`] of a filter row at a time.
    #[inline(always)]
    fn filter_block<S: Simd, const FB: usize>(&mut self, simd: S, first: usize) {
        let (kh, kw) = self.input.kernel;
        for c in 0..self.input.channels {
            for p in 0..kh {
                for q in (0..kw).step_by(GRAD_TAPS) {
                    // A constant count of taps per tile keeps its accumulators in registers.
                    match (kw - q).min(GRAD_TAPS) {
                        1 => self.tile::<S, FB, 1>(simd, first, c, p, q),
                        2 => self.tile::<S, FB, 2>(simd, first, c, p, q),
                        3 => self.tile::<S, FB, 3>(simd, first, c, p, q),
                        4 => self.tile::<S, FB, 4>(simd, first, c, p, q),
                        _ => self.tile::<S, FB, GRAD_TAPS>(simd, first, c, p, q),
                    }
                }
            }
        }
    }

    /// Taps `(c, p, first_q..first_q+QN)` of filters `first..first+FB`: running dot
    /// products in registers over every output row, their lanes added at the end.
    ///
    /// A row's last vector ends at the row's end and overlaps the one before; only its
    /// lanes past that one add to the sums (a masked select, cheaper than a masked load). A
    /// row shorter than a vector is loaded in part.
    #[inline(always)]
    fn tile<S: Simd, const FB: usize, const QN: usize>(
        &mut self,
        simd: S,
        first: usize,
        c: usize,
        p: usize,
        first_q: usize,
    ) {
        let (kh, kw) = self.input.kernel;
        let (out_rows, out_columns) = self.input.outputs();
        let positions = out_rows * out_columns;
        let lanes = F::lanes::<S>();
        let mut acc = [[F::splat(simd, F::zero()); QN]; FB];
        let whole = out_columns / lanes * lanes;
        let last = if out_columns > whole && out_columns >= lanes {
            Some(out_columns - whole)
        } else {
            None
        };
        for i in 0..out_rows {
            let x_row = self.input.row(c, i + p, first_q, out_columns + QN - 1);
            let dy_rows: [&[F]; FB] = std::array::from_fn(|fb| {
                let start = (first + fb) * positions + i * out_columns;
                &self.dy[start..start + out_columns]
            });
            for j in (0..whole).step_by(lanes) {
                let dys: [_; FB] =
                    std::array::from_fn(|fb| F::load(simd, &dy_rows[fb][j..j + lanes]));
                for q in 0..QN {
                    let x = F::load(simd, &x_row[j + q..j + q + lanes]);
                    for (acc_f, &dy) in acc.iter_mut().zip(&dys) {
                        acc_f[q] = F::mul_add_lanes(simd, dy, x, acc_f[q]);
                    }
                }
            }
            match last {
                Some(count) => {
                    let j = out_columns - lanes;
                    let dys: [_; FB] =
                        std::array::from_fn(|fb| F::load(simd, &dy_rows[fb][j..j + lanes]));
                    for q in 0..QN {
                        let x = F::load(simd, &x_row[j + q..j + q + lanes]);
                        for (acc_f, &dy) in acc.iter_mut().zip(&dys) {
                            acc_f[q] = F::mul_add_last_lanes(simd, dy, x, acc_f[q], count);
                        }
                    }
                }
                None if whole < out_columns => {
                    let j = whole;
                    let dys: [_; FB] =
                        std::array::from_fn(|fb| F::load(simd, &dy_rows[fb][j..out_columns]));
                    for q in 0..QN {
                        let x = F::load(simd, &x_row[j + q..out_columns + q]);
                        for (acc_f, &dy) in acc.iter_mut().zip(&dys) {
                            acc_f[q] = F::mul_add_lanes(simd, dy, x, acc_f[q]);
                        }
                    }
                }
                None => {}
            }
        }
        let patch = self.input.channels * kh * kw;
        for (fb, acc_f) in acc.iter().enumerate() {
            let t = (first + fb) * patch + (c * kh + p) * kw + first_q;
            for (dw, &a) in self.dw[t..t + QN].iter_mut().zip(acc_f) {
                *dw += F::sum_lanes(simd, a);
            }
        }
    }
}

/// `x_n` with its padding written out (see [`Direct::padded`]), in a buffer taken from the
/// thread's pool the first time a sample needs one.
pub(crate) fn padded_input<'a, F: Float>(
    direct: &Direct<F>,
    x_n: &'a [F],
    scratch: &'a mut Option<Buffer<F>>,
) -> &'a [F] {
    if !direct.pads() {
        return x_n;
    }
    let len = direct.padded_len();
    let buffer = scratch.get_or_insert_with(|| Buffer::take(len));
    direct.padded(x_n, buffer.as_mut_slice())
}

#[cfg(test)]
mod tests {
    use ndarray::Array2;
    use rand::{Rng, SeedableRng};
    use rand_chacha::ChaCha8Rng;

    use super::*;

    /// `(C, F, G, [H, W], [kh, kw], [top, bottom, left, right])`.
    type Case = (usize, usize, usize, [usize; 2], [usize; 2], [usize; 4]);

    /// Rows shorter than a vector, longer than a tile, not a multiple of either; filter
    /// widths with their own code (3, 5) and without (1, 2, 7); padding on each side alone,
    /// wider than the filter, and groups.
    const CASES: [Case; 8] = [
        (1, 6, 1, [12, 40], [5, 5], [0, 0, 0, 0]),
        (3, 5, 1, [9, 70], [3, 3], [1, 1, 1, 1]),
        (2, 4, 2, [7, 7], [3, 5], [0, 2, 1, 0]),
        (4, 9, 1, [5, 3], [2, 7], [1, 0, 3, 2]),
        (1, 1, 1, [1, 1], [1, 1], [0, 0, 0, 0]),
        (1, 3, 1, [30, 17], [1, 1], [0, 0, 0, 0]),
        (2, 8, 2, [6, 33], [7, 7], [3, 3, 4, 2]),
        (1, 2, 1, [4, 20], [2, 2], [3, 0, 0, 3]),
    ];

    fn geometry(case: &Case) -> Geometry {
        let &(channels, filters, groups, [h, w], [kh, kw], [top, bottom, left, right]) = case;
        let axis = |input: usize, kernel: usize, before: usize, after: usize| {
            AxisGeometry::resolved(input, kernel, 1, 1, (before, after))
        };
        Geometry {
            batch: 1,
            channels,
            filters,
            groups,
            height: axis(h, kh, top, bottom),
            width: axis(w, kw, left, right),
        }
    }

    fn random(len: usize, rng: &mut ChaCha8Rng) -> Vec<f64> {
        (0..len).map(|_| rng.random_range(-1.0..1.0)).collect()
    }

    /// The sums of the module doc, one term at a time: `(y, dw)` for input `x`, weight `w`,
    /// bias `b` and output gradient `dy`.
    fn by_the_sums(
        g: &Geometry,
        x: &[f64],
        w: &Array2<f64>,
        b: &[f64],
        dy: &[f64],
    ) -> (Vec<f64>, Vec<f64>) {
        let (height, width) = (&g.height, &g.width);
        let (kh, kw) = (height.kernel, width.kernel);
        let (channels, filters) = (g.channels_per_group(), g.filters_per_group());
        let x_at = |c: usize, r: usize, s: usize| {
            let (r, s) = (
                r.wrapping_sub(height.pad_before),
                s.wrapping_sub(width.pad_before),
            );
            if r < height.input && s < width.input {
                x[(c * height.input + r) * width.input + s]
            } else {
                0.0
            }
        };
        let mut y = vec![0.0; g.filters * g.positions()];
        let mut dw = vec![0.0; g.filters * g.patch_len()];
        for f in 0..g.filters {
            let group = f / filters;
            for i in 0..height.output {
                for j in 0..width.output {
                    let at = (f * height.output + i) * width.output + j;
                    let mut sum = b[f];
                    for c in 0..channels {
                        for p in 0..kh {
                            for q in 0..kw {
                                let t = (c * kh + p) * kw + q;
                                let x = x_at(group * channels + c, i + p, j + q);
                                sum += w[[f, t]] * x;
                                dw[f * g.patch_len() + t] += dy[at] * x;
                            }
                        }
                    }
                    y[at] = sum;
                }
            }
        }
        (y, dw)
    }

    fn assert_close(what: &str, case: &Case, got: &[f64], expected: &[f64], tolerance: f64) {
        assert_eq!(got.len(), expected.len(), "{what} of {case:?}");
        for (k, (&got, &expected)) in got.iter().zip(expected).enumerate() {
            let error = (got - expected).abs() / expected.abs().max(1.0);
            assert!(
                error < tolerance,
                "{what}[{k}] of {case:?}: {got} vs {expected}"
            );
        }
    }

    /// Forward and weight gradient against the sums, in `f64` (to rounding) and in `f32`
    /// (the same inputs, rounded).
    #[test]
    fn forward_and_weight_gradient_follow_the_sums() {
        let mut rng = ChaCha8Rng::seed_from_u64(7);
        for case in &CASES {
            let g = geometry(case);
            let x = random(g.sample_len(), &mut rng);
            let w = Array2::from_shape_vec(
                (g.filters, g.patch_len()),
                random(g.filters * g.patch_len(), &mut rng),
            )
            .unwrap();
            let b = random(g.filters, &mut rng);
            let dy = random(g.filters * g.positions(), &mut rng);
            let (y_expected, dw_sums) = by_the_sums(&g, &x, &w, &b, &dy);
            // The kernel adds its share to what the weight gradient holds.
            let dw_before = random(dw_sums.len(), &mut rng);
            let dw_expected: Vec<f64> =
                dw_before.iter().zip(&dw_sums).map(|(a, b)| a + b).collect();

            let b_view = ArrayView1::from(&b);
            let direct =
                Direct::new(&g, &w.view(), Some(&b_view)).expect("a case the direct kernel runs");
            let mut scratch = None;
            let x_pad = padded_input(&direct, &x, &mut scratch);
            let mut y = vec![f64::NAN; y_expected.len()];
            direct.forward(x_pad, &mut y);
            assert_close("y", case, &y, &y_expected, 1e-12);
            let mut dw = dw_before.clone();
            direct.weight_grad(x_pad, &dy, &mut dw);
            assert_close("dw", case, &dw, &dw_expected, 1e-12);

            let narrow = |v: &[f64]| -> Vec<f32> { v.iter().map(|&v| v as f32).collect() };
            let wide = |v: &[f32]| -> Vec<f64> { v.iter().map(|&v| f64::from(v)).collect() };
            let w32 = w.mapv(|v| v as f32);
            let (x32, b32, dy32) = (narrow(&x), narrow(&b), narrow(&dy));
            let b32_view = ArrayView1::from(&b32);
            let direct = Direct::new(&g, &w32.view(), Some(&b32_view))
                .expect("a case the direct kernel runs");
            let mut scratch = None;
            let x_pad = padded_input(&direct, &x32, &mut scratch);
            let mut y = vec![f32::NAN; y_expected.len()];
            direct.forward(x_pad, &mut y);
            assert_close("y (f32)", case, &wide(&y), &y_expected, 1e-5);
            let mut dw = narrow(&dw_before);
            direct.weight_grad(x_pad, &dy32, &mut dw);
            assert_close("dw (f32)", case, &wide(&dw), &dw_expected, 1e-4);
        }
    }

    /// Without a bias the output is the correlation alone.
    #[test]
    fn no_bias_starts_from_zero() {
        let g = geometry(&(1, 2, 1, [3, 20], [3, 3], [0, 0, 0, 0]));
        let w = Array2::from_elem((2, 9), 1.0);
        let x = vec![1.0; g.sample_len()];
        let direct = Direct::new(&g, &w.view(), None).expect("a case the direct kernel runs");
        let mut y = vec![f64::NAN; g.filters * g.positions()];
        direct.forward(&x, &mut y);
        assert!(y.iter().all(|&y| y == 9.0), "{y:?}");
    }

    /// Strided, dilated, channel-less and many-channel convolutions take the GEMM route.
    #[test]
    fn other_convolutions_are_not_direct() {
        let w = Array2::from_elem((2, 9), 1.0);
        let base = geometry(&(1, 2, 1, [8, 8], [3, 3], [0, 0, 0, 0]));
        assert!(Direct::new(&base, &w.view(), None).is_some());
        let mut strided = base;
        strided.width.stride = 2;
        let mut dilated = base;
        dilated.height.dilation = 2;
        let mut no_channel = base;
        no_channel.channels = 0;
        let mut many = base;
        many.channels = MAX_DIRECT_CHANNELS + 1;
        for g in [strided, dilated, no_channel, many] {
            assert!(Direct::new(&g, &w.view(), None).is_none(), "{g:?}");
        }
    }
}
