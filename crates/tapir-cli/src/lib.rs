//! The `tapir` command: it parses arguments, calls the library crates and reports their
//! errors, and holds no logic of its own. One file per command; [`main`] is the entry point.
//!
//! Every command writes its results to standard output, notes and errors to standard error,
//! and exits 0 on success, 1 on any error.

#![forbid(unsafe_code)]

mod check;
mod demo;
mod grad;
mod gradcheck;
mod ops;
mod output;
mod profile;
mod train;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

pub use output::Failure;

/// The `tapir` command line.
#[derive(Debug, Parser)]
#[command(
    name = "tapir",
    version,
    about = "Tape-based reverse-mode automatic differentiation over networks written as RON files",
    arg_required_else_help = true,
    after_help = "Examples:
  tapir demo
  tapir train graphs/cnn-1.ron --epochs 5
  tapir check graphs/cnn-1.ron
  tapir gradcheck graphs/cnn-1.ron
  tapir profile graphs/cnn-2.ron --batch 64
  tapir grad graphs/cnn-1.ron --inputs batch.safetensors --out grads.safetensors"
)]
pub struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    Demo(demo::DemoArgs),
    Train(train::TrainArgs),
    Check(check::CheckArgs),
    Dot(check::DotArgs),
    Gradcheck(gradcheck::GradcheckArgs),
    Grad(grad::GradArgs),
    Profile(profile::ProfileArgs),
    Ops(ops::OpsArgs),
}

/// Runs the command the process was started with, reports any error on standard error and
/// returns the exit code: 0 on success, 1 on any error.
pub fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            // `--help` and `--version` are answers, not errors.
            let _ = e.print();
            return if e.use_stderr() {
                ExitCode::FAILURE
            } else {
                ExitCode::SUCCESS
            };
        }
    };
    match try_main(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(failure) if failure.is_error() => {
            failure.report();
            ExitCode::FAILURE
        }
        Err(_) => ExitCode::SUCCESS,
    }
}

/// Runs a parsed command line.
pub fn try_main(cli: Cli) -> Result<(), Failure> {
    let mut out = output::Out::stdout();
    match cli.command {
        Command::Demo(args) => demo::run(&args, &mut out),
        Command::Train(args) => train::run(&args, &mut out),
        Command::Check(args) => check::check(&args, &mut out),
        Command::Dot(args) => check::dot(&args, &mut out),
        Command::Gradcheck(args) => gradcheck::run(&args, &mut out),
        Command::Grad(args) => grad::run(&args, &mut out),
        Command::Profile(args) => profile::run(&args, &mut out),
        Command::Ops(args) => ops::run(&args, &mut out),
    }
}
