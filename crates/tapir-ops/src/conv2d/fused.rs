//! `conv2d`, `relu` and a max pooling in one op ([`ConvReluPool`]): what a network runs for
//! a convolution whose maps go through a `relu` to a `max_pool2d` or `global_max_pool`, and
//! nowhere else.
//!
//! - Output: `out = pool(relu(conv2d(x, w, b)))`, each op as its own file defines it.
//! - Gradients: those of the three ops one after the other, the pooling's sent to the
//!   argmax of each window (or plane) of the ReLU's output, as `relu_max_pool2d` and
//!   `relu_global_max_pool` send it, then through the convolution's backward.
//! - Shape: the pooling's shape rule applied to the convolution's output shape.
//!
//! Forward convolves one sample at a time (its lowered matrix and one product per group,
//! exactly as `conv2d`) and pools the sample's `[F, OH, OW]` maps while they are in cache:
//! the maps of the batch are never stored. For `graphs/cnn-2.ron`'s first layer at batch 64
//! that is 11 MB neither written nor read back by the pooling, and in backward the 11 MB
//! gradient of the maps is never written and read back either. Backward makes each
//! sample's maps again (one more product per sample, on the lowered matrix the weight
//! gradient builds anyway), finds the pooling's gradient on them, and hands it to the
//! convolution's backward for that sample.
//!
//! The same bits as the three ops one after the other: the same code makes each sample's
//! maps, pools each plane and finds its gradient, and the convolution's gradients add the
//! samples in the same order.

use std::sync::Arc;

use ndarray::{ArrayD, ArrayViewD, IxDyn};
use tapir_core::{Arity, BackwardCx, Float, Gen, GradcheckCase, Op, ParamSpec, Result};

use super::kernel::{self, Geometry, OutputGrad};
use super::{Conv2d, bug};
use crate::pooling::{self, PlanePool, PlanePooling};

/// `pool(relu(conv2d(x)))` in one pass over each sample. Not registered: networks build it
/// through [`Op::fused_after`] (the pooling, having absorbed the ReLU, absorbs the
/// convolution).
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct ConvReluPool<P> {
    /// The convolution, with its hyperparameters.
    pub conv: Conv2d,
    /// The pooling.
    pub pool: P,
}

/// The longest filter (`K = C/G kh kw`, multiply-adds per output) whose convolution is made
/// again in backward.
///
/// Fusing saves memory traffic (the maps and their gradient, written and read back: 16
/// bytes per map element in `f32`) and costs one more product (`2K` FLOPs per map element).
/// At ~100 GFLOP/s and ~10 GB/s that pays below `K` = 80 or so. Measured on
/// `graphs/cnn-2.ron`, batch 64, one thread, in alternating `tapir profile` runs: fusing
/// `conv1` (`K` = 25) made the step 1.06-1.43x faster in five pairs; fusing `conv2` (`K` =
/// 144) as well made it slower again, 1.03-1.14x in four pairs.
pub(crate) const MAX_RECOMPUTED_FILTER: usize = 64;

/// [`AfterReluOp::fused_after_relu`] for a pooling: the fused op when `producer` is a
/// [`Conv2d`] of filters no longer than [`MAX_RECOMPUTED_FILTER`] for its inputs
/// `producer_inputs` (and a shape error keeps the ops apart: the network reports it).
pub(crate) fn fuse_conv<F: Float, P: PlanePooling<F>>(
    pool: &P,
    producer: &dyn Op<F>,
    producer_inputs: &[&[usize]],
) -> Option<Arc<dyn Op<F>>> {
    let conv = producer.as_any()?.downcast_ref::<Conv2d>()?;
    let geometry = conv.geometry(producer_inputs).ok()?;
    if geometry.patch_len() > MAX_RECOMPUTED_FILTER {
        return None;
    }
    Some(Arc::new(ConvReluPool {
        conv: conv.clone(),
        pool: pool.clone(),
    }))
}

impl<P> ConvReluPool<P> {
    /// The convolution's geometry, the pooling's planes over its maps, and the output shape.
    fn plan<F: Float>(&self, inputs: &[&[usize]]) -> Result<(Geometry, P::Planes, Vec<usize>)>
    where
        P: PlanePooling<F>,
    {
        let g = self.conv.geometry(inputs)?;
        let maps = [g.batch, g.filters, g.height.output, g.width.output];
        let planes = self.pool.planes(&maps)?;
        let shape = self.pool.output_shape(&[&maps])?;
        Ok((g, planes, shape))
    }
}

