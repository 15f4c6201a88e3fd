//! IDX files, the MNIST format: a big-endian header (magic number, then one `u32` size per
//! dimension) followed by the values, here unsigned bytes in row-major order. A file is read
//! gzip-compressed or plain, whichever its first two bytes say, whatever its name.

use std::fs;
use std::io::{self, Read};
use std::path::Path;

use flate2::read::MultiGzDecoder;
use ndarray::Array3;

use super::error::{DataError, RESTORE};

/// The magic number of an IDX file of unsigned-byte images: type 0x08, 3 dimensions.
pub const IMAGES_MAGIC: u32 = 0x0000_0803;
/// The magic number of an IDX file of unsigned-byte labels: type 0x08, 1 dimension.
pub const LABELS_MAGIC: u32 = 0x0000_0801;

/// The first two bytes of every gzip stream.
const GZIP_MAGIC: [u8; 2] = [0x1f, 0x8b];

/// What a file is expected to hold; its errors say it.
struct Expected {
    what: &'static str,
    magic: u32,
    /// Names of the header's sizes, for the truncated-header message.
    sizes: &'static str,
}

const IMAGES: Expected = Expected {
    what: "IDX images",
    magic: IMAGES_MAGIC,
    sizes: "magic, count, rows, cols",
};

const LABELS: Expected = Expected {
    what: "IDX labels",
    magic: LABELS_MAGIC,
    sizes: "magic, count",
};

/// Reads an IDX images file into `[count, rows, cols]` bytes.
pub fn read_images(path: &Path) -> Result<Array3<u8>, DataError> {
    let (bytes, gzipped) = read_decompressed(path)?;
    let (dims, data) = split_header(path, &bytes, gzipped, &IMAGES)?;
    // The magic number matched, so the header held three sizes.
    let [count, rows, cols] = [dims[0], dims[1], dims[2]];
    check_length(path, data.len(), &[count, rows, cols], "images")?;
    // Safe: `check_length` proved `data.len() == count * rows * cols`.
    Ok(Array3::from_shape_vec((count, rows, cols), data.to_vec())
        .expect("BUG: image bytes do not fill their checked shape"))
}

/// Reads an IDX labels file into one byte per sample.
pub fn read_labels(path: &Path) -> Result<Vec<u8>, DataError> {
    let (bytes, gzipped) = read_decompressed(path)?;
    let (dims, data) = split_header(path, &bytes, gzipped, &LABELS)?;
    check_length(path, data.len(), &[dims[0]], "labels")?;
    Ok(data.to_vec())
}

/// The file's bytes, gunzipped if they start with the gzip magic, and whether they did.
fn read_decompressed(path: &Path) -> Result<(Vec<u8>, bool), DataError> {
    let raw = fs::read(path).map_err(|e| match e.kind() {
        io::ErrorKind::NotFound => DataError::file(
            path,
            "file not found",
            "pass the folder that holds images-idx3-ubyte.gz and labels-idx1-ubyte.gz \
             (the repository ships them in data/animal-mnist/)",
        ),
        _ => DataError::file(
            path,
            format!("cannot read: {e}"),
            "check that the path names a readable file",
        ),
    })?;
    if !raw.starts_with(&GZIP_MAGIC) {
        return Ok((raw, false));
    }
    let mut out = Vec::new();
    MultiGzDecoder::new(raw.as_slice())
        .read_to_end(&mut out)
        .map_err(|e| {
            DataError::file(
                path,
                format!("gzip data is corrupt or truncated ({e})"),
                RESTORE,
            )
        })?;
    Ok((out, true))
}

/// Checks the magic number and splits the bytes into the header's sizes and the data.
fn split_header<'a>(
    path: &Path,
    bytes: &'a [u8],
    gzipped: bool,
    expected: &Expected,
) -> Result<(Vec<usize>, &'a [u8]), DataError> {
    let ndims = (expected.magic & 0xff) as usize;
    let header_len = 4 * (1 + ndims);
    let not_gzip = if is_named_gz(path) && !gzipped {
        " (the name ends in .gz but the file is not gzip-compressed)"
    } else {
        ""
    };
    let truncated = || {
        DataError::file(
            path,
            format!(
                "truncated header: {} bytes, an {} file starts with a {header_len}-byte header \
                 ({}){not_gzip}",
                bytes.len(),
                expected.what,
                expected.sizes,
            ),
            RESTORE,
        )
    };
    // The magic number first: a file of the wrong kind may be shorter than the header.
    let magic = read_u32(bytes, 0).ok_or_else(truncated)?;
    if magic != expected.magic {
        let help = match (magic, expected.magic) {
            (LABELS_MAGIC, IMAGES_MAGIC) => {
                "this is an IDX labels file: are the images and labels files swapped?"
            }
            (IMAGES_MAGIC, LABELS_MAGIC) => {
                "this is an IDX images file: are the images and labels files swapped?"
            }
            _ => RESTORE,
        };
        return Err(DataError::file(
            path,
            format!(
                "magic number 0x{magic:08x}, expected 0x{:08x} ({}: unsigned bytes, {ndims} \
                 dimension{}){not_gzip}",
                expected.magic,
                expected.what,
                if ndims == 1 { "" } else { "s" },
            ),
            help,
        ));
    }
    let dims = (1..=ndims)
        .map(|i| read_u32(bytes, 4 * i).map(|d| d as usize))
        .collect::<Option<Vec<usize>>>()
        .ok_or_else(truncated)?;
    Ok((dims, &bytes[header_len..]))
}

/// The big-endian `u32` at byte `at`, if the bytes reach that far.
fn read_u32(bytes: &[u8], at: usize) -> Option<u32> {
    let word = bytes.get(at..at.checked_add(4)?)?;
    Some(u32::from_be_bytes([word[0], word[1], word[2], word[3]]))
}

/// Checks that exactly the bytes the header promises follow it.
fn check_length(path: &Path, got: usize, dims: &[usize], what: &str) -> Result<(), DataError> {
    let expected = dims.iter().try_fold(1usize, |n, &d| n.checked_mul(d));
    if expected == Some(got) {
        return Ok(());
    }
    let shape = match dims {
        [count, rows, cols] => format!("{count} {what} of {rows}x{cols}"),
        _ => format!("{} {what}", dims[0]),
    };
    let message = match expected {
        Some(expected) if got < expected => format!(
            "truncated: the header promises {shape} ({expected} bytes), but {got} bytes follow it"
        ),
        Some(expected) => format!(
            "trailing data: the header promises {shape} ({expected} bytes), but {got} bytes \
             follow it"
        ),
        None => format!("the header promises {shape}, more bytes than memory can address"),
    };
    Err(DataError::file(path, message, RESTORE))
}

fn is_named_gz(path: &Path) -> bool {
    path.extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("gz"))
}
