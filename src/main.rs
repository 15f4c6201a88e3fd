//! The `tapir` command; everything it does lives in the `tapir-cli` crate.

#![forbid(unsafe_code)]

/// A training step makes and frees many mid-sized buffers (the matrix product's packing
/// space, inputs, small activations); mimalloc serves them without a system call. The largest
/// ones `tapir_core::buffers` keeps itself. On the system's allocator the CNN's step took
/// 42-56 ms against 30-54 in three alternating pairs of `tapir profile graphs/cnn-2.ron
/// --batch 64 --threads 1`, at 28 against 46 MiB of peak memory.
#[cfg(feature = "mimalloc")]
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    tapir_cli::main()
}
