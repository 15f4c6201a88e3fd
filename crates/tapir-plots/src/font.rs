//! The one font every picture uses, bundled so that drawing text needs no system font
//! libraries, and the text drawing built on it.
//!
//! Titles, captions and labels are laid out here with `ab_glyph` directly: plotters 0.3.7
//! places each glyph without its left side bearing, which squeezes and stretches words
//! ("Tr aining"). Only the chart's tick labels and axis names go through plotters, for which
//! the font is registered as well.

use std::sync::OnceLock;

use ab_glyph::{Font, FontRef, PxScale, ScaleFont, point};
use plotters::prelude::*;
use plotters::style::{FontStyle, register_font};

use crate::canvas::{Area, DrawResult};

/// The family name plotters looks the font up by.
pub(crate) const FAMILY: &str = "sans-serif";

/// DejaVu Sans (Bitstream Vera licence, `assets/fonts/LICENSE-DejaVu.txt`): it has the
/// arrows, check marks and Greek letters the captions use.
static DEJAVU_SANS: &[u8] = include_bytes!("../../../assets/fonts/DejaVuSans.ttf");

/// How text is placed horizontally against its anchor point.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Align {
    Left,
    Centre,
}

/// The parsed font, and whether plotters has it too; parsed and registered once per process.
fn face() -> Result<&'static FontRef<'static>, String> {
    static FACE: OnceLock<Option<FontRef<'static>>> = OnceLock::new();
    FACE.get_or_init(|| {
        let face = FontRef::try_from_slice(DEJAVU_SANS).ok()?;
        register_font(FAMILY, FontStyle::Normal, DEJAVU_SANS).ok()?;
        Some(face)
    })
    .as_ref()
    .ok_or_else(|| {
        "BUG: the bundled font DejaVuSans.ttf does not parse as a TrueType font".to_string()
    })
}

/// Makes the font ready for both text paths; every picture calls it before any layout.
pub(crate) fn ensure_ready() -> Result<(), String> {
    face().map(|_| ())
}

/// Width and height of one line of `text` at `size` pixels (the font's full height, so
/// lines of any content stack evenly).
pub(crate) fn text_size(text: &str, size: f32) -> (u32, u32) {
    let Ok(face) = face() else {
        // Unreachable after `ensure_ready`; a rough estimate keeps layout going regardless.
        return (
            (text.chars().count() as f32 * size * 0.6) as u32,
            size as u32,
        );
    };
    let font = face.as_scaled(PxScale::from(size));
    let mut width = 0.0f32;
    let mut previous = None;
    for c in text.chars() {
        let id = font.glyph_id(c);
        if let Some(p) = previous {
            width += font.kern(p, id);
        }
        width += font.h_advance(id);
        previous = Some(id);
    }
    // Capped so that sums of widths cannot overflow; a picture that wide is refused anyway.
    (
        (width.ceil() as u32).min(1 << 20),
        font.height().ceil() as u32,
    )
}

/// Draws one line of `text` with its top at `y`, anchored at `x` as `align` says.
pub(crate) fn draw_text(
    area: &Area<'_>,
    text: &str,
    size: f32,
    colour: &RGBColor,
    (x, y): (i32, i32),
    align: Align,
) -> DrawResult {
    let Ok(face) = face() else {
        return Ok(());
    };
    let font = face.as_scaled(PxScale::from(size));
    let width = text_size(text, size).0 as f32;
    let mut caret = match align {
        Align::Left => x as f32,
        Align::Centre => x as f32 - width / 2.0,
    };
    let baseline = y as f32 + font.ascent();
    let mut previous = None;
    for c in text.chars() {
        let id = font.glyph_id(c);
        if let Some(p) = previous {
            caret += font.kern(p, id);
        }
        previous = Some(id);
        let glyph = id.with_scale_and_position(font.scale(), point(caret, baseline));
        caret += font.h_advance(id);
        let Some(outline) = font.outline_glyph(glyph) else {
            continue;
        };
        let bounds = outline.px_bounds();
        let mut coverage = Vec::new();
        outline.draw(|gx, gy, c| coverage.push((gx, gy, c)));
        for (gx, gy, c) in coverage {
            if c > 0.0 {
                let pixel = (
                    bounds.min.x as i32 + gx as i32,
                    bounds.min.y as i32 + gy as i32,
                );
                area.draw_pixel(pixel, &colour.mix(f64::from(c.min(1.0))))?;
            }
        }
    }
    Ok(())
}
