//! The one error type of the core and of every op.

use std::fmt;

/// What went wrong, starting with where: the op (and, once a graph names it, the node).
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum Error {
    /// Input shapes the op cannot take (wrong rank, mismatched sizes, output too small...).
    #[error("{op}: {message}")]
    Shape {
        /// The op's name.
        op: &'static str,
        /// What is wrong, and how to fix it.
        message: String,
    },
    /// A hyperparameter out of its valid range (kernel 0, stride 0, groups not dividing channels...).
    #[error("{op}: invalid hyperparameter: {message}")]
    Hyperparameter {
        /// The op's name.
        op: &'static str,
        /// What is wrong, and how to fix it.
        message: String,
    },
    /// Hyperparameters that do not parse as the op's: a RON syntax error, an unknown or
    /// missing field, a value of the wrong type. Line and column count from 1 within the
    /// hyperparameter text.
    #[error("{op}: hyperparameters at line {line}, column {column}: {message}")]
    Parse {
        /// The op's name.
        op: &'static str,
        /// The line in the hyperparameter text, from 1.
        line: usize,
        /// The column in that line, from 1.
        column: usize,
        /// The parser's complaint.
        message: String,
    },
    /// Input values the op cannot take (a class label outside `0..classes`, say).
    #[error("{op}: {message}")]
    Value {
        /// The op's name.
        op: &'static str,
        /// What is wrong, and how to fix it.
        message: String,
    },
    /// The wrong number of inputs for the op.
    #[error("{op}: expects {expected} inputs, got {got}")]
    Arity {
        /// The op's name.
        op: &'static str,
        /// How many inputs it takes.
        expected: Arity,
        /// How many it was given.
        got: usize,
    },
    /// An op broke its own contract; the tape checks every forward and backward result.
    #[error("{op}: {message} (a bug in the op)")]
    Contract {
        /// The op's name.
        op: &'static str,
        /// What the op did, against what its contract says.
        message: String,
    },
    /// Misuse of the tape itself (backward from a non-scalar, a variable from another tape...).
    #[error("tape: {0}")]
    Tape(String),
    /// Values given to a network that it cannot take: inputs or parameters missing, too
    /// many, or of the wrong shape; labels left out where the loss needs them.
    #[error("input: {0}")]
    Input(String),
    /// A registry refused an op type (a name registered twice).
    #[error("registry: {0}")]
    Registry(String),
    /// An error from an op, with the name of the graph node that ran it.
    #[error("node \"{node}\": {source}")]
    Node {
        /// The node's name in the network file.
        node: String,
        /// The op's error.
        source: Box<Error>,
    },
}

impl Error {
    /// Shorthand for [`Error::Shape`].
    pub fn shape(op: &'static str, message: impl Into<String>) -> Self {
        Error::Shape {
            op,
            message: message.into(),
        }
    }
    /// Shorthand for [`Error::Hyperparameter`].
    pub fn hyperparameter(op: &'static str, message: impl Into<String>) -> Self {
        Error::Hyperparameter {
            op,
            message: message.into(),
        }
    }
    /// Shorthand for [`Error::Value`].
    pub fn value(op: &'static str, message: impl Into<String>) -> Self {
        Error::Value {
            op,
            message: message.into(),
        }
    }
    /// Wraps the error with the graph node it came from.
    pub fn at_node(self, node: impl Into<String>) -> Self {
        Error::Node {
            node: node.into(),
            source: Box::new(self),
        }
    }
}

/// How many inputs an op takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Arity {
    /// Exactly this many.
    Exactly(usize),
    /// Between `min` and `max`, both included.
    Between(usize, usize),
    /// At least this many.
    AtLeast(usize),
}

impl Arity {
    /// Whether `count` inputs are allowed.
    pub fn allows(self, count: usize) -> bool {
        match self {
            Arity::Exactly(n) => count == n,
            Arity::Between(min, max) => (min..=max).contains(&count),
            Arity::AtLeast(n) => count >= n,
        }
    }

    /// Returns an [`Error::Arity`] for `op` unless `count` is allowed.
    pub fn check(self, op: &'static str, count: usize) -> Result<()> {
        if self.allows(count) {
            Ok(())
        } else {
            Err(Error::Arity {
                op,
                expected: self,
                got: count,
            })
        }
    }
}

impl fmt::Display for Arity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Arity::Exactly(n) => write!(f, "{n}"),
            Arity::Between(min, max) => write!(f, "{min} to {max}"),
            Arity::AtLeast(n) => write!(f, "at least {n}"),
        }
    }
}

/// The result type of the core and of every op.
pub type Result<T, E = Error> = std::result::Result<T, E>;
