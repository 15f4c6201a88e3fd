//! tapir's built-in ops, one file each: its math, hyperparameters, shape rule, forward,
//! backward and tests. [`builtin_registry`] names them all.
//!
//! Every op here uses only `tapir-core`'s public API, so a user's op is exactly as
//! first-class as these. Start reading at `relu.rs` (the smallest), then `conv2d`.

#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod broadcast;
mod elementwise;
mod pooling;
pub mod shape;

// Layers with parameters
pub mod conv2d;
pub mod dense;

// Pooling
pub mod avg_pool2d;
pub mod global_avg_pool;
pub mod global_max_pool;
pub mod max_pool2d;

// Activations
pub mod gelu;
pub mod leaky_relu;
pub mod relu;
pub mod sigmoid;
pub mod tanh;

// Softmax and losses
pub mod log_softmax;
pub mod mse;
pub mod softmax;
pub mod softmax_cross_entropy;

// Plumbing
pub mod add;
pub mod concat;
pub mod flatten;
pub mod matmul;
pub mod mean;
pub mod mul;
pub mod reshape;
pub mod sum;

pub use add::Add;
pub use avg_pool2d::AvgPool2d;
pub use concat::Concat;
pub use conv2d::Conv2d;
pub use dense::Dense;
pub use flatten::Flatten;
pub use gelu::Gelu;
pub use global_avg_pool::GlobalAvgPool;
pub use global_max_pool::GlobalMaxPool;
pub use leaky_relu::LeakyRelu;
pub use log_softmax::LogSoftmax;
pub use matmul::Matmul;
pub use max_pool2d::MaxPool2d;
pub use mean::Mean;
pub use mse::Mse;
pub use mul::Mul;
pub use relu::{AfterRelu, AfterReluOp, Relu};
pub use reshape::Reshape;
pub use sigmoid::Sigmoid;
pub use softmax::Softmax;
pub use softmax_cross_entropy::SoftmaxCrossEntropy;
pub use sum::Sum;
pub use tanh::Tanh;

use tapir_core::Registry;

/// Registers every built-in op in `registry`.
pub fn register_builtins(registry: &mut Registry) -> tapir_core::Result<()> {
    registry.register::<Conv2d>()?;
    registry.register::<Dense>()?;
    registry.register::<AvgPool2d>()?;
    registry.register::<GlobalAvgPool>()?;
    registry.register::<GlobalMaxPool>()?;
    registry.register::<MaxPool2d>()?;
    registry.register::<Gelu>()?;
    registry.register::<LeakyRelu>()?;
    registry.register::<Relu>()?;
    registry.register::<Sigmoid>()?;
    registry.register::<Tanh>()?;
    registry.register::<LogSoftmax>()?;
    registry.register::<Mse>()?;
    registry.register::<Softmax>()?;
    registry.register::<SoftmaxCrossEntropy>()?;
    registry.register::<Add>()?;
    registry.register::<Concat>()?;
    registry.register::<Flatten>()?;
    registry.register::<Matmul>()?;
    registry.register::<Mean>()?;
    registry.register::<Mul>()?;
    registry.register::<Reshape>()?;
    registry.register::<Sum>()?;
    Ok(())
}

/// A registry holding every built-in op.
pub fn builtin_registry() -> Registry {
    let mut registry = Registry::new();
    // Safe: the registry is empty and the built-in names are distinct (a test checks it).
    register_builtins(&mut registry).expect("BUG: built-in op names collide");
    registry
}

#[cfg(test)]
mod tests {
    #[test]
    fn builtins_register_without_collisions() {
        let mut registry = tapir_core::Registry::new();
        assert!(super::register_builtins(&mut registry).is_ok());
        let names: Vec<&str> = registry.names().collect();
        assert_eq!(
            names,
            [
                "add",
                "avg_pool2d",
                "concat",
                "conv2d",
                "dense",
                "flatten",
                "gelu",
                "global_avg_pool",
                "global_max_pool",
                "leaky_relu",
                "log_softmax",
                "matmul",
                "max_pool2d",
                "mean",
                "mse",
                "mul",
                "relu",
                "reshape",
                "sigmoid",
                "softmax",
                "softmax_cross_entropy",
                "sum",
                "tanh",
            ]
        );
        // A second registration of any of them is refused.
        assert_eq!(
            super::register_builtins(&mut registry)
                .unwrap_err()
                .to_string(),
            "registry: an op named \"conv2d\" is registered already"
        );
    }

    #[test]
    fn flops_saturate_instead_of_overflowing() {
        let registry = super::builtin_registry();
        let huge: &[usize] = &[1, 3, usize::MAX / 2, 8];
        for (name, hyperparameters) in [
            ("gelu", "()"),
            ("global_avg_pool", "()"),
            ("global_max_pool", "()"),
            ("leaky_relu", "()"),
            ("log_softmax", "()"),
            ("mean", "(axes: [1])"),
            ("mse", "()"),
            ("relu", "()"),
            ("sigmoid", "()"),
            ("softmax", "()"),
            ("sum", "(axes: [1])"),
            ("tanh", "()"),
        ] {
            let op = registry
                .get(name)
                .and_then(|entry| entry.build_f64(hyperparameters).ok())
                .unwrap_or_else(|| panic!("{name} builds"));
            let inputs = if name == "mse" {
                vec![huge, huge]
            } else {
                vec![huge]
            };
            assert_eq!(op.flops(&inputs), u64::MAX, "{name}");
        }
    }

    #[test]
    fn ops_build_from_hyperparameter_text() {
        let registry = super::builtin_registry();
        let relu = registry.get("relu").expect("relu is built in");
        assert_eq!(relu.build_f32("()").unwrap().name(), "relu");
        let err = relu.build_f64("(slope: 2)").unwrap_err().to_string();
        assert_eq!(
            err,
            "relu: hyperparameters at line 1, column 1: Expected unit"
        );
    }
}
