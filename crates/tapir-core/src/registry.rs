//! The registry: op types by name, for network files, the CLI and the test suite.

use std::any::{Any, TypeId};
use std::collections::BTreeMap;
use std::sync::Arc;

use crate::error::{Error, Result};
use crate::float::Float;
use crate::gradcheck::GradcheckCase;
use crate::op::{Op, OpType};

/// Op types by name. Built-in and user-written ops join it the same way, with
/// [`Registry::register`].
#[derive(Debug, Clone, Default)]
pub struct Registry {
    entries: BTreeMap<&'static str, RegistryEntry>,
}

/// What the registry knows of one op type.
#[derive(Debug, Clone, Copy)]
pub struct RegistryEntry {
    /// The op's name.
    pub name: &'static str,
    build_f32: fn(&str) -> Result<Arc<dyn Op<f32>>>,
    build_f64: fn(&str) -> Result<Arc<dyn Op<f64>>>,
    /// The op's gradient-check cases.
    pub gradcheck_cases: fn() -> Vec<GradcheckCase>,
}

impl Registry {
    /// An empty registry.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds op type `O` under [`OpType::NAME`]; a name can be registered once.
    pub fn register<O: OpType>(&mut self) -> Result<&mut Self> {
        if self.entries.contains_key(O::NAME) {
            return Err(Error::Registry(format!(
                "an op named \"{}\" is registered already",
                O::NAME
            )));
        }
        self.entries.insert(
            O::NAME,
            RegistryEntry {
                name: O::NAME,
                build_f32: |hyper| Ok(Arc::new(deserialize::<O>(hyper)?)),
                build_f64: |hyper| Ok(Arc::new(deserialize::<O>(hyper)?)),
                gradcheck_cases: O::gradcheck_cases,
            },
        );
        Ok(self)
    }

    /// The entry for `name`, if registered.
    pub fn get(&self, name: &str) -> Option<&RegistryEntry> {
        self.entries.get(name)
    }

    /// Every registered name, sorted.
    pub fn names(&self) -> impl Iterator<Item = &'static str> + '_ {
        self.entries.keys().copied()
    }

    /// Every entry, sorted by name.
    pub fn entries(&self) -> impl Iterator<Item = &RegistryEntry> + '_ {
        self.entries.values()
    }
}

impl RegistryEntry {
    /// Builds the op in `f32` from its hyperparameters as RON text: a struct without its
    /// name (`"(kernel: 2, stride: 1)"`), or `"()"` for an op without hyperparameters.
    pub fn build_f32(&self, hyperparameters: &str) -> Result<Arc<dyn Op<f32>>> {
        (self.build_f32)(hyperparameters)
    }

    /// Builds the op in either precision (see [`Self::build_f32`]).
    pub fn build<F: Float>(&self, hyperparameters: &str) -> Result<Arc<dyn Op<F>>> {
        // `Float` is implemented for f32 and f64 only, so one of the two downcasts succeeds.
        let built: Box<dyn Any> = if TypeId::of::<F>() == TypeId::of::<f32>() {
            Box::new(self.build_f32(hyperparameters)?)
        } else {
            Box::new(self.build_f64(hyperparameters)?)
        };
        built
            .downcast::<Arc<dyn Op<F>>>()
            .map(|op| *op)
            .map_err(|_| Error::Registry(format!("BUG: {} is neither f32 nor f64", F::NAME)))
    }

    /// Builds the op in `f64` from its hyperparameters as RON text (see [`Self::build_f32`]).
    pub fn build_f64(&self, hyperparameters: &str) -> Result<Arc<dyn Op<f64>>> {
        (self.build_f64)(hyperparameters)
    }
}

/// Parses hyperparameters; optional fields take a bare value (`stride: 2`, not `Some(2)`).
fn deserialize<O: OpType>(hyperparameters: &str) -> Result<O> {
    let options =
        ron::Options::default().with_default_extension(ron::extensions::Extensions::IMPLICIT_SOME);
    options.from_str::<O>(hyperparameters).map_err(|e| {
        // The parser reports a bad value at the whitespace before it: point at the value.
        let (mut line, mut column) = (e.span.start.line, e.span.start.col);
        let rest = hyperparameters
            .lines()
            .nth(line.saturating_sub(1))
            .unwrap_or("");
        let skipped = rest
            .chars()
            .skip(column.saturating_sub(1))
            .take_while(|c| c.is_whitespace())
            .count();
        if skipped
            < rest
                .chars()
                .count()
                .saturating_sub(column.saturating_sub(1))
        {
            column += skipped;
        } else if line < hyperparameters.lines().count() {
            line += 1;
            column = 1;
        }
        Error::Parse {
            op: O::NAME,
            line,
            column,
            message: e.code.to_string(),
        }
    })
}
