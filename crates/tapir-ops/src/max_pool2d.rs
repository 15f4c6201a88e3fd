//! `max_pool2d`: the largest value of each sliding window over NCHW input, as PyTorch's
//! `nn.MaxPool2d` (dilation 1, `ceil_mode=False`).
//!
//! For `x` of shape `[N, C, H, W]`, kernel `(kh, kw)`, stride `(sh, sw)` and padding
//! `(ph, pw)`, the window of output pixel `(i, j)` is the set `R(i, j)` of input pixels
//! `(a, b)` with `i sh - ph <= a < i sh - ph + kh` and `j sw - pw <= b < j sw - pw + kw`
//! (pixels of the padding are left out: padding is `-inf`, never selected).
//!
//! - Output: `y[n, c, i, j] = max_{(a, b) in R(i, j)} x[n, c, a, b]`. A NaN in the window
//!   makes the output NaN, as in PyTorch.
//! - Gradient: let `m(i, j)` be the argmax of the window, the FIRST maximum in row-major window
//!   order when several are equal, and the LAST NaN if it holds any (PyTorch's CPU kernel). Then
//!   `dL/dx[n, c, a, b] = sum_{(i, j) : m(i, j) = (a, b)} dL/dy[n, c, i, j]`: each output's
//!   gradient goes to its argmax alone, and overlapping windows with the same argmax add up.
//! - Shape: `[N, C, OH, OW]` with `OH = floor((H + 2 ph - kh) / sh) + 1`, likewise `OW`.
//!   PyTorch's rule `ph <= kh / 2`, `pw <= kw / 2` holds, so no window is padding only.
//!
//! **After a ReLU** ([`AfterRelu`]`<MaxPool2d>`, what a network runs when a `relu` feeds the pool and
//! nothing else reads it): `y = max_pool2d(relu(x))` in one pass over `x`, without the ReLU's
//! tensor. `relu` never decreases and keeps NaN, so `y = relu(max_pool2d(x))`: the window's
//! maximum, NaN if it holds one, and 0 if it is not above 0. The pool's gradient goes to the
//! argmax of `relu(x)`, which is the argmax of `x` when `y > 0` or `y` is NaN, and `relu`
//! passes it on there (`x > 0` or NaN). When `y = 0`, `relu(x)` is 0 all over the window (a
//! NaN would have made `y` NaN), its first pixel takes the pool's gradient and `relu` stops
//! it (`x <= 0` there): nothing flows back. The same bits as the two ops one after the other.
//!
//! **After a ReLU after a `conv2d`** of short filters, the pooling also runs inside the
//! convolution, sample by sample (`conv2d::ConvReluPool`, see `conv2d/fused.rs`), through
//! the same plane-by-plane code as here.

use std::sync::Arc;

use ndarray::{ArrayD, ArrayViewD};
use serde::Deserialize;
use tapir_core::lanes::{Arch, Simd, WithSimd};
use tapir_core::{Arity, BackwardCx, CaseInput, Float, Gen, GradcheckCase, Op, OpType, Result};

use crate::conv2d::{self, Conv2d};
use crate::pooling::{self, PlanePool, PlanePooling, Window2d};
use crate::relu::{AfterRelu, fuse_after_relu, relu};
use crate::shape::{self, Padding, Pair};

/// `max_pool2d`: the maximum of each `kernel` window, windows `stride` apart.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MaxPool2d {
    /// Window size: `2`, or `(height, width)`.
    pub kernel: Pair,
    /// Step between windows; the kernel when omitted (PyTorch's default).
    #[serde(default, deserialize_with = "pooling::some_pair")]
    pub stride: Option<Pair>,
    /// `-inf` pixels added on each side; at most half the kernel on each axis. Default 0.
    #[serde(default = "pooling::no_padding")]
    pub padding: Pair,
}

impl MaxPool2d {
    /// The shape rule's checks, and the window geometry for `input`.
    fn window(&self, input: &[usize]) -> Result<Window2d> {
        Window2d::new(
            <Self as OpType>::NAME,
            input,
            self.kernel,
            self.stride,
            self.padding,
        )
    }
}

/// [`MaxPool2d`]'s windows over one input shape.
pub(crate) struct MaxPlanes {
    g: Window2d,
    windows: pooling::RowWindows,
    /// 2x2 windows 2 apart without padding: [`tiles_2x2_backward`] applies.
    tiles_2x2: bool,
}

impl<F: Float> PlanePool<F> for MaxPlanes {
    fn plane_lens(&self) -> (usize, usize) {
        let ((h, w), (oh, ow)) = (self.g.input, self.g.output);
        (h * w, oh * ow)
    }

    fn work_per_plane(&self) -> usize {
        self.g.work_per_plane()
    }

    fn forward_plane(&self, x: &[F], y: &mut [F], after_relu: bool) {
        for (i, y_row) in y.chunks_mut(self.g.output.1).enumerate() {
            pooling::row_max(&self.g, &self.windows, x, i, y_row);
            if after_relu {
                y_row.iter_mut().for_each(|m| *m = relu(*m));
            }
        }
    }

