//! Where every picture is drawn: an in-memory RGB canvas that is encoded as PNG only once
//! drawing has succeeded (so a failed picture leaves no half-drawn file), and the few
//! drawing helpers the pictures share (pixel images, frames, numbers).

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::Path;

use image::ImageEncoder;
use image::codecs::png::PngEncoder;
use ndarray::ArrayView2;
use plotters::coord::Shift;
use plotters::prelude::*;

use crate::error::{PlotError, PlotErrorKind};
use crate::font;

/// The drawing area every picture draws on.
pub(crate) type Area<'b> = DrawingArea<BitMapBackend<'b>, Shift>;

/// What drawing on an [`Area`] returns.
pub(crate) type DrawResult =
    Result<(), DrawingAreaErrorKind<<BitMapBackend<'static> as DrawingBackend>::ErrorType>>;

/// The longest side a picture may have; a bigger one means far too many items to look at.
pub(crate) const MAX_SIDE: u32 = 8192;

/// Checks what every picture needs before any layout: a `.png` file name and the font.
pub(crate) fn prepare(path: &Path) -> Result<(), PlotError> {
    let is_png = path
        .extension()
        .is_some_and(|ext| ext.eq_ignore_ascii_case("png"));
    if !is_png {
        return Err(PlotError::input(
            path,
            "the file name must end in `.png`: the picture is written as a PNG image",
        ));
    }
    font::ensure_ready().map_err(|message| PlotError::new(path, PlotErrorKind::Font, message))
}

