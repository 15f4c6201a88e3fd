//! The loss-curve picture: how each model's losses move per epoch.

use std::path::Path;

use plotters::element::{ComposedElement, DashedPathElement};
use plotters::prelude::*;

use crate::canvas::{Area, DrawResult, prepare, px, render};
use crate::colour::{INK, PALETTE};
use crate::error::PlotError;
use crate::font::{Align, FAMILY, draw_text, text_size};

/// One line of [`loss_curves`]: one loss of one model, per epoch.
#[derive(Debug, Clone, PartialEq)]
pub struct Curve {
    /// The model, e.g. `fcn`; all curves of one model share one colour.
    pub model: String,
    /// What the curve measures, e.g. `train` or `swapped val`; the legend shows `model label`.
    pub label: String,
    /// The loss per epoch: `values[i]` belongs to epoch `i + 1`. NaN and infinite values are
    /// left out (the line breaks there) and counted in the legend.
    pub values: Vec<f64>,
    /// Draw dashed with hollow markers instead of solid with filled ones, e.g. for validation.
    pub dashed: bool,
}

/// The chart's size; the legend is added to the right, as wide as its longest entry.
const CHART_SIZE: (u32, u32) = (820, 640);
const MARGIN: u32 = 24;
const TITLE_SIZE: f32 = 26.0;
const TITLE_HEIGHT: u32 = 50;
const LEGEND_SIZE: f32 = 17.0;
/// Length of the line sample in front of each legend entry.
const SAMPLE_LEN: u32 = 44;
/// Between a legend entry's line sample and its text.
const LEGEND_GAP: u32 = 12;
/// From one legend entry to the next.
const LEGEND_STEP: u32 = 30;
/// Up to this many epochs every point gets a marker; beyond, markers would merge into a band.
const MARKER_LIMIT: usize = 40;
const LINE_WIDTH: u32 = 3;
const MARKER_RADIUS: i32 = 4;

/// Draws training and validation losses per epoch of several models into one chart, a
/// model's curves in one colour, solid or dashed, with a legend beside the chart.
///
/// Why: this is where the story shows. An FCN's training loss falls to zero while its loss on
/// `swapped` validation images (the dog where only cats were) stays high or climbs: it learned
/// where the animal is, not what it is. A CNN's two curves fall together.
///
/// The vertical axis starts at 0 (or the lowest loss, if one is negative). Errors if there is
/// no curve or no curve has a single finite value.
pub fn loss_curves(path: impl AsRef<Path>, title: &str, curves: &[Curve]) -> Result<(), PlotError> {
    let path = path.as_ref();
    prepare(path)?;
    if curves.is_empty() {
        return Err(PlotError::input(
            path,
            "no curves to draw: pass at least one `Curve`",
        ));
    }
    let finite = || {
        curves
            .iter()
            .flat_map(|c| c.values.iter().copied())
            .filter(|v| v.is_finite())
    };
    let (Some(lo), Some(hi)) = (finite().reduce(f64::min), finite().reduce(f64::max)) else {
        return Err(PlotError::input(
            path,
            "no curve has a finite value (each is empty, NaN or infinite): there is nothing to draw",
        ));
    };
    let lo = lo.min(0.0);
    let top = if hi > lo {
        hi + 0.05 * (hi - lo)
    } else {
        lo + 1.0
    };
    // plotters never finishes laying out ticks on an infinite range.
    if !top.is_finite() {
        return Err(PlotError::input(
            path,
            format!(
                "the losses span {lo:e} to {hi:e}, too wide a range to draw: leave out the values \
                 of a diverged run"
            ),
        ));
    }
    let hi = top;
    let epochs = curves.iter().map(|c| c.values.len()).max().unwrap_or(0);
    // A single epoch sits in the middle of 0..2 rather than on the axis.
    let epoch_axis = match i32::try_from(epochs) {
        Ok(n) if n >= 2 => 1..n,
        Ok(_) => 0..2,
        Err(_) => 1..i32::MAX,
    };

    let entries: Vec<Entry> = legend_entries(curves);
    let legend_width = legend_width(&entries);
    let size = picture_size(title, &entries);

    render(path, size, |root| {
        root.fill(&WHITE)?;
        draw_text(
            root,
            title,
            TITLE_SIZE,
            &INK,
            (px(size.0 / 2), 16),
            Align::Centre,
        )?;
        let body = root.margin(TITLE_HEIGHT, 0, 0, 0);
        let (chart_area, legend_area) = body.split_horizontally(size.0 - legend_width);
        let mut chart = ChartBuilder::on(&chart_area)
            .margin(20)
            .x_label_area_size(56)
            .y_label_area_size(76)
            .build_cartesian_2d(epoch_axis, lo..hi)?;
        chart
            .configure_mesh()
            .x_desc("epoch")
            .y_desc("loss")
            .axis_desc_style(tick_font(20.0).color(&INK))
            .label_style(tick_font(16.0).color(&INK))
            .x_labels(epochs.clamp(2, 16))
            .y_labels(8)
            .light_line_style(RGBColor(246, 246, 246))
            .bold_line_style(RGBColor(220, 220, 220))
            .draw()?;
        for (curve, entry) in curves.iter().zip(&entries) {
            let style = entry.colour.stroke_width(LINE_WIDTH);
            for run in finite_runs(&curve.values) {
                if curve.dashed {
                    chart.draw_series(DashedLineSeries::new(run.clone(), 12, 7, style))?;
                } else {
                    chart.draw_series(LineSeries::new(run.clone(), style))?;
                }
                if epochs <= MARKER_LIMIT || run.len() == 1 {
                    chart.draw_series(run.iter().map(|&point| marker(point, entry)))?;
                }
            }
        }
        legend(&legend_area, &entries)
    })
}

