//! `dense`: a fully connected layer, PyTorch's `nn.Linear`.
//!
//! With input `X` of shape `[N, in]`, weight `W` of shape `[units, in]` (PyTorch's layout:
//! one row per output unit) and optional bias `b` of shape `[units]`:
//!
//! - Output: `Y = X W^T + b`, shape `[N, units]`; `b` is added to every row.
//! - Gradients, from `dY = dL/dY` (shape `[N, units]`):
//!   - `dX = dY W`, shape `[N, in]`;
//!   - `dW = dY^T X`, shape `[units, in]`;
//!   - `db = sum over N of dY`, shape `[units]`.
//! - Shape: `[N, in]` -> `[N, units]`.
//!
//! The weight and bias are the op's parameters: they follow `X` in every call.

use ndarray::{ArrayD, ArrayView1, ArrayView2, ArrayViewD, Axis, Ix2};
use serde::Deserialize;
use tapir_core::{
    Arity, BackwardCx, CaseInput, Error, Float, Gen, GradcheckCase, Op, OpType, ParamRole,
    ParamSpec, Result,
};

use crate::shape;

const NAME: &str = "dense";

/// `dense`: `y = x W^T + b` over `[N, in]` inputs, with `units` outputs.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Dense {
    /// The number of output features (PyTorch's `out_features`).
    pub units: usize,
    /// Whether a bias is added (default `true`, as in PyTorch).
    #[serde(default = "default_bias")]
    pub bias: bool,
}

fn default_bias() -> bool {
    true
}

impl Dense {
    /// A dense layer with `units` outputs and a bias.
    pub fn new(units: usize) -> Self {
        Dense { units, bias: true }
    }

    fn check_units(&self) -> Result<()> {
        if self.units == 0 {
            return Err(Error::hyperparameter(
                NAME,
                "units must be at least 1, got 0",
            ));
        }
        Ok(())
    }

    /// The number of input shapes: `X`, the weight, and the bias if there is one.
    fn input_count(&self) -> usize {
        if self.bias { 3 } else { 2 }
    }

    /// `X`, `W` and `b` as matrices and vector, after the shape rule accepted them: a direct
    /// call with bad shapes gets the shape rule's error, not a panic in the products.
    fn views<'a, F: Float>(&self, inputs: &'a [ArrayViewD<'a, F>]) -> Result<Views<'a, F>> {
        let shapes: Vec<&[usize]> = inputs.iter().map(|a| a.shape()).collect();
        Op::<F>::output_shape(self, &shapes)?;
        let x = matrix(&inputs[0], "input")?;
        let weight = matrix(&inputs[1], "weight")?;
        let bias = match inputs.get(2) {
            Some(b) => Some(
                b.view()
                    .into_dimensionality()
                    .map_err(|_| Error::shape(NAME, "bias must have rank 1"))?,
            ),
            None => None,
        };
        Ok((x, weight, bias))
    }

    /// Checks the input `X` alone and returns its `(N, in)`.
    fn check_input(&self, x: &[usize]) -> Result<(usize, usize)> {
        self.check_units()?;
        match *x {
            [n, features] => Ok((n, features)),
            _ if x.len() > 2 => Err(Error::shape(
                NAME,
                format!(
                    "input must have rank 2 (N, in_features), got shape {x:?}; flatten it first"
                ),
            )),
            _ => Err(Error::shape(
                NAME,
                format!("input must have rank 2 (N, in_features), got shape {x:?}"),
            )),
        }
    }
}

/// `X`, `W` and `b`, if there is one.
type Views<'a, F> = (
    ArrayView2<'a, F>,
    ArrayView2<'a, F>,
    Option<ArrayView1<'a, F>>,
);

/// `array` as a matrix, or an error naming it.
fn matrix<'a, F: Float>(array: &ArrayViewD<'a, F>, what: &str) -> Result<ArrayView2<'a, F>> {
    array.clone().into_dimensionality::<Ix2>().map_err(|_| {
        Error::shape(
            NAME,
            format!("{what} must have rank 2, got shape {:?}", array.shape()),
        )
    })
}

