//! `graphs/README.md` cannot rot: every network it shows loads and runs, every op example
//! loads as a node of a network, every loss example as a network's loss, and every
//! registered op has its section there.
//!
//! Code blocks are told apart by their info string: ```` ```ron ```` is a whole network,
//! ```` ```ron op ```` lists ops as a node's `op:` writes them, one per line,
//! ```` ```ron loss ```` lists `loss:` fields, one per line, and ```` ```ron fragment ```` is
//! a piece of a file, shown but not loaded. Any other `ron` block is refused, so a typo cannot
//! exempt a block from these checks.

use std::sync::Arc;

use ndarray::ArrayD;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use tapir_core::{Registry, Tape};
use tapir_graph::{Graph, InputKind, Network, ValueId, camel_case, snake_case};

const README: &str = include_str!("../../../graphs/README.md");
const PATH: &str = "graphs/README.md";

/// The batch size networks run at: not 1, which is the one shape inference uses.
const BATCH: usize = 3;

/// A fenced code block of the README.
struct Block {
    /// The info string after the fence: `ron`, `ron op`...
    info: String,
    /// The 1-based line of the opening fence.
    line: usize,
    text: String,
    /// The op heading (`#### \`Conv2d\``) the block is under, if any.
    op_section: Option<String>,
}

/// Every fenced code block, with the op section it belongs to.
fn blocks() -> Vec<Block> {
    let mut blocks = Vec::new();
    let mut open: Option<Block> = None;
    let mut section = None;
    for (index, line) in README.lines().enumerate() {
        match open.as_mut() {
            Some(_) if line.trim() == "```" => blocks.extend(open.take()),
            Some(block) => {
                block.text.push_str(line);
                block.text.push('\n');
            }
            None => {
                if let Some(info) = line.trim_start().strip_prefix("```") {
                    open = Some(Block {
                        info: info.trim().to_string(),
                        line: index + 1,
                        text: String::new(),
                        op_section: section.clone(),
                    });
                } else if line.starts_with('#') {
                    section = op_heading(line);
                }
            }
        }
    }
    assert!(open.is_none(), "{PATH}: a code block is never closed");
    blocks
}

/// The op an op heading names: `#### \`MaxPool2d\`` -> `MaxPool2d`.
fn op_heading(line: &str) -> Option<String> {
    line.strip_prefix("#### `")?
        .strip_suffix('`')
        .map(str::to_string)
}

/// The registered op a line of an op block names, and its hyperparameter text, as the loader
/// splits a node's `op:`.
fn split_op(line: &str) -> (String, String) {
    let end = line
        .find(|c: char| !(c.is_alphanumeric() || c == '_'))
        .unwrap_or(line.len());
    let rest = line[end..].trim();
    let hyperparameters = if rest.is_empty() { "()" } else { rest };
    (line[..end].to_string(), hyperparameters.to_string())
}

fn registry() -> Registry {
    tapir_ops::builtin_registry()
}

#[test]
fn every_ron_block_is_marked_as_a_network_an_op_list_a_loss_list_or_a_fragment() {
    let blocks = blocks();
    for block in blocks.iter().filter(|b| b.info.starts_with("ron")) {
        assert!(
            ["ron", "ron op", "ron loss", "ron fragment"].contains(&block.info.as_str()),
            "{PATH}:{}: unknown block kind \"{}\"; use ron, ron op, ron loss or ron fragment",
            block.line,
            block.info
        );
    }
    let count = |info: &str| blocks.iter().filter(|b| b.info == info).count();
    assert!(count("ron") >= 3, "the README's networks were not found");
    assert!(count("ron op") + count("ron loss") >= registry().names().count());
}

