//! The `tapir` binary, run as a user runs it: outputs, exit codes and error messages.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::Arc;

use ndarray::{ArrayD, IxDyn};
use safetensors::View;
use tapir_graph::{Dtype, Graph, Network, Params, TensorFile};

/// The repository's root, where `graphs/` is.
fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// Runs `tapir` with `args` in directory `dir`.
fn tapir_in(dir: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_tapir"))
        .args(args)
        .current_dir(dir)
        .output()
        .expect("the tapir binary runs")
}

/// Runs `tapir` with `args` at the repository's root.
fn tapir(args: &[&str]) -> Output {
    tapir_in(root(), args)
}

fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

fn load(path: &str) -> Arc<Graph> {
    Arc::new(Graph::load(root().join(path), &tapir::ops::builtin_registry()).unwrap())
}

#[test]
fn check_prints_the_summary_table() {
    let output = tapir(&["check", "graphs/cnn-2.ron"]);
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    assert_eq!(stderr(&output), "");
    insta::assert_snapshot!(stdout(&output));
}

#[test]
fn check_reports_a_located_error_and_fails() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("bad.ron"),
        r#"Network(
    inputs: { "image": [1, 28, 28] },
    nodes: {
        "conv":   (op: Conv2d(filters: 8, kernel: 3), input: "image"),
        "relu":   (op: Relu, input: "cnov"),
        "logits": (op: Dense(units: 10), input: "relu"),
    },
    outputs: ["logits"],
)
"#,
    )
    .unwrap();
    let output = tapir_in(dir.path(), &["check", "bad.ron"]);
    assert_eq!(output.status.code(), Some(1));
    assert_eq!(stdout(&output), "");
    let error = stderr(&output);
    assert!(error.contains("[bad.ron:5:37]"), "{error}");
    insta::assert_snapshot!(error);
}

#[test]
fn check_shows_warnings_and_succeeds() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("spare.ron"),
        r#"Network(
    inputs: { "x": [4] },
    nodes: {
        "hidden": (op: Dense(units: 3), input: "x"),
        "spare":  (op: Relu, input: "x"),
    },
    outputs: ["hidden"],
)
"#,
    )
    .unwrap();
    let output = tapir_in(dir.path(), &["check", "spare.ron"]);
    assert_eq!(output.status.code(), Some(0));
    assert!(stdout(&output).ends_with("spare.ron: valid, 1 warning\n"));
    let warning = stderr(&output);
    assert!(
        warning.contains("node \"spare\" is not used by any output or the loss")
            && warning.contains("[spare.ron:5:9]"),
        "{warning}"
    );
}

#[test]
fn missing_files_are_errors_naming_the_path() {
    let output = tapir(&["check", "graphs/missing.ron"]);
    assert_eq!(output.status.code(), Some(1));
    assert!(
        stderr(&output).contains("cannot read graphs/missing.ron: No such file or directory"),
        "{}",
        stderr(&output)
    );

    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("g.safetensors");
    let output = tapir(&[
        "grad",
        "graphs/cnn-1.ron",
        "--params",
        "no-params.safetensors",
        "--inputs",
        "no-inputs.safetensors",
        "--out",
        out.to_str().unwrap(),
    ]);
    assert_eq!(output.status.code(), Some(1));
    assert_eq!(
        stderr(&output),
        "error: no-params.safetensors: cannot read the file: No such file or directory (os error 2)\n"
    );
    assert!(!out.exists());
}

#[test]
fn dot_prints_the_graph() {
    let output = tapir(&["dot", "graphs/cnn-1.ron"]);
    assert_eq!(output.status.code(), Some(0));
    assert_eq!(stdout(&output), load("graphs/cnn-1.ron").to_dot());
}

#[test]
fn gradcheck_passes_on_cnn_1() {
    let output = tapir(&["gradcheck", "graphs/cnn-1.ron"]);
    let text = stdout(&output);
    assert_eq!(output.status.code(), Some(0), "{text}{}", stderr(&output));
    assert_eq!(
        stderr(&output),
        "note: checking 20 elements per tensor, a sample drawn from the seed; \
         --elements N or --all to change\n"
    );
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(
        lines[0],
        "graphs/cnn-1.ron: the loss's gradient against finite differences (f64, eps 1e-6), \
         batch 2, seed 0, at most 20 elements per tensor"
    );
    // The error figures depend on the machine's rounding: check the table's frame and verdicts.
    let rows = &lines[4..9];
    let tensors: Vec<(&str, &str)> = rows
        .iter()
        .map(|row| {
            (
                row.split("  ").next().unwrap().trim(),
                row.rsplit(' ').next().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        tensors,
        [
            ("conv.weight", "pass"),
            ("conv.bias", "pass"),
            ("logits.weight", "pass"),
            ("logits.bias", "pass"),
            ("image", "pass"),
        ]
    );
    assert!(rows[0].contains("[16, 1, 5, 5]   20 of 400"), "{}", rows[0]);
    assert!(
        lines[10].starts_with("passed: 5 tensors, largest relative error "),
        "{}",
        lines[10]
    );
}

#[test]
fn gradcheck_needs_a_loss() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("no-loss.ron"),
        r#"Network(inputs: { "x": [4] }, nodes: { "y": (op: Dense(units: 2), input: "x") }, outputs: ["y"])"#,
    )
    .unwrap();
    let output = tapir_in(dir.path(), &["gradcheck", "no-loss.ron", "--all"]);
    assert_eq!(output.status.code(), Some(1));
    assert_eq!(
        stderr(&output),
        "error: no-loss.ron: the network has no loss to differentiate; add one, e.g. \
         `loss: SoftmaxCrossEntropy(logits: \"logits\")`\n"
    );
}

