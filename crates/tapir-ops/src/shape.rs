//! Shape-rule helpers shared by the ops: checked arithmetic and messages that name the op.

use serde::Deserialize;
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

/// Checks that an array of `shape` can be allocated (at most [`tapir_core::MAX_ELEMENTS`]
/// elements, `isize::MAX` bytes of `f64`) and returns its element count; `what` names the
/// array in the message (`"output"`).
pub fn allocatable(op: &'static str, what: &str, shape: &[usize]) -> Result<usize> {
    tapir_core::allocatable_elements(shape).ok_or_else(|| {
        Error::shape(
            op,
            format!("the {what} would have shape {shape:?}, more elements than fit in memory"),
        )
    })
}

/// The forward FLOPs of an op that does `per_element` operations per element of its first
/// input, saturating at `u64::MAX` rather than overflowing on a huge shape.
pub fn elementwise_flops(inputs: &[&[usize]], per_element: u64) -> u64 {
    inputs.first().map_or(0, |shape| {
        shape.iter().fold(per_element, |flops, &size| {
            flops.saturating_mul(size as u64)
        })
    })
}

/// Resolves `axis` against `shape`'s rank, counting from the end when negative (`-1` is the
/// last axis), as PyTorch's `dim` does.
pub fn resolve_axis(op: &'static str, axis: isize, shape: &[usize]) -> Result<usize> {
    let rank = shape.len();
    let resolved = if axis < 0 {
        rank.checked_sub(axis.unsigned_abs())
    } else {
        usize::try_from(axis).ok()
    };
    match resolved {
        Some(resolved) if resolved < rank => Ok(resolved),
        _ if rank == 0 => Err(Error::hyperparameter(
            op,
            format!(
                "axis {axis} is out of range: the input has rank 0 (shape {shape:?}) and no axes"
            ),
        )),
        _ => Err(Error::hyperparameter(
            op,
            format!(
                "axis {axis} is out of range for an input of rank {rank} (shape {shape:?}); use an axis from -{rank} to {}",
                rank - 1
            ),
        )),
    }
}

/// Which axes of `shape` a reduction over `axes` removes (`None`: all of them), one flag per
/// axis; an axis given twice, or an empty list, is an error.
pub fn reduced_axes(
    op: &'static str,
    axes: Option<&[isize]>,
    shape: &[usize],
) -> Result<Vec<bool>> {
    let Some(axes) = axes else {
        return Ok(vec![true; shape.len()]);
    };
    if axes.is_empty() {
        // PyTorch reads `dim=[]` as "all axes" and NumPy's `axis=()` as "none": refuse both readings.
        return Err(Error::hyperparameter(
            op,
            "axes is empty; leave it out to reduce over all axes",
        ));
    }
    let mut reduced = vec![false; shape.len()];
    for &axis in axes {
        let resolved = resolve_axis(op, axis, shape)?;
        // `resolve_axis` returned an index below the rank, the length of `reduced`.
        if std::mem::replace(&mut reduced[resolved], true) {
            return Err(Error::hyperparameter(
                op,
                format!(
                    "axis {axis} (axis {resolved} of shape {shape:?}) is repeated in axes {axes:?}"
                ),
            ));
        }
    }
    Ok(reduced)
}

/// The shape two inputs broadcast to, NumPy/PyTorch style: trailing axes aligned, a missing
/// axis or an axis of size 1 stretched to the other input's size.
pub fn broadcast_shapes(op: &'static str, a: &[usize], b: &[usize]) -> Result<Vec<usize>> {
    let rank = a.len().max(b.len());
    let mut out = vec![0; rank];
    // `from_end` = 1 is the last axis of both inputs.
    for (from_end, size) in (1..).zip(out.iter_mut().rev()) {
        let size_of = |shape: &[usize]| {
            shape
                .len()
                .checked_sub(from_end)
                .and_then(|axis| shape.get(axis))
                .copied()
                .unwrap_or(1)
        };
        let (size_a, size_b) = (size_of(a), size_of(b));
        *size = match (size_a, size_b) {
            _ if size_a == size_b => size_a,
            (1, _) => size_b,
            (_, 1) => size_a,
            _ => {
                return Err(Error::shape(
                    op,
                    format!(
                        "shapes {a:?} and {b:?} do not broadcast: axis -{from_end} (counting from the end) has sizes {size_a} and {size_b}; sizes must be equal or 1"
                    ),
                ));
            }
        };
    }
    Ok(out)
}

/// A spatial size given once for both axes (`3`) or per axis (`(3, 5)`: height, width).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(untagged, expecting = "a number, or (height, width)")]
pub enum Pair {
    /// The same value for height and width.
    Both(usize),
    /// Height, then width.
    PerAxis(usize, usize),
}