#[test]
fn every_network_loads_and_runs_forward_and_backward() {
    let registry = registry();
    for block in blocks().iter().filter(|b| b.info == "ron") {
        // Blank lines in front, so that errors give the README's own line numbers.
        let text = "\n".repeat(block.line) + &block.text;
        let graph = match Graph::parse(PATH, &text, &registry) {
            Ok(graph) => Arc::new(graph),
            Err(e) => panic!("{}", e.render()),
        };
        let warnings: Vec<String> = graph.warnings.iter().map(|w| w.headline()).collect();
        assert!(warnings.is_empty(), "{warnings:?}");

        // At a batch size other than the one shapes were inferred at, every node's value has
        // the inferred per-sample shape (the loss's is one number for the batch).
        // Unfused: every node's value is made, so every node's shape is checked.
        let network = Network::<f64>::unfused(Arc::clone(&graph)).unwrap();
        let params = network.init_params(0);
        let mut rng = ChaCha8Rng::seed_from_u64(1);
        let inputs = random_inputs(&graph, &mut rng);
        let forward = network
            .forward(&mut Tape::inference(), &params, inputs.clone(), false, None)
            .unwrap_or_else(|e| panic!("{PATH}:{}: {e}", block.line));
        for (index, node) in graph.nodes.iter().enumerate() {
            let Some(value) = forward.value(ValueId::Node(index)) else {
                continue; // the loss, whose labels were left out
            };
            let expected: Vec<usize> = if Some(index) == graph.loss {
                vec![]
            } else {
                std::iter::once(BATCH).chain(node.shape.clone()).collect()
            };
            assert_eq!(
                value.shape(),
                expected.as_slice(),
                "{PATH}:{}: node \"{}\" at batch {BATCH}",
                block.line,
                node.name
            );
        }
        if graph.loss.is_some() {
            let run = network
                .loss_and_grads(&params, inputs, false)
                .unwrap_or_else(|e| panic!("{PATH}:{}: {e}", block.line));
            assert!(
                run.loss.is_finite(),
                "{PATH}:{}: loss {}",
                block.line,
                run.loss
            );
        }
    }
}

/// Values for every input at batch [`BATCH`]: data uniform in [0, 1), labels valid classes.
fn random_inputs(graph: &Graph, rng: &mut impl Rng) -> Vec<ArrayD<f64>> {
    let classes = graph
        .loss
        .and_then(|loss| graph.nodes[loss].inputs.first())
        .and_then(|&logits| graph.value_shape(logits).last().copied())
        .unwrap_or(1);
    graph
        .inputs
        .iter()
        .map(|input| {
            let shape: Vec<usize> = std::iter::once(BATCH).chain(input.shape.clone()).collect();
            match input.kind {
                InputKind::Labels => {
                    ArrayD::from_shape_simple_fn(shape, || rng.random_range(0..classes) as f64)
                }
                InputKind::Data | InputKind::Target => {
                    ArrayD::from_shape_simple_fn(shape, || rng.random::<f64>())
                }
            }
        })
        .collect()
}

/// Per-sample shapes of the inputs an op's examples run on: sizes every example of the op
/// in the README fits. An op without an entry fails the test, so a new op gets one.
fn example_inputs(op: &str) -> Vec<Vec<usize>> {
    let image = vec![8, 12, 12];
    match op {
        "conv2d" | "max_pool2d" | "avg_pool2d" | "global_max_pool" | "global_avg_pool" => {
            vec![image]
        }
        "dense" => vec![vec![8]],
        "relu" | "leaky_relu" | "gelu" | "sigmoid" | "tanh" | "softmax" | "log_softmax" => {
            vec![vec![3, 4]]
        }
        // Logits, and labels as an input of one number per sample.
        "softmax_cross_entropy" => vec![vec![5], vec![]],
        "mse" => vec![vec![3], vec![3]],
        "add" | "mul" => vec![vec![2, 3], vec![2, 3]],
        "matmul" => vec![vec![3, 4], vec![4, 5]],
        "concat" => vec![vec![3, 4, 4], vec![3, 4, 4]],
        "flatten" => vec![vec![3, 4, 4]],
        "reshape" => vec![vec![16, 7, 7]],
        "sum" | "mean" => vec![vec![3, 4, 5]],
        other => panic!("{PATH}: no example inputs for `{other}`; add them to this test"),
    }
}

