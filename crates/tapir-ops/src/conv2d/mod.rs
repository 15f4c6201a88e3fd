//! `conv2d`: two-dimensional convolution of an NCHW batch, as PyTorch's `Conv2d` (a
//! cross-correlation: the kernel is not flipped).
//!
//! Symbols: input `x [N, C, H, W]`, weight `w [F, C/G, kh, kw]`, bias `b [F]`; `G` groups,
//! stride `(s_h, s_w)`, dilation `(d_h, d_w)`, zero padding `pad_top, pad_bottom, pad_left,
//! pad_right`. Filter `f` belongs to group `g = f / (F/G)` and sees the input channels
//! `g*C/G + c` for `c` in `0..C/G`. Below, `x[...] = 0` at positions outside the input (the
//! padding), and `h(i,p) = i*s_h + p*d_h - pad_top`, `v(j,q) = j*s_w + q*d_w - pad_left`.
//!
//! - Output:
//!   `y[n,f,i,j] = b[f] + sum_{c,p,q} w[f,c,p,q] x[n, g*C/G + c, h(i,p), v(j,q)]`
//!   (no `b[f]` term without bias).
//! - Gradients, writing `dy = dL/dy`:
//!   - `dL/db[f] = sum_{n,i,j} dy[n,f,i,j]`;
//!   - `dL/dw[f,c,p,q] = sum_{n,i,j} dy[n,f,i,j] x[n, g*C/G + c, h(i,p), v(j,q)]`;
//!   - `dL/dx[n, g*C/G + c, h', v'] = sum over f in group g and (p, q, i, j) with
//!     h(i,p) = h', v(j,q) = v' of w[f,c,p,q] dy[n,f,i,j]`: each output sends its gradient
//!     back to the pixels its window read.
//! - Output size: `y` is `[N, F, OH, OW]` with
//!   `OH = floor((H + pad_top + pad_bottom - d_h*(kh - 1) - 1) / s_h) + 1` and the same for
//!   `OW`; the dilated window `d*(k - 1) + 1` must fit in the padded input.
//!
//! The kernel (`kernel.rs`) lowers each sample to a matrix product ("im2col"): with
//! `cols[(c,p,q), (i,j)] = x[n, c, h(i,p), v(j,q)]` and the weight read as the matrix
//! `W [F, C/G*kh*kw]`, group `g` computes `y_g = W_g cols_g`, `dW_g += dy_g cols_g^T` and
//! `dcols_g = W_g^T dy_g`, which `col2im` adds back onto `dL/dx`. The batch is split into
//! fixed chunks across threads; results are bit-identical whatever the thread count.
//!
//! With 1 to 4 input channels per group, stride 1 and dilation 1 (a network's first layer),
//! `direct.rs` computes the output and the weight gradient from the sums above on SIMD
//! vectors instead, with no lowered matrix (see its doc).
//!
//! A sample whose `dL/dy` is almost all zeros (what a global max pooling sends back: one
//! nonzero per map) skips the lowering in backward: `sparse.rs` adds each nonzero's share
//! to the weight and input gradients directly.
//!
//! `fused.rs` holds `conv2d` with a ReLU and a max pooling after it, one op that networks
//! build for short filters (see its doc).

mod direct;
mod fused;
mod kernel;
mod scratch;
mod sparse;

use std::any::Any;

use ndarray::{ArrayD, ArrayView1, ArrayView4, ArrayViewD, CowArray, Ix1, Ix2, Ix4};
use serde::Deserialize;
use tapir_core::{
    Arity, BackwardCx, CaseInput, Error, Float, Gen, GradcheckCase, Op, OpType, ParamRole,
    ParamSpec, Result,
};

use crate::shape::{self, Padding, PaddingKeyword, Pair};
pub(crate) use fused::{conv_relu_case, fuse_conv};
use kernel::{AxisGeometry, Geometry, OutputGrad, Wanted};

/// `conv2d`: 2-D convolution, NCHW, with PyTorch's hyperparameters and defaults.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Conv2d {
    /// Output channels `F`.
    pub filters: usize,
    /// Window size `(kh, kw)`: `5` or `(3, 5)`.
    pub kernel: Pair,
    /// Step between windows `(s_h, s_w)`; 1 by default.
    #[serde(default = "one")]
    pub stride: Pair,
    /// Zero padding of the input; none by default.
    #[serde(default)]
    pub padding: Padding,
    /// Spacing of the kernel's taps `(d_h, d_w)`; 1 (adjacent) by default.
    #[serde(default = "one")]
    pub dilation: Pair,
    /// Groups `G`: channels and filters split into `G` independent convolutions; 1 by default.
    #[serde(default = "one_group")]
    pub groups: usize,
    /// Whether the op owns and adds a bias; true by default.
    #[serde(default = "with_bias")]
    pub bias: bool,
}

fn one() -> Pair {
    Pair::Both(1)
}

fn one_group() -> usize {
    1
}

fn with_bias() -> bool {
    true
}

impl Conv2d {
    /// `filters` filters of size `kernel`, with every other hyperparameter at its default.
    pub fn new(filters: usize, kernel: Pair) -> Self {
        Conv2d {
            filters,
            kernel,
            stride: one(),
            padding: Padding::default(),
            dilation: one(),
            groups: one_group(),
            bias: with_bias(),
        }
    }

    /// Checks the hyperparameters that need no shapes; returns the kernel `(kh, kw)`.
    fn checked_hyperparameters(&self) -> Result<(usize, usize)> {
        let op = <Self as OpType>::NAME;
        if self.filters == 0 {
            return Err(Error::hyperparameter(op, "filters must be at least 1"));
        }
        if self.groups == 0 {
            return Err(Error::hyperparameter(op, "groups must be at least 1"));
        }
        if !self.filters.is_multiple_of(self.groups) {
            return Err(Error::hyperparameter(
                op,
                format!(
                    "filters ({}) must be divisible by groups ({})",
                    self.filters, self.groups
                ),
            ));
        }
        self.stride.check_positive(op, "stride")?;
        self.dilation.check_positive(op, "dilation")?;
        self.kernel.check_positive(op, "kernel")
    }

    /// The input's dimensions `[N, C, H, W]`, checked against `groups`.
    fn checked_input(&self, x: &[usize]) -> Result<[usize; 4]> {
        let op = <Self as OpType>::NAME;
        let dims = rank4("input", x, "[N, C, H, W]")?;
        if !dims[1].is_multiple_of(self.groups) {
            return Err(Error::shape(
                op,
                format!(
                    "input has {} channels, which {} groups do not divide (input {x:?}); \
                     choose groups dividing both the channels and the filters ({})",
                    dims[1], self.groups, self.filters
                ),
            ));
        }
        Ok(dims)
    }

