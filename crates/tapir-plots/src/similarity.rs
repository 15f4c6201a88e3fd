//! The similarity-map picture: one animal at several positions, beside what a few filters
//! see in it, with each map's maximum marked and printed.

use std::path::Path;

use ndarray::{ArrayView2, ArrayView3, Axis};
use plotters::prelude::*;

use crate::canvas::{
    self, Area, DrawResult, check_side, count_of, number, pixel_size, prepare, px, render,
};
use crate::colour::{BAD, FRAME, GOOD, INK, MUTED, finite_range, grey, viridis};
use crate::error::PlotError;
use crate::font::{Align, draw_text, text_size};

/// One row of [`similarity_maps`]: an image and the similarity maps of the same filters on it.
#[derive(Debug, Clone)]
pub struct SimilarityRow<'a> {
    /// Where the animal is, e.g. `dog at TL`; printed left of the row.
    pub label: String,
    /// The input image, e.g. a 56x56 canvas; drawn in grey from its lowest to its highest value.
    pub image: ArrayView2<'a, f32>,
    /// The maps, `[map, height, width]` (e.g. `[3, 60, 60]`), one per map label, in that order.
    pub maps: ArrayView3<'a, f32>,
}

const MARGIN: u32 = 24;
const TITLE_SIZE: f32 = 26.0;
const TITLE_HEIGHT: u32 = 60;
const HEADER_SIZE: f32 = 18.0;
const VERDICT_SIZE: f32 = 15.0;
const HEADER_HEIGHT: u32 = 54;
const LABEL_SIZE: f32 = 18.0;
const VALUE_SIZE: f32 = 15.0;
const VALUE_HEIGHT: u32 = 28;
const NOTE_SIZE: f32 = 16.0;
const NOTE_HEIGHT: u32 = 26;
/// About how wide each image and map is drawn.
const PANEL_TARGET: u32 = 180;
const GAP: u32 = 24;
const ROW_GAP: u32 = 16;
const MARKER_RADIUS: i32 = 9;

