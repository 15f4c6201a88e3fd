//! tapir's networks as RON files: [`Graph::load`] parses a file and checks it completely
//! (names, ops, hyperparameters, cycles, shapes, the batch axis) into a validated [`Graph`],
//! whose every error is located in the file; a [`Network`] runs it, independent nodes side by
//! side. Parameters, inputs and gradients travel as safetensors files ([`TensorFile`]);
//! [`Graph::profile`] times a training step node by node.
//!
//! Start reading at `schema.rs` (the format), then `load.rs` (the checks), then `exec.rs`.
//! This crate knows ops only through the [`tapir_core::Registry`]: a user's op registered
//! there is named in a file exactly like a built-in one.
//!
//! `graphs/README.md` documents the file format and every built-in op, with each
//! hyperparameter, its default and its valid range.
//!
//! # Adding an op
//!
//! 1. Write a type for it and implement [`tapir_core::Op`] (the shape rule, forward and
//!    backward, generic over the element type) and [`tapir_core::OpType`] (its registered
//!    name and its gradient-check cases); derive `serde::Deserialize` for its hyperparameters.
//!    The doc of [`tapir_core::Op`] holds a complete op.
//! 2. Register it next to the built-ins: `tapir_ops::register_builtins`, then
//!    [`Registry::register`](tapir_core::Registry::register).
//! 3. Prove its gradient: run each of its [`GradcheckCase`](tapir_core::GradcheckCase)s with
//!    the same checker as the built-ins, `case.run(&Config::default())`.
//! 4. Load networks with that registry. A file names the op in CamelCase, its registered name
//!    `square` as `Square` (as `MaxPool2d` names `max_pool2d`), and writes its hyperparameters
//!    as the fields of its `Deserialize` struct: `Square`, or, for the example's Swish,
//!    `Swish(beta: 1.5)`.
//!
//! ```
//! # use ndarray::{ArrayD, ArrayViewD};
//! # use tapir_core::{Arity, BackwardCx, CaseInput, Float, Gen, GradcheckCase, Op, OpType, Result};
//! # /// `y = x^2`; `dL/dx = 2 x dL/dy`.
//! # #[derive(Debug, Clone, serde::Deserialize)]
//! # struct Square;
//! # impl<F: Float> Op<F> for Square {
//! #     fn name(&self) -> &'static str { "square" }
//! #     fn arity(&self) -> Arity { Arity::Exactly(1) }
//! #     fn output_shape(&self, inputs: &[&[usize]]) -> Result<Vec<usize>> {
//! #         tapir_ops::shape::unary("square", inputs)
//! #     }
//! #     fn forward(&self, inputs: &[ArrayViewD<F>]) -> Result<ArrayD<F>> {
//! #         Ok(inputs[0].mapv(|x| x * x))
//! #     }
//! #     fn backward(&self, cx: &BackwardCx<F>) -> Result<Vec<Option<ArrayD<F>>>> {
//! #         let two = F::from_f64(2.0);
//! #         Ok(vec![Some(&cx.inputs[0].mapv(|x| two * x) * &cx.output_grad)])
//! #     }
//! # }
//! # impl OpType for Square {
//! #     const NAME: &'static str = "square";
//! #     fn gradcheck_cases() -> Vec<GradcheckCase> {
//! #         vec![GradcheckCase::new("3x4", Square, vec![CaseInput::new("x", &[3, 4], Gen::uniform())])]
//! #     }
//! # }
//! use tapir_core::{Registry, gradcheck::Config};
//! use tapir_graph::Graph;
//!
//! let mut registry = Registry::new();
//! tapir_ops::register_builtins(&mut registry)?;
//! registry.register::<Square>()?;
//!
//! for case in Square::gradcheck_cases() {
//!     assert!(case.run(&Config::default())?.passed());
//! }
//!
//! let text = r#"Network(
//!     inputs: { "x": [4] },
//!     nodes: {
//!         "hidden":  (op: Dense(units: 8), input: "x"),
//!         "squared": (op: Square, input: "hidden"),
//!         "y":       (op: Dense(units: 1), input: "squared"),
//!     },
//!     outputs: ["y"],
//! )"#;
//! let graph = Graph::parse("square.ron", text, &registry).map_err(|e| e.render())?;
//! assert_eq!(graph.node("squared").map(|n| n.op), Some("square"));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! `examples/custom_op.rs` in the repository does every step for a real op, Swish, with its
//! math, and runs a network that uses it forward and backward:
//! `cargo run --release --example custom_op`.

#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod check;
mod dot;
mod error;
mod exec;
mod graph;
mod load;
mod profile;
mod schema;
mod summary;
mod table;
mod tensors;

pub use check::NetworkCheck;
pub use error::{ErrorKind, GraphError};
pub use exec::{Forward, Fusion, LossGrads, Network, NodeTiming, Params};
pub use graph::{Graph, GraphInput, InputKind, Node, Param, ValueId};
pub use load::{LABELS_INPUT, LOSS_NODE, camel_case, snake_case};
pub use profile::{NodeProfile, Profile, ProfileConfig};
pub use schema::{Init, InitSpec, LossSpec, NetworkFile, NodeSpec};
pub use summary::group_digits;
pub use tensors::{
    Dtype, Mismatch, Problem, TensorError, TensorFile, save_tensors, save_tensors_with_metadata,
};