/// A batch for cnn-1 as PyTorch would save it: `image` in float32 with a bright square in
/// each sample, `labels` in int64.
fn write_batch(path: &Path) -> ArrayD<f32> {
    let image = ArrayD::from_shape_fn(IxDyn(&[3, 1, 56, 56]), |i| {
        let at = 5 + 15 * i[0];
        let inside = (at..at + 10).contains(&i[2]) && (at..at + 10).contains(&i[3]);
        if inside { 1.0f32 } else { 0.0 }
    });
    struct Raw(safetensors::Dtype, Vec<usize>, Vec<u8>);
    impl View for Raw {
        fn dtype(&self) -> safetensors::Dtype {
            self.0
        }
        fn shape(&self) -> &[usize] {
            &self.1
        }
        fn data(&self) -> std::borrow::Cow<'_, [u8]> {
            std::borrow::Cow::Borrowed(&self.2)
        }
        fn data_len(&self) -> usize {
            self.2.len()
        }
    }
    let tensors = [
        (
            "image",
            Raw(
                safetensors::Dtype::F32,
                image.shape().to_vec(),
                image.iter().flat_map(|x| x.to_le_bytes()).collect(),
            ),
        ),
        (
            "labels",
            Raw(
                safetensors::Dtype::I64,
                vec![3],
                [0i64, 1, 1].iter().flat_map(|x| x.to_le_bytes()).collect(),
            ),
        ),
    ];
    safetensors::serialize_to_file(tensors, None, path).unwrap();
    image
}

#[test]
fn grad_writes_the_loss_outputs_and_every_gradient() {
    let dir = tempfile::tempdir().unwrap();
    let path = |name: &str| -> PathBuf { dir.path().join(name) };
    let image = write_batch(&path("batch.safetensors"));
    let graph = load("graphs/cnn-1.ron");
    let network = Network::<f32>::new(Arc::clone(&graph)).unwrap();
    let params = network.init_params(11);
    params.save(path("params.safetensors"), Dtype::F32).unwrap();

    let output = tapir(&[
        "grad",
        "graphs/cnn-1.ron",
        "--params",
        path("params.safetensors").to_str().unwrap(),
        "--inputs",
        path("batch.safetensors").to_str().unwrap(),
        "--out",
        path("grads.safetensors").to_str().unwrap(),
    ]);
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    assert_eq!(stderr(&output), "");
    let text = stdout(&output).replace(&*dir.path().to_string_lossy(), "[dir]");
    let text: String = text
        .lines()
        .map(|line| match line.split_once(": loss ") {
            Some((before, _)) => format!("{before}: loss [value]\n"),
            None => format!("{line}\n"),
        })
        .collect();
    insta::assert_snapshot!(text);

    let grads = TensorFile::open(path("grads.safetensors")).unwrap();
    let shapes: Vec<(&str, &[usize])> = grads
        .names()
        .map(|name| (name, grads.shape(name).unwrap()))
        .collect();
    assert_eq!(
        shapes,
        [
            ("grad.conv.bias", &[16][..]),
            ("grad.conv.weight", &[16, 1, 5, 5][..]),
            ("grad.image", &[3, 1, 56, 56][..]),
            ("grad.logits.bias", &[2][..]),
            ("grad.logits.weight", &[2, 16][..]),
            ("logits", &[3, 2][..]),
            ("loss", &[][..]),
        ]
    );
    let loss = grads.tensor::<f32>("loss").unwrap();
    assert!(loss.iter().all(|l| l.is_finite() && *l > 0.0), "{loss}");

    // The binary computes exactly what the library does.
    let labels = ArrayD::from_shape_vec(IxDyn(&[3]), vec![0.0f32, 1.0, 1.0]).unwrap();
    let expected = network
        .loss_and_grads(&params, vec![image, labels], true)
        .unwrap();
    assert_eq!(
        loss.iter().next().unwrap().to_bits(),
        expected.loss.to_bits()
    );
    for (name, grad) in &expected.params.tensors {
        assert_eq!(
            &grads.tensor::<f32>(&format!("grad.{name}")).unwrap(),
            grad,
            "{name}"
        );
    }
    assert_eq!(
        Some(grads.tensor::<f32>("grad.image").unwrap()),
        expected.inputs[0]
    );
}