/// Draws one row per image (e.g. the same dog at TL and at BR): the image, then its
/// similarity maps, one column per map label. Each map's maximum is circled and printed with
/// its position, and each column's header says whether the maxima of all rows are
/// bit-identical or by how much they differ. A column's maps share one colour scale (viridis:
/// dark low, yellow high); NaN and infinite values are magenta.
///
/// Why: a convolution slides each filter over the image, so moving the animal moves its
/// similarity map with it; global max pooling keeps only each map's maximum, which therefore
/// does not change. Seeing the same numbers at different positions is translation invariance
/// at a glance, and a differing number shows where it breaks (e.g. at the canvas edge without
/// padding). Errors if there are no rows or labels, or a row's maps do not match the labels.
pub fn similarity_maps<S: AsRef<str>>(
    path: impl AsRef<Path>,
    title: &str,
    map_labels: &[S],
    rows: &[SimilarityRow<'_>],
) -> Result<(), PlotError> {
    let path = path.as_ref();
    prepare(path)?;
    check(path, map_labels.len(), rows)?;
    let columns = map_labels.len();

    // One pixel size for every panel, so an image pixel and a map pixel look the same size.
    let largest = rows
        .iter()
        .flat_map(|r| {
            [
                r.image.nrows(),
                r.image.ncols(),
                r.maps.len_of(Axis(1)),
                r.maps.len_of(Axis(2)),
            ]
        })
        .max()
        .unwrap_or(1);
    let side = pixel_size(largest, PANEL_TARGET);
    let size_of = |h: usize, w: usize| (side * w as u32, side * h as u32);

    let maxima: Vec<Vec<Option<Peak>>> = rows
        .iter()
        .map(|r| r.maps.axis_iter(Axis(0)).map(peak).collect())
        .collect();
    let scales: Vec<(f32, f32)> = (0..columns)
        .map(|j| {
            let values = rows
                .iter()
                .flat_map(|r| r.maps.index_axis(Axis(0), j).into_iter().copied());
            finite_range(values).unwrap_or((0.0, 1.0))
        })
        .collect();
    let verdicts: Vec<Option<(String, RGBColor)>> = (0..columns)
        .map(|j| verdict(maxima.iter().map(|row| row[j].as_ref())))
        .collect();
    let value_texts: Vec<Vec<String>> = maxima
        .iter()
        .map(|row| {
            row.iter()
                .map(|p| match p {
                    Some(p) => format!("max {} at ({}, {})", number(p.value, 4), p.at.0, p.at.1),
                    None => "no finite value".to_string(),
                })
                .collect()
        })
        .collect();

    // Column widths: the widest panel, header or value text in the column.
    let label_w = rows
        .iter()
        .map(|r| text_size(&r.label, LABEL_SIZE).0)
        .max()
        .unwrap_or(0)
        + GAP;
    let image_w = rows
        .iter()
        .map(|r| size_of(r.image.nrows(), r.image.ncols()).0)
        .max()
        .unwrap_or(0);
    let image_w = image_w.max(text_size("image", HEADER_SIZE).0);
    let map_ws: Vec<u32> = (0..columns)
        .map(|j| {
            let panels = rows
                .iter()
                .map(|r| size_of(r.maps.len_of(Axis(1)), r.maps.len_of(Axis(2))).0);
            let texts = value_texts
                .iter()
                .map(|row| text_size(&row[j], VALUE_SIZE).0);
            let header = text_size(map_labels[j].as_ref(), HEADER_SIZE).0;
            let verdict = verdicts[j]
                .as_ref()
                .map_or(0, |(t, _)| text_size(t, VERDICT_SIZE).0);
            panels
                .chain(texts)
                .chain([header, verdict])
                .max()
                .unwrap_or(0)
        })
        .collect();
    let row_hs: Vec<u32> = rows
        .iter()
        .map(|r| {
            let image_h = size_of(r.image.nrows(), r.image.ncols()).1;
            let map_h = size_of(r.maps.len_of(Axis(1)), r.maps.len_of(Axis(2))).1;
            image_h.max(map_h) + VALUE_HEIGHT + ROW_GAP
        })
        .collect();

    let mut notes = vec![
        "Each column's maps share one colour scale: dark low, yellow high.".to_string(),
        "The circle marks each map's maximum: the one value global max pooling keeps.".to_string(),
    ];
    let not_finite = rows
        .iter()
        .flat_map(|r| r.image.iter().chain(r.maps.iter()))
        .filter(|v| !v.is_finite())
        .count();
    if not_finite > 0 {
        notes.push(format!(
            "Magenta: {} NaN or infinite.",
            count_of(not_finite, "value is", "values are")
        ));
    }

    let grid_w = label_w + image_w + map_ws.iter().map(|w| w + GAP).sum::<u32>();
    let text_w = notes
        .iter()
        .map(|n| text_size(n, NOTE_SIZE).0)
        .chain([text_size(title, TITLE_SIZE).0])
        .max()
        .unwrap_or(0);
    let width = grid_w.max(text_w) + 2 * MARGIN;
    let grid_top = TITLE_HEIGHT + HEADER_HEIGHT;
    let notes_top = grid_top + row_hs.iter().sum::<u32>() + 8;
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
        // Left edge of each column, images first.
        let mut column_x = vec![left + px(label_w)];
        for w in std::iter::once(image_w).chain(map_ws.iter().copied()) {
            let next = column_x.last().copied().unwrap_or(0) + px(w + GAP);
            column_x.push(next);
        }
        let header_y = px(TITLE_HEIGHT);
        draw_text(
            root,
            "image",
            HEADER_SIZE,
            &INK,
            (column_x[0] + px(image_w) / 2, header_y),
            Align::Centre,
        )?;
        for j in 0..columns {
            let centre = column_x[j + 1] + px(map_ws[j]) / 2;
            draw_text(
                root,
                map_labels[j].as_ref(),
                HEADER_SIZE,
                &INK,
                (centre, header_y),
                Align::Centre,
            )?;
            if let Some((text, colour)) = &verdicts[j] {
                draw_text(
                    root,
                    text,
                    VERDICT_SIZE,
                    colour,
                    (centre, header_y + 24),
                    Align::Centre,
                )?;
            }
        }
        let mut y = px(grid_top);
        for (i, row) in rows.iter().enumerate() {
            let (w, h) = size_of(row.image.nrows(), row.image.ncols());
            let range = finite_range(row.image.iter().copied()).unwrap_or((0.0, 1.0));
            let x = column_x[0] + px(image_w - w) / 2;
            canvas::pixels(root, (x, y), row.image, side, |v| grey(v, range))?;
            canvas::frame(root, (x, y), (w, h), 1, &FRAME)?;
            let label_y = y + px(h) / 2 - px(text_size(&row.label, LABEL_SIZE).1) / 2;
            draw_text(
                root,
                &row.label,
                LABEL_SIZE,
                &INK,
                (left, label_y),
                Align::Left,
            )?;
            let map_h = size_of(row.maps.len_of(Axis(1)), row.maps.len_of(Axis(2))).1;
            for (j, map) in row.maps.axis_iter(Axis(0)).enumerate() {
                let (w, h) = size_of(map.nrows(), map.ncols());
                let x = column_x[j + 1] + px(map_ws[j] - w) / 2;
                canvas::pixels(root, (x, y), map, side, |v| viridis(v, scales[j]))?;
                canvas::frame(root, (x, y), (w, h), 1, &FRAME)?;
                if let Some(p) = &maxima[i][j] {
                    mark(root, (x, y), side, p.at)?;
                }
                let centre = column_x[j + 1] + px(map_ws[j]) / 2;
                draw_text(
                    root,
                    &value_texts[i][j],
                    VALUE_SIZE,
                    &INK,
                    (centre, y + px(map_h) + 6),
                    Align::Centre,
                )?;
            }
            y += px(row_hs[i]);
        }
        for (i, note) in notes.iter().enumerate() {
            let y = px(notes_top + NOTE_HEIGHT * i as u32);
            draw_text(
                root,
                note,
                NOTE_SIZE,
                &MUTED,
                (px(width / 2), y),
                Align::Centre,
            )?;
        }
        Ok(())
    })
}

