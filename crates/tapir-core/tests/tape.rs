//! The tape's contract: gradients accumulate, inference records nothing, and every op's
//! forward and backward results are checked rather than trusted.

use ndarray::{ArrayD, ArrayViewD, IxDyn, arr1};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;
use tapir_core::gradcheck::{self, CheckInput, Config};

use tapir_core::{Arity, BackwardCx, Error, Float, Op, Result, Schedule, Tape, Var};

/// `y = x * x` elementwise, with a backward that can be broken on purpose.
#[derive(Debug, Clone, Copy)]
enum Square {
    Right,
    /// Adds 1 to the gradient of the element at this flat index.
    WrongAt(usize),
    /// Returns no gradients at all.
    NoGradients,
    /// Returns a gradient of the wrong shape.
    WrongShape,
    /// Forward returns a shape its shape rule does not promise.
    WrongForwardShape,
}

impl<F: Float> Op<F> for Square {
    fn name(&self) -> &'static str {
        "square"
    }
    fn arity(&self) -> Arity {
        Arity::Exactly(1)
    }
    fn output_shape(&self, inputs: &[&[usize]]) -> Result<Vec<usize>> {
        Arity::Exactly(1).check("square", inputs.len())?;
        Ok(inputs[0].to_vec())
    }
    fn forward(&self, inputs: &[ArrayViewD<F>]) -> Result<ArrayD<F>> {
        match self {
            Square::WrongForwardShape => Ok(ArrayD::zeros(vec![1])),
            _ => Ok(inputs[0].mapv(|x| x * x)),
        }
    }
    fn backward(&self, cx: &BackwardCx<F>) -> Result<Vec<Option<ArrayD<F>>>> {
        let two = F::from_f64(2.0);
        let mut grad = &cx.inputs[0].mapv(|x| two * x) * &cx.output_grad;
        match *self {
            Square::WrongAt(k) => {
                if let Some(g) = grad.iter_mut().nth(k) {
                    *g += F::one();
                }
            }
            Square::NoGradients => return Ok(vec![]),
            Square::WrongShape => grad = ArrayD::zeros(vec![7]),
            _ => {}
        }
        Ok(vec![Some(grad)])
    }
}

/// `y = a * b` elementwise, same shapes.
#[derive(Debug)]
struct Times;

impl<F: Float> Op<F> for Times {
    fn name(&self) -> &'static str {
        "times"
    }
    fn arity(&self) -> Arity {
        Arity::Exactly(2)
    }
    fn output_shape(&self, inputs: &[&[usize]]) -> Result<Vec<usize>> {
        Arity::Exactly(2).check("times", inputs.len())?;
        Ok(inputs[0].to_vec())
    }
    fn forward(&self, inputs: &[ArrayViewD<F>]) -> Result<ArrayD<F>> {
        Ok(&inputs[0] * &inputs[1])
    }
    fn backward(&self, cx: &BackwardCx<F>) -> Result<Vec<Option<ArrayD<F>>>> {
        let grad_a = cx.needs_grad(0).then(|| &cx.output_grad * &cx.inputs[1]);
        let grad_b = cx.needs_grad(1).then(|| &cx.output_grad * &cx.inputs[0]);
        Ok(vec![grad_a, grad_b])
    }
}

/// `y = x`, whose backward counts how many backwards of its kind run at once.
#[derive(Debug, Default)]
struct Watched {
    running: Arc<AtomicUsize>,
    most_at_once: Arc<AtomicUsize>,
}

impl<F: Float> Op<F> for Watched {
    fn name(&self) -> &'static str {
        "watched"
    }
    fn arity(&self) -> Arity {
        Arity::Exactly(1)
    }
    fn output_shape(&self, inputs: &[&[usize]]) -> Result<Vec<usize>> {
        Arity::Exactly(1).check("watched", inputs.len())?;
        Ok(inputs[0].to_vec())
    }
    fn forward(&self, inputs: &[ArrayViewD<F>]) -> Result<ArrayD<F>> {
        Ok(inputs[0].to_owned())
    }
    fn backward(&self, cx: &BackwardCx<F>) -> Result<Vec<Option<ArrayD<F>>>> {
        let now = self.running.fetch_add(1, Ordering::SeqCst) + 1;
        self.most_at_once.fetch_max(now, Ordering::SeqCst);
        // Long enough for a second thread to start its op meanwhile, if it may.
        std::thread::sleep(Duration::from_millis(20));
        self.running.fetch_sub(1, Ordering::SeqCst);
        Ok(vec![Some(cx.output_grad.to_owned())])
    }
}

fn vector(values: &[f64]) -> ArrayD<f64> {
    arr1(values).into_dyn()
}

#[test]
fn a_value_used_twice_gets_the_sum_of_its_gradients() {
    // y = x * x through Times (x used twice): dy/dx = x + x = 2x.
    let mut tape = Tape::new();
    let x = tape.leaf(vector(&[3.0, -1.5]), true);
    let y = tape.apply(Times, &[&x, &x]).unwrap();
    let grads = tape.backward_from(&y, ArrayD::ones(vec![2])).unwrap();
    assert_eq!(grads.get(&x).unwrap(), &vector(&[6.0, -3.0]));
}

