//! The translation-invariance demo: the protocol of the experiment end to end. Six networks
//! trained on dogs at three corners and cats at the fourth, evaluated on the same layout, on
//! the swapped one and anywhere; the exact facts checked; a table, `report.json` and four
//! pictures written.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use ndarray::{Array3, ArrayD, Axis, Ix3, Slice};
use serde::Serialize;
use tapir_core::{Error, Op, Tape};
use tapir_graph::{Graph, Network, Params, ValueId};
use tapir_plots::{Curve, Sample, SampleSection, SimilarityRow};

use crate::data::{AnimalMnist, CANVAS, ClassPair, PlacedSet, Placement, Quadrant, Quadrants};
use crate::error::{Result, TrainError};
use crate::files::write_atomically;
use crate::optim::{Optimizer, OptimizerKind};
use crate::train::{
    AUGMENT_STREAM, Classifier, EpochRecord, Evaluation, Metrics, TrainConfig, epoch_rng, evaluate,
    fit,
};

/// One network of the experiment: its name in the report, its file in `graphs/`, and
/// whether its training images move every epoch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Model {
    /// The name in tables and `report.json`.
    pub name: &'static str,
    /// The network file, in the graphs folder.
    pub file: &'static str,
    /// Re-paste every training image at a random offset each epoch (`fcn-aug`).
    pub augment: bool,
}

/// The experiment's six networks, in the order the table shows them.
pub const MODELS: [Model; 6] = [
    Model {
        name: "fcn",
        file: "fcn.ron",
        augment: false,
    },
    Model {
        name: "fcn-aug",
        file: "fcn.ron",
        augment: true,
    },
    Model {
        name: "cnn-1-valid",
        file: "cnn-1-valid.ron",
        augment: false,
    },
    Model {
        name: "cnn-1-same",
        file: "cnn-1-same.ron",
        augment: false,
    },
    Model {
        name: "cnn-1",
        file: "cnn-1.ron",
        augment: false,
    },
    Model {
        name: "cnn-2",
        file: "cnn-2.ron",
        augment: false,
    },
];

/// The networks whose logits are compared for one dog at TL and at BR.
pub const INVARIANCE_MODELS: [&str; 4] = ["cnn-1-valid", "cnn-1-same", "cnn-1", "cnn-2"];

/// How the demo runs; [`DemoConfig::default`] is the protocol's setting with one seed.
#[derive(Debug, Clone, PartialEq)]
pub struct DemoConfig {
    /// Where the table's CSV, `report.json` and the pictures go.
    pub out: PathBuf,
    /// One full run per seed; figures are means over seeds.
    pub seeds: Vec<u64>,
    /// Epochs per network.
    pub epochs: usize,
    /// Samples per step.
    pub batch: usize,
    /// SGD's learning rate.
    pub lr: f64,
    /// SGD's momentum.
    pub momentum: f64,
    /// The two animals: the first plays the dog, the second the cat.
    pub classes: ClassPair,
    /// The animal-mnist folder.
    pub data_dir: PathBuf,
    /// The folder holding the networks' files.
    pub graphs_dir: PathBuf,
    /// Progress bars on an interactive terminal.
    pub progress: bool,
}

/// The workspace's `graphs/` folder (see [`crate::files::workspace_path`]).
pub fn default_graphs_dir() -> PathBuf {
    crate::files::workspace_path("graphs")
}

impl Default for DemoConfig {
    fn default() -> Self {
        DemoConfig {
            out: PathBuf::from("demo-out"),
            seeds: vec![0],
            epochs: 15,
            batch: 64,
            lr: 0.01,
            momentum: 0.9,
            classes: ClassPair::default(),
            data_dir: crate::data::default_data_dir(),
            graphs_dir: default_graphs_dir(),
            progress: true,
        }
    }
}

