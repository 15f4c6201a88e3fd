//! Shape inference: every node's shape rule, in order, at a batch of one. A rule that fails
//! is reported with shapes written `[N, ...]` (the batch axis named, not a confusing 1) and
//! the path along which each input got its shape. Then the batch axis: each node's rule again
//! at other batch sizes, and its values on two samples (`probe.rs`).

use tapir_core::{Error as CoreError, Op, ParamSpec};

use super::{Draft, LOSS_NODE, Loader, probe};
use crate::error::{ErrorKind, GraphError};
use crate::graph::{GraphInput, InputKind, Node, Param, ValueId};

/// The batch size shapes are inferred at; per-sample shapes drop it again.
const INFERENCE_BATCH: usize = 1;
/// A batch size no network uses: run again at it, a failing rule's message shows which
/// sizes are the batch axis.
const PROBE_BATCH: usize = 7919;
/// At most this many values of a path are shown, the nearest ones.
const PATH_VALUES: usize = 6;
/// The width a path line is kept within: the report's, less the hint's indent.
const PATH_WIDTH: usize = 90;

/// A per-sample shape with the batch axis in front: `[N, 8, 26, 26]`.
fn batched_text(shape: &[usize]) -> String {
    let axes: Vec<String> = std::iter::once("N".to_string())
        .chain(shape.iter().map(usize::to_string))
        .collect();
    format!("[{}]", axes.join(", "))
}

/// The op's complaint without the op's name in front (the report names the op already).
fn complaint(error: &CoreError) -> String {
    match error {
        CoreError::Shape { message, .. }
        | CoreError::Hyperparameter { message, .. }
        | CoreError::Value { message, .. }
        | CoreError::Contract { message, .. } => message.clone(),
        CoreError::Node { source, .. } => complaint(source),
        other => other.to_string(),
    }
}

/// `message` with the probe batch written as `N`, if the probe appears nowhere else.
fn symbolic(message: &str) -> Option<String> {
    let replaced = message
        .replace(&format!("[{PROBE_BATCH}, "), "[N, ")
        .replace(&format!("[{PROBE_BATCH}]"), "[N]");
    (!replaced.contains(&PROBE_BATCH.to_string())).then_some(replaced)
}

/// What an op's shape rule says for given data shapes.
struct Ruled {
    params: Vec<ParamSpec>,
    /// The shapes of all the op's inputs: data, then parameters.
    inputs: Vec<Vec<usize>>,
    output: Vec<usize>,
}

/// Runs `op`'s shape rule on data shapes `data`.
fn shape_rule(op: &dyn Op<f64>, data: &[Vec<usize>]) -> Result<Ruled, CoreError> {
    let data_refs: Vec<&[usize]> = data.iter().map(Vec::as_slice).collect();
    let params = op.params(&data_refs)?;
    let mut inputs = data.to_vec();
    inputs.extend(params.iter().map(|s| s.shape.clone()));
    let input_refs: Vec<&[usize]> = inputs.iter().map(Vec::as_slice).collect();
    let output = op.output_shape(&input_refs)?;
    Ok(Ruled {
        params,
        inputs,
        output,
    })
}

/// The per-sample shapes known so far, to describe values.
struct Known<'s> {
    inputs: &'s [GraphInput],
    drafts: &'s [Draft],
    shapes: &'s [Option<Vec<usize>>],
}

