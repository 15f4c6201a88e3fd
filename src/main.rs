//! The `tapir` command. The network commands (`check`, `gradcheck`, `grad`, `train`, `demo`)
//! arrive with the graph and training crates; for now it lists the registered ops.

fn main() {
    let registry = tapir::ops::builtin_registry();
    println!("tapir {}: registered ops:", env!("CARGO_PKG_VERSION"));
    for entry in registry.entries() {
        println!(
            "  {:<24} {} gradient-check cases",
            entry.name,
            (entry.gradcheck_cases)().len()
        );
    }
}