#[test]
fn grad_without_params_draws_them_and_writes_f64_on_request() {
    let dir = tempfile::tempdir().unwrap();
    let batch = dir.path().join("batch.safetensors");
    write_batch(&batch);
    let out = dir.path().join("grads.safetensors");
    let output = tapir(&[
        "grad",
        "graphs/cnn-1.ron",
        "--seed",
        "5",
        "--inputs",
        batch.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
        "--f64",
    ]);
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    assert_eq!(
        stderr(&output),
        "note: no --params given: parameters drawn from seed 5 (weights He, biases Zeros, \
         as graphs/cnn-1.ron says)\n"
    );
    let bytes = std::fs::read(&out).unwrap();
    let file = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    for (name, tensor) in file.iter() {
        assert_eq!(tensor.dtype(), safetensors::Dtype::F64, "{name}");
    }

    // The same parameters, given as a file, give the same numbers.
    let graph = load("graphs/cnn-1.ron");
    let params: Params<f64> = Network::<f64>::new(Arc::clone(&graph))
        .unwrap()
        .init_params(5);
    let params_path = dir.path().join("params.safetensors");
    params.save(&params_path, Dtype::F64).unwrap();
    let again = dir.path().join("again.safetensors");
    let output = tapir(&[
        "grad",
        "graphs/cnn-1.ron",
        "--params",
        params_path.to_str().unwrap(),
        "--inputs",
        batch.to_str().unwrap(),
        "--out",
        again.to_str().unwrap(),
        "--f64",
    ]);
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    assert_eq!(std::fs::read(&again).unwrap(), bytes);
}

#[test]
fn grad_reports_inputs_that_do_not_fit() {
    let dir = tempfile::tempdir().unwrap();
    let params = dir.path().join("params.safetensors");
    let graph = load("graphs/cnn-1.ron");
    Network::<f32>::new(graph)
        .unwrap()
        .init_params(0)
        .save(&params, Dtype::F32)
        .unwrap();
    // The parameters are no batch: every input is missing, every tensor is extra.
    let output = tapir_in(
        dir.path(),
        &[
            "grad",
            &root().join("graphs/cnn-1.ron").to_string_lossy(),
            "--inputs",
            "params.safetensors",
            "--out",
            "grads.safetensors",
        ],
    );
    assert_eq!(output.status.code(), Some(1));
    let error = stderr(&output);
    let error = error.replace(&*root().to_string_lossy(), "[root]");
    insta::assert_snapshot!(error);
}

#[test]
fn every_command_has_an_example_in_its_help() {
    for (command, example) in [
        ("check", "tapir check graphs/cnn-1.ron"),
        ("dot", "tapir dot graphs/cnn-1.ron"),
        ("gradcheck", "tapir gradcheck graphs/cnn-1.ron"),
        ("grad", "tapir grad graphs/cnn-1.ron --params"),
        ("ops", "tapir ops"),
        ("train", "tapir train graphs/cnn-1.ron"),
        ("demo", "tapir demo --out demo-out --seeds 0,1,2"),
        ("profile", "tapir profile graphs/cnn-2.ron --batch 64"),
    ] {
        let output = tapir(&[command, "--help"]);
        assert_eq!(output.status.code(), Some(0), "{command}");
        let help = stdout(&output);
        assert!(
            help.contains("Example") && help.contains(example),
            "{command}: {help}"
        );
    }
    let help = stdout(&tapir(&["--help"]));
    assert!(help.contains("Examples:\n  tapir demo\n"), "{help}");
    assert!(
        help.contains("\n  tapir profile graphs/cnn-2.ron --batch 64\n"),
        "{help}"
    );
}

#[test]
fn usage_errors_exit_1() {
    let output = tapir(&["gradcheck", "graphs/cnn-1.ron", "--elements", "0"]);
    assert_eq!(output.status.code(), Some(1));
    assert!(stderr(&output).starts_with("error: invalid value '0' for '--elements <N>'"));
    let output = tapir(&["frobnicate"]);
    assert_eq!(output.status.code(), Some(1));
    let output = tapir(&[]);
    assert_eq!(output.status.code(), Some(1));
    assert!(stderr(&output).contains("Usage: tapir <COMMAND>"));
}

