//! tapir's training crate: [`data`] reads the animal-mnist silhouettes (IDX files), names
//! the classes, builds the translation-invariance experiment's layouts and batches them;
//! [`optim`] holds SGD and Adam; [`train`] the loop that fits a network and evaluates it.
//!
//! Start reading at [`data`], then [`train::fit`].

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