#[test]
fn gradients_flow_through_a_chain_and_a_diamond() {
    // z = (x^2) * x = x^3: dz/dx = 3 x^2 = 12 at x = 2; x reaches z along two paths.
    let mut tape = Tape::new();
    let x = tape.leaf(vector(&[2.0]), true);
    let s = tape.apply(Square::Right, &[&x]).unwrap();
    let z = tape.apply(Times, &[&s, &x]).unwrap();
    let grads = tape.backward(&z).unwrap();
    assert_eq!(grads.get(&x).unwrap(), &vector(&[12.0]));
    assert!(
        grads.get(&s).is_none(),
        "intermediate gradients are not kept"
    );
}

#[test]
fn only_leaves_that_ask_get_gradients() {
    let mut tape = Tape::new();
    let a = tape.leaf(vector(&[2.0]), true);
    let b = tape.leaf(vector(&[5.0]), false);
    let y = tape.apply(Times, &[&a, &b]).unwrap();
    let grads = tape.backward(&y).unwrap();
    assert_eq!(grads.get(&a).unwrap(), &vector(&[5.0]));
    assert!(grads.get(&b).is_none());
    assert!(!b.is_tracked());
}

#[test]
fn inference_records_nothing() {
    let mut tape = Tape::<f32>::inference();
    let x = tape.leaf(arr1(&[1.0f32, 2.0]).into_dyn(), true);
    let y = tape.apply(Square::Right, &[&x]).unwrap();
    assert_eq!(y.value(), &arr1(&[1.0f32, 4.0]).into_dyn());
    assert!(tape.is_empty() && !x.is_tracked() && !y.is_tracked());
    let err = tape.backward_from(&y, ArrayD::ones(vec![2])).unwrap_err();
    assert!(err.to_string().contains("no recorded op"), "{err}");
}

#[test]
fn backward_needs_a_scalar_or_an_output_gradient() {
    let mut tape = Tape::new();
    let x = tape.leaf(vector(&[1.0, 2.0]), true);
    let y = tape.apply(Square::Right, &[&x]).unwrap();
    let err = tape.backward(&y).unwrap_err().to_string();
    assert_eq!(
        err,
        "tape: backward needs a scalar loss, got shape [2]; use backward_from with an output gradient"
    );
    let err = tape
        .backward_from(&y, ArrayD::ones(vec![3]))
        .unwrap_err()
        .to_string();
    assert_eq!(
        err,
        "tape: output gradient has shape [3], the output has shape [2]"
    );
}

#[test]
fn backward_results_are_checked_not_trusted() {
    for (op, expected) in [
        (
            Square::NoGradients,
            "square: backward returned 0 gradients for 1 inputs (a bug in the op)",
        ),
        (
            Square::WrongShape,
            "square: backward returned a gradient of shape [7] for input 0 of shape [2] (a bug in the op)",
        ),
    ] {
        let mut tape = Tape::new();
        let x = tape.leaf(vector(&[1.0, 2.0]), true);
        let y = tape.apply(op, &[&x]).unwrap();
        let err = tape.backward_from(&y, ArrayD::ones(vec![2])).unwrap_err();
        assert!(matches!(err, Error::Contract { .. }));
        assert_eq!(err.to_string(), expected);
    }
}

#[test]
fn forward_results_are_checked_against_the_shape_rule() {
    let mut tape = Tape::new();
    let x = tape.leaf(vector(&[1.0, 2.0]), true);
    let err = tape
        .apply(Square::WrongForwardShape, &[&x])
        .unwrap_err()
        .to_string();
    assert_eq!(
        err,
        "square: forward returned shape [1], its shape rule says [2] (a bug in the op)"
    );
}

#[test]
fn values_of_another_tape_are_refused() {
    let mut first = Tape::new();
    let mut second = Tape::new();
    let x = first.leaf(vector(&[1.0]), true);
    let err = second.apply(Square::Right, &[&x]).unwrap_err().to_string();
    assert_eq!(
        err,
        "tape: a value recorded on another tape was used on this one"
    );
}

fn check_square(op: Square) -> gradcheck::Report {
    let x = ArrayD::from_shape_fn(vec![2, 3], |i| 0.5 + i[0] as f64 - 0.3 * i[1] as f64);
    let inputs = [CheckInput {
        name: "x".into(),
        value: x,
        differentiable: true,
    }];
    gradcheck::check(
        |tape, vars| tape.apply(op, &[&vars[0]]),
        &inputs,
        &Config::default(),
    )
    .unwrap()
}

#[test]
fn the_checker_passes_a_right_backward() {
    let report = check_square(Square::Right);
    assert!(report.passed(), "{report:?}");
    assert!(report.max_rel_error() < 1e-9);
}