    /// The shape rule, resolved into what the kernel needs.
    fn geometry(&self, inputs: &[&[usize]]) -> Result<Geometry> {
        let op = <Self as OpType>::NAME;
        shape::expect_inputs(op, inputs, if self.bias { 3 } else { 2 })?;
        let (kh, kw) = self.checked_hyperparameters()?;
        let (x, weight) = (inputs[0], inputs[1]); // arity checked above
        let [n, c, h, w] = self.checked_input(x)?;
        let per_group = c / self.groups;
        let got = rank4("weight", weight, "[filters, C/groups, kh, kw]")?;
        if got[1] != per_group {
            let input_channels = if self.groups == 1 {
                format!("{c} channels")
            } else {
                format!("{c} channels ({per_group} per group of {})", self.groups)
            };
            return Err(Error::shape(
                op,
                format!(
                    "input has {input_channels}, weight expects {} (input {x:?}, weight {weight:?})",
                    got[1]
                ),
            ));
        }
        let expected = [self.filters, per_group, kh, kw];
        if got != expected {
            return Err(Error::shape(
                op,
                format!(
                    "weight has shape {weight:?}, expected [filters, C/groups, kh, kw] = {expected:?} \
                     (filters {}, kernel {}, input {x:?})",
                    self.filters, self.kernel
                ),
            ));
        }
        if self.bias && inputs[2] != [self.filters] {
            return Err(Error::shape(
                op,
                format!(
                    "bias has shape {:?}, expected [filters] = [{}]",
                    inputs[2], self.filters
                ),
            ));
        }
        let (sh, sw) = self.stride.hw();
        let (dh, dw) = self.dilation.hw();
        let pad = self.padding.resolve(op, (kh, kw), (dh, dw), (sh, sw))?;
        let oh = shape::window_output_len(op, "height", h, pad.top, pad.bottom, kh, dh, sh)?;
        let ow = shape::window_output_len(op, "width", w, pad.left, pad.right, kw, dw, sw)?;
        // The kernel's index arithmetic relies on these products fitting, and allocating
        // them must not panic.
        shape::allocatable(op, "output", &[n, self.filters, oh, ow])?;
        shape::allocatable(op, "lowered sample", &[c, kh, kw, oh, ow])?;
        Ok(Geometry {
            batch: n,
            channels: c,
            filters: self.filters,
            groups: self.groups,
            height: AxisGeometry {
                input: h,
                output: oh,
                kernel: kh,
                stride: sh,
                dilation: dh,
                pad_before: pad.top,
            },
            width: AxisGeometry {
                input: w,
                output: ow,
                kernel: kw,
                stride: sw,
                dilation: dw,
                pad_before: pad.left,
            },
        })
    }
}

impl Conv2d {
    /// The input, the weight as the matrix `[F, K]` and the bias of a call checked by
    /// [`Conv2d::geometry`].
    fn operands<'a, F: Float>(
        &self,
        g: &Geometry,
        inputs: &'a [ArrayViewD<'a, F>],
    ) -> Result<Operands<'a, F>> {
        // Indexing is safe: `geometry` checked the input count.
        let x = inputs[0].view().into_dimensionality::<Ix4>().map_err(bug)?;
        let w = inputs[1]
            .to_shape((g.filters, g.patch_len()))
            .map_err(bug)?;
        let b = if self.bias {
            Some(inputs[2].view().into_dimensionality::<Ix1>().map_err(bug)?)
        } else {
            None
        };
        Ok((x, w, b))
    }

    /// Gradient-check inputs for input shape `x`: `x`, the weight and the bias (if any),
    /// all drawn by `draw`.
    pub(crate) fn case_inputs(&self, x: &[usize], draw: Gen) -> Vec<CaseInput> {
        let (kh, kw) = self.kernel.hw();
        let weight = [self.filters, x[1] / self.groups, kh, kw];
        let mut inputs = vec![
            CaseInput::new("x", x, draw),
            CaseInput::new("weight", &weight, draw),
        ];
        if self.bias {
            inputs.push(CaseInput::new("bias", &[self.filters], draw));
        }
        inputs
    }

    /// The gradients of every input that needs one, from `dy`.
    fn gradients<F: Float>(
        &self,
        g: &Geometry,
        cx: &BackwardCx<F>,
        dy: OutputGrad<F>,
    ) -> Result<Vec<Option<ArrayD<F>>>> {
        // dL/dx is skipped for an image that needs none (the first layer's).
        let wanted = Wanted {
            x: cx.needs_grad(0),
            w: cx.needs_grad(1),
            b: self.bias && cx.needs_grad(2),
        };
        let mut grads: Vec<Option<ArrayD<F>>> = vec![None; cx.inputs.len()];
        if !(wanted.x || wanted.w || wanted.b) {
            return Ok(grads);
        }
        let (x, w, _) = self.operands(g, cx.inputs)?;
        let computed = kernel::backward(g, x, w.view(), dy, wanted);
        grads[0] = computed.x.map(|dx| dx.into_dyn());
        if let Some(dw) = computed.w {
            let shape = (
                g.filters,
                g.channels_per_group(),
                g.height.kernel,
                g.width.kernel,
            );
            grads[1] = Some(dw.into_shape_with_order(shape).map_err(bug)?.into_dyn());
        }
        if let Some(slot) = grads.get_mut(2) {
            *slot = computed.b.map(|db| db.into_dyn());
        }
        Ok(grads)
    }
}

/// A call's input `[N, C, H, W]`, weight matrix `[F, K]` and bias.
type Operands<'a, F> = (
    ArrayView4<'a, F>,
    CowArray<'a, F, Ix2>,
    Option<ArrayView1<'a, F>>,
);

/// `shape` as `[a, b, c, d]`, or the rank error naming `what`.
fn rank4(what: &str, shape: &[usize], layout: &str) -> Result<[usize; 4]> {
    shape::expect_rank(<Conv2d as OpType>::NAME, what, shape, 4, layout)?;
    // Indexing is safe: the rank is 4.
    Ok([shape[0], shape[1], shape[2], shape[3]])
}

/// An internal failure (a reshape the shape rule made valid); never caused by user input.
fn bug(error: impl std::fmt::Display) -> Error {
    Error::Contract {
        op: <Conv2d as OpType>::NAME,
        message: format!("BUG: {error}"),
    }
}

