//! Loading: RON text -> a validated [`Graph`]. Every check happens here, before anything
//! runs, and every failure is a located [`GraphError`].

use std::collections::{HashMap, HashSet};
use std::path::Path;
use std::sync::Arc;

use miette::NamedSource;
use petgraph::algo::{tarjan_scc, toposort};
use petgraph::graph::{DiGraph, NodeIndex};
use ron::extensions::Extensions;
use tapir_core::{Error as CoreError, Registry, RegistryEntry};

use crate::error::{ErrorKind, GraphError};
use crate::graph::{Graph, GraphInput, InputKind, Node, Param, ValueId};
use crate::schema::{LossSpec, NetworkFile, NodeSpec};

/// The batch size shapes are inferred at; per-sample shapes drop it again.
const INFERENCE_BATCH: usize = 1;

/// The name of the node a loss adds, and of the implicit input of class labels.
pub const LOSS_NODE: &str = "loss";
/// The implicit input that holds the class labels of a softmax cross-entropy loss.
pub const LABELS_INPUT: &str = "labels";

impl Graph {
    /// Loads and validates the network file at `path`, resolving ops in `registry`.
    pub fn load(path: impl AsRef<Path>, registry: &Registry) -> Result<Graph, GraphError> {
        let path = path.as_ref();
        let name = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|e| {
            let source = Arc::new(NamedSource::new(&name, String::new()));
            GraphError::new(ErrorKind::Io, &source, format!("cannot read {name}: {e}"))
                .help("check the path; network files live in graphs/")
        })?;
        Self::parse(&name, &text, registry)
    }

    /// Validates network `text`, naming it `name` in messages.
    pub fn parse(name: &str, text: &str, registry: &Registry) -> Result<Graph, GraphError> {
        Loader {
            source: Arc::new(NamedSource::new(name, text.to_string())),
            text,
            registry,
        }
        .load()
    }
}

struct Loader<'a> {
    source: Arc<NamedSource<String>>,
    text: &'a str,
    registry: &'a Registry,
}

/// A node as far as the loader got with it.
struct Draft {
    name: String,
    entry: RegistryEntry,
    hyperparameters: String,
    /// Byte span of the node's op text, where op errors point.
    op_span: (usize, usize),
    inputs: Vec<ValueId>,
}

