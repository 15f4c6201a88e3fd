//! A run interrupted after an epoch and resumed ends bit-identical to one that was not.

use std::path::Path;

use tapir_graph::TensorFile;
use tapir_train::data::{ClassPair, default_data_dir};
use tapir_train::optim::OptimizerKind;
use tapir_train::run::{Layout, PARAMS_FILE, RunConfig, train_run};
use tapir_train::train::EpochRecord;

fn config(out: &Path, epochs: usize, resume: bool) -> RunConfig {
    RunConfig {
        graph: concat!(env!("CARGO_MANIFEST_DIR"), "/../../graphs/fcn.ron").into(),
        data_dir: default_data_dir(),
        classes: ClassPair::parse("horse,cow").unwrap(),
        layout: Layout::Quadrants,
        epochs,
        batch: 64,
        // Adam keeps two buffers and a step count; augmentation draws per epoch: all must
        // come back exactly for the runs to agree.
        optimizer: OptimizerKind::adam(1e-3),
        seed: 11,
        augment: true,
        out: out.to_path_buf(),
        resume,
        progress: false,
    }
}

fn param_bits(out: &Path) -> Vec<(String, Vec<u32>)> {
    let file = TensorFile::open(out.join(PARAMS_FILE)).unwrap();
    file.names()
        .map(|name| {
            (
                name.to_string(),
                file.tensor::<f32>(name)
                    .unwrap()
                    .iter()
                    .map(|x| x.to_bits())
                    .collect(),
            )
        })
        .collect()
}

/// Everything but the wall-clock seconds.
fn figures(history: &[EpochRecord]) -> Vec<String> {
    history
        .iter()
        .map(|r| format!("{} {:?} {:?}", r.epoch, r.train, r.validation))
        .collect()
}

#[test]
fn an_interrupted_and_resumed_run_ends_bit_identical() {
    let (whole, halves) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let uninterrupted = train_run(&config(whole.path(), 3, false), &mut |_| {}).unwrap();
    let first = train_run(&config(halves.path(), 1, false), &mut |_| {}).unwrap();
    assert_eq!(first.history.len(), 1);
    let resumed = train_run(&config(halves.path(), 3, true), &mut |_| {}).unwrap();
    assert_eq!(resumed.resumed_from, 1);
    assert_eq!(figures(&resumed.history), figures(&uninterrupted.history));
    assert_eq!(param_bits(halves.path()), param_bits(whole.path()));
    // The metrics file holds every epoch, the resumed-from one included.
    let csv = std::fs::read_to_string(halves.path().join("metrics.csv")).unwrap();
    assert_eq!(csv.lines().count(), 1 + 3);
}

#[test]
fn resuming_with_other_settings_or_no_checkpoint_is_an_error() {
    let out = tempfile::tempdir().unwrap();
    let err = train_run(&config(out.path(), 2, true), &mut |_| {})
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("checkpoint.safetensors") && err.contains("cannot"),
        "{err}"
    );
    train_run(&config(out.path(), 1, false), &mut |_| {}).unwrap();
    let mut other = config(out.path(), 2, true);
    other.batch = 32;
    let err = train_run(&other, &mut |_| {}).unwrap_err().to_string();
    assert!(err.contains("batch: 64 then, 32 now"), "{err}");
    let err = train_run(&config(out.path(), 1, true), &mut |_| {})
        .unwrap_err()
        .to_string();
    assert!(
        err.ends_with("the run already reached epoch 1; ask for more with --epochs"),
        "{err}"
    );
}

#[test]
fn a_checkpoint_of_another_network_or_a_network_that_does_not_fit_is_an_error() {
    let out = tempfile::tempdir().unwrap();
    train_run(&config(out.path(), 1, false), &mut |_| {}).unwrap();
    let registry = tapir_ops::builtin_registry();
    let cnn = tapir_graph::Graph::load(
        concat!(env!("CARGO_MANIFEST_DIR"), "/../../graphs/cnn-1.ron"),
        &registry,
    )
    .unwrap();
    let err =
        tapir_train::checkpoint::Checkpoint::load(&out.path().join("checkpoint.safetensors"), &cnn)
            .unwrap_err()
            .to_string();
    assert!(err.contains("param.conv.weight"), "{err}");

    let mut unfit = config(out.path(), 1, false);
    unfit.graph = concat!(env!("CARGO_MANIFEST_DIR"), "/../../graphs/inception.ron").into();
    let err = train_run(&unfit, &mut |_| {}).unwrap_err().to_string();
    assert!(
        err.contains("takes \"image\" [1, 28, 28]; the data are images of [1, 56, 56]"),
        "{err}"
    );
}
