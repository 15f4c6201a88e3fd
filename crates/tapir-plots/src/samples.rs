//! The sample picture: images with the model's answers, right ones framed green, wrong red.

use std::path::Path;

use ndarray::ArrayView2;
use plotters::prelude::*;

use crate::canvas::{self, check_side, pixel_size, prepare, px, render};
use crate::colour::{BAD, GOOD, INK, MUTED, finite_range, grey};
use crate::error::PlotError;
use crate::font::{Align, draw_text, text_size};

/// One image of [`sample_grid`] with what the model answered.
#[derive(Debug, Clone)]
pub struct Sample<'a> {
    /// The image, drawn in grey from its lowest to its highest value.
    pub image: ArrayView2<'a, f32>,
    /// What the picture says under the image, e.g. `dog → cat` (true class, answer).
    pub caption: String,
    /// Whether the model's answer was right: a green frame and ✓, else red and ✗.
    pub correct: bool,
}

/// A titled group of samples, e.g. `training` or `swapped validation`.
#[derive(Debug, Clone)]
pub struct SampleSection<'a> {
    /// Printed above the samples with how many were right; empty for no title line.
    pub title: String,
    /// The samples, eight per line.
    pub samples: Vec<Sample<'a>>,
}

const MARGIN: u32 = 24;
const TITLE_SIZE: f32 = 26.0;
const TITLE_HEIGHT: u32 = 60;
const SECTION_SIZE: f32 = 20.0;
const SECTION_HEIGHT: u32 = 36;
const CAPTION_SIZE: f32 = 16.0;
const CAPTION_HEIGHT: u32 = 28;
const NOTE_SIZE: f32 = 16.0;
/// Samples per line.
const COLUMNS: usize = 8;
/// About how wide each image is drawn.
const IMAGE_TARGET: u32 = 112;
const FRAME_WIDTH: u32 = 4;
const GAP: u32 = 18;

