//! `tapir demo`: the translation-invariance experiment end to end.

use std::io::IsTerminal;
use std::path::PathBuf;

use clap::Args;
use tapir_train::data::{ClassPair, default_data_dir};
use tapir_train::demo::{DemoConfig, FILES, default_graphs_dir, run as run_demo};

use crate::output::{Failure, Out, note};
use crate::train::failure;

/// Run the translation-invariance demo: six networks, dogs moved to the cats' corner
///
/// Trains fcn, fcn-aug, cnn-1-valid, cnn-1-same, cnn-1 and cnn-2 (graphs/) on dogs at three
/// corners and cats at the fourth, evaluates them on the same layout, the swapped one and at
/// random places, checks that cnn-1's logits are bit-identical for a dog at either corner,
/// and writes report.json, metrics.csv, loss.png, filters.png, similarity.png and samples.png.
#[derive(Debug, Args)]
#[command(after_help = "Examples:
  tapir demo
  tapir demo --out demo-out --seeds 0,1,2
  tapir demo --classes horse,cow --epochs 5")]
pub struct DemoArgs {
    /// The output folder
    #[arg(long, default_value = "demo-out", value_name = "DIR")]
    out: PathBuf,
    /// One full run per seed; the table shows means and spreads
    #[arg(long, default_value = "0", value_delimiter = ',')]
    seeds: Vec<u64>,
    /// Epochs per network
    #[arg(long, default_value_t = 15)]
    epochs: usize,
    /// Samples per step
    #[arg(long, default_value_t = 64)]
    batch: usize,
    /// SGD's learning rate
    #[arg(long, default_value_t = 0.01)]
    lr: f64,
    /// The two animals: the first plays the dog, the second the cat
    #[arg(long, default_value = "dog,cat")]
    classes: String,
    /// The animal-mnist folder [default: the bundled data/animal-mnist]
    #[arg(long, value_name = "DIR")]
    data: Option<PathBuf>,
    /// The folder of the networks' files [default: the repository's graphs/]
    #[arg(long, value_name = "DIR")]
    graphs: Option<PathBuf>,
}

/// Runs the demo; progress on standard error, the table on standard output.
pub fn run(args: &DemoArgs, out: &mut Out) -> Result<(), Failure> {
    let config = DemoConfig {
        out: args.out.clone(),
        seeds: args.seeds.clone(),
        epochs: args.epochs,
        batch: args.batch,
        lr: args.lr,
        classes: ClassPair::parse(&args.classes).map_err(Failure::new)?,
        data_dir: args.data.clone().unwrap_or_else(default_data_dir),
        graphs_dir: args.graphs.clone().unwrap_or_else(default_graphs_dir),
        progress: std::io::stderr().is_terminal(),
        ..DemoConfig::default()
    };
    let (_, table) = run_demo(&config, &mut |line| note(line)).map_err(failure)?;
    out.text(&table)?;
    for file in FILES {
        out.line(format_args!("wrote {}", config.out.join(file).display()))?;
    }
    Ok(())
}
