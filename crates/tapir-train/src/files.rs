//! Files of a run, written so that a reader never sees half of one.

use std::path::Path;

use crate::error::{Result, TrainError};

/// Writes `bytes` to a temporary file beside `path`, then renames it over `path`: a reader
/// never sees half a file.
pub fn write_atomically(path: &Path, bytes: &[u8]) -> Result<()> {
    let temporary = path.with_extension("partial");
    std::fs::write(&temporary, bytes)
        .map_err(|e| TrainError::file(&temporary, format!("cannot write: {e}")))?;
    std::fs::rename(&temporary, path).map_err(|e| {
        TrainError::file(
            path,
            format!("cannot move the finished file into place: {e}"),
        )
    })
}