    fn backward_plane(&self, x: &[F], y: &[F], dy: &[F], dx: &mut [F], after_relu: bool) {
        let (w, ow) = (self.g.input.1, self.g.output.1);
        if self.tiles_2x2 {
            tiles_2x2_backward(x, w, y, dy, ow, dx, after_relu);
            return;
        }
        let mut index = vec![0; ow];
        for (i, (dy_row, max)) in dy.chunks(ow).zip(y.chunks(ow)).enumerate() {
            // After a ReLU, a maximum above 0 (or NaN) is a pixel of `x` itself, found as
            // without the ReLU; a maximum of 0 sends nothing back (see the module doc).
            pooling::row_argmax(&self.g, &self.windows, x, i, max, &mut index);
            for ((&dy, &m), &k) in dy_row.iter().zip(max).zip(&index) {
                if !(after_relu && m == F::zero()) {
                    dx[k] += dy;
                }
            }
        }
    }
}

/// [`MaxPool2d::pool_backward`] for 2x2 windows 2 apart without padding (the usual pooling),
/// on one plane `w` pixels wide, `dx` holding zeros: each window's argmax computed from its
/// four comparisons with arithmetic instead of a search. Which pixel is the maximum is
/// data, as unpredictable as a coin: any branch on it is mispredicted half the time, which
/// the search's loop was (2.8x slower on `graphs/cnn-2.ron`'s `pool1` input, `[64, 16, 52, 52]`).
///
/// The same rule as the search: the first pixel equal to the maximum `m` (the last NaN if
/// `m` is NaN) takes `0 + dL/dy`; after a ReLU, not if `m` is 0. Pixels no window covers (an
/// odd last row or column) keep their zeros.
///
/// A row's windows go a vector of them at a time: their pixels loaded two vectors per image row
/// and split into even and odd columns (`Lanes::deinterleave`, whose lane order is the
/// instruction set's), so that lane `l` of the four vectors holds the four pixels of one
/// window; its maximum is found again from them as the forward found it, and its gradient,
/// spread to both columns of its window, is split the same way. The four gradients go back in
/// column order (`Lanes::interleave`) and are added to `dx`. A row that is not a whole number
/// of vectors ends on a vector overlapping the one before, whose windows done already get a
/// gradient of 0 (adding 0 changes no pixel: none holds -0, as `0 + x` never is). A window
/// holding a NaN sends nothing back there and gets its gradient afterwards, one at a time, as
/// does every window of a row shorter than a vector.
fn tiles_2x2_backward<F: Float>(
    x: &[F],
    w: usize,
    y: &[F],
    dy: &[F],
    ow: usize,
    dx: &mut [F],
    after_relu: bool,
) {
    Arch::new().dispatch(Tiles2x2Backward {
        x,
        w,
        y,
        dy,
        ow,
        dx,
        after_relu,
    });
}

/// [`tiles_2x2_backward`]'s arguments, for a kernel compiled once per instruction set.
struct Tiles2x2Backward<'a, F> {
    x: &'a [F],
    w: usize,
    y: &'a [F],
    dy: &'a [F],
    ow: usize,
    dx: &'a mut [F],
    after_relu: bool,
}

/// Lanes in the widest vector of any instruction set `pulp` picks (16 `f32`s, AVX-512).
const MAX_LANES: usize = 16;