impl Loader<'_> {
    fn error(&self, kind: ErrorKind, message: impl Into<String>) -> GraphError {
        GraphError::new(kind, &self.source, message)
    }

    fn load(&self) -> Result<Graph, GraphError> {
        let file = self.parse_file()?;
        let mut inputs = self.inputs(&file)?;
        let mut names: HashMap<String, ValueId> = inputs
            .iter()
            .enumerate()
            .map(|(i, input)| (input.name.clone(), ValueId::Input(i)))
            .collect();
        let nodes_at = self.locate_field("nodes").unwrap_or(0);
        for (index, (name, _)) in file.nodes.0.iter().enumerate() {
            self.check_node_name(name, nodes_at)?;
            if names.insert(name.clone(), ValueId::Node(index)).is_some() {
                let span = self.locate_key(name, nodes_at, 1);
                let mut error = self.error(
                    ErrorKind::DuplicateName,
                    format!("the name \"{name}\" is used twice"),
                );
                if let Some(span) = span {
                    error = error.at(span, "named again here");
                }
                return Err(error.help("give every input and node its own name"));
            }
        }
        let mut drafts = Vec::new();
        for (name, spec) in &file.nodes.0 {
            let node_at = self
                .locate_key(name, nodes_at, 0)
                .map_or(nodes_at, |(at, _)| at);
            let (entry, hyperparameters, op_span) = self.resolve_op(name, spec, node_at)?;
            let inputs = self.resolve_inputs(name, spec, node_at, &names)?;
            let data = inputs.len();
            let arity = entry
                .build::<f64>(&hyperparameters)
                .map(|op| op.arity())
                .map_err(|e| self.op_error(name, op_span, e))?;
            if !arity.allows(data) {
                return Err(self
                    .error(
                        ErrorKind::Arity,
                        format!(
                            "node \"{name}\": {} takes {arity} inputs, got {data}",
                            entry.name
                        ),
                    )
                    .at(op_span, format!("{} takes {arity}", entry.name))
                    .help(if data == 1 {
                        "list the inputs with `inputs: [\"a\", \"b\"]`"
                    } else {
                        "name the inputs the op takes"
                    }));
            }
            drafts.push(Draft {
                name: name.clone(),
                entry,
                hyperparameters,
                op_span,
                inputs,
            });
        }
        let order = self.topological_order(&inputs, &drafts)?;
        let outputs = self.resolve_outputs(&file, &names)?;
        if let Some(loss) = &file.loss {
            self.add_loss(loss, &mut inputs, &mut drafts, &names)?;
        }
        let mut order = order;
        if drafts.len() > file.nodes.0.len() {
            order.push(drafts.len() - 1); // the loss node reads only earlier values
        }
        let nodes = self.infer_shapes(&inputs, drafts, &order)?;
        let loss = file.loss.as_ref().map(|_| nodes.len() - 1);
        let waves = waves(&nodes, &order);
        let mut graph = Graph {
            name: self.source.name().to_string(),
            inputs,
            nodes,
            outputs,
            loss,
            init: file.init,
            waves,
            warnings: Vec::new(),
        };
        graph.warnings = self.unused_nodes(&graph, nodes_at);
        if graph.outputs.is_empty() {
            return Err(self
                .error(ErrorKind::Structure, "the network has no outputs")
                .at(
                    self.locate_field("outputs")
                        .map_or((0, 0), |at| (at, "outputs".len())),
                    "empty",
                )
                .help("name the nodes whose values the network returns: `outputs: [\"logits\"]`"));
        }
        Ok(graph)
    }

    fn parse_file(&self) -> Result<NetworkFile, GraphError> {
        let options = ron::Options::default().with_default_extension(Extensions::IMPLICIT_SOME);
        options.from_str::<NetworkFile>(self.text).map_err(|e| {
            let start = self.offset(e.span.start.line, e.span.start.col);
            let end = self.offset(e.span.end.line, e.span.end.col).max(start);
            self.error(ErrorKind::Syntax, format!("not a valid network file: {}", e.code))
                .at((start, (end - start).max(1)), "here")
                .help("a network file is `Network(inputs: {...}, nodes: {...}, outputs: [...])`; see graphs/README.md")
        })
    }

    fn inputs(&self, file: &NetworkFile) -> Result<Vec<GraphInput>, GraphError> {
        let inputs_at = self.locate_field("inputs").unwrap_or(0);
        let mut inputs: Vec<GraphInput> = Vec::new();
        for (name, shape) in &file.inputs.0 {
            self.check_node_name(name, inputs_at)?;
            if inputs.iter().any(|i| &i.name == name) {
                let span = self
                    .locate_key(name, inputs_at, 1)
                    .unwrap_or((inputs_at, 0));
                return Err(self
                    .error(
                        ErrorKind::DuplicateName,
                        format!("the input \"{name}\" is declared twice"),
                    )
                    .at(span, "declared again here")
                    .help("give every input its own name"));
            }
            if shape.contains(&0) {
                let span = self
                    .locate_key(name, inputs_at, 0)
                    .unwrap_or((inputs_at, 0));
                return Err(self
                    .error(ErrorKind::Shape, format!("input \"{name}\" has an empty axis: {shape:?}"))
                    .at(span, "declared here")
                    .help("give the per-sample shape without the batch axis, every size at least 1: `\"image\": [1, 56, 56]`"));
            }
            inputs.push(GraphInput {
                name: name.clone(),
                shape: shape.clone(),
                kind: InputKind::Data,
            });
        }
        if inputs.is_empty() {
            return Err(self.error(ErrorKind::Structure, "the network declares no inputs").help(
                "declare the inputs with their per-sample shapes: `inputs: { \"image\": [1, 56, 56] }`",
            ));
        }
        Ok(inputs)
    }

    /// Node and input names become parameter names (`conv.weight`), so they need a form
    /// that cannot be confused.
    fn check_node_name(&self, name: &str, section_at: usize) -> Result<(), GraphError> {
        let valid = !name.is_empty()
            && name
                .chars()
                .all(|c| c.is_alphanumeric() || c == '_' || c == '-')
            && name != LOSS_NODE
            && name != LABELS_INPUT;
        if valid {
            return Ok(());
        }
        let span = self
            .locate_key(name, section_at, 0)
            .unwrap_or((section_at, 0));
        let (message, help) = if name == LOSS_NODE || name == LABELS_INPUT {
            (
                format!("the name \"{name}\" is reserved"),
                "`loss` names the loss node and `labels` its class labels; pick another name"
                    .to_string(),
            )
        } else {
            (
                format!("\"{name}\" is not a valid name"),
                "use letters, digits, `_` and `-` only (parameters are named `node.weight`)"
                    .to_string(),
            )
        };
        Err(self
            .error(ErrorKind::Structure, message)
            .at(span, "this name")
            .help(help))
    }

    fn resolve_op(
        &self,
        node: &str,
        spec: &NodeSpec,
        node_at: usize,
    ) -> Result<(RegistryEntry, String, (usize, usize)), GraphError> {
        let text = spec.op.get_ron().trim();
        let op_at = self.text[node_at..]
            .find(text)
            .map_or(node_at, |i| node_at + i);
        let ident_len = text
            .find(|c: char| !(c.is_alphanumeric() || c == '_'))
            .unwrap_or(text.len());
        let (ident, rest) = text.split_at(ident_len);
        let op_span = (op_at, ident_len.max(1));
        let Some(entry) = self.registry.get(&snake_case(ident)).copied() else {
            let known: Vec<String> = self.registry.names().map(camel_case).collect();
            let mut error = self
                .error(
                    ErrorKind::UnknownOp,
                    format!("node \"{node}\": unknown op `{ident}`"),
                )
                .at(op_span, "not a registered op");
            error = match nearest(ident, known.iter().map(String::as_str)) {
                Some(near) => error.help(format!(
                    "did you mean `{near}`? Known ops: {}",
                    known.join(", ")
                )),
                None => error.help(format!("known ops: {}", known.join(", "))),
            };
            return Err(error);
        };
        let rest = rest.trim();
        let hyperparameters = if rest.is_empty() {
            "()".to_string()
        } else {
            rest.to_string()
        };
        Ok((entry, hyperparameters, (op_at, text.len().max(1))))
    }

    fn op_error(&self, node: &str, op_span: (usize, usize), error: CoreError) -> GraphError {
        match error {
            CoreError::Parse {
                op,
                line,
                column,
                message,
            } => {
                // Line and column count within the hyperparameter text, which follows the op's name.
                let op_text = &self.text[op_span.0..op_span.0 + op_span.1];
                let hyper_at = op_text.find('(').unwrap_or(0);
                let at = op_span.0 + hyper_at + offset_in(&op_text[hyper_at..], line, column);
                self.error(
                    ErrorKind::Hyperparameter,
                    format!("node \"{node}\": {op}: {message}"),
                )
                .at((at, 1), "here")
                .help(format!(
                    "see graphs/README.md for {}'s hyperparameters",
                    camel_case(op)
                ))
            }
            other => self
                .error(
                    ErrorKind::Hyperparameter,
                    format!("node \"{node}\": {other}"),
                )
                .at(op_span, "this op"),
        }
    }

    fn resolve_inputs(
        &self,
        node: &str,
        spec: &NodeSpec,
        node_at: usize,
        names: &HashMap<String, ValueId>,
    ) -> Result<Vec<ValueId>, GraphError> {
        let references: Vec<&String> = match (&spec.input, &spec.inputs) {
            (Some(one), None) => vec![one],
            (None, Some(many)) => many.iter().collect(),
            (Some(_), Some(_)) => {
                return Err(self
                    .error(
                        ErrorKind::Structure,
                        format!("node \"{node}\" gives both `input` and `inputs`"),
                    )
                    .at(
                        self.locate_key(node, node_at, 0).unwrap_or((node_at, 0)),
                        "this node",
                    )
                    .help(
                        "use `input: \"a\"` for one input or `inputs: [\"a\", \"b\"]` for several",
                    ));
            }
            (None, None) => vec![],
        };
        let mut resolved = Vec::new();
        for reference in references {
            match names.get(reference) {
                Some(&value) => resolved.push(value),
                None => {
                    let span = self
                        .locate_string(reference, node_at)
                        .unwrap_or((node_at, 0));
                    let mut error = self
                        .error(ErrorKind::UnknownReference, format!("node \"{node}\" reads \"{reference}\", which is neither an input nor a node"))
                        .at(span, "unknown name");
                    if let Some(near) = nearest(reference, names.keys().map(String::as_str)) {
                        error = error.help(format!("did you mean \"{near}\"?"));
                    }
                    return Err(error);
                }
            }
        }
        Ok(resolved)
    }

    /// The nodes in an order where every node follows its inputs, or the cycle that prevents one.
    fn topological_order(
        &self,
        inputs: &[GraphInput],
        drafts: &[Draft],
    ) -> Result<Vec<usize>, GraphError> {
        let mut dag = DiGraph::<usize, ()>::new();
        let vertices: Vec<NodeIndex> = (0..drafts.len()).map(|i| dag.add_node(i)).collect();
        for (index, draft) in drafts.iter().enumerate() {
            for input in &draft.inputs {
                if let ValueId::Node(from) = *input {
                    dag.add_edge(vertices[from], vertices[index], ());
                }
            }
        }
        let _ = inputs;
        match toposort(&dag, None) {
            Ok(order) => Ok(order.into_iter().map(|v| dag[v]).collect()),
            Err(cycle) => {
                let start = dag[cycle.node_id()];
                let path = find_cycle(&dag, start);
                let names: Vec<&str> = path.iter().map(|&i| drafts[i].name.as_str()).collect();
                let nodes_at = self.locate_field("nodes").unwrap_or(0);
                let span = self
                    .locate_key(&drafts[start].name, nodes_at, 0)
                    .unwrap_or((nodes_at, 0));
                Err(self
                    .error(ErrorKind::Cycle, format!("the nodes form a cycle: {}", names.join(" -> ")))
                    .at(span, "this node depends on itself")
                    .help("a network is a DAG: break the cycle by making one of these nodes read an earlier value"))
            }
        }
    }

    fn resolve_outputs(
        &self,
        file: &NetworkFile,
        names: &HashMap<String, ValueId>,
    ) -> Result<Vec<ValueId>, GraphError> {
        let outputs_at = self.locate_field("outputs").unwrap_or(0);
        file.outputs
            .iter()
            .map(|name| self.resolve_reference(name, "outputs", outputs_at, names))
            .collect()
    }

    fn resolve_reference(
        &self,
        name: &str,
        field: &str,
        from: usize,
        names: &HashMap<String, ValueId>,
    ) -> Result<ValueId, GraphError> {
        if let Some(&value) = names.get(name) {
            return Ok(value);
        }
        let span = self.locate_string(name, from).unwrap_or((from, 0));
        let mut error = self
            .error(
                ErrorKind::UnknownReference,
                format!("`{field}` names \"{name}\", which is neither an input nor a node"),
            )
            .at(span, "unknown name");
        if let Some(near) = nearest(name, names.keys().map(String::as_str)) {
            error = error.help(format!("did you mean \"{near}\"?"));
        }
        Err(error)
    }

    /// Adds the loss as a last node, `loss`, and its implicit inputs.
    fn add_loss(
        &self,
        loss: &LossSpec,
        inputs: &mut Vec<GraphInput>,
        drafts: &mut Vec<Draft>,
        names: &HashMap<String, ValueId>,
    ) -> Result<(), GraphError> {
        let loss_at = self.locate_field("loss").unwrap_or(0);
        let loss_span = (loss_at, "loss".len());
        let (op, reads) = match loss {
            LossSpec::SoftmaxCrossEntropy { logits } => {
                let logits = self.resolve_reference(logits, "loss", loss_at, names)?;
                inputs.push(GraphInput {
                    name: LABELS_INPUT.to_string(),
                    shape: vec![],
                    kind: InputKind::Labels,
                });
                (
                    "softmax_cross_entropy",
                    vec![logits, ValueId::Input(inputs.len() - 1)],
                )
            }
            LossSpec::Mse { prediction, target } => {
                let prediction = self.resolve_reference(prediction, "loss", loss_at, names)?;
                let target = self.resolve_reference(target, "loss", loss_at, names)?;
                if let ValueId::Input(i) = target {
                    inputs[i].kind = InputKind::Target;
                }
                ("mse", vec![prediction, target])
            }
        };
        let Some(entry) = self.registry.get(op).copied() else {
            return Err(self
                .error(
                    ErrorKind::UnknownOp,
                    format!(
                        "the loss needs the op `{}`, which is not registered",
                        camel_case(op)
                    ),
                )
                .at(loss_span, "this loss"));
        };
        drafts.push(Draft {
            name: LOSS_NODE.to_string(),
            entry,
            hyperparameters: "()".to_string(),
            op_span: loss_span,
            inputs: reads,
        });
        Ok(())
    }

    /// Runs every node's shape rule in `order`, at batch size [`INFERENCE_BATCH`].
    fn infer_shapes(
        &self,
        inputs: &[GraphInput],
        drafts: Vec<Draft>,
        order: &[usize],
    ) -> Result<Vec<Node>, GraphError> {
        let batched = |shape: &[usize]| -> Vec<usize> {
            std::iter::once(INFERENCE_BATCH)
                .chain(shape.iter().copied())
                .collect()
        };
        let mut shapes: Vec<Option<Vec<usize>>> = vec![None; drafts.len()];
        let mut built: Vec<Option<(Vec<Param>, u64)>> = vec![None; drafts.len()];
        for &index in order {
            let draft = &drafts[index];
            let op = draft
                .entry
                .build::<f64>(&draft.hyperparameters)
                .map_err(|e| self.op_error(&draft.name, draft.op_span, e))?;
            let data: Vec<Vec<usize>> = draft
                .inputs
                .iter()
                .map(|&v| match v {
                    ValueId::Input(i) => batched(&inputs[i].shape),
                    ValueId::Node(n) => batched(shapes[n].as_deref().unwrap_or(&[])),
                })
                .collect();
            let data_refs: Vec<&[usize]> = data.iter().map(Vec::as_slice).collect();
            let shape_error = |e: CoreError| self.shape_error(draft, &drafts, inputs, &shapes, e);
            let specs = op.params(&data_refs).map_err(shape_error)?;
            let mut all = data.clone();
            all.extend(specs.iter().map(|s| s.shape.clone()));
            let all_refs: Vec<&[usize]> = all.iter().map(Vec::as_slice).collect();
            let output = op.output_shape(&all_refs).map_err(shape_error)?;
            let flops = op.flops(&all_refs);
            let params = specs
                .into_iter()
                .map(|spec| Param {
                    name: format!("{}.{}", draft.name, spec.name),
                    spec,
                })
                .collect();
            shapes[index] = Some(output.get(1..).map(<[usize]>::to_vec).unwrap_or_default());
            built[index] = Some((params, flops));
        }
        Ok(drafts
            .into_iter()
            .zip(shapes.into_iter().zip(built))
            .map(|(draft, (shape, built))| {
                let (params, flops) = built.unwrap_or_default();
                Node {
                    name: draft.name,
                    op: draft.entry.name,
                    hyperparameters: draft.hyperparameters,
                    inputs: draft.inputs,
                    params,
                    shape: shape.unwrap_or_default(),
                    flops: flops / INFERENCE_BATCH as u64,
                    entry: draft.entry,
                }
            })
            .collect())
    }

    fn shape_error(
        &self,
        draft: &Draft,
        drafts: &[Draft],
        inputs: &[GraphInput],
        shapes: &[Option<Vec<usize>>],
        error: CoreError,
    ) -> GraphError {
        let kind = if matches!(error, CoreError::Hyperparameter { .. }) {
            ErrorKind::Hyperparameter
        } else {
            ErrorKind::Shape
        };
        // The chain of first inputs back to a graph input, with each value's shape.
        let describe = |start: ValueId| -> String {
            let mut chain = Vec::new();
            let mut value = start;
            loop {
                match value {
                    ValueId::Input(i) => {
                        chain.push(format!("{} {:?}", inputs[i].name, inputs[i].shape));
                        break;
                    }
                    ValueId::Node(n) => {
                        chain.push(format!(
                            "{} {:?}",
                            drafts[n].name,
                            shapes[n].as_deref().unwrap_or(&[])
                        ));
                        match drafts[n].inputs.first() {
                            Some(&next) if chain.len() < 8 => value = next,
                            _ => break,
                        }
                    }
                }
            }
            chain.reverse();
            chain.join(" -> ")
        };
        let paths: Vec<String> = draft
            .inputs
            .iter()
            .enumerate()
            .map(|(i, &v)| format!("input {i}: {}", describe(v)))
            .collect();
        let label = if kind == ErrorKind::Shape {
            "these shapes do not fit"
        } else {
            "this hyperparameter"
        };
        let help = if kind == ErrorKind::Shape {
            format!(
                "per-sample shapes (the batch axis omitted), as they arrive: {}",
                paths.join("; ")
            )
        } else {
            "fix the value; graphs/README.md lists each op's hyperparameters and their ranges"
                .to_string()
        };
        let message = match error {
            CoreError::Node { source, .. } => source.to_string(),
            other => other.to_string(),
        };
        self.error(kind, format!("node \"{}\": {message}", draft.name))
            .at(draft.op_span, label)
            .help(help)
    }

    fn unused_nodes(&self, graph: &Graph, nodes_at: usize) -> Vec<GraphError> {
        let mut used = vec![false; graph.nodes.len()];
        let mut stack: Vec<usize> = graph
            .outputs
            .iter()
            .filter_map(|v| match v {
                ValueId::Node(n) => Some(*n),
                ValueId::Input(_) => None,
            })
            .chain(graph.loss)
            .collect();
        while let Some(n) = stack.pop() {
            if std::mem::replace(&mut used[n], true) {
                continue;
            }
            stack.extend(graph.nodes[n].inputs.iter().filter_map(|v| match v {
                ValueId::Node(m) => Some(*m),
                ValueId::Input(_) => None,
            }));
        }
        graph
            .nodes
            .iter()
            .zip(used)
            .filter(|(_, used)| !used)
            .map(|(node, _)| {
                let span = self
                    .locate_key(&node.name, nodes_at, 0)
                    .unwrap_or((nodes_at, 0));
                self.error(
                    ErrorKind::UnusedNode,
                    format!(
                        "node \"{}\" is not used by any output or the loss",
                        node.name
                    ),
                )
                .at(span, "unused")
                .help("remove it, or name it in `outputs`")
            })
            .collect()
    }

    /// The byte offset of 1-based `line` and `column` (in characters).
    fn offset(&self, line: usize, column: usize) -> usize {
        offset_in(self.text, line, column)
    }

    /// The offset of a top-level field name (`nodes:`), the first occurrence followed by `:`.
    fn locate_field(&self, field: &str) -> Option<usize> {
        let mut from = 0;
        while let Some(i) = self.text[from..].find(field) {
            let at = from + i;
            let before_ok = at == 0
                || !self.text[..at]
                    .ends_with(|c: char| c.is_alphanumeric() || c == '_' || c == '"');
            let after = self.text[at + field.len()..].trim_start();
            if before_ok && after.starts_with(':') {
                return Some(at);
            }
            from = at + field.len();
        }
        None
    }

    /// The span of the `skip`-th (0-based) key `"name":` after `from`.
    fn locate_key(&self, name: &str, from: usize, skip: usize) -> Option<(usize, usize)> {
        let quoted = format!("\"{name}\"");
        let mut search = from;
        let mut seen = 0;
        while let Some(i) = self.text.get(search..)?.find(&quoted) {
            let at = search + i;
            if self.text[at + quoted.len()..].trim_start().starts_with(':') {
                if seen == skip {
                    return Some((at, quoted.len()));
                }
                seen += 1;
            }
            search = at + quoted.len();
        }
        None
    }

    /// The span of the first string `"name"` after `from`.
    fn locate_string(&self, name: &str, from: usize) -> Option<(usize, usize)> {
        let quoted = format!("\"{name}\"");
        self.text
            .get(from..)?
            .find(&quoted)
            .map(|i| (from + i, quoted.len()))
    }
}

