//! Colours: the line palette, the colour maps that turn numbers into pixels, and the
//! value ranges they are scaled to.

use plotters::style::RGBColor;

/// Line colours, one per model: the Okabe-Ito palette, distinguishable with colour blindness
/// (its yellow left out: it vanishes on white).
pub(crate) const PALETTE: [RGBColor; 7] = [
    RGBColor(0, 114, 178),
    RGBColor(213, 94, 0),
    RGBColor(0, 158, 115),
    RGBColor(204, 121, 167),
    RGBColor(230, 159, 0),
    RGBColor(86, 180, 233),
    RGBColor(0, 0, 0),
];

/// Text and axes.
pub(crate) const INK: RGBColor = RGBColor(20, 20, 20);
/// Secondary text: captions and notes.
pub(crate) const MUTED: RGBColor = RGBColor(90, 90, 90);
/// Thin frames around images whose edge colour could match the background.
pub(crate) const FRAME: RGBColor = RGBColor(170, 170, 170);
/// A right answer, or maxima that agree.
pub(crate) const GOOD: RGBColor = RGBColor(0, 140, 70);
/// A wrong answer, or maxima that differ.
pub(crate) const BAD: RGBColor = RGBColor(210, 30, 30);
/// A pixel whose value is NaN or infinite: no colour map uses it.
pub(crate) const NOT_FINITE: RGBColor = RGBColor(255, 0, 255);

/// Blue (negative) through white (zero) to red (positive): ColorBrewer's RdBu, white centre.
const DIVERGING: [(u8, u8, u8); 7] = [
    (5, 48, 97),
    (67, 147, 195),
    (209, 229, 240),
    (255, 255, 255),
    (253, 219, 199),
    (214, 96, 77),
    (103, 0, 31),
];

/// Dark blue (low) to yellow (high), even in lightness: matplotlib's viridis.
const VIRIDIS: [(u8, u8, u8); 8] = [
    (68, 1, 84),
    (70, 50, 127),
    (54, 92, 141),
    (39, 127, 143),
    (31, 162, 136),
    (74, 194, 110),
    (160, 219, 57),
    (254, 232, 37),
];

/// The smallest and largest finite value, or `None` if there is none.
pub(crate) fn finite_range(values: impl IntoIterator<Item = f32>) -> Option<(f32, f32)> {
    values
        .into_iter()
        .filter(|v| v.is_finite())
        .fold(None, |acc, v| match acc {
            None => Some((v, v)),
            Some((lo, hi)) => Some((lo.min(v), hi.max(v))),
        })
}

/// Black (at `lo`) to white (at `hi`); a flat image is black.
pub(crate) fn grey(value: f32, (lo, hi): (f32, f32)) -> RGBColor {
    if !value.is_finite() {
        return NOT_FINITE;
    }
    let level = (unit(value, lo, hi) * 255.0).round() as u8;
    RGBColor(level, level, level)
}

/// Blue for negative, white for zero, red for positive, saturated at `-scale` and `scale`.
pub(crate) fn diverging(value: f32, scale: f32) -> RGBColor {
    if !value.is_finite() {
        return NOT_FINITE;
    }
    lerp(&DIVERGING, unit(value, -scale, scale))
}

/// Viridis from `lo` (dark blue) to `hi` (yellow).
pub(crate) fn viridis(value: f32, (lo, hi): (f32, f32)) -> RGBColor {
    if !value.is_finite() {
        return NOT_FINITE;
    }
    lerp(&VIRIDIS, unit(value, lo, hi))
}

/// `value` placed in `[lo, hi]` as a number in `[0, 1]`; 0 when the range is empty.
fn unit(value: f32, lo: f32, hi: f32) -> f32 {
    if hi > lo {
        ((value - lo) / (hi - lo)).clamp(0.0, 1.0)
    } else {
        0.0
    }
}

/// The colour at `t` in `[0, 1]` along evenly spaced `stops`.
fn lerp(stops: &[(u8, u8, u8)], t: f32) -> RGBColor {
    let last = stops.len().saturating_sub(1);
    let position = t.clamp(0.0, 1.0) * last as f32;
    let i = (position.floor() as usize).min(last.saturating_sub(1));
    let f = position - i as f32;
    let (a, b) = (stops[i], stops[(i + 1).min(last)]);
    let mix = |x: u8, y: u8| (f32::from(x) + (f32::from(y) - f32::from(x)) * f).round() as u8;
    RGBColor(mix(a.0, b.0), mix(a.1, b.1), mix(a.2, b.2))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn maps_hit_their_stops_and_mark_non_finite_values() {
        assert_eq!(diverging(0.0, 1.0), RGBColor(255, 255, 255));
        assert_eq!(diverging(-1.0, 1.0), RGBColor(5, 48, 97));
        assert_eq!(diverging(7.0, 1.0), RGBColor(103, 0, 31));
        assert_eq!(viridis(2.0, (2.0, 4.0)), RGBColor(68, 1, 84));
        assert_eq!(viridis(4.0, (2.0, 4.0)), RGBColor(254, 232, 37));
        assert_eq!(grey(0.5, (0.0, 1.0)), RGBColor(128, 128, 128));
        assert_eq!(grey(3.0, (3.0, 3.0)), RGBColor(0, 0, 0));
        assert_eq!(grey(f32::NAN, (0.0, 1.0)), NOT_FINITE);
        assert_eq!(diverging(f32::INFINITY, 1.0), NOT_FINITE);
    }

    #[test]
    fn finite_range_skips_nan_and_infinity() {
        assert_eq!(
            finite_range([f32::NAN, 2.0, -1.0, f32::INFINITY]),
            Some((-1.0, 2.0))
        );
        assert_eq!(finite_range([f32::NAN]), None);
    }
}
