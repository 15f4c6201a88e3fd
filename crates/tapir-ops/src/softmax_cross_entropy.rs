//! `softmax_cross_entropy`: the cross-entropy of class labels under the softmax of logits,
//! fused, as PyTorch's `cross_entropy`.
//!
//! Inputs: logits `x` of shape `[N, C]` and labels `t` of shape `[N]`, class indices in
//! `0..C` stored as floats (every tapir tensor is float). For sample `i`, with
//! `m_i = max_j x_ij` and `s_i = sum_j exp(x_ij - m_i)`:
//!
//! - Per-sample loss: `l_i = -ln softmax(x_i)_{t_i} = ln s_i - (x_{i,t_i} - m_i)`, the
//!   log-sum-exp with the max subtracted: every exponent is at most 0 and `s_i >= 1`, so
//!   logits of 1e4 or -1e4 give a finite loss and gradient.
//! - Output: `L = (1/N) sum_i l_i` (reduction `Mean`, the default), `sum_i l_i` (`Sum`), or
//!   the vector `l` (`None`).
//! - Gradient: `dL/dx_ij = w_i (p_ij - [j = t_i])`, with `p_ij = exp(x_ij - m_i) / s_i` the
//!   softmax and `w_i` the weight of sample `i`: `g / N` for `Mean`, `g` for `Sum` (`g` the
//!   scalar output gradient), `g_i` for `None`. Labels have no gradient.
//! - Shape: `[]` for `Mean` and `Sum`, `[N]` for `None`.
//!
//! A label that is not an integer in `0..C` (or is NaN) is an error from forward naming the
//! sample. An empty batch has mean `0 / 0 = NaN`, as in PyTorch. Labels are indices, not
//! values to differentiate: backward returns `None` for them, and the tape lets no gradient
//! flow there, even to labels that ask for one (a tracked leaf gets no gradient at all).

use ndarray::{Array1, ArrayD, ArrayView1, ArrayView2, ArrayViewD, Ix1, Ix2, arr0};
use serde::Deserialize;
use tapir_core::{
    Arity, BackwardCx, CaseInput, Error, Float, Gen, GradcheckCase, Op, OpType, Result,
};

use crate::shape;

/// Fused softmax and cross-entropy of class labels, as `torch.nn.functional.cross_entropy`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SoftmaxCrossEntropy {
    /// How the per-sample losses are combined; default `Mean`, as in PyTorch.
    #[serde(default)]
    pub reduction: Reduction,
}

/// How a loss combines its per-sample values, as PyTorch's `reduction`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
pub enum Reduction {
    /// The mean over the batch: a scalar.
    #[default]
    Mean,
    /// The sum over the batch: a scalar.
    Sum,
    /// No reduction: one loss per sample.
    None,
}

const NAME: &str = "softmax_cross_entropy";

/// Floating-point operations per logit: the max, a subtraction, the exponential (counted as
/// one) and its share of the sum.
const FLOPS_PER_LOGIT: u64 = 4;

/// Floating-point operations per sample: the logarithm, two subtractions and the reduction.
const FLOPS_PER_SAMPLE: u64 = 4;