/// The byte offset of 1-based `line` and `column` (in characters) in `text`.
fn offset_in(text: &str, line: usize, column: usize) -> usize {
    let line_start: usize = text
        .split_inclusive('\n')
        .take(line.saturating_sub(1))
        .map(str::len)
        .sum();
    let rest = &text[line_start.min(text.len())..];
    let in_line = rest
        .char_indices()
        .nth(column.saturating_sub(1))
        .map_or(rest.len(), |(i, _)| i);
    (line_start + in_line).min(text.len())
}

/// A simple cycle through `start`, as node weights, `start` first and last.
fn find_cycle(dag: &DiGraph<usize, ()>, start: usize) -> Vec<usize> {
    let component: HashSet<NodeIndex> = tarjan_scc(dag)
        .into_iter()
        .find(|c| c.iter().any(|&v| dag[v] == start))
        .unwrap_or_default()
        .into_iter()
        .collect();
    let Some(&first) = component.iter().find(|&&v| dag[v] == start) else {
        return vec![start, start];
    };
    // Depth-first search inside the component for a path back to `first`.
    let mut path = vec![first];
    let mut visited = HashSet::from([first]);
    fn dfs(
        dag: &DiGraph<usize, ()>,
        within: &HashSet<NodeIndex>,
        target: NodeIndex,
        path: &mut Vec<NodeIndex>,
        visited: &mut HashSet<NodeIndex>,
    ) -> bool {
        let Some(&here) = path.last() else {
            return false;
        };
        let mut next: Vec<NodeIndex> = dag.neighbors(here).filter(|n| within.contains(n)).collect();
        next.sort_by_key(|n| dag[*n]);
        for n in next {
            if n == target {
                path.push(n);
                return true;
            }
            if visited.insert(n) {
                path.push(n);
                if dfs(dag, within, target, path, visited) {
                    return true;
                }
                path.pop();
            }
        }
        false
    }
    dfs(dag, &component, first, &mut path, &mut visited);
    path.into_iter().map(|v| dag[v]).collect()
}

