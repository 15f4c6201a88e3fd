//! The training crate's error: a data problem, a network problem, or a file of the run.

use std::path::PathBuf;

use crate::data::DataError;

/// What stopped a training run.
#[derive(Debug, thiserror::Error)]
pub enum TrainError {
    /// Reading or laying out the data.
    #[error(transparent)]
    Data(#[from] DataError),
    /// Running the network, or a hyperparameter out of range.
    #[error(transparent)]
    Core(#[from] tapir_core::Error),
    /// Loading a network file (rendered with its location).
    #[error("{0}")]
    Graph(String),
    /// A network that does not fit the data or the training (no loss, wrong input shape...).
    #[error("{0}")]
    Unfit(String),
    /// A tensor file (its error names the file).
    #[error(transparent)]
    Tensor(#[from] tapir_graph::TensorError),
    /// Reading or writing a file of the run (checkpoint, metrics, parameters, pictures).
    #[error("{}: {message}", .path.display())]
    File {
        /// The file.
        path: PathBuf,
        /// What went wrong, and how to fix it.
        message: String,
    },
}

impl From<tapir_graph::GraphError> for TrainError {
    fn from(error: tapir_graph::GraphError) -> Self {
        TrainError::Graph(error.render())
    }
}

impl TrainError {
    /// A file error for `path`.
    pub fn file(path: impl Into<PathBuf>, message: impl Into<String>) -> Self {
        TrainError::File {
            path: path.into(),
            message: message.into(),
        }
    }
}

/// The result type of the training crate.
pub type Result<T, E = TrainError> = std::result::Result<T, E>;
