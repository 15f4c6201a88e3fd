//! The gradient checker: analytic gradients against central finite differences, in `f64`.
//!
//! For a function `f` of some inputs with output `y`, the checker draws a fixed random
//! cotangent `r` (the same shape as `y`; `r = 1` for a scalar) and differentiates the scalar
//! `L = sum(y * r)`: backward from `y` with output gradient `r` gives the analytic `dL/dx`,
//! and for every element `x_k` of every differentiable input the central difference
//! `(L(x_k + eps) - L(x_k - eps)) / (2 eps)` gives the numeric one. A random `r` weighs every
//! output element differently, so a gradient routed to the wrong output cannot hide.
//!
//! **The relative error** of an element is `|a - n| / max(|a|, |n|, REL_FLOOR)`, with `a`
//! analytic, `n` numeric. The floor keeps elements whose true gradient is zero (or nearly)
//! from dividing rounding noise by nothing; below it the measure is the absolute error
//! divided by the floor. A tensor passes when its largest relative error is below
//! [`TOLERANCE`]; an element whose gradient is infinite or NaN, analytic or numeric, has an
//! infinite error and fails.
//!
//! **Inputs avoid kinks and ties.** Finite differences are wrong where `f` is not smooth
//! within `eps` of the point, so each case draws its inputs with a [`Gen`] that keeps away from
//! those places: [`Gen::AwayFromZero`] for ReLU-like ops (no input within `min` of 0, and
//! `min >> eps`), [`Gen::Distinct`] for max pooling (values evenly spaced and shuffled, so no
//! two elements of a window are within the spacing of each other), [`Gen::Labels`] for
//! integer class labels (not differentiated at all).

use std::sync::Arc;

use ndarray::{ArrayD, IxDyn};
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::Serialize;

use crate::error::{Error, Result};
use crate::op::Op;
use crate::tape::{Tape, Var};

/// The largest relative error a gradient may have and pass. Kept here, once, for every test.
pub const TOLERANCE: f64 = 1e-6;

/// The smallest denominator of the relative error (see the module doc).
pub const REL_FLOOR: f64 = 1e-3;

/// The finite-difference step used unless a caller asks for another.
pub const DEFAULT_EPS: f64 = 1e-6;

/// How the checker runs.
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    /// The finite-difference step.
    pub eps: f64,
    /// The seed of the inputs a case draws and of the cotangent.
    pub seed: u64,
    /// The largest relative error that passes.
    pub tolerance: f64,
    /// Check at most this many elements of each tensor, chosen at random from `seed`
    /// (`None`: every element). Whole networks need it: each element costs two forward passes.
    pub max_elements_per_tensor: Option<usize>,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            eps: DEFAULT_EPS,
            seed: 0,
            tolerance: TOLERANCE,
            max_elements_per_tensor: None,
        }
    }
}

/// One input of the checked function.
#[derive(Debug, Clone)]
pub struct CheckInput {
    /// A name for the report (`"x"`, `"weight"`).
    pub name: String,
    /// The value.
    pub value: ArrayD<f64>,
    /// Whether to check its gradient (false for integer labels).
    pub differentiable: bool,
}

/// The checker's verdict on one function or op.
#[derive(Debug, Clone)]
pub struct Report {
    /// The shape of the checked output.
    pub output_shape: Vec<usize>,
    /// One entry per differentiable input, in input order.
    pub tensors: Vec<TensorReport>,
}

impl Report {
    /// Whether every tensor passed.
    pub fn passed(&self) -> bool {
        self.tensors.iter().all(|t| t.passed)
    }

    /// The largest relative error over all tensors.
    pub fn max_rel_error(&self) -> f64 {
        self.tensors
            .iter()
            .map(|t| t.max_rel_error)
            .fold(0.0, f64::max)
    }
}

/// The comparison for one input tensor.
#[derive(Debug, Clone)]
pub struct TensorReport {
    /// The input's name.
    pub name: String,
    /// The input's shape.
    pub shape: Vec<usize>,
    /// The analytic gradient.
    pub analytic: ArrayD<f64>,
    /// The finite-difference gradient (NaN where not checked).
    pub numeric: ArrayD<f64>,
    /// How many elements were checked (all, unless the config limits it).
    pub checked: usize,
    /// The largest `|a - n|`.
    pub max_abs_error: f64,
    /// The largest relative error (see the module doc).
    pub max_rel_error: f64,
    /// The index of the element with the largest relative error.
    pub worst_index: Vec<usize>,
    /// Whether `max_rel_error` is below the tolerance.
    pub passed: bool,
}