/// Draws each section as a title line (with how many answers were right) above its samples,
/// eight per line: the image in a green frame when the answer was right, red when wrong, and
/// its caption marked ✓ or ✗ (so the picture reads without colour too). An empty section
/// says so.
///
/// Why: numbers say how often a model is wrong, the pictures say on what. An FCN calling
/// every `swapped` dog a cat, while a training dog at the same size and shape is right, shows
/// that it looks at where the animal is. Errors if there is no sample at all or an image is
/// empty.
pub fn sample_grid(
    path: impl AsRef<Path>,
    title: &str,
    sections: &[SampleSection<'_>],
) -> Result<(), PlotError> {
    let path = path.as_ref();
    prepare(path)?;
    if sections.iter().all(|s| s.samples.is_empty()) {
        return Err(PlotError::input(
            path,
            "no samples to draw: pass at least one `Sample` in a `SampleSection`",
        ));
    }
    for section in sections {
        if let Some(empty) = section.samples.iter().find(|s| s.image.is_empty()) {
            let (h, w) = empty.image.dim();
            return Err(PlotError::input(
                path,
                format!(
                    "sample `{}` of section `{}` has an empty image ({h}x{w}): every image needs at least one pixel",
                    empty.caption, section.title
                ),
            ));
        }
        for sample in &section.samples {
            let what = format!("sample `{}`'s image", sample.caption);
            check_side(path, &what, sample.image.dim())?;
        }
    }
    let all = || sections.iter().flat_map(|s| s.samples.iter());
    let largest = all()
        .map(|s| s.image.nrows().max(s.image.ncols()))
        .max()
        .unwrap_or(1);
    let side = pixel_size(largest, IMAGE_TARGET);
    let captions: Vec<Vec<String>> = sections
        .iter()
        .map(|s| {
            s.samples
                .iter()
                .map(|x| format!("{} {}", if x.correct { "✓" } else { "✗" }, x.caption))
                .collect()
        })
        .collect();
    let image_w = all()
        .map(|s| side * s.image.ncols() as u32)
        .max()
        .unwrap_or(0);
    let image_h = all()
        .map(|s| side * s.image.nrows() as u32)
        .max()
        .unwrap_or(0);
    let caption_w = captions
        .iter()
        .flatten()
        .map(|c| text_size(c, CAPTION_SIZE).0)
        .max()
        .unwrap_or(0);
    let cell_w = (image_w + 2 * FRAME_WIDTH).max(caption_w) + GAP;
    let cell_h = image_h + 2 * FRAME_WIDTH + CAPTION_HEIGHT + GAP;
    let columns = sections
        .iter()
        .map(|s| s.samples.len())
        .max()
        .unwrap_or(1)
        .clamp(1, COLUMNS);
    let grid_w = cell_w * columns as u32 - GAP;
    let section_hs: Vec<u32> = sections
        .iter()
        .map(|s| {
            let title = if s.title.is_empty() {
                0
            } else {
                SECTION_HEIGHT
            };
            let lines = s.samples.len().div_ceil(COLUMNS) as u32;
            title
                + if lines == 0 {
                    CAPTION_HEIGHT + GAP
                } else {
                    lines * cell_h
                }
        })
        .collect();
    let note = "Green frame, ✓: the model's answer is right. Red frame, ✗: it is wrong.";
    let text_w = [text_size(title, TITLE_SIZE).0, text_size(note, NOTE_SIZE).0]
        .into_iter()
        .chain(
            sections
                .iter()
                .filter(|s| !s.title.is_empty())
                .map(|s| text_size(&section_heading(s), SECTION_SIZE).0),
        )
        .max()
        .unwrap_or(0);
    let width = grid_w.max(text_w) + 2 * MARGIN;
    let notes_top = TITLE_HEIGHT + section_hs.iter().sum::<u32>();
    let height = notes_top + NOTE_SIZE as u32 + 8 + MARGIN;

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
        // Headings and samples start at the margin, so a heading wider than its samples fits.
        let left = px(MARGIN);
        let mut y = px(TITLE_HEIGHT);
        for ((section, captions), section_h) in sections.iter().zip(&captions).zip(&section_hs) {
            let top = y;
            if !section.title.is_empty() {
                draw_text(
                    root,
                    &section_heading(section),
                    SECTION_SIZE,
                    &INK,
                    (left, y),
                    Align::Left,
                )?;
                y += px(SECTION_HEIGHT);
            }
            if section.samples.is_empty() {
                draw_text(
                    root,
                    "(no samples)",
                    CAPTION_SIZE,
                    &MUTED,
                    (left, y),
                    Align::Left,
                )?;
            }
            for (i, (sample, caption)) in section.samples.iter().zip(captions).enumerate() {
                let colour = if sample.correct { GOOD } else { BAD };
                let (w, h) = (
                    side * sample.image.ncols() as u32,
                    side * sample.image.nrows() as u32,
                );
                let cell_x = left + px(cell_w) * (i % COLUMNS) as i32;
                let cell_y = y + px(cell_h) * (i / COLUMNS) as i32;
                let centre = cell_x + px(cell_w - GAP) / 2;
                let x = centre - px(w) / 2;
                let image_y = cell_y + px(FRAME_WIDTH + image_h - h);
                let range = finite_range(sample.image.iter().copied()).unwrap_or((0.0, 1.0));
                canvas::pixels(root, (x, image_y), sample.image, side, |v| grey(v, range))?;
                canvas::frame(root, (x, image_y), (w, h), FRAME_WIDTH, &colour)?;
                let caption_y = cell_y + px(image_h + 2 * FRAME_WIDTH) + 5;
                draw_text(
                    root,
                    caption,
                    CAPTION_SIZE,
                    &colour,
                    (centre, caption_y),
                    Align::Centre,
                )?;
            }
            y = top + px(*section_h);
        }
        draw_text(
            root,
            note,
            NOTE_SIZE,
            &MUTED,
            (px(width / 2), px(notes_top)),
            Align::Centre,
        )
    })
}

/// A section's title with its count of right answers, if it has samples.
fn section_heading(section: &SampleSection<'_>) -> String {
    let right = section.samples.iter().filter(|s| s.correct).count();
    match section.samples.len() {
        0 => section.title.clone(),
        n => format!("{}: {right} of {n} right", section.title),
    }
}

#[cfg(test)]
mod tests {
    use ndarray::Array2;

    use super::*;
    use crate::error::PlotErrorKind;
    use crate::testing::{count, decode, scratch};

    /// A 28x28 image, bright where `r + c` is odd, so no frame colour can come from it.
    fn image() -> Array2<f32> {
        Array2::from_shape_fn((28, 28), |(r, c)| ((r + c) % 2) as f32)
    }

