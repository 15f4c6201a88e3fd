//! The animal-mnist data set: 28x28 silhouettes and their labels, read from a folder holding
//! its two IDX files.

use std::path::{Path, PathBuf};

use ndarray::{Array3, ArrayView2, ArrayView3, Axis};

use super::classes::CLASS_NAMES;
use super::error::{DataError, RESTORE};
use super::idx;

/// The images file's name in a data folder.
pub const IMAGES_FILE: &str = "images-idx3-ubyte.gz";
/// The labels file's name in a data folder.
pub const LABELS_FILE: &str = "labels-idx1-ubyte.gz";
/// The side of a silhouette, in pixels.
pub const SIDE: usize = 28;

/// The repository's `data/animal-mnist/` (see [`crate::files::workspace_path`]).
pub fn default_data_dir() -> PathBuf {
    crate::files::workspace_path("data/animal-mnist")
}

/// Silhouettes `[count, 28, 28]` (0 background, up to 255 inside) and their labels (0 to 9).
#[derive(Debug, Clone, PartialEq)]
pub struct AnimalMnist {
    images: Array3<u8>,
    labels: Vec<u8>,
}

impl AnimalMnist {
    /// Reads [`IMAGES_FILE`] and [`LABELS_FILE`] from `dir`.
    pub fn load(dir: &Path) -> Result<Self, DataError> {
        Self::from_files(&dir.join(IMAGES_FILE), &dir.join(LABELS_FILE))
    }

    /// Reads the data bundled with the repository, from [`default_data_dir`].
    pub fn load_default() -> Result<Self, DataError> {
        Self::load(&default_data_dir())
    }

    /// Reads an IDX images file and the IDX labels file that goes with it.
    pub fn from_files(images_path: &Path, labels_path: &Path) -> Result<Self, DataError> {
        let images = idx::read_images(images_path)?;
        let labels = idx::read_labels(labels_path)?;
        let (count, rows, cols) = images.dim();
        if (rows, cols) != (SIDE, SIDE) {
            return Err(DataError::file(
                images_path,
                format!("images are {rows}x{cols}, animal-mnist silhouettes are {SIDE}x{SIDE}"),
                RESTORE,
            ));
        }
        if count != labels.len() {
            return Err(DataError::CountMismatch {
                images_path: images_path.to_path_buf(),
                images: count,
                labels_path: labels_path.to_path_buf(),
                labels: labels.len(),
            });
        }
        if let Some((index, &value)) = labels.iter().enumerate().find(|(_, l)| !is_class(**l)) {
            return Err(DataError::Label {
                path: labels_path.to_path_buf(),
                index,
                value,
            });
        }
        Ok(AnimalMnist { images, labels })
    }

    /// Data made in memory (small test sets, say), checked like the files.
    pub fn from_arrays(images: Array3<u8>, labels: Vec<u8>) -> Result<Self, DataError> {
        let (count, rows, cols) = images.dim();
        if (rows, cols) != (SIDE, SIDE) {
            return Err(DataError::Invalid(format!(
                "images are {rows}x{cols}, animal-mnist silhouettes are {SIDE}x{SIDE}"
            )));
        }
        if count != labels.len() {
            return Err(DataError::Invalid(format!(
                "{count} images but {} labels; give one label per image",
                labels.len()
            )));
        }
        if let Some((index, value)) = labels.iter().enumerate().find(|(_, l)| !is_class(**l)) {
            return Err(DataError::Invalid(format!(
                "label {value} at index {index} is not an animal-mnist class (0 to 9)"
            )));
        }
        Ok(AnimalMnist { images, labels })
    }

    /// All silhouettes, `[count, 28, 28]`.
    pub fn images(&self) -> ArrayView3<'_, u8> {
        self.images.view()
    }

    /// One silhouette, `[28, 28]`, if `index` is in range.
    pub fn image(&self, index: usize) -> Option<ArrayView2<'_, u8>> {
        (index < self.len()).then(|| self.images.index_axis(Axis(0), index))
    }

    /// All labels, one per silhouette.
    pub fn labels(&self) -> &[u8] {
        &self.labels
    }

    /// How many samples.
    pub fn len(&self) -> usize {
        self.labels.len()
    }

    /// Whether there are no samples.
    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }

    /// The positions of the samples of one class, in file order.
    pub fn indices_of(&self, label: u8) -> Vec<usize> {
        (0..self.len())
            .filter(|&i| self.labels[i] == label)
            .collect()
    }

    /// How many samples each class has, indexed by label.
    pub fn class_counts(&self) -> [usize; CLASS_NAMES.len()] {
        let mut counts = [0; CLASS_NAMES.len()];
        for &label in &self.labels {
            counts[usize::from(label)] += 1;
        }
        counts
    }
}

fn is_class(label: u8) -> bool {
    usize::from(label) < CLASS_NAMES.len()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn error(images: Array3<u8>, labels: Vec<u8>) -> String {
        AnimalMnist::from_arrays(images, labels)
            .unwrap_err()
            .to_string()
    }

    #[test]
    fn arrays_checked_like_files() {
        assert_eq!(
            error(Array3::zeros((2, 28, 27)), vec![0, 1]),
            "images are 28x27, animal-mnist silhouettes are 28x28"
        );
        assert_eq!(
            error(Array3::zeros((2, 28, 28)), vec![0]),
            "2 images but 1 labels; give one label per image"
        );
        assert_eq!(
            error(Array3::zeros((2, 28, 28)), vec![0, 11]),
            "label 11 at index 1 is not an animal-mnist class (0 to 9)"
        );
    }

    #[test]
    fn counts_and_indices() {
        let data = AnimalMnist::from_arrays(Array3::zeros((4, 28, 28)), vec![2, 4, 2, 9]).unwrap();
        assert_eq!(data.len(), 4);
        assert_eq!(data.indices_of(2), [0, 2]);
        assert_eq!(data.class_counts(), [0, 0, 2, 0, 1, 0, 0, 0, 0, 1]);
        assert!(data.image(3).is_some());
        assert!(data.image(4).is_none());
    }
}