/// One model's final figures (means over seeds), as `report.json` holds them.
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize)]
pub struct ModelReport {
    /// Over the last epoch's batches.
    pub train: Metrics,
    /// Validation animals in the training layout.
    pub same: Metrics,
    /// Validation animals with the corners swapped.
    pub swapped: Metrics,
    /// Validation animals at random offsets.
    pub anywhere: Metrics,
    /// The share of `swapped` class-0 animals (dogs at the cats' corner) called class 1.
    pub dog_called_cat: f64,
    /// Mean seconds per training epoch.
    pub seconds_per_epoch: f64,
}

/// Whether logits stay the same when the animal moves, for one model.
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize)]
pub struct ModelInvariance {
    /// The share of validation dogs whose logits are bit-identical at TL and at BR.
    pub identical_share: f64,
    /// The largest absolute difference of a logit between the two positions.
    pub max_abs_diff: f64,
}

/// The exact-invariance facts.
#[derive(Debug, Clone, PartialEq, Default, Serialize)]
pub struct InvarianceReport {
    /// `cnn-1` gives bit-identical logits for every validation dog at TL and at BR (every seed).
    pub identical_logits: bool,
    /// `cnn-1`'s largest absolute logit difference.
    pub max_abs_diff: f64,
    /// The same figures per model.
    pub by_model: BTreeMap<String, ModelInvariance>,
}

/// The all-zero-weights facts of `cnn-1`.
#[derive(Debug, Clone, PartialEq, Default, Serialize)]
pub struct ZeroInitReport {
    /// The softmax of a dog's logits: exactly `[0.5, 0.5]`.
    pub softmax: [f64; 2],
    /// The largest absolute gradient reaching the conv filters and their bias: exactly 0.
    pub conv_grad_max_abs: f64,
}

/// `report.json`.
#[derive(Debug, Clone, PartialEq, Default, Serialize)]
pub struct Report {
    /// Per model, means over seeds.
    pub models: BTreeMap<String, ModelReport>,
    /// The exact-invariance facts.
    pub invariance: InvarianceReport,
    /// The all-zero-weights facts.
    pub zero_init: ZeroInitReport,
}

/// One model trained with one seed.
struct Trained {
    report: ModelReport,
    history: Vec<EpochRecord>,
    params: Params<f32>,
    network: Network<f32>,
}

/// The files [`run`] writes into [`DemoConfig::out`].
pub const FILES: [&str; 6] = [
    REPORT_JSON,
    METRICS_CSV,
    LOSS_PNG,
    FILTERS_PNG,
    SIMILARITY_PNG,
    SAMPLES_PNG,
];
const REPORT_JSON: &str = "report.json";
const METRICS_CSV: &str = "metrics.csv";
const LOSS_PNG: &str = "loss.png";
const FILTERS_PNG: &str = "filters.png";
const SIMILARITY_PNG: &str = "similarity.png";
const SAMPLES_PNG: &str = "samples.png";

