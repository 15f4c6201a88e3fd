//! `mse`: the mean squared error between a prediction and a target, as PyTorch's `mse_loss`.
//!
//! Inputs: prediction `p` and target `t` of the same shape, `n` elements each.
//!
//! - Output: `L = (1/n) sum_k (p_k - t_k)^2`.
//! - Gradients: `dL/dp_k = 2 (p_k - t_k) g / n` and `dL/dt_k = -dL/dp_k`, with `g` the scalar
//!   output gradient.
//! - Shape: `[]`, a scalar. An empty input has mean `0 / 0 = NaN`, as in PyTorch.

use ndarray::{ArrayD, ArrayViewD, Zip, arr0};
use serde::Deserialize;
use tapir_core::{
    Arity, BackwardCx, CaseInput, Error, Float, Gen, GradcheckCase, Op, OpType, Result,
};

use crate::shape;

/// `mse`: `mean((prediction - target)^2)`. No hyperparameters.
#[derive(Debug, Clone, Copy, Default, PartialEq, Deserialize)]
pub struct Mse;

/// Floating-point operations per element: a subtraction and a multiply-add.
const FLOPS_PER_ELEMENT: u64 = 3;

impl<F: Float> Op<F> for Mse {
    fn name(&self) -> &'static str {
        <Self as OpType>::NAME
    }

    fn arity(&self) -> Arity {
        Arity::Exactly(2)
    }

    fn output_shape(&self, inputs: &[&[usize]]) -> Result<Vec<usize>> {
        shape::expect_inputs(<Self as OpType>::NAME, inputs, 2)?;
        let (prediction, target) = (inputs[0], inputs[1]);
        if prediction != target {
            return Err(Error::shape(
                <Self as OpType>::NAME,
                format!(
                    "prediction has shape {prediction:?} but target has shape {target:?}; they must match"
                ),
            ));
        }
        Ok(Vec::new())
    }

    fn forward(&self, inputs: &[ArrayViewD<F>]) -> Result<ArrayD<F>> {
        let (p, t) = (&inputs[0], &inputs[1]);
        let sum = Zip::from(p).and(t).fold(F::zero(), |acc, &p, &t| {
            let d = p - t;
            acc + d * d
        });
        Ok(arr0(sum / F::from_usize(p.len())).into_dyn())
    }

    fn backward(&self, cx: &BackwardCx<F>) -> Result<Vec<Option<ArrayD<F>>>> {
        if !(cx.needs_grad(0) || cx.needs_grad(1)) {
            return Ok(vec![None, None]);
        }
        let (p, t) = (&cx.inputs[0], &cx.inputs[1]);
        // The output is a scalar, so its gradient g is the one element of output_grad.
        let g = cx.output_grad.first().copied().unwrap_or_else(F::zero);
        let scale = F::from_f64(2.0) * g / F::from_usize(p.len());
        let mut dp = p.to_owned();
        Zip::from(&mut dp)
            .and(t)
            .for_each(|dp, &t| *dp = (*dp - t) * scale);
        let dt = cx.needs_grad(1).then(|| dp.mapv(|d| -d));
        let dp = cx.needs_grad(0).then_some(dp);
        Ok(vec![dp, dt])
    }

    fn flops(&self, inputs: &[&[usize]]) -> u64 {
        shape::elementwise_flops(inputs, FLOPS_PER_ELEMENT)
    }
}

impl OpType for Mse {
    const NAME: &'static str = "mse";

    fn gradcheck_cases() -> Vec<GradcheckCase> {
        // A quadratic is smooth everywhere, so any values do.
        vec![GradcheckCase::new(
            "3x2",
            Mse,
            vec![
                CaseInput::new("prediction", &[3, 2], Gen::uniform()),
                CaseInput::new("target", &[3, 2], Gen::uniform()),
            ],
        )]
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::arr1;
    use tapir_core::Tape;

    #[test]
    fn forward_and_backward_by_hand() {
        let mut tape = Tape::<f64>::new();
        let p = tape.leaf(arr1(&[1.0, 2.0, 3.0, 4.0]).into_dyn(), true);
        let t = tape.leaf(arr1(&[1.0, 0.0, 4.0, 1.0]).into_dyn(), true);
        let loss = tape.apply(Mse, &[&p, &t]).unwrap();
        // p - t = [0, 2, -1, 3]; squares [0, 4, 1, 9] sum to 14; 14 / 4 = 3.5.
        assert_eq!(loss.value(), &arr0(3.5).into_dyn());
        let grads = tape.backward(&loss).unwrap();
        // dL/dp = 2 (p - t) / 4 = [0, 1, -0.5, 1.5]; dL/dt is its negative.
        assert_eq!(
            grads.get(&p).unwrap().as_slice().unwrap(),
            &[0.0, 1.0, -0.5, 1.5]
        );
        assert_eq!(
            grads.get(&t).unwrap().as_slice().unwrap(),
            &[0.0, -1.0, 0.5, -1.5]
        );
    }

    #[test]
    fn only_the_gradients_asked_for() {
        let mut tape = Tape::<f32>::new();
        let p = tape.leaf(arr1(&[3.0f32]).into_dyn(), true);
        let t = tape.leaf(arr1(&[1.0f32]).into_dyn(), false);
        let loss = tape.apply(Mse, &[&p, &t]).unwrap();
        // L = (3 - 1)^2 = 4, dL/dp = 2 (3 - 1) / 1 = 4; the target is a constant.
        assert_eq!(loss.value()[[]], 4.0);
        let grads = tape.backward(&loss).unwrap();
        assert_eq!(grads.get(&p).unwrap().as_slice().unwrap(), &[4.0]);
        assert!(grads.get(&t).is_none());
    }

    #[test]
    fn mismatched_shapes_are_an_error() {
        let err = Op::<f64>::output_shape(&Mse, &[&[3, 2], &[2, 3]]).unwrap_err();
        assert_eq!(
            err.to_string(),
            "mse: prediction has shape [3, 2] but target has shape [2, 3]; they must match"
        );
        assert!(matches!(err, Error::Shape { .. }));
        let err = Op::<f64>::output_shape(&Mse, &[&[3, 2]]).unwrap_err();
        assert_eq!(err.to_string(), "mse: expects 2 inputs, got 1");
    }
}