/// Checks the gradients of `f` at `inputs` against central finite differences.
///
/// `f` builds its output on the tape it is given from the variables it is given (one per
/// input, in order); it is called once on a recording tape and twice per checked element on
/// inference tapes, so it must be a pure function of the input values.
pub fn check<Fun>(f: Fun, inputs: &[CheckInput], config: &Config) -> Result<Report>
where
    Fun: Fn(&mut Tape<f64>, &[Var<f64>]) -> Result<Var<f64>>,
{
    let mut tape = Tape::new();
    let vars: Vec<Var<f64>> = inputs
        .iter()
        .map(|i| tape.leaf(i.value.clone(), i.differentiable))
        .collect();
    let output = f(&mut tape, &vars)?;
    let mut rng = ChaCha8Rng::seed_from_u64(config.seed ^ 0x5EED_C07A_9E17);
    let cotangent = if output.value().len() == 1 {
        ArrayD::ones(output.shape())
    } else {
        ArrayD::from_shape_simple_fn(output.shape(), || rng.random_range(-1.0..1.0))
    };
    let grads = tape.backward_from(&output, cotangent.clone())?;

    // f(values), evaluated without recording.
    let output_at = |values: &[ArrayD<f64>]| -> Result<ArrayD<f64>> {
        let mut tape = Tape::inference();
        let vars: Vec<Var<f64>> = values.iter().cloned().map(Var::constant).collect();
        let y = f(&mut tape, &vars)?;
        if y.shape() != cotangent.shape() {
            return Err(Error::Tape(format!(
                "gradcheck: the function's output shape changed from {:?} to {:?}",
                cotangent.shape(),
                y.shape()
            )));
        }
        Ok(y.value().clone())
    };

    let mut values: Vec<ArrayD<f64>> = inputs.iter().map(|i| i.value.clone()).collect();
    let mut tensors = Vec::new();
    for (index, input) in inputs.iter().enumerate() {
        if !input.differentiable {
            continue;
        }
        let analytic = grads
            .get(&vars[index])
            .cloned()
            .unwrap_or_else(|| ArrayD::zeros(input.value.shape()));
        // Unchecked elements stay NaN in `numeric`; `compare` looks only at `checked`.
        let mut numeric = ArrayD::from_elem(input.value.shape(), f64::NAN);
        let checked = chosen_elements(input.value.len(), config.max_elements_per_tensor, &mut rng);
        for &k in &checked {
            let original = nth(&values[index], k);
            *nth_mut(&mut values[index], k) = original + config.eps;
            let plus = output_at(&values)?;
            *nth_mut(&mut values[index], k) = original - config.eps;
            let minus = output_at(&values)?;
            *nth_mut(&mut values[index], k) = original;
            // sum((y+ - y-) * r) rather than sum(y+ * r) - sum(y- * r): outputs the element
            // does not reach cancel exactly instead of adding the rounding of a large sum.
            let difference: f64 = plus
                .iter()
                .zip(&minus)
                .zip(&cotangent)
                .map(|((p, m), r)| (p - m) * r)
                .sum();
            *nth_mut(&mut numeric, k) = difference / (2.0 * config.eps);
        }
        tensors.push(compare(
            &input.name,
            analytic,
            numeric,
            &checked,
            config.tolerance,
        ));
    }
    Ok(Report {
        output_shape: output.shape().to_vec(),
        tensors,
    })
}

fn nth(array: &ArrayD<f64>, k: usize) -> f64 {
    array[IxDyn(&unravel(array.shape(), k))]
}

fn nth_mut(array: &mut ArrayD<f64>, k: usize) -> &mut f64 {
    let index = unravel(array.shape(), k);
    &mut array[IxDyn(&index)]
}

/// The multi-index of the `k`-th element in row-major order.
fn unravel(shape: &[usize], mut k: usize) -> Vec<usize> {
    let mut index = vec![0; shape.len()];
    for (axis, &len) in shape.iter().enumerate().rev() {
        index[axis] = k % len.max(1);
        k /= len.max(1);
    }
    index
}

/// Which of `len` elements to check: all, or `limit` of them drawn without replacement, sorted.
fn chosen_elements(len: usize, limit: Option<usize>, rng: &mut impl Rng) -> Vec<usize> {
    match limit {
        Some(limit) if limit < len => {
            let mut chosen = rand::seq::index::sample(rng, len, limit).into_vec();
            chosen.sort_unstable();
            chosen
        }
        _ => (0..len).collect(),
    }
}