impl<F: Float> WithSimd for Tiles2x2Backward<'_, F> {
    type Output = ();

    #[inline(always)]
    fn with_simd<S: Simd>(self, simd: S) {
        let Tiles2x2Backward {
            x,
            w,
            y,
            dy,
            ow,
            dx,
            after_relu,
        } = self;
        let lanes = F::lanes::<S>();
        let whole = if lanes <= MAX_LANES { ow / lanes } else { 0 };
        let zero = F::splat(simd, F::zero());
        let mut spread_buffer = [F::zero(); 2 * MAX_LANES];
        let rows = x.chunks_exact(2 * w).zip(dx.chunks_exact_mut(2 * w));
        for ((x, dx), (y, dy)) in rows.zip(y.chunks_exact(ow).zip(dy.chunks_exact(ow))) {
            // Whole vectors of windows, then one ending on the last window, whose first
            // `done` windows the whole vectors did.
            let last =
                (whole > 0 && ow % lanes != 0).then(|| (ow - lanes, whole * lanes - (ow - lanes)));
            let blocks = (0..whole).map(|v| (v * lanes, 0)).chain(last);
            for (start, done) in blocks {
                let (windows, pixels) = (start..start + lanes, 2 * start);
                let (top, bottom) = x.split_at(w);
                let [p0, p1] = split_columns(simd, top, pixels, lanes);
                let [p2, p3] = split_columns(simd, bottom, pixels, lanes);
                // The windows' maxima as the forward found them (`if v > m { v } else { m }`
                // from -inf, in pixel order): the same bits as `y` where no pixel is NaN.
                let mut m = F::splat(simd, F::neg_infinity());
                let mut g = spread(simd, &mut spread_buffer, &dy[windows], done);
                for p in [p0, p1, p2, p3] {
                    m = F::select_lanes(simd, F::greater_lanes(simd, p, m), p, m);
                    // A window with a NaN sends nothing here (its maximum is NaN).
                    g = F::select_lanes(simd, F::equal_lanes(simd, p, p), g, zero);
                }
                if after_relu {
                    // After a ReLU the maximum is max(m, 0): one of 0 sends nothing back.
                    g = F::select_lanes(simd, F::greater_lanes(simd, m, zero), g, zero);
                }
                // The first pixel equal to m takes g (the last one, if none before it is);
                // the ones after it take 0.
                let mut gs = [zero; 4];
                for (g_p, p) in gs.iter_mut().zip([p0, p1, p2]) {
                    let is_max = F::equal_lanes(simd, p, m);
                    *g_p = F::select_lanes(simd, is_max, g, zero);
                    g = F::select_lanes(simd, is_max, zero, g);
                }
                gs[3] = g;
                let [g0, g1, g2, g3] = gs;
                let (dx_top, dx_bottom) = dx.split_at_mut(w);
                add_columns(simd, dx_top, pixels, lanes, [g0, g1]);
                add_columns(simd, dx_bottom, pixels, lanes, [g2, g3]);
            }
            for (j, (&m, &g)) in y.iter().zip(dy).enumerate() {
                if whole == 0 || m.is_nan() {
                    window_backward(x, w, dx, j, m, g, after_relu);
                }
            }
        }
    }
}

/// The `2 * lanes` pixels of `row` from `pixels` on, as its even and odd columns.
#[inline(always)]
fn split_columns<F: Float, S: Simd>(
    simd: S,
    row: &[F],
    pixels: usize,
    lanes: usize,
) -> [F::Vector<S>; 2] {
    let pair = [
        F::load(simd, &row[pixels..pixels + lanes]),
        F::load(simd, &row[pixels + lanes..pixels + 2 * lanes]),
    ];
    F::deinterleave(simd, pair)
}

/// Adds the gradients of `lanes` windows' even and odd columns to `dx`'s `2 * lanes` pixels
/// from `pixels` on, in column order.
#[inline(always)]
fn add_columns<F: Float, S: Simd>(
    simd: S,
    dx: &mut [F],
    pixels: usize,
    lanes: usize,
    columns: [F::Vector<S>; 2],
) {
    let [a, b] = F::interleave(simd, columns);
    let (lo, hi) = dx[pixels..pixels + 2 * lanes].split_at_mut(lanes);
    F::store(simd, lo, F::add_lanes(simd, F::load(simd, lo), a));
    F::store(simd, hi, F::add_lanes(simd, F::load(simd, hi), b));
}

/// One value per window (`values`, a vector's worth) in the lanes of its window's pixels as
/// [`split_columns`] gives them; 0 for the first `done` windows.
#[inline(always)]
fn spread<F: Float, S: Simd>(
    simd: S,
    buffer: &mut [F; 2 * MAX_LANES],
    values: &[F],
    done: usize,
) -> F::Vector<S> {
    for (pair, &v) in buffer.chunks_exact_mut(2).zip(values) {
        pair[0] = v;
        pair[1] = v;
    }
    buffer[..2 * done].fill(F::zero());
    split_columns(simd, &buffer[..], 0, values.len())[0]
}

/// Window `j` of a row pair `x` (two rows `w` wide; `dx` alike), maximum `m`, gradient `g`:
/// the first pixel equal to `m` (the last NaN if `m` is NaN) takes `0 + g`; after a ReLU,
/// not if `m` is 0.
#[inline(always)]
fn window_backward<F: Float>(
    x: &[F],
    w: usize,
    dx: &mut [F],
    j: usize,
    m: F,
    g: F,
    after_relu: bool,
) {
    // The window's pixels in row-major order: 0, 1 on top, 2, 3 below.
    let at = |pixel: usize| 2 * j + (pixel & 1) + (pixel >> 1) * w;
    let (pixel, flows) = if m.is_nan() {
        // The last NaN, as `pooling::argmax` (and PyTorch) pick it; rare, so this branch is
        // predicted right.
        let pixels = [x[at(0)], x[at(1)], x[at(2)], x[at(3)]];
        (pixels.iter().rposition(|v| v.is_nan()).unwrap_or(0), true)
    } else {
        // The first of the four equal to m: 0 if the first is, else 1 if the second is,
        // else 2 if the third is, else 3, without a branch (which pixel it is, is data).
        let [a, b, c] = [x[at(0)] == m, x[at(1)] == m, x[at(2)] == m].map(usize::from);
        let first = (1 - a) * (1 + (1 - b) * (1 + (1 - c)));
        // After a ReLU, a window whose maximum is 0 sends nothing back.
        (first, !(after_relu & (m == F::zero())))
    };
    dx[at(pixel)] += [F::zero(), g][usize::from(flows)];
}

