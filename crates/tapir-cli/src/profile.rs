//! `tapir profile`: where a network's training step spends its time, node by node.

use std::path::PathBuf;
use std::time::Duration;

use clap::Args;
use tapir_core::Schedule;
use tapir_graph::ProfileConfig;

use crate::output::{Failure, Out, load_graph, require_loss};

/// Time a training step of a network node by node, on random data
///
/// Runs forward, backward and an SGD update (learning rate 0.01) on random images (uniform in
/// [0, 1)) and labels, with parameters as the file's `init` says: warm-up steps first, then
/// every time is the median of the timed steps. Prints each node's forward FLOPs for the
/// batch, its forward and backward times and GFLOP/s (a backward counts twice its forward's
/// FLOPs), its share of the step, the step's images/s and the process's peak memory.
#[derive(Debug, Args)]
#[command(after_help = "Examples:
  tapir profile graphs/cnn-2.ron --batch 64
  tapir profile graphs/cnn-2.ron --batch 64 --threads 1 --json
  tapir profile graphs/inception.ron --batch 8 --threads 2 --one-at-a-time")]
pub struct ProfileArgs {
    /// The network file (RON), with a loss
    graph: PathBuf,
    /// Samples per step
    #[arg(long, default_value_t = 64, value_parser = clap::value_parser!(u32).range(1..))]
    batch: u32,
    /// Threads to run on [default: rayon's, one per core or RAYON_NUM_THREADS]
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..))]
    threads: Option<u32>,
    /// Timed steps, at least (and at least 2 seconds of them)
    #[arg(long, default_value_t = 20, value_parser = clap::value_parser!(u32).range(1..))]
    steps: u32,
    /// Run the independent nodes of a wave (a network's branches) one after another instead
    /// of side by side; each op still splits its own work across the threads. The serial
    /// baseline, to see what running branches side by side gains
    #[arg(long)]
    one_at_a_time: bool,
    /// Seed of the parameters and the data
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Print the profile as JSON (times in seconds) instead of a table
    #[arg(long)]
    json: bool,
}

/// Profiles the network and prints the table or the JSON.
pub fn run(args: &ProfileArgs, out: &mut Out) -> Result<(), Failure> {
    let graph = load_graph(&args.graph)?;
    require_loss(&graph)?;
    let config = ProfileConfig {
        batch: args.batch as usize,
        threads: args.threads.map(|n| n as usize),
        schedule: if args.one_at_a_time {
            Schedule::OneAtATime
        } else {
            Schedule::SideBySide
        },
        steps: args.steps as usize,
        time: Duration::from_secs(2),
        seed: args.seed,
        ..ProfileConfig::default()
    };
    let profile = graph
        .profile(&config)
        .map_err(|e| Failure::new(format_args!("{}: {e}", graph.name)))?;
    if args.json {
        let json = serde_json::to_string_pretty(&profile)
            .map_err(|e| Failure::new(format_args!("cannot write the profile as JSON: {e}")))?;
        out.line(json)
    } else {
        out.text(&profile.table())
    }
}