/// Runs the demo: trains, evaluates, checks, writes `report.json`, `metrics.csv` and the
/// pictures into `config.out`, and returns the report with the table as text.
pub fn run(config: &DemoConfig, log: &mut dyn FnMut(&str)) -> Result<(Report, String)> {
    if config.seeds.is_empty() {
        return Err(Error::hyperparameter("demo", "give at least one seed").into());
    }
    std::fs::create_dir_all(&config.out).map_err(|e| {
        TrainError::file(&config.out, format!("cannot create the output folder: {e}"))
    })?;
    let began = Instant::now();
    let data = AnimalMnist::load(&config.data_dir)?;
    let registry = tapir_ops::builtin_registry();
    let mut graphs = BTreeMap::new();
    for model in MODELS {
        let path = config.graphs_dir.join(model.file);
        let graph = Graph::load(&path, &registry)?;
        Classifier::check_fits(&graph, &[1, CANVAS, CANVAS], 2)?;
        graphs.insert(model.name, Arc::new(graph));
    }
    let mut runs: BTreeMap<&str, Vec<Trained>> = BTreeMap::new();
    let mut invariance_runs: BTreeMap<&str, Vec<ModelInvariance>> = BTreeMap::new();
    let mut first_sets = None;
    for &seed in &config.seeds {
        let sets = Quadrants::build(&data, config.classes, seed)?;
        for model in MODELS {
            log(&format!(
                "seed {seed}: training {} ({} epochs)",
                model.name, config.epochs
            ));
            let trained = train_model(config, model, &graphs[model.name], &sets, seed)?;
            log(&format!(
                "seed {seed}: {:<12} same {:.3}  swapped {:.3}  anywhere {:.3}  ({:.1} s/epoch)",
                model.name,
                trained.report.same.accuracy,
                trained.report.swapped.accuracy,
                trained.report.anywhere.accuracy,
                trained.report.seconds_per_epoch
            ));
            if INVARIANCE_MODELS.contains(&model.name) {
                let figures = invariance(
                    &data,
                    &sets,
                    &trained.network,
                    &trained.params,
                    config.batch,
                )?;
                invariance_runs.entry(model.name).or_default().push(figures);
            }
            runs.entry(model.name).or_default().push(trained);
        }
        first_sets.get_or_insert(sets);
    }
    let sets = first_sets.ok_or_else(|| Error::Tape("BUG: no seed ran".into()))?;
    let report = Report {
        models: MODELS
            .iter()
            .map(|m| (m.name.to_string(), mean_report(&runs[m.name])))
            .collect(),
        invariance: invariance_report(&invariance_runs),
        zero_init: zero_init(&graphs["cnn-1"], &sets)?,
    };
    let table = table(&report, &runs, config);
    write_json(&config.out.join(REPORT_JSON), &report)?;
    write_metrics_csv(&config.out.join(METRICS_CSV), &runs, &config.seeds)?;
    pictures(config, &data, &sets, &runs)?;
    let mut text = table;
    let _ = writeln!(
        text,
        "\nThe demo took {:.0} s for {} seed{}; each further seed adds about as much.",
        began.elapsed().as_secs_f64(),
        config.seeds.len(),
        if config.seeds.len() == 1 { "" } else { "s" }
    );
    Ok((report, text))
}

/// Trains one model from `seed` with SGD, evaluating `swapped` after every epoch (for the
/// loss curves) and every validation set at the end.
fn train_model(
    config: &DemoConfig,
    model: Model,
    graph: &Arc<Graph>,
    sets: &Quadrants,
    seed: u64,
) -> Result<Trained> {
    let network = Network::<f32>::new(Arc::clone(graph))?;
    let mut params = network.init_params(seed);
    let kind = OptimizerKind::Sgd {
        lr: config.lr,
        momentum: config.momentum,
        weight_decay: 0.0,
    };
    let mut optimizer = Optimizer::new(kind, &params)?;
    let train_config = TrainConfig {
        epochs: config.epochs,
        batch: config.batch,
        seed,
        progress: config.progress,
    };
    let training_set = |epoch: usize| -> Result<PlacedSet> {
        let mut set = sets.train.clone();
        if model.augment {
            set.reposition_randomly(&mut epoch_rng(seed, epoch, AUGMENT_STREAM));
        }
        Ok(set)
    };
    let history = fit(
        &network,
        &mut params,
        &mut optimizer,
        &train_config,
        0,
        training_set,
        &[("swapped", &sets.swapped)],
        |_, _, _| Ok(()),
    )?;
    let eval = |set: &PlacedSet| evaluate(&network, &params, set, 256);
    let (same, swapped, anywhere) = (
        eval(&sets.same)?,
        eval(&sets.swapped)?,
        eval(&sets.anywhere)?,
    );
    let report = ModelReport {
        train: history.last().map(|r| r.train).unwrap_or_default(),
        same: same.metrics,
        swapped: swapped.metrics,
        anywhere: anywhere.metrics,
        dog_called_cat: dog_called_cat(&sets.swapped, &swapped),
        seconds_per_epoch: mean(history.iter().map(|r| r.seconds)),
    };
    Ok(Trained {
        report,
        history,
        params,
        network,
    })
}