impl<F: Float, P: PlanePooling<F>> Op<F> for ConvReluPool<P> {
    fn name(&self) -> &'static str {
        P::CONV_FUSED_NAME
    }

    fn arity(&self) -> Arity {
        Arity::Exactly(1)
    }

    fn params(&self, data_inputs: &[&[usize]]) -> Result<Vec<ParamSpec>> {
        Op::<F>::params(&self.conv, data_inputs)
    }

    fn output_shape(&self, inputs: &[&[usize]]) -> Result<Vec<usize>> {
        self.plan::<F>(inputs).map(|(_, _, shape)| shape)
    }

    fn forward(&self, inputs: &[ArrayViewD<F>]) -> Result<ArrayD<F>> {
        let shapes: Vec<&[usize]> = inputs.iter().map(|a| a.shape()).collect();
        let (g, planes, shape) = self.plan::<F>(&shapes)?;
        let (x, w, b) = self.conv.operands(&g, inputs)?;
        let (map_len, out_len) = planes.plane_lens();
        let pool = |maps: &[F], out: &mut [F]| {
            for (map, out) in maps.chunks(map_len).zip(out.chunks_mut(out_len)) {
                planes.forward_plane(map, out, true);
            }
        };
        let sample_out = g.filters * out_len;
        let out = kernel::forward_samples(&g, x, w.view(), b, Some((sample_out, &pool)));
        ArrayD::from_shape_vec(IxDyn(&shape), out).map_err(bug)
    }

    fn backward(&self, cx: &BackwardCx<F>) -> Result<Vec<Option<ArrayD<F>>>> {
        let shapes: Vec<&[usize]> = cx.inputs.iter().map(|a| a.shape()).collect();
        let (g, planes, shape) = self.plan::<F>(&shapes)?;
        pooling::check_backward(P::CONV_FUSED_NAME, cx, &shape, true)?;
        let y = cx.output.as_standard_layout();
        let y = pooling::elements(&y);
        let dy = cx.output_grad.as_standard_layout();
        let dy = pooling::elements(&dy);
        let (map_len, out_len) = planes.plane_lens();
        let sample_out = g.filters * out_len;
        // Sample n's gradient of its maps, from the maps made again: plane by plane, as the
        // pooling's own backward finds it.
        let dy_of = |n: usize, maps: &[F], dmaps: &mut [F]| {
            let samples = n * sample_out..(n + 1) * sample_out;
            let (y_n, dy_n) = (&y[samples.clone()], &dy[samples]);
            let outputs = y_n.chunks(out_len).zip(dy_n.chunks(out_len));
            for ((map, dmap), (y, dy)) in maps
                .chunks(map_len)
                .zip(dmaps.chunks_mut(map_len))
                .zip(outputs)
            {
                dmap.fill(F::zero());
                planes.backward_plane(map, y, dy, dmap, true);
            }
        };
        let (_, _, bias) = self.conv.operands(&g, cx.inputs)?;
        let dy = OutputGrad::FromOutput {
            bias,
            dy_of: &dy_of,
        };
        self.conv.gradients(&g, cx, dy)
    }

    fn flops(&self, inputs: &[&[usize]]) -> u64 {
        let Ok((g, _, _)) = self.plan::<F>(inputs) else {
            return 0;
        };
        let maps = [g.batch, g.filters, g.height.output, g.width.output];
        let conv = Op::<F>::flops(&self.conv, inputs);
        // The ReLU: one comparison per map element.
        let relu = maps.iter().map(|&d| d as u64).product::<u64>();
        let pool = Op::<F>::flops(&self.pool, &[&maps]);
        conv.saturating_add(relu).saturating_add(pool)
    }
}

/// A gradient-check case of `pool(relu(conv(x)))` as the fused op, for input shape `x`: the
/// consumers' `gradcheck_cases` carry them. Uniform draws make a tie between map values, or
/// one within the finite-difference step of the ReLU's kink, improbable.
pub(crate) fn conv_relu_case<P>(label: &str, conv: Conv2d, pool: P, x: &[usize]) -> GradcheckCase
where
    P: PlanePooling<f32> + PlanePooling<f64>,
{
    let inputs = conv.case_inputs(x, Gen::uniform());
    GradcheckCase::new(label, ConvReluPool { conv, pool }, inputs)
}