/// Refuses what cannot be drawn, naming the row.
fn check(path: &Path, columns: usize, rows: &[SimilarityRow<'_>]) -> Result<(), PlotError> {
    if rows.is_empty() {
        return Err(PlotError::input(
            path,
            "no rows to draw: pass at least one `SimilarityRow`",
        ));
    }
    if columns == 0 {
        return Err(PlotError::input(
            path,
            "no map labels: pass one label per similarity map, e.g. `filter #3`",
        ));
    }
    for row in rows {
        let (maps, h, w) = row.maps.dim();
        if maps != columns {
            return Err(PlotError::input(
                path,
                format!(
                    "row `{}` has {maps} maps but there are {columns} map labels: give every row one map per label",
                    row.label
                ),
            ));
        }
        if row.image.is_empty() || h == 0 || w == 0 {
            let (ih, iw) = row.image.dim();
            return Err(PlotError::input(
                path,
                format!(
                    "row `{}` has an empty image or map (image {ih}x{iw}, maps {h}x{w}): every image and map needs at least one pixel",
                    row.label
                ),
            ));
        }
        check_side(
            path,
            &format!("row `{}`'s image", row.label),
            row.image.dim(),
        )?;
        check_side(path, &format!("row `{}`'s maps", row.label), (h, w))?;
    }
    Ok(())
}

/// A map's largest finite value and where it is (row, column); the first one if it repeats.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Peak {
    value: f32,
    at: (usize, usize),
}

fn peak(map: ArrayView2<'_, f32>) -> Option<Peak> {
    map.indexed_iter().filter(|(_, v)| v.is_finite()).fold(
        None,
        |best: Option<Peak>, (at, &value)| match best {
            Some(b) if b.value >= value => Some(b),
            _ => Some(Peak { value, at }),
        },
    )
}

