//! `relu`: the rectified linear unit, elementwise.
//!
//! - Output: `y = max(x, 0)`; a NaN stays NaN, as in PyTorch, so that it reaches the loss
//!   (where training stops on it) instead of turning into a harmless-looking 0.
//! - Gradient: `dL/dx = 0` where `x <= 0`, else `dL/dy` (at `x = 0` the subgradient 0 is
//!   taken, and a NaN passes the gradient on, both as PyTorch does).
//! - Shape: `y` has the shape of `x`.

use std::sync::Arc;

use ndarray::{ArrayD, ArrayViewD};
use serde::Deserialize;
use tapir_core::{Arity, BackwardCx, CaseInput, Float, Gen, GradcheckCase, Op, OpType, Result};

use crate::{elementwise, shape};

/// `max(x, 0)`, NaN kept: the rule of [`Relu`], and of the ops fused after it.
pub(crate) fn relu<F: Float>(x: F) -> F {
    // `x <= 0` is false for NaN, which passes through.
    if x <= F::zero() { F::zero() } else { x }
}

/// An op that can absorb a ReLU in front of it: it computes `op(relu(x))` from `x` in the
/// pass it makes anyway, with the same bits as the two ops one after the other. Its own
/// file gives the math and its `gradcheck_cases` prove the fused backward; its
/// [`Op::fused_after`] returns [`fuse_after_relu`].
pub trait AfterReluOp<F: Float>: Op<F> + Clone + 'static {
    /// The fused op's name, as in error messages (`"relu_max_pool2d"`).
    const FUSED_NAME: &'static str;
    /// `op(relu(x))`.
    fn forward_after_relu(&self, x: &ArrayViewD<F>) -> Result<ArrayD<F>>;
    /// The gradient of `op(relu(x))` for `x`; `cx.inputs[0]` is `x`, `cx.output` the result
    /// of [`AfterReluOp::forward_after_relu`].
    fn backward_after_relu(&self, cx: &BackwardCx<F>) -> Result<Vec<Option<ArrayD<F>>>>;
    /// An op that computes `op(relu(producer(...)))` in one pass, taking `producer`'s
    /// inputs: the fused op's own [`Op::fused_after`]. `None` by default; the max poolings
    /// absorb a `conv2d` this way.
    fn fused_after_relu(
        &self,
        producer: &dyn Op<F>,
        producer_inputs: &[&[usize]],
    ) -> Option<Arc<dyn Op<F>>> {
        let _ = (producer, producer_inputs);
        None
    }
}

/// `op(relu(x))` in one pass: what a network runs for an [`AfterReluOp`] whose input is a
/// [`Relu`] that nothing else reads. Not registered: networks build it through
/// [`Op::fused_after`].
#[derive(Debug, Clone, PartialEq)]
pub struct AfterRelu<P>(pub P);

impl<F: Float, P: AfterReluOp<F>> Op<F> for AfterRelu<P> {
    fn name(&self) -> &'static str {
        P::FUSED_NAME
    }

    fn arity(&self) -> Arity {
        self.0.arity()
    }

    fn output_shape(&self, inputs: &[&[usize]]) -> Result<Vec<usize>> {
        self.0.output_shape(inputs)
    }

    fn forward(&self, inputs: &[ArrayViewD<F>]) -> Result<ArrayD<F>> {
        self.0.forward_after_relu(&inputs[0])
    }

    fn backward(&self, cx: &BackwardCx<F>) -> Result<Vec<Option<ArrayD<F>>>> {
        self.0.backward_after_relu(cx)
    }

    fn flops(&self, inputs: &[&[usize]]) -> u64 {
        self.0.flops(inputs)
    }

    fn fused_after(
        &self,
        producer: &dyn Op<F>,
        producer_inputs: &[&[usize]],
    ) -> Option<Arc<dyn Op<F>>> {
        self.0.fused_after_relu(producer, producer_inputs)
    }
}