impl<F: Float> Op<F> for Dense {
    fn name(&self) -> &'static str {
        <Self as OpType>::NAME
    }

    fn arity(&self) -> Arity {
        Arity::Exactly(1)
    }

    fn params(&self, data_inputs: &[&[usize]]) -> Result<Vec<ParamSpec>> {
        shape::expect_inputs(NAME, data_inputs, 1)?;
        let (_, features) = self.check_input(data_inputs[0])?;
        let mut params = vec![ParamSpec {
            name: "weight",
            shape: vec![self.units, features],
            role: ParamRole::Weight {
                fan_in: features,
                fan_out: self.units,
            },
        }];
        if self.bias {
            params.push(ParamSpec {
                name: "bias",
                shape: vec![self.units],
                role: ParamRole::Bias { fan_in: features },
            });
        }
        Ok(params)
    }

    fn output_shape(&self, inputs: &[&[usize]]) -> Result<Vec<usize>> {
        shape::expect_inputs(NAME, inputs, self.input_count())?;
        let (x, weight) = (inputs[0], inputs[1]);
        let (n, features) = self.check_input(x)?;
        shape::expect_rank(NAME, "weight", weight, 2, "units, in_features")?;
        if weight[1] != features {
            return Err(Error::shape(
                NAME,
                format!(
                    "input has {features} features, weight expects {} (input {x:?}, weight {weight:?})",
                    weight[1]
                ),
            ));
        }
        if weight[0] != self.units {
            return Err(Error::shape(
                NAME,
                format!(
                    "weight has {} rows, units is {} (weight {weight:?}; expected [{}, {features}])",
                    weight[0], self.units, self.units
                ),
            ));
        }
        if let Some(&bias) = inputs.get(2)
            && bias != [self.units]
        {
            return Err(Error::shape(
                NAME,
                format!(
                    "bias must have shape [{}] (units), got {bias:?}",
                    self.units
                ),
            ));
        }
        let output = vec![n, self.units];
        shape::allocatable(NAME, "output", &output)?;
        Ok(output)
    }

    fn forward(&self, inputs: &[ArrayViewD<F>]) -> Result<ArrayD<F>> {
        let (x, weight, bias) = self.views(inputs)?;
        // Y = b in every row (b has shape [units], checked by `views`), then Y += X W^T in
        // one product.
        let mut y = tapir_core::buffers::array_for_overwrite(Ix2(x.nrows(), self.units));
        match bias {
            Some(b) => y.assign(&b),
            None => y.fill(F::zero()),
        }
        tapir_core::gemm(F::one(), &x, &weight.t(), true, &mut y.view_mut());
        Ok(y.into_dyn())
    }

    fn backward(&self, cx: &BackwardCx<F>) -> Result<Vec<Option<ArrayD<F>>>> {
        let (x, weight, _) = self.views(cx.inputs)?;
        let dy = matrix(&cx.output_grad, "output gradient")?;
        if dy.dim() != (x.nrows(), self.units) {
            return Err(Error::shape(
                NAME,
                format!(
                    "output gradient has shape {:?}, the output has [{}, {}]",
                    dy.shape(),
                    x.nrows(),
                    self.units
                ),
            ));
        }
        let product = |a: ArrayView2<F>, b: ArrayView2<F>| {
            // The product writes every element of `out` (it does not accumulate).
            let mut out = tapir_core::buffers::array_for_overwrite(Ix2(a.nrows(), b.ncols()));
            tapir_core::gemm(F::one(), &a, &b, false, &mut out.view_mut());
            out.into_dyn()
        };
        // dX = dY W
        let dx = cx.needs_grad(0).then(|| product(dy.view(), weight.view()));
        // dW = dY^T X
        let dw = cx.needs_grad(1).then(|| product(dy.t(), x.view()));
        let mut grads = vec![dx, dw];
        if self.bias {
            // db = sum over N of dY
            grads.push(cx.needs_grad(2).then(|| dy.sum_axis(Axis(0)).into_dyn()));
        }
        Ok(grads)
    }

    fn flops(&self, inputs: &[&[usize]]) -> u64 {
        let Some(&[n, features]) = inputs.first().map(|x| &x[..]) else {
            return 0;
        };
        let (n, features, units) = (n as u64, features as u64, self.units as u64);
        let products = 2u64
            .saturating_mul(n)
            .saturating_mul(features)
            .saturating_mul(units);
        let bias = if self.bias {
            n.saturating_mul(units)
        } else {
            0
        };
        products.saturating_add(bias)
    }
}