/// The chart's size widened by the legend (and the title, if longer), heightened if the
/// legend is taller than the chart.
fn picture_size(title: &str, entries: &[Entry]) -> (u32, u32) {
    let legend_w = legend_width(entries);
    let legend_h = TITLE_HEIGHT + LEGEND_STEP * entries.len() as u32 + 2 * MARGIN;
    let width = (CHART_SIZE.0 + legend_w).max(text_size(title, TITLE_SIZE).0 + 2 * MARGIN);
    (width, CHART_SIZE.1.max(legend_h))
}

/// The legend's width: line sample, gap, the longest text, margin.
fn legend_width(entries: &[Entry]) -> u32 {
    let text = entries
        .iter()
        .map(|e| text_size(&e.text, LEGEND_SIZE).0)
        .max();
    SAMPLE_LEN + LEGEND_GAP + text.unwrap_or(0) + MARGIN
}

/// What the legend says about one curve, and how the curve looks.
struct Entry {
    text: String,
    colour: RGBColor,
    dashed: bool,
}

/// One entry per curve, coloured by model in the order models first appear.
fn legend_entries(curves: &[Curve]) -> Vec<Entry> {
    let mut models: Vec<&str> = Vec::new();
    curves
        .iter()
        .map(|curve| {
            let index = models
                .iter()
                .position(|m| *m == curve.model)
                .unwrap_or_else(|| {
                    models.push(&curve.model);
                    models.len() - 1
                });
            let skipped = curve.values.iter().filter(|v| !v.is_finite()).count();
            let mut text = format!("{} {}", curve.model, curve.label);
            if curve.values.is_empty() {
                text.push_str(" (no values)");
            } else if skipped == curve.values.len() {
                text.push_str(" (no finite value)");
            } else if skipped > 0 {
                text.push_str(&format!(" ({skipped} not finite)"));
            }
            Entry {
                text,
                colour: PALETTE[index % PALETTE.len()],
                dashed: curve.dashed,
            }
        })
        .collect()
}

/// The curve's points split where a value is NaN or infinite, as (epoch, loss).
fn finite_runs(values: &[f64]) -> Vec<Vec<(i32, f64)>> {
    let mut runs = Vec::new();
    let mut run = Vec::new();
    for (i, &v) in values.iter().enumerate() {
        if v.is_finite() {
            run.push((i32::try_from(i + 1).unwrap_or(i32::MAX), v));
        } else if !run.is_empty() {
            runs.push(std::mem::take(&mut run));
        }
    }
    if !run.is_empty() {
        runs.push(run);
    }
    runs
}

