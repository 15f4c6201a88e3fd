//! IDX files written to a temporary folder, good and broken: each broken one gives its error,
//! naming the file, what is wrong and how to fix it.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use flate2::Compression;
use flate2::write::GzEncoder;
use tapir_train::data::{AnimalMnist, IMAGES_FILE, LABELS_FILE, idx};

const RESTORE: &str = "restore the file from the repository's data/animal-mnist/ (its README gives each file's sha256)";

fn header(magic: u32, dims: &[u32]) -> Vec<u8> {
    std::iter::once(magic)
        .chain(dims.iter().copied())
        .flat_map(u32::to_be_bytes)
        .collect()
}

/// An images file's bytes: `count` silhouettes of `side`x`side`, pixel values counting up.
fn images_bytes(count: u32, side: u32) -> Vec<u8> {
    let mut bytes = header(idx::IMAGES_MAGIC, &[count, side, side]);
    bytes.extend((0..count * side * side).map(|i| (i % 256) as u8));
    bytes
}

fn labels_bytes(labels: &[u8]) -> Vec<u8> {
    let mut bytes = header(idx::LABELS_MAGIC, &[labels.len() as u32]);
    bytes.extend_from_slice(labels);
    bytes
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut encoder = GzEncoder::new(Vec::new(), Compression::default());
    encoder.write_all(bytes).unwrap();
    encoder.finish().unwrap()
}

/// A folder holding an images file and a labels file with these (uncompressed) contents.
fn folder(images: &[u8], labels: &[u8]) -> (tempfile::TempDir, PathBuf, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let images_path = dir.path().join(IMAGES_FILE);
    let labels_path = dir.path().join(LABELS_FILE);
    fs::write(&images_path, gzip(images)).unwrap();
    fs::write(&labels_path, gzip(labels)).unwrap();
    (dir, images_path, labels_path)
}

fn load_error(dir: &Path) -> String {
    match AnimalMnist::load(dir) {
        Ok(data) => panic!("loaded {} samples", data.len()),
        Err(e) => e.to_string(),
    }
}

#[test]
fn good_files_load_gzipped_or_plain() {
    let (dir, images_path, labels_path) = folder(&images_bytes(3, 28), &labels_bytes(&[4, 2, 9]));
    let data = AnimalMnist::load(dir.path()).unwrap();
    assert_eq!(data.images().dim(), (3, 28, 28));
    assert_eq!(data.labels(), &[4, 2, 9]);
    // Image 1's first pixel is byte 784 of the data: 784 % 256 = 16.
    assert_eq!(data.images()[[1, 0, 0]], 16);

    // The same files uncompressed, under the same names: read by content, not by name.
    fs::write(&images_path, images_bytes(3, 28)).unwrap();
    fs::write(&labels_path, labels_bytes(&[4, 2, 9])).unwrap();
    assert_eq!(AnimalMnist::load(dir.path()).unwrap(), data);
}

#[test]
fn missing_file() {
    let dir = tempfile::tempdir().unwrap();
    assert_eq!(
        load_error(dir.path()),
        format!(
            "{}: file not found; pass the folder that holds images-idx3-ubyte.gz and \
             labels-idx1-ubyte.gz (the repository ships them in data/animal-mnist/)",
            dir.path().join(IMAGES_FILE).display()
        )
    );
}

#[test]
fn wrong_magic() {
    // Labels where the images belong: the files look swapped.
    let (dir, images_path, _) = folder(&labels_bytes(&[1, 2]), &labels_bytes(&[1, 2]));
    assert_eq!(
        load_error(dir.path()),
        format!(
            "{}: magic number 0x00000801, expected 0x00000803 (IDX images: unsigned bytes, 3 \
             dimensions); this is an IDX labels file: are the images and labels files swapped?",
            images_path.display()
        )
    );

    let mut bytes = images_bytes(1, 28);
    bytes[2] = 0x0d; // float data, not bytes
    let (dir, images_path, _) = folder(&bytes, &labels_bytes(&[1]));
    assert_eq!(
        load_error(dir.path()),
        format!(
            "{}: magic number 0x00000d03, expected 0x00000803 (IDX images: unsigned bytes, 3 \
             dimensions); {RESTORE}",
            images_path.display()
        )
    );

    let (dir, _, labels_path) = folder(&images_bytes(1, 28), &images_bytes(1, 28));
    assert_eq!(
        load_error(dir.path()),
        format!(
            "{}: magic number 0x00000803, expected 0x00000801 (IDX labels: unsigned bytes, 1 \
             dimension); this is an IDX images file: are the images and labels files swapped?",
            labels_path.display()
        )
    );
}

