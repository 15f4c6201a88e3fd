//! A training run as `tapir train` makes it: a network file trained on a data layout,
//! with a checkpoint after every epoch, metrics as CSV and JSON, and the final parameters
//! in safetensors. `--resume` continues from the checkpoint, bit for bit.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use tapir_graph::{Dtype, Graph, Network};

use crate::checkpoint::Checkpoint;
use crate::data::{AnimalMnist, CANVAS, ClassPair, PlacedSet, Quadrants};
use crate::error::{Result, TrainError};
use crate::files::write_atomically;
use crate::optim::{Optimizer, OptimizerKind};
use crate::train::{AUGMENT_STREAM, Classifier, EpochRecord, TrainConfig, epoch_rng, fit};

/// The file names a run writes in its output folder.
pub const CHECKPOINT_FILE: &str = "checkpoint.safetensors";
/// The final parameters, PyTorch's names and layouts.
pub const PARAMS_FILE: &str = "params.safetensors";
/// One line per epoch.
pub const METRICS_CSV: &str = "metrics.csv";
/// The same, as JSON.
pub const METRICS_JSON: &str = "metrics.json";

/// How a data set is laid out; `quadrants` is the experiment's (the README describes it).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Layout {
    /// Class 0 at TL, TR or BL, class 1 at BR; validated on `same`, `swapped`, `anywhere`.
    Quadrants,
}

impl Layout {
    /// Parses a layout name.
    pub fn parse(name: &str) -> Result<Self> {
        match name {
            "quadrants" => Ok(Layout::Quadrants),
            other => Err(tapir_core::Error::hyperparameter(
                "train",
                format!("unknown layout \"{other}\"; the layouts are: quadrants"),
            )
            .into()),
        }
    }
}

/// Everything `tapir train` is told.
#[derive(Debug, Clone, PartialEq)]
pub struct RunConfig {
    /// The network file.
    pub graph: PathBuf,
    /// The animal-mnist folder.
    pub data_dir: PathBuf,
    /// The two animals.
    pub classes: ClassPair,
    /// The layout.
    pub layout: Layout,
    /// The last epoch to train to (a resumed run may extend it).
    pub epochs: usize,
    /// Samples per step.
    pub batch: usize,
    /// The optimizer and its hyperparameters.
    pub optimizer: OptimizerKind,
    /// The seed of the layout, the initialisation and every shuffle.
    pub seed: u64,
    /// Re-paste training images at random offsets every epoch.
    pub augment: bool,
    /// The output folder.
    pub out: PathBuf,
    /// Continue from the output folder's checkpoint.
    pub resume: bool,
    /// Progress bars on an interactive terminal.
    pub progress: bool,
}

impl RunConfig {
    /// The settings a resumed run must share with the run it continues; the network is known
    /// by its file's name and a hash of its text, so an edited file is noticed.
    fn settings(&self, graph_text: &str) -> BTreeMap<String, String> {
        let file = self.graph.file_name().map_or_else(
            || self.graph.display().to_string(),
            |f| f.to_string_lossy().into_owned(),
        );
        BTreeMap::from([
            (
                "graph".to_string(),
                format!("{file} (text hash {:016x})", fnv1a(graph_text.as_bytes())),
            ),
            ("data".to_string(), self.data_dir.display().to_string()),
            ("classes".to_string(), self.classes.names().join(",")),
            (
                "layout".to_string(),
                format!("{:?}", self.layout).to_lowercase(),
            ),
            ("batch".to_string(), self.batch.to_string()),
            ("optimizer".to_string(), format!("{:?}", self.optimizer)),
            ("augment".to_string(), self.augment.to_string()),
        ])
    }
}

