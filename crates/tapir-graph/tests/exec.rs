//! Running networks: results independent of the thread count, independent nodes side by
//! side, and the exact facts of the translation-invariance story.

use std::sync::{Arc, Mutex};

use ndarray::ArrayD;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use tapir_core::{Schedule, Tape, Var};
use tapir_graph::{Fusion, Graph, Network, NodeTiming, Params};

fn graph(name: &str) -> Arc<Graph> {
    let path = format!("{}/../../graphs/{name}", env!("CARGO_MANIFEST_DIR"));
    Arc::new(
        Graph::load(&path, &tapir_ops::builtin_registry())
            .unwrap_or_else(|e| panic!("{}", e.render())),
    )
}

fn images(batch: usize, shape: &[usize], seed: u64) -> ArrayD<f32> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let shape: Vec<usize> = std::iter::once(batch)
        .chain(shape.iter().copied())
        .collect();
    ArrayD::from_shape_simple_fn(shape, || rng.random::<f32>())
}

fn labels(batch: usize) -> ArrayD<f32> {
    ArrayD::from_shape_fn(vec![batch], |i| (i[0] % 2) as f32)
}

fn pool(threads: usize) -> rayon::ThreadPool {
    rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .build()
        .unwrap()
}

/// The loss and every parameter gradient, as bits.
fn step_bits(network: &Network<f32>, params: &Params<f32>, batch: usize) -> Vec<u32> {
    let shape = network.graph().inputs[0].shape.clone();
    let result = network
        .loss_and_grads(params, vec![images(batch, &shape, 7), labels(batch)], true)
        .unwrap();
    let mut bits = vec![result.loss.to_bits()];
    for (_, grad) in &result.params.tensors {
        bits.extend(grad.iter().map(|g| g.to_bits()));
    }
    for grad in result.inputs.iter().flatten() {
        bits.extend(grad.iter().map(|g| g.to_bits()));
    }
    bits
}

#[test]
fn forward_and_backward_are_bit_identical_whatever_the_thread_count_or_schedule() {
    for name in ["cnn-2.ron", "inception.ron", "fcn.ron"] {
        let network = Network::<f32>::new(graph(name)).unwrap();
        let params = network.init_params(3);
        let one = pool(1).install(|| step_bits(&network, &params, 9));
        let two = pool(2).install(|| step_bits(&network, &params, 9));
        assert_eq!(one, two, "{name}");
        let serial = network.with_schedule(Schedule::OneAtATime);
        let two_serial = pool(2).install(|| step_bits(&serial, &params, 9));
        assert_eq!(one, two_serial, "{name}, one at a time");
    }
}

/// The nodes of `inception.ron`'s four branches.
fn inception_branches(graph: &Graph) -> Vec<usize> {
    ["branch1", "branch3", "branch5", "branch_pool"]
        .iter()
        .map(|name| graph.nodes.iter().position(|n| &n.name == name).unwrap())
        .collect()
}

/// The forward's spans of `inception.ron`'s four branches, on two threads.
fn branch_spans(schedule: Schedule) -> Vec<NodeTiming> {
    let network = Network::<f32>::new(graph("inception.ron")).unwrap();
    let params = network.init_params(0);
    let branches = inception_branches(network.graph());
    let trace = Mutex::new(Vec::<NodeTiming>::new());
    pool(2).install(|| {
        let mut tape = Tape::inference().with_schedule(schedule);
        network
            .forward(
                &mut tape,
                &params,
                vec![images(32, &[1, 28, 28], 1)],
                false,
                Some(&trace),
            )
            .unwrap();
    });
    let mut trace = trace.into_inner().unwrap();
    trace.retain(|t| branches.contains(&t.node));
    assert_eq!(trace.len(), 4, "each branch ran once");
    trace
}

fn overlap(spans: &[NodeTiming]) -> bool {
    spans.iter().any(|a| {
        spans
            .iter()
            .any(|b| a.node != b.node && a.start < b.end && b.start < a.end)
    })
}

