//! `add`: the elementwise sum of two inputs, broadcast like `torch.add` / NumPy.
//!
//! - Output: `y = a + b`, where `a` and `b` are first broadcast to a common shape: trailing
//!   axes aligned, a missing axis or an axis of size 1 stretched to the other's size.
//! - Gradients: `dL/da = sum_to_shape(dL/dy, shape(a))`, `dL/db = sum_to_shape(dL/dy, shape(b))`:
//!   an element stretched over several outputs receives the sum of their gradients.
//! - Shape: `shape(y)[-k] = max(shape(a)[-k], shape(b)[-k])`, a missing axis counting as 1;
//!   the two sizes must be equal or one of them 1.

use ndarray::{ArrayD, ArrayViewD};
use serde::Deserialize;
use tapir_core::{Arity, BackwardCx, CaseInput, Float, Gen, GradcheckCase, Op, OpType, Result};

use crate::broadcast::{broadcast_len, broadcast_map, sum_to_shape};
use crate::shape;

/// `add`: `a + b`, broadcast. No hyperparameters.
#[derive(Debug, Clone, Copy, Default, PartialEq, Deserialize)]
pub struct Add;

impl<F: Float> Op<F> for Add {
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
        broadcast_map(<Self as OpType>::NAME, &inputs[0], &inputs[1], |a, b| a + b)
    }

    fn backward(&self, cx: &BackwardCx<F>) -> Result<Vec<Option<ArrayD<F>>>> {
        let op = <Self as OpType>::NAME;
        let grad = |i: usize| -> Result<Option<ArrayD<F>>> {
            if !cx.needs_grad(i) {
                return Ok(None);
            }
            sum_to_shape(op, cx.output_grad.view(), cx.inputs[i].shape()).map(Some)
        };
        Ok(vec![grad(0)?, grad(1)?])
    }

    fn flops(&self, inputs: &[&[usize]]) -> u64 {
        broadcast_len(inputs)
    }
}

impl OpType for Add {
    const NAME: &'static str = "add";

    fn gradcheck_cases() -> Vec<GradcheckCase> {
        // Addition is linear: any values do, uniform ones are the plainest.
        let u = Gen::uniform();
        let case = |label: &str, a: &[usize], b: &[usize]| {
            GradcheckCase::new(
                label,
                Add,
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
    use ndarray::{arr1, arr2};
    use tapir_core::Tape;

    #[test]
    fn forward_and_backward_by_hand() {
        let mut tape = Tape::<f64>::new();
        let a = tape.leaf(arr2(&[[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]]).into_dyn(), true);
        let b = tape.leaf(arr1(&[10.0, 20.0, 30.0]).into_dyn(), true);
        let y = tape.apply(Add, &[&a, &b]).unwrap();
        // b is added to each row: [1+10, 2+20, 3+30], [4+10, 5+20, 6+30].
        assert_eq!(
            y.value(),
            &arr2(&[[11.0, 22.0, 33.0], [14.0, 25.0, 36.0]]).into_dyn()
        );
        let dy = arr2(&[[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]]).into_dyn();
        let grads = tape.backward_from(&y, dy.clone()).unwrap();
        // dL/da = dL/dy; dL/db = the column sums of dL/dy: 1+4, 2+5, 3+6.
        assert_eq!(grads.get(&a).unwrap(), &dy);
        assert_eq!(grads.get(&b).unwrap(), &arr1(&[5.0, 7.0, 9.0]).into_dyn());
    }

    #[test]
    fn both_inputs_stretch() {
        let a = arr2(&[[1.0f32], [2.0]]).into_dyn(); // [2, 1]
        let b = arr1(&[10.0f32, 20.0, 30.0]).into_dyn(); // [3]
        let y = Op::<f32>::forward(&Add, &[a.view(), b.view()]).unwrap();
        // [2, 1] + [3] -> [2, 3]: y[i, j] = a[i] + b[j].
        assert_eq!(
            y,
            arr2(&[[11.0, 21.0, 31.0], [12.0, 22.0, 32.0]]).into_dyn()
        );
        assert_eq!(Op::<f32>::flops(&Add, &[&[2, 1], &[3]]), 6);
    }

    #[test]
    fn shapes_that_do_not_broadcast_are_errors() {
        let err = Op::<f64>::output_shape(&Add, &[&[2, 3], &[2]]).unwrap_err();
        assert_eq!(
            err.to_string(),
            "add: shapes [2, 3] and [2] do not broadcast: axis -1 (counting from the end) has sizes 3 and 2; sizes must be equal or 1"
        );
        let err = Op::<f64>::output_shape(&Add, &[&[4, 2, 3], &[5, 1, 3]]).unwrap_err();
        assert_eq!(
            err.to_string(),
            "add: shapes [4, 2, 3] and [5, 1, 3] do not broadcast: axis -3 (counting from the end) has sizes 4 and 5; sizes must be equal or 1"
        );
        let err = Op::<f64>::output_shape(&Add, &[&[2]]).unwrap_err();
        assert_eq!(err.to_string(), "add: expects 2 inputs, got 1");
    }

    #[test]
    fn builds_from_hyperparameter_text() {
        let registry = crate::builtin_registry();
        let entry = registry.get("add").unwrap();
        assert_eq!(entry.build_f64("()").unwrap().name(), "add");
        assert!(entry.build_f64("(axis: 1)").is_err());
    }
}