/// The 64-bit FNV-1a hash: a stable fingerprint of a file's text (the standard library's
/// hasher may change between Rust versions; checkpoints outlive them).
fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |hash, &b| {
        (hash ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}

/// What a run did.
#[derive(Debug, Clone, PartialEq)]
pub struct RunSummary {
    /// Every epoch's figures, the resumed-from ones included.
    pub history: Vec<EpochRecord>,
    /// The epoch the run started after (0 for a fresh run).
    pub resumed_from: usize,
}

/// Trains as `config` says; `log` receives a line per epoch.
pub fn train_run(config: &RunConfig, log: &mut dyn FnMut(&str)) -> Result<RunSummary> {
    let registry = tapir_ops::builtin_registry();
    let graph = Arc::new(Graph::load(&config.graph, &registry)?);
    Classifier::check_fits(&graph, &[1, CANVAS, CANVAS], 2)?;
    let graph_text = std::fs::read_to_string(&config.graph)
        .map_err(|e| TrainError::file(&config.graph, format!("cannot read: {e}")))?;
    let network = Network::<f32>::new(Arc::clone(&graph))?;
    let data = AnimalMnist::load(&config.data_dir)?;
    let Layout::Quadrants = config.layout;
    let sets = Quadrants::build(&data, config.classes, config.seed)?;
    std::fs::create_dir_all(&config.out).map_err(|e| {
        TrainError::file(&config.out, format!("cannot create the output folder: {e}"))
    })?;
    let checkpoint_path = config.out.join(CHECKPOINT_FILE);
    let settings = config.settings(&graph_text);
    let (mut params, mut optimizer, mut history) = if config.resume {
        let checkpoint = Checkpoint::load(&checkpoint_path, &graph)?;
        check_same_run(&checkpoint_path, &checkpoint, config, &settings)?;
        log(&format!(
            "resuming after epoch {} from {}",
            checkpoint.epoch,
            checkpoint_path.display()
        ));
        (checkpoint.params, checkpoint.optimizer, checkpoint.history)
    } else {
        let params = network.init_params(config.seed);
        let optimizer = Optimizer::new(config.optimizer, &params)?;
        (params, optimizer, Vec::new())
    };
    let resumed_from = history.len();
    let train_config = TrainConfig {
        epochs: config.epochs,
        batch: config.batch,
        seed: config.seed,
        progress: config.progress,
    };
    let training_set = |epoch: usize| -> Result<PlacedSet> {
        let mut set = sets.train.clone();
        if config.augment {
            set.reposition_randomly(&mut epoch_rng(config.seed, epoch, AUGMENT_STREAM));
        }
        Ok(set)
    };
    let validation = [
        ("same", &sets.same),
        ("swapped", &sets.swapped),
        ("anywhere", &sets.anywhere),
    ];
    let mut so_far = history.clone();
    let new = fit(
        &network,
        &mut params,
        &mut optimizer,
        &train_config,
        resumed_from,
        training_set,
        &validation,
        |record, params, optimizer| {
            so_far.push(record.clone());
            log(&epoch_line(record, config.epochs));
            let checkpoint = Checkpoint {
                epoch: record.epoch,
                seed: config.seed,
                settings: settings.clone(),
                params: params.clone(),
                optimizer: optimizer.clone(),
                history: so_far.clone(),
            };
            checkpoint.save(&checkpoint_path)?;
            write_metrics(&config.out, &so_far)
        },
    )?;
    history.extend(new);
    params
        .save(config.out.join(PARAMS_FILE), Dtype::F32)
        .map_err(|e| TrainError::file(config.out.join(PARAMS_FILE), e.to_string()))?;
    write_metrics(&config.out, &history)?;
    Ok(RunSummary {
        history,
        resumed_from,
    })
}

fn check_same_run(
    path: &Path,
    checkpoint: &Checkpoint,
    config: &RunConfig,
    settings: &BTreeMap<String, String>,
) -> Result<()> {
    let mut differences = Vec::new();
    if checkpoint.seed != config.seed {
        differences.push(format!(
            "seed: {} then, {} now",
            checkpoint.seed, config.seed
        ));
    }
    for (key, now) in settings {
        let then = checkpoint
            .settings
            .get(key)
            .map_or("(none)", String::as_str);
        if then != now {
            differences.push(format!("{key}: {then} then, {now} now"));
        }
    }
    if !differences.is_empty() {
        return Err(TrainError::file(
            path,
            format!(
                "this checkpoint was made with other settings ({}); resume with the same ones, or start afresh without --resume",
                differences.join("; ")
            ),
        ));
    }
    if checkpoint.epoch >= config.epochs {
        return Err(TrainError::file(
            path,
            format!(
                "the run already reached epoch {}; ask for more with --epochs",
                checkpoint.epoch
            ),
        ));
    }
    Ok(())
}

fn epoch_line(record: &EpochRecord, epochs: usize) -> String {
    let mut line = format!(
        "epoch {}/{epochs}: train {:.4} / {:.3}",
        record.epoch, record.train.loss, record.train.accuracy
    );
    for (name, m) in &record.validation {
        let _ = write!(line, ", {name} {:.4} / {:.3}", m.loss, m.accuracy);
    }
    let _ = write!(line, " ({:.1} s)", record.seconds);
    line
}

/// `metrics.csv` (one row per epoch, a loss and an accuracy column per set) and `metrics.json`.
fn write_metrics(out: &Path, history: &[EpochRecord]) -> Result<()> {
    let mut csv = String::from("epoch,train_loss,train_accuracy");
    if let Some(first) = history.first() {
        for (name, _) in &first.validation {
            let _ = write!(csv, ",{name}_loss,{name}_accuracy");
        }
    }
    csv.push_str(",seconds\n");
    for record in history {
        let _ = write!(
            csv,
            "{},{},{}",
            record.epoch, record.train.loss, record.train.accuracy
        );
        for (_, m) in &record.validation {
            let _ = write!(csv, ",{},{}", m.loss, m.accuracy);
        }
        let _ = writeln!(csv, ",{:.3}", record.seconds);
    }
    write_atomically(&out.join(METRICS_CSV), csv.as_bytes())?;
    let json = serde_json::to_string_pretty(history)
        .map_err(|e| TrainError::file(out.join(METRICS_JSON), format!("BUG: {e}")))?;
    write_atomically(&out.join(METRICS_JSON), json.as_bytes())
}

#[cfg(test)]
mod tests {
    #[test]
    fn fnv1a_matches_its_reference_values() {
        // The published test vectors of 64-bit FNV-1a.
        assert_eq!(super::fnv1a(b""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(super::fnv1a(b"a"), 0xaf63_dc4c_8601_ec8c);
    }
}
