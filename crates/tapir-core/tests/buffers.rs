//! The tape gives the memory of dead values back to `tapir_core::buffers`, and an op that
//! takes its memory there reuses it on the next step.

use ndarray::{ArrayD, ArrayViewD, IxDyn};
use tapir_core::{Arity, BackwardCx, Float, Op, Result, Tape, Var, buffers};

/// `y = 2x`, its output and input gradient made in [`buffers`], as a heavy op makes them.
#[derive(Debug)]
struct Double;

fn doubled<F: Float>(x: &ArrayViewD<F>) -> ArrayD<F> {
    let mut y = buffers::for_overwrite(x.len());
    y.iter_mut().zip(x.iter()).for_each(|(y, &x)| *y = x + x);
    ArrayD::from_shape_vec(x.raw_dim(), y).unwrap()
}

impl<F: Float> Op<F> for Double {
    fn name(&self) -> &'static str {
        "Double"
    }
    fn arity(&self) -> Arity {
        Arity::Exactly(1)
    }
    fn output_shape(&self, inputs: &[&[usize]]) -> Result<Vec<usize>> {
        Ok(inputs[0].to_vec())
    }
    fn forward(&self, inputs: &[ArrayViewD<F>]) -> Result<ArrayD<F>> {
        Ok(doubled(&inputs[0]))
    }
    fn backward(&self, cx: &BackwardCx<F>) -> Result<Vec<Option<ArrayD<F>>>> {
        Ok(vec![Some(doubled(&cx.output_grad))])
    }
}

/// Where a value's elements live.
fn address(var: &Var<f64>) -> usize {
    var.value().as_ptr() as usize
}

/// `x -> 2x -> 4x` on a tape, backward from ones: the two outputs' addresses and dL/dx.
fn step(len: usize, keep: &mut Vec<Var<f64>>) -> (Vec<usize>, ArrayD<f64>) {
    let mut tape = Tape::new();
    let x = tape.leaf(ArrayD::from_elem(IxDyn(&[len]), 1.0), true);
    let y = tape.apply(Double, &[&x]).unwrap();
    let z = tape.apply(Double, &[&y]).unwrap();
    let ones = ArrayD::from_elem(IxDyn(&[len]), 1.0);
    let mut grads = tape.backward_from(&z, ones).unwrap();
    let dx = grads.take(&x).unwrap();
    keep.push(y.clone());
    (vec![address(&y), address(&z)], dx)
}

#[test]
fn dead_values_are_kept_for_reuse_but_held_ones_are_not_touched() {
    // 1 MiB of f64: large enough to keep.
    let len = 1 << 17;
    let mut held = Vec::new();
    let (first, dx) = step(len, &mut held);
    assert!(dx.iter().all(|&g| g == 4.0));
    let kept = buffers::kept_bytes();
    assert!(kept >= len * 8, "step 1 gave nothing back");

    // Step 1's `y` is still held: its memory must not be handed out again.
    let (second, dx) = step(len, &mut Vec::new());
    assert!(dx.iter().all(|&g| g == 4.0));
    assert!(
        !second.contains(&first[0]),
        "a held value's memory was reused"
    );

    let before = buffers::kept_bytes();
    drop(held);
    assert_eq!(
        buffers::kept_bytes(),
        before + len * 8,
        "y of step 1, dropped last"
    );

    buffers::release();
    assert_eq!(buffers::kept_bytes(), 0);
}