#[test]
fn independent_branches_run_side_by_side() {
    let graph = graph("inception.ron");
    let branches = inception_branches(&graph);
    assert!(
        graph
            .waves
            .iter()
            .any(|wave| branches.iter().all(|b| wave.contains(b))),
        "one wave holds the branches"
    );
    // Overlap in time is what parallel execution means; on a busy machine one run may happen
    // not to show it, so a few runs are allowed.
    assert!(
        (0..10).any(|_| overlap(&branch_spans(Schedule::SideBySide))),
        "two inception branches never overlapped in time"
    );
}

#[test]
fn one_at_a_time_runs_the_branches_one_after_another() {
    for _ in 0..3 {
        let mut spans = branch_spans(Schedule::OneAtATime);
        assert!(!overlap(&spans), "branches overlapped: {spans:?}");
        spans.sort_by(|a, b| a.start.total_cmp(&b.start));
        let order: Vec<usize> = spans.iter().map(|t| t.node).collect();
        let mut in_node_order = order.clone();
        in_node_order.sort_unstable();
        assert_eq!(order, in_node_order, "the branches run in node order");
    }
}

#[test]
fn inference_leaves_out_the_labels_and_the_loss() {
    let network = Network::<f32>::new(graph("cnn-1.ron")).unwrap();
    let params = network.init_params(0);
    let mut tape = Tape::inference();
    let forward = network
        .forward(
            &mut tape,
            &params,
            vec![images(3, &[1, 56, 56], 2)],
            false,
            None,
        )
        .unwrap();
    let logits = forward.value(network.graph().outputs[0]).unwrap();
    assert_eq!(logits.shape(), &[3, 2]);
    assert!(forward.nodes[network.graph().loss.unwrap()].is_none());
    assert!(tape.is_empty());
}

#[test]
fn wrong_inputs_and_params_are_errors() {
    let network = Network::<f32>::new(graph("cnn-1.ron")).unwrap();
    let mut params = network.init_params(0);
    let mut tape = Tape::new();
    let err = network
        .forward(
            &mut tape,
            &params,
            vec![images(2, &[1, 28, 28], 0)],
            false,
            None,
        )
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "input: input \"image\" has shape [2, 1, 28, 28], the network expects [2, 1, 56, 56] (batch 2, then [1, 56, 56])"
    );
    params.tensors.retain(|(name, _)| name != "conv.bias");
    let err = network
        .forward(
            &mut tape,
            &params,
            vec![images(2, &[1, 56, 56], 0)],
            false,
            None,
        )
        .unwrap_err();
    assert_eq!(err.to_string(), "input: parameter \"conv.bias\" is missing");
}

#[test]
fn values_on_a_tape_are_checked_like_arrays() {
    let network = Network::<f64>::new(graph("cnn-1.ron")).unwrap();
    let params = network.init_params(0);
    let mut tape = Tape::new();
    let param_vars: Vec<Var<f64>> = params
        .tensors
        .iter()
        .map(|(_, value)| tape.leaf(value.clone(), true))
        .collect();
    let image = |batch: usize, side: usize| {
        Var::constant(images(batch, &[1, side, side], 0).mapv(f64::from))
    };
    let labels = |batch: usize| Var::constant(labels(batch).mapv(f64::from));
    let cases = [
        (
            vec![],
            "input: the network takes the inputs [\"image\", \"labels\"], got 0 arrays",
        ),
        (
            vec![image(2, 56), labels(2), labels(2)],
            "input: the network takes the inputs [\"image\", \"labels\"], got 3 arrays",
        ),
        (
            vec![image(2, 28)],
            "input: input \"image\" has shape [2, 1, 28, 28], the network expects [2, 1, 56, 56] (batch 2, then [1, 56, 56])",
        ),
        (
            vec![image(2, 56), labels(3)],
            "input: input \"labels\" has shape [3], the network expects [2] (batch 2, then [])",
        ),
    ];
    for (inputs, expected) in cases {
        let err = network
            .forward_vars(&mut tape, param_vars.clone(), inputs, None)
            .unwrap_err();
        assert_eq!(err.to_string(), expected);
    }
    let err = network
        .forward_vars(
            &mut tape,
            param_vars[1..].to_vec(),
            vec![image(2, 56)],
            None,
        )
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "input: the network takes 4 parameters, got 3"
    );
    let forward = network
        .forward_vars(&mut tape, param_vars, vec![image(2, 56)], None)
        .unwrap();
    assert_eq!(
        forward.value(network.graph().outputs[0]).unwrap().shape(),
        &[2, 2]
    );
}