/// [`Op::fused_after`] for an [`AfterReluOp`]: the fused op when `producer` is a ReLU.
pub fn fuse_after_relu<F: Float, P: AfterReluOp<F>>(
    op: &P,
    producer: &dyn Op<F>,
) -> Option<Arc<dyn Op<F>>> {
    (producer.name() == <Relu as OpType>::NAME)
        .then(|| Arc::new(AfterRelu(op.clone())) as Arc<dyn Op<F>>)
}

/// `relu`: `max(x, 0)`. No hyperparameters.
#[derive(Debug, Clone, Copy, Default, PartialEq, Deserialize)]
pub struct Relu;

impl<F: Float> Op<F> for Relu {
    fn name(&self) -> &'static str {
        <Self as OpType>::NAME
    }

    fn arity(&self) -> Arity {
        Arity::Exactly(1)
    }

    fn output_shape(&self, inputs: &[&[usize]]) -> Result<Vec<usize>> {
        shape::unary(<Self as OpType>::NAME, inputs)
    }

    fn forward(&self, inputs: &[ArrayViewD<F>]) -> Result<ArrayD<F>> {
        elementwise::map(Self::NAME, &inputs[0], relu)
    }

    fn backward(&self, cx: &BackwardCx<F>) -> Result<Vec<Option<ArrayD<F>>>> {
        if !cx.needs_grad(0) {
            return Ok(vec![None]);
        }
        let dx = elementwise::map_grad(Self::NAME, &cx.output_grad, &cx.inputs[0], |dy, x| {
            if x <= F::zero() { F::zero() } else { dy }
        })?;
        Ok(vec![Some(dx)])
    }

    fn flops(&self, inputs: &[&[usize]]) -> u64 {
        shape::elementwise_flops(inputs, 1)
    }
}

impl OpType for Relu {
    const NAME: &'static str = "relu";

    fn gradcheck_cases() -> Vec<GradcheckCase> {
        // Inputs stay at least 0.1 from the kink at 0, far beyond the finite-difference step.
        let away = Gen::AwayFromZero { min: 0.1, max: 2.0 };
        vec![
            GradcheckCase::new("vector", Relu, vec![CaseInput::new("x", &[7], away)]),
            GradcheckCase::new("NCHW", Relu, vec![CaseInput::new("x", &[2, 3, 4, 5], away)]),
        ]
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::{ArrayD, arr1};
    use tapir_core::{Error, Tape};

    #[test]
    fn forward_and_backward_by_hand() {
        let mut tape = Tape::<f64>::new();
        let x = tape.leaf(arr1(&[-2.0, 0.0, 3.0]).into_dyn(), true);
        let y = tape.apply(Relu, &[&x]).unwrap();
        assert_eq!(y.value().as_slice().unwrap(), &[0.0, 0.0, 3.0]);
        let grads = tape
            .backward_from(&y, ArrayD::from_elem(vec![3], 5.0))
            .unwrap();
        // dL/dx = 5 where x > 0; the kink at 0 takes the subgradient 0.
        assert_eq!(grads.get(&x).unwrap().as_slice().unwrap(), &[0.0, 0.0, 5.0]);
    }

    #[test]
    fn nan_stays_nan_and_passes_the_gradient() {
        // As PyTorch: a NaN must reach the loss, where training stops, not become a 0.
        let mut tape = Tape::<f32>::new();
        let x = tape.leaf(arr1(&[f32::NAN, -1.0]).into_dyn(), true);
        let y = tape.apply(Relu, &[&x]).unwrap();
        assert!(y.value()[0].is_nan());
        assert_eq!(y.value()[1], 0.0);
        let grads = tape
            .backward_from(&y, ArrayD::from_elem(vec![2], 5.0))
            .unwrap();
        assert_eq!(grads.get(&x).unwrap().as_slice().unwrap(), &[5.0, 0.0]);
    }

    #[test]
    fn wrong_input_count_is_an_error() {
        let err = Op::<f32>::output_shape(&Relu, &[&[2], &[2]]).unwrap_err();
        assert_eq!(err.to_string(), "relu: expects 1 inputs, got 2");
        assert!(matches!(err, Error::Arity { .. }));
    }
}