impl<F: Float> Op<F> for MaxPool2d {
    fn name(&self) -> &'static str {
        <Self as OpType>::NAME
    }

    fn arity(&self) -> Arity {
        Arity::Exactly(1)
    }

    fn output_shape(&self, inputs: &[&[usize]]) -> Result<Vec<usize>> {
        shape::expect_inputs(<Self as OpType>::NAME, inputs, 1)?;
        Ok(self.window(inputs[0])?.output_shape())
    }

    fn forward(&self, inputs: &[ArrayViewD<F>]) -> Result<ArrayD<F>> {
        pooling::pool(self, &inputs[0], false)
    }

    fn backward(&self, cx: &BackwardCx<F>) -> Result<Vec<Option<ArrayD<F>>>> {
        pooling::unpool(self, cx, false)
    }

    fn flops(&self, inputs: &[&[usize]]) -> u64 {
        // One comparison per window element.
        inputs
            .first()
            .and_then(|input| self.window(input).ok())
            .map_or(0, |g| g.visits())
    }

    fn fused_after(
        &self,
        producer: &dyn Op<F>,
        producer_inputs: &[&[usize]],
    ) -> Option<Arc<dyn Op<F>>> {
        let _ = producer_inputs; // a ReLU fuses whatever its shape
        fuse_after_relu(self, producer)
    }
}

impl<F: Float> PlanePooling<F> for MaxPool2d {
    const RELU_FUSED_NAME: &'static str = "relu_max_pool2d";
    const CONV_FUSED_NAME: &'static str = "conv2d_relu_max_pool2d";
    type Planes = MaxPlanes;

    fn planes(&self, input: &[usize]) -> Result<MaxPlanes> {
        let g = self.window(input)?;
        Ok(MaxPlanes {
            windows: pooling::RowWindows::new(&g),
            tiles_2x2: g.kernel == (2, 2) && g.stride == (2, 2) && g.padding == (0, 0),
            g,
        })
    }
}

impl OpType for MaxPool2d {
    const NAME: &'static str = "max_pool2d";

