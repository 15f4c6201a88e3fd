//! The summary table of a graph (`tapir check`): every node's op, output shape, parameters
//! and forward FLOPs per sample, with totals, like Keras' `model.summary()`.

use std::fmt::Write;

use crate::graph::Graph;
use crate::load::camel_case;

impl Graph {
    /// The summary table as text.
    pub fn summary(&self) -> String {
        let mut rows: Vec<[String; 6]> = vec![[
            "node".into(),
            "op".into(),
            "inputs".into(),
            "output (per sample)".into(),
            "parameters".into(),
            "FLOPs".into(),
        ]];
        for input in &self.inputs {
            rows.push([
                input.name.clone(),
                format!("input ({:?})", input.kind).to_lowercase(),
                String::new(),
                format!("{:?}", input.shape),
                String::new(),
                String::new(),
            ]);
        }
        for node in &self.nodes {
            let inputs: Vec<&str> = node.inputs.iter().map(|&v| self.value_name(v)).collect();
            rows.push([
                node.name.clone(),
                camel_case(node.op),
                inputs.join(", "),
                format!("{:?}", node.shape),
                if node.params.is_empty() {
                    String::new()
                } else {
                    group_digits(node.param_count() as u64)
                },
                group_digits(node.flops),
            ]);
        }
        // Params and FLOPs (columns 4 and 5) are numbers.
        let mut out = crate::table::render(&rows, 4);
        let _ = writeln!(
            out,
            "{} nodes, {} parameter tensors, {} parameters, {} FLOPs per sample (forward)",
            self.nodes.len(),
            self.params().count(),
            group_digits(self.param_count() as u64),
            group_digits(self.flops())
        );
        out
    }
}

/// `1234567` -> `1,234,567`.
pub fn group_digits(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    use crate::Graph;

    #[test]
    fn counts_too_large_to_add_up_saturate() {
        let text = r#"Network(
            inputs: { "x": [4] },
            nodes: {
                "a": (op: Dense(units: 2), input: "x"),
                "b": (op: Dense(units: 2), input: "a"),
            },
            outputs: ["b"],
        )"#;
        let mut graph = Graph::parse("big.ron", text, &tapir_ops::builtin_registry()).unwrap();
        for node in &mut graph.nodes {
            node.flops = u64::MAX / 2 + 1;
            for param in &mut node.params {
                param.spec.shape = vec![usize::MAX / 2, 1];
            }
        }
        assert_eq!(graph.param_count(), usize::MAX);
        assert_eq!(graph.flops(), u64::MAX);
        let summary = graph.summary();
        assert!(
            summary.contains("18,446,744,073,709,551,615 parameters"),
            "{summary}"
        );
    }

    #[test]
    fn digits_are_grouped_in_thousands() {
        assert_eq!(super::group_digits(0), "0");
        assert_eq!(super::group_digits(999), "999");
        assert_eq!(super::group_digits(1000), "1,000");
        assert_eq!(super::group_digits(1234567), "1,234,567");
    }
}