/// Whether one column's maxima agree across rows; nothing to say for a single row.
fn verdict<'p>(peaks: impl Iterator<Item = Option<&'p Peak>>) -> Option<(String, RGBColor)> {
    let peaks: Vec<Option<&Peak>> = peaks.collect();
    if peaks.len() < 2 {
        return None;
    }
    let values: Option<Vec<f32>> = peaks.iter().map(|p| p.map(|p| p.value)).collect();
    let Some(values) = values else {
        return Some(("a map has no finite value".to_string(), BAD));
    };
    let first = values[0];
    if values.iter().all(|v| v.to_bits() == first.to_bits()) {
        return Some(("maxima bit-identical".to_string(), GOOD));
    }
    let (lo, hi) = finite_range(values.iter().copied()).unwrap_or((first, first));
    let text = if hi == lo {
        // Only 0 and -0 are equal with different bits.
        "maxima equal in value, not in bits".to_string()
    } else {
        format!("maxima differ by up to {}", number(hi - lo, 4))
    };
    Some((text, BAD))
}

/// Circles the pixel `at` of a map drawn at `origin` with `side`-pixel squares: a black ring
/// outside a white one, visible on every colour of the map.
fn mark(area: &Area<'_>, (x, y): (i32, i32), side: u32, (row, col): (usize, usize)) -> DrawResult {
    let side = px(side);
    let centre = (
        x + side * col as i32 + side / 2,
        y + side * row as i32 + side / 2,
    );
    // Wide enough to leave the marked pixel itself uncovered, however large it is drawn.
    let radius = MARKER_RADIUS.max(side * 3 / 4 + 3);
    area.draw(&Circle::new(centre, radius + 2, BLACK.stroke_width(2)))?;
    area.draw(&Circle::new(centre, radius, WHITE.stroke_width(2)))
}

#[cfg(test)]
mod tests {
    use ndarray::{Array2, Array3};

    use super::*;
    use crate::colour::NOT_FINITE;
    use crate::error::PlotErrorKind;
    use crate::testing::{count, decode, scratch};

    /// A 12x12 image with a 3x3 blob at `offset`, and two 16x16 maps: the blob's pattern
    /// shifted with it (as a convolution's map is), and a ramp whose top is `peak`.
    fn row(label: &str, offset: usize, peak: f32) -> (String, Array2<f32>, Array3<f32>) {
        let blob = |r: usize, c: usize| {
            (offset..offset + 3).contains(&r) && (offset..offset + 3).contains(&c)
        };
        let image = Array2::from_shape_fn((12, 12), |(r, c)| if blob(r, c) { 1.0 } else { 0.0 });
        // The map pixel (r, c) sees the image around (r - 2, c - 2), as with padding 2.
        let pattern = [[1.0, 2.0, 1.0], [2.0, 4.0, 2.0], [1.0, 2.0, 1.0]];
        let maps = Array3::from_shape_fn((2, 16, 16), |(m, r, c)| match m {
            0 if r >= offset + 2 && c >= offset + 2 && blob(r - 2, c - 2) => {
                pattern[r - 2 - offset][c - 2 - offset]
            }
            0 => 0.0,
            _ => peak * (r + c) as f32 / 30.0,
        });
        (label.to_string(), image, maps)
    }