#[test]
fn the_checker_catches_a_wrong_backward_and_names_the_element() {
    // Flat index 4 of a [2, 3] tensor is [1, 1].
    let report = check_square(Square::WrongAt(4));
    assert!(!report.passed());
    let x = &report.tensors[0];
    assert!(!x.passed);
    assert_eq!(x.worst_index, vec![1, 1]);
    assert!(x.max_rel_error > 0.1, "{}", x.max_rel_error);
    // The analytic gradient is off by exactly the cotangent there; the numeric one is right.
    let worst = IxDyn(&[1, 1]);
    assert!((x.analytic[&worst] - x.numeric[&worst]).abs() > 0.01);
}

#[test]
fn f32_and_f64_run_the_same_op() {
    let mut tape = Tape::<f32>::new();
    let x = tape.leaf(arr1(&[1.5f32]).into_dyn(), true);
    let y = tape.apply(Square::Right, &[&x]).unwrap();
    assert_eq!(tape.backward(&y).unwrap().get(&x).unwrap()[[0]], 3.0f32);
}

#[test]
fn parallel_backward_is_bit_identical_whatever_the_thread_count_or_schedule() {
    // Four branches from one leaf, multiplied together: the branches' backward runs in one wave.
    let run = |schedule| {
        let mut tape = Tape::<f32>::new().with_schedule(schedule);
        let x = tape.leaf(
            ArrayD::from_shape_fn(vec![64], |i| 0.1 + i[0] as f32 * 0.37),
            true,
        );
        let mut product = tape.apply(Square::Right, &[&x]).unwrap();
        for _ in 0..4 {
            let branch = tape.apply(Square::Right, &[&x]).unwrap();
            let branch = tape.apply(Times, &[&branch, &x]).unwrap();
            product = tape.apply(Times, &[&product, &branch]).unwrap();
        }
        let grads = tape
            .backward_from(&product, ArrayD::ones(vec![64]))
            .unwrap();
        grads
            .get(&x)
            .unwrap()
            .iter()
            .map(|g| g.to_bits())
            .collect::<Vec<u32>>()
    };
    let pool = |threads| {
        rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .build()
            .unwrap()
    };
    let side_by_side = pool(1).install(|| run(Schedule::SideBySide));
    assert_eq!(side_by_side, pool(2).install(|| run(Schedule::SideBySide)));
    assert_eq!(side_by_side, pool(2).install(|| run(Schedule::OneAtATime)));
}

#[test]
fn the_schedule_decides_whether_the_ops_of_a_wave_run_at_once() {
    // Four branches from one leaf, each through a `Watched` op, multiplied in pairs and the
    // pairs together: the four `Watched` backwards form one wave.
    let most_at_once = |schedule| {
        let watched = Arc::new(Watched::default());
        let mut tape = Tape::<f32>::new().with_schedule(schedule);
        assert_eq!(tape.schedule(), schedule);
        let x = tape.leaf(ArrayD::ones(vec![4]), true);
        let branches: Vec<Var<f32>> = (0..4)
            .map(|_| tape.apply_shared(Arc::clone(&watched) as _, &[&x]).unwrap())
            .collect();
        let left = tape.apply(Times, &[&branches[0], &branches[1]]).unwrap();
        let right = tape.apply(Times, &[&branches[2], &branches[3]]).unwrap();
        let product = tape.apply(Times, &[&left, &right]).unwrap();
        rayon::ThreadPoolBuilder::new()
            .num_threads(2)
            .build()
            .unwrap()
            .install(|| tape.backward_from(&product, ArrayD::ones(vec![4])).unwrap());
        watched.most_at_once.load(Ordering::SeqCst)
    };
    assert_eq!(Tape::<f32>::new().schedule(), Schedule::SideBySide);
    // One at a time must hold on every run; side by side shows on a busy machine only
    // when the second thread is free, so a few runs are allowed.
    assert_eq!(most_at_once(Schedule::OneAtATime), 1);
    assert!(
        (0..10).any(|_| most_at_once(Schedule::SideBySide) == 2),
        "the branches' backwards never ran at once on two threads"
    );
}

#[test]
fn timed_backward_reports_each_op_once_and_changes_no_gradient() {
    // z = (x^2) * x: two ops, Square then Times; x is a leaf, never timed.
    let mut tape = Tape::new();
    let x = tape.leaf(vector(&[2.0]), true);
    let s = tape.apply(Square::Right, &[&x]).unwrap();
    let z = tape.apply(Times, &[&s, &x]).unwrap();
    let mut timed: Vec<usize> = Vec::new();
    let grads = tape
        .backward_from_timed(&z, ArrayD::ones(vec![1]), &mut |entry, _| timed.push(entry))
        .unwrap();
    assert_eq!(grads.get(&x).unwrap(), &vector(&[12.0]));
    // Backward runs from the output: Times first, then Square.
    let (s_entry, z_entry) = (tape.entry_index(&s).unwrap(), tape.entry_index(&z).unwrap());
    assert_eq!(timed, vec![z_entry, s_entry]);
    assert_eq!(tape.entry_index(&x), Some(0));
    assert_eq!(tape.entry_index(&Var::constant(vector(&[1.0]))), None);
    assert_eq!(
        Tape::<f64>::new().entry_index(&z),
        None,
        "another tape's value"
    );
}
