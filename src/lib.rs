//! tapir: tape-based reverse-mode automatic differentiation over computation graphs.
//!
//! This crate re-exports the workspace's crates under one name: [`core`] (tensors, the `Op`
//! trait, the tape, the gradient checker) and [`ops`] (the built-in ops and their registry).

#![forbid(unsafe_code)]

pub use tapir_core as core;
pub use tapir_ops as ops;
