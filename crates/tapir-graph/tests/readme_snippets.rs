//! `graphs/README.md` cannot rot: every network it shows loads and runs, every op example
//! builds, and every registered op has its section there.
//!
//! Code blocks are told apart by their info string: ```` ```ron ```` is a whole network,
//! ```` ```ron op ```` lists ops as a node's `op:` writes them, one per line, and
//! ```` ```ron fragment ```` is a piece of a file, shown but not loaded. Any other `ron` block
//! is refused, so a typo cannot exempt a block from these checks.

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
fn every_ron_block_is_marked_as_a_network_an_op_list_or_a_fragment() {
    let blocks = blocks();
    for block in blocks.iter().filter(|b| b.info.starts_with("ron")) {
        assert!(
            ["ron", "ron op", "ron fragment"].contains(&block.info.as_str()),
            "{PATH}:{}: unknown block kind \"{}\"; use ron, ron op or ron fragment",
            block.line,
            block.info
        );
    }
    let count = |info: &str| blocks.iter().filter(|b| b.info == info).count();
    assert!(count("ron") >= 3, "the README's networks were not found");
    assert!(count("ron op") >= registry().names().count());
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
        let network = Network::<f64>::new(Arc::clone(&graph)).unwrap();
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

#[test]
fn every_op_example_builds_and_sits_in_its_op_section() {
    let registry = registry();
    for block in blocks().iter().filter(|b| b.info == "ron op") {
        for (offset, line) in block.text.lines().enumerate() {
            let at = format!("{PATH}:{}", block.line + 1 + offset);
            let line = line.trim();
            if line.is_empty() {
                continue;
            }
            let (name, hyperparameters) = split_op(line);
            let Some(entry) = registry.get(&snake_case(&name)) else {
                panic!("{at}: `{name}` is not a registered op");
            };
            if let Err(e) = entry.build_f64(&hyperparameters) {
                panic!("{at}: {e}");
            }
            assert_eq!(
                block.op_section.as_deref(),
                Some(name.as_str()),
                "{at}: an example of `{name}` outside its section"
            );
        }
    }
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
                .any(|b| b.info == "ron op" && b.op_section.as_deref() == Some(op.as_str())),
            "{PATH}: the section of `{op}` has no ```ron op example"
        );
    }
    for op in &documented {
        assert!(
            registry.get(&snake_case(op)).is_some(),
            "{PATH}: `{op}` has a section but is not a registered op"
        );
    }
}
