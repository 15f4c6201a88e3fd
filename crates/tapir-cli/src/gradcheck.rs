//! `tapir gradcheck`: a network's loss differentiated against every parameter and input,
//! compared with central finite differences in f64.

use std::path::PathBuf;

use clap::Args;
use tapir_core::gradcheck::{Config, TensorReport};

use crate::output::{Failure, Out, count, load_graph, note, require_loss};

/// Elements checked per tensor unless told otherwise: each costs two forward passes, and a
/// seeded sample of every tensor finds a wrong gradient as surely as all of them.
const DEFAULT_ELEMENTS: usize = 20;

/// Check a network's gradients against finite differences, in f64
///
/// Draws parameters as the file's `init` says and a batch of random inputs (data uniform in
/// [0, 1), labels uniform over the classes), then compares the loss's gradient for every
/// parameter and input with central finite differences.
#[derive(Debug, Args)]
#[command(after_help = "Examples:
  tapir gradcheck graphs/cnn-1.ron
  tapir gradcheck graphs/cnn-2.ron --seed 3 --batch 4 --elements 50
  tapir gradcheck graphs/fcn.ron --all")]
pub struct GradcheckArgs {
    /// The network file (RON)
    graph: PathBuf,
    /// Seed of the parameters, the inputs and the checked elements
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Samples in the random batch
    #[arg(long, default_value_t = 2, value_parser = clap::value_parser!(u32).range(1..))]
    batch: u32,
    /// Check this many elements of each tensor, a seeded sample [default: 20]
    #[arg(long, value_name = "N", conflicts_with = "all",
          value_parser = clap::value_parser!(u32).range(1..))]
    elements: Option<u32>,
    /// Check every element of every tensor (two forward passes each: slow for big networks)
    #[arg(long)]
    all: bool,
}

/// Runs the check, prints a table per tensor and a verdict; a failed check is an error.
pub fn run(args: &GradcheckArgs, out: &mut Out) -> Result<(), Failure> {
    let graph = load_graph(&args.graph)?;
    require_loss(&graph)?;
    let elements = match (args.all, args.elements) {
        (true, _) => None,
        (false, Some(n)) => Some(n as usize),
        (false, None) => {
            note(format_args!(
                "checking {DEFAULT_ELEMENTS} elements per tensor, a sample drawn from the \
                 seed; --elements N or --all to change"
            ));
            Some(DEFAULT_ELEMENTS)
        }
    };
    let config = Config {
        seed: args.seed,
        max_elements_per_tensor: elements,
        ..Config::default()
    };
    let check = graph
        .gradcheck(args.batch as usize, &config)
        .map_err(|e| Failure::new(format_args!("{}: {e}", graph.name)))?;
    out.line(format_args!(
        "{}: the loss's gradient against finite differences (f64, eps {:e}), batch {}, seed {}, {}",
        graph.name,
        config.eps,
        check.batch,
        config.seed,
        match elements {
            Some(n) => format!("at most {n} elements per tensor"),
            None => "every element".to_string(),
        }
    ))?;
    out.line("")?;
    out.text(&table(&check.report.tensors))?;
    out.line("")?;
    let failed: Vec<&TensorReport> = check.report.tensors.iter().filter(|t| !t.passed).collect();
    if failed.is_empty() {
        out.line(format_args!(
            "passed: {}, largest relative error {:.2e} (tolerance {:e})",
            count(check.report.tensors.len(), "tensor"),
            check.report.max_rel_error(),
            config.tolerance
        ))
    } else {
        let names: Vec<&str> = failed.iter().map(|t| t.name.as_str()).collect();
        out.line(format_args!(
            "FAILED: {} of {} above the tolerance {:e}: {}",
            failed.len(),
            count(check.report.tensors.len(), "tensor"),
            config.tolerance,
            names.join(", ")
        ))?;
        Err(Failure::new(format_args!(
            "{}: the gradient check failed for {}",
            graph.name,
            names.join(", ")
        )))
    }
}

/// One row per tensor, columns aligned.
fn table(tensors: &[TensorReport]) -> String {
    let mut rows: Vec<[String; 7]> = vec![[
        "tensor".into(),
        "shape".into(),
        "checked".into(),
        "max abs error".into(),
        "max rel error".into(),
        "worst index".into(),
        "result".into(),
    ]];
    for t in tensors {
        rows.push([
            t.name.clone(),
            format!("{:?}", t.shape),
            format!("{} of {}", t.checked, t.analytic.len()),
            format!("{:.2e}", t.max_abs_error),
            format!("{:.2e}", t.max_rel_error),
            format!("{:?}", t.worst_index),
            if t.passed { "pass" } else { "FAIL" }.to_string(),
        ]);
    }
    let mut widths = [0usize; 7];
    for row in &rows {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.chars().count());
        }
    }
    let mut text = String::new();
    for (index, row) in rows.iter().enumerate() {
        let cells: Vec<String> = row
            .iter()
            .zip(widths)
            .map(|(cell, width)| format!("{cell:<width$}"))
            .collect();
        text.push_str(cells.join("  ").trim_end());
        text.push('\n');
        if index == 0 {
            text.push_str(&"-".repeat(widths.iter().sum::<usize>() + 2 * (widths.len() - 1)));
            text.push('\n');
        }
    }
    text
}
