//! Every network in `graphs/` loads, and its summary table, DOT text and gradient check are
//! kept as snapshots; each gradient check also passes its tolerance.

use std::sync::Arc;

use serde::Serialize;
use tapir_core::gradcheck::{Config, Values, error_bucket, to_ron};
use tapir_graph::Graph;

/// Elements checked per tensor: whole networks have ~400k weights and each costs two
/// forward passes; a seeded sample of each tensor still visits every tensor.
const ELEMENTS_PER_TENSOR: usize = 12;

fn load(path: &std::path::Path) -> Arc<Graph> {
    let registry = tapir_ops::builtin_registry();
    match Graph::load(path, &registry) {
        Ok(graph) => Arc::new(graph),
        Err(e) => panic!("{}", e.render()),
    }
}

#[test]
fn every_graph_loads_with_its_summary_and_dot() {
    insta::glob!("../../../graphs", "*.ron", |path| {
        let graph = load(path);
        assert!(graph.warnings.is_empty(), "{:?}", graph.warnings);
        insta::assert_snapshot!("summary", graph.summary());
        insta::assert_snapshot!("dot", graph.to_dot());
    });
}

#[derive(Serialize)]
struct TensorLine {
    name: String,
    shape: Vec<usize>,
    checked: usize,
    max_abs_error: &'static str,
    max_rel_error: &'static str,
    passed: bool,
    gradient: Values,
}

#[test]
fn every_graph_passes_its_gradient_check() {
    let config = Config {
        max_elements_per_tensor: Some(ELEMENTS_PER_TENSOR),
        ..Config::default()
    };
    insta::glob!("../../../graphs", "*.ron", |path| {
        let graph = load(path);
        let check = graph.gradcheck(2, &config).unwrap();
        // Shown with `-- --nocapture`: the figure behind the buckets.
        println!(
            "{}: max rel error {:.2e}",
            graph.name,
            check.report.max_rel_error()
        );
        let failed: Vec<String> = check
            .report
            .tensors
            .iter()
            .filter(|t| !t.passed)
            .map(|t| format!("{}: {:.3e} at {:?}", t.name, t.max_rel_error, t.worst_index))
            .collect();
        assert!(failed.is_empty(), "{}: {failed:?}", graph.name);
        let lines: Vec<TensorLine> = check
            .report
            .tensors
            .iter()
            .map(|t| TensorLine {
                name: t.name.clone(),
                shape: t.shape.clone(),
                checked: t.checked,
                max_abs_error: error_bucket(t.max_abs_error),
                max_rel_error: error_bucket(t.max_rel_error),
                passed: t.passed,
                gradient: Values::of(&t.analytic),
            })
            .collect();
        insta::assert_snapshot!("gradcheck", to_ron(&lines));
    });
}
