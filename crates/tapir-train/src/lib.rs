//! tapir's training crate: [`data`] reads the animal-mnist silhouettes (IDX files), names
//! the classes, builds the translation-invariance experiment's layouts and batches them;
//! [`optim`] holds SGD and Adam; [`train`] the loop that fits a network and evaluates it;
//! [`checkpoint`] and [`run`] make `tapir train` (resumable, bit for bit); [`demo`] is
//! `tapir demo`, the experiment end to end; [`files`] writes files a reader never sees half of.
//!
//! Start reading at [`data`], then [`train::fit`], then [`demo::run`].

#![forbid(unsafe_code)]

pub mod checkpoint;
pub mod data;
pub mod demo;
mod error;
pub mod files;
pub mod optim;
pub mod run;
pub mod train;

pub use error::{Result, TrainError};