#[test]
fn ops_lists_the_registered_ops() {
    let output = tapir(&["ops"]);
    assert_eq!(output.status.code(), Some(0));
    let text = stdout(&output);
    assert!(text.starts_with(&format!(
        "tapir {}: registered ops:\n",
        env!("CARGO_PKG_VERSION")
    )));
    assert!(
        text.lines()
            .any(|l| l.starts_with("  conv2d ") && l.ends_with(" gradient-check cases"))
    );
}

#[test]
fn train_reports_bad_arguments_before_training() {
    let output = tapir(&[
        "train",
        "graphs/fcn.ron",
        "--classes",
        "dog,kat",
        "--out",
        "unused",
    ]);
    assert_eq!(output.status.code(), Some(1));
    assert_eq!(
        stderr(&output).trim_end(),
        "error: class list \"dog,kat\": unknown class \"kat\" (did you mean \"cat\"?); the classes \
         are bear, bird, cat, cow, dog, elephant, giraffe, horse, sheep, zebra"
    );
    let output = tapir(&[
        "train",
        "graphs/fcn.ron",
        "--layout",
        "grid",
        "--out",
        "unused",
    ]);
    assert_eq!(output.status.code(), Some(1));
    assert!(stderr(&output).contains("unknown layout \"grid\"; the layouts are: quadrants"));
    let output = tapir(&["train", "graphs/fcn.ron", "--lr=-1", "--out", "unused"]);
    assert_eq!(output.status.code(), Some(1));
    assert!(
        stderr(&output).contains("the learning rate must be positive"),
        "{}",
        stderr(&output)
    );
}

/// `text` with every number a `#`, runs of spaces as one and rules as `---`: the structure
/// of a table whose numbers are measurements.
fn numbers_redacted(text: &str) -> String {
    let redact = |token: &str| -> String {
        let chars: Vec<char> = token.chars().collect();
        if !chars.first().is_some_and(char::is_ascii_digit) {
            return token.to_string();
        }
        // A number's digits, its decimal point and its thousands commas (a comma followed by
        // a digit); a comma after it ends the number.
        let mut end = 0;
        while end < chars.len()
            && (chars[end].is_ascii_digit()
                || chars[end] == '.'
                || (chars[end] == ',' && chars.get(end + 1).is_some_and(char::is_ascii_digit)))
        {
            end += 1;
        }
        format!("#{}", chars[end..].iter().collect::<String>())
    };
    text.lines()
        .map(|line| {
            if !line.is_empty() && line.chars().all(|c| c == '-') {
                return "---".to_string();
            }
            line.split_whitespace()
                .map(redact)
                .collect::<Vec<_>>()
                .join(" ")
        })
        .collect::<Vec<_>>()
        .join("\n")
}

#[test]
fn profile_prints_a_table_of_every_node() {
    let output = tapir(&[
        "profile",
        "graphs/cnn-1.ron",
        "--batch",
        "2",
        "--threads",
        "1",
        "--steps",
        "3",
    ]);
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    assert_eq!(stderr(&output), "");
    let text = stdout(&output);
    assert!(text.starts_with(
        "graphs/cnn-1.ron: a training step (forward, backward, SGD update) in f32, batch 2, 1 thread\n"
    ));
    insta::assert_snapshot!(numbers_redacted(&text));
}

#[test]
fn profile_prints_json_with_images_per_s_at_the_top() {
    let output = tapir(&[
        "profile",
        "graphs/cnn-1.ron",
        "--batch",
        "2",
        "--threads",
        "2",
        "--json",
    ]);
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    let json: serde_json::Value = serde_json::from_str(&stdout(&output)).unwrap();
    assert!(json["images_per_s"].as_f64().unwrap() > 0.0, "{json}");
    assert_eq!(json["threads"], 2);
    assert_eq!(json["side_by_side"], true);
    let names: Vec<&str> = json["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|node| node["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["conv", "relu", "pool", "logits", "loss"]);
}

#[test]
fn profile_one_at_a_time_says_so() {
    let output = tapir(&[
        "profile",
        "graphs/inception.ron",
        "--batch",
        "2",
        "--threads",
        "2",
        "--steps",
        "1",
        "--one-at-a-time",
        "--json",
    ]);
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    let json: serde_json::Value = serde_json::from_str(&stdout(&output)).unwrap();
    assert_eq!(json["side_by_side"], false, "{json}");
    assert_eq!(json["threads"], 2);
}

#[test]
fn profile_needs_a_loss() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("no-loss.ron"),
        r#"Network(inputs: { "x": [4] }, nodes: { "y": (op: Dense(units: 2), input: "x") }, outputs: ["y"])"#,
    )
    .unwrap();
    let output = tapir_in(dir.path(), &["profile", "no-loss.ron"]);
    assert_eq!(output.status.code(), Some(1));
    assert_eq!(
        stderr(&output),
        "error: no-loss.ron: the network has no loss to differentiate; add one, e.g. \
         `loss: SoftmaxCrossEntropy(logits: \"logits\")`\n"
    );
}