impl OpType for Dense {
    const NAME: &'static str = NAME;

    fn gradcheck_cases() -> Vec<GradcheckCase> {
        // Dense is smooth (bilinear in X and W): plain uniform inputs have no kinks to avoid.
        let u = Gen::uniform();
        let no_bias = Dense {
            units: 3,
            bias: false,
        };
        vec![
            GradcheckCase::new(
                "batch 1 with bias",
                Dense::new(2),
                vec![
                    CaseInput::new("x", &[1, 3], u),
                    CaseInput::new("weight", &[2, 3], u),
                    CaseInput::new("bias", &[2], u),
                ],
            ),
            GradcheckCase::new(
                "batch 4 with bias",
                Dense::new(3),
                vec![
                    CaseInput::new("x", &[4, 5], u),
                    CaseInput::new("weight", &[3, 5], u),
                    CaseInput::new("bias", &[3], u),
                ],
            ),
            GradcheckCase::new(
                "batch 1 without bias",
                no_bias.clone(),
                vec![
                    CaseInput::new("x", &[1, 4], u),
                    CaseInput::new("weight", &[3, 4], u),
                ],
            ),
            GradcheckCase::new(
                "batch 4 without bias",
                no_bias,
                vec![
                    CaseInput::new("x", &[4, 5], u),
                    CaseInput::new("weight", &[3, 5], u),
                ],
            ),
        ]
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::{arr1, arr2};
    use tapir_core::Tape;

    fn shape_error(op: &Dense, inputs: &[&[usize]]) -> String {
        Op::<f64>::output_shape(op, inputs).unwrap_err().to_string()
    }

    #[test]
    fn forward_and_backward_by_hand() {
        let mut tape = Tape::<f64>::new();
        let x = tape.leaf(arr2(&[[1.0, 2.0], [-1.0, 0.5]]).into_dyn(), true);
        let w = tape.leaf(
            arr2(&[[1.0, 0.0], [2.0, -1.0], [0.5, 3.0]]).into_dyn(),
            true,
        );
        let b = tape.leaf(arr1(&[0.5, -1.0, 0.0]).into_dyn(), true);
        let y = tape.apply(Dense::new(3), &[&x, &w, &b]).unwrap();
        // Row 1, x = [1, 2]:    [1*1 + 2*0 + 0.5, 1*2 + 2*(-1) - 1, 1*0.5 + 2*3 + 0]
        //                     = [1.5, -1, 6.5]
        // Row 2, x = [-1, 0.5]: [-1*1 + 0.5*0 + 0.5, -1*2 + 0.5*(-1) - 1, -1*0.5 + 0.5*3 + 0]
        //                     = [-0.5, -3.5, 1]
        assert_eq!(
            y.value(),
            &arr2(&[[1.5, -1.0, 6.5], [-0.5, -3.5, 1.0]]).into_dyn()
        );

        let grads = tape
            .backward_from(&y, ArrayD::from_elem(vec![2, 3], 1.0))
            .unwrap();
        // dY = ones: dX = dY W puts the column sums of W in every row: [1 + 2 + 0.5, 0 - 1 + 3];
        // dW = dY^T X puts the column sums of X in every row: [1 - 1, 2 + 0.5];
        // db = the column sums of dY: N = 2 each.
        assert_eq!(
            grads.get(&x).unwrap(),
            &arr2(&[[3.5, 2.0], [3.5, 2.0]]).into_dyn()
        );
        assert_eq!(
            grads.get(&w).unwrap(),
            &arr2(&[[0.0, 2.5], [0.0, 2.5], [0.0, 2.5]]).into_dyn()
        );
        assert_eq!(grads.get(&b).unwrap(), &arr1(&[2.0, 2.0, 2.0]).into_dyn());
    }

    #[test]
    fn without_bias_there_is_no_bias_parameter() {
        let op = Dense {
            units: 2,
            bias: false,
        };
        let params = Op::<f32>::params(&op, &[&[8, 5]]).unwrap();
        assert_eq!(params.len(), 1);
        assert_eq!(
            Op::<f32>::output_shape(&op, &[&[8, 5], &[2, 5]]).unwrap(),
            vec![8, 2]
        );
        assert_eq!(
            shape_error(&op, &[&[8, 5], &[2, 5], &[2]]),
            "dense: expects 2 inputs, got 3"
        );
    }

    #[test]
    fn params_are_weight_and_bias_in_pytorch_layout() {
        let params = Op::<f32>::params(&Dense::new(10), &[&[32, 784]]).unwrap();
        assert_eq!(
            params,
            vec![
                ParamSpec {
                    name: "weight",
                    shape: vec![10, 784],
                    role: ParamRole::Weight {
                        fan_in: 784,
                        fan_out: 10
                    },
                },
                ParamSpec {
                    name: "bias",
                    shape: vec![10],
                    role: ParamRole::Bias { fan_in: 784 },
                },
            ]
        );
        assert_eq!(
            Op::<f32>::flops(&Dense::new(10), &[&[32, 784]]),
            2 * 32 * 784 * 10 + 320
        );
    }

    #[test]
    fn bad_shapes_are_errors_that_show_them() {
        let op = Dense::new(3);
        assert_eq!(
            shape_error(&op, &[&[2, 5], &[3, 4], &[3]]),
            "dense: input has 5 features, weight expects 4 (input [2, 5], weight [3, 4])"
        );
        assert_eq!(
            shape_error(&op, &[&[2, 1, 28, 28], &[3, 784], &[3]]),
            "dense: input must have rank 2 (N, in_features), got shape [2, 1, 28, 28]; flatten it first"
        );
        assert_eq!(
            shape_error(&op, &[&[5], &[3, 5], &[3]]),
            "dense: input must have rank 2 (N, in_features), got shape [5]"
        );
        assert_eq!(
            shape_error(&op, &[&[2, 5], &[15], &[3]]),
            "dense: weight must have rank 2 (units, in_features), got shape [15]"
        );
        assert_eq!(
            shape_error(&op, &[&[2, 5], &[4, 5], &[3]]),
            "dense: weight has 4 rows, units is 3 (weight [4, 5]; expected [3, 5])"
        );
        assert_eq!(
            shape_error(&op, &[&[2, 5], &[3, 5], &[1, 3]]),
            "dense: bias must have shape [3] (units), got [1, 3]"
        );
        assert_eq!(
            shape_error(&op, &[&[2, 5], &[3, 5]]),
            "dense: expects 3 inputs, got 2"
        );
        assert_eq!(
            Op::<f64>::params(&op, &[&[5]]).unwrap_err().to_string(),
            "dense: input must have rank 2 (N, in_features), got shape [5]"
        );
    }

    #[test]
    fn a_direct_forward_with_bad_shapes_is_an_error_not_a_panic() {
        let x = ArrayD::<f64>::zeros(vec![2, 5]);
        let w = ArrayD::<f64>::zeros(vec![3, 4]);
        let b = ArrayD::<f64>::zeros(vec![3]);
        let err = Op::<f64>::forward(&Dense::new(3), &[x.view(), w.view(), b.view()]);
        assert!(matches!(err, Err(Error::Shape { .. })));
    }

    #[test]
    fn builds_from_hyperparameter_text() {
        let registry = crate::builtin_registry();
        let entry = registry.get("dense").unwrap();
        let op = entry.build_f64("(units: 3)").unwrap();
        // bias defaults to true: three inputs.
        assert_eq!(
            op.output_shape(&[&[2, 5], &[3, 5], &[3]]).unwrap(),
            vec![2, 3]
        );
        let op = entry.build_f64("(units: 3, bias: false)").unwrap();
        assert_eq!(op.output_shape(&[&[2, 5], &[3, 5]]).unwrap(), vec![2, 3]);

        let op = entry.build_f64("(units: 0)").unwrap();
        assert_eq!(
            op.params(&[&[2, 5]]).unwrap_err().to_string(),
            "dense: invalid hyperparameter: units must be at least 1, got 0"
        );
        assert_eq!(
            op.output_shape(&[&[2, 5], &[0, 5], &[0]])
                .unwrap_err()
                .to_string(),
            "dense: invalid hyperparameter: units must be at least 1, got 0"
        );
        let err = entry.build_f64("(units: 3, biases: true)").unwrap_err();
        assert!(
            err.to_string()
                .starts_with("dense: hyperparameters at line 1"),
            "{err}"
        );
        assert!(err.to_string().contains("biases"), "{err}");
    }
}
