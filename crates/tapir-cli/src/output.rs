//! Where commands write: results to standard output, notes and errors to standard error.

use std::fmt;
use std::io::{self, Write};
use std::path::Path;
use std::sync::Arc;

use tapir_graph::{Graph, GraphError, TensorError};

/// Why a command stopped: an error for standard error, or standard output closed by the
/// reader (`tapir dot ... | head`), which is not an error worth a word.
#[derive(Debug)]
pub enum Failure {
    /// The whole text for standard error.
    Message(String),
    /// Standard output was closed.
    OutputClosed,
}

impl Failure {
    /// An error whose `message` says where and what: `error: {message}`.
    pub fn new(message: impl fmt::Display) -> Self {
        Failure::Message(format!("error: {message}"))
    }

    /// Writes the error to standard error.
    pub fn report(&self) {
        if let Failure::Message(text) = self {
            diagnostic(text);
        }
    }

    /// Whether the command failed, rather than its reader going away.
    pub fn is_error(&self) -> bool {
        matches!(self, Failure::Message(_))
    }
}

impl From<GraphError> for Failure {
    fn from(error: GraphError) -> Self {
        Failure::Message(error.render())
    }
}

impl From<TensorError> for Failure {
    fn from(error: TensorError) -> Self {
        Failure::new(error)
    }
}

/// Standard output, locked for the command's duration.
pub struct Out {
    inner: io::StdoutLock<'static>,
}

impl Out {
    /// The process's standard output.
    pub fn stdout() -> Self {
        Out {
            inner: io::stdout().lock(),
        }
    }

    /// Writes `text` and a line break.
    pub fn line(&mut self, text: impl fmt::Display) -> Result<(), Failure> {
        writeln!(self.inner, "{text}").map_err(write_failure)
    }

    /// Writes `text` as it is.
    pub fn text(&mut self, text: &str) -> Result<(), Failure> {
        self.inner.write_all(text.as_bytes()).map_err(write_failure)
    }
}

fn write_failure(error: io::Error) -> Failure {
    if error.kind() == io::ErrorKind::BrokenPipe {
        Failure::OutputClosed
    } else {
        Failure::new(format!("cannot write to standard output: {error}"))
    }
}

/// Writes a rendered error or warning on standard error. A closed standard error leaves
/// nowhere to say so, hence nothing is done about one.
pub fn diagnostic(text: &str) {
    let _ = writeln!(io::stderr().lock(), "{}", text.trim_end());
}

/// Writes a note on standard error (`note: ...`): what the command decided on its own.
pub fn note(text: impl fmt::Display) {
    let _ = writeln!(io::stderr().lock(), "note: {text}");
}

/// Loads and validates the network file at `path` with the built-in ops.
pub fn load_graph(path: &Path) -> Result<Arc<Graph>, Failure> {
    let registry = tapir_ops::builtin_registry();
    Ok(Arc::new(Graph::load(path, &registry)?))
}

/// Refuses a network without a loss, for the commands that differentiate it.
pub fn require_loss(graph: &Graph) -> Result<(), Failure> {
    if graph.loss.is_some() {
        return Ok(());
    }
    Err(Failure::new(format_args!(
        "{}: the network has no loss to differentiate; add one, e.g. \
         `loss: SoftmaxCrossEntropy(logits: \"logits\")`",
        graph.name
    )))
}

/// `1 warning`, `2 warnings`.
pub fn count(n: usize, thing: &str) -> String {
    if n == 1 {
        format!("1 {thing}")
    } else {
        format!("{n} {thing}s")
    }
}
