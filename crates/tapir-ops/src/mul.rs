//! `mul`: the elementwise product of two inputs, broadcast like `torch.mul` / NumPy.
//!
//! - Output: `y = a * b`, where `a` and `b` are first broadcast to a common shape: trailing
//!   axes aligned, a missing axis or an axis of size 1 stretched to the other's size.
//! - Gradients: `dL/da = sum_to_shape(dL/dy * b, shape(a))`,
//!   `dL/db = sum_to_shape(dL/dy * a, shape(b))` (`a`, `b` broadcast): an element stretched
//!   over several outputs receives the sum of their gradients.
//! - Shape: `shape(y)[-k] = max(shape(a)[-k], shape(b)[-k])`, a missing axis counting as 1;
//!   the two sizes must be equal or one of them 1.

use ndarray::{ArrayD, ArrayViewD};
use serde::Deserialize;
use tapir_core::{Arity, BackwardCx, CaseInput, Float, Gen, GradcheckCase, Op, OpType, Result};

use crate::broadcast::{broadcast_len, broadcast_map, broadcast_pair, sum_to_shape};
use crate::shape;

/// `mul`: `a * b`, broadcast. No hyperparameters.
#[derive(Debug, Clone, Copy, Default, PartialEq, Deserialize)]
pub struct Mul;

impl<F: Float> Op<F> for Mul {
    fn name(&self) -> &'static str {
        <Self as OpType>::NAME
    }

    fn arity(&self) -> Arity {
        Arity::Exactly(2)
    }

    fn output_shape(&self, inputs: &[&[usize]]) -> Result<Vec<usize>> {
        let op = <Self as OpType>::NAME;
        shape::expect_inputs(op, inputs, 2)?;
        shape::broadcast_shapes(op, inputs[0], inputs[1])
    }

    fn forward(&self, inputs: &[ArrayViewD<F>]) -> Result<ArrayD<F>> {
        broadcast_map(<Self as OpType>::NAME, &inputs[0], &inputs[1], |a, b| a * b)
    }

    fn backward(&self, cx: &BackwardCx<F>) -> Result<Vec<Option<ArrayD<F>>>> {
        let op = <Self as OpType>::NAME;
        let (a, b) = broadcast_pair(op, &cx.inputs[0], &cx.inputs[1])?;
        let dy = &cx.output_grad;
        // dL/d(input i) = sum_to_shape(dL/dy * other, shape(input i)).
        let grad = |i: usize, other: &ArrayViewD<F>| -> Result<Option<ArrayD<F>>> {
            if !cx.needs_grad(i) {
                return Ok(None);
            }
            let product = broadcast_map(op, dy, other, |g, x| g * x)?;
            sum_to_shape(op, product, cx.inputs[i].shape()).map(Some)
        };
        Ok(vec![grad(0, &b)?, grad(1, &a)?])
    }

    fn flops(&self, inputs: &[&[usize]]) -> u64 {
        broadcast_len(inputs)
    }
}

impl OpType for Mul {
    const NAME: &'static str = "mul";

    fn gradcheck_cases() -> Vec<GradcheckCase> {
        // The product is smooth everywhere (bilinear): uniform values in [-1, 1) do.
        let u = Gen::uniform();
        let case = |label: &str, a: &[usize], b: &[usize]| {
            GradcheckCase::new(
                label,
                Mul,
                vec![CaseInput::new("a", a, u), CaseInput::new("b", b, u)],
            )
        };
        vec![
            case("same shape", &[2, 3], &[2, 3]),
            case("row broadcast", &[2, 3], &[3]),
            case("both broadcast", &[2, 1, 4], &[3, 1]),
            case("scalar-like", &[2, 3], &[1]),
        ]
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::{arr1, arr2, arr3};
    use tapir_core::Tape;

    #[test]
    fn forward_and_backward_by_hand() {
        let mut tape = Tape::<f64>::new();
        let a = tape.leaf(arr2(&[[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]]).into_dyn(), true);
        let b = tape.leaf(arr1(&[10.0, 20.0, 30.0]).into_dyn(), true);
        let y = tape.apply(Mul, &[&a, &b]).unwrap();
        // Each row times b: [1*10, 2*20, 3*30], [4*10, 5*20, 6*30].
        assert_eq!(
            y.value(),
            &arr2(&[[10.0, 40.0, 90.0], [40.0, 100.0, 180.0]]).into_dyn()
        );
        let dy = arr2(&[[1.0, 1.0, 1.0], [2.0, 2.0, 2.0]]).into_dyn();
        let grads = tape.backward_from(&y, dy).unwrap();
        // dL/da[i, j] = dy[i, j] * b[j]: [10, 20, 30], [20, 40, 60].
        assert_eq!(
            grads.get(&a).unwrap(),
            &arr2(&[[10.0, 20.0, 30.0], [20.0, 40.0, 60.0]]).into_dyn()
        );
        // dL/db[j] = sum_i dy[i, j] * a[i, j]: 1*1 + 2*4 = 9, 1*2 + 2*5 = 12, 1*3 + 2*6 = 15.
        assert_eq!(grads.get(&b).unwrap(), &arr1(&[9.0, 12.0, 15.0]).into_dyn());
    }

    #[test]
    fn both_inputs_stretch() {
        let mut tape = Tape::<f64>::new();
        let a = tape.leaf(arr3(&[[[1.0, 2.0]], [[3.0, 4.0]]]).into_dyn(), true); // [2, 1, 2]
        let b = tape.leaf(arr2(&[[10.0], [100.0]]).into_dyn(), true); // [2, 1]
        let y = tape.apply(Mul, &[&a, &b]).unwrap();
        // [2, 1, 2] * [2, 1] -> [2, 2, 2]: y[i, j, k] = a[i, 0, k] * b[j, 0].
        assert_eq!(
            y.value(),
            &arr3(&[
                [[10.0, 20.0], [100.0, 200.0]],
                [[30.0, 40.0], [300.0, 400.0]]
            ])
            .into_dyn()
        );
        let grads = tape.backward_from(&y, ArrayD::ones(vec![2, 2, 2])).unwrap();
        // With dL/dy = 1: dL/da[i, 0, k] = sum_j b[j] = 110; dL/db[j] = sum_ik a = 1+2+3+4 = 10.
        assert_eq!(
            grads.get(&a).unwrap(),
            &ArrayD::from_elem(vec![2, 1, 2], 110.0)
        );
        assert_eq!(grads.get(&b).unwrap(), &ArrayD::from_elem(vec![2, 1], 10.0));
    }

    #[test]
    fn shapes_that_do_not_broadcast_are_errors() {
        let err = Op::<f32>::output_shape(&Mul, &[&[2, 1, 4], &[3, 2]]).unwrap_err();
        assert_eq!(
            err.to_string(),
            "mul: shapes [2, 1, 4] and [3, 2] do not broadcast: axis -1 (counting from the end) has sizes 4 and 2; sizes must be equal or 1"
        );
        let err = Op::<f32>::output_shape(&Mul, &[&[2], &[2], &[2]]).unwrap_err();
        assert_eq!(err.to_string(), "mul: expects 2 inputs, got 3");
    }

    #[test]
    fn builds_from_hyperparameter_text() {
        let registry = crate::builtin_registry();
        let entry = registry.get("mul").unwrap();
        assert_eq!(entry.build_f32("()").unwrap().name(), "mul");
        assert!(entry.build_f32("(scale: 2.0)").is_err());
    }
}