/// The bundled font at `size` pixels, for what plotters draws: tick labels and axis names.
fn tick_font(size: f64) -> FontDesc<'static> {
    FontDesc::new(FontFamily::Name(FAMILY), size, FontStyle::Normal)
}

/// A dot drawn at a point, in pixels around it.
type Marker<C, DB> = ComposedElement<C, DB, Circle<(i32, i32), i32>, Circle<(i32, i32), i32>>;

/// A filled dot on a solid curve, a hollow one on a dashed curve.
fn marker<C, DB: DrawingBackend>(point: C, entry: &Entry) -> Marker<C, DB> {
    let style = if entry.dashed {
        WHITE.filled()
    } else {
        entry.colour.filled()
    };
    EmptyElement::at(point)
        + Circle::new((0, 0), MARKER_RADIUS, style)
        + Circle::new((0, 0), MARKER_RADIUS, entry.colour.stroke_width(2))
}

/// The legend, top down beside the chart: a line sample and the text per curve.
fn legend(area: &Area<'_>, entries: &[Entry]) -> DrawResult {
    let (x, mut y) = (0, px(MARGIN));
    let sample = px(SAMPLE_LEN);
    for entry in entries {
        let mid = y + 10;
        let line = vec![(x, mid), (x + sample, mid)];
        let style = entry.colour.stroke_width(LINE_WIDTH);
        if entry.dashed {
            area.draw(&DashedPathElement::new(line, 12, 7, style))?;
        } else {
            area.draw(&PathElement::new(line, style))?;
        }
        area.draw(&marker((x + sample / 2, mid), entry))?;
        draw_text(
            area,
            &entry.text,
            LEGEND_SIZE,
            &INK,
            (x + sample + px(LEGEND_GAP), y),
            Align::Left,
        )?;
        y += px(LEGEND_STEP);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::PlotErrorKind;
    use crate::testing::{count, decode, scratch};

    fn curve(model: &str, label: &str, values: &[f64], dashed: bool) -> Curve {
        Curve {
            model: model.to_string(),
            label: label.to_string(),
            values: values.to_vec(),
            dashed,
        }
    }

    /// The story's shape: the FCN's training loss falls while its swapped loss climbs; the
    /// CNN's two fall together.
    fn fcn_against_cnn() -> Vec<Curve> {
        let fcn_train: Vec<f64> = (0..15)
            .map(|e| 0.69 * (-0.5 * f64::from(e)).exp())
            .collect();
        let fcn_val: Vec<f64> = (0..15).map(|e| 0.7 + 0.4 * f64::from(e)).collect();
        let cnn: Vec<f64> = (0..15)
            .map(|e| 0.35 + 0.34 * (-0.3 * f64::from(e)).exp())
            .collect();
        vec![
            curve("fcn", "train", &fcn_train, false),
            curve("fcn", "swapped val", &fcn_val, true),
            curve("cnn-1", "train", &cnn, false),
            curve("cnn-1", "swapped val", &cnn, true),
        ]
    }

    #[test]
    fn draws_fcn_against_cnn_with_the_legend_beside_the_chart() {
        let dir = scratch();
        let path = dir.path().join("loss.png");
        loss_curves(
            &path,
            "Training and swapped validation loss",
            &fcn_against_cnn(),
        )
        .unwrap();
        let picture = decode(&path);
        // The chart, then the legend: line sample, gap, the longest entry, margin.
        let legend = 44 + 12 + text_size("cnn-1 swapped val", LEGEND_SIZE).0 + 24;
        assert_eq!(picture.dimensions(), (820 + legend, 640));
        // Each model is drawn in its own colour, both of its curves in it.
        assert!(count(&picture, PALETTE[0]) > 500, "fcn's blue is missing");
        assert!(
            count(&picture, PALETTE[1]) > 500,
            "cnn-1's orange is missing"
        );
        assert_eq!(
            count(&picture, PALETTE[2]),
            0,
            "a third colour for two models"
        );
    }

    #[test]
    fn a_models_curves_share_a_colour_and_the_legend_counts_what_was_skipped() {
        let curves = [
            curve("fcn", "train", &[0.7, f64::NAN, 0.5], false),
            curve("cnn", "train", &[f64::INFINITY], false),
            curve("fcn", "val", &[], true),
            curve("cnn", "val", &[0.7], true),
        ];
        let entries = legend_entries(&curves);
        let texts: Vec<&str> = entries.iter().map(|e| e.text.as_str()).collect();
        assert_eq!(
            texts,
            [
                "fcn train (1 not finite)",
                "cnn train (no finite value)",
                "fcn val (no values)",
                "cnn val"
            ]
        );
        let colours: Vec<RGBColor> = entries.iter().map(|e| e.colour).collect();
        assert_eq!(colours, [PALETTE[0], PALETTE[1], PALETTE[0], PALETTE[1]]);
    }

    #[test]
    fn a_curve_breaks_where_its_values_are_not_finite() {
        let runs = finite_runs(&[1.0, f64::NAN, 2.0, 3.0, f64::INFINITY, f64::NEG_INFINITY]);
        assert_eq!(runs, [vec![(1, 1.0)], vec![(3, 2.0), (4, 3.0)]]);
        assert!(finite_runs(&[f64::NAN]).is_empty());
    }

    #[test]
    fn nan_losses_and_a_single_epoch_still_draw() {
        let dir = scratch();
        let path = dir.path().join("diverged.png");
        let curves = [
            curve("fcn", "train", &[0.7, f64::NAN, f64::NAN], false),
            curve("cnn", "train", &[f64::NAN], false),
        ];
        loss_curves(&path, "diverged", &curves).unwrap();
        // The one finite point of fcn is still a visible marker.
        assert!(count(&decode(&path), PALETTE[0]) > 20);
    }

    #[test]
    fn nothing_to_draw_is_an_error() {
        let error = loss_curves("loss.png", "t", &[]).unwrap_err();
        assert_eq!(error.kind, PlotErrorKind::Input);
        assert_eq!(
            error.to_string(),
            "loss.png: no curves to draw: pass at least one `Curve`"
        );
        let nan = [
            curve("fcn", "train", &[f64::NAN], false),
            curve("cnn", "val", &[], true),
        ];
        assert_eq!(
            loss_curves("loss.png", "t", &nan).unwrap_err().to_string(),
            "loss.png: no curve has a finite value (each is empty, NaN or infinite): there is \
             nothing to draw"
        );
    }

    #[test]
    fn a_range_too_wide_for_the_axis_is_an_error() {
        let huge = [curve("fcn", "train", &[f64::MAX, 1.0], false)];
        assert_eq!(
            loss_curves("loss.png", "t", &huge).unwrap_err().to_string(),
            "loss.png: the losses span 0e0 to 1.7976931348623157e308, too wide a range to draw: \
             leave out the values of a diverged run"
        );
        let wide = [curve("fcn", "train", &[-1e308, 1e308], false)];
        assert!(loss_curves("loss.png", "t", &wide).is_err());
    }

    #[test]
    fn tiny_and_flat_losses_still_draw() {
        let dir = scratch();
        for (i, values) in [[1e-30, 3e-30], [5.0, 5.0], [0.0, 0.0]].iter().enumerate() {
            let path = dir.path().join(format!("flat{i}.png"));
            loss_curves(&path, "t", &[curve("m", "train", values, false)]).unwrap();
            assert!(count(&decode(&path), PALETTE[0]) > 100, "case {i}");
        }
    }

    #[test]
    fn an_unwritable_path_is_an_error_naming_it() {
        let dir = scratch();
        let path = dir.path().join("missing").join("loss.png");
        let error = loss_curves(&path, "t", &fcn_against_cnn()).unwrap_err();
        assert_eq!(error.kind, PlotErrorKind::Write);
        assert_eq!(error.path, path);
        assert!(
            error
                .to_string()
                .starts_with(&format!("{}: cannot write", path.display()))
        );
    }
}