impl Known<'_> {
    fn name(&self, value: ValueId) -> &str {
        match value {
            ValueId::Input(i) => &self.inputs[i].name,
            ValueId::Node(n) => &self.drafts[n].name,
        }
    }

    fn shape(&self, value: ValueId) -> &[usize] {
        match value {
            ValueId::Input(i) => &self.inputs[i].shape,
            ValueId::Node(n) => self.shapes[n].as_deref().unwrap_or(&[]),
        }
    }

    fn batched(&self, value: ValueId, batch: usize) -> Vec<usize> {
        std::iter::once(batch)
            .chain(self.shape(value).iter().copied())
            .collect()
    }

    /// `value`, then the value it was computed from (its first input), back to a graph input.
    fn chain(&self, value: ValueId) -> Vec<ValueId> {
        let mut chain = vec![value];
        while let Some(&ValueId::Node(n)) = chain.last() {
            match self.drafts[n].inputs.first() {
                // A cycle was ruled out before shapes; the bound keeps that an assumption
                // this loop does not rely on.
                Some(&next) if chain.len() <= self.drafts.len() => chain.push(next),
                _ => break,
            }
        }
        chain
    }

    /// `stem [N, 8, 28, 28] -> conv -> relu [N, 8, 26, 26]`: the nearest [`PATH_VALUES`] of
    /// `chain` (which runs backwards from the value), each shape written once, after the
    /// last value that has it.
    fn path(&self, chain: &[ValueId]) -> Vec<String> {
        let shown = chain.len().min(PATH_VALUES);
        let forward: Vec<ValueId> = chain[..shown].iter().rev().copied().collect();
        let mut steps: Vec<String> = forward
            .iter()
            .enumerate()
            .map(|(i, &v)| {
                let same_next = forward
                    .get(i + 1)
                    .is_some_and(|&next| self.shape(next) == self.shape(v));
                if same_next {
                    self.name(v).to_string()
                } else {
                    format!("{} {}", self.name(v), batched_text(self.shape(v)))
                }
            })
            .collect();
        if chain.len() > shown {
            steps.insert(0, "...".to_string());
        }
        steps
    }

    /// How each of `values` got its shape: one line each, from where their paths part.
    fn paths(&self, values: &[ValueId]) -> String {
        let chains: Vec<Vec<ValueId>> = values.iter().map(|&v| self.chain(v)).collect();
        if let [chain] = chains.as_slice() {
            return wrap_path(
                format!("how \"{}\" got its shape:", self.name(values[0])),
                &self.path(chain),
            );
        }
        let common = chains.first().and_then(|first| {
            first
                .iter()
                .find(|v| chains[1..].iter().all(|c| c.contains(v)))
        });
        let trimmed: Vec<&[ValueId]> = chains
            .iter()
            .map(
                |c| match common.and_then(|m| c.iter().position(|v| v == m)) {
                    Some(end) => &c[..=end],
                    None => &c[..],
                },
            )
            .collect();
        let from = if common.is_some() {
            ", from where their paths part"
        } else {
            ""
        };
        let lines: Vec<String> = values
            .iter()
            .zip(&trimmed)
            .map(|(&v, chain)| wrap_path(format!("{}:", self.name(v)), &self.path(chain)))
            .collect();
        format!(
            "how the inputs got their shapes{from}:\n{}",
            lines.join("\n")
        )
    }
}

/// `lead` and the `steps` joined by ` -> `, broken before an arrow rather than inside a
/// shape where the report's width would break it.
fn wrap_path(lead: String, steps: &[String]) -> String {
    let mut text = lead;
    let mut line_start = 0;
    for (i, step) in steps.iter().enumerate() {
        let joint = if i == 0 { " " } else { " -> " };
        if i > 0 && text.len() - line_start + joint.len() + step.len() > PATH_WIDTH {
            line_start = text.len() + 1;
            text.push_str("\n-> ");
        } else {
            text.push_str(joint);
        }
        text.push_str(step);
    }
    text
}