impl Pair {
    /// `(height, width)`.
    pub fn hw(self) -> (usize, usize) {
        match self {
            Pair::Both(n) => (n, n),
            Pair::PerAxis(h, w) => (h, w),
        }
    }

    /// Checks that both values are at least 1; `what` names the hyperparameter.
    pub fn check_positive(self, op: &'static str, what: &str) -> Result<(usize, usize)> {
        let (h, w) = self.hw();
        if h == 0 || w == 0 {
            return Err(Error::hyperparameter(
                op,
                format!("{what} must be at least 1, got {self}"),
            ));
        }
        Ok((h, w))
    }
}

impl std::fmt::Display for Pair {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Pair::Both(n) => write!(f, "{n}"),
            Pair::PerAxis(h, w) => write!(f, "({h}, {w})"),
        }
    }
}

/// Zero padding of a spatial input, as written in a network file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(
    untagged,
    expecting = "Valid, Same, Full, a number, (height, width) or (top, bottom, left, right)"
)]
pub enum Padding {
    /// `Valid` (no padding), `Same` (output as large as the input; stride 1 only) or `Full`
    /// (`dilation * (kernel - 1)` on every side: every window that touches the input exists).
    Keyword(PaddingKeyword),
    /// The same number of pixels on every side.
    All(usize),
    /// Pixels above and below, then left and right.
    PerAxis(usize, usize),
    /// Pixels on each side: top, bottom, left, right.
    Sides(usize, usize, usize, usize),
}

/// The named paddings; see [`Padding::Keyword`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
pub enum PaddingKeyword {
    /// No padding.
    Valid,
    /// Output size equals input size (stride 1). An odd total goes one more to bottom and
    /// right, as in PyTorch.
    Same,
    /// `dilation * (kernel - 1)` on every side.
    Full,
}

impl Default for Padding {
    fn default() -> Self {
        Padding::All(0)
    }
}

/// Padding resolved to pixels per side.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Sides {
    /// Rows above the input.
    pub top: usize,
    /// Rows below the input.
    pub bottom: usize,
    /// Columns left of the input.
    pub left: usize,
    /// Columns right of the input.
    pub right: usize,
}

impl Padding {
    /// Pixels per side for a window of `kernel` (height, width) with `dilation` and `stride`.
    pub fn resolve(
        self,
        op: &'static str,
        kernel: (usize, usize),
        dilation: (usize, usize),
        stride: (usize, usize),
    ) -> Result<Sides> {
        // Span of a dilated window minus one: the padding `Full` adds per side.
        let reach = |k: usize, d: usize| {
            k.checked_sub(1)
                .and_then(|k| k.checked_mul(d))
                .ok_or_else(|| Error::hyperparameter(op, "kernel must be at least 1"))
        };
        let (reach_h, reach_w) = (reach(kernel.0, dilation.0)?, reach(kernel.1, dilation.1)?);
        Ok(match self {
            Padding::Keyword(PaddingKeyword::Valid) => Sides::default(),
            Padding::Keyword(PaddingKeyword::Full) => Sides {
                top: reach_h,
                bottom: reach_h,
                left: reach_w,
                right: reach_w,
            },
            Padding::Keyword(PaddingKeyword::Same) => {
                if stride != (1, 1) {
                    return Err(Error::hyperparameter(
                        op,
                        format!(
                            "padding Same needs stride 1, got {stride:?}; give the padding in pixels"
                        ),
                    ));
                }
                Sides {
                    top: reach_h / 2,
                    bottom: reach_h - reach_h / 2,
                    left: reach_w / 2,
                    right: reach_w - reach_w / 2,
                }
            }
            Padding::All(p) => Sides {
                top: p,
                bottom: p,
                left: p,
                right: p,
            },
            Padding::PerAxis(h, w) => Sides {
                top: h,
                bottom: h,
                left: w,
                right: w,
            },
            Padding::Sides(top, bottom, left, right) => Sides {
                top,
                bottom,
                left,
                right,
            },
        })
    }
}

