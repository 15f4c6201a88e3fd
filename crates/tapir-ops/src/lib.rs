//! tapir's built-in ops, one file each: its math, hyperparameters, shape rule, forward,
//! backward and tests. [`builtin_registry`] names them all.
//!
//! Every op here uses only `tapir-core`'s public API, so a user's op is exactly as
//! first-class as these. Start reading at `relu.rs` (the smallest), then `conv2d`.

#![forbid(unsafe_code)]

pub mod broadcast;
pub mod shape;

pub mod add;
pub mod concat;
pub mod flatten;
pub mod mean;
pub mod mul;
pub mod relu;
pub mod reshape;
pub mod sum;

pub use add::Add;
pub use concat::Concat;
pub use flatten::Flatten;
pub use mean::Mean;
pub use mul::Mul;
pub use relu::Relu;
pub use reshape::Reshape;
pub use sum::Sum;

use tapir_core::Registry;

/// Registers every built-in op in `registry`.
pub fn register_builtins(registry: &mut Registry) -> tapir_core::Result<()> {
    registry.register::<Add>()?;
    registry.register::<Concat>()?;
    registry.register::<Flatten>()?;
    registry.register::<Mean>()?;
    registry.register::<Mul>()?;
    registry.register::<Relu>()?;
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
        assert!(registry.names().count() > 0);
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