impl<F: Float> Op<F> for Conv2d {
    fn name(&self) -> &'static str {
        <Self as OpType>::NAME
    }

    fn arity(&self) -> Arity {
        Arity::Exactly(1)
    }

    fn params(&self, data_inputs: &[&[usize]]) -> Result<Vec<ParamSpec>> {
        let op = <Self as OpType>::NAME;
        shape::expect_inputs(op, data_inputs, 1)?;
        let (kh, kw) = self.checked_hyperparameters()?;
        let [_, c, _, _] = self.checked_input(data_inputs[0])?;
        let per_group = c / self.groups;
        let fan_in = shape::element_count(op, &[per_group, kh, kw])?;
        // PyTorch's fan_out for a conv: every filter, every tap (groups ignored).
        let fan_out = shape::element_count(op, &[self.filters, kh, kw])?;
        let mut params = vec![ParamSpec {
            name: "weight",
            shape: vec![self.filters, per_group, kh, kw],
            role: ParamRole::Weight { fan_in, fan_out },
        }];
        if self.bias {
            params.push(ParamSpec {
                name: "bias",
                shape: vec![self.filters],
                role: ParamRole::Bias { fan_in },
            });
        }
        Ok(params)
    }

    fn output_shape(&self, inputs: &[&[usize]]) -> Result<Vec<usize>> {
        let g = self.geometry(inputs)?;
        Ok(vec![g.batch, g.filters, g.height.output, g.width.output])
    }

    fn forward(&self, inputs: &[ArrayViewD<F>]) -> Result<ArrayD<F>> {
        let shapes: Vec<&[usize]> = inputs.iter().map(|a| a.shape()).collect();
        let g = self.geometry(&shapes)?;
        let (x, w, b) = self.operands(&g, inputs)?;
        let y = kernel::forward(&g, x, w.view(), b);
        let shape = (g.batch, g.filters, g.height.output, g.width.output);
        Ok(y.into_shape_with_order(shape).map_err(bug)?.into_dyn())
    }

    fn backward(&self, cx: &BackwardCx<F>) -> Result<Vec<Option<ArrayD<F>>>> {
        let shapes: Vec<&[usize]> = cx.inputs.iter().map(|a| a.shape()).collect();
        let g = self.geometry(&shapes)?;
        let dy = cx
            .output_grad
            .to_shape((g.batch, g.filters, g.positions()))
            .map_err(bug)?;
        self.gradients(&g, cx, OutputGrad::Given(dy.view()))
    }

    fn as_any(&self) -> Option<&dyn Any> {
        Some(self)
    }

    fn flops(&self, inputs: &[&[usize]]) -> u64 {
        let Ok(g) = self.geometry(inputs) else {
            return 0;
        };
        let outputs = (g.batch as u64)
            .saturating_mul(g.filters as u64)
            .saturating_mul(g.positions() as u64);
        // One multiply-add per tap of every output, plus the bias addition.
        let per_output = 2 * (g.patch_len() as u64) + u64::from(self.bias);
        outputs.saturating_mul(per_output)
    }
}

impl OpType for Conv2d {
    const NAME: &'static str = "conv2d";