impl<F: Float> Op<F> for SoftmaxCrossEntropy {
    fn name(&self) -> &'static str {
        NAME
    }

    fn arity(&self) -> Arity {
        Arity::Exactly(2)
    }

    fn output_shape(&self, inputs: &[&[usize]]) -> Result<Vec<usize>> {
        shape::expect_inputs(NAME, inputs, 2)?;
        let (logits, labels) = (inputs[0], inputs[1]);
        shape::expect_rank(NAME, "logits", logits, 2, "[batch, classes]")?;
        let (batch, classes) = (logits[0], logits[1]);
        if labels != [batch] {
            let hint = if labels == logits {
                "; labels are class indices, not one-hot rows"
            } else {
                ""
            };
            return Err(Error::shape(
                NAME,
                format!(
                    "labels must have shape [{batch}] (one class index per sample of logits {logits:?}), got {labels:?}{hint}"
                ),
            ));
        }
        if classes == 0 && batch > 0 {
            return Err(Error::shape(
                NAME,
                format!("logits {logits:?} have no classes: no label can be valid"),
            ));
        }
        Ok(match self.reduction {
            Reduction::Mean | Reduction::Sum => Vec::new(),
            Reduction::None => vec![batch],
        })
    }

    fn forward(&self, inputs: &[ArrayViewD<F>]) -> Result<ArrayD<F>> {
        let (logits, labels) = matrix_and_labels(inputs)?;
        let classes = logits.ncols();
        let mut losses = Array1::<F>::zeros(labels.len());
        for (sample, ((x, &label), loss)) in logits
            .rows()
            .into_iter()
            .zip(labels)
            .zip(&mut losses)
            .enumerate()
        {
            let t = class_index(label, sample, classes)?;
            let m = x.fold(F::neg_infinity(), |m, &x| m.max(x));
            let s = x.fold(F::zero(), |s, &x| s + (x - m).exp());
            // Safe: class_index proved t < classes, the row's length.
            *loss = s.ln() - (x[t] - m);
        }
        Ok(match self.reduction {
            Reduction::Mean => arr0(losses.sum() / F::from_usize(losses.len())).into_dyn(),
            Reduction::Sum => arr0(losses.sum()).into_dyn(),
            Reduction::None => losses.into_dyn(),
        })
    }

    fn backward(&self, cx: &BackwardCx<F>) -> Result<Vec<Option<ArrayD<F>>>> {
        // Labels are indices, not values a loss can be differentiated by.
        if !cx.needs_grad(0) {
            return Ok(vec![None, None]);
        }
        let (logits, labels) = matrix_and_labels(cx.inputs)?;
        let batch = labels.len();
        // The scalar output gradient of Mean and Sum (the tape gives it the output's shape []).
        let g = || cx.output_grad.first().copied().unwrap_or_else(F::zero);
        let w: Array1<F> = match self.reduction {
            Reduction::Mean => Array1::from_elem(batch, g() / F::from_usize(batch)),
            Reduction::Sum => Array1::from_elem(batch, g()),
            Reduction::None => cx.output_grad.iter().copied().collect(),
        };
        let classes = logits.ncols();
        let mut dx = logits.to_owned();
        for (sample, ((mut dx, &label), &w)) in
            dx.rows_mut().into_iter().zip(labels).zip(&w).enumerate()
        {
            let t = class_index(label, sample, classes)?;
            let m = dx.fold(F::neg_infinity(), |m, &x| m.max(x));
            dx.mapv_inplace(|x| (x - m).exp());
            let s = dx.sum();
            // p_ij - [j = t_i], then times w_i.
            dx.mapv_inplace(|e| e / s);
            // Safe: class_index proved t < classes, the row's length.
            dx[t] -= F::one();
            dx.mapv_inplace(|d| d * w);
        }
        Ok(vec![Some(dx.into_dyn()), None])
    }

    fn flops(&self, inputs: &[&[usize]]) -> u64 {
        match inputs.first() {
            Some(&&[batch, classes]) => (batch as u64).saturating_mul(
                (classes as u64)
                    .saturating_mul(FLOPS_PER_LOGIT)
                    .saturating_add(FLOPS_PER_SAMPLE),
            ),
            _ => 0,
        }
    }
}

/// The logits as a matrix and the labels as a vector; the shape rule accepted both.
fn matrix_and_labels<'a, F: Float>(
    inputs: &'a [ArrayViewD<'a, F>],
) -> Result<(ArrayView2<'a, F>, ArrayView1<'a, F>)> {
    let contract = |message: String| Error::Contract { op: NAME, message };
    let [logits, labels] = inputs else {
        return Err(contract(format!(
            "called with {} inputs, not 2",
            inputs.len()
        )));
    };
    let logits = logits
        .view()
        .into_dimensionality::<Ix2>()
        .map_err(|e| contract(format!("logits: {e}")))?;
    let labels = labels
        .view()
        .into_dimensionality::<Ix1>()
        .map_err(|e| contract(format!("labels: {e}")))?;
    Ok((logits, labels))
}

