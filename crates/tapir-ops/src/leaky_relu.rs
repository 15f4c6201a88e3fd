//! `leaky_relu`: the leaky rectified linear unit, elementwise (PyTorch's `nn.LeakyReLU`).
//!
//! With slope `a` (`negative_slope`):
//!
//! - Output: `y = x` where `x > 0`, else `a x`.
//! - Gradient: `dL/dx = dL/dy` where `x > 0`, else `a dL/dy` (at `x = 0` the slope `a` is
//!   taken, as PyTorch does).
//! - Shape: `y` has the shape of `x`.

use ndarray::{ArrayD, ArrayViewD};
use serde::Deserialize;
use tapir_core::{
    Arity, BackwardCx, CaseInput, Error, Float, Gen, GradcheckCase, Op, OpType, Result,
};

use crate::{elementwise, shape};

const NAME: &str = "leaky_relu";

/// `leaky_relu`: `x` where positive, `negative_slope * x` elsewhere.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LeakyRelu {
    /// The slope for negative inputs (default 0.01, as in PyTorch).
    #[serde(default = "default_negative_slope")]
    pub negative_slope: f64,
}

fn default_negative_slope() -> f64 {
    0.01
}

impl Default for LeakyRelu {
    fn default() -> Self {
        LeakyRelu {
            negative_slope: default_negative_slope(),
        }
    }
}

impl<F: Float> Op<F> for LeakyRelu {
    fn name(&self) -> &'static str {
        <Self as OpType>::NAME
    }

    fn arity(&self) -> Arity {
        Arity::Exactly(1)
    }

    fn output_shape(&self, inputs: &[&[usize]]) -> Result<Vec<usize>> {
        if !self.negative_slope.is_finite() {
            return Err(Error::hyperparameter(
                NAME,
                format!(
                    "negative_slope must be a finite number, got {}",
                    self.negative_slope
                ),
            ));
        }
        // Networks train in f32, where a slope beyond its range rounds to infinity.
        if !(self.negative_slope as f32).is_finite() {
            return Err(Error::hyperparameter(
                NAME,
                format!(
                    "negative_slope must be finite in f32 too, at most {:e} in size, got {:e}",
                    f32::MAX,
                    self.negative_slope
                ),
            ));
        }
        shape::unary(NAME, inputs)
    }

    fn forward(&self, inputs: &[ArrayViewD<F>]) -> Result<ArrayD<F>> {
        let a = F::from_f64(self.negative_slope);
        elementwise::map(NAME, &inputs[0], |x| if x > F::zero() { x } else { a * x })
    }

    fn backward(&self, cx: &BackwardCx<F>) -> Result<Vec<Option<ArrayD<F>>>> {
        if !cx.needs_grad(0) {
            return Ok(vec![None]);
        }
        let a = F::from_f64(self.negative_slope);
        let dx = elementwise::map_grad(NAME, &cx.output_grad, &cx.inputs[0], |dy, x| {
            if x > F::zero() { dy } else { a * dy }
        })?;
        Ok(vec![Some(dx)])
    }

    fn flops(&self, inputs: &[&[usize]]) -> u64 {
        // One multiply per element (the comparison is not counted).
        shape::elementwise_flops(inputs, 1)
    }
}

impl OpType for LeakyRelu {
    const NAME: &'static str = NAME;

    fn gradcheck_cases() -> Vec<GradcheckCase> {
        // Inputs stay at least 0.1 from the kink at 0, far beyond the finite-difference step.
        let away = Gen::AwayFromZero { min: 0.1, max: 2.0 };
        vec![
            GradcheckCase::new(
                "default slope",
                LeakyRelu::default(),
                vec![CaseInput::new("x", &[3, 4], away)],
            ),
            // A large slope makes a wrong negative-side gradient stand out.
            GradcheckCase::new(
                "slope 0.3 NCHW",
                LeakyRelu {
                    negative_slope: 0.3,
                },
                vec![CaseInput::new("x", &[2, 2, 3, 3], away)],
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
    fn forward_and_backward_by_hand() {
        let op = LeakyRelu {
            negative_slope: 0.25,
        };
        let mut tape = Tape::<f64>::new();
        let x = tape.leaf(arr1(&[-4.0, -1.0, 0.0, 2.0]).into_dyn(), true);
        let y = tape.apply(op, &[&x]).unwrap();
        // [0.25 * -4, 0.25 * -1, 0.25 * 0, 2]
        assert_eq!(y.value(), &arr1(&[-1.0, -0.25, 0.0, 2.0]).into_dyn());
        let grads = tape
            .backward_from(&y, ArrayD::from_elem(vec![4], 2.0))
            .unwrap();
        // dL/dx = 0.25 * 2 where x <= 0 (the kink at 0 takes the slope), 2 where x > 0.
        assert_eq!(
            grads.get(&x).unwrap(),
            &arr1(&[0.5, 0.5, 0.5, 2.0]).into_dyn()
        );
    }

    #[test]
    fn default_slope_is_pytorchs() {
        // -3 * 0.01 = -0.03
        let y =
            Op::<f64>::forward(&LeakyRelu::default(), &[arr1(&[-3.0]).into_dyn().view()]).unwrap();
        assert_eq!(y[[0]], -3.0 * 0.01);
    }

    #[test]
    fn builds_from_hyperparameter_text() {
        let registry = crate::builtin_registry();
        let entry = registry.get("leaky_relu").unwrap();
        let op = entry.build_f64("()").unwrap();
        let y = op.forward(&[arr1(&[-100.0]).into_dyn().view()]).unwrap();
        assert_eq!(y[[0]], -1.0); // -100 * 0.01
        let op = entry.build_f32("(negative_slope: 0.2)").unwrap();
        assert_eq!(op.output_shape(&[&[2, 3]]).unwrap(), vec![2, 3]);

        let op = entry.build_f64("(negative_slope: inf)").unwrap();
        assert_eq!(
            op.output_shape(&[&[2, 3]]).unwrap_err().to_string(),
            "leaky_relu: invalid hyperparameter: negative_slope must be a finite number, got inf"
        );
        let op = entry.build_f64("(negative_slope: NaN)").unwrap();
        assert!(op.output_shape(&[&[2, 3]]).is_err());
        // Finite in f64, infinite in f32: refused in both precisions, as a network file
        // builds the op in both.
        for op in [
            entry
                .build_f64("(negative_slope: -1e300)")
                .unwrap()
                .output_shape(&[&[2, 3]]),
            entry
                .build_f32("(negative_slope: -1e300)")
                .unwrap()
                .output_shape(&[&[2, 3]]),
        ] {
            assert_eq!(
                op.unwrap_err().to_string(),
                "leaky_relu: invalid hyperparameter: negative_slope must be finite in f32 too, \
                 at most 3.4028235e38 in size, got -1e300"
            );
        }
        let err = entry.build_f64("(slope: 0.2)").unwrap_err().to_string();
        assert!(
            err.starts_with("leaky_relu: hyperparameters at line 1"),
            "{err}"
        );
    }
}
