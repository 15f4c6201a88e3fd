//! `tapir check` and `tapir dot`: a network file loaded and validated, shown as a table or
//! as a Graphviz graph.

use std::path::PathBuf;

use clap::Args;

use crate::output::{Failure, Out, count, diagnostic, load_graph};

/// Load a network file, check it completely and print its summary table
#[derive(Debug, Args)]
#[command(after_help = "Example:\n  tapir check graphs/cnn-1.ron")]
pub struct CheckArgs {
    /// The network file (RON)
    graph: PathBuf,
}

/// Print a network file as a Graphviz DOT graph
#[derive(Debug, Args)]
#[command(after_help = "Example:\n  tapir dot graphs/cnn-1.ron | dot -Tsvg > cnn-1.svg")]
pub struct DotArgs {
    /// The network file (RON)
    graph: PathBuf,
}

/// Prints the summary table; warnings go to standard error, rendered like errors.
pub fn check(args: &CheckArgs, out: &mut Out) -> Result<(), Failure> {
    let graph = load_graph(&args.graph)?;
    out.text(&graph.summary())?;
    for warning in &graph.warnings {
        diagnostic(&warning.render());
    }
    out.line(format_args!(
        "{}: valid, {}",
        graph.name,
        count(graph.warnings.len(), "warning")
    ))
}

/// Prints the DOT text.
pub fn dot(args: &DotArgs, out: &mut Out) -> Result<(), Failure> {
    let graph = load_graph(&args.graph)?;
    out.text(&graph.to_dot())
}
