//! tapir's core: the [`Float`] element types, the [`Op`] trait every operation implements,
//! the [`Tape`] that records ops and runs backward, the [`Registry`] that names op types, and
//! the [`gradcheck`] module that proves gradients against finite differences.
//!
//! Start reading at [`Op`] (its doc holds a complete op), then [`Tape`].
//! This crate knows no particular op: those live in `tapir-ops`, which uses only this
//! crate's public API, exactly as a user's op would.

#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod buffers;
mod error;
mod float;
mod gemm;
pub mod gradcheck;
pub mod lanes;
mod limits;
mod op;
mod pool;
mod registry;
mod tape;

pub use error::{Arity, Error, Result};
pub use float::Float;
pub use gemm::gemm;
pub use gradcheck::{CaseInput, Gen, GradcheckCase};
pub use limits::{MAX_ELEMENTS, allocatable_elements};
pub use op::{BackwardCx, Op, OpType, ParamRole, ParamSpec};
pub use pool::on_pool;
pub use registry::{Registry, RegistryEntry};
pub use tape::{Gradients, Schedule, Tape, Var};

/// Re-exported so that ops and users name one `ndarray`.
pub use ndarray;