fn compare(
    name: &str,
    analytic: ArrayD<f64>,
    numeric: ArrayD<f64>,
    checked: &[usize],
    tolerance: f64,
) -> TensorReport {
    let mut max_abs_error: f64 = 0.0;
    let mut max_rel_error: f64 = 0.0;
    let mut worst = checked.first().copied().unwrap_or(0);
    for &k in checked {
        let index = unravel(analytic.shape(), k);
        let (a, n) = (analytic[IxDyn(&index)], numeric[IxDyn(&index)]);
        // A NaN compares false everywhere and inf / inf is NaN: any error that is not a
        // finite number (an infinite or NaN gradient on either side) is the worst there is.
        let worst_if_not_finite = |e: f64| if e.is_finite() { e } else { f64::INFINITY };
        let abs = worst_if_not_finite((a - n).abs());
        let rel = worst_if_not_finite(abs / a.abs().max(n.abs()).max(REL_FLOOR));
        max_abs_error = max_abs_error.max(abs);
        if rel > max_rel_error {
            max_rel_error = rel;
            worst = k;
        }
    }
    TensorReport {
        name: name.to_string(),
        checked: checked.len(),
        shape: analytic.shape().to_vec(),
        worst_index: unravel(analytic.shape(), worst),
        max_abs_error,
        max_rel_error,
        passed: max_rel_error < tolerance,
        analytic,
        numeric,
    }
}

/// How a case draws one input's values (see the module doc for why each exists).
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Gen {
    /// Uniform in `[low, high)`.
    Uniform {
        /// The smallest value.
        low: f64,
        /// The bound no value reaches.
        high: f64,
    },
    /// Magnitude uniform in `[min, max)`, sign random: never within `min` of zero.
    AwayFromZero {
        /// The smallest magnitude.
        min: f64,
        /// The bound no magnitude reaches.
        max: f64,
    },
    /// Evenly spaced values in `[low, high]`, shuffled: no two closer than the spacing.
    Distinct {
        /// The smallest value.
        low: f64,
        /// The largest value.
        high: f64,
    },
    /// Integer class labels uniform in `0..classes`; not differentiated.
    Labels {
        /// The number of classes.
        classes: usize,
    },
}

impl Gen {
    /// Uniform in `[-1, 1)`: the default for smooth functions.
    pub fn uniform() -> Self {
        Gen::Uniform {
            low: -1.0,
            high: 1.0,
        }
    }

    /// Whether inputs drawn this way are differentiated.
    pub fn is_differentiable(self) -> bool {
        !matches!(self, Gen::Labels { .. })
    }

    /// Draws an array of `shape`.
    pub fn draw(self, shape: &[usize], rng: &mut impl Rng) -> ArrayD<f64> {
        match self {
            Gen::Uniform { low, high } => {
                ArrayD::from_shape_simple_fn(shape, || rng.random_range(low..high))
            }
            Gen::AwayFromZero { min, max } => ArrayD::from_shape_simple_fn(shape, || {
                let magnitude = rng.random_range(min..max);
                if rng.random_bool(0.5) {
                    magnitude
                } else {
                    -magnitude
                }
            }),
            Gen::Distinct { low, high } => {
                let len: usize = shape.iter().product();
                let step = if len > 1 {
                    (high - low) / (len - 1) as f64
                } else {
                    0.0
                };
                let mut values: Vec<f64> = (0..len).map(|k| low + step * k as f64).collect();
                values.shuffle(rng);
                ArrayD::from_shape_vec(shape, values)
                    .unwrap_or_else(|_| unreachable!("BUG: len is the shape's product"))
            }
            Gen::Labels { classes } => {
                ArrayD::from_shape_simple_fn(shape, || rng.random_range(0..classes.max(1)) as f64)
            }
        }
    }
}

/// One input of a [`GradcheckCase`]: a name, a shape and how to draw it.
#[derive(Debug, Clone)]
pub struct CaseInput {
    /// The name in the report.
    pub name: String,
    /// The shape.
    pub shape: Vec<usize>,
    /// How its values are drawn.
    pub values: Gen,
}

impl CaseInput {
    /// An input named `name` of `shape`, drawn with `values`.
    pub fn new(name: &str, shape: &[usize], values: Gen) -> Self {
        CaseInput {
            name: name.to_string(),
            shape: shape.to_vec(),
            values,
        }
    }
}