/// The share of class-0 samples of `set` predicted as class 1.
fn dog_called_cat(set: &PlacedSet, evaluation: &Evaluation) -> f64 {
    let dogs: Vec<usize> = set
        .labels()
        .iter()
        .enumerate()
        .filter(|&(_, &l)| l == 0)
        .map(|(i, _)| i)
        .collect();
    let called_cat = dogs
        .iter()
        .filter(|&&i| evaluation.predictions[i] == 1)
        .count();
    called_cat as f64 / dogs.len().max(1) as f64
}

fn mean(values: impl Iterator<Item = f64>) -> f64 {
    let (sum, count) = values.fold((0.0, 0usize), |(s, c), v| (s + v, c + 1));
    if count == 0 {
        f64::NAN
    } else {
        sum / count as f64
    }
}

/// The sample standard deviation (0 for one value).
fn spread(values: &[f64]) -> f64 {
    if values.len() < 2 {
        return 0.0;
    }
    let m = mean(values.iter().copied());
    (values.iter().map(|v| (v - m).powi(2)).sum::<f64>() / (values.len() - 1) as f64).sqrt()
}

fn mean_metrics(metrics: impl Iterator<Item = Metrics> + Clone) -> Metrics {
    Metrics {
        loss: mean(metrics.clone().map(|m| m.loss)),
        accuracy: mean(metrics.map(|m| m.accuracy)),
    }
}

fn mean_report(runs: &[Trained]) -> ModelReport {
    let reports = runs.iter().map(|r| r.report);
    ModelReport {
        train: mean_metrics(reports.clone().map(|r| r.train)),
        same: mean_metrics(reports.clone().map(|r| r.same)),
        swapped: mean_metrics(reports.clone().map(|r| r.swapped)),
        anywhere: mean_metrics(reports.clone().map(|r| r.anywhere)),
        dog_called_cat: mean(reports.clone().map(|r| r.dog_called_cat)),
        seconds_per_epoch: mean(reports.map(|r| r.seconds_per_epoch)),
    }
}

/// Every validation dog pasted at TL and at BR: how many give bit-identical logits, and the
/// largest difference.
fn invariance(
    data: &AnimalMnist,
    sets: &Quadrants,
    network: &Network<f32>,
    params: &Params<f32>,
    batch: usize,
) -> Result<ModelInvariance> {
    let dogs = &sets.split.validation[0];
    let at = |quadrant: Quadrant| -> Result<PlacedSet> {
        let placements = dogs
            .iter()
            .map(|&source| Placement {
                source,
                offset: quadrant.offset(),
            })
            .collect();
        Ok(PlacedSet::build(data, placements, vec![0; dogs.len()])?)
    };
    let top_left = evaluate(network, params, &at(Quadrant::TopLeft)?, batch)?.logits;
    let bottom_right = evaluate(network, params, &at(Quadrant::BottomRight)?, batch)?.logits;
    let identical = top_left
        .rows()
        .into_iter()
        .zip(bottom_right.rows())
        .filter(|(a, b)| {
            a.iter()
                .zip(b.iter())
                .all(|(x, y)| x.to_bits() == y.to_bits())
        })
        .count();
    let max_abs_diff = top_left
        .iter()
        .zip(&bottom_right)
        .map(|(a, b)| f64::from((a - b).abs()))
        .fold(0.0, f64::max);
    Ok(ModelInvariance {
        identical_share: identical as f64 / dogs.len().max(1) as f64,
        max_abs_diff,
    })
}

