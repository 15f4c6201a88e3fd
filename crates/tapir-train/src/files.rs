//! Files of a run, written so that a reader never sees half of one.

use std::path::{Path, PathBuf};

use crate::error::{Result, TrainError};

/// Writes `bytes` to `<path>.partial`, then renames it over `path`: a reader never sees half a
/// file, and a failed write leaves no temporary behind.
pub fn write_atomically(path: &Path, bytes: &[u8]) -> Result<()> {
    let mut temporary = path.as_os_str().to_owned();
    temporary.push(".partial");
    let temporary = PathBuf::from(temporary);
    if let Err(e) = std::fs::write(&temporary, bytes) {
        let _ = std::fs::remove_file(&temporary);
        return Err(TrainError::file(path, format!("cannot write: {e}")));
    }
    std::fs::rename(&temporary, path).map_err(|e| {
        TrainError::file(
            path,
            format!("cannot move the finished file into place: {e}"),
        )
    })
}

/// `relative` inside the tapir workspace: the checkout this crate was built from when it
/// still exists there (so `cargo run` works from any folder), else the current folder (a
/// binary copied elsewhere and run from a checkout).
pub fn workspace_path(relative: &str) -> PathBuf {
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
    // The crate lives at `<workspace>/crates/tapir-train`.
    let built_from = manifest
        .ancestors()
        .nth(2)
        .map_or_else(|| manifest.join("../.."), Path::to_path_buf);
    let candidate = built_from.join(relative);
    if candidate.exists() {
        candidate
    } else {
        PathBuf::from(relative)
    }
}