    fn gradcheck_cases() -> Vec<GradcheckCase> {
        // Distinct values, evenly spaced (at least 2 / 149 apart in the largest case, far
        // beyond the finite-difference step): no nudge can change a window's argmax, so max
        // is smooth at every point checked.
        let distinct = Gen::Distinct {
            low: -1.0,
            high: 1.0,
        };
        let pool = |kernel, stride, padding| MaxPool2d {
            kernel,
            stride,
            padding,
        };
        let case = |label, op, shape: &[usize]| {
            GradcheckCase::new(label, op, vec![CaseInput::new("x", shape, distinct)])
        };
        vec![
            // Windows overlap by one row and column: a pixel there can win several windows.
            case(
                "kernel 3 stride 2",
                pool(Pair::Both(3), Some(Pair::Both(2)), Pair::Both(0)),
                &[1, 1, 7, 7],
            ),
            case(
                "padding 1",
                pool(Pair::Both(3), Some(Pair::Both(2)), Pair::Both(1)),
                &[1, 1, 5, 5],
            ),
            // 7x5 with kernel 2: the last row and column belong to no window.
            case(
                "odd 7x5",
                pool(Pair::Both(2), None, Pair::Both(0)),
                &[1, 2, 7, 5],
            ),
            case(
                "kernel 2x3 stride 1x2 padding 1",
                pool(
                    Pair::PerAxis(2, 3),
                    Some(Pair::PerAxis(1, 2)),
                    Pair::Both(1),
                ),
                &[1, 1, 6, 7],
            ),
            case(
                "batch 2 channels 3",
                pool(Pair::Both(2), Some(Pair::Both(1)), Pair::Both(0)),
                &[2, 3, 5, 5],
            ),
            // After a ReLU (the fused op). Distinct values again, none within 0.004 of the
            // ReLU's kink at 0 (0 would need 199 | len - 1); the second case is mostly
            // negative, so that many windows have maximum 0 and send nothing back.
            GradcheckCase::new(
                "after relu kernel 3 stride 2",
                AfterRelu(pool(Pair::Both(3), Some(Pair::Both(2)), Pair::Both(0))),
                vec![CaseInput::new(
                    "x",
                    &[1, 2, 7, 7],
                    Gen::Distinct {
                        low: -0.99,
                        high: 1.0,
                    },
                )],
            ),
            GradcheckCase::new(
                "after relu kernel 2 mostly negative",
                AfterRelu(pool(Pair::Both(2), None, Pair::Both(0))),
                vec![CaseInput::new(
                    "x",
                    &[2, 2, 6, 5],
                    Gen::Distinct {
                        low: -1.49,
                        high: 0.5,
                    },
                )],
            ),
            // After a ReLU after a convolution (the fused op of the three): the pooling
            // reads the conv's maps; uniform draws make a tie or a map value within the
            // finite-difference step of 0 improbable.
            conv2d::conv_relu_case(
                "after conv2d and relu",
                Conv2d::new(3, Pair::Both(3)),
                pool(Pair::Both(2), None, Pair::Both(0)),
                &[2, 2, 7, 7],
            ),
            conv2d::conv_relu_case(
                "after padded conv2d and relu kernel 3 stride 2",
                Conv2d {
                    padding: Padding::All(1),
                    ..Conv2d::new(2, Pair::Both(3))
                },
                pool(Pair::Both(3), Some(Pair::Both(2)), Pair::Both(0)),
                &[1, 1, 6, 6],
            ),
            GradcheckCase::new(
                "after relu kernel 2x3 stride 1x2 padding 1",
                AfterRelu(pool(
                    Pair::PerAxis(2, 3),
                    Some(Pair::PerAxis(1, 2)),
                    Pair::Both(1),
                )),
                vec![CaseInput::new(
                    "x",
                    &[1, 1, 6, 7],
                    Gen::Distinct {
                        low: -0.99,
                        high: 1.0,
                    },
                )],
            ),
        ]
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::{Array, ArrayD, IxDyn, arr2};
    use tapir_core::{Error, Tape};

    fn pool(kernel: usize, stride: usize, padding: usize) -> MaxPool2d {
        MaxPool2d {
            kernel: Pair::Both(kernel),
            stride: Some(Pair::Both(stride)),
            padding: Pair::Both(padding),
        }
    }

    /// An `[1, 1, H, W]` input from rows.
    fn image<const W: usize>(rows: &[[f64; W]]) -> ArrayD<f64> {
        arr2(rows)
            .into_shape_with_order(IxDyn(&[1, 1, rows.len(), W]))
            .unwrap()
    }

    fn shape_error(op: &MaxPool2d, input: &[usize]) -> String {
        Op::<f32>::output_shape(op, &[input])
            .unwrap_err()
            .to_string()
    }

    #[test]
    fn forward_and_backward_by_hand() {
        let mut tape = Tape::<f64>::new();
        let x = tape.leaf(
            image(&[
                [1.0, 5.0, 2.0, 0.0],
                [3.0, 4.0, 8.0, 6.0],
                [7.0, 0.0, 1.0, 2.0],
                [9.0, 3.0, 4.0, 5.0],
            ]),
            true,
        );
        let y = tape.apply(pool(2, 2, 0), &[&x]).unwrap();
        // Windows: max{1, 5, 3, 4} = 5 at (0, 1); max{2, 0, 8, 6} = 8 at (1, 2);
        //          max{7, 0, 9, 3} = 9 at (3, 0); max{1, 2, 4, 5} = 5 at (3, 3).
        assert_eq!(*y.value(), image(&[[5.0, 8.0], [9.0, 5.0]]));
        let dy = image(&[[10.0, 20.0], [30.0, 40.0]]);
        let grads = tape.backward_from(&y, dy).unwrap();
        // Each output gradient lands on its window's argmax; every other pixel gets 0.
        let expected = image(&[
            [0.0, 10.0, 0.0, 0.0],
            [0.0, 0.0, 20.0, 0.0],
            [0.0, 0.0, 0.0, 0.0],
            [30.0, 0.0, 0.0, 40.0],
        ]);
        assert_eq!(grads.get(&x).unwrap(), &expected);
    }

    #[test]
    fn padding_is_minus_infinity() {
        // Kernel 2, stride 2, padding 1 on 3x3: OH = (3 + 2 - 2) / 2 + 1 = 2. The windows
        // cover input rows {0} and {1, 2}, likewise columns. All inputs are negative, so zero
        // padding would give 0 everywhere: y = [[max{-1}, max{-2, -3}],
        //                                       [max{-4, -7}, max{-5, -6, -8, -9}]].
        let x = image(&[[-1.0, -2.0, -3.0], [-4.0, -5.0, -6.0], [-7.0, -8.0, -9.0]]);
        let y = Op::<f64>::forward(&pool(2, 2, 1), &[x.view()]).unwrap();
        assert_eq!(y, image(&[[-1.0, -2.0], [-4.0, -5.0]]));
    }

    #[test]
    fn the_first_of_equal_maxima_takes_the_gradient() {
        // Kernel 2, stride 1 on 2x3: windows {2, 7, 7, 7} and {7, 7, 7, 1}. Both maxima are
        // 7; the first in row-major window order is (0, 1) in both windows, so it gets
        // 1 + 10 = 11 and the other 7s get nothing.
        let mut tape = Tape::<f64>::new();
        let x = tape.leaf(image(&[[2.0, 7.0, 7.0], [7.0, 7.0, 1.0]]), true);
        let y = tape.apply(pool(2, 1, 0), &[&x]).unwrap();
        assert_eq!(*y.value(), image(&[[7.0, 7.0]]));
        let grads = tape.backward_from(&y, image(&[[1.0, 10.0]])).unwrap();
        assert_eq!(
            grads.get(&x).unwrap(),
            &image(&[[0.0, 11.0, 0.0], [0.0, 0.0, 0.0]])
        );
    }

    #[test]
    fn nan_propagates() {
        let x = image(&[[1.0, f64::NAN], [2.0, 3.0]]);
        let y = Op::<f64>::forward(&pool(2, 2, 0), &[x.view()]).unwrap();
        assert!(y[[0, 0, 0, 0]].is_nan());
    }

    #[test]
    fn planes_are_pooled_independently() {
        // Plane p holds p * 100 + (0..16): each plane's maximum of a 4x4 window is its last.
        let x = Array::from_shape_fn((3, 5, 4, 4), |(n, c, a, b)| {
            ((n * 5 + c) * 100 + a * 4 + b) as f32
        })
        .into_dyn();
        let y = Op::<f32>::forward(&pool(4, 4, 0), &[x.view()]).unwrap();
        let expected =
            Array::from_shape_fn((3, 5, 1, 1), |(n, c, _, _)| ((n * 5 + c) * 100 + 15) as f32);
        assert_eq!(y, expected.into_dyn());
    }

    #[test]
    fn strided_views_are_read_in_logical_order() {
        // The same image stored transposed: forward must see [[1, 5], [3, 4]] either way.
        let stored = image(&[[1.0, 3.0], [5.0, 4.0]]);
        let x = stored.view().permuted_axes(IxDyn(&[0, 1, 3, 2]));
        let op = pool(2, 1, 1);
        let y = Op::<f64>::forward(&op, std::slice::from_ref(&x)).unwrap();
        assert_eq!(y, Op::<f64>::forward(&op, &[x.to_owned().view()]).unwrap());
        // The top-right window holds only x[0, 1] = 5 (the rest is padding).
        assert_eq!(y[[0, 0, 0, 1]], 5.0);
    }

    #[test]
    fn output_size_follows_the_formula() {
        // OH = (7 + 2 - 2) / 1 + 1 = 8, OW = (6 + 2 - 3) / 2 + 1 = 3.
        let op = MaxPool2d {
            kernel: Pair::PerAxis(2, 3),
            stride: Some(Pair::PerAxis(1, 2)),
            padding: Pair::Both(1),
        };
        assert_eq!(
            Op::<f32>::output_shape(&op, &[&[2, 3, 7, 6]]).unwrap(),
            vec![2, 3, 8, 3]
        );
        // Stride defaults to the kernel: (7 - 3) / 3 + 1 = 2.
        let op = MaxPool2d {
            stride: None,
            ..pool(3, 1, 0)
        };
        assert_eq!(
            Op::<f32>::output_shape(&op, &[&[1, 1, 7, 7]]).unwrap(),
            vec![1, 1, 2, 2]
        );
    }

    #[test]
    fn bad_shapes_and_hyperparameters_are_errors() {
        assert_eq!(
            shape_error(&pool(2, 2, 0), &[1, 4, 4]),
            "max_pool2d: input must have rank 4 (N, C, H, W), got shape [1, 4, 4]"
        );
        assert_eq!(
            shape_error(&pool(0, 1, 0), &[1, 1, 4, 4]),
            "max_pool2d: invalid hyperparameter: kernel must be at least 1, got 0"
        );
        assert_eq!(
            shape_error(&pool(2, 0, 0), &[1, 1, 4, 4]),
            "max_pool2d: invalid hyperparameter: stride must be at least 1, got 0"
        );
        let op = MaxPool2d {
            padding: Pair::PerAxis(1, 2),
            ..pool(3, 1, 0)
        };
        assert_eq!(
            shape_error(&op, &[1, 1, 4, 4]),
            "max_pool2d: invalid hyperparameter: padding (1, 2) must be at most half the kernel 3 \
             on each axis, as in PyTorch: width padding 2 > 3 / 2 would make a window of padding \
             only; use padding at most 1"
        );
        assert_eq!(
            shape_error(&pool(3, 1, 0), &[1, 1, 2, 5]),
            "max_pool2d: height: the window spans 3 pixels (kernel 3, dilation 1) but the padded \
             input has only 2 (2 + padding 0 + 0); use a smaller kernel or more padding \
             (input [1, 1, 2, 5])"
        );
        assert_eq!(
            shape_error(&pool(2, 1, 1), &[1, 1, 0, 5]),
            "max_pool2d: input [1, 1, 0, 5] has no pixels; pooling needs height and width of at least 1"
        );
        let err = Op::<f32>::output_shape(&pool(2, 2, 0), &[&[1, 1, 4, 4], &[1]]).unwrap_err();
        assert!(matches!(err, Error::Arity { .. }), "{err}");
    }

    #[test]
    fn builds_from_hyperparameter_text() {
        let registry = crate::builtin_registry();
        let entry = registry.get("max_pool2d").unwrap();
        let op = entry
            .build_f64("(kernel: (2, 3), stride: (1, 2), padding: (1, 0))")
            .unwrap();
        // OH = (4 + 2 - 2) / 1 + 1 = 5, OW = (5 - 3) / 2 + 1 = 2.
        assert_eq!(op.output_shape(&[&[1, 1, 4, 5]]).unwrap(), vec![1, 1, 5, 2]);
        // RON's own spelling of an option works too.
        let op = entry.build_f32("(kernel: 2, stride: Some(1))").unwrap();
        assert_eq!(op.output_shape(&[&[1, 1, 4, 5]]).unwrap(), vec![1, 1, 3, 4]);
        let op = entry.build_f32("(kernel: 2, stride: None)").unwrap();
        assert_eq!(op.output_shape(&[&[1, 1, 4, 5]]).unwrap(), vec![1, 1, 2, 2]);
        let op = entry.build_f32("(kernel: 2)").unwrap();
        assert_eq!(op.output_shape(&[&[1, 1, 4, 5]]).unwrap(), vec![1, 1, 2, 2]);
        assert_eq!(
            entry
                .build_f64("(kernel: 2, stride: -1)")
                .unwrap_err()
                .to_string(),
            "max_pool2d: hyperparameters at line 1, column 22: a number, (height, width), Some(...) or None"
        );
        assert_eq!(
            entry
                .build_f64("(kernel: 2, dilation: 2)")
                .unwrap_err()
                .to_string(),
            "max_pool2d: hyperparameters at line 1, column 13: Unexpected field named `dilation` in `MaxPool2d`, expected one of `kernel`, `stride`, or `padding` instead"
        );
    }

    /// Relu then `op`, and `op`'s fused form, on `x`: each one's output and gradient for
    /// `dy` (the same for both: the output gradient is drawn from the output's shape).
    fn unfused_and_fused(
        op: &MaxPool2d,
        x: &ArrayD<f32>,
        dy: &dyn Fn(&[usize]) -> ArrayD<f32>,
    ) -> [(ArrayD<f32>, ArrayD<f32>); 2] {
        let run = |fused: bool| {
            let mut tape = Tape::<f32>::new();
            let leaf = tape.leaf(x.clone(), true);
            let y = if fused {
                let relu: &dyn Op<f32> = &crate::Relu;
                let fused = Op::<f32>::fused_after(op, relu, &[x.shape()])
                    .expect("max pooling fuses a relu");
                tape.apply_shared(fused, &[&leaf]).unwrap()
            } else {
                let r = tape.apply(crate::Relu, &[&leaf]).unwrap();
                tape.apply(op.clone(), &[&r]).unwrap()
            };
            let grads = tape.backward_from(&y, dy(y.shape())).unwrap();
            (y.value().clone(), grads.get(&leaf).unwrap().clone())
        };
        [run(false), run(true)]
    }

    #[test]
    fn after_a_relu_the_fused_op_gives_the_same_bits_as_the_two_ops() {
        // Ties, zeros (the kink), -0.0, NaN and -inf among ordinary values, on tiling windows
        // (the row kernels' fast path), overlapping ones and padded ones.
        let values = [
            0.5,
            -1.0,
            0.0,
            2.0,
            2.0,
            -0.0,
            f32::NAN,
            -3.0,
            f32::NEG_INFINITY,
            1.5,
            -0.25,
            0.0,
            2.0,
        ];
        let x = Array::from_shape_fn((2, 3, 9, 10), |(n, c, h, w)| {
            values[(n * 7 + c * 5 + h * 3 + w * 11) % values.len()]
        })
        .into_dyn();
        let dy = |shape: &[usize]| {
            let len = shape.iter().product::<usize>();
            let values = (0..len).map(|k| (k * 7 % 5) as f32 - 2.0).collect();
            ArrayD::from_shape_vec(IxDyn(shape), values).unwrap()
        };
        for op in [
            pool(2, 2, 0),
            pool(3, 3, 0),
            pool(3, 1, 1),
            pool(2, 1, 1),
            pool(3, 2, 1),
        ] {
            let [(y, dx), (fused_y, fused_dx)] = unfused_and_fused(&op, &x, &dy);
            // Bit patterns, so that NaN == NaN and -0.0 != 0.0.
            let bits = |a: &ArrayD<f32>| a.mapv(f32::to_bits);
            assert_eq!(bits(&fused_y), bits(&y), "{op:?}");
            assert_eq!(bits(&fused_dx), bits(&dx), "{op:?}");
        }
    }

    #[test]
    fn after_a_relu_by_hand() {
        // Windows (kernel 2): {1, -5, 3, 4} -> 4 at (1, 1); {-2, -1, -8, -6} -> relu's 0,
        // nothing flows back; {NaN, 0, 9, 3} -> NaN, which relu keeps, and the gradient
        // reaches it; {0, 0, 0, 0} -> 0, nothing flows back.
        let x = image(&[
            [1.0, -5.0, -2.0, -1.0],
            [3.0, 4.0, -8.0, -6.0],
            [f64::NAN, 0.0, 0.0, 0.0],
            [9.0, 3.0, 0.0, 0.0],
        ]);
        let fused = AfterRelu(pool(2, 2, 0));
        let mut tape = Tape::<f64>::new();
        let leaf = tape.leaf(x, true);
        let y = tape.apply(fused, &[&leaf]).unwrap();
        let value = y.value();
        let not_nan = [
            value[[0, 0, 0, 0]],
            value[[0, 0, 0, 1]],
            value[[0, 0, 1, 1]],
        ];
        assert_eq!(not_nan, [4.0, 0.0, 0.0]);
        assert!(value[[0, 0, 1, 0]].is_nan());
        let grads = tape
            .backward_from(&y, image(&[[10.0, 20.0], [30.0, 40.0]]))
            .unwrap();
        let expected = image(&[
            [0.0, 0.0, 0.0, 0.0],
            [0.0, 10.0, 0.0, 0.0],
            [30.0, 0.0, 0.0, 0.0],
            [0.0, 0.0, 0.0, 0.0],
        ]);
        assert_eq!(grads.get(&leaf).unwrap(), &expected);
    }

    #[test]
    fn only_a_relu_is_fused() {
        let op = pool(2, 2, 0);
        assert!(Op::<f32>::fused_after(&op, &crate::Relu, &[&[1, 1, 4, 4]]).is_some());
        assert!(Op::<f32>::fused_after(&op, &crate::Sigmoid, &[&[1, 1, 4, 4]]).is_none());
        assert!(Op::<f32>::fused_after(&op, &op, &[&[1, 1, 4, 4]]).is_none());
    }

    #[test]
    fn two_by_two_tiles_agree_with_the_window_by_window_argmax() {
        // The 2x2 fast path against the definition, window by window: every window of four
        // pixels from {3, 1, 0, -1, NaN, -inf} (all ties, NaN and -inf patterns), -0.0
        // gradients among others, and a last row and column that no window covers; with and
        // without a ReLU before; in f32 and f64, on rows of whole vectors, of whole vectors
        // and a few windows more (the last vector overlaps), and shorter than a vector.
        for windows in [1296, 1291, 26, 17, 9, 7, 1] {
            two_by_two_tiles_case::<f32>(windows);
            two_by_two_tiles_case::<f64>(windows);
        }
    }

    fn two_by_two_tiles_case<F: Float>(windows: usize) {
        let values: Vec<F> = [3.0, 1.0, 0.0, -1.0, f64::NAN, f64::NEG_INFINITY]
            .into_iter()
            .map(F::from_f64)
            .collect();
        let (h, w) = (3, 2 * windows + 1);
        let x = Array::from_shape_fn((1, 1, h, w), |(_, _, i, j)| {
            let (window, pixel) = (j / 2, (i % 2) * 2 + j % 2);
            if i == 2 || j == w - 1 {
                F::one()
            } else {
                values[window / values.len().pow(pixel as u32) % values.len()]
            }
        })
        .into_dyn();
        let op = pool(2, 2, 0);
        let dy = Array::from_shape_fn((1, 1, 1, windows), |(_, _, _, j)| match j % 3 {
            0 => F::from_f64(-0.0),
            k => F::from_usize(k),
        })
        .into_dyn();
        for after_relu in [false, true] {
            let y = pooling::pool(&op, &x.view(), after_relu).unwrap();
            let needs_grad = [true];
            let cx = BackwardCx {
                inputs: &[x.view()],
                output: y.view(),
                output_grad: dy.view(),
                needs_grad: &needs_grad,
            };
            let dx = pooling::unpool(&op, &cx, after_relu)
                .unwrap()
                .remove(0)
                .unwrap();
            let mut expected = ArrayD::<F>::zeros(x.shape());
            let plane: Vec<F> = x.iter().copied().collect();
            let relu: Vec<F> = plane
                .iter()
                .map(|&v| if v <= F::zero() { F::zero() } else { v })
                .collect();
            let seen = if after_relu { &relu } else { &plane };
            for j in 0..windows {
                let (k, _) = pooling::argmax(seen, w, (0, 2), (2 * j, 2 * j + 2));
                // relu's backward passes the gradient where `x <= 0` is false.
                if !after_relu || plane[k] > F::zero() || plane[k].is_nan() {
                    expected[[0, 0, k / w, k % w]] += dy[[0, 0, 0, j]];
                }
            }
            let bits = |a: &ArrayD<F>| {
                a.iter()
                    .map(|&v| Float::to_f64(v).to_bits())
                    .collect::<Vec<_>>()
            };
            assert_eq!(
                bits(&dx),
                bits(&expected),
                "{windows} windows, after relu: {after_relu}"
            );
        }
    }
}
