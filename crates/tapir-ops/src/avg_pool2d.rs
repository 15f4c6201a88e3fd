//! `avg_pool2d`: the mean of each sliding window over NCHW input, as PyTorch's
//! `nn.AvgPool2d` (`ceil_mode=False`, no `divisor_override`).
//!
//! For `x` of shape `[N, C, H, W]`, kernel `(kh, kw)`, stride `(sh, sw)` and padding
//! `(ph, pw)`, the window of output pixel `(i, j)` is the set `R(i, j)` of input pixels
//! `(a, b)` with `i sh - ph <= a < i sh - ph + kh` and `j sw - pw <= b < j sw - pw + kw`
//! (padding pixels are zeros, so they are left out of the sum).
//!
//! - Output: `y[n, c, i, j] = (sum_{(a, b) in R(i, j)} x[n, c, a, b]) / d(i, j)`, where
//!   `d(i, j) = kh kw` with `count_include_pad: true` (the default, as in PyTorch: padding
//!   counts as zeros), and `d(i, j) = |R(i, j)|`, the window's input pixels, with
//!   `count_include_pad: false` (the mean of the real pixels only).
//! - Gradient: `dL/dx[n, c, a, b] = sum_{(i, j) : (a, b) in R(i, j)} dL/dy[n, c, i, j] / d(i, j)`:
//!   each output's gradient spreads evenly over its window, and overlapping windows add up.
//! - Shape: `[N, C, OH, OW]` with `OH = floor((H + 2 ph - kh) / sh) + 1`, likewise `OW`.
//!   PyTorch's rule `ph <= kh / 2`, `pw <= kw / 2` holds, so no window is padding only and
//!   `d(i, j) >= 1`.

use ndarray::{ArrayD, ArrayViewD};
use serde::Deserialize;
use tapir_core::{Arity, BackwardCx, CaseInput, Float, Gen, GradcheckCase, Op, OpType, Result};

use crate::pooling::{self, Window2d};
use crate::shape::{self, Pair};

/// `avg_pool2d`: the mean of each `kernel` window, windows `stride` apart.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AvgPool2d {
    /// Window size: `2`, or `(height, width)`.
    pub kernel: Pair,
    /// Step between windows; the kernel when omitted (PyTorch's default).
    #[serde(default, deserialize_with = "pooling::some_pair")]
    pub stride: Option<Pair>,
    /// Zero pixels added on each side; at most half the kernel on each axis. Default 0.
    #[serde(default = "pooling::no_padding")]
    pub padding: Pair,
    /// Whether padding pixels count in the divisor: `kh kw` always (true, the default), or
    /// only the window's input pixels (false).
    #[serde(default = "count_include_pad_default")]
    pub count_include_pad: bool,
}

fn count_include_pad_default() -> bool {
    true
}

impl AvgPool2d {
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

    /// `d(i, j)` for the window of input `rows x cols`.
    fn divisor<F: Float>(&self, g: &Window2d, rows: (usize, usize), cols: (usize, usize)) -> F {
        F::from_usize(if self.count_include_pad {
            g.kernel.0 * g.kernel.1
        } else {
            (rows.1 - rows.0) * (cols.1 - cols.0)
        })
    }
}

impl<F: Float> Op<F> for AvgPool2d {
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
        let g = self.window(inputs[0].shape())?;
        let ((h, w), (oh, ow)) = (g.input, g.output);
        let x = inputs[0].as_standard_layout();
        let x = pooling::elements(&x);
        let work = g.work_per_plane();
        pooling::from_planes(Self::NAME, &g.output_shape(), oh * ow, work, |p, y| {
            let x = pooling::plane(&x, p, h * w);
            for (i, y_row) in y.chunks_mut(ow).enumerate() {
                let rows = g.rows(i);
                for (j, y) in y_row.iter_mut().enumerate() {
                    let cols = g.cols(j);
                    let sum: F = (rows.0..rows.1)
                        .flat_map(|a| &x[a * w + cols.0..a * w + cols.1])
                        .copied()
                        .sum();
                    *y = sum / self.divisor::<F>(&g, rows, cols);
                }
            }
        })
    }

    fn backward(&self, cx: &BackwardCx<F>) -> Result<Vec<Option<ArrayD<F>>>> {
        if !cx.needs_grad(0) {
            return Ok(vec![None]);
        }
        let g = self.window(cx.inputs[0].shape())?;
        pooling::check_backward(Self::NAME, cx, &g.output_shape(), false)?;
        let ((h, w), (oh, ow)) = (g.input, g.output);
        let dy = cx.output_grad.as_standard_layout();
        let dy = pooling::elements(&dy);
        let work = g.work_per_plane();
        // One plane of dL/dx per task: every window of a plane lies in that plane.
        let dx = pooling::from_planes(Self::NAME, cx.inputs[0].shape(), h * w, work, |p, dx| {
            for (i, dy_row) in pooling::plane(&dy, p, oh * ow).chunks(ow).enumerate() {
                let rows = g.rows(i);
                for (j, &dy) in dy_row.iter().enumerate() {
                    let cols = g.cols(j);
                    let share = dy / self.divisor::<F>(&g, rows, cols);
                    for a in rows.0..rows.1 {
                        for dx in &mut dx[a * w + cols.0..a * w + cols.1] {
                            *dx += share;
                        }
                    }
                }
            }
        })?;
        Ok(vec![Some(dx)])
    }

    fn flops(&self, inputs: &[&[usize]]) -> u64 {
        // An addition per window element and a division per output.
        inputs
            .first()
            .and_then(|input| self.window(input).ok())
            .map_or(0, |g| {
                let outputs = shape::element_count(Self::NAME, &g.output_shape()).unwrap_or(0);
                g.visits().saturating_add(outputs as u64)
            })
    }
}

