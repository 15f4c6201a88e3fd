//! Every registered op's gradient-check cases, against finite differences in f64.
//!
//! Each case must pass the tolerance (`tapir_core::gradcheck::TOLERANCE`), and its report
//! is kept as an insta snapshot (`snapshots/gradcheck__<op>@<case>.snap`) to read like code:
//! shapes, gradients rounded to 6 significant digits, errors in buckets.

use tapir_core::gradcheck::Config;

#[test]
fn every_registered_op_has_a_gradcheck_case() {
    let registry = tapir_ops::builtin_registry();
    let missing: Vec<&str> = registry
        .entries()
        .filter(|e| (e.gradcheck_cases)().is_empty())
        .map(|e| e.name)
        .collect();
    assert!(
        missing.is_empty(),
        "ops without a gradcheck case: {missing:?}"
    );
}

#[test]
fn every_case_passes_and_matches_its_snapshot() {
    let config = Config::default();
    let mut failures = Vec::new();
    for entry in tapir_ops::builtin_registry().entries() {
        for case in (entry.gradcheck_cases)() {
            let report = case
                .run(&config)
                .unwrap_or_else(|e| panic!("{} {:?}: {e}", entry.name, case.label));
            // Shown with `cargo test --test gradcheck -- --nocapture`: the figures behind the buckets.
            println!(
                "{:<24} {:<40} max rel error {:.2e}",
                entry.name,
                case.label,
                report.max_rel_error()
            );
            for tensor in report.tensors.iter().filter(|t| !t.passed) {
                failures.push(format!(
                    "{} {:?}: {} rel error {:.3e} at {:?} (analytic {:.9e}, numeric {:.9e})",
                    entry.name,
                    case.label,
                    tensor.name,
                    tensor.max_rel_error,
                    tensor.worst_index,
                    tensor.analytic[ndarray::IxDyn(&tensor.worst_index)],
                    tensor.numeric[ndarray::IxDyn(&tensor.worst_index)],
                ));
            }
            let name = format!(
                "{}@{}",
                entry.name,
                case.label.replace([' ', ',', '/'], "-")
            );
            insta::with_settings!({ snapshot_suffix => "", prepend_module_to_snapshot => false }, {
                insta::assert_snapshot!(name, case.snapshot(&report).to_ron());
            });
        }
    }
    assert!(
        failures.is_empty(),
        "gradient checks failed:\n{}",
        failures.join("\n")
    );
}