impl Loader<'_> {
    /// Runs every node's shape rule in `order`, at batch size [`INFERENCE_BATCH`].
    pub(super) fn infer_shapes(
        &self,
        inputs: &[GraphInput],
        drafts: Vec<Draft>,
        order: &[usize],
        outputs: &[ValueId],
    ) -> Result<Vec<Node>, GraphError> {
        let mut shapes: Vec<Option<Vec<usize>>> = vec![None; drafts.len()];
        let mut built: Vec<Option<(Vec<Param>, u64)>> = vec![None; drafts.len()];
        for &index in order {
            let draft = &drafts[index];
            let known = Known {
                inputs,
                drafts: &drafts,
                shapes: &shapes,
            };
            if draft.name == LOSS_NODE && draft.entry.name == "softmax_cross_entropy" {
                self.check_logits(draft, &known, outputs)?;
            }
            let op = &draft.op;
            let data: Vec<Vec<usize>> = draft
                .inputs
                .iter()
                .map(|&v| known.batched(v, INFERENCE_BATCH))
                .collect();
            let ruled = shape_rule(op.as_ref(), &data)
                .map_err(|e| self.shape_error(draft, op.as_ref(), &known, &e))?;
            self.check_allocatable(draft, &ruled)?;
            let input_refs: Vec<&[usize]> = ruled.inputs.iter().map(Vec::as_slice).collect();
            let flops = op.flops(&input_refs);
            let params = ruled
                .params
                .into_iter()
                .map(|spec| Param {
                    name: format!("{}.{}", draft.name, spec.name),
                    spec,
                })
                .collect();
            let output = ruled.output;
            if draft.name != LOSS_NODE {
                self.check_batch_axis(draft, op.as_ref(), &known, &output)?;
                self.check_batch_values(draft, op.as_ref(), &known)?;
            }
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

    /// Shapes are inferred at batch 1, where an op that reads or folds the batch axis looks
    /// like one that does not: a `Reshape` with a literal batch size, a `Sum` over every axis,
    /// a `Concat` along axis 0, per-sample shapes that broadcast only at batch 1. Running the
    /// shape rule again at a second batch size tells them apart: every node but the loss must
    /// give `[N, per-sample shape...]` for a batch of N.
    fn check_batch_axis(
        &self,
        draft: &Draft,
        op: &dyn Op<f64>,
        known: &Known,
        output: &[usize],
    ) -> Result<(), GraphError> {
        // Two more batch sizes, small enough that messages stay readable; two, because a
        // per-sample [3] broadcast against a per-sample [2, 3] fits at batch 2 (mixing samples)
        // and fails only at 3.
        let help = "every node must keep the batch axis first and leave it alone: axis 0 is the \
                    batch (count axes from 1, or from the end), a Reshape writes -1 for the \
                    batch, Sum and Mean need `axes`, and inputs combined by Add or Mul need \
                    per-sample shapes of the same rank";
        for batch in [2, 3] {
            let probe: Vec<Vec<usize>> = draft
                .inputs
                .iter()
                .map(|&v| known.batched(v, batch))
                .collect();
            let problem = match shape_rule(op, &probe) {
                Err(e) => format!(
                    "works for a batch of 1 but not of {batch}: {}",
                    complaint(&e)
                ),
                Ok(ruled)
                    if output.first() == Some(&INFERENCE_BATCH)
                        && ruled.output.first() == Some(&batch)
                        && ruled.output.get(1..) == output.get(1..) =>
                {
                    continue;
                }
                Ok(ruled) => format!(
                    "does not keep the batch axis: its output is {output:?} for a batch of 1 \
                     and {:?} for a batch of {batch}",
                    ruled.output
                ),
            };
            return Err(self
                .error(
                    ErrorKind::Shape,
                    format!("{}: {}: {problem}", draft.title(), draft.op()),
                )
                .at(draft.place.op, "this op")
                .help(help));
        }
        Ok(())
    }

    /// Every value is allocated whole: a node's output and parameters must fit in memory at
    /// a batch of one (the inputs were checked where they are declared).
    fn check_allocatable(&self, draft: &Draft, ruled: &Ruled) -> Result<(), GraphError> {
        let output = std::iter::once(("output".to_string(), &ruled.output));
        let params = ruled
            .params
            .iter()
            .map(|p| (format!("parameter \"{}.{}\"", draft.name, p.name), &p.shape));
        for (what, shape) in output.chain(params) {
            if tapir_core::allocatable_elements(shape).is_some() {
                continue;
            }
            return Err(self
                .error(
                    ErrorKind::Shape,
                    format!(
                        "{}: {}: the {what} would have shape {}, more elements than fit in \
                         memory",
                        draft.title(),
                        draft.op(),
                        if what == "output" {
                            batched_text(shape.get(1..).unwrap_or_default())
                        } else {
                            format!("{shape:?}")
                        }
                    ),
                )
                .at(draft.place.op, "too large")
                .help(super::too_large_help(
                    "make the network smaller: fewer units or filters, or smaller inputs",
                )));
        }
        Ok(())
    }

    /// An op can keep the batch axis in its shapes and still mix samples in its values
    /// (`Softmax(axis: 0)`): [`probe::mixes_samples`] runs it on two samples and changes
    /// only the second.
    fn check_batch_values(
        &self,
        draft: &Draft,
        op: &dyn Op<f64>,
        known: &Known,
    ) -> Result<(), GraphError> {
        let data: Vec<Vec<usize>> = draft
            .inputs
            .iter()
            .map(|&v| known.batched(v, probe::BATCH))
            .collect();
        if probe::mixes_samples(op, &data) != Some(true) {
            return Ok(());
        }
        Err(self
            .error(
                ErrorKind::Shape,
                format!(
                    "{}: {}: mixes the samples of a batch: changing the second sample changed \
                     the output of the first",
                    draft.title(),
                    draft.op()
                ),
            )
            .at(draft.place.op, "this op")
            .help(
                "every node must compute each sample from that sample alone: axis 0 is the \
                 batch (count axes from 1, or from the end), and Softmax and LogSoftmax need an \
                 axis of each sample to work along (with one number per sample, their last \
                 axis is the batch)",
            ))
    }

    /// Softmax cross-entropy needs class scores, `[N, classes]`: a common slip is pointing
    /// the loss at a feature map, which deserves a message of its own.
    fn check_logits(
        &self,
        loss: &Draft,
        known: &Known,
        outputs: &[ValueId],
    ) -> Result<(), GraphError> {
        let Some(&logits) = loss.inputs.first() else {
            return Ok(());
        };
        let shape = known.shape(logits);
        if shape.len() == 1 {
            return Ok(());
        }
        let name = known.name(logits);
        let span = loss
            .reads
            .first()
            .copied()
            .flatten()
            .unwrap_or(loss.place.op);
        // Class scores elsewhere in the network: an output first, else the last node.
        let scores = |v: &ValueId| known.shape(*v).len() == 1 && *v != logits;
        let candidate = outputs
            .iter()
            .rev()
            .find(|v| scores(v))
            .copied()
            .or_else(|| {
                (0..loss_index(known))
                    .rev()
                    .map(ValueId::Node)
                    .find(|v| scores(v))
            });
        let help = match candidate {
            Some(v) => format!(
                "point the loss at the class scores: `logits: \"{}\"` ({})",
                known.name(v),
                batched_text(known.shape(v))
            ),
            None => format!(
                "add `Flatten` and `Dense(units: classes)` after \"{name}\", and point the loss \
                 at the Dense node"
            ),
        };
        Err(self
            .error(
                ErrorKind::Shape,
                format!(
                    "the loss reads \"{name}\", of shape {}, but SoftmaxCrossEntropy needs \
                     [N, classes]",
                    batched_text(shape)
                ),
            )
            .at(span, format!("{} is not [N, classes]", batched_text(shape)))
            .help(format!("{help}\n{}", known.paths(&[logits]))))
    }

    fn shape_error(
        &self,
        draft: &Draft,
        op: &dyn Op<f64>,
        known: &Known,
        error: &CoreError,
    ) -> GraphError {
        let kind = if matches!(error, CoreError::Hyperparameter { .. }) {
            ErrorKind::Hyperparameter
        } else {
            ErrorKind::Shape
        };
        let probe: Vec<Vec<usize>> = draft
            .inputs
            .iter()
            .map(|&v| known.batched(v, PROBE_BATCH))
            .collect();
        let message = shape_rule(op, &probe)
            .err()
            .and_then(|e| symbolic(&complaint(&e)))
            .unwrap_or_else(|| complaint(error));
        // The implicit labels carry no path worth showing.
        let values: Vec<ValueId> = draft
            .inputs
            .iter()
            .copied()
            .filter(
                |v| !matches!(v, ValueId::Input(i) if known.inputs[*i].kind == InputKind::Labels),
            )
            .collect();
        let shapes: Vec<String> = values
            .iter()
            .map(|&v| batched_text(known.shape(v)))
            .collect();
        let mentioned = self.mentioned_field(&draft.place, &message);
        let (span, label) = match (kind, values.len()) {
            (ErrorKind::Hyperparameter, _) => (
                mentioned.unwrap_or(draft.place.op),
                "this hyperparameter".to_string(),
            ),
            (_, 0 | 1) => (
                mentioned.unwrap_or(draft.place.op),
                format!("the input is {}", shapes.join("")),
            ),
            _ => (
                draft
                    .place
                    .inputs
                    .map_or(draft.place.op, |(_, value)| value),
                // The shapes are in the message and the help; a label this far right must
                // stay short to fit the report's width.
                "these inputs".to_string(),
            ),
        };
        let help = if kind == ErrorKind::Hyperparameter {
            let written = &self.src()[span.0..span.0 + span.1];
            format!(
                "change `{written}`; graphs/README.md lists {}'s hyperparameters and their ranges",
                draft.op()
            )
        } else {
            known.paths(&values)
        };
        self.error(
            kind,
            format!("{}: {}: {message}", draft.title(), draft.op()),
        )
        .at(span, label)
        .help(help)
    }
}

/// The index of the loss node, the last draft.
fn loss_index(known: &Known) -> usize {
    known.drafts.len().saturating_sub(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_probe_batch_becomes_n() {
        assert_eq!(
            symbolic("shapes [7919, 8, 24, 24] and [7919] differ").as_deref(),
            Some("shapes [N, 8, 24, 24] and [N] differ")
        );
        assert_eq!(symbolic("batch 7919 is too large"), None);
        assert_eq!(batched_text(&[8, 13, 13]), "[N, 8, 13, 13]");
        assert_eq!(batched_text(&[]), "[N]");
    }

    #[test]
    fn long_paths_break_before_an_arrow() {
        let steps: Vec<String> = (0..6).map(|i| format!("node{i} [N, 16, 28, 28]")).collect();
        let text = wrap_path("how \"node5\" got its shape:".to_string(), &steps);
        assert_eq!(
            text,
            "how \"node5\" got its shape: node0 [N, 16, 28, 28] -> node1 [N, 16, 28, 28]\n\
             -> node2 [N, 16, 28, 28] -> node3 [N, 16, 28, 28] -> node4 [N, 16, 28, 28]\n\
             -> node5 [N, 16, 28, 28]"
        );
    }
}