/// One spatial axis of a sliding window: its output length,
/// `floor((input + pad_before + pad_after - dilation * (kernel - 1) - 1) / stride) + 1`,
/// or an error naming `axis` when the dilated window is larger than the padded input.
#[allow(clippy::too_many_arguments)] // one named argument per term of the formula above
pub fn window_output_len(
    op: &'static str,
    axis: &str,
    input: usize,
    pad_before: usize,
    pad_after: usize,
    kernel: usize,
    dilation: usize,
    stride: usize,
) -> Result<usize> {
    let overflow = || Error::shape(op, format!("{axis}: sizes overflow"));
    let padded = input
        .checked_add(pad_before)
        .and_then(|n| n.checked_add(pad_after))
        .ok_or_else(overflow)?;
    let span = kernel
        .checked_sub(1)
        .and_then(|k| k.checked_mul(dilation))
        .and_then(|k| k.checked_add(1))
        .ok_or_else(overflow)?;
    if stride == 0 {
        return Err(Error::hyperparameter(op, "stride must be at least 1"));
    }
    if span > padded {
        return Err(Error::shape(
            op,
            format!(
                "{axis}: the window spans {span} pixels (kernel {kernel}, dilation {dilation}) but the padded input has only {padded} ({input} + padding {pad_before} + {pad_after}); use a smaller kernel or more padding"
            ),
        ));
    }
    Ok((padded - span) / stride + 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, Deserialize)]
    struct Hyper {
        #[serde(default)]
        padding: Padding,
        kernel: Pair,
    }

    #[test]
    fn padding_and_pairs_parse_in_every_form() {
        let parse = |text: &str| ron::from_str::<Hyper>(text).map_err(|e| e.to_string());
        let p = parse("(kernel: 3)").unwrap();
        assert_eq!((p.padding, p.kernel), (Padding::All(0), Pair::Both(3)));
        assert_eq!(
            parse("(kernel: (3, 5), padding: Same)").unwrap().padding,
            Padding::Keyword(PaddingKeyword::Same)
        );
        assert_eq!(
            parse("(kernel: 1, padding: (1, 2))").unwrap().padding,
            Padding::PerAxis(1, 2)
        );
        assert_eq!(
            parse("(kernel: 1, padding: (1, 2, 3, 4))").unwrap().padding,
            Padding::Sides(1, 2, 3, 4)
        );
        let err = parse("(kernel: 1, padding: -1)").unwrap_err();
        assert!(
            err.contains(
                "Valid, Same, Full, a number, (height, width) or (top, bottom, left, right)"
            ),
            "{err}"
        );
    }

    #[test]
    fn same_and_full_padding_resolve_like_pytorch() {
        let same = Padding::Keyword(PaddingKeyword::Same);
        // kernel 4: total padding 3, one more at the bottom and right.
        let sides = same.resolve("t", (4, 3), (1, 1), (1, 1)).unwrap();
        assert_eq!(
            sides,
            Sides {
                top: 1,
                bottom: 2,
                left: 1,
                right: 1
            }
        );
        let full = Padding::Keyword(PaddingKeyword::Full)
            .resolve("t", (5, 5), (2, 1), (1, 1))
            .unwrap();
        assert_eq!((full.top, full.left), (8, 4));
        assert!(same.resolve("t", (3, 3), (1, 1), (2, 2)).is_err());
    }

    #[test]
    fn elementwise_flops_count_the_first_input_and_saturate() {
        // 2 * 3 elements, 5 operations each.
        assert_eq!(elementwise_flops(&[&[2, 3]], 5), 30);
        assert_eq!(elementwise_flops(&[&[]], 4), 4);
        assert_eq!(elementwise_flops(&[], 4), 0);
        assert_eq!(elementwise_flops(&[&[3, usize::MAX / 2, 8]], 1), u64::MAX);
        // Saturated, then an empty axis: no elements at all.
        assert_eq!(elementwise_flops(&[&[usize::MAX, usize::MAX, 0]], 1), 0);
    }

    #[test]
    fn allocatable_shapes_fit_in_memory() {
        assert_eq!(allocatable("t", "output", &[2, 3]).unwrap(), 6);
        assert_eq!(
            allocatable("t", "output", &[1 << 31, 1 << 30])
                .unwrap_err()
                .to_string(),
            "t: the output would have shape [2147483648, 1073741824], more elements than fit \
             in memory"
        );
    }

    #[test]
    fn window_output_length() {
        // 28 + 4 + 4 - 5 + 1 = 32 (a 5x5 filter with full padding)
        assert_eq!(
            window_output_len("t", "height", 28, 4, 4, 5, 1, 1).unwrap(),
            32
        );
        // (7 + 0 - 3) / 2 + 1 = 3
        assert_eq!(
            window_output_len("t", "width", 7, 0, 0, 3, 1, 2).unwrap(),
            3
        );
        let err = window_output_len("t", "height", 2, 0, 0, 3, 1, 1)
            .unwrap_err()
            .to_string();
        assert!(
            err.starts_with("t: height: the window spans 3 pixels"),
            "{err}"
        );
    }
}
