//! `tapir ops`: the registered ops, with how many gradient-check cases each has.

use clap::Args;

use crate::output::{Failure, Out};

/// List the registered ops with their gradient-check cases
#[derive(Debug, Args)]
#[command(after_help = "Example:\n  tapir ops")]
pub struct OpsArgs {}

/// Prints one line per registered op.
pub fn run(_args: &OpsArgs, out: &mut Out) -> Result<(), Failure> {
    let registry = tapir_ops::builtin_registry();
    out.line(format_args!(
        "tapir {}: registered ops:",
        env!("CARGO_PKG_VERSION")
    ))?;
    for entry in registry.entries() {
        out.line(format_args!(
            "  {:<24} {} gradient-check cases",
            entry.name,
            (entry.gradcheck_cases)().len()
        ))?;
    }
    Ok(())
}
