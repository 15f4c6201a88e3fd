//! What the tests of every picture share: a scratch folder and a look at the PNG written.

use std::path::Path;

use image::RgbImage;
use plotters::style::RGBColor;

/// A fresh folder, removed when dropped.
pub(crate) fn scratch() -> tempfile::TempDir {
    tempfile::tempdir().expect("a temporary folder")
}

/// The picture at `path`, decoded as the PNG it must be.
pub(crate) fn decode(path: &Path) -> RgbImage {
    let bytes = std::fs::read(path).expect("the picture was written");
    assert_eq!(
        &bytes[..8],
        b"\x89PNG\r\n\x1a\n",
        "{} is not a PNG file",
        path.display()
    );
    image::load_from_memory_with_format(&bytes, image::ImageFormat::Png)
        .expect("the PNG decodes")
        .to_rgb8()
}

/// How many pixels have exactly `colour`.
pub(crate) fn count(picture: &RgbImage, colour: RGBColor) -> usize {
    let wanted = [colour.0, colour.1, colour.2];
    picture.pixels().filter(|p| p.0 == wanted).count()
}