    fn gradcheck_cases() -> Vec<GradcheckCase> {
        // Convolution is bilinear, smooth everywhere: plain uniform draws have no kink to avoid.
        let u = Gen::uniform();
        let conv = |filters, kernel| Conv2d::new(filters, kernel);
        let case = |label: &str, op: Conv2d, x: &[usize]| {
            let inputs = op.case_inputs(x, u);
            GradcheckCase::new(label, op, inputs)
        };
        vec![
            case(
                "stride 2",
                Conv2d {
                    stride: Pair::Both(2),
                    padding: Padding::All(1),
                    ..conv(3, Pair::Both(3))
                },
                &[2, 2, 7, 7],
            ),
            case(
                "asymmetric padding",
                Conv2d {
                    padding: Padding::Sides(1, 0, 2, 1),
                    ..conv(2, Pair::Both(3))
                },
                &[1, 2, 5, 6],
            ),
            case(
                "dilation 2",
                Conv2d {
                    dilation: Pair::Both(2),
                    padding: Padding::All(1),
                    ..conv(2, Pair::Both(3))
                },
                &[1, 2, 7, 6],
            ),
            case(
                "groups 2",
                Conv2d {
                    groups: 2,
                    padding: Padding::All(1),
                    ..conv(4, Pair::Both(3))
                },
                &[2, 4, 5, 5],
            ),
            case(
                "kernel 3x5",
                Conv2d {
                    stride: Pair::PerAxis(1, 2),
                    ..conv(2, Pair::PerAxis(3, 5))
                },
                &[1, 2, 6, 9],
            ),
            case("batch 3", conv(2, Pair::Both(3)), &[3, 2, 5, 5]),
            case(
                "Same padding",
                Conv2d {
                    padding: Padding::Keyword(PaddingKeyword::Same),
                    ..conv(2, Pair::PerAxis(4, 3))
                },
                &[1, 2, 5, 6],
            ),
            case(
                "Full padding",
                Conv2d {
                    padding: Padding::Keyword(PaddingKeyword::Full),
                    ..conv(2, Pair::Both(3))
                },
                &[1, 2, 5, 5],
            ),
            case(
                "no bias",
                Conv2d {
                    bias: false,
                    ..conv(3, Pair::Both(3))
                },
                &[2, 3, 5, 5],
            ),
        ]
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::{Array, Array2, Array4, ArrayD, Axis, IxDyn, ShapeBuilder, Slice, arr1, arr2};
    use rand::{Rng, SeedableRng};
    use rand_chacha::ChaCha8Rng;
    use tapir_core::Tape;

    fn conv(filters: usize, kernel: usize) -> Conv2d {
        Conv2d::new(filters, Pair::Both(kernel))
    }

    /// `[1, 1, 3, 3]` from a 3x3 grid.
    fn image(rows: [[f64; 3]; 3]) -> ArrayD<f64> {
        arr2(&rows)
            .into_shape_with_order(IxDyn(&[1, 1, 3, 3]))
            .unwrap()
    }

    /// The image 1..9 row by row: [[1, 2, 3], [4, 5, 6], [7, 8, 9]].
    fn one_to_nine() -> ArrayD<f64> {
        image([[1.0, 2.0, 3.0], [4.0, 5.0, 6.0], [7.0, 8.0, 9.0]])
    }

    fn kernel2(rows: [[f64; 2]; 2]) -> ArrayD<f64> {
        arr2(&rows)
            .into_shape_with_order(IxDyn(&[1, 1, 2, 2]))
            .unwrap()
    }

    fn forward(op: &Conv2d, inputs: &[ArrayD<f64>]) -> ArrayD<f64> {
        let views: Vec<_> = inputs.iter().map(|a| a.view()).collect();
        Op::<f64>::forward(op, &views).unwrap()
    }

    fn values(a: &ArrayD<f64>) -> Vec<f64> {
        a.iter().copied().collect()
    }

    fn shape_error(op: &Conv2d, shapes: &[&[usize]]) -> String {
        Op::<f32>::output_shape(op, shapes).unwrap_err().to_string()
    }

    fn random(shape: &[usize], rng: &mut ChaCha8Rng) -> ArrayD<f64> {
        ArrayD::from_shape_simple_fn(shape, || rng.random_range(-1.0..1.0))
    }

    #[test]
    fn a_binary_pattern_against_a_binary_filter_counts_shared_lit_pixels() {
        // Valid 3x3 on 3x3 gives one output, sum_{p,q} w[p,q] x[p,q]: with 0/1 values, the
        // number of pixels lit in both.
        let similarity = |pattern, filter| {
            let op = Conv2d {
                bias: false,
                ..conv(1, 3)
            };
            let y = forward(&op, &[image(pattern), image(filter)]);
            assert_eq!(y.shape(), &[1, 1, 1, 1]);
            y[[0, 0, 0, 0]]
        };
        let all = [[1.0; 3]; 3];
        let cross = [[0.0, 1.0, 0.0], [1.0, 1.0, 1.0], [0.0, 1.0, 0.0]];
        let diagonal = [[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]];
        assert_eq!(similarity(all, all), 9.0);
        assert_eq!(similarity(cross, cross), 5.0);
        // The diagonal and the cross share only the centre.
        assert_eq!(similarity(cross, diagonal), 1.0);
    }

    #[test]
    fn forward_and_backward_by_hand() {
        // x = [[1, 2, 3], [4, 5, 6], [7, 8, 9]], w = [[1, 2], [3, 4]], b = 10; 2x2 output:
        // y[0,0] = 1*1 + 2*2 + 3*4 + 4*5 + 10 = 47
        // y[0,1] = 1*2 + 2*3 + 3*5 + 4*6 + 10 = 57
        // y[1,0] = 1*4 + 2*5 + 3*7 + 4*8 + 10 = 77
        // y[1,1] = 1*5 + 2*6 + 3*8 + 4*9 + 10 = 87
        let mut tape = Tape::<f64>::new();
        let x = tape.leaf(one_to_nine(), true);
        let w = tape.leaf(kernel2([[1.0, 2.0], [3.0, 4.0]]), true);
        let b = tape.leaf(arr1(&[10.0]).into_dyn(), true);
        let y = tape.apply(conv(1, 2), &[&x, &w, &b]).unwrap();
        assert_eq!(values(y.value()), [47.0, 57.0, 77.0, 87.0]);

        // With dL/dy = 1 everywhere:
        // db = 4 outputs;
        // dw[p,q] = the sum of the pixels tap (p,q) read: dw[0,0] = 1+2+4+5 = 12,
        //   dw[0,1] = 2+3+5+6 = 16, dw[1,0] = 4+5+7+8 = 24, dw[1,1] = 5+6+8+9 = 28;
        // dx[h,v] = the sum of the weights that read pixel (h,v): the corners are read by one
        //   tap each (1, 2, 3, 4), the edges by two (1+2, 1+3, 2+4, 3+4), the centre by all (10).
        let grads = tape
            .backward_from(&y, ArrayD::ones(IxDyn(&[1, 1, 2, 2])))
            .unwrap();
        assert_eq!(values(grads.get(&b).unwrap()), [4.0]);
        assert_eq!(values(grads.get(&w).unwrap()), [12.0, 16.0, 24.0, 28.0]);
        assert_eq!(
            values(grads.get(&x).unwrap()),
            [1.0, 3.0, 2.0, 4.0, 10.0, 6.0, 3.0, 7.0, 4.0]
        );
    }

    #[test]
    fn no_input_channel_leaves_the_bias() {
        // No input channel: every output is its filter's bias, db counts the outputs.
        let mut tape = Tape::<f64>::new();
        let x = tape.leaf(ArrayD::zeros(IxDyn(&[5, 0, 4, 4])), true);
        let w = tape.leaf(ArrayD::zeros(IxDyn(&[2, 0, 3, 3])), true);
        let b = tape.leaf(arr1(&[1.5, -2.0]).into_dyn(), true);
        let y = tape.apply(conv(2, 3), &[&x, &w, &b]).unwrap();
        assert_eq!(y.shape(), [5, 2, 2, 2]);
        for (f, bias) in [(0, 1.5), (1, -2.0)] {
            let maps = y.value().index_axis(ndarray::Axis(1), f);
            assert!(maps.iter().all(|&v| v == bias), "{maps}");
        }
        let grads = tape
            .backward_from(&y, ArrayD::ones(IxDyn(&[5, 2, 2, 2])))
            .unwrap();
        assert_eq!(values(grads.get(&b).unwrap()), [20.0, 20.0]);
        assert_eq!(grads.get(&w).unwrap().len(), 0);
        assert_eq!(grads.get(&x).unwrap().len(), 0);
    }

    #[test]
    fn padding_stride_and_dilation_by_hand() {
        let ones = kernel2([[1.0; 2]; 2]);
        // Padding 1, stride 2: the padded input is 5x5, OH = OW = (5 - 2) / 2 + 1 = 2. The
        // window at padded (0,0) holds only x[0,0] = 1; at (0,2) x[0,1..3] = 2 + 3 = 5; at
        // (2,0) x[1..3,0] = 4 + 7 = 11; at (2,2) x[1..3,1..3] = 5 + 6 + 8 + 9 = 28.
        let op = Conv2d {
            stride: Pair::Both(2),
            padding: Padding::All(1),
            bias: false,
            ..conv(1, 2)
        };
        let y = forward(&op, &[one_to_nine(), ones.clone()]);
        assert_eq!(y.shape(), &[1, 1, 2, 2]);
        assert_eq!(values(&y), [1.0, 5.0, 11.0, 28.0]);

        // One row on top, one column on the right: padded
        //   [[0, 0, 0, 0], [1, 2, 3, 0], [4, 5, 6, 0], [7, 8, 9, 0]], 2x2 sums over 3x3 windows:
        //   [[0+0+1+2, 0+0+2+3, 0+0+3+0], [1+2+4+5, 2+3+5+6, 3+0+6+0], [4+5+7+8, 5+6+8+9, 6+0+9+0]]
        let op = Conv2d {
            padding: Padding::Sides(1, 0, 0, 1),
            bias: false,
            ..conv(1, 2)
        };
        let y = forward(&op, &[one_to_nine(), ones]);
        assert_eq!(
            values(&y),
            [3.0, 5.0, 3.0, 12.0, 16.0, 9.0, 24.0, 28.0, 15.0]
        );

        // Dilation 2 spreads a 2x2 kernel over the corners of the 3x3 input (span 3, one
        // output): 1*1 + 2*3 + 3*7 + 4*9 = 64.
        let op = Conv2d {
            dilation: Pair::Both(2),
            bias: false,
            ..conv(1, 2)
        };
        let y = forward(&op, &[one_to_nine(), kernel2([[1.0, 2.0], [3.0, 4.0]])]);
        assert_eq!(values(&y), [64.0]);
    }

    #[test]
    fn groups_keep_channels_apart() {
        // Two channels (2 and 3), two groups of one filter each (weights 5 and 7): each filter
        // sees only its own channel, y = [5*2, 7*3] = [10, 21] (without groups: 5*2 + ...).
        let op = Conv2d {
            groups: 2,
            bias: false,
            ..conv(2, 1)
        };
        let x = Array::from_shape_vec(IxDyn(&[1, 2, 1, 1]), vec![2.0, 3.0]).unwrap();
        let w = Array::from_shape_vec(IxDyn(&[2, 1, 1, 1]), vec![5.0, 7.0]).unwrap();
        assert_eq!(values(&forward(&op, &[x, w])), [10.0, 21.0]);
    }

    /// The taps of output `[n, f, i, j]`'s window that fall inside the input `x_shape`, as
    /// `(w index, x index)` pairs: `([f, c, p, q], [n, g*C/G + c, i*s_h + p*d_h - pad_top,
    /// j*s_w + q*d_w - pad_left])`, the module doc's formulas written out.
    fn window(op: &Conv2d, x_shape: &[usize], [n, f, i, j]: [usize; 4]) -> Vec<[[usize; 4]; 2]> {
        let (kh, kw) = op.kernel.hw();
        let (sh, sw) = op.stride.hw();
        let (dh, dw) = op.dilation.hw();
        let pad = op
            .padding
            .resolve("t", (kh, kw), (dh, dw), (sh, sw))
            .unwrap();
        let (h, width) = (x_shape[2] as isize, x_shape[3] as isize);
        let per_group = x_shape[1] / op.groups;
        let g = f / (op.filters / op.groups);
        let mut taps = Vec::new();
        for c in 0..per_group {
            for p in 0..kh {
                for q in 0..kw {
                    let row = (i * sh + p * dh) as isize - pad.top as isize;
                    let col = (j * sw + q * dw) as isize - pad.left as isize;
                    if (0..h).contains(&row) && (0..width).contains(&col) {
                        let at = [n, g * per_group + c, row as usize, col as usize];
                        taps.push([[f, c, p, q], at]);
                    }
                }
            }
        }
        taps
    }

    /// The module doc's output, literally: `y[n,f,i,j] = b[f] + sum_{c,p,q} w[f,c,p,q] x[...]`
    /// over the window's taps inside the input.
    fn reference(
        op: &Conv2d,
        x: &ArrayD<f64>,
        w: &ArrayD<f64>,
        b: Option<&ArrayD<f64>>,
    ) -> ArrayD<f64> {
        let mut shapes = vec![x.shape(), w.shape()];
        shapes.extend(b.map(|b| b.shape()));
        let out = Op::<f64>::output_shape(op, &shapes).unwrap();
        ArrayD::from_shape_fn(out, |ix| {
            let taps = window(op, x.shape(), [ix[0], ix[1], ix[2], ix[3]]);
            let bias = b.map_or(0.0, |b| b[[ix[1]]]);
            taps.into_iter()
                .fold(bias, |sum, [w_at, x_at]| sum + w[w_at] * x[x_at])
        })
    }

    /// The module doc's gradients, literally: `[dL/dx, dL/dw, dL/db]` from `dy`, each output
    /// gradient sent to its window's taps inside the input.
    fn reference_gradients(
        op: &Conv2d,
        x: &ArrayD<f64>,
        w: &ArrayD<f64>,
        dy: &ArrayD<f64>,
    ) -> [ArrayD<f64>; 3] {
        let mut dx = ArrayD::zeros(x.shape());
        let mut dw = ArrayD::zeros(w.shape());
        let mut db = ArrayD::zeros(IxDyn(&[op.filters]));
        let dy = dy.view().into_dimensionality::<Ix4>().unwrap();
        for ((n, f, i, j), &g) in dy.indexed_iter() {
            db[[f]] += g;
            for [w_at, x_at] in window(op, x.shape(), [n, f, i, j]) {
                dw[w_at] += g * x[x_at];
                dx[x_at] += w[w_at] * g;
            }
        }
        [dx, dw, db]
    }

    /// `x`, the weight and (with a bias) the bias of `op` for input shape `x_shape`.
    fn draw_inputs(op: &Conv2d, x_shape: [usize; 4], rng: &mut ChaCha8Rng) -> Vec<ArrayD<f64>> {
        let (kh, kw) = op.kernel.hw();
        let mut inputs = vec![
            random(&x_shape, rng),
            random(&[op.filters, x_shape[1] / op.groups, kh, kw], rng),
        ];
        inputs.extend(op.bias.then(|| random(&[op.filters], rng)));
        inputs
    }

    /// Convolutions that exercise every hyperparameter (strides, dilations along each
    /// axis, padding by sides, "same" and "full", groups, no bias, one input channel for the
    /// direct route), each with an input shape of six samples (two chunks) whose maps hold
    /// at least 64 positions.
    fn configurations() -> Vec<(Conv2d, [usize; 4])> {
        vec![
            (
                Conv2d {
                    stride: Pair::PerAxis(2, 1),
                    padding: Padding::Sides(2, 0, 1, 3),
                    ..conv(3, 3)
                },
                [6, 2, 16, 10],
            ),
            (
                Conv2d {
                    dilation: Pair::PerAxis(2, 1),
                    groups: 2,
                    padding: Padding::PerAxis(1, 0),
                    ..conv(4, 3)
                },
                [6, 4, 10, 16],
            ),
            (
                Conv2d {
                    padding: Padding::Keyword(PaddingKeyword::Same),
                    bias: false,
                    ..Conv2d::new(2, Pair::PerAxis(4, 3))
                },
                [6, 1, 9, 9],
            ),
            (
                Conv2d {
                    padding: Padding::Keyword(PaddingKeyword::Full),
                    groups: 3,
                    ..conv(3, 2)
                },
                [6, 3, 8, 8],
            ),
            (
                Conv2d {
                    stride: Pair::PerAxis(1, 2),
                    dilation: Pair::PerAxis(1, 3),
                    padding: Padding::PerAxis(0, 2),
                    ..conv(2, 3)
                },
                [6, 2, 10, 20],
            ),
        ]
    }

    #[test]
    fn matches_the_formula_in_every_configuration() {
        let mut rng = ChaCha8Rng::seed_from_u64(7);
        for (op, x_shape) in configurations() {
            let inputs = draw_inputs(&op, x_shape, &mut rng);
            let (x, w, b) = (&inputs[0], &inputs[1], inputs.get(2));
            let expected = reference(&op, x, w, b);
            let y = forward(&op, &inputs);
            assert_eq!(y.shape(), expected.shape(), "{op:?}");
            for (got, want) in y.iter().zip(&expected) {
                assert!((got - want).abs() < 1e-12, "{op:?}: {got} != {want}");
            }
            // Inputs in another memory layout give the same bits.
            let mut x_f = Array4::zeros(ShapeBuilder::f(x_shape));
            x_f.assign(&x.view().into_dimensionality::<Ix4>().unwrap());
            let w_t = w.view().reversed_axes().to_owned();
            let mut views = vec![x_f.view().into_dyn(), w_t.view().reversed_axes()];
            views.extend(b.map(|b| b.view()));
            let y_other = Op::<f64>::forward(&op, &views).unwrap();
            assert_eq!(y_other, y, "{op:?}");
        }
    }

    #[test]
    fn a_mostly_zero_output_gradient_gives_the_formulas_gradients() {
        // A global max pooling's gradient: a few nonzeros per sample, which backward sends
        // straight to the weight and input gradients (`sparse.rs`); sample 1 keeps a full
        // gradient for the lowered route, in the same chunk.
        let mut rng = ChaCha8Rng::seed_from_u64(5);
        for (op, x_shape) in configurations() {
            let inputs = draw_inputs(&op, x_shape, &mut rng);
            let y = forward(&op, &inputs);
            // One nonzero per map, at a random position (edges included), but sample 1.
            let mut dy = ArrayD::zeros(y.shape());
            let positions = y.shape()[2] * y.shape()[3];
            for n in 0..y.shape()[0] {
                for f in 0..op.filters {
                    if n == 1 {
                        for p in 0..positions {
                            dy[[n, f, p / y.shape()[3], p % y.shape()[3]]] =
                                rng.random_range(-1.0..1.0);
                        }
                    } else {
                        let p = rng.random_range(0..positions);
                        dy[[n, f, p / y.shape()[3], p % y.shape()[3]]] = rng.random_range(0.5..1.5);
                    }
                }
            }
            let sample = |n: usize| {
                dy.index_axis(Axis(0), n)
                    .iter()
                    .copied()
                    .collect::<Vec<_>>()
            };
            assert!(sparse::is_sparse(&sample(0)) && !sparse::is_sparse(&sample(1)));
            let expected = reference_gradients(&op, &inputs[0], &inputs[1], &dy);
            let got = pass::<f64>(&op, &inputs, &dy);
            // [y, dL/dx, dL/dw, and dL/db with a bias] against [dL/dx, dL/dw, dL/db].
            assert_eq!(got.len(), inputs.len() + 1);
            for (k, (got, want)) in got[1..].iter().zip(&expected).enumerate() {
                assert_eq!(got.shape(), want.shape());
                for (a, b) in got.iter().zip(want) {
                    assert!((a - b).abs() < 1e-12, "{op:?}, gradient {k}: {a} != {b}");
                }
            }
            // The same bits on one thread or two (two chunks of samples).
            let bits = |t: &ArrayD<f32>| t.iter().map(|v| v.to_bits()).collect::<Vec<_>>();
            let on = |threads| pass_on_threads(threads, &op, &inputs, &dy);
            for (a, b) in on(1).iter().zip(&on(2)) {
                assert_eq!(bits(a), bits(b), "{op:?}");
            }
        }
    }

    #[test]
    fn a_zero_output_gradient_ignores_an_infinite_input() {
        // dL/dw = sum dy * x has only zero terms: 0, not the NaN of 0 * inf.
        let op = conv(1, 2);
        let mut x = one_to_nine();
        x[[0, 0, 1, 1]] = f64::INFINITY;
        let (w, b) = (kernel2([[1.0; 2]; 2]), arr1(&[0.0]).into_dyn());
        let grads = pass::<f64>(&op, &[x, w, b], &ArrayD::zeros(IxDyn(&[1, 1, 2, 2])));
        assert!(grads[1..].iter().all(|g| g.iter().all(|&v| v == 0.0)));
    }

    /// Forward and backward of one conv in precision `F`: `[y, dL/dx, dL/dw, dL/db]`.
    fn pass<F: Float>(op: &Conv2d, inputs: &[ArrayD<f64>], dy: &ArrayD<f64>) -> Vec<ArrayD<F>> {
        let mut tape = Tape::<F>::new();
        let vars: Vec<_> = inputs
            .iter()
            .map(|a| tape.leaf(a.mapv(F::from_f64), true))
            .collect();
        let refs: Vec<_> = vars.iter().collect();
        let y = tape.apply(op.clone(), &refs).unwrap();
        let grads = tape.backward_from(&y, dy.mapv(F::from_f64)).unwrap();
        let mut out = vec![y.value().clone()];
        out.extend(vars.iter().map(|v| grads.get(v).unwrap().clone()));
        out
    }

    /// [`pass`] in `f32` in a pool of `threads` threads.
    fn pass_on_threads(
        threads: usize,
        op: &Conv2d,
        inputs: &[ArrayD<f64>],
        dy: &ArrayD<f64>,
    ) -> Vec<ArrayD<f32>> {
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .build()
            .unwrap();
        pool.install(|| pass::<f32>(op, inputs, dy))
    }

    #[test]
    fn results_are_bit_identical_on_one_or_two_threads() {
        let mut rng = ChaCha8Rng::seed_from_u64(3);
        let op = Conv2d {
            padding: Padding::All(1),
            ..conv(4, 3)
        };
        // 8 samples: two chunks, so two threads do share the work.
        let inputs = vec![
            random(&[8, 3, 10, 10], &mut rng),
            random(&[4, 3, 3, 3], &mut rng),
            random(&[4], &mut rng),
        ];
        let dy = random(&[8, 4, 10, 10], &mut rng);
        let on = |threads| pass_on_threads(threads, &op, &inputs, &dy);
        let (one, two) = (on(1), on(2));
        for (k, (a, b)) in one.iter().zip(&two).enumerate() {
            let bits = |t: &ArrayD<f32>| t.iter().map(|v| v.to_bits()).collect::<Vec<_>>();
            assert_eq!(bits(a), bits(b), "tensor {k} ([y, dx, dw, db])");
        }

        // f32 and f64 agree up to f32 rounding (sums of at most 8*10*10 terms of size ~1).
        let wide = pass::<f64>(&op, &inputs, &dy);
        for (k, (narrow, wide)) in one.iter().zip(&wide).enumerate() {
            let scale = wide.iter().fold(1.0f64, |m, v| m.max(v.abs()));
            for (a, b) in narrow.iter().zip(wide) {
                assert!(
                    (f64::from(*a) - b).abs() < 1e-4 * scale,
                    "tensor {k}: {a} vs {b}"
                );
            }
        }
    }

    #[test]
    fn full_padding_makes_the_global_max_translation_invariant() {
        // Every window that overlaps the input exists with Full padding, so a shape on a zero
        // canvas meets the filter at every relative offset wherever it is pasted: the windows
        // over it read identical columns, and the largest response is the same to the bit.
        let mut rng = ChaCha8Rng::seed_from_u64(11);
        let op = Conv2d {
            padding: Padding::Keyword(PaddingKeyword::Full),
            ..conv(1, 5)
        };
        let w = random(&[1, 1, 5, 5], &mut rng).mapv(|v| v as f32);
        let b = arr1(&[0.1f32]).into_dyn();
        let shape = arr2(&[[1.0f32, 0.5, 0.0], [0.25, 1.0, 0.75], [0.0, 1.0, 0.5]]);
        let max_at = |top: usize, left: usize| {
            let mut canvas = Array2::<f32>::zeros((12, 12));
            canvas
                .slice_axis_mut(Axis(0), Slice::from(top..top + 3))
                .slice_axis_mut(Axis(1), Slice::from(left..left + 3))
                .assign(&shape);
            let canvas = canvas
                .into_shape_with_order(IxDyn(&[1, 1, 12, 12]))
                .unwrap();
            let y = Op::<f32>::forward(&op, &[canvas.view(), w.view(), b.view()]).unwrap();
            assert_eq!(y.shape(), &[1, 1, 16, 16]); // 12 + 4 + 4 - 5 + 1
            y.iter().fold(f32::NEG_INFINITY, |m, &v| m.max(v))
        };
        assert_eq!(max_at(1, 2).to_bits(), max_at(7, 6).to_bits());
        assert_eq!(max_at(0, 0).to_bits(), max_at(9, 9).to_bits());
    }

    #[test]
    fn the_input_gradient_is_skipped_when_not_needed() {
        let (x, w, b) = (
            one_to_nine(),
            kernel2([[1.0; 2]; 2]),
            arr1(&[0.0]).into_dyn(),
        );
        let op = conv(1, 2);
        let y = forward(&op, &[x.clone(), w.clone(), b.clone()]);
        let cx = BackwardCx {
            inputs: &[x.view(), w.view(), b.view()],
            output: y.view(),
            output_grad: y.view(),
            needs_grad: &[false, true, false],
        };
        let grads = Op::<f64>::backward(&op, &cx).unwrap();
        assert!(grads[0].is_none() && grads[1].is_some() && grads[2].is_none());
    }

    #[test]
    fn params_follow_pytorch() {
        let op = Conv2d {
            groups: 2,
            ..Conv2d::new(6, Pair::PerAxis(3, 5))
        };
        let params = Op::<f32>::params(&op, &[&[2, 4, 9, 9]]).unwrap();
        // fan_in = C/G * kh * kw = 2 * 3 * 5; fan_out = F * kh * kw = 6 * 3 * 5.
        assert_eq!(
            params,
            [
                ParamSpec {
                    name: "weight",
                    shape: vec![6, 2, 3, 5],
                    role: ParamRole::Weight {
                        fan_in: 30,
                        fan_out: 90
                    },
                },
                ParamSpec {
                    name: "bias",
                    shape: vec![6],
                    role: ParamRole::Bias { fan_in: 30 },
                },
            ]
        );
        let no_bias = Conv2d {
            bias: false,
            ..conv(6, 3)
        };
        assert_eq!(
            Op::<f32>::params(&no_bias, &[&[1, 4, 9, 9]]).unwrap().len(),
            1
        );
        let err = Op::<f32>::params(&op, &[&[2, 3, 9, 9]])
            .unwrap_err()
            .to_string();
        assert!(
            err.starts_with("conv2d: input has 3 channels, which 2 groups"),
            "{err}"
        );
    }

    #[test]
    fn flops_count_a_multiply_add_as_two() {
        // 4 outputs, each 4 multiply-adds (8 flops) and a bias addition: 4 * 9 = 36.
        assert_eq!(
            Op::<f32>::flops(&conv(1, 2), &[&[1, 1, 3, 3], &[1, 1, 2, 2], &[1]]),
            36
        );
    }

    #[test]
    fn bad_shapes_are_errors_that_show_them() {
        let op = conv(8, 3);
        assert_eq!(
            shape_error(&op, &[&[1, 3, 5, 5], &[8, 3, 3, 3]]),
            "conv2d: expects 3 inputs, got 2"
        );
        assert_eq!(
            shape_error(&op, &[&[3, 5, 5], &[8, 3, 3, 3], &[8]]),
            "conv2d: input must have rank 4 ([N, C, H, W]), got shape [3, 5, 5]"
        );
        assert_eq!(
            shape_error(&op, &[&[1, 3, 5, 5], &[8, 3, 9], &[8]]),
            "conv2d: weight must have rank 4 ([filters, C/groups, kh, kw]), got shape [8, 3, 9]"
        );
        assert_eq!(
            shape_error(&op, &[&[1, 3, 5, 5], &[8, 4, 3, 3], &[8]]),
            "conv2d: input has 3 channels, weight expects 4 (input [1, 3, 5, 5], weight [8, 4, 3, 3])"
        );
        let grouped = Conv2d {
            groups: 2,
            ..op.clone()
        };
        assert_eq!(
            shape_error(&grouped, &[&[1, 3, 5, 5], &[8, 2, 3, 3], &[8]]),
            "conv2d: input has 3 channels, which 2 groups do not divide (input [1, 3, 5, 5]); \
             choose groups dividing both the channels and the filters (8)"
        );
        assert_eq!(
            shape_error(&grouped, &[&[1, 4, 5, 5], &[8, 4, 3, 3], &[8]]),
            "conv2d: input has 4 channels (2 per group of 2), weight expects 4 \
             (input [1, 4, 5, 5], weight [8, 4, 3, 3])"
        );
        assert_eq!(
            shape_error(&op, &[&[1, 3, 5, 5], &[8, 3, 5, 5], &[8]]),
            "conv2d: weight has shape [8, 3, 5, 5], expected [filters, C/groups, kh, kw] = \
             [8, 3, 3, 3] (filters 8, kernel 3, input [1, 3, 5, 5])"
        );
        assert_eq!(
            shape_error(&op, &[&[1, 3, 5, 5], &[6, 3, 3, 3], &[8]]),
            "conv2d: weight has shape [6, 3, 3, 3], expected [filters, C/groups, kh, kw] = \
             [8, 3, 3, 3] (filters 8, kernel 3, input [1, 3, 5, 5])"
        );
        assert_eq!(
            shape_error(&op, &[&[1, 3, 5, 5], &[8, 3, 3, 3], &[1, 8]]),
            "conv2d: bias has shape [1, 8], expected [filters] = [8]"
        );
        // A dilated 3x3 kernel spans 5 pixels.
        let dilated = Conv2d {
            dilation: Pair::Both(2),
            padding: Padding::PerAxis(0, 1),
            ..op.clone()
        };
        assert_eq!(
            shape_error(&dilated, &[&[1, 3, 4, 4], &[8, 3, 3, 3], &[8]]),
            "conv2d: height: the window spans 5 pixels (kernel 3, dilation 2) but the padded \
             input has only 4 (4 + padding 0 + 0); use a smaller kernel or more padding"
        );
    }

    #[test]
    fn an_output_too_large_to_allocate_is_an_error() {
        let padded = |pad| Conv2d {
            padding: Padding::All(pad),
            ..conv(1, 1)
        };
        let shapes: &[&[usize]] = &[&[1, 1, 1, 1], &[1, 1, 1, 1], &[1]];
        // 2^31 + 1 rows and columns: 2^62 elements fit in usize but not in memory.
        assert_eq!(
            shape_error(&padded(1 << 30), shapes),
            "conv2d: the output would have shape [1, 1, 2147483649, 2147483649], more elements \
             than fit in memory"
        );
        // 2^82 elements: the count overflows usize, and the message is the same.
        assert_eq!(
            shape_error(&padded(1 << 40), shapes),
            "conv2d: the output would have shape [1, 1, 2199023255553, 2199023255553], more \
             elements than fit in memory"
        );
    }

    #[test]
    fn bad_hyperparameters_are_errors() {
        let shapes: &[&[usize]] = &[&[1, 4, 5, 5], &[8, 4, 3, 3], &[8]];
        let cases = [
            (
                Conv2d {
                    filters: 0,
                    ..conv(8, 3)
                },
                "filters must be at least 1",
            ),
            (conv(8, 0), "kernel must be at least 1, got 0"),
            (
                Conv2d {
                    kernel: Pair::PerAxis(3, 0),
                    ..conv(8, 3)
                },
                "kernel must be at least 1, got (3, 0)",
            ),
            (
                Conv2d {
                    stride: Pair::Both(0),
                    ..conv(8, 3)
                },
                "stride must be at least 1, got 0",
            ),
            (
                Conv2d {
                    dilation: Pair::PerAxis(0, 1),
                    ..conv(8, 3)
                },
                "dilation must be at least 1, got (0, 1)",
            ),
            (
                Conv2d {
                    groups: 0,
                    ..conv(8, 3)
                },
                "groups must be at least 1",
            ),
            (
                Conv2d {
                    groups: 3,
                    ..conv(8, 3)
                },
                "filters (8) must be divisible by groups (3)",
            ),
            (
                Conv2d {
                    stride: Pair::Both(2),
                    padding: Padding::Keyword(PaddingKeyword::Same),
                    ..conv(8, 3)
                },
                "padding Same needs stride 1, got (2, 2); give the padding in pixels",
            ),
        ];
        for (op, message) in cases {
            assert_eq!(
                shape_error(&op, shapes),
                format!("conv2d: invalid hyperparameter: {message}"),
                "{op:?}"
            );
        }
    }

    #[test]
    fn builds_from_hyperparameter_text() {
        let registry = crate::builtin_registry();
        let entry = registry.get("conv2d").unwrap();
        let op = entry
            .build_f64(
                "(filters: 6, kernel: (3, 5), stride: 2, padding: (1, 2), groups: 2, bias: false)",
            )
            .unwrap();
        assert_eq!(op.name(), "conv2d");
        // OH = (9 + 2 - 3) / 2 + 1 = 5, OW = (9 + 4 - 5) / 2 + 1 = 5.
        assert_eq!(
            op.output_shape(&[&[2, 4, 9, 9], &[6, 2, 3, 5]]).unwrap(),
            [2, 6, 5, 5]
        );
        assert_eq!(
            ron::from_str::<Conv2d>("(filters: 4, kernel: 3)").unwrap(),
            Conv2d::new(4, Pair::Both(3))
        );

        let error = |text: &str| entry.build_f32(text).unwrap_err().to_string();
        assert_eq!(
            error("(filters: 4)"),
            "conv2d: hyperparameters at line 1, column 12: Unexpected missing field named `kernel` in `Conv2d`"
        );
        assert_eq!(
            error("(filters: 4, kernel: 3, strides: 2)"),
            "conv2d: hyperparameters at line 1, column 25: Unexpected field named `strides` in \
             `Conv2d`, expected one of `filters`, `kernel`, `stride`, `padding`, `dilation`, \
             `groups`, or `bias` instead"
        );
        assert_eq!(
            error("(filters: -4, kernel: 3)"),
            "conv2d: hyperparameters at line 1, column 12: Integer is out of bounds"
        );
        assert_eq!(
            error("(filters: 4, kernel: (3, 5, 7))"),
            "conv2d: hyperparameters at line 1, column 30: a number, or (height, width)"
        );
        // Values that parse but make no convolution fail in the shape rule.
        let zero = entry.build_f32("(filters: 4, kernel: 0)").unwrap();
        assert_eq!(
            zero.output_shape(&[&[1, 1, 5, 5], &[4, 1, 0, 0], &[4]])
                .unwrap_err()
                .to_string(),
            "conv2d: invalid hyperparameter: kernel must be at least 1, got 0"
        );
    }
}
