//! The filter picture: learned convolution filters side by side, on one colour scale.

use std::path::Path;

use ndarray::{ArrayView3, Axis};
use plotters::prelude::*;

use crate::canvas::{
    self, Area, DrawResult, check_side, count_of, number, pixel_size, prepare, px, render,
};
use crate::colour::{FRAME, INK, MUTED, diverging};
use crate::error::PlotError;
use crate::font::{Align, draw_text, text_size};

const MARGIN: u32 = 24;
const TITLE_SIZE: f32 = 26.0;
const TITLE_HEIGHT: u32 = 56;
const LABEL_SIZE: f32 = 15.0;
const CAPTION_SIZE: f32 = 16.0;
const NOTE_HEIGHT: u32 = 26;
/// Filters per row.
const COLUMNS: usize = 8;
/// About how wide one filter is drawn, whatever its size in weights.
const FILTER_TARGET: u32 = 64;
/// Space between filters, and below each for its label.
const GAP: u32 = 20;
const LABEL_HEIGHT: u32 = 22;
const BAR_WIDTH: u32 = 320;
const BAR_HEIGHT: u32 = 14;

/// Draws `filters` (`[count, height, width]`, e.g. `[16, 5, 5]`) as a grid of small images,
/// eight per row, each weight a square (a 5x5 filter becomes 60x60 pixels): blue for
/// negative, white for zero, red for positive, on one scale shared by all filters and shown
/// in a colour bar under the grid. NaN and infinite weights are magenta.
///
/// Why: a filter is the pattern its similarity map looks for, so this shows what the
/// convolution learned: edges, blobs, or nothing at all (filters that stayed at zero, the
/// saddle point training from zeros never leaves). One shared scale keeps strong and weak
/// filters comparable. Errors if there is no filter or a filter has no weight.
pub fn filter_grid(
    path: impl AsRef<Path>,
    title: &str,
    filters: ArrayView3<'_, f32>,
) -> Result<(), PlotError> {
    let path = path.as_ref();
    prepare(path)?;
    let (count, kh, kw) = filters.dim();
    if count == 0 || kh == 0 || kw == 0 {
        return Err(PlotError::input(
            path,
            format!(
                "no filters to draw: the filters are [count, height, width] = [{count}, {kh}, {kw}]; \
                 pass at least one filter of at least one weight"
            ),
        ));
    }
    check_side(path, "a filter", (kh, kw))?;
    let max_abs = filters
        .iter()
        .filter(|w| w.is_finite())
        .fold(0.0f32, |m, w| m.max(w.abs()));
    let scale = if max_abs > 0.0 { max_abs } else { 1.0 };
    let not_finite = filters.iter().filter(|w| !w.is_finite()).count();

    let side = pixel_size(kh.max(kw), FILTER_TARGET);
    let (image_w, image_h) = (
        side.saturating_mul(kw as u32),
        side.saturating_mul(kh as u32),
    );
    let cell_w = image_w.max(FILTER_TARGET) + GAP;
    let cell_h = image_h + LABEL_HEIGHT + GAP;
    let columns = count.min(COLUMNS);
    let rows = count.div_ceil(COLUMNS);
    let grid_w = cell_w.saturating_mul(columns as u32) - GAP;
    let grid_h = cell_h.saturating_mul(rows as u32);

    let mut notes = vec![format!(
        "{} of {kh}x{kw} weights. Blue: negative, white: 0, red: positive; one colour scale \
         for all.",
        count_of(count, "filter", "filters")
    )];
    if max_abs == 0.0 {
        notes.push("Every finite weight is exactly 0.".to_string());
    }
    if not_finite > 0 {
        notes.push(format!(
            "Magenta: {} NaN or infinite.",
            count_of(not_finite, "weight is", "weights are")
        ));
    }
    let text_w = notes
        .iter()
        .map(|n| text_size(n, CAPTION_SIZE).0)
        .chain([text_size(title, TITLE_SIZE).0, BAR_WIDTH])
        .max()
        .unwrap_or(0);
    let width = grid_w.max(text_w) + 2 * MARGIN;
    let bar_top = TITLE_HEIGHT + grid_h;
    let notes_top = bar_top + BAR_HEIGHT + 36;
    let height = notes_top + NOTE_HEIGHT * notes.len() as u32 + MARGIN;

    render(path, (width, height), |root| {
        root.fill(&WHITE)?;
        draw_text(
            root,
            title,
            TITLE_SIZE,
            &INK,
            (px(width / 2), px(MARGIN) - 4),
            Align::Centre,
        )?;
        let left = px((width - grid_w) / 2);
        for (i, filter) in filters.axis_iter(Axis(0)).enumerate() {
            let x = left + px(cell_w) * (i % COLUMNS) as i32 + px(cell_w - GAP - image_w) / 2;
            let y = px(TITLE_HEIGHT) + px(cell_h) * (i / COLUMNS) as i32;
            canvas::pixels(root, (x, y), filter, side, |w| diverging(w, scale))?;
            canvas::frame(root, (x, y), (image_w, image_h), 1, &FRAME)?;
            let label = format!("#{i}");
            let centre = x + px(image_w) / 2;
            draw_text(
                root,
                &label,
                LABEL_SIZE,
                &MUTED,
                (centre, y + px(image_h) + 5),
                Align::Centre,
            )?;
        }
        colour_bar(root, (px((width - BAR_WIDTH) / 2), px(bar_top)), scale)?;
        for (i, note) in notes.iter().enumerate() {
            let y = px(notes_top + NOTE_HEIGHT * i as u32);
            draw_text(
                root,
                note,
                CAPTION_SIZE,
                &INK,
                (px(width / 2), y),
                Align::Centre,
            )?;
        }
        Ok(())
    })
}