#[test]
fn truncated_data() {
    let mut bytes = images_bytes(3, 28);
    bytes.truncate(bytes.len() - 100);
    let (dir, images_path, _) = folder(&bytes, &labels_bytes(&[1, 2, 3]));
    assert_eq!(
        load_error(dir.path()),
        format!(
            "{}: truncated: the header promises 3 images of 28x28 (2352 bytes), but 2252 bytes \
             follow it; {RESTORE}",
            images_path.display()
        )
    );

    let mut bytes = labels_bytes(&[1, 2, 3]);
    bytes.pop();
    let (dir, _, labels_path) = folder(&images_bytes(3, 28), &bytes);
    assert_eq!(
        load_error(dir.path()),
        format!(
            "{}: truncated: the header promises 3 labels (3 bytes), but 2 bytes follow it; \
             {RESTORE}",
            labels_path.display()
        )
    );
}

#[test]
fn trailing_data() {
    let mut bytes = labels_bytes(&[1, 2]);
    bytes.push(3);
    let (dir, _, labels_path) = folder(&images_bytes(2, 28), &bytes);
    assert_eq!(
        load_error(dir.path()),
        format!(
            "{}: trailing data: the header promises 2 labels (2 bytes), but 3 bytes follow it; \
             {RESTORE}",
            labels_path.display()
        )
    );
}

#[test]
fn truncated_header() {
    let (dir, images_path, _) = folder(&images_bytes(1, 28)[..7], &labels_bytes(&[1]));
    assert_eq!(
        load_error(dir.path()),
        format!(
            "{}: truncated header: 7 bytes, an IDX images file starts with a 16-byte header \
             (magic, count, rows, cols); {RESTORE}",
            images_path.display()
        )
    );
}

#[test]
fn header_sizes_that_overflow() {
    let bytes = header(idx::IMAGES_MAGIC, &[u32::MAX, u32::MAX, u32::MAX]);
    let (dir, images_path, _) = folder(&bytes, &labels_bytes(&[1]));
    // (2^32 - 1)^3 is near 2^96: beyond any usize.
    assert_eq!(
        load_error(dir.path()),
        format!(
            "{}: the header promises 4294967295 images of 4294967295x4294967295, more bytes \
             than memory can address; {RESTORE}",
            images_path.display()
        )
    );
}

#[test]
fn count_mismatch() {
    let (dir, images_path, labels_path) = folder(&images_bytes(3, 28), &labels_bytes(&[1, 2]));
    assert_eq!(
        load_error(dir.path()),
        format!(
            "{} holds 3 images but {} holds 2 labels; pass the images and labels files of one \
             data set",
            images_path.display(),
            labels_path.display()
        )
    );
}

#[test]
fn label_out_of_range() {
    let (dir, _, labels_path) = folder(&images_bytes(3, 28), &labels_bytes(&[9, 0, 10]));
    assert_eq!(
        load_error(dir.path()),
        format!(
            "{}: label 10 at index 2 is not an animal-mnist class (0 to 9); {RESTORE}",
            labels_path.display()
        )
    );
}

#[test]
fn images_not_28_by_28() {
    let (dir, images_path, _) = folder(&images_bytes(2, 14), &labels_bytes(&[1, 2]));
    assert_eq!(
        load_error(dir.path()),
        format!(
            "{}: images are 14x14, animal-mnist silhouettes are 28x28; {RESTORE}",
            images_path.display()
        )
    );
}

#[test]
fn garbage_named_gz() {
    let dir = tempfile::tempdir().unwrap();
    let images_path = dir.path().join(IMAGES_FILE);
    fs::write(&images_path, b"<html>404 Not Found</html>").unwrap();
    // "<htm" read as a big-endian u32 is 0x3c68746d.
    assert_eq!(
        load_error(dir.path()),
        format!(
            "{}: magic number 0x3c68746d, expected 0x00000803 (IDX images: unsigned bytes, 3 \
             dimensions) (the name ends in .gz but the file is not gzip-compressed); {RESTORE}",
            images_path.display()
        )
    );
}

#[test]
fn corrupt_gzip() {
    let dir = tempfile::tempdir().unwrap();
    let labels_path = dir.path().join(LABELS_FILE);
    let compressed = gzip(&labels_bytes(&[3; 1000]));

    fs::write(&labels_path, &compressed[..compressed.len() / 2]).unwrap();
    assert_eq!(
        idx::read_labels(&labels_path).unwrap_err().to_string(),
        format!(
            "{}: gzip data is corrupt or truncated (incomplete deflate stream); {RESTORE}",
            labels_path.display()
        )
    );

    // A flipped bit in the stored checksum.
    let mut flipped = compressed.clone();
    let crc = flipped.len() - 8;
    flipped[crc] ^= 1;
    fs::write(&labels_path, &flipped).unwrap();
    assert_eq!(
        idx::read_labels(&labels_path).unwrap_err().to_string(),
        format!(
            "{}: gzip data is corrupt or truncated (corrupt gzip stream does not have a matching checksum); {RESTORE}",
            labels_path.display()
        )
    );
}