/// Nodes grouped by depth (inputs have depth 0, a node one more than its deepest input).
fn waves(nodes: &[Node], order: &[usize]) -> Vec<Vec<usize>> {
    let mut depth = vec![0usize; nodes.len()];
    for &n in order {
        depth[n] = 1 + nodes[n]
            .inputs
            .iter()
            .map(|v| match v {
                ValueId::Node(m) => depth[*m],
                ValueId::Input(_) => 0,
            })
            .max()
            .unwrap_or(0);
    }
    let mut waves = vec![Vec::new(); depth.iter().copied().max().unwrap_or(0)];
    for (n, &d) in depth.iter().enumerate() {
        waves[d - 1].push(n);
    }
    waves
}

/// `MaxPool2d` -> `max_pool2d`: the registry's names from the file's; snake_case passes through.
pub fn snake_case(name: &str) -> String {
    let mut out = String::new();
    let mut previous: Option<char> = None;
    for c in name.chars() {
        if c.is_uppercase() {
            if previous.is_some_and(char::is_lowercase) {
                out.push('_');
            }
            out.extend(c.to_lowercase());
        } else {
            out.push(c);
        }
        previous = Some(c);
    }
    out
}

/// `max_pool2d` -> `MaxPool2d`: how an op is written in a file.
pub fn camel_case(name: &str) -> String {
    name.split('_')
        .map(|word| {
            let mut chars = word.chars();
            chars
                .next()
                .map(|c| c.to_uppercase().chain(chars).collect::<String>())
                .unwrap_or_default()
        })
        .collect()
}

