//! tapir's training crate. [`data`] reads the animal-mnist silhouettes (IDX files), names
//! the classes, builds the translation-invariance experiment's layouts and batches them.
//!
//! Start reading at [`data`].

#![forbid(unsafe_code)]

pub mod data;