#[test]
fn all_zero_weights_give_one_half_and_never_move_the_filters() {
    // With every weight and bias zero the logits are 0, the softmax gives exactly 1/2 to
    // each class, and no gradient reaches the conv filters: the dense weights are zero, so
    // nothing flows back through them. Training from zeros never moves the filters.
    let network = Network::<f32>::new(graph("cnn-1.ron")).unwrap();
    let mut params = network.init_params(0);
    for (_, tensor) in &mut params.tensors {
        tensor.fill(0.0);
    }
    let result = network
        .loss_and_grads(&params, vec![images(4, &[1, 56, 56], 5), labels(4)], false)
        .unwrap();
    assert_eq!(result.loss, std::f32::consts::LN_2);
    let logits = result
        .forward
        .value(network.graph().outputs[0])
        .unwrap()
        .value()
        .clone();
    let softmax = tapir_ops::Softmax::default();
    let probabilities = tapir_core::Op::<f32>::forward(&softmax, &[logits.view()]).unwrap();
    assert!(probabilities.iter().all(|&p| p == 0.5));
    for name in ["conv.weight", "conv.bias"] {
        assert!(
            result.params.get(name).unwrap().iter().all(|&g| g == 0.0),
            "{name}"
        );
    }
}

#[test]
fn forward_on_tape_values_refuses_too_few_inputs() {
    let network = Network::<f32>::new(graph("cnn-1.ron")).unwrap();
    let params = network.init_params(0);
    let mut tape = Tape::new();
    let params: Vec<_> = params
        .tensors
        .iter()
        .map(|(_, t)| tape.leaf(t.clone(), true))
        .collect();
    let err = network
        .forward_vars(&mut tape, params, vec![], None)
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "input: the network takes the inputs [\"image\", \"labels\"], got 0 arrays"
    );
}

/// A graph from RON text.
fn graph_from(text: &str) -> Arc<Graph> {
    Arc::new(
        Graph::parse("test.ron", text, &tapir_ops::builtin_registry())
            .unwrap_or_else(|e| panic!("{}", e.render())),
    )
}

#[test]
fn a_relu_read_only_by_a_max_pool_runs_inside_it_with_the_same_bits() {
    let graph = graph("cnn-2.ron");
    let fused = Network::<f32>::new(Arc::clone(&graph)).unwrap();
    let unfused = Network::<f32>::unfused(Arc::clone(&graph)).unwrap();
    let index = |name: &str| graph.nodes.iter().position(|n| n.name == name).unwrap();
    let (relu1, pool1) = (index("relu1"), index("pool1"));
    assert_eq!(fused.fusion()[relu1], Fusion::Into(pool1));
    assert_eq!(fused.fusion()[pool1], Fusion::Absorbs(relu1));
    let (relu2, pool2) = (index("relu2"), index("pool2"));
    assert_eq!(fused.fusion()[relu2], Fusion::Into(pool2));
    assert_eq!(fused.fusion()[pool2], Fusion::Absorbs(relu2));
    // The pooling, having absorbed the ReLU, absorbs conv1 too (5x5 filters of one
    // channel: cheap to make again in backward), but not conv2 (3x3 of 16 channels).
    let (conv1, conv2) = (index("conv1"), index("conv2"));
    assert_eq!(fused.fusion()[conv1], Fusion::Into(pool1));
    assert_eq!(fused.fusion()[conv2], Fusion::Alone);
    assert!(unfused.fusion().iter().all(|f| *f == Fusion::Alone));

    let params = fused.init_params(5);
    assert_eq!(
        step_bits(&fused, &params, 6),
        step_bits(&unfused, &params, 6)
    );
    // The fused node's own value is not made; every other node's is, the same bits.
    let run = |network: &Network<f32>| {
        let inputs = vec![images(3, &[1, 56, 56], 2), labels(3)];
        network
            .forward(&mut Tape::new(), &params, inputs, false, None)
            .unwrap()
    };
    let (with, without) = (run(&fused), run(&unfused));
    for n in 0..graph.nodes.len() {
        let value = |f: &tapir_graph::Forward<f32>| {
            f.nodes[n].as_ref().map(|v| v.value().mapv(f32::to_bits))
        };
        if [conv1, relu1, relu2].contains(&n) {
            assert!(with.nodes[n].is_none());
            assert!(without.nodes[n].is_some());
        } else {
            assert_eq!(
                value(&with),
                value(&without),
                "node {}",
                graph.nodes[n].name
            );
        }
    }
}