/// The one-node network that runs `op` (as a node's `op:` writes it) on `inputs`.
fn one_node_network(op: &str, inputs: &[Vec<usize>]) -> String {
    let names: Vec<String> = (0..inputs.len()).map(|i| format!("\"x{i}\"")).collect();
    let declared: Vec<String> = names
        .iter()
        .zip(inputs)
        .map(|(name, shape)| format!("{name}: {shape:?}"))
        .collect();
    format!(
        "Network(\n    inputs: {{ {} }},\n    nodes: {{ \"example\": (op: {op}, inputs: [{}]) }},\n    \
         outputs: [\"example\"],\n)\n",
        declared.join(", "),
        names.join(", ")
    )
}

#[test]
fn every_op_example_loads_as_a_node_and_sits_in_its_op_section() {
    let registry = registry();
    for block in blocks().iter().filter(|b| b.info == "ron op") {
        for (offset, line) in block.text.lines().enumerate() {
            let at = format!("{PATH}:{}", block.line + 1 + offset);
            let line = line.trim();
            if line.is_empty() {
                continue;
            }
            let (name, _) = split_op(line);
            let op = snake_case(&name);
            if registry.get(&op).is_none() {
                panic!("{at}: `{name}` is not a registered op");
            }
            let text = one_node_network(line, &example_inputs(&op));
            if let Err(e) = Graph::parse(&at, &text, &registry) {
                panic!("{at}: `{line}` does not load as a node:\n{}", e.render());
            }
            assert_eq!(
                block.op_section.as_deref(),
                Some(name.as_str()),
                "{at}: an example of `{name}` outside its section"
            );
        }
    }
}

/// The network every loss example is the loss of: class scores `logits`, a prediction `y`
/// and its regression target.
const LOSS_HARNESS: &str = r#"Network(
    inputs: { "x": [8], "target": [2] },
    nodes: {
        "logits": (op: Dense(units: 3), input: "x"),
        "y":      (op: Dense(units: 2), input: "x"),
    },
    outputs: ["logits", "y"],
    LOSS
)
"#;

#[test]
fn every_loss_example_loads_as_a_loss_and_sits_in_its_op_section() {
    let registry = registry();
    let mut seen = 0;
    for block in blocks().iter().filter(|b| b.info == "ron loss") {
        for (offset, line) in block.text.lines().enumerate() {
            let at = format!("{PATH}:{}", block.line + 1 + offset);
            let line = line.trim();
            if line.is_empty() {
                continue;
            }
            let Some(loss) = line.strip_prefix("loss: ") else {
                panic!("{at}: write a loss example as the file does: `loss: ...`");
            };
            let (name, _) = split_op(loss);
            let text = LOSS_HARNESS.replace("LOSS", line);
            if let Err(e) = Graph::parse(&at, &text, &registry) {
                panic!("{at}: `{line}` does not load as a loss:\n{}", e.render());
            }
            assert_eq!(
                block.op_section.as_deref(),
                Some(name.as_str()),
                "{at}: an example of `{name}` outside its section"
            );
            seen += 1;
        }
    }
    assert!(seen >= 2, "the README's loss examples were not found");
}

#[test]
fn every_registered_op_has_a_section_a_table_row_and_examples() {
    let blocks = blocks();
    let registry = registry();
    let documented: Vec<String> = README.lines().filter_map(op_heading).collect();
    for name in registry.names() {
        let op = camel_case(name);
        assert!(
            documented.contains(&op),
            "{PATH}: `{op}` ({name}) has no section `#### \\`{op}\\``"
        );
        let row = format!("| [`{op}`](#{}) |", op.to_lowercase());
        assert!(
            README.contains(&row),
            "{PATH}: the op table has no row {row}"
        );
        assert!(
            blocks
                .iter()
                .any(|b| ["ron op", "ron loss"].contains(&b.info.as_str())
                    && b.op_section.as_deref() == Some(op.as_str())),
            "{PATH}: the section of `{op}` has no ```ron op (or ```ron loss) example"
        );
    }
    for op in &documented {
        assert!(
            registry.get(&snake_case(op)).is_some(),
            "{PATH}: `{op}` has a section but is not a registered op"
        );
    }
}
