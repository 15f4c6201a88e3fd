//! The training loop: epochs of shuffled mini-batches, an optimizer step per batch,
//! evaluation on validation sets, and a stop with a located error on a non-finite value.

use std::time::Instant;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use ndarray::{Array2, ArrayD, Ix2};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};
use tapir_core::{Error, Tape};
use tapir_graph::{Graph, Network, Params, ValueId};

use crate::data::{Batches, PlacedSet};
use crate::error::{Result, TrainError};
use crate::optim::Optimizer;

/// Mean loss and accuracy over a set.
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize, Deserialize)]
pub struct Metrics {
    /// Mean softmax cross-entropy.
    pub loss: f64,
    /// Share of samples whose largest logit is their label.
    pub accuracy: f64,
}

/// What the network says about a set: metrics, and each sample's predicted class.
#[derive(Debug, Clone, PartialEq)]
pub struct Evaluation {
    /// Mean loss and accuracy.
    pub metrics: Metrics,
    /// The class with the largest logit, per sample (the first on a tie).
    pub predictions: Vec<usize>,
    /// The network's output per sample, `[n, classes]`.
    pub logits: Array2<f32>,
}

/// Largest-logit classes of a `[n, classes]` array.
fn argmax_rows(logits: &ArrayD<f32>) -> tapir_core::Result<Vec<usize>> {
    let logits = logits.view().into_dimensionality::<Ix2>().map_err(|_| {
        Error::Tape(format!(
            "the network's output has shape {:?}, not [batch, classes]",
            logits.shape()
        ))
    })?;
    Ok(logits
        .rows()
        .into_iter()
        .map(|row| {
            row.iter()
                .enumerate()
                .fold((0, f32::NEG_INFINITY), |best, (i, &v)| {
                    if v > best.1 { (i, v) } else { best }
                })
                .0
        })
        .collect())
}

/// Where a classifier's pieces are: its loss node and the logits the loss reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Classifier {
    /// The loss node's index.
    pub loss: usize,
    /// The value the loss reads as logits, `[N, classes]`.
    pub logits: ValueId,
}

impl Classifier {
    /// Finds the softmax cross-entropy loss of `graph` and its logits.
    pub fn of(graph: &Graph) -> Result<Self> {
        let loss = graph.loss.ok_or_else(|| {
            TrainError::Unfit(format!(
                "{} has no loss; a classifier ends in `loss: SoftmaxCrossEntropy(logits: \"logits\")`",
                graph.name
            ))
        })?;
        let node = &graph.nodes[loss];
        match (node.op, node.inputs.first()) {
            ("softmax_cross_entropy", Some(&logits)) => Ok(Classifier { loss, logits }),
            _ => Err(TrainError::Unfit(format!(
                "{}: its loss is {}, but training here needs SoftmaxCrossEntropy on class logits",
                graph.name, node.op
            ))),
        }
    }

    /// Checks that `graph` takes one image of `image` (per sample) and tells `classes` classes
    /// apart, so a run fails before it starts rather than at its first batch.
    pub fn check_fits(graph: &Graph, image: &[usize], classes: usize) -> Result<Self> {
        let classifier = Self::of(graph)?;
        let data: Vec<&tapir_graph::GraphInput> = graph
            .inputs
            .iter()
            .filter(|i| i.kind == tapir_graph::InputKind::Data)
            .collect();
        if data.len() != 1 || data[0].shape != image {
            let declared: Vec<String> = data
                .iter()
                .map(|i| format!("\"{}\" {:?}", i.name, i.shape))
                .collect();
            return Err(TrainError::Unfit(format!(
                "{} takes {}; the data are images of {image:?}: declare one input, e.g. `inputs: {{ \"image\": {image:?} }}`",
                graph.name,
                if declared.is_empty() {
                    "no data input".to_string()
                } else {
                    declared.join(", ")
                }
            )));
        }
        let shape = graph.value_shape(classifier.logits);
        if shape != [classes] {
            return Err(TrainError::Unfit(format!(
                "{}: the loss reads \"{}\" of shape {shape:?} per sample, but the data have {classes} classes: end in `Dense(units: {classes})`",
                graph.name,
                graph.value_name(classifier.logits)
            )));
        }
        Ok(classifier)
    }
}

/// Runs the network without recording on `set`, `batch` samples at a time.
pub fn evaluate(
    network: &Network<f32>,
    params: &Params<f32>,
    set: &PlacedSet,
    batch: usize,
) -> Result<Evaluation> {
    // On a pool thread, for the reason given at `train_epoch`.
    tapir_core::on_pool(|| evaluate_on_pool(network, params, set, batch))
}

