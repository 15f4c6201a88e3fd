//! tapir: tape-based reverse-mode automatic differentiation over computation graphs.
//!
//! This crate re-exports the workspace's crates under one name: [`core`] (the `Op` trait, the
//! tape, the gradient checker), [`ops`] (the built-in ops and their registry), [`graph`]
//! (network files, validation, execution), [`train`] (data, optimizers, training, the demo)
//! and [`plots`] (the demo's pictures). The `tapir` binary is `tapir-cli`.

#![forbid(unsafe_code)]

pub use tapir_core as core;
pub use tapir_graph as graph;
pub use tapir_ops as ops;
pub use tapir_plots as plots;
pub use tapir_train as train;
