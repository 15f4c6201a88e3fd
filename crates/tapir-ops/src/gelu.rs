//! `gelu`: the Gaussian error linear unit, elementwise, in PyTorch's default exact form
//! (`nn.GELU()`, `approximate="none"`).
//!
//! With `Phi` the standard normal distribution function and `phi` its density:
//!
//! - Output: `y = x Phi(x) = 0.5 x (1 + erf(x / sqrt 2))`.
//! - Gradient: `dL/dx = (Phi(x) + x phi(x)) dL/dy`, with `phi(x) = exp(-x^2 / 2) / sqrt(2 pi)`.
//! - Shape: `y` has the shape of `x`.
//!
//! `erf` comes from the `libm` crate: Rust's standard library has no stable `erf`, and
//! libm's (a port of musl's) is accurate to about one unit in the last place. Every value is
//! computed in `f64` and rounded once to the element type, because `Float` offers no `erf`
//! of its own: one code path serves both precisions, and `f32` results are as exact as
//! `f32` can hold.
//!
//! `Phi(x)` is computed as `0.5 erfc(-x / sqrt 2)`, which equals `0.5 (1 + erf(x / sqrt 2))`
//! but does not cancel to 0 when `erf` is close to -1 (very negative `x`), where the tail of
//! `y` would otherwise be lost.

use ndarray::{ArrayD, ArrayViewD};
use serde::Deserialize;
use std::f64::consts::{FRAC_1_SQRT_2, PI};
use tapir_core::{Arity, BackwardCx, CaseInput, Float, Gen, GradcheckCase, Op, OpType, Result};

use crate::{elementwise, shape};

/// `gelu`: `x Phi(x)`, the exact form. No hyperparameters.
#[derive(Debug, Clone, Copy, Default, PartialEq, Deserialize)]
pub struct Gelu;

/// `Phi(x)`, the standard normal distribution function.
fn normal_cdf(x: f64) -> f64 {
    0.5 * libm::erfc(-x * FRAC_1_SQRT_2)
}

/// `phi(x)`, the standard normal density.
fn normal_pdf(x: f64) -> f64 {
    (-0.5 * x * x).exp() / (2.0 * PI).sqrt()
}

impl<F: Float> Op<F> for Gelu {
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
        // y = x Phi(x)
        elementwise::map(Self::NAME, &inputs[0], |x| {
            let x = x.to_f64();
            F::from_f64(x * normal_cdf(x))
        })
    }

    fn backward(&self, cx: &BackwardCx<F>) -> Result<Vec<Option<ArrayD<F>>>> {
        if !cx.needs_grad(0) {
            return Ok(vec![None]);
        }
        // dL/dx = (Phi(x) + x phi(x)) dL/dy
        let dx = elementwise::map_grad(Self::NAME, &cx.output_grad, &cx.inputs[0], |dy, x| {
            let x = x.to_f64();
            F::from_f64((normal_cdf(x) + x * normal_pdf(x)) * dy.to_f64())
        })?;
        Ok(vec![Some(dx)])
    }

    fn flops(&self, inputs: &[&[usize]]) -> u64 {
        // Scale, erfc, add and two multiplies per element, counting erfc as one.
        shape::elementwise_flops(inputs, 5)
    }
}

impl OpType for Gelu {
    const NAME: &'static str = "gelu";

    fn gradcheck_cases() -> Vec<GradcheckCase> {
        // Smooth everywhere; [-3, 3] covers the dip below zero (minimum near x = -0.75) and
        // both tails, where the slope tends to 0 and 1.
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
            GradcheckCase::new("2x3x4", Gelu, vec![CaseInput::new("x", &[2, 3, 4], wide)]),
            GradcheckCase::new(
                "saturated",
                Gelu,
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
    fn gelu_of_zero_is_zero_with_slope_one_half() {
        let mut tape = Tape::<f64>::new();
        let x = tape.leaf(arr1(&[0.0]).into_dyn(), true);
        let y = tape.apply(Gelu, &[&x]).unwrap();
        // 0 * Phi(0) = 0
        assert_eq!(y.value()[[0]], 0.0);
        let grads = tape.backward(&y).unwrap();
        // Phi(0) + 0 * phi(0) = 0.5 erfc(0) = 0.5
        assert_eq!(grads.get(&x).unwrap()[[0]], 0.5);
    }

    #[test]
    fn known_values() {
        let x = arr1(&[1.0, -1.0, 10.0, -10.0, -40.0]).into_dyn();
        let y = Op::<f64>::forward(&Gelu, &[x.view()]).unwrap();
        // Phi(1) = 0.8413447460685429 (standard normal table), so gelu(1) = Phi(1) and
        // gelu(-1) = -Phi(-1) = -(1 - Phi(1)).
        assert!((y[[0]] - 0.841_344_746_068_542_9).abs() < 1e-15);
        assert!((y[[1]] + (1.0 - 0.841_344_746_068_542_9)).abs() < 1e-15);
        // Far tails: the identity above, and a tiny negative value below, not 0.
        assert_eq!(y[[2]], 10.0);
        assert!(y[[3]] < 0.0 && y[[3]] > -1e-21);
        assert!(y[[4]] <= 0.0 && y[[4]].is_finite());
    }

    #[test]
    fn f32_matches_f64_rounded() {
        let x = arr1(&[-2.5f32, -0.3, 0.7, 4.0]).into_dyn();
        let y32 = Op::<f32>::forward(&Gelu, &[x.view()]).unwrap();
        let y64 = Op::<f64>::forward(&Gelu, &[x.mapv(f64::from).view()]).unwrap();
        assert_eq!(y32, y64.mapv(|v| v as f32));
    }
}