/// The class index a label stores, or an error naming the sample and the valid range.
fn class_index<F: Float>(label: F, sample: usize, classes: usize) -> Result<usize> {
    let value = label.to_f64();
    // Every comparison with NaN is false, so NaN fails the range test.
    if value >= 0.0 && value < classes as f64 && value.fract() == 0.0 {
        // Exact: a non-negative integer below `classes`, itself a usize.
        Ok(value as usize)
    } else {
        Err(Error::value(
            NAME,
            format!(
                "sample {sample} has label {label}, but labels must be integer class indices in 0..{classes} (0 to {})",
                classes.saturating_sub(1)
            ),
        ))
    }
}

impl OpType for SoftmaxCrossEntropy {
    const NAME: &'static str = NAME;

    fn gradcheck_cases() -> Vec<GradcheckCase> {
        // The loss is smooth in the logits, so any values do; [-2, 2) keeps every class's
        // probability well away from 0 and 1, where p - onehot would hide a wrong term.
        let logits = Gen::Uniform {
            low: -2.0,
            high: 2.0,
        };
        let case = |label, reduction, batch, classes| {
            GradcheckCase::new(
                label,
                SoftmaxCrossEntropy { reduction },
                vec![
                    CaseInput::new("logits", &[batch, classes], logits),
                    // Class indices: drawn as integers and never differentiated.
                    CaseInput::new("labels", &[batch], Gen::Labels { classes }),
                ],
            )
        };
        vec![
            case("batch 4 of 3 classes", Reduction::Mean, 4, 3),
            case("batch 5 of 2 classes", Reduction::Mean, 5, 2),
            case("sum over batch 3 of 4 classes", Reduction::Sum, 3, 4),
            // One loss per sample: the random output gradient weighs each row differently.
            case(
                "per sample over batch 3 of 3 classes",
                Reduction::None,
                3,
                3,
            ),
        ]
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::{arr1, arr2};
    use tapir_core::Tape;

    /// Loss and logits gradient of `op` in `F`, from a recording tape.
    fn loss_and_grad<F: Float>(
        op: SoftmaxCrossEntropy,
        logits: ArrayD<F>,
        labels: ArrayD<F>,
    ) -> Result<(ArrayD<F>, ArrayD<F>)> {
        let mut tape = Tape::<F>::new();
        let x = tape.leaf(logits, true);
        let t = tape.leaf(labels, false);
        let loss = tape.apply(op, &[&x, &t])?;
        let ones = ArrayD::from_elem(loss.shape(), F::one());
        let mut grads = tape.backward_from(&loss, ones)?;
        Ok((loss.value().clone(), grads.take(&x).unwrap_or_default()))
    }

    #[test]
    fn zero_logits_give_ln_2_and_half_over_n() {
        // p = [1/2, 1/2] for every sample, so l_i = -ln(1/2) = ln 2 and the mean is ln 2;
        // dL/dx_ij = (1/2 - [j = t_i]) / N = +-1/(2N) = +-1/4 for N = 2.
        let (loss, grad) = loss_and_grad(
            SoftmaxCrossEntropy::default(),
            ArrayD::<f64>::zeros(vec![2, 2]),
            arr1(&[0.0, 1.0]).into_dyn(),
        )
        .unwrap();
        assert_eq!(loss.shape(), &[] as &[usize]);
        assert!((loss[[]] - 2f64.ln()).abs() < 1e-15, "{loss}");
        assert_eq!(grad, arr2(&[[-0.25, 0.25], [0.25, -0.25]]).into_dyn());
        let (loss, grad) = loss_and_grad(
            SoftmaxCrossEntropy::default(),
            ArrayD::<f32>::zeros(vec![2, 2]),
            arr1(&[1.0, 1.0]).into_dyn(),
        )
        .unwrap();
        assert!((loss[[]] - 2f32.ln()).abs() < 1e-7, "{loss}");
        assert_eq!(grad, arr2(&[[0.25, -0.25], [0.25, -0.25]]).into_dyn());
    }

    #[test]
    fn worked_by_hand() {
        // Sample 0: logits [0, ln 3], label 1. exp gives [1, 3], s = 4, p = [1/4, 3/4],
        //   l_0 = -ln(3/4); gradient row (p - [0, 1]) / 2 = [1/8, -1/8].
        // Sample 1: logits [ln 2, ln 2], label 0. p = [1/2, 1/2], l_1 = ln 2;
        //   gradient row (p - [1, 0]) / 2 = [-1/4, 1/4].
        // Mean: (ln(4/3) + ln 2) / 2 = ln(8/3) / 2.
        let logits = arr2(&[[0.0, 3f64.ln()], [2f64.ln(), 2f64.ln()]]).into_dyn();
        let labels = arr1(&[1.0, 0.0]).into_dyn();
        let (loss, grad) = loss_and_grad(
            SoftmaxCrossEntropy::default(),
            logits.clone(),
            labels.clone(),
        )
        .unwrap();
        assert!(
            (loss[[]] - (8.0f64 / 3.0).ln() / 2.0).abs() < 1e-15,
            "{loss}"
        );
        let expected = [0.125, -0.125, -0.25, 0.25];
        for (got, want) in grad.iter().zip(expected) {
            assert!((got - want).abs() < 1e-15, "{grad}");
        }
        // Sum is twice the mean, and its gradient twice as large.
        let sum = SoftmaxCrossEntropy {
            reduction: Reduction::Sum,
        };
        let (loss, grad) = loss_and_grad(sum, logits.clone(), labels.clone()).unwrap();
        assert!((loss[[]] - (8.0f64 / 3.0).ln()).abs() < 1e-15, "{loss}");
        assert!((grad[[1, 0]] + 0.5).abs() < 1e-15, "{grad}");
        // None keeps [ln(4/3), ln 2].
        let none = SoftmaxCrossEntropy {
            reduction: Reduction::None,
        };
        let (loss, _) = loss_and_grad(none, logits, labels).unwrap();
        assert!((loss[[0]] - (4.0f64 / 3.0).ln()).abs() < 1e-15, "{loss}");
        assert!((loss[[1]] - 2f64.ln()).abs() < 1e-15, "{loss}");
    }

    #[test]
    fn huge_logits_give_finite_loss_and_gradient() {
        let op = SoftmaxCrossEntropy::default();
        // [1e4, -1e4], label 1: m = 1e4, s = 1 + exp(-2e4) = 1, l = 0 - (-2e4) = 2e4;
        // p = [1, 0], gradient (p - [0, 1]) / 1 = [1, -1].
        let (loss, grad) = loss_and_grad(
            op,
            arr2(&[[1e4f32, -1e4]]).into_dyn(),
            arr1(&[1.0f32]).into_dyn(),
        )
        .unwrap();
        assert_eq!(loss[[]], 2e4);
        assert_eq!(grad.as_slice().unwrap(), &[1.0, -1.0]);
        // [1e4, 1e4], label 0: s = 2, l = ln 2, gradient [1/2 - 1, 1/2] = [-1/2, 1/2].
        let (loss, grad) = loss_and_grad(
            op,
            arr2(&[[1e4f32, 1e4]]).into_dyn(),
            arr1(&[0.0f32]).into_dyn(),
        )
        .unwrap();
        assert_eq!(loss[[]], 2f32.ln());
        assert_eq!(grad.as_slice().unwrap(), &[-0.5, 0.5]);
        // [-1e4, 1e4] in f64, label 1: the right class is certain, l = 0, gradient 0.
        let (loss, grad) = loss_and_grad(
            op,
            arr2(&[[-1e4f64, 1e4]]).into_dyn(),
            arr1(&[1.0f64]).into_dyn(),
        )
        .unwrap();
        assert_eq!(loss[[]], 0.0);
        assert!(
            grad.iter().all(|g| g.is_finite() && g.abs() == 0.0),
            "{grad}"
        );
    }

    #[test]
    fn bad_labels_are_errors_naming_the_sample() {
        let op = SoftmaxCrossEntropy::default();
        let logits = ArrayD::<f64>::zeros(vec![3, 3]);
        let message = |labels: [f64; 3]| {
            loss_and_grad(op, logits.clone(), arr1(&labels).into_dyn())
                .unwrap_err()
                .to_string()
        };
        assert_eq!(
            message([0.0, 1.0, 3.0]),
            "softmax_cross_entropy: sample 2 has label 3, but labels must be integer class indices in 0..3 (0 to 2)"
        );
        assert_eq!(
            message([0.0, 1.5, 2.0]),
            "softmax_cross_entropy: sample 1 has label 1.5, but labels must be integer class indices in 0..3 (0 to 2)"
        );
        assert_eq!(
            message([-1.0, 0.0, 0.0]),
            "softmax_cross_entropy: sample 0 has label -1, but labels must be integer class indices in 0..3 (0 to 2)"
        );
        assert!(message([0.0, f64::NAN, 0.0]).contains("sample 1 has label NaN"));
        let err = loss_and_grad(op, logits.clone(), arr1(&[0.0, 0.0, 7.0]).into_dyn()).unwrap_err();
        assert!(matches!(err, Error::Value { .. }));
    }

    #[test]
    fn bad_shapes_are_errors() {
        let op = SoftmaxCrossEntropy::default();
        let message = |logits: &[usize], labels: &[usize]| {
            Op::<f32>::output_shape(&op, &[logits, labels])
                .unwrap_err()
                .to_string()
        };
        assert_eq!(
            message(&[4, 3, 1], &[4]),
            "softmax_cross_entropy: logits must have rank 2 ([batch, classes]), got shape [4, 3, 1]"
        );
        assert_eq!(
            message(&[4, 3], &[5]),
            "softmax_cross_entropy: labels must have shape [4] (one class index per sample of logits [4, 3]), got [5]"
        );
        assert_eq!(
            message(&[4, 3], &[4, 3]),
            "softmax_cross_entropy: labels must have shape [4] (one class index per sample of logits [4, 3]), got [4, 3]; labels are class indices, not one-hot rows"
        );
        assert_eq!(
            message(&[4, 0], &[4]),
            "softmax_cross_entropy: logits [4, 0] have no classes: no label can be valid"
        );
        let err = Op::<f32>::output_shape(&op, &[&[4, 3]]).unwrap_err();
        assert_eq!(
            err.to_string(),
            "softmax_cross_entropy: expects 2 inputs, got 1"
        );
    }

    #[test]
    fn builds_from_hyperparameter_text() {
        let registry = crate::builtin_registry();
        let entry = registry.get("softmax_cross_entropy").unwrap();
        let mean = entry.build_f64("()").unwrap();
        assert_eq!(
            mean.output_shape(&[&[4, 3], &[4]]).unwrap(),
            Vec::<usize>::new()
        );
        let none = entry.build_f64("(reduction: None)").unwrap();
        assert_eq!(none.output_shape(&[&[4, 3], &[4]]).unwrap(), vec![4]);
        let err = entry.build_f64("(reduction: Max)").unwrap_err().to_string();
        assert_eq!(
            err,
            "softmax_cross_entropy: hyperparameters at line 1, column 13: Unexpected variant named `Max` in enum `Reduction`, expected one of `Mean`, `Sum`, or `None` instead"
        );
    }
}
