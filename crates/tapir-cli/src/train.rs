//! `tapir train`: a network file trained on the bundled animal silhouettes.

use std::io::IsTerminal;
use std::path::PathBuf;

use clap::{Args, ValueEnum};
use tapir_train::TrainError;
use tapir_train::data::{ClassPair, default_data_dir};
use tapir_train::optim::OptimizerKind;
use tapir_train::run::{
    CHECKPOINT_FILE, Layout, METRICS_CSV, METRICS_JSON, PARAMS_FILE, RunConfig, train_run,
};

use crate::output::{Failure, Out, note};

/// Train a network on animal silhouettes (the experiment's quadrants layout)
///
/// After every epoch the output folder gets a checkpoint, metrics.csv and metrics.json; at
/// the end, params.safetensors (PyTorch's names and layouts). --resume continues an
/// interrupted run from its checkpoint and ends exactly where the uninterrupted run would.
#[derive(Debug, Args)]
#[command(after_help = "Examples:
  tapir train graphs/cnn-1.ron
  tapir train graphs/fcn.ron --classes horse,cow --epochs 5 --optimizer adam --lr 0.001 --out runs/fcn
  tapir train graphs/fcn.ron --out runs/fcn --epochs 10 --resume")]
pub struct TrainArgs {
    /// The network file (RON): one input of [1, 56, 56], two logits, a loss
    graph: PathBuf,
    /// The animal-mnist folder [default: the bundled data/animal-mnist]
    #[arg(long, value_name = "DIR")]
    data: Option<PathBuf>,
    /// The two animals, class 0 then class 1 (bear bird cat cow dog elephant giraffe horse sheep zebra)
    #[arg(long, default_value = "dog,cat")]
    classes: String,
    /// How the animals are laid out on the 56x56 canvas
    #[arg(long, default_value = "quadrants")]
    layout: String,
    /// Epochs to train (to, when resuming)
    #[arg(long, default_value_t = 15)]
    epochs: usize,
    /// Samples per step
    #[arg(long, default_value_t = 64)]
    batch: usize,
    /// Learning rate
    #[arg(long, default_value_t = 0.01)]
    lr: f64,
    /// The optimizer
    #[arg(long, value_enum, default_value_t = OptimizerChoice::Sgd)]
    optimizer: OptimizerChoice,
    /// SGD's momentum
    #[arg(long, default_value_t = 0.9)]
    momentum: f64,
    /// L2 weight decay
    #[arg(long, default_value_t = 0.0)]
    weight_decay: f64,
    /// Seed of the layout, the initialisation and every shuffle
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Re-paste the training images at random offsets every epoch (fcn-aug)
    #[arg(long)]
    augment: bool,
    /// The output folder [default: runs/<network name>]
    #[arg(long, value_name = "DIR")]
    out: Option<PathBuf>,
    /// Continue from the output folder's checkpoint
    #[arg(long)]
    resume: bool,
}

/// The optimizers `--optimizer` names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum OptimizerChoice {
    /// SGD with momentum (and weight decay)
    Sgd,
    /// Adam (betas 0.9, 0.999; eps 1e-8)
    Adam,
}

/// Trains and reports each epoch on standard error, the files written on standard output.
pub fn run(args: &TrainArgs, out: &mut Out) -> Result<(), Failure> {
    let optimizer = match args.optimizer {
        OptimizerChoice::Sgd => OptimizerKind::Sgd {
            lr: args.lr,
            momentum: args.momentum,
            weight_decay: args.weight_decay,
        },
        OptimizerChoice::Adam => OptimizerKind::Adam {
            lr: args.lr,
            beta1: 0.9,
            beta2: 0.999,
            eps: 1e-8,
            weight_decay: args.weight_decay,
        },
    };
    let stem = args
        .graph
        .file_stem()
        .map_or_else(|| "run".into(), |s| s.to_string_lossy().into_owned());
    let config = RunConfig {
        graph: args.graph.clone(),
        data_dir: args.data.clone().unwrap_or_else(default_data_dir),
        classes: ClassPair::parse(&args.classes).map_err(Failure::new)?,
        layout: Layout::parse(&args.layout).map_err(failure)?,
        epochs: args.epochs,
        batch: args.batch,
        optimizer,
        seed: args.seed,
        augment: args.augment,
        out: args
            .out
            .clone()
            .unwrap_or_else(|| PathBuf::from("runs").join(stem)),
        resume: args.resume,
        progress: std::io::stderr().is_terminal(),
    };
    if args.out.is_none() {
        note(format_args!(
            "writing to {} (--out to choose)",
            config.out.display()
        ));
    }
    let summary = train_run(&config, &mut |line| note(line)).map_err(failure)?;
    let last = summary.history.last();
    for file in [PARAMS_FILE, CHECKPOINT_FILE, METRICS_CSV, METRICS_JSON] {
        out.line(config.out.join(file).display())?;
    }
    if let Some(last) = last {
        out.line(format_args!(
            "final: train loss {:.4}, accuracy {:.3}",
            last.train.loss, last.train.accuracy
        ))?;
    }
    Ok(())
}

/// A training error as the command reports it (network errors come rendered with their place).
pub fn failure(error: TrainError) -> Failure {
    match error {
        TrainError::Graph(rendered) => Failure::Message(rendered),
        other => Failure::new(other),
    }
}
