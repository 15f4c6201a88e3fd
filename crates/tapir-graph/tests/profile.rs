//! `Graph::profile`: a training step timed node by node, and its JSON form.

use std::sync::Arc;
use std::time::Duration;

use tapir_core::Schedule;
use tapir_graph::{Graph, ProfileConfig};

fn graph(name: &str) -> Arc<Graph> {
    let path = format!("{}/../../graphs/{name}", env!("CARGO_MANIFEST_DIR"));
    Arc::new(
        Graph::load(&path, &tapir_ops::builtin_registry())
            .unwrap_or_else(|e| panic!("{}", e.render())),
    )
}

/// A short run: one warm-up step, three timed ones.
fn quick(batch: usize, threads: Option<usize>) -> ProfileConfig {
    ProfileConfig {
        batch,
        threads,
        warmup_steps: 1,
        warmup_time: Duration::ZERO,
        steps: 3,
        time: Duration::ZERO,
        ..ProfileConfig::default()
    }
}

#[test]
fn every_node_is_timed_forward_and_backward() {
    let graph = graph("cnn-1.ron");
    let profile = graph.profile(&quick(2, Some(1))).unwrap();
    assert_eq!((profile.batch, profile.threads), (2, 1));
    assert_eq!((profile.warmup_steps, profile.steps), (1, 3));
    let names: Vec<&str> = profile.nodes.iter().map(|n| n.name.as_str()).collect();
    assert_eq!(names, ["conv", "relu", "pool", "logits", "loss"]);
    // The conv and the relu run inside the global max pool (fused): no times of their own.
    for fused in &profile.nodes[..2] {
        assert_eq!(fused.fused_into.as_deref(), Some("pool"));
        assert_eq!(
            (fused.forward_s, fused.backward_s, fused.share),
            (0.0, 0.0, 0.0)
        );
    }
    for (node, profiled) in graph.nodes.iter().zip(&profile.nodes) {
        assert_eq!(profiled.flops, 2 * node.flops, "{}", node.name);
        if profiled.fused_into.is_some() {
            continue;
        }
        // Every node lies on the loss's path, so every one runs backward too.
        assert!(profiled.forward_s > 0.0, "{}", node.name);
        assert!(profiled.backward_s > 0.0, "{}", node.name);
        assert!(
            profiled.share > 0.0 && profiled.share < 1.0,
            "{}",
            node.name
        );
    }
    assert_eq!(profile.nodes[0].op, "Conv2d");
    // The pool's rates count the work of the nodes that run inside it.
    let pool = &profile.nodes[2];
    let chain: u64 = profile.nodes[..3].iter().map(|n| n.flops).sum();
    let rate = chain as f64 / pool.forward_s / 1e9;
    assert!((pool.forward_gflop_per_s.unwrap() / rate - 1.0).abs() < 1e-9);
    assert_eq!(profile.flops_per_step, 3 * 2 * graph.flops());
    assert!(profile.images_per_s > 0.0);
    assert!(profile.step_min_s <= profile.step_s);
    assert!(profile.forward_s + profile.backward_s <= profile.step_s * 1.5);
    // [1,56,56] image, 2 labels, then conv and relu [16,60,60], pool [16], logits [2],
    // the loss []: per sample 3136 + 1 + 2 * 57600 + 16 + 2 + 1 = 118356 floats.
    assert_eq!(profile.activation_bytes, 2 * 118_356 * 4);
    assert_eq!(profile.parameter_bytes, 450 * 4);
    if cfg!(target_os = "linux") {
        assert!(profile.peak_memory_bytes.unwrap() > profile.activation_bytes);
    }
}

#[test]
fn the_json_has_images_per_s_at_the_top_and_one_entry_per_node() {
    let graph = graph("cnn-1.ron");
    let profile = graph.profile(&quick(2, None)).unwrap();
    let json = serde_json::to_value(&profile).unwrap();
    assert!(json["images_per_s"].as_f64().unwrap() > 0.0, "{json}");
    let nodes = json["nodes"].as_array().unwrap();
    assert_eq!(nodes.len(), graph.nodes.len());
    assert_eq!(nodes[0]["name"], "conv");
    assert_eq!(nodes[0]["fused_into"], "pool");
    assert!(nodes[2]["backward_s"].as_f64().unwrap() > 0.0);
}

#[test]
fn two_threads_run_in_their_own_pool() {
    let profile = graph("cnn-2.ron").profile(&quick(4, Some(2))).unwrap();
    assert_eq!(profile.threads, 2);
    assert_eq!(profile.nodes.len(), 8);
}

#[test]
fn one_at_a_time_is_said_in_the_table_and_the_json() {
    let graph = graph("inception.ron");
    let side_by_side = graph.profile(&quick(2, Some(2))).unwrap();
    assert!(side_by_side.side_by_side);
    assert!(!side_by_side.table().contains("one at a time"));
    let config = ProfileConfig {
        schedule: Schedule::OneAtATime,
        ..quick(2, Some(2))
    };
    let serial = graph.profile(&config).unwrap();
    assert!(!serial.side_by_side);
    let table = serial.table();
    let header = table.lines().next().unwrap();
    assert!(
        header.ends_with("batch 2, 2 threads, the nodes of a wave one at a time"),
        "{header}"
    );
    let json: serde_json::Value = serde_json::to_value(&serial).unwrap();
    assert_eq!(json["side_by_side"], false);
}

#[test]
fn a_network_without_a_loss_or_an_empty_batch_is_refused() {
    let text = r#"Network(
    inputs: { "x": [4] },
    nodes: { "y": (op: Dense(units: 2), input: "x") },
    outputs: ["y"],
)"#;
    let registry = tapir_ops::builtin_registry();
    let no_loss = Arc::new(Graph::parse("dense.ron", text, &registry).unwrap());
    let err = no_loss.profile(&quick(2, None)).unwrap_err().to_string();
    assert_eq!(
        err,
        "tape: dense.ron: the network has no loss, so no training step to profile"
    );
    let err = graph("fcn.ron")
        .profile(&quick(0, None))
        .unwrap_err()
        .to_string();
    assert_eq!(
        err,
        "tape: profile: the batch must hold at least one sample"
    );
}
