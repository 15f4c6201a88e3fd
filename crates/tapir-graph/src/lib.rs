//! tapir's networks as RON files: [`Graph::load`] parses a file and checks it completely
//! (names, ops, hyperparameters, cycles, shapes) into a validated [`Graph`], whose every
//! error is located in the file; a [`Network`] runs it, independent nodes side by side.
//! Parameters, inputs and gradients travel as safetensors files ([`TensorFile`]).
//!
//! Start reading at `schema.rs` (the format), then `load.rs` (the checks), then `exec.rs`.
//! This crate knows ops only through the [`tapir_core::Registry`]: a user's op registered
//! there is named in a file exactly like a built-in one.

#![forbid(unsafe_code)]

mod check;
mod dot;
mod error;
mod exec;
mod graph;
mod load;
mod schema;
mod summary;
mod tensors;

pub use check::NetworkCheck;
pub use error::{ErrorKind, GraphError};
pub use exec::{Forward, LossGrads, Network, NodeTiming, Params};
pub use graph::{Graph, GraphInput, InputKind, Node, Param, ValueId};
pub use load::{LABELS_INPUT, LOSS_NODE, camel_case, snake_case};
pub use schema::{Init, InitSpec, LossSpec, NetworkFile, NodeSpec};
pub use summary::group_digits;
pub use tensors::{Dtype, Mismatch, Problem, TensorError, TensorFile, save_tensors};
