//! The `tapir` command; everything it does lives in the `tapir-cli` crate.

#![forbid(unsafe_code)]

fn main() -> std::process::ExitCode {
    tapir_cli::main()
}