/// One configuration of an op whose gradients are checked: the op with its hyperparameters,
/// and its inputs (data inputs, then parameters).
#[derive(Debug, Clone)]
pub struct GradcheckCase {
    /// What the configuration shows (`"stride 2"`); also the snapshot's name.
    pub label: String,
    /// The configured op.
    pub op: Arc<dyn Op<f64>>,
    /// The inputs.
    pub inputs: Vec<CaseInput>,
}

impl GradcheckCase {
    /// A case labelled `label` for `op` on `inputs`.
    pub fn new(label: &str, op: impl Op<f64> + 'static, inputs: Vec<CaseInput>) -> Self {
        GradcheckCase {
            label: label.to_string(),
            op: Arc::new(op),
            inputs,
        }
    }

    /// Draws the inputs from `config.seed`.
    pub fn draw_inputs(&self, config: &Config) -> Vec<CheckInput> {
        let mut rng = ChaCha8Rng::seed_from_u64(config.seed);
        self.inputs
            .iter()
            .map(|input| CheckInput {
                name: input.name.clone(),
                value: input.values.draw(&input.shape, &mut rng),
                differentiable: input.values.is_differentiable(),
            })
            .collect()
    }

    /// Draws the inputs and checks the op's gradients at them.
    pub fn run(&self, config: &Config) -> Result<Report> {
        let op = Arc::clone(&self.op);
        check(
            move |tape, vars| {
                let refs: Vec<&Var<f64>> = vars.iter().collect();
                tape.apply_shared(Arc::clone(&op), &refs)
            },
            &self.draw_inputs(config),
            config,
        )
    }

    /// The reviewable record of a run, for an `insta` snapshot.
    pub fn snapshot(&self, report: &Report) -> CaseSnapshot {
        CaseSnapshot {
            op: self.op.name().to_string(),
            case: self.label.clone(),
            inputs: self
                .inputs
                .iter()
                .map(|i| (i.name.clone(), i.shape.clone()))
                .collect(),
            output_shape: report.output_shape.clone(),
            gradients: report.tensors.iter().map(TensorSnapshot::new).collect(),
        }
    }
}

/// A gradient check as a snapshot: shapes, rounded gradients and bucketed errors, stable
/// across machines.
#[derive(Debug, Clone, Serialize)]
pub struct CaseSnapshot {
    /// The op's name.
    pub op: String,
    /// The case's label.
    pub case: String,
    /// Each input's name and shape.
    pub inputs: Vec<(String, Vec<usize>)>,
    /// The output's shape.
    pub output_shape: Vec<usize>,
    /// One per differentiable input.
    pub gradients: Vec<TensorSnapshot>,
}

impl CaseSnapshot {
    /// The snapshot as RON text, arrays on one line so a reviewer reads a gradient at a glance.
    pub fn to_ron(&self) -> String {
        to_ron(self)
    }
}

/// `value` as pretty RON with compact arrays: the text format of every tapir snapshot.
pub fn to_ron(value: &impl Serialize) -> String {
    let config = ron::ser::PrettyConfig::new()
        .compact_arrays(true)
        .struct_names(true);
    ron::ser::to_string_pretty(value, config)
        .unwrap_or_else(|e| format!("BUG: unserializable snapshot: {e}"))
}

/// One tensor's gradient and errors, rounded for a snapshot.
#[derive(Debug, Clone, Serialize)]
pub struct TensorSnapshot {
    /// The input's name.
    pub name: String,
    /// The gradient's shape.
    pub shape: Vec<usize>,
    /// The largest absolute error, as a bucket.
    pub max_abs_error: &'static str,
    /// The largest relative error, as a bucket.
    pub max_rel_error: &'static str,
    /// Whether it passed the tolerance.
    pub passed: bool,
    /// How many elements were checked, where not all were.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub checked: Option<usize>,
    /// The analytic gradient, rounded to 6 significant digits.
    pub gradient: Values,
}

/// A tensor's values in a snapshot: whole when small, else a summary.
#[derive(Debug, Clone, Serialize)]
pub enum Values {
    /// Every value, row-major.
    Whole(Vec<f64>),
    /// The L2 norm, and the first values in row-major order.
    Summary {
        /// The L2 norm of all values.
        norm: f64,
        /// The first values, row-major.
        first: Vec<f64>,
    },
}

/// Tensors up to this many elements are snapshotted whole.
pub const WHOLE_UP_TO: usize = 64;

