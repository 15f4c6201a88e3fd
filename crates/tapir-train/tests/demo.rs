//! The demo end to end, shortened to one epoch: every file it promises, `report.json` in
//! its documented shape, and the exact facts that hold whatever the training.

use serde_json::Value;
use tapir_train::demo::{DemoConfig, FILES, run};

#[test]
fn one_epoch_of_the_demo_writes_the_report_and_the_pictures() {
    let out = tempfile::tempdir().unwrap();
    let config = DemoConfig {
        out: out.path().to_path_buf(),
        epochs: 1,
        progress: false,
        ..DemoConfig::default()
    };
    let mut lines = Vec::new();
    let (report, table) = run(&config, &mut |line| lines.push(line.to_string())).unwrap();
    for file in FILES {
        let bytes = std::fs::read(out.path().join(file)).unwrap_or_else(|e| panic!("{file}: {e}"));
        assert!(bytes.len() > 100, "{file} is nearly empty");
    }
    // The exact facts: full padding makes cnn-1's logits bit-identical for every dog at TL and
    // BR after any amount of training; all-zero weights give 1/2 and no conv gradient.
    assert!(report.invariance.identical_logits);
    assert_eq!(report.invariance.max_abs_diff, 0.0);
    assert_eq!(report.zero_init.softmax, [0.5, 0.5]);
    assert_eq!(report.zero_init.conv_grad_max_abs, 0.0);
    assert!(table.contains("cnn-1-valid") && table.contains("bit-identical"));

    let json: Value =
        serde_json::from_slice(&std::fs::read(out.path().join("report.json")).unwrap()).unwrap();
    for model in [
        "fcn",
        "fcn-aug",
        "cnn-1-valid",
        "cnn-1-same",
        "cnn-1",
        "cnn-2",
    ] {
        let m = &json["models"][model];
        for set in ["train", "same", "swapped", "anywhere"] {
            assert!(
                m[set]["loss"].is_f64() && m[set]["accuracy"].is_f64(),
                "{model} {set}"
            );
        }
        assert!(
            m["dog_called_cat"].is_f64() && m["seconds_per_epoch"].is_f64(),
            "{model}"
        );
    }
    assert_eq!(json["invariance"]["identical_logits"], Value::Bool(true));
    assert!(json["invariance"]["max_abs_diff"].is_f64());
    for model in ["cnn-1-valid", "cnn-1-same", "cnn-1", "cnn-2"] {
        let m = &json["invariance"]["by_model"][model];
        assert!(
            m["identical_share"].is_f64() && m["max_abs_diff"].is_f64(),
            "{model}"
        );
    }
    assert_eq!(json["zero_init"]["softmax"], serde_json::json!([0.5, 0.5]));
    assert_eq!(
        json["zero_init"]["conv_grad_max_abs"],
        serde_json::json!(0.0)
    );
}

#[test]
fn a_missing_data_folder_is_an_error_naming_it() {
    let config = DemoConfig {
        data_dir: "/nonexistent/animal-mnist".into(),
        progress: false,
        out: std::env::temp_dir().join("tapir-demo-missing-data"),
        ..DemoConfig::default()
    };
    let err = run(&config, &mut |_| {}).unwrap_err().to_string();
    assert!(err.contains("/nonexistent/animal-mnist"), "{err}");
}
