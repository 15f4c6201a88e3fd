//! `sigmoid`: the logistic function, elementwise.
//!
//! - Output: `y = 1 / (1 + exp(-x))`.
//! - Gradient: `dL/dx = y (1 - y) dL/dy`, from the output alone.
//! - Shape: `y` has the shape of `x`.
//!
//! Computed as `1 / (1 + exp(-x))` for `x >= 0` and `exp(x) / (1 + exp(x))` for `x < 0`, so
//! `exp` only ever sees a non-positive argument: it underflows to 0 for large `|x|` instead of
//! overflowing to infinity, and `y` saturates at exactly 0 or 1 rather than becoming NaN.

use ndarray::{ArrayD, ArrayViewD};
use serde::Deserialize;
use tapir_core::{Arity, BackwardCx, CaseInput, Float, Gen, GradcheckCase, Op, OpType, Result};

use crate::{elementwise, shape};

/// `sigmoid`: `1 / (1 + exp(-x))`. No hyperparameters.
#[derive(Debug, Clone, Copy, Default, PartialEq, Deserialize)]
pub struct Sigmoid;

/// The logistic function of one value, without overflow (see the module doc).
fn logistic<F: Float>(x: F) -> F {
    if x >= F::zero() {
        F::one() / (F::one() + (-x).exp())
    } else {
        let e = x.exp();
        e / (F::one() + e)
    }
}

impl<F: Float> Op<F> for Sigmoid {
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
        elementwise::map(Self::NAME, &inputs[0], logistic)
    }

    fn backward(&self, cx: &BackwardCx<F>) -> Result<Vec<Option<ArrayD<F>>>> {
        if !cx.needs_grad(0) {
            return Ok(vec![None]);
        }
        let dx = elementwise::map_grad(Self::NAME, &cx.output_grad, &cx.output, |dy, y| {
            y * (F::one() - y) * dy
        })?;
        Ok(vec![Some(dx)])
    }

    fn flops(&self, inputs: &[&[usize]]) -> u64 {
        // exp, add and divide per element, counting exp as one.
        shape::elementwise_flops(inputs, 3)
    }
}

impl OpType for Sigmoid {
    const NAME: &'static str = "sigmoid";

    fn gradcheck_cases() -> Vec<GradcheckCase> {
        // Smooth everywhere; [-3, 3] reaches where the slope has fallen to a fifth of its
        // peak, so both branches (x < 0, x >= 0) and the start of saturation are checked.
        let wide = Gen::Uniform {
            low: -3.0,
            high: 3.0,
        };
        // Deep in saturation the slope falls below the relative error's floor: this checks
        // that the tails get their tiny gradient, not NaN or a cancelled 0.
        let saturated = Gen::Uniform {
            low: -8.0,
            high: 8.0,
        };
        vec![
            GradcheckCase::new(
                "2x3x4",
                Sigmoid,
                vec![CaseInput::new("x", &[2, 3, 4], wide)],
            ),
            GradcheckCase::new(
                "saturated",
                Sigmoid,
                vec![CaseInput::new("x", &[8], saturated)],
            ),
        ]
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::arr1;
    use tapir_core::Tape;

    #[test]
    fn sigmoid_of_zero_is_one_half_with_slope_one_quarter() {
        let mut tape = Tape::<f64>::new();
        let x = tape.leaf(arr1(&[0.0]).into_dyn(), true);
        let y = tape.apply(Sigmoid, &[&x]).unwrap();
        // 1 / (1 + exp(0)) = 1 / 2, exactly.
        assert_eq!(y.value()[[0]], 0.5);
        let grads = tape.backward(&y).unwrap();
        // y (1 - y) = 0.5 * 0.5
        assert_eq!(grads.get(&x).unwrap()[[0]], 0.25);
    }

    #[test]
    fn large_inputs_saturate_without_nan() {
        let x = arr1(&[-1000.0, 1000.0]).into_dyn();
        let y = Op::<f64>::forward(&Sigmoid, &[x.view()]).unwrap();
        assert_eq!(y, arr1(&[0.0, 1.0]).into_dyn());
        let y32 = Op::<f32>::forward(&Sigmoid, &[x.mapv(|v| v as f32).view()]).unwrap();
        assert_eq!(y32, arr1(&[0.0f32, 1.0]).into_dyn());

        let mut tape = Tape::<f64>::new();
        let x = tape.leaf(x, true);
        let y = tape.apply(Sigmoid, &[&x]).unwrap();
        let grads = tape.backward_from(&y, ArrayD::ones(vec![2])).unwrap();
        assert!(grads.get(&x).unwrap().iter().all(|g| *g == 0.0));
    }

    #[test]
    fn symmetric_about_zero() {
        // sigmoid(-x) = 1 - sigmoid(x); 2 and -2 take different branches.
        let y = Op::<f64>::forward(&Sigmoid, &[arr1(&[-2.0, 2.0]).into_dyn().view()]).unwrap();
        assert!((y[[0]] - (1.0 - y[[1]])).abs() < 1e-15);
        assert!((y[[1]] - 1.0 / (1.0 + (-2.0f64).exp())).abs() < 1e-15);
    }
}
