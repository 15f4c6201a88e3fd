//! The one error type of the data module: each names the file or value, what is wrong with it,
//! and how to fix it.

use std::path::PathBuf;

/// How to repair a damaged data file; said by every error about a file's contents.
pub(crate) const RESTORE: &str = "restore the file from the repository's data/animal-mnist/ \
                                  (its README gives each file's sha256)";

/// What went wrong while reading the data or building a data set.
#[derive(Debug, thiserror::Error)]
pub enum DataError {
    /// A data file is missing, unreadable, or not the IDX file expected.
    #[error("{}: {message}; {help}", .path.display())]
    File {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        message: String,
        /// How to fix it.
        help: String,
    },
    /// The images file and the labels file hold different numbers of samples.
    #[error(
        "{} holds {images} images but {} holds {labels} labels; pass the images and labels \
         files of one data set",
        .images_path.display(),
        .labels_path.display()
    )]
    CountMismatch {
        /// The images file.
        images_path: PathBuf,
        /// How many images it holds.
        images: usize,
        /// The labels file.
        labels_path: PathBuf,
        /// How many labels it holds.
        labels: usize,
    },
    /// A label outside the ten animal-mnist classes.
    #[error(
        "{}: label {value} at index {index} is not an animal-mnist class (0 to 9); {RESTORE}",
        .path.display()
    )]
    Label {
        /// The labels file.
        path: PathBuf,
        /// The sample's position in the file, from 0.
        index: usize,
        /// The label found.
        value: u8,
    },
    /// A list of class names that is not exactly two distinct animal names.
    #[error("class list \"{list}\": {message}")]
    Classes {
        /// The list as given.
        list: String,
        /// What is wrong, and how to fix it.
        message: String,
    },
    /// Data or a layout that cannot be made: arrays that disagree, too few samples of a
    /// class, a silhouette that leaves the canvas...
    #[error("{0}")]
    Invalid(String),
    /// A batch size of 0.
    #[error("batch size 0: a batch needs at least one sample; pass a batch size of 1 or more")]
    BatchSize,
}

impl DataError {
    /// Shorthand for [`DataError::File`].
    pub(crate) fn file(
        path: impl Into<PathBuf>,
        message: impl Into<String>,
        help: impl Into<String>,
    ) -> Self {
        DataError::File {
            path: path.into(),
            message: message.into(),
            help: help.into(),
        }
    }
}