impl TensorSnapshot {
    fn new(report: &TensorReport) -> Self {
        TensorSnapshot {
            name: report.name.clone(),
            shape: report.shape.clone(),
            max_abs_error: error_bucket(report.max_abs_error),
            max_rel_error: error_bucket(report.max_rel_error),
            passed: report.passed,
            checked: (report.checked < report.analytic.len()).then_some(report.checked),
            gradient: Values::of(&report.analytic),
        }
    }
}

impl Values {
    /// Rounded values of `array`: whole up to [`WHOLE_UP_TO`] elements, else norm and first 8.
    pub fn of(array: &ArrayD<f64>) -> Self {
        if array.len() <= WHOLE_UP_TO {
            Values::Whole(array.iter().map(|&x| round6(x)).collect())
        } else {
            let norm = array.iter().map(|x| x * x).sum::<f64>().sqrt();
            Values::Summary {
                norm: round6(norm),
                first: array.iter().take(8).map(|&x| round6(x)).collect(),
            }
        }
    }
}

/// Rounds to 6 significant digits (and `-0` to `0`), so snapshots survive last-bit noise.
pub fn round6(x: f64) -> f64 {
    let rounded: f64 = format!("{x:.5e}").parse().unwrap_or(x);
    if rounded == 0.0 { 0.0 } else { rounded }
}

/// An error figure as a coarse bucket, so snapshots survive rounding differences between
/// machines (a different matrix-multiply kernel, say).
pub fn error_bucket(error: f64) -> &'static str {
    const BUCKETS: [(f64, &str); 4] = [
        (1e-12, "< 1e-12"),
        (1e-9, "< 1e-9"),
        (1e-6, "< 1e-6"),
        (1e-3, "< 1e-3"),
    ];
    if error == 0.0 {
        return "0";
    }
    BUCKETS
        .iter()
        .find(|(bound, _)| error < *bound)
        .map_or(">= 1e-3", |(_, name)| name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unravel_is_row_major() {
        assert_eq!(unravel(&[2, 3], 4), vec![1, 1]);
        assert_eq!(unravel(&[2, 3, 4], 23), vec![1, 2, 3]);
        assert_eq!(unravel(&[], 0), Vec::<usize>::new());
    }

    #[test]
    fn buckets_and_rounding() {
        assert_eq!(error_bucket(0.0), "0");
        assert_eq!(error_bucket(5e-11), "< 1e-9");
        assert_eq!(error_bucket(2e-6), "< 1e-3");
        assert_eq!(error_bucket(f64::NAN), ">= 1e-3");
        assert_eq!(round6(1.23456789), 1.23457);
        assert_eq!(round6(-1e-20), -1e-20);
        assert_eq!(round6(-0.0).to_bits(), 0.0f64.to_bits());
    }

    #[test]
    fn infinite_and_nan_gradients_fail() {
        let one = |x: f64| ArrayD::from_elem(vec![1], x);
        for (analytic, numeric) in [
            (f64::INFINITY, 1.0),
            (1.0, f64::INFINITY),
            (f64::INFINITY, f64::INFINITY),
            (f64::NEG_INFINITY, f64::INFINITY),
            (f64::NAN, 1.0),
            (1.0, f64::NAN),
        ] {
            let report = compare("x", one(analytic), one(numeric), &[0], TOLERANCE);
            assert!(!report.passed, "{analytic} against {numeric} passed");
            assert_eq!(report.max_rel_error, f64::INFINITY);
            assert_eq!(report.max_abs_error, f64::INFINITY);
        }
        let report = compare("x", one(2.0), one(2.0), &[0], TOLERANCE);
        assert!(report.passed);
        assert_eq!(report.max_rel_error, 0.0);
    }

    #[test]
    fn distinct_values_are_distinct() {
        let mut rng = ChaCha8Rng::seed_from_u64(1);
        let a = Gen::Distinct {
            low: -1.0,
            high: 1.0,
        }
        .draw(&[4, 5], &mut rng);
        let mut v: Vec<f64> = a.iter().copied().collect();
        v.sort_by(f64::total_cmp);
        assert!(v.windows(2).all(|w| w[1] - w[0] > 0.1 - 1e-12));
    }

    #[test]
    fn away_from_zero_keeps_away() {
        let mut rng = ChaCha8Rng::seed_from_u64(2);
        let a = Gen::AwayFromZero { min: 0.1, max: 1.0 }.draw(&[1000], &mut rng);
        assert!(a.iter().all(|x| x.abs() >= 0.1));
        assert!(a.iter().any(|&x| x < 0.0) && a.iter().any(|&x| x > 0.0));
    }
}