fn invariance_report(runs: &BTreeMap<&str, Vec<ModelInvariance>>) -> InvarianceReport {
    let by_model: BTreeMap<String, ModelInvariance> = runs
        .iter()
        .map(|(name, figures)| {
            let share = mean(figures.iter().map(|f| f.identical_share));
            let diff = mean(figures.iter().map(|f| f.max_abs_diff));
            (
                name.to_string(),
                ModelInvariance {
                    identical_share: share,
                    max_abs_diff: diff,
                },
            )
        })
        .collect();
    let cnn1 = runs.get("cnn-1").map(Vec::as_slice).unwrap_or_default();
    InvarianceReport {
        identical_logits: !cnn1.is_empty() && cnn1.iter().all(|f| f.identical_share == 1.0),
        max_abs_diff: cnn1.iter().map(|f| f.max_abs_diff).fold(0.0, f64::max),
        by_model,
    }
}

/// `cnn-1` with every weight and bias zero, on one batch of validation animals: the softmax
/// of the first dog's logits and the largest gradient reaching the conv layer.
fn zero_init(graph: &Arc<Graph>, sets: &Quadrants) -> Result<ZeroInitReport> {
    let network = Network::<f32>::new(Arc::clone(graph))?;
    let mut params = network.init_params(0);
    for (_, tensor) in &mut params.tensors {
        tensor.fill(0.0);
    }
    let take = sets.same.len().min(16);
    let images = sets
        .same
        .images()
        .slice_axis(Axis(0), Slice::from(..take))
        .to_owned()
        .into_dyn();
    let labels = ArrayD::from_shape_fn(vec![take], |i| sets.same.labels()[i[0]] as f32);
    let result = network.loss_and_grads(&params, vec![images, labels], false)?;
    let output = Classifier::of(network.graph())?.logits;
    let logits = result
        .forward
        .value(output)
        .ok_or_else(|| Error::Tape("BUG: no logits".into()))?;
    let softmax = Op::<f32>::forward(&tapir_ops::Softmax::default(), &[logits.value().view()])?;
    let first = softmax.index_axis(Axis(0), 0);
    let conv_grad_max_abs = result
        .params
        .tensors
        .iter()
        .filter(|(name, _)| name.starts_with("conv."))
        .flat_map(|(_, g)| g.iter())
        .map(|g| f64::from(g.abs()))
        .fold(0.0, f64::max);
    Ok(ZeroInitReport {
        softmax: [f64::from(first[0]), f64::from(first[1])],
        conv_grad_max_abs,
    })
}

