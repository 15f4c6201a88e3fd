//! Shape-rule helpers shared by the ops: checked arithmetic and messages that name the op.

use tapir_core::{Arity, Error, Result};

/// Checks that `inputs` has exactly `count` shapes.
pub fn expect_inputs(op: &'static str, inputs: &[&[usize]], count: usize) -> Result<()> {
    Arity::Exactly(count).check(op, inputs.len())
}

/// Checks that `shape` has rank `rank`; `what` names it in the message (`"input"`, `"weight"`).
pub fn expect_rank(
    op: &'static str,
    what: &str,
    shape: &[usize],
    rank: usize,
    layout: &str,
) -> Result<()> {
    if shape.len() == rank {
        Ok(())
    } else {
        Err(Error::shape(
            op,
            format!("{what} must have rank {rank} ({layout}), got shape {shape:?}"),
        ))
    }
}

/// The shape rule of an elementwise op with one input: the output has the input's shape.
pub fn unary(op: &'static str, inputs: &[&[usize]]) -> Result<Vec<usize>> {
    expect_inputs(op, inputs, 1)?;
    Ok(inputs[0].to_vec())
}

/// The number of elements of `shape`, or an error if it overflows `usize`.
pub fn element_count(op: &'static str, shape: &[usize]) -> Result<usize> {
    shape
        .iter()
        .try_fold(1usize, |acc, &d| acc.checked_mul(d))
        .ok_or_else(|| {
            Error::shape(
                op,
                format!("shape {shape:?} has more elements than fit in memory"),
            )
        })
}
