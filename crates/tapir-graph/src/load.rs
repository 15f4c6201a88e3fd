//! Loading: RON text -> a validated [`Graph`]. Every check happens here, before anything
//! runs, and every failure is a [`GraphError`] that says what is wrong, points at the text
//! to change and says how to change it.
//!
//! The checks run in the order a reader would fix things: the file's syntax
//! (`load/syntax.rs`), names, ops and their hyperparameters (`load/hyperparameters.rs`),
//! references, arity, cycles (`load/order.rs`), outputs, loss and init, then shapes and the
//! batch axis (`load/shapes.rs`, with the value probe of `load/probe.rs`). Each op is built
//! once, when its hyperparameters are checked. The parsed file carries no positions, so
//! `load/locate.rs` finds fields, names and values again in the text, never in a comment.

mod hyperparameters;
mod locate;
mod order;
mod probe;
mod shapes;
mod syntax;
mod words;

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;

use miette::NamedSource;
use ron::extensions::Extensions;
use tapir_core::{Arity, Op, Registry, RegistryEntry};

use crate::error::{ErrorKind, GraphError};
use crate::graph::{Graph, GraphInput, InputKind, ValueId};
use crate::schema::{Init, LossSpec, NetworkFile, NodeSpec};
use locate::{Span, Text};
use order::waves;
use words::{inputs_phrase, quoted_list};

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
            text: Text::new(text),
            registry,
        }
        .load()
    }
}

struct Loader<'a> {
    source: Arc<NamedSource<String>>,
    text: Text<'a>,
    registry: &'a Registry,
}

/// Where the parts of a node, or of the loss, are in the file.
#[derive(Debug, Clone, Copy)]
struct Place {
    /// The node's name as a map key, or the `loss` field.
    key: Span,
    /// The op as written, hyperparameters included (`Conv2d(filters: 8, kernel: 3)`).
    op: Span,
    /// `input: "a"`: the field name and its value.
    input: Option<(Span, Span)>,
    /// `inputs: ["a", "b"]`: the field name and its value.
    inputs: Option<(Span, Span)>,
}

impl Place {
    /// The op's name alone (`Conv2d`), where unknown ops and arity point.
    fn op_name(&self, text: &str) -> Span {
        let (start, len) = self.op;
        let ident = text[start..start + len]
            .find(|c: char| !(c.is_alphanumeric() || c == '_'))
            .unwrap_or(len);
        (start, ident.max(1))
    }

    /// The field and value that name the node's inputs, if any.
    fn reads(&self) -> Option<Span> {
        self.input
            .or(self.inputs)
            .map(|(field, value)| (field.0, value.0 + value.1 - field.0))
    }
}

/// An op a node names: its registry entry, its hyperparameters as text, and the op built
/// from them.
type ResolvedOp = (RegistryEntry, String, Arc<dyn Op<f64>>);

/// A node as far as the loader got with it.
struct Draft {
    name: String,
    entry: RegistryEntry,
    hyperparameters: String,
    /// The op, built once from its hyperparameters; every check after that uses it.
    op: Arc<dyn Op<f64>>,
    place: Place,
    inputs: Vec<ValueId>,
    /// Where each input is named, in order (none for the loss's implicit labels).
    reads: Vec<Option<Span>>,
}

impl Draft {
    /// How messages name it: `node "conv"`, or `the loss`.
    fn title(&self) -> String {
        if self.name == LOSS_NODE {
            "the loss".to_string()
        } else {
            format!("node \"{}\"", self.name)
        }
    }

    /// The op as a file names it (`MaxPool2d`).
    fn op(&self) -> String {
        camel_case(self.entry.name)
    }
}

/// The spans of a map section (`inputs: {...}`, `nodes: {...}`): the field, its value, and
/// the range and depth of its entries.
#[derive(Debug, Clone)]
struct Section {
    field: Span,
    value: Span,
    inside: std::ops::Range<usize>,
    depth: u32,
}