    fn sample<'a>(image: &'a Array2<f32>, caption: &str, correct: bool) -> Sample<'a> {
        Sample {
            image: image.view(),
            caption: caption.to_string(),
            correct,
        }
    }

    #[test]
    fn right_answers_are_framed_green_and_wrong_ones_red() {
        let dir = scratch();
        let path = dir.path().join("samples.png");
        let img = image();
        let sections = [
            SampleSection {
                title: "training".to_string(),
                samples: (0..5).map(|_| sample(&img, "dog → dog", true)).collect(),
            },
            SampleSection {
                title: "swapped".to_string(),
                samples: vec![
                    sample(&img, "dog → cat", false),
                    sample(&img, "dog → cat", false),
                    sample(&img, "cat → cat", true),
                ],
            },
        ];
        sample_grid(&path, "fcn on training and swapped images", &sections).unwrap();
        let picture = decode(&path);
        // Each pixel 112 / 28 = 4 pixels, an image 112, framed 120, a cell 120 + 18 = 138
        // wide and 120 + 28 + 18 = 166 high. Width: five cells less the last gap, 672, plus
        // margins 48. Height: title 60, two sections of 36 + 166, the note 16 + 8, margin 24.
        assert_eq!(picture.dimensions(), (720, 512));
        // The grid starts at the margin, 24. Image i of a section starts at its cell,
        // 24 + 138 i, plus 60 to the cell's centre, less half the image, 56: 24 + 138 i + 4;
        // its frame is the 4 pixels left of that. Section one's images start at
        // y = 60 + 36 + 4 = 100 (title, heading, frame), section two's 202 lower.
        let frame_at = |i: u32, y: u32| picture.get_pixel(24 + 138 * i + 4 - 1, y).0;
        let (good, bad) = ([GOOD.0, GOOD.1, GOOD.2], [BAD.0, BAD.1, BAD.2]);
        for i in 0..5 {
            assert_eq!(frame_at(i, 100), good, "training sample {i}");
        }
        assert_eq!(frame_at(0, 302), bad);
        assert_eq!(frame_at(1, 302), bad);
        assert_eq!(frame_at(2, 302), good);
        assert_eq!(
            frame_at(3, 302),
            [255, 255, 255],
            "no fourth swapped sample"
        );
        // A frame: rings i = 1..=4 around 112x112, each 4 * 112 + 8 i - 4 pixels, 1856 in all;
        // the captions add some full-strength text pixels.
        let frame = 4 * (4 * 112 - 4) + 8 * (1 + 2 + 3 + 4);
        assert!(count(&picture, GOOD) > 6 * frame);
        assert!(count(&picture, BAD) > 2 * frame);
        assert!(count(&picture, BAD) < 3 * frame);
    }

    #[test]
    fn sections_are_headed_with_their_score() {
        let img = image();
        let section = SampleSection {
            title: "swapped".to_string(),
            samples: vec![sample(&img, "a", false), sample(&img, "b", true)],
        };
        assert_eq!(section_heading(&section), "swapped: 1 of 2 right");
        let empty = SampleSection {
            title: "anywhere".to_string(),
            samples: Vec::new(),
        };
        assert_eq!(section_heading(&empty), "anywhere");
    }

    #[test]
    fn no_sample_or_an_empty_image_is_an_error() {
        let empty = [SampleSection {
            title: "training".to_string(),
            samples: Vec::new(),
        }];
        let error = sample_grid("s.png", "t", &empty).unwrap_err();
        assert_eq!(error.kind, PlotErrorKind::Input);
        assert_eq!(
            error.to_string(),
            "s.png: no samples to draw: pass at least one `Sample` in a `SampleSection`"
        );
        let flat = Array2::<f32>::zeros((28, 0));
        let sections = [SampleSection {
            title: "training".to_string(),
            samples: vec![sample(&flat, "dog → dog", true)],
        }];
        assert_eq!(
            sample_grid("s.png", "t", &sections)
                .unwrap_err()
                .to_string(),
            "s.png: sample `dog → dog` of section `training` has an empty image (28x0): every \
             image needs at least one pixel"
        );
        let tall = Array2::<f32>::zeros((9000, 1));
        let sections = [SampleSection {
            title: "training".to_string(),
            samples: vec![sample(&tall, "tall", true)],
        }];
        assert_eq!(
            sample_grid("s.png", "t", &sections)
                .unwrap_err()
                .to_string(),
            "s.png: sample `tall`'s image is 9000x1, larger than the 8192 pixels a picture's side \
             may be"
        );
    }

    #[test]
    fn an_unwritable_path_is_an_error_naming_it() {
        let dir = scratch();
        let path = dir.path().join("missing").join("samples.png");
        let img = image();
        let sections = [SampleSection {
            title: String::new(),
            samples: vec![sample(&img, "x", true)],
        }];
        let error = sample_grid(&path, "t", &sections).unwrap_err();
        assert_eq!(error.kind, PlotErrorKind::Write);
        assert!(
            error
                .to_string()
                .starts_with(&format!("{}: cannot write", path.display()))
        );
    }
}