/// The table of the run: per model, the final figures (means over seeds, with the spread
/// where there are several), then the invariance and zero-weights facts.
fn table(report: &Report, runs: &BTreeMap<&str, Vec<Trained>>, config: &DemoConfig) -> String {
    let [dog, cat] = config.classes.names();
    let mut out = String::new();
    let _ = writeln!(
        out,
        "Translation invariance on animal-mnist: {dog} (class 0) vs {cat} (class 1), {} epochs, batch {}, \
         SGD lr {} momentum {}, seed{} {:?}",
        config.epochs,
        config.batch,
        config.lr,
        config.momentum,
        if config.seeds.len() == 1 { "" } else { "s" },
        config.seeds
    );
    let _ = writeln!(
        out,
        "(loss / accuracy; means over seeds, ± the spread between seeds where there are several)\n"
    );
    let header = format!(
        "{:<12} {:>15} {:>15} {:>15} {:>15} {:>11} {:>14}",
        "model",
        "train",
        "same",
        "swapped",
        "anywhere",
        format!("{dog}->{cat}"),
        "s/epoch"
    );
    let _ = writeln!(out, "{header}\n{}", "-".repeat(header.len()));
    for model in MODELS {
        let (Some(r), Some(seeds)) = (report.models.get(model.name), runs.get(model.name)) else {
            continue;
        };
        let accuracy_spread = |pick: fn(&ModelReport) -> Metrics| {
            let values: Vec<f64> = seeds.iter().map(|t| pick(&t.report).accuracy).collect();
            spread(&values)
        };
        let cell = |m: Metrics, spread: f64| {
            if seeds.len() > 1 {
                format!("{:.3}/{:.3}±{:.2}", m.loss, m.accuracy, spread)
            } else {
                format!("{:.3} / {:.3}", m.loss, m.accuracy)
            }
        };
        let seconds: Vec<f64> = seeds.iter().map(|t| t.report.seconds_per_epoch).collect();
        let _ = writeln!(
            out,
            "{:<12} {:>15} {:>15} {:>15} {:>15} {:>11.3} {:>14}",
            model.name,
            cell(r.train, accuracy_spread(|r| r.train)),
            cell(r.same, accuracy_spread(|r| r.same)),
            cell(r.swapped, accuracy_spread(|r| r.swapped)),
            cell(r.anywhere, accuracy_spread(|r| r.anywhere)),
            r.dog_called_cat,
            format!("{:.2} ± {:.2}", r.seconds_per_epoch, spread(&seconds)),
        );
    }
    let _ = writeln!(
        out,
        "\nInvariance: validation {dog}s pasted at TL and at BR"
    );
    for name in INVARIANCE_MODELS {
        if let Some(f) = report.invariance.by_model.get(name) {
            let _ = writeln!(
                out,
                "  {name:<12} bit-identical logits for {:>5.1}% of them, largest logit difference {:.3e}",
                100.0 * f.identical_share,
                f.max_abs_diff
            );
        }
    }
    let _ = writeln!(
        out,
        "  cnn-1 identical for every {dog}: {}\n\nAll-zero weights (cnn-1): softmax {:?}, largest conv gradient {:e}",
        report.invariance.identical_logits,
        report.zero_init.softmax,
        report.zero_init.conv_grad_max_abs
    );
    out
}

fn write_json(path: &Path, report: &Report) -> Result<()> {
    let text = serde_json::to_string_pretty(report)
        .map_err(|e| TrainError::file(path, format!("cannot encode the report: {e}")))?;
    write_atomically(path, text.as_bytes())
}

/// Every epoch of every model and seed: `model,seed,epoch,train_loss,train_accuracy,swapped_loss,swapped_accuracy,seconds`.
fn write_metrics_csv(
    path: &Path,
    runs: &BTreeMap<&str, Vec<Trained>>,
    seeds: &[u64],
) -> Result<()> {
    let mut text = String::from(
        "model,seed,epoch,train_loss,train_accuracy,swapped_loss,swapped_accuracy,seconds\n",
    );
    for model in MODELS {
        for (trained, seed) in runs.get(model.name).into_iter().flatten().zip(seeds) {
            for record in &trained.history {
                let swapped = record
                    .validation
                    .iter()
                    .find(|(n, _)| n == "swapped")
                    .map(|(_, m)| *m)
                    .unwrap_or_default();
                let _ = writeln!(
                    text,
                    "{},{seed},{},{},{},{},{},{:.3}",
                    model.name,
                    record.epoch,
                    record.train.loss,
                    record.train.accuracy,
                    swapped.loss,
                    swapped.accuracy,
                    record.seconds
                );
            }
        }
    }
    write_atomically(path, text.as_bytes())
}

fn plot_error(error: tapir_plots::PlotError) -> TrainError {
    TrainError::file(error.path.clone(), error.to_string())
}