#[test]
fn a_conv_relu_and_global_max_pool_run_as_one_op_with_the_same_bits() {
    // cnn-1: padding 4, 16 filters of 5x5 over one channel, the maps pooled to one value each.
    let graph = graph("cnn-1.ron");
    let fused = Network::<f32>::new(Arc::clone(&graph)).unwrap();
    let unfused = Network::<f32>::unfused(Arc::clone(&graph)).unwrap();
    let index = |name: &str| graph.nodes.iter().position(|n| n.name == name).unwrap();
    let pool = index("pool");
    assert_eq!(fused.fusion()[index("conv")], Fusion::Into(pool));
    assert_eq!(fused.fusion()[index("relu")], Fusion::Into(pool));
    assert_eq!(fused.fusion()[pool], Fusion::Absorbs(index("relu")));
    for seed in [1, 2] {
        let params = fused.init_params(seed);
        // 9 samples: two full chunks of the convolution's batch split and a partial one.
        assert_eq!(
            step_bits(&fused, &params, 9),
            step_bits(&unfused, &params, 9)
        );
    }
}

#[test]
fn a_relu_read_twice_or_as_an_output_is_not_fused() {
    let read_twice = graph_from(
        r#"Network(
            inputs: { "x": [1, 6, 6] },
            nodes: {
                "relu": (op: Relu, input: "x"),
                "pool": (op: MaxPool2d(kernel: 2), input: "relu"),
                "other": (op: MaxPool2d(kernel: 2), input: "relu"),
                "sum": (op: Add, inputs: ["pool", "other"]),
            },
            outputs: ["sum"],
        )"#,
    );
    let network = Network::<f32>::new(read_twice).unwrap();
    assert!(network.fusion().iter().all(|f| *f == Fusion::Alone));
    let an_output = graph_from(
        r#"Network(
            inputs: { "x": [1, 6, 6] },
            nodes: {
                "relu": (op: Relu, input: "x"),
                "pool": (op: MaxPool2d(kernel: 2), input: "relu"),
            },
            outputs: ["pool", "relu"],
        )"#,
    );
    let network = Network::<f32>::new(an_output).unwrap();
    assert!(network.fusion().iter().all(|f| *f == Fusion::Alone));
}

#[test]
fn a_nan_weight_reaches_the_loss() {
    // relu keeps NaN (as PyTorch): a NaN filter must make the loss NaN, where training stops,
    // not vanish into relu's zeros behind a finite loss. Fused and unfused alike.
    let graph = graph("cnn-1.ron");
    for network in [
        Network::<f32>::new(Arc::clone(&graph)).unwrap(),
        Network::<f32>::unfused(Arc::clone(&graph)).unwrap(),
    ] {
        let mut params = network.init_params(1);
        params.get_mut("conv.weight").unwrap()[[0, 0, 0, 0]] = f32::NAN;
        let shape = graph.inputs[0].shape.clone();
        let result = network
            .loss_and_grads(&params, vec![images(4, &shape, 3), labels(4)], false)
            .unwrap();
        assert!(result.loss.is_nan(), "loss {}", result.loss);
    }
}