    fn rows<'a>(data: &'a [(String, Array2<f32>, Array3<f32>)]) -> Vec<SimilarityRow<'a>> {
        data.iter()
            .map(|(label, image, maps)| SimilarityRow {
                label: label.clone(),
                image: image.view(),
                maps: maps.view(),
            })
            .collect()
    }

    #[test]
    fn one_row_per_position_one_column_per_map() {
        let dir = scratch();
        let path = dir.path().join("similarity.png");
        let data = [row("dog at TL", 0, 1.0), row("dog at BR", 9, 1.0)];
        similarity_maps(
            &path,
            "one dog, two positions",
            &["filter #0", "ramp"],
            &rows(&data),
        )
        .unwrap();
        let picture = decode(&path);
        // Largest side 16, so each pixel is 180 / 16 = 11 pixels: images 132, maps 176 wide.
        // Width: labels, image, two maps each after a 24 gap, margins 2 * 24.
        let labels = ["dog at TL", "dog at BR"].map(|l| text_size(l, LABEL_SIZE).0);
        let labels = labels[0].max(labels[1]) + 24;
        // Height: title 60, header 54, two rows of 176 + 28 + 16, 8, two notes of 26, 24.
        assert_eq!(
            picture.dimensions(),
            (labels + 132 + 2 * (24 + 176) + 48, 638)
        );
        // The top of each column's scale, the pattern's centre and the ramp's corner, is one
        // 11x11 square per map.
        assert_eq!(count(&picture, viridis(1.0, (0.0, 1.0))), 4 * 121);
    }

    #[test]
    fn maxima_are_found_and_compared_bit_for_bit() {
        let map = ndarray::arr2(&[[1.0, f32::NAN, 3.0], [3.0, f32::INFINITY, 0.5]]);
        assert_eq!(
            peak(map.view()),
            Some(Peak {
                value: 3.0,
                at: (0, 2)
            })
        );
        assert_eq!(peak(ndarray::arr2(&[[f32::NAN]]).view()), None);

        let at = (0, 0);
        let a = Peak { value: 1.7602, at };
        let b = Peak {
            value: 1.7602,
            at: (28, 28),
        };
        let c = Peak { value: 1.7603, at };
        let text = |v: Option<(String, RGBColor)>| v.map(|(t, _)| t);
        assert_eq!(text(verdict([Some(&a)].into_iter())), None);
        assert_eq!(
            text(verdict([Some(&a), Some(&b)].into_iter())).as_deref(),
            Some("maxima bit-identical")
        );
        assert_eq!(
            text(verdict([Some(&a), Some(&c)].into_iter())).as_deref(),
            Some("maxima differ by up to 1.0002e-4")
        );
        assert_eq!(
            text(verdict([Some(&a), None].into_iter())).as_deref(),
            Some("a map has no finite value")
        );
        // 0 and -0 are equal numbers but not the same bits.
        let (zero, minus_zero) = (Peak { value: 0.0, at }, Peak { value: -0.0, at });
        assert_eq!(
            text(verdict([Some(&zero), Some(&minus_zero)].into_iter())).as_deref(),
            Some("maxima equal in value, not in bits")
        );
    }

    #[test]
    fn nan_values_are_drawn_magenta() {
        let dir = scratch();
        let path = dir.path().join("nan.png");
        let mut data = [row("a", 0, 1.0)];
        data[0].2[[1, 0, 0]] = f32::NAN;
        similarity_maps(&path, "nan", &["x", "y"], &rows(&data)).unwrap();
        assert_eq!(count(&decode(&path), NOT_FINITE), 11 * 11);
    }

    #[test]
    fn rows_that_do_not_match_the_labels_are_errors_naming_the_row() {
        let data = [row("dog at TL", 0, 1.0)];
        let error = similarity_maps("s.png", "t", &["only one"], &rows(&data)).unwrap_err();
        assert_eq!(error.kind, PlotErrorKind::Input);
        assert_eq!(
            error.to_string(),
            "s.png: row `dog at TL` has 2 maps but there are 1 map labels: give every row one \
             map per label"
        );
        let no_labels: [&str; 0] = [];
        assert_eq!(
            similarity_maps("s.png", "t", &no_labels, &rows(&data))
                .unwrap_err()
                .to_string(),
            "s.png: no map labels: pass one label per similarity map, e.g. `filter #3`"
        );
        assert_eq!(
            similarity_maps("s.png", "t", &["a", "b"], &[])
                .unwrap_err()
                .to_string(),
            "s.png: no rows to draw: pass at least one `SimilarityRow`"
        );
        let empty = [(
            "flat".to_string(),
            Array2::zeros((0, 4)),
            Array3::zeros((2, 3, 3)),
        )];
        assert_eq!(
            similarity_maps("s.png", "t", &["a", "b"], &rows(&empty))
                .unwrap_err()
                .to_string(),
            "s.png: row `flat` has an empty image or map (image 0x4, maps 3x3): every image and \
             map needs at least one pixel"
        );
    }

    #[test]
    fn an_unwritable_path_is_an_error_naming_it() {
        let dir = scratch();
        let path = dir.path().join("missing").join("similarity.png");
        let data = [row("a", 0, 1.0)];
        let error = similarity_maps(&path, "t", &["x", "y"], &rows(&data)).unwrap_err();
        assert_eq!(error.kind, PlotErrorKind::Write);
        assert!(
            error
                .to_string()
                .starts_with(&format!("{}: cannot write", path.display()))
        );
    }
}