/// The four pictures, from the first seed's runs.
fn pictures(
    config: &DemoConfig,
    data: &AnimalMnist,
    sets: &Quadrants,
    runs: &BTreeMap<&str, Vec<Trained>>,
) -> Result<()> {
    let first = |name: &str| {
        runs.get(name)
            .and_then(|r| r.first())
            .ok_or_else(|| TrainError::from(Error::Tape(format!("BUG: {name} did not run"))))
    };
    let (fcn, cnn) = (first("fcn")?, first("cnn-1")?);
    let [dog, cat] = config.classes.names();

    let mut curves = Vec::new();
    for (name, trained) in [("fcn", fcn), ("cnn-1", cnn)] {
        let swapped = |r: &EpochRecord| {
            r.validation
                .iter()
                .find(|(n, _)| n == "swapped")
                .map_or(f64::NAN, |(_, m)| m.loss)
        };
        curves.push(Curve {
            model: name.into(),
            label: format!("{name} train"),
            values: trained.history.iter().map(|r| r.train.loss).collect(),
            dashed: false,
        });
        curves.push(Curve {
            model: name.into(),
            label: format!("{name} swapped validation"),
            values: trained.history.iter().map(swapped).collect(),
            dashed: true,
        });
    }
    tapir_plots::loss_curves(
        config.out.join(LOSS_PNG),
        "Training loss (solid) and swapped validation loss (dashed)",
        &curves,
    )
    .map_err(plot_error)?;

    let weight = cnn
        .params
        .get("conv.weight")
        .ok_or_else(|| Error::Tape("BUG: cnn-1 has no conv.weight".into()))?;
    let filters: Array3<f32> = weight
        .view()
        .into_shape_with_order((weight.shape()[0], weight.shape()[2], weight.shape()[3]))
        .map_err(|e| Error::Tape(format!("BUG: conv.weight {:?}: {e}", weight.shape())))?
        .to_owned();
    tapir_plots::filter_grid(
        config.out.join(FILTERS_PNG),
        "cnn-1's learned 5x5 filters",
        filters.view(),
    )
    .map_err(plot_error)?;

    similarity_picture(config, data, sets, cnn, dog)?;
    samples_picture(config, data, sets, fcn, cnn, [dog, cat])
}

/// One validation dog at TL and at BR, and `cnn-1`'s similarity maps (its conv output) for
/// the three filters that respond most.
fn similarity_picture(
    config: &DemoConfig,
    data: &AnimalMnist,
    sets: &Quadrants,
    cnn: &Trained,
    dog: &str,
) -> Result<()> {
    let source = sets.split.validation[0]
        .first()
        .copied()
        .ok_or_else(|| Error::Tape("no validation dog".into()))?;
    let placements = [Quadrant::TopLeft, Quadrant::BottomRight].map(|q| Placement {
        source,
        offset: q.offset(),
    });
    let pair = PlacedSet::build(data, placements.to_vec(), vec![0, 0])?;
    // The maps are the conv's output, which the trained network makes inside its pooling
    // and never keeps: run the ops one by one to read them.
    let unfused = Network::<f32>::unfused(Arc::clone(cnn.network.graph()))?;
    let mut tape = Tape::inference();
    let forward = unfused.forward(
        &mut tape,
        &cnn.params,
        vec![pair.images().to_owned().into_dyn()],
        false,
        None,
    )?;
    let conv = unfused
        .graph()
        .nodes
        .iter()
        .position(|n| n.op == "conv2d")
        .ok_or_else(|| Error::Tape("cnn-1 has no conv".into()))?;
    let maps = forward
        .value(ValueId::Node(conv))
        .ok_or_else(|| Error::Tape("BUG: no conv output".into()))?
        .value()
        .clone();
    let map = |n: usize, f: usize| maps.index_axis(Axis(0), n).index_axis_move(Axis(0), f);
    let maxima: Vec<f32> = (0..maps.shape()[1])
        .map(|f| map(0, f).fold(f32::NEG_INFINITY, |m, &v| m.max(v)))
        .collect();
    let mut order: Vec<usize> = (0..maxima.len()).collect();
    order.sort_by(|&a, &b| maxima[b].total_cmp(&maxima[a]));
    let chosen: Vec<usize> = order.into_iter().take(3).collect();
    let chosen_maps: Vec<ArrayD<f32>> = (0..2)
        .map(|n| {
            ndarray::stack(
                Axis(0),
                &chosen.iter().map(|&f| map(n, f)).collect::<Vec<_>>(),
            )
        })
        .collect::<std::result::Result<_, _>>()
        .map_err(|e| Error::Tape(format!("BUG: stacking maps: {e}")))?;
    let images = pair.images();
    let rows: Vec<SimilarityRow> = ["at TL", "at BR"]
        .iter()
        .enumerate()
        .map(|(n, place)| {
            let maps = chosen_maps[n]
                .view()
                .into_dimensionality::<Ix3>()
                .map_err(|e| Error::Tape(format!("BUG: maps: {e}")))?;
            let image = images
                .index_axis_move(Axis(0), n)
                .index_axis_move(Axis(0), 0);
            Ok(SimilarityRow {
                label: format!("{dog} {place}"),
                image,
                maps,
            })
        })
        .collect::<Result<_>>()?;
    let labels: Vec<String> = chosen.iter().map(|f| format!("filter #{f}")).collect();
    tapir_plots::similarity_maps(
        config.out.join(SIMILARITY_PNG),
        &format!("cnn-1: one {dog}, two positions"),
        &labels,
        &rows,
    )
    .map_err(plot_error)
}

