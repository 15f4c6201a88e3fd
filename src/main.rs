//! The `tapir` command; everything it does lives in the `tapir-cli` crate.

#![forbid(unsafe_code)]

/// A training step allocates and frees every activation; mimalloc keeps those buffers for the
/// next step instead of returning them to the system and faulting them in again.
#[cfg(feature = "mimalloc")]
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    tapir_cli::main()
}
