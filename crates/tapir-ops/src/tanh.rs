//! `tanh`: the hyperbolic tangent, elementwise.
//!
//! - Output: `y = tanh(x) = (exp(x) - exp(-x)) / (exp(x) + exp(-x))`.
//! - Gradient: `dL/dx = (1 - y^2) dL/dy`, from the output alone.
//! - Shape: `y` has the shape of `x`.

use ndarray::{ArrayD, ArrayViewD};
use serde::Deserialize;
use tapir_core::{Arity, BackwardCx, CaseInput, Float, Gen, GradcheckCase, Op, OpType, Result};

use crate::{elementwise, shape};

/// `tanh`: the hyperbolic tangent. No hyperparameters.
#[derive(Debug, Clone, Copy, Default, PartialEq, Deserialize)]
pub struct Tanh;

impl<F: Float> Op<F> for Tanh {
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
        // The standard library's tanh saturates at +-1 for large |x|, never NaN.
        elementwise::map(Self::NAME, &inputs[0], F::tanh)
    }

    fn backward(&self, cx: &BackwardCx<F>) -> Result<Vec<Option<ArrayD<F>>>> {
        if !cx.needs_grad(0) {
            return Ok(vec![None]);
        }
        let dx = elementwise::map_grad(Self::NAME, &cx.output_grad, &cx.output, |dy, y| {
            (F::one() - y * y) * dy
        })?;
        Ok(vec![Some(dx)])
    }

    fn flops(&self, inputs: &[&[usize]]) -> u64 {
        // One tanh per element, counted as one.
        shape::elementwise_flops(inputs, 1)
    }
}

impl OpType for Tanh {
    const NAME: &'static str = "tanh";

    fn gradcheck_cases() -> Vec<GradcheckCase> {
        // Smooth everywhere; [-3, 3] reaches the start of saturation (slope 0.01 at |x| = 3).
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
            GradcheckCase::new("2x3x4", Tanh, vec![CaseInput::new("x", &[2, 3, 4], wide)]),
            GradcheckCase::new(
                "saturated",
                Tanh,
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
    fn tanh_of_zero_is_zero_with_slope_one() {
        let mut tape = Tape::<f64>::new();
        let x = tape.leaf(arr1(&[0.0]).into_dyn(), true);
        let y = tape.apply(Tanh, &[&x]).unwrap();
        assert_eq!(y.value()[[0]], 0.0);
        let grads = tape.backward(&y).unwrap();
        // 1 - 0^2
        assert_eq!(grads.get(&x).unwrap()[[0]], 1.0);
    }

    #[test]
    fn by_its_definition_and_saturating() {
        // tanh(1) = (e - 1/e) / (e + 1/e)
        let e = std::f64::consts::E;
        let x = arr1(&[1.0, -1000.0, 1000.0]).into_dyn();
        let y = Op::<f64>::forward(&Tanh, &[x.view()]).unwrap();
        assert!((y[[0]] - (e - 1.0 / e) / (e + 1.0 / e)).abs() < 1e-15);
        assert_eq!((y[[1]], y[[2]]), (-1.0, 1.0));
    }
}