impl OpType for AvgPool2d {
    const NAME: &'static str = "avg_pool2d";

    fn gradcheck_cases() -> Vec<GradcheckCase> {
        // The mean is linear in x, smooth everywhere: plain uniform inputs.
        let uniform = Gen::uniform();
        let pool = |kernel, stride, padding, count_include_pad| AvgPool2d {
            kernel,
            stride,
            padding,
            count_include_pad,
        };
        let case = |label, op, shape: &[usize]| {
            GradcheckCase::new(label, op, vec![CaseInput::new("x", shape, uniform)])
        };
        vec![
            // Windows overlap by one row and column: some pixels feed four windows.
            case(
                "kernel 3 stride 2",
                pool(Pair::Both(3), Some(Pair::Both(2)), Pair::Both(0), true),
                &[1, 1, 7, 7],
            ),
            case(
                "padding 1",
                pool(Pair::Both(3), Some(Pair::Both(2)), Pair::Both(1), true),
                &[1, 1, 5, 5],
            ),
            // Same windows, divided by the real pixels only: corner windows by 4, edges by 6.
            case(
                "padding 1 exclude pad",
                pool(Pair::Both(3), Some(Pair::Both(2)), Pair::Both(1), false),
                &[1, 1, 5, 5],
            ),
            // 7x5 with kernel 2: the last row and column belong to no window.
            case(
                "odd 7x5",
                pool(Pair::Both(2), None, Pair::Both(0), true),
                &[1, 2, 7, 5],
            ),
            case(
                "kernel 2x3 stride 1x2 padding 1",
                pool(
                    Pair::PerAxis(2, 3),
                    Some(Pair::PerAxis(1, 2)),
                    Pair::Both(1),
                    true,
                ),
                &[1, 1, 6, 7],
            ),
            case(
                "kernel 2x3 stride 1x2 padding 1 exclude pad",
                pool(
                    Pair::PerAxis(2, 3),
                    Some(Pair::PerAxis(1, 2)),
                    Pair::Both(1),
                    false,
                ),
                &[1, 1, 6, 7],
            ),
            case(
                "batch 2 channels 3",
                pool(Pair::Both(2), Some(Pair::Both(1)), Pair::Both(0), true),
                &[2, 3, 5, 5],
            ),
        ]
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::{ArrayD, IxDyn, arr2};
    use tapir_core::{Error, Tape};

    fn pool(kernel: usize, stride: usize, padding: usize) -> AvgPool2d {
        AvgPool2d {
            kernel: Pair::Both(kernel),
            stride: Some(Pair::Both(stride)),
            padding: Pair::Both(padding),
            count_include_pad: true,
        }
    }

    /// An `[1, 1, H, W]` input from rows.
    fn image<const W: usize>(rows: &[[f64; W]]) -> ArrayD<f64> {
        arr2(rows)
            .into_shape_with_order(IxDyn(&[1, 1, rows.len(), W]))
            .unwrap()
    }

    fn shape_error(op: &AvgPool2d, input: &[usize]) -> String {
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
        // (1 + 5 + 3 + 4) / 4 = 3.25, (2 + 0 + 8 + 6) / 4 = 4,
        // (7 + 0 + 9 + 3) / 4 = 4.75, (1 + 2 + 4 + 5) / 4 = 3.
        assert_eq!(*y.value(), image(&[[3.25, 4.0], [4.75, 3.0]]));
        let dy = image(&[[4.0, 8.0], [12.0, 16.0]]);
        let grads = tape.backward_from(&y, dy).unwrap();
        // Each output gradient spreads as a quarter over its 2x2 window: 4 / 4 = 1, ...
        let expected = image(&[
            [1.0, 1.0, 2.0, 2.0],
            [1.0, 1.0, 2.0, 2.0],
            [3.0, 3.0, 4.0, 4.0],
            [3.0, 3.0, 4.0, 4.0],
        ]);
        assert_eq!(grads.get(&x).unwrap(), &expected);
    }

    #[test]
    fn padding_counts_or_not() {
        // Kernel 2, stride 2, padding 1 on 3x3: OH = (3 + 2 - 2) / 2 + 1 = 2. The windows
        // hold the input pixels {1}, {2, 3}, {4, 7} and {5, 6, 8, 9}.
        let x = image(&[[1.0, 2.0, 3.0], [4.0, 5.0, 6.0], [7.0, 8.0, 9.0]]);
        let dy = image(&[[4.0, 8.0], [12.0, 16.0]]);

        // count_include_pad: true divides by 2 * 2 = 4 always: 1 / 4, 5 / 4, 11 / 4, 28 / 4.
        let mut tape = Tape::<f64>::new();
        let xv = tape.leaf(x.clone(), true);
        let y = tape.apply(pool(2, 2, 1), &[&xv]).unwrap();
        assert_eq!(*y.value(), image(&[[0.25, 1.25], [2.75, 7.0]]));
        // dy / 4 over each window's pixels: 1, 2, 3, 4.
        let grads = tape.backward_from(&y, dy.clone()).unwrap();
        let expected = image(&[[1.0, 2.0, 2.0], [3.0, 4.0, 4.0], [3.0, 4.0, 4.0]]);
        assert_eq!(grads.get(&xv).unwrap(), &expected);

        // count_include_pad: false divides by the pixel count 1, 2, 2, 4: 1, 2.5, 5.5, 7.
        let op = AvgPool2d {
            count_include_pad: false,
            ..pool(2, 2, 1)
        };
        let mut tape = Tape::<f64>::new();
        let xv = tape.leaf(x, true);
        let y = tape.apply(op, &[&xv]).unwrap();
        assert_eq!(*y.value(), image(&[[1.0, 2.5], [5.5, 7.0]]));
        // 4 / 1 = 4, 8 / 2 = 4, 12 / 2 = 6, 16 / 4 = 4.
        let grads = tape.backward_from(&y, dy).unwrap();
        let expected = image(&[[4.0, 4.0, 4.0], [6.0, 4.0, 4.0], [6.0, 4.0, 4.0]]);
        assert_eq!(grads.get(&xv).unwrap(), &expected);
    }

    #[test]
    fn bad_shapes_and_hyperparameters_are_errors() {
        assert_eq!(
            shape_error(&pool(2, 2, 0), &[4, 4]),
            "avg_pool2d: input must have rank 4 (N, C, H, W), got shape [4, 4]"
        );
        let op = AvgPool2d {
            kernel: Pair::PerAxis(2, 0),
            ..pool(2, 1, 0)
        };
        assert_eq!(
            shape_error(&op, &[1, 1, 4, 4]),
            "avg_pool2d: invalid hyperparameter: kernel must be at least 1, got (2, 0)"
        );
        assert_eq!(
            shape_error(&pool(2, 0, 0), &[1, 1, 4, 4]),
            "avg_pool2d: invalid hyperparameter: stride must be at least 1, got 0"
        );
        assert_eq!(
            shape_error(&pool(3, 1, 2), &[1, 1, 8, 8]),
            "avg_pool2d: invalid hyperparameter: padding 2 must be at most half the kernel 3 on \
             each axis, as in PyTorch: height padding 2 > 3 / 2 would make a window of padding \
             only; use padding at most 1"
        );
        assert_eq!(
            shape_error(&pool(4, 1, 1), &[1, 1, 8, 1]),
            "avg_pool2d: width: the window spans 4 pixels (kernel 4, dilation 1) but the padded \
             input has only 3 (1 + padding 1 + 1); use a smaller kernel or more padding \
             (input [1, 1, 8, 1])"
        );
        // An odd kernel of half the usize range with padding half of it fits a 1x1 input
        // (padded to the kernel exactly), but kh kw overflows.
        let huge = usize::MAX / 2;
        let op = AvgPool2d {
            kernel: Pair::Both(huge),
            padding: Pair::Both(huge / 2),
            ..pool(2, 1, 0)
        };
        assert_eq!(
            shape_error(&op, &[1, 1, 1, 1]),
            format!(
                "avg_pool2d: invalid hyperparameter: kernel {huge} has more pixels than a usize counts"
            )
        );
        let err = Op::<f32>::output_shape(&pool(2, 2, 0), &[]).unwrap_err();
        assert!(matches!(err, Error::Arity { .. }), "{err}");
    }

    #[test]
    fn builds_from_hyperparameter_text() {
        let registry = crate::builtin_registry();
        let entry = registry.get("avg_pool2d").unwrap();
        let op = entry
            .build_f64("(kernel: 2, padding: 1, count_include_pad: false)")
            .unwrap();
        // Stride defaults to the kernel: OH = (3 + 2 - 2) / 2 + 1 = 2.
        assert_eq!(op.output_shape(&[&[1, 1, 3, 3]]).unwrap(), vec![1, 1, 2, 2]);
        let x = image(&[[1.0, 2.0, 3.0], [4.0, 5.0, 6.0], [7.0, 8.0, 9.0]]);
        // count_include_pad: false took effect: the corner window is {1} / 1.
        assert_eq!(op.forward(&[x.view()]).unwrap()[[0, 0, 0, 0]], 1.0);
        assert_eq!(
            entry
                .build_f32("(kernel: 2, count_include_pad: 1)")
                .unwrap_err()
                .to_string(),
            "avg_pool2d: hyperparameters at line 1, column 32: Expected boolean"
        );
    }
}