impl Loader<'_> {
    fn error(&self, kind: ErrorKind, message: impl Into<String>) -> GraphError {
        GraphError::new(kind, &self.source, message)
    }

    fn src(&self) -> &str {
        self.text.source()
    }

    fn load(&self) -> Result<Graph, GraphError> {
        let file = self.parse_file()?;
        let inputs_section = self.section("inputs");
        let nodes_section = self.section("nodes");
        let mut inputs = self.inputs(&file, &inputs_section)?;
        let names = self.names(&file, &inputs, &inputs_section, &nodes_section)?;
        let places: Vec<Place> = self.node_places(&file, &nodes_section);
        let mut drafts = Vec::new();
        for (index, ((name, spec), place)) in file.nodes.0.iter().zip(&places).enumerate() {
            let (entry, hyperparameters, op) = self.resolve_op(name, place)?;
            let (inputs, reads) =
                self.resolve_inputs(name, spec, place, &names, &entry, op.as_ref())?;
            let draft = Draft {
                name: name.clone(),
                entry,
                hyperparameters,
                op,
                place: *place,
                inputs,
                reads,
            };
            self.check_arity(&draft, index, spec, &file)?;
            drafts.push(draft);
        }
        let mut order = self.topological_order(&inputs, &drafts, &file)?;
        let outputs = self.resolve_outputs(&file, &names)?;
        if let Some(loss) = &file.loss {
            self.add_loss(loss, &mut inputs, &mut drafts, &names)?;
            order.push(drafts.len() - 1); // the loss node reads only earlier values
        }
        self.check_init(&file)?;
        let nodes = self.infer_shapes(&inputs, drafts, &order, &outputs)?;
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
        graph.warnings = self.unused_nodes(&graph, &places);
        Ok(graph)
    }

    fn parse_file(&self) -> Result<NetworkFile, GraphError> {
        let options = ron::Options::default().with_default_extension(Extensions::IMPLICIT_SOME);
        options
            .from_str::<NetworkFile>(self.src())
            .map_err(|e| self.syntax_error(e))
    }

    /// The top-level map `field`; the file parsed, so it is there unless it was omitted.
    fn section(&self, field: &str) -> Section {
        let found = self.text.top_field(field).and_then(|field| {
            let value = self.text.value_after(field.0 + field.1)?;
            let (inside, depth) = self.text.inside(value);
            Some(Section {
                field,
                value,
                inside,
                depth,
            })
        });
        found.unwrap_or(Section {
            field: (0, 0),
            value: (0, 0),
            inside: self.text.all(),
            depth: 2,
        })
    }

    /// The span of the `index`-th key of `section`, counting keys named `name` before it.
    fn key_span(&self, section: &Section, keys: &[&String], index: usize) -> Span {
        let name = keys[index];
        let earlier = keys[..index].iter().filter(|k| **k == name).count();
        self.text
            .key(name, section.inside.clone(), section.depth, earlier)
            .unwrap_or(section.field)
    }

    fn inputs(&self, file: &NetworkFile, section: &Section) -> Result<Vec<GraphInput>, GraphError> {
        let keys: Vec<&String> = file.inputs.0.iter().map(|(name, _)| name).collect();
        let mut inputs: Vec<GraphInput> = Vec::new();
        for (index, (name, shape)) in file.inputs.0.iter().enumerate() {
            let key = self.key_span(section, &keys, index);
            self.check_name(name, key)?;
            if let Some(first) = inputs.iter().position(|i| &i.name == name) {
                let first = self.key_span(section, &keys, first);
                return Err(self
                    .error(
                        ErrorKind::DuplicateName,
                        format!("the input \"{name}\" is declared twice"),
                    )
                    .at(key, "declared again here")
                    .help(format!(
                        "remove one of the two (the first is on line {}), or give each its own name",
                        self.line(first)
                    )));
            }
            if let Some(axis) = shape.iter().position(|&d| d == 0) {
                let value = self.text.value_after(key.0 + key.1).unwrap_or(key);
                let fixed: Vec<usize> = shape.iter().map(|&d| d.max(1)).collect();
                return Err(self
                    .error(
                        ErrorKind::Shape,
                        format!("input \"{name}\" has an axis of size 0: {shape:?}"),
                    )
                    .at(value, format!("axis {axis} has size 0"))
                    .help(format!(
                        "give the per-sample shape without the batch axis, every size at least 1, \
                         e.g. `\"{name}\": {fixed:?}`"
                    )));
            }
            if tapir_core::allocatable_elements(shape).is_none() {
                let value = self.text.value_after(key.0 + key.1).unwrap_or(key);
                return Err(self
                    .error(
                        ErrorKind::Shape,
                        format!(
                            "input \"{name}\" has more elements per sample than fit in memory: \
                             {shape:?}"
                        ),
                    )
                    .at(value, "too many elements")
                    .help(too_large_help(
                        "give the per-sample shape without the batch axis, in sizes that fit",
                    )));
            }
            inputs.push(GraphInput {
                name: name.clone(),
                shape: shape.clone(),
                kind: InputKind::Data,
            });
        }
        if inputs.is_empty() {
            let nodes: Vec<&str> = file.nodes.0.iter().map(|(n, _)| n.as_str()).collect();
            let mut unknown: Vec<&str> = Vec::new();
            for (_, spec) in &file.nodes.0 {
                for reference in spec.input.iter().chain(spec.inputs.iter().flatten()) {
                    if !nodes.contains(&reference.as_str())
                        && !unknown.contains(&reference.as_str())
                    {
                        unknown.push(reference);
                    }
                }
            }
            let example = if unknown.is_empty() {
                "`inputs: { \"image\": [1, 28, 28] }`".to_string()
            } else {
                let entries: Vec<String> = unknown
                    .iter()
                    .map(|name| format!("\"{name}\": [channels, height, width]"))
                    .collect();
                format!(
                    "the nodes read {}: `inputs: {{ {} }}`",
                    quoted_list(unknown.iter().copied()),
                    entries.join(", ")
                )
            };
            return Err(self
                .error(ErrorKind::Structure, "the network declares no inputs")
                .at(
                    if section.value.1 > 0 {
                        section.value
                    } else {
                        section.field
                    },
                    "no inputs",
                )
                .help(format!(
                    "declare each input with its per-sample shape (no batch axis); {example}"
                )));
        }
        Ok(inputs)
    }

    /// Every name a reference can use, checked for clashes: inputs first, then nodes.
    fn names(
        &self,
        file: &NetworkFile,
        inputs: &[GraphInput],
        inputs_section: &Section,
        nodes_section: &Section,
    ) -> Result<HashMap<String, ValueId>, GraphError> {
        let input_keys: Vec<&String> = file.inputs.0.iter().map(|(name, _)| name).collect();
        let node_keys: Vec<&String> = file.nodes.0.iter().map(|(name, _)| name).collect();
        let mut names: HashMap<String, ValueId> = inputs
            .iter()
            .enumerate()
            .map(|(i, input)| (input.name.clone(), ValueId::Input(i)))
            .collect();
        for (index, name) in node_keys.iter().enumerate() {
            let key = self.key_span(nodes_section, &node_keys, index);
            self.check_name(name, key)?;
            let Some(earlier) = names.insert(name.to_string(), ValueId::Node(index)) else {
                continue;
            };
            let error = match earlier {
                ValueId::Input(i) => {
                    let first = self.key_span(inputs_section, &input_keys, i);
                    self.error(
                        ErrorKind::DuplicateName,
                        format!("node \"{name}\" has the name of an input"),
                    )
                    .at(
                        key,
                        format!("named like the input on line {}", self.line(first)),
                    )
                    .help(
                        "inputs and nodes share one set of names: rename the node, and make \
                         the nodes that read it use the new name",
                    )
                }
                ValueId::Node(n) => {
                    let first = self.key_span(nodes_section, &node_keys, n);
                    self.error(
                        ErrorKind::DuplicateName,
                        format!(
                            "two nodes are named \"{name}\" (lines {} and {})",
                            self.line(first),
                            self.line(key)
                        ),
                    )
                    .at(key, "named again here")
                    .help("rename one of them, and make the nodes that read it use the new name")
                }
            };
            return Err(error);
        }
        Ok(names)
    }

    /// Node and input names become parameter names (`conv.weight`), so they need a form
    /// that cannot be confused.
    fn check_name(&self, name: &str, key: Span) -> Result<(), GraphError> {
        let valid = !name.is_empty()
            && name
                .chars()
                .all(|c| c.is_alphanumeric() || c == '_' || c == '-')
            && name != LOSS_NODE
            && name != LABELS_INPUT;
        if valid {
            return Ok(());
        }
        let (message, label, help) = if name == LOSS_NODE || name == LABELS_INPUT {
            (
                format!("the name \"{name}\" is reserved"),
                "reserved",
                "`loss` names the node a loss adds and `labels` its class labels: \
                 rename this one, and the references to it"
                    .to_string(),
            )
        } else {
            (
                format!("\"{name}\" is not a valid name"),
                "this name",
                "use letters, digits, `_` and `-` only (parameters are named `node.weight`)"
                    .to_string(),
            )
        };
        Err(self
            .error(ErrorKind::Structure, message)
            .at(key, label)
            .help(help))
    }

    /// Where each node's parts are.
    fn node_places(&self, file: &NetworkFile, section: &Section) -> Vec<Place> {
        let keys: Vec<&String> = file.nodes.0.iter().map(|(name, _)| name).collect();
        (0..keys.len())
            .map(|index| {
                let key = self.key_span(section, &keys, index);
                let body = self.text.value_after(key.0 + key.1);
                let field = |name: &str| -> Option<(Span, Span)> {
                    let (inside, depth) = self.text.inside(body?);
                    let field = self.text.field(name, inside, depth)?;
                    let value = self.text.value_after(field.0 + field.1)?;
                    Some((field, value))
                };
                Place {
                    key,
                    op: field("op").map_or(key, |(_, value)| value),
                    input: field("input"),
                    inputs: field("inputs"),
                }
            })
            .collect()
    }

    /// The op a node names: its registry entry, its hyperparameter text and the op built
    /// from them.
    fn resolve_op(&self, node: &str, place: &Place) -> Result<ResolvedOp, GraphError> {
        let (start, len) = place.op;
        let text = &self.src()[start..start + len];
        let name = place.op_name(self.src());
        let ident = &self.src()[name.0..name.0 + name.1];
        let Some(entry) = self.registry.get(&snake_case(ident)).copied() else {
            let known: Vec<String> = self.registry.names().map(camel_case).collect();
            let error = self.error(
                ErrorKind::UnknownOp,
                format!("node \"{node}\": unknown op `{ident}`"),
            );
            return Err(match nearest(ident, known.iter().map(String::as_str)) {
                Some(near) => error
                    .at(name, format!("did you mean `{near}`?"))
                    .help(format!("write `{near}`")),
                None => error.at(name, "not a registered op").help(format!(
                    "use one of the known ops: {}; a new op must be registered before the \
                     file names it",
                    known.join(", ")
                )),
            });
        };
        let rest = text[ident.len()..].trim();
        let hyperparameters = if rest.is_empty() {
            "()".to_string()
        } else {
            rest.to_string()
        };
        // Build now, so that hyperparameters that do not parse are reported before anything
        // that depends on them.
        let op = entry
            .build::<f64>(&hyperparameters)
            .map_err(|e| self.op_error(&format!("node \"{node}\""), &entry, place, e))?;
        Ok((entry, hyperparameters, op))
    }

    fn resolve_inputs(
        &self,
        node: &str,
        spec: &NodeSpec,
        place: &Place,
        names: &HashMap<String, ValueId>,
        entry: &RegistryEntry,
        op: &dyn Op<f64>,
    ) -> Result<(Vec<ValueId>, Vec<Option<Span>>), GraphError> {
        let (references, spans): (Vec<&String>, Vec<Option<Span>>) =
            match (&spec.input, &spec.inputs) {
                (Some(_), Some(_)) => {
                    let takes_one = op.arity() == Arity::Exactly(1);
                    let op = camel_case(entry.name);
                    // Point at the one to remove.
                    let (remove, help) = if takes_one {
                        (
                            place.inputs,
                            format!("{op} reads one value: keep `input` and remove `inputs`"),
                        )
                    } else {
                        (
                            place.input,
                            format!("{op} reads several values: keep `inputs` and remove `input`"),
                        )
                    };
                    let span = remove.map_or(place.key, |(field, value)| {
                        (field.0, value.0 + value.1 - field.0)
                    });
                    return Err(self
                        .error(
                            ErrorKind::Structure,
                            format!("node \"{node}\" gives both `input` and `inputs`"),
                        )
                        .at(span, "remove this")
                        .help(help));
                }
                (Some(one), None) => (vec![one], vec![place.input.map(|(_, v)| v)]),
                (None, Some(many)) => {
                    let spans = place.inputs.map_or_else(Vec::new, |(_, value)| {
                        let (inside, _) = self.text.inside(value);
                        self.text.strings(inside)
                    });
                    (
                        many.iter().collect(),
                        (0..many.len()).map(|i| spans.get(i).copied()).collect(),
                    )
                }
                (None, None) => (Vec::new(), Vec::new()),
            };
        let mut resolved = Vec::new();
        for (reference, span) in references.into_iter().zip(&spans) {
            match names.get(reference) {
                Some(&value) => resolved.push(value),
                None => {
                    return Err(self.unknown_reference(
                        format!("node \"{node}\" reads \"{reference}\", which is neither an input nor a node"),
                        reference,
                        span.unwrap_or(place.key),
                        names,
                        "the names it can read",
                    ));
                }
            }
        }
        Ok((resolved, spans))
    }

    fn unknown_reference(
        &self,
        message: String,
        reference: &str,
        span: Span,
        names: &HashMap<String, ValueId>,
        listing: &str,
    ) -> GraphError {
        let error = self.error(ErrorKind::UnknownReference, message);
        match nearest(reference, names.keys().map(String::as_str)) {
            Some(near) => error
                .at(span, format!("did you mean \"{near}\"?"))
                .help(format!("write \"{near}\"")),
            None => {
                let mut known: Vec<(&ValueId, &str)> =
                    names.iter().map(|(name, v)| (v, name.as_str())).collect();
                known.sort();
                error.at(span, "unknown name").help(format!(
                    "{listing}: {}",
                    quoted_list(known.into_iter().map(|(_, name)| name))
                ))
            }
        }
    }

    /// Checks the number of inputs of `draft`, the `index`-th node, written as `spec`.
    fn check_arity(
        &self,
        draft: &Draft,
        index: usize,
        spec: &NodeSpec,
        file: &NetworkFile,
    ) -> Result<(), GraphError> {
        let arity = draft.op.arity();
        let got = draft.inputs.len();
        if arity.allows(got) {
            return Ok(());
        }
        let op = draft.op();
        let name = &draft.name;
        let takes = inputs_phrase(arity);
        let message = format!("node \"{name}\": {op} takes {takes}, got {got}");
        let given: Vec<&String> = spec
            .input
            .iter()
            .chain(spec.inputs.iter().flatten())
            .collect();
        let help = if got == 0 {
            // The node above it is what a file read from top to bottom most likely meant.
            let above = index
                .checked_sub(1)
                .map(|i| file.nodes.0[i].0.as_str())
                .or(file.inputs.0.first().map(|(n, _)| n.as_str()))
                .unwrap_or("image");
            if arity.allows(1) {
                format!("name the value it reads, e.g. the node above it: `input: \"{above}\"`")
            } else {
                format!("name the values it reads: `inputs: [\"{above}\", ...]`")
            }
        } else if arity.allows(1) && got > 1 {
            let combine: Vec<&str> = ["add", "concat", "mul"]
                .into_iter()
                .filter(|o| self.registry.get(o).is_some())
                .collect();
            let combine: Vec<String> = combine.into_iter().map(camel_case).collect();
            let first = given.first().map_or("a", |g| g.as_str());
            if combine.is_empty() {
                format!("{op} reads one value: `input: \"{first}\"`")
            } else {
                format!(
                    "{op} reads one value: `input: \"{first}\"`; combine several values first \
                     with {}",
                    combine.join(", ")
                )
            }
        } else {
            let listed: Vec<String> = given.iter().map(|g| format!("\"{g}\"")).collect();
            format!("{op} takes {takes}: `inputs: [{}, ...]`", listed.join(", "))
        };
        let (span, label) = match draft.place.reads() {
            Some(span) => (
                span,
                format!("{got} {}", if got == 1 { "input" } else { "inputs" }),
            ),
            None => (
                draft.place.op_name(self.src()),
                format!("{op} takes {takes}"),
            ),
        };
        Err(self
            .error(ErrorKind::Arity, message)
            .at(span, label)
            .help(help))
    }

    fn resolve_outputs(
        &self,
        file: &NetworkFile,
        names: &HashMap<String, ValueId>,
    ) -> Result<Vec<ValueId>, GraphError> {
        let field = self.text.top_field("outputs").unwrap_or((0, 0));
        let value = self.text.value_after(field.0 + field.1).unwrap_or(field);
        if file.outputs.is_empty() {
            let suggestion = match &file.loss {
                Some(LossSpec::SoftmaxCrossEntropy { logits }) => logits.clone(),
                Some(LossSpec::Mse { prediction, .. }) => prediction.clone(),
                None => file
                    .nodes
                    .0
                    .last()
                    .map_or("logits".to_string(), |(n, _)| n.clone()),
            };
            return Err(self
                .error(ErrorKind::Structure, "the network has no outputs")
                .at(value, "empty")
                .help(format!(
                    "name the nodes whose values the network returns: `outputs: [\"{suggestion}\"]`"
                )));
        }
        let (inside, _) = self.text.inside(value);
        let spans = self.text.strings(inside);
        file.outputs
            .iter()
            .enumerate()
            .map(|(i, name)| {
                names.get(name).copied().ok_or_else(|| {
                    self.unknown_reference(
                        format!("`outputs` names \"{name}\", which is neither an input nor a node"),
                        name,
                        spans.get(i).copied().unwrap_or(value),
                        names,
                        "the names it can use",
                    )
                })
            })
            .collect()
    }

    /// Adds the loss as a last node, `loss`, and its implicit inputs.
    fn add_loss(
        &self,
        loss: &LossSpec,
        inputs: &mut Vec<GraphInput>,
        drafts: &mut Vec<Draft>,
        names: &HashMap<String, ValueId>,
    ) -> Result<(), GraphError> {
        let field = self.text.top_field("loss").unwrap_or((0, 0));
        let value = self.text.value_after(field.0 + field.1).unwrap_or(field);
        let (inside, depth) = self.text.inside(value);
        let locate = |name: &str| -> Span {
            self.text
                .field(name, inside.clone(), depth)
                .and_then(|f| self.text.value_after(f.0 + f.1))
                .unwrap_or(value)
        };
        let resolve = |reference: &str, field: &str| -> Result<(ValueId, Span), GraphError> {
            let span = locate(field);
            match names.get(reference) {
                Some(&v) => Ok((v, span)),
                None => Err(self.unknown_reference(
                    format!("the loss reads \"{reference}\", which is neither an input nor a node"),
                    reference,
                    span,
                    names,
                    "the names it can read",
                )),
            }
        };
        let (op, reads, spans) = match loss {
            LossSpec::SoftmaxCrossEntropy { logits } => {
                let (logits, span) = resolve(logits, "logits")?;
                inputs.push(GraphInput {
                    name: LABELS_INPUT.to_string(),
                    shape: vec![],
                    kind: InputKind::Labels,
                });
                (
                    "softmax_cross_entropy",
                    vec![logits, ValueId::Input(inputs.len() - 1)],
                    vec![Some(span), None],
                )
            }
            LossSpec::Mse { prediction, target } => {
                let (prediction, prediction_span) = resolve(prediction, "prediction")?;
                let (target, target_span) = resolve(target, "target")?;
                if let ValueId::Input(i) = target {
                    inputs[i].kind = InputKind::Target;
                }
                (
                    "mse",
                    vec![prediction, target],
                    vec![Some(prediction_span), Some(target_span)],
                )
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
                .at(value, "this loss")
                .help(format!("register `{}` with the other ops", camel_case(op))));
        };
        let place = Place {
            key: field,
            op: value,
            input: None,
            inputs: None,
        };
        let hyperparameters = "()".to_string();
        let op = entry
            .build::<f64>(&hyperparameters)
            .map_err(|e| self.op_error("the loss", &entry, &place, e))?;
        drafts.push(Draft {
            name: LOSS_NODE.to_string(),
            entry,
            hyperparameters,
            op,
            place,
            inputs: reads,
            reads: spans,
        });
        Ok(())
    }

    /// A constant initialisation must be a number in both precisions: NaN or infinite
    /// parameters make every output NaN, and networks train in `f32`.
    fn check_init(&self, file: &NetworkFile) -> Result<(), GraphError> {
        let rules = [("weights", file.init.weights), ("biases", file.init.biases)];
        for (field, rule) in rules {
            let Init::Constant(c) = rule else {
                continue;
            };
            // `as` rounds a finite f64 beyond f32's range to infinity, which is the question.
            let (problem, label) = if !c.is_finite() {
                ("is not a finite number", "not a finite number")
            } else if !(c as f32).is_finite() {
                (
                    "is infinite in f32, the precision networks train in",
                    "infinite in f32",
                )
            } else {
                continue;
            };
            let init = self.text.top_field("init").unwrap_or((0, 0));
            let value = self.text.value_after(init.0 + init.1).unwrap_or(init);
            let (inside, depth) = self.text.inside(value);
            let span = self
                .text
                .field(field, inside, depth)
                .and_then(|f| self.text.value_after(f.0 + f.1))
                .unwrap_or(value);
            return Err(self
                .error(
                    ErrorKind::Hyperparameter,
                    format!("`init`: the constant {c:e} for the {field} {problem}"),
                )
                .at(span, label)
                .help(format!(
                    "give a finite number of at most {:e} in size (`{field}: Constant(0.1)`), \
                     or another rule: He, Glorot, Zeros",
                    f32::MAX
                )));
        }
        Ok(())
    }

    fn unused_nodes(&self, graph: &Graph, places: &[Place]) -> Vec<GraphError> {
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
            .enumerate()
            .filter(|(_, (_, used))| !used)
            .map(|(index, (node, _))| {
                let span = places.get(index).map_or((0, 0), |p| p.key);
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

    /// The 1-based line of byte offset `at`.
    fn line(&self, at: Span) -> usize {
        self.text.line(at.0)
    }
}

/// How to fix a shape too large to allocate: the limit, then `fix`.
fn too_large_help(fix: &str) -> String {
    format!(
        "every value is allocated whole, and an array holds at most {} numbers (isize::MAX \
         bytes of f64); {fix}",
        crate::summary::group_digits(tapir_core::MAX_ELEMENTS as u64)
    )
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

    /// Counts how often it is built from its hyperparameters.
    #[derive(Debug, Clone)]
    struct Counted;

    static BUILDS: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

    impl<'de> serde::Deserialize<'de> for Counted {
        fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
            #[derive(serde::Deserialize)]
            struct Unit;
            Unit::deserialize(deserializer)?;
            BUILDS.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            Ok(Counted)
        }
    }

    impl<F: tapir_core::Float> tapir_core::Op<F> for Counted {
        fn name(&self) -> &'static str {
            "counted"
        }
        fn arity(&self) -> Arity {
            Arity::Exactly(1)
        }
        fn output_shape(&self, inputs: &[&[usize]]) -> tapir_core::Result<Vec<usize>> {
            Arity::Exactly(1).check("counted", inputs.len())?;
            Ok(inputs[0].to_vec())
        }
        fn forward(
            &self,
            inputs: &[ndarray::ArrayViewD<F>],
        ) -> tapir_core::Result<ndarray::ArrayD<F>> {
            Ok(inputs[0].to_owned())
        }
        fn backward(
            &self,
            cx: &tapir_core::BackwardCx<F>,
        ) -> tapir_core::Result<Vec<Option<ndarray::ArrayD<F>>>> {
            Ok(vec![Some(cx.output_grad.to_owned())])
        }
    }

    impl tapir_core::OpType for Counted {
        const NAME: &'static str = "counted";
        fn gradcheck_cases() -> Vec<tapir_core::GradcheckCase> {
            Vec::new()
        }
    }

    #[test]
    fn each_op_is_built_once_while_loading() {
        let mut registry = tapir_ops::builtin_registry();
        registry.register::<Counted>().unwrap();
        let text = r#"Network(
            inputs: { "x": [4] },
            nodes: { "c": (op: Counted, input: "x") },
            outputs: ["c"],
        )"#;
        let before = BUILDS.load(std::sync::atomic::Ordering::SeqCst);
        Graph::parse("counted.ron", text, &registry).unwrap();
        let after = BUILDS.load(std::sync::atomic::Ordering::SeqCst);
        assert_eq!(after - before, 1);
    }

    #[test]
    fn nearest_suggests_typos_only() {
        let names = ["image", "conv", "relu"];
        assert_eq!(nearest("imgae", names.into_iter()), Some("image"));
        assert_eq!(nearest("Relu", names.into_iter()), Some("relu"));
        assert_eq!(nearest("softmax", names.into_iter()), None);
    }
}