/// The candidate closest to `name`, if it is close enough to be a likely typo.
pub(crate) fn nearest<'a>(
    name: &str,
    candidates: impl Iterator<Item = &'a str>,
) -> Option<&'a str> {
    let lower = name.to_lowercase();
    candidates
        .map(|c| (strsim::levenshtein(&lower, &c.to_lowercase()), c))
        .filter(|(distance, c)| *distance <= (c.len().max(name.len()) / 3).max(2))
        .min()
        .map(|(_, c)| c)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn op_names_convert_both_ways() {
        for (camel, snake) in [
            ("Conv2d", "conv2d"),
            ("MaxPool2d", "max_pool2d"),
            ("GlobalMaxPool", "global_max_pool"),
            ("SoftmaxCrossEntropy", "softmax_cross_entropy"),
            ("LeakyRelu", "leaky_relu"),
            ("Relu", "relu"),
        ] {
            assert_eq!(snake_case(camel), snake);
            assert_eq!(camel_case(snake), camel);
        }
        assert_eq!(snake_case("max_pool2d"), "max_pool2d");
    }

    #[test]
    fn nearest_suggests_typos_only() {
        let names = ["image", "conv", "relu"];
        assert_eq!(nearest("imgae", names.into_iter()), Some("image"));
        assert_eq!(nearest("Relu", names.into_iter()), Some("relu"));
        assert_eq!(nearest("softmax", names.into_iter()), None);
    }

    #[test]
    fn offsets_count_characters_from_one() {
        let text = "ab\ncdé\nf";
        assert_eq!(offset_in(text, 1, 1), 0);
        assert_eq!(offset_in(text, 2, 3), 5);
        assert_eq!(offset_in(text, 3, 1), 8);
    }
}