/// One titled row of images with a network's answers (truth -> answer).
fn section<'a>(
    title: &str,
    set: &'a PlacedSet,
    predictions: &[usize],
    names: [&str; 2],
) -> SampleSection<'a> {
    let samples = (0..set.len())
        .map(|i| {
            let (truth, said) = (set.labels()[i], predictions[i]);
            Sample {
                image: set
                    .images()
                    .index_axis_move(Axis(0), i)
                    .index_axis_move(Axis(0), 0),
                caption: format!("{} -> {}", names[truth], names[said]),
                correct: truth == said,
            }
        })
        .collect();
    SampleSection {
        title: title.to_string(),
        samples,
    }
}

/// A few training and `swapped` images with `fcn`'s and `cnn-1`'s answers.
fn samples_picture(
    config: &DemoConfig,
    data: &AnimalMnist,
    sets: &Quadrants,
    fcn: &Trained,
    cnn: &Trained,
    names: [&str; 2],
) -> Result<()> {
    const PER_CLASS: usize = 3;
    let pick = |set: &PlacedSet| -> Result<PlacedSet> {
        let mut chosen = Vec::new();
        for class in 0..2 {
            chosen.extend(
                set.labels()
                    .iter()
                    .enumerate()
                    .filter(|&(_, &l)| l == class)
                    .take(PER_CLASS)
                    .map(|(i, _)| i),
            );
        }
        let placements = chosen.iter().map(|&i| set.placements()[i]).collect();
        Ok(PlacedSet::build(
            data,
            placements,
            chosen.iter().map(|&i| set.labels()[i]).collect(),
        )?)
    };
    let (train, swapped) = (pick(&sets.train)?, pick(&sets.swapped)?);
    let answers = |trained: &Trained, set: &PlacedSet| {
        evaluate(&trained.network, &trained.params, set, 64).map(|e| e.predictions)
    };

    let sections = vec![
        section(
            "training images, fcn's answers",
            &train,
            &answers(fcn, &train)?,
            names,
        ),
        section(
            "swapped validation, fcn's answers",
            &swapped,
            &answers(fcn, &swapped)?,
            names,
        ),
        section(
            "swapped validation, cnn-1's answers",
            &swapped,
            &answers(cnn, &swapped)?,
            names,
        ),
    ];
    tapir_plots::sample_grid(
        config.out.join(SAMPLES_PNG),
        "What the networks say (truth -> answer)",
        &sections,
    )
    .map_err(plot_error)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spread_is_the_sample_standard_deviation() {
        assert_eq!(spread(&[1.0]), 0.0);
        // mean 2, squared deviations 1 + 0 + 1 = 2, over n - 1 = 2: 1.
        assert_eq!(spread(&[1.0, 2.0, 3.0]), 1.0);
    }

    #[test]
    fn models_name_existing_files() {
        for model in MODELS {
            assert!(
                default_graphs_dir().join(model.file).exists(),
                "{}",
                model.file
            );
        }
    }
}