/// The diverging scale from `-scale` to `scale`, labelled at both ends and at 0.
fn colour_bar(area: &Area<'_>, (x, y): (i32, i32), scale: f32) -> DrawResult {
    let w = px(BAR_WIDTH);
    for i in 0..w {
        let value = scale * (2.0 * i as f32 / (w - 1) as f32 - 1.0);
        area.draw(&Rectangle::new(
            [(x + i, y), (x + i + 1, y + px(BAR_HEIGHT))],
            diverging(value, scale).filled(),
        ))?;
    }
    canvas::frame(area, (x, y), (BAR_WIDTH, BAR_HEIGHT), 1, &FRAME)?;
    let label_y = y + px(BAR_HEIGHT) + 4;
    draw_text(
        area,
        &number(-scale, 3),
        LABEL_SIZE,
        &MUTED,
        (x, label_y),
        Align::Centre,
    )?;
    draw_text(
        area,
        "0",
        LABEL_SIZE,
        &MUTED,
        (x + w / 2, label_y),
        Align::Centre,
    )?;
    draw_text(
        area,
        &number(scale, 3),
        LABEL_SIZE,
        &MUTED,
        (x + w, label_y),
        Align::Centre,
    )
}

#[cfg(test)]
mod tests {
    use ndarray::Array3;

    use super::*;
    use crate::colour::NOT_FINITE;
    use crate::error::PlotErrorKind;
    use crate::testing::{count, decode, scratch};

    #[test]
    fn sixteen_5x5_filters_make_two_rows_of_eight_60_pixel_squares() {
        let dir = scratch();
        let path = dir.path().join("filters.png");
        // Filter 0 holds the largest positive weight, filter 1 the largest negative one; the
        // shared scale is their magnitude, so each is drawn in its map's end colour.
        let mut filters =
            Array3::from_shape_fn((16, 5, 5), |(f, r, c)| 0.1 * ((f + r + c) % 3) as f32 - 0.1);
        filters[[0, 2, 2]] = 0.5;
        filters[[1, 0, 0]] = -0.5;
        filter_grid(&path, "cnn-1: learned filters", filters.view()).unwrap();
        let picture = decode(&path);
        // Each weight 64 / 5 = 12 pixels, a filter 60; a cell max(60, 64) + 20 = 84 wide,
        // the grid 8 * 84 - 20 = 652, plus margins 2 * 24 = 700. Height: title 56, two rows
        // of 60 + 22 + 20 = 102, colour bar 14 + 36, one note line 26, margin 24 = 360.
        assert_eq!(picture.dimensions(), (700, 360));
        let darkest_red = diverging(0.5, 0.5);
        let darkest_blue = diverging(-0.5, 0.5);
        // One 12x12 square each, and the colour bar's end column (14 pixels high) besides.
        assert_eq!(count(&picture, darkest_red), 144 + 14);
        assert_eq!(count(&picture, darkest_blue), 144 + 14);
    }

    #[test]
    fn zero_and_nan_weights_are_told_apart_from_the_background() {
        let dir = scratch();
        let path = dir.path().join("zeros.png");
        let mut filters = Array3::<f32>::zeros((3, 3, 3));
        filters[[1, 1, 1]] = f32::NAN;
        filter_grid(&path, "zeros", filters.view()).unwrap();
        let picture = decode(&path);
        // A 3x3 filter is drawn with 64 / 3 = 21 pixel squares.
        assert_eq!(count(&picture, NOT_FINITE), 21 * 21);
        assert!(
            count(&picture, FRAME) >= 3 * 4 * 63,
            "the frames around the white filters"
        );
    }

    #[test]
    fn no_filter_is_an_error() {
        let error = filter_grid("f.png", "t", Array3::<f32>::zeros((0, 5, 5)).view()).unwrap_err();
        assert_eq!(error.kind, PlotErrorKind::Input);
        assert_eq!(
            error.to_string(),
            "f.png: no filters to draw: the filters are [count, height, width] = [0, 5, 5]; \
             pass at least one filter of at least one weight"
        );
        assert!(filter_grid("f.png", "t", Array3::<f32>::zeros((4, 0, 5)).view()).is_err());
    }

    #[test]
    fn an_unwritable_path_is_an_error_naming_it() {
        let dir = scratch();
        let path = dir.path().join("missing").join("filters.png");
        let error = filter_grid(&path, "t", Array3::<f32>::ones((2, 3, 3)).view()).unwrap_err();
        assert_eq!(error.kind, PlotErrorKind::Write);
        assert!(
            error
                .to_string()
                .starts_with(&format!("{}: cannot write", path.display()))
        );
    }
}