/// [`evaluate`], on a thread of the pool.
fn evaluate_on_pool(
    network: &Network<f32>,
    params: &Params<f32>,
    set: &PlacedSet,
    batch: usize,
) -> Result<Evaluation> {
    let Classifier {
        loss: loss_node,
        logits: output,
    } = Classifier::of(network.graph())?;
    let (mut loss_sum, mut correct, mut predictions) =
        (0.0f64, 0usize, Vec::with_capacity(set.len()));
    let (mut rows, mut classes): (Vec<f32>, usize) = (Vec::new(), 0);
    for (images, labels) in Batches::in_order(set, batch)? {
        let mut tape = Tape::inference();
        let forward =
            network.forward(&mut tape, params, vec![images, labels.clone()], false, None)?;
        let loss = scalar(forward.value(ValueId::Node(loss_node)))?;
        loss_sum += f64::from(loss) * labels.len() as f64;
        let logits = forward
            .value(output)
            .ok_or_else(|| Error::Tape("BUG: the output did not run".into()))?;
        for (&label, predicted) in labels.iter().zip(argmax_rows(logits.value())?) {
            correct += usize::from(predicted as f32 == label);
            predictions.push(predicted);
        }
        classes = logits.shape().last().copied().unwrap_or(0);
        rows.extend(logits.value().iter().copied());
    }
    let n = set.len().max(1) as f64;
    let logits = Array2::from_shape_vec((predictions.len(), classes), rows)
        .map_err(|e| Error::Tape(format!("BUG: logits of {} samples: {e}", predictions.len())))?;
    Ok(Evaluation {
        metrics: Metrics {
            loss: loss_sum / n,
            accuracy: correct as f64 / n,
        },
        predictions,
        logits,
    })
}

fn scalar(var: Option<&tapir_core::Var<f32>>) -> tapir_core::Result<f32> {
    var.and_then(|v| v.value().iter().next().copied())
        .ok_or_else(|| Error::Tape("BUG: the loss did not run".into()))
}

/// How to train.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TrainConfig {
    /// Passes over the training set.
    pub epochs: usize,
    /// Samples per optimizer step.
    pub batch: usize,
    /// The seed of every shuffle (and of augmentation, by the caller).
    pub seed: u64,
    /// Show a progress bar on an interactive terminal.
    pub progress: bool,
}

impl TrainConfig {
    /// Checks the ranges.
    pub fn validate(&self) -> Result<()> {
        if self.epochs == 0 {
            return Err(Error::hyperparameter("train", "epochs must be at least 1").into());
        }
        if self.batch == 0 {
            return Err(Error::hyperparameter("train", "the batch size must be at least 1").into());
        }
        Ok(())
    }
}

/// One epoch's figures.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EpochRecord {
    /// 1-based.
    pub epoch: usize,
    /// Mean loss and accuracy over the epoch's batches, as they were trained.
    pub train: Metrics,
    /// Each validation set's figures after the epoch, by name.
    pub validation: Vec<(String, Metrics)>,
    /// Wall-clock seconds of the training part of the epoch (not the evaluation).
    pub seconds: f64,
}

/// The random generator of epoch `epoch` (1-based) for one purpose: a stream of its own, so a
/// run resumed at any epoch draws exactly what an uninterrupted run draws. The seed is
/// offset so that no stream repeats the data layout's (which uses small stream numbers of
/// the run's seed itself).
pub fn epoch_rng(seed: u64, epoch: usize, purpose: u64) -> ChaCha8Rng {
    let mut rng = ChaCha8Rng::seed_from_u64(seed ^ 0x7A91_7E40_0000_0000);
    rng.set_stream(((epoch as u64) << 8) | purpose);
    rng
}

/// Trains one epoch on `set`: a seeded shuffle, then one optimizer step per batch.
pub fn train_epoch(
    network: &Network<f32>,
    params: &mut Params<f32>,
    optimizer: &mut Optimizer,
    set: &PlacedSet,
    config: &TrainConfig,
    epoch: usize,
    bar: &ProgressBar,
) -> Result<Metrics> {
    // The whole loop runs on one thread of the pool, not just each pass: the activations
    // a step allocates are then freed and the parameters updated on the thread (and core)
    // that made them. From the main thread, the CNN's step (`cargo bench -- W5`, one thread)
    // took 52 ms against 44-47 ms here.
    tapir_core::on_pool(|| train_epoch_on_pool(network, params, optimizer, set, config, epoch, bar))
}

