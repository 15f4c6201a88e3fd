//! `flatten`: merges the axes from `start_axis` on into one, like `torch.flatten(x, start_axis)`.
//!
//! - Output: `y = x` read row-major into `[d_0, ..., d_(s-1), d_s * ... * d_(r-1)]` for an input
//!   `[d_0, ..., d_(r-1)]` and `s = start_axis`; the default `s = 1` keeps the batch axis:
//!   `[N, C, H, W] -> [N, C*H*W]`.
//! - Gradient: `dL/dx = dL/dy` read row-major back into the shape of `x`.
//! - Shape: as above; needs `s < r`.

use ndarray::{ArrayD, ArrayViewD};
use serde::Deserialize;
use tapir_core::{
    Arity, BackwardCx, CaseInput, Error, Float, Gen, GradcheckCase, Op, OpType, Result,
};

use crate::reshape::reshaped;
use crate::shape;

/// `flatten`: the axes from `start_axis` on, merged into one.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Flatten {
    /// The first axis merged; PyTorch's `nn.Flatten` default 1 keeps the batch axis.
    #[serde(default = "one")]
    pub start_axis: usize,
}

fn one() -> usize {
    1
}

impl Default for Flatten {
    fn default() -> Self {
        Flatten { start_axis: one() }
    }
}

impl<F: Float> Op<F> for Flatten {
    fn name(&self) -> &'static str {
        <Self as OpType>::NAME
    }

    fn arity(&self) -> Arity {
        Arity::Exactly(1)
    }

    fn output_shape(&self, inputs: &[&[usize]]) -> Result<Vec<usize>> {
        let op = <Self as OpType>::NAME;
        shape::expect_inputs(op, inputs, 1)?;
        let input = inputs[0];
        let start = self.start_axis;
        if start >= input.len() {
            return Err(Error::shape(
                op,
                format!(
                    "start_axis {start} needs an input of rank at least {}, got shape {input:?}",
                    start.saturating_add(1)
                ),
            ));
        }
        let merged = shape::element_count(op, &input[start..])?;
        let mut out = input[..start].to_vec();
        out.push(merged);
        Ok(out)
    }

    fn forward(&self, inputs: &[ArrayViewD<F>]) -> Result<ArrayD<F>> {
        let out = Op::<F>::output_shape(self, &[inputs[0].shape()])?;
        reshaped(<Self as OpType>::NAME, &inputs[0], &out)
    }

    fn backward(&self, cx: &BackwardCx<F>) -> Result<Vec<Option<ArrayD<F>>>> {
        if !cx.needs_grad(0) {
            return Ok(vec![None]);
        }
        let grad = reshaped(
            <Self as OpType>::NAME,
            &cx.output_grad,
            cx.inputs[0].shape(),
        )?;
        Ok(vec![Some(grad)])
    }
}

impl OpType for Flatten {
    const NAME: &'static str = "flatten";

    fn gradcheck_cases() -> Vec<GradcheckCase> {
        // Flattening is linear: any values do, uniform ones are the plainest.
        vec![GradcheckCase::new(
            "NCHW",
            Flatten::default(),
            vec![CaseInput::new("x", &[2, 3, 2, 2], Gen::uniform())],
        )]
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::{Array, arr2};
    use tapir_core::Tape;

    #[test]
    fn forward_and_backward_by_hand() {
        let mut tape = Tape::<f64>::new();
        // x[n, c, h, w] = 1000n + 100c + 10h + w, so each value spells its index.
        let x = Array::from_shape_fn((2, 2, 1, 2), |(n, c, h, w)| {
            (1000 * n + 100 * c + 10 * h + w) as f64
        });
        let x = tape.leaf(x.into_dyn(), true);
        let y = tape.apply(Flatten::default(), &[&x]).unwrap();
        // [2, 2, 1, 2] -> [2, 2*1*2 = 4]; row-major: c, then h, then w vary within a row.
        assert_eq!(
            y.value(),
            &arr2(&[[0.0, 1.0, 100.0, 101.0], [1000.0, 1001.0, 1100.0, 1101.0]]).into_dyn()
        );
        let dy = arr2(&[[1.0, 2.0, 3.0, 4.0], [5.0, 6.0, 7.0, 8.0]]).into_dyn();
        let grads = tape.backward_from(&y, dy).unwrap();
        let dx = grads.get(&x).unwrap();
        assert_eq!(dx.shape(), &[2, 2, 1, 2]);
        // dy[1, 2] (= 7) came from x[1, 1, 0, 0].
        assert_eq!(dx[[1, 1, 0, 0]], 7.0);
        assert_eq!(
            dx.iter().copied().collect::<Vec<_>>(),
            (1..=8).map(f64::from).collect::<Vec<_>>()
        );
    }

    #[test]
    fn start_axis_chooses_the_merged_axes() {
        let flatten = |start_axis| Flatten { start_axis };
        // 3*4*5 = 60; 4*5 = 20; the last axis alone is unchanged.
        assert_eq!(
            Op::<f32>::output_shape(&flatten(0), &[&[3, 4, 5]]).unwrap(),
            vec![60]
        );
        assert_eq!(
            Op::<f32>::output_shape(&flatten(1), &[&[3, 4, 5]]).unwrap(),
            vec![3, 20]
        );
        assert_eq!(
            Op::<f32>::output_shape(&flatten(2), &[&[3, 4, 5]]).unwrap(),
            vec![3, 4, 5]
        );
    }

    #[test]
    fn bad_shapes_are_errors() {
        let err = Op::<f64>::output_shape(&Flatten::default(), &[&[5]]).unwrap_err();
        assert_eq!(
            err.to_string(),
            "flatten: start_axis 1 needs an input of rank at least 2, got shape [5]"
        );
        let huge = [usize::MAX, 2];
        let err = Op::<f64>::output_shape(&Flatten { start_axis: 0 }, &[&huge]).unwrap_err();
        assert_eq!(
            err.to_string(),
            format!("flatten: shape {huge:?} has more elements than fit in memory")
        );
    }

    #[test]
    fn builds_from_hyperparameter_text() {
        let registry = crate::builtin_registry();
        let entry = registry.get("flatten").unwrap();
        let default = entry.build_f64("()").unwrap();
        assert_eq!(default.output_shape(&[&[2, 3, 4]]).unwrap(), vec![2, 12]);
        let from_2 = entry.build_f32("(start_axis: 2)").unwrap();
        assert_eq!(
            from_2.output_shape(&[&[2, 3, 4, 5]]).unwrap(),
            vec![2, 3, 20]
        );
        assert_eq!(
            entry.build_f64("(start_axis: -1)").unwrap_err().to_string(),
            "flatten: hyperparameters at line 1, column 15: Integer is out of bounds"
        );
    }
}