/// Draws a `width` x `height` picture on white with `draw`, then writes it to `path` as PNG.
pub(crate) fn render(
    path: &Path,
    (width, height): (u32, u32),
    draw: impl FnOnce(&Area<'_>) -> DrawResult,
) -> Result<(), PlotError> {
    if width == 0 || height == 0 || width > MAX_SIDE || height > MAX_SIDE {
        return Err(PlotError::input(
            path,
            format!(
                "the picture would be {width}x{height} pixels, but each side must be between 1 and \
                 {MAX_SIDE}: draw fewer or smaller items"
            ),
        ));
    }
    let mut buffer = vec![255u8; width as usize * height as usize * 3];
    {
        let root = BitMapBackend::with_buffer(&mut buffer, (width, height)).into_drawing_area();
        draw(&root).and_then(|()| root.present()).map_err(|e| {
            PlotError::new(path, PlotErrorKind::Draw, format!("drawing failed: {e}"))
        })?;
    }
    write_png(path, &buffer, (width, height))
}

fn write_png(path: &Path, rgb: &[u8], (width, height): (u32, u32)) -> Result<(), PlotError> {
    let write_error = |what: String| {
        PlotError::new(
            path,
            PlotErrorKind::Write,
            format!(
                "cannot write the PNG file ({what}); check that its folder exists and is writable"
            ),
        )
    };
    let file = File::create(path).map_err(|e| write_error(e.to_string()))?;
    let mut out = BufWriter::new(file);
    PngEncoder::new(&mut out)
        .write_image(rgb, width, height, image::ColorType::Rgb8)
        .map_err(|e| write_error(e.to_string()))?;
    out.flush().map_err(|e| write_error(e.to_string()))
}

/// Refuses an image or map with a side longer than a picture may be: it could not be shown,
/// and the layout arithmetic stays far from overflowing.
pub(crate) fn check_side(path: &Path, what: &str, (h, w): (usize, usize)) -> Result<(), PlotError> {
    if h.max(w) > MAX_SIDE as usize {
        return Err(PlotError::input(
            path,
            format!("{what} is {h}x{w}, larger than the {MAX_SIDE} pixels a picture's side may be"),
        ));
    }
    Ok(())
}

/// Draws `data` as an image of `px` x `px` squares, top left at `origin`, each coloured by `colour`.
pub(crate) fn pixels(
    area: &Area<'_>,
    (x0, y0): (i32, i32),
    data: ArrayView2<'_, f32>,
    px: u32,
    colour: impl Fn(f32) -> RGBColor,
) -> DrawResult {
    let px = px as i32;
    // A filled rectangle covers its first corner up to, not including, its second.
    for ((row, col), &value) in data.indexed_iter() {
        let x = x0 + col as i32 * px;
        let y = y0 + row as i32 * px;
        area.draw(&Rectangle::new(
            [(x, y), (x + px, y + px)],
            colour(value).filled(),
        ))?;
    }
    Ok(())
}

/// Draws a frame `width` pixels thick just outside the rectangle at `origin` of `size`.
pub(crate) fn frame(
    area: &Area<'_>,
    (x0, y0): (i32, i32),
    (w, h): (u32, u32),
    width: u32,
    colour: &RGBColor,
) -> DrawResult {
    let (w, h, t) = (w as i32, h as i32, width as i32);
    // An outlined rectangle, unlike a filled one, includes both corners.
    for i in 1..=t {
        area.draw(&Rectangle::new(
            [(x0 - i, y0 - i), (x0 + w - 1 + i, y0 + h - 1 + i)],
            colour.stroke_width(1),
        ))?;
    }
    Ok(())
}

/// A value as a picture prints it: `decimals` decimals, or scientific notation when that
/// would hide its size.
pub(crate) fn number(value: f32, decimals: usize) -> String {
    let size = value.abs();
    if value == 0.0 || (1e-3..1e5).contains(&size) || !value.is_finite() {
        format!("{value:.decimals$}")
    } else {
        format!("{value:.decimals$e}")
    }
}

/// `n` with the singular or plural words after it: "1 value is", "3 values are".
pub(crate) fn count_of(n: usize, one: &str, many: &str) -> String {
    format!("{n} {}", if n == 1 { one } else { many })
}

/// Side of the squares that show one pixel, so that an image about `target` pixels wide
/// results from one `side` pixels wide; never below 1.
pub(crate) fn pixel_size(side: usize, target: u32) -> u32 {
    let side = u32::try_from(side.max(1)).unwrap_or(u32::MAX);
    (target / side).max(1)
}

/// `n` as a pixel coordinate; sizes are capped by [`MAX_SIDE`] long before this saturates.
pub(crate) fn px(n: u32) -> i32 {
    i32::try_from(n).unwrap_or(i32::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{count, decode, scratch};

    #[test]
    fn a_drawn_picture_is_a_png_of_the_asked_size() {
        let dir = scratch();
        let path = dir.path().join("square.PNG");
        prepare(&path).unwrap();
        render(&path, (30, 20), |area| {
            area.fill(&WHITE)?;
            // A 2x1 image of 4-pixel squares: 8x4 pixels of red at (5, 6).
            let data = ndarray::arr2(&[[1.0f32, 1.0]]);
            pixels(area, (5, 6), data.view(), 4, |_| RED)
        })
        .unwrap();
        let picture = decode(&path);
        assert_eq!(picture.dimensions(), (30, 20));
        assert_eq!(count(&picture, RED), 8 * 4);
        assert_eq!(picture.get_pixel(5, 6).0, [255, 0, 0]);
        assert_eq!(picture.get_pixel(12, 9).0, [255, 0, 0]);
        assert_eq!(picture.get_pixel(13, 9).0, [255, 255, 255]);
    }

    #[test]
    fn a_missing_folder_is_an_error_naming_the_file() {
        let dir = scratch();
        let path = dir.path().join("no-such-folder").join("picture.png");
        let error = render(&path, (10, 10), |_| Ok(())).unwrap_err();
        assert_eq!(error.kind, PlotErrorKind::Write);
        assert_eq!(
            error.to_string(),
            format!(
                "{}: cannot write the PNG file (No such file or directory (os error 2)); check \
                 that its folder exists and is writable",
                path.display()
            )
        );
    }

    #[test]
    fn a_file_name_without_png_is_refused() {
        let error = prepare(Path::new("out/loss.jpg")).unwrap_err();
        assert_eq!(error.kind, PlotErrorKind::Input);
        assert_eq!(
            error.to_string(),
            "out/loss.jpg: the file name must end in `.png`: the picture is written as a PNG image"
        );
        assert!(prepare(Path::new("out/loss")).is_err());
    }

    #[test]
    fn an_oversized_picture_is_refused_before_drawing() {
        let path = Path::new("huge.png");
        let error = render(path, (MAX_SIDE + 1, 10), |_| Ok(())).unwrap_err();
        assert_eq!(
            error.to_string(),
            "huge.png: the picture would be 8193x10 pixels, but each side must be between 1 and \
             8192: draw fewer or smaller items"
        );
        assert!(!path.exists());
    }

    #[test]
    fn numbers_keep_their_size_readable() {
        assert_eq!(number(1.76021, 4), "1.7602");
        assert_eq!(number(0.0, 3), "0.000");
        assert_eq!(number(-0.95, 3), "-0.950");
        assert_eq!(number(1.5e-5, 4), "1.5000e-5");
        assert_eq!(number(2.5e6, 3), "2.500e6");
        assert_eq!(count_of(1, "value is", "values are"), "1 value is");
        assert_eq!(count_of(3, "value is", "values are"), "3 values are");
    }
}