/// [`train_epoch`], on a thread of the pool.
fn train_epoch_on_pool(
    network: &Network<f32>,
    params: &mut Params<f32>,
    optimizer: &mut Optimizer,
    set: &PlacedSet,
    config: &TrainConfig,
    epoch: usize,
    bar: &ProgressBar,
) -> Result<Metrics> {
    let graph = network.graph();
    let output = Classifier::of(graph)?.logits;
    let batches = Batches::shuffled(
        set,
        config.batch,
        &mut epoch_rng(config.seed, epoch, SHUFFLE_STREAM),
    )?;
    let count = batches.len();
    let (mut loss_sum, mut correct, mut seen) = (0.0f64, 0usize, 0usize);
    for (index, (images, labels)) in batches.enumerate() {
        let step = optimizer.step + 1;
        let where_ = format!(
            "step {step} (epoch {epoch}, batch {} of {count})",
            index + 1
        );
        let result = network.loss_and_grads(params, vec![images, labels.clone()], false)?;
        if !result.loss.is_finite() {
            let culprit = graph
                .nodes
                .iter()
                .zip(&result.forward.nodes)
                .find(|(_, v)| {
                    v.as_ref()
                        .is_some_and(|v| v.value().iter().any(|x| !x.is_finite()))
                })
                .map_or_else(|| "loss".to_string(), |(node, _)| node.name.clone());
            return Err(Error::Tape(format!(
                "training stopped at {where_}: node \"{culprit}\" produced a non-finite value (loss {}); lower the learning rate",
                result.loss
            ))
            .into());
        }
        if let Some((name, _)) = result
            .params
            .tensors
            .iter()
            .find(|(_, g)| g.iter().any(|x| !x.is_finite()))
        {
            return Err(Error::Tape(format!(
                "training stopped at {where_}: the gradient of \"{name}\" is not finite; lower the learning rate"
            ))
            .into());
        }
        optimizer.update(params, &result.params)?;
        loss_sum += f64::from(result.loss) * labels.len() as f64;
        seen += labels.len();
        let logits = result
            .forward
            .value(output)
            .ok_or_else(|| Error::Tape("BUG: the output did not run".into()))?;
        for (&label, predicted) in labels.iter().zip(argmax_rows(logits.value())?) {
            correct += usize::from(predicted as f32 == label);
        }
        bar.inc(1);
        bar.set_message(format!("loss {:.4}", loss_sum / seen as f64));
    }
    let n = seen.max(1) as f64;
    Ok(Metrics {
        loss: loss_sum / n,
        accuracy: correct as f64 / n,
    })
}

/// The stream of [`epoch_rng`] that shuffles the training set.
pub const SHUFFLE_STREAM: u64 = 0;
/// The stream of [`epoch_rng`] that repositions augmented training images.
pub const AUGMENT_STREAM: u64 = 1;

/// A progress bar over `steps` steps on standard error, hidden when it is not a terminal.
pub fn progress_bar(steps: u64, prefix: String, visible: bool) -> ProgressBar {
    let bar = ProgressBar::with_draw_target(
        Some(steps),
        if visible {
            ProgressDrawTarget::stderr()
        } else {
            ProgressDrawTarget::hidden()
        },
    );
    if let Ok(style) =
        ProgressStyle::with_template("{prefix:>14} [{bar:30}] {pos}/{len} {msg} ({elapsed})")
    {
        bar.set_style(style.progress_chars("=> "));
    }
    bar.set_prefix(prefix);
    bar
}

/// Trains from epoch `start + 1` to `config.epochs`: `set_for(epoch)` gives each epoch's
/// training set (the same one, or freshly augmented), `validation` is evaluated after each
/// epoch, and `after_epoch` sees each record with the parameters and optimizer (to write
/// checkpoints and metrics).
#[allow(clippy::too_many_arguments)] // the loop's inputs, each named
pub fn fit(
    network: &Network<f32>,
    params: &mut Params<f32>,
    optimizer: &mut Optimizer,
    config: &TrainConfig,
    start: usize,
    mut set_for: impl FnMut(usize) -> Result<PlacedSet>,
    validation: &[(&str, &PlacedSet)],
    mut after_epoch: impl FnMut(&EpochRecord, &Params<f32>, &Optimizer) -> Result<()>,
) -> Result<Vec<EpochRecord>> {
    config.validate()?;
    let mut records = Vec::new();
    for epoch in start + 1..=config.epochs {
        let set = set_for(epoch)?;
        let steps = set.len().div_ceil(config.batch) as u64;
        let bar = progress_bar(
            steps,
            format!("epoch {epoch}/{}", config.epochs),
            config.progress,
        );
        let began = Instant::now();
        let train = train_epoch(network, params, optimizer, &set, config, epoch, &bar)?;
        let seconds = began.elapsed().as_secs_f64();
        bar.finish_and_clear();
        let validation = validation
            .iter()
            .map(|(name, set)| {
                Ok((
                    name.to_string(),
                    evaluate(network, params, set, config.batch.max(256))?.metrics,
                ))
            })
            .collect::<Result<Vec<_>>>()?;
        let record = EpochRecord {
            epoch,
            train,
            validation,
            seconds,
        };
        after_epoch(&record, params, optimizer)?;
        records.push(record);
    }
    Ok(records)
}
