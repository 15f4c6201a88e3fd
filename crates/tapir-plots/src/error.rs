//! The one error type of this crate: which picture (its path) and what went wrong there.

use std::path::PathBuf;

/// What kind of problem a [`PlotError`] is; callers and tests match on it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PlotErrorKind {
    /// The data cannot be drawn: nothing to draw, mismatched counts, a wrong file name.
    Input,
    /// The bundled font could not be registered.
    Font,
    /// Drawing into the in-memory picture failed.
    Draw,
    /// The finished picture could not be written to its file.
    Write,
}

/// A picture that could not be drawn or saved, with its path and the reason.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}: {message}", path.display())]
pub struct PlotError {
    /// The picture's file.
    pub path: PathBuf,
    /// What kind of problem.
    pub kind: PlotErrorKind,
    /// What is wrong and how to fix it.
    pub message: String,
}

impl PlotError {
    pub(crate) fn new(
        path: impl Into<PathBuf>,
        kind: PlotErrorKind,
        message: impl Into<String>,
    ) -> Self {
        PlotError {
            path: path.into(),
            kind,
            message: message.into(),
        }
    }

    /// Bad input, the most common case.
    pub(crate) fn input(path: impl Into<PathBuf>, message: impl Into<String>) -> Self {
        PlotError::new(path, PlotErrorKind::Input, message)
    }
}
