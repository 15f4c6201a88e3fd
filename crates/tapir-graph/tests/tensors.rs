//! Tensor files: parameters and inputs saved and loaded as safetensors, PyTorch's names and
//! layouts read directly, and every way a file can be wrong reported with its path.

use std::path::Path;
use std::sync::Arc;

use ndarray::{ArrayD, IxDyn};
use safetensors::View;
use tapir_core::{Float, Tape};
use tapir_graph::{Dtype, Graph, Network, Params, TensorError, TensorFile, save_tensors};

fn cnn1() -> Arc<Graph> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../graphs/cnn-1.ron");
    match Graph::load(&path, &tapir_ops::builtin_registry()) {
        Ok(graph) => Arc::new(graph),
        Err(e) => panic!("{}", e.render()),
    }
}

/// Two images of cnn-1's shape with a bright square each, at different places.
fn images<F: Float>() -> ArrayD<F> {
    ArrayD::from_shape_fn(IxDyn(&[2, 1, 56, 56]), |i| {
        let (sample, y, x) = (i[0], i[2], i[3]);
        let at = 10 + 25 * sample;
        F::from_f64(if (at..at + 8).contains(&y) && (at..at + 8).contains(&x) {
            0.9
        } else {
            0.01 * ((y * 56 + x) % 7) as f64
        })
    })
}

/// cnn-1's logits for [`images`] under `params`.
fn logits<F: Float>(network: &Network<F>, params: &Params<F>) -> ArrayD<F> {
    let mut tape = Tape::inference();
    let forward = network
        .forward(&mut tape, params, vec![images()], false, None)
        .unwrap();
    let output = network.graph().outputs[0];
    forward.value(output).unwrap().value().clone()
}

fn bits(values: &ArrayD<f32>) -> Vec<u32> {
    values.iter().map(|x| x.to_bits()).collect()
}

/// A file written with the safetensors crate itself, as PyTorch's `save_file` writes it.
fn raw_file(tensors: Vec<(&str, safetensors::Dtype, Vec<usize>, Vec<u8>)>) -> Vec<u8> {
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
    let views: Vec<(String, Raw)> = tensors
        .into_iter()
        .map(|(name, dtype, shape, data)| (name.to_string(), Raw(dtype, shape, data)))
        .collect();
    safetensors::serialize(views, None).unwrap()
}

fn f32_bytes(values: impl IntoIterator<Item = f32>) -> Vec<u8> {
    values.into_iter().flat_map(f32::to_le_bytes).collect()
}

#[test]
fn saved_parameters_load_back_and_give_bit_identical_outputs() {
    let graph = cnn1();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("cnn-1.safetensors");

    let network = Network::<f32>::new(Arc::clone(&graph)).unwrap();
    let params = network.init_params(7);
    params.save(&path, Dtype::F32).unwrap();
    let loaded = Params::<f32>::load(&path, &graph).unwrap();
    assert_eq!(loaded, params);
    assert_eq!(
        bits(&logits(&network, &loaded)),
        bits(&logits(&network, &params))
    );

    // f64 parameters survive an F64 file exactly, and an F32 file as their f32 rounding.
    let network64 = Network::<f64>::new(Arc::clone(&graph)).unwrap();
    let params64 = network64.init_params(7);
    params64.save(&path, Dtype::F64).unwrap();
    assert_eq!(Params::<f64>::load(&path, &graph).unwrap(), params64);
    assert_eq!(
        Params::<f32>::load(&path, &graph).unwrap(),
        params64.cast::<f32>()
    );
    params64.save(&path, Dtype::F32).unwrap();
    assert_eq!(
        Params::<f64>::load(&path, &graph).unwrap(),
        params64.cast::<f32>().cast::<f64>()
    );
}

#[test]
fn pytorch_names_and_layouts_load_directly() {
    // What `safetensors.torch.save_file(model.state_dict(), ...)` writes for cnn-1's twin in
    // PyTorch: Conv2d(1, 16, 5, padding=4) as `conv`, Linear(16, 2) as `logits`, in the
    // alphabetical order the writer uses.
    let graph = cnn1();
    let ramp = |n: usize| (0..n).map(move |k| k as f32 / n as f32 - 0.5);
    let bytes = raw_file(vec![
        (
            "conv.bias",
            safetensors::Dtype::F32,
            vec![16],
            f32_bytes(ramp(16)),
        ),
        (
            "conv.weight",
            safetensors::Dtype::F32,
            vec![16, 1, 5, 5],
            f32_bytes(ramp(400)),
        ),
        (
            "logits.bias",
            safetensors::Dtype::F32,
            vec![2],
            f32_bytes([0.25, -0.25]),
        ),
        (
            "logits.weight",
            safetensors::Dtype::F32,
            vec![2, 16],
            f32_bytes(ramp(32)),
        ),
    ]);
    let params = TensorFile::parse("model.safetensors", &bytes)
        .unwrap()
        .params::<f32>(&graph)
        .unwrap();
    let names: Vec<&str> = params.tensors.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(
        names,
        ["conv.weight", "conv.bias", "logits.weight", "logits.bias"]
    );
    // Row-major, as PyTorch stores it: weight[out = 1, in = 0, row = 2, column = 3] is
    // element 1 * 25 + 2 * 5 + 3 = 38 of the ramp, 38 / 400 - 0.5.
    let weight = params.get("conv.weight").unwrap();
    assert_eq!(weight[IxDyn(&[1, 0, 2, 3])], 38.0 / 400.0 - 0.5);
    assert_eq!(
        params.get("logits.bias").unwrap().as_slice(),
        Some(&[0.25f32, -0.25][..])
    );
}

#[test]
fn a_file_for_another_network_lists_every_difference_at_once() {
    let graph = cnn1();
    let bytes = raw_file(vec![
        (
            "conv.weights",
            safetensors::Dtype::F32,
            vec![16, 1, 5, 5],
            f32_bytes(vec![0.0; 400]),
        ),
        (
            "logits.weight",
            safetensors::Dtype::F32,
            vec![3, 16],
            f32_bytes(vec![0.0; 48]),
        ),
        ("logits.bias", safetensors::Dtype::F16, vec![2], vec![0; 4]),
        (
            "fc.weight",
            safetensors::Dtype::F32,
            vec![2],
            f32_bytes(vec![0.0; 2]),
        ),
    ]);
    let error = TensorFile::parse("other.safetensors", &bytes)
        .unwrap()
        .params::<f32>(&graph)
        .unwrap_err();
    assert!(matches!(error, TensorError::Mismatch(_)));
    let graph_name = &graph.name;
    assert_eq!(
        error.to_string(),
        format!(
            "other.safetensors: the tensors do not match the parameters of {graph_name}:
  missing      conv.weight    the network needs [16, 1, 5, 5]
  missing      conv.bias      the network needs [16]
  wrong shape  logits.weight  the network needs [2, 16], the file has [3, 16]
  wrong dtype  logits.bias    F16; tapir reads F32 and F64
  extra        conv.weights   [16, 1, 5, 5]; did you mean \"conv.weight\"?
  extra        fc.weight      [2]; the network has no such tensor
help: the network's parameters are conv.weight [16, 1, 5, 5], conv.bias [16], logits.weight [2, 16], logits.bias [2], in PyTorch's names and layouts"
        )
    );
}

#[test]
fn inputs_take_integer_labels_and_one_batch() {
    let graph = cnn1();
    let image: Vec<f32> = images::<f32>().iter().copied().collect();
    let labels: Vec<u8> = [1i64, 0].iter().flat_map(|l| l.to_le_bytes()).collect();
    let bytes = raw_file(vec![
        (
            "image",
            safetensors::Dtype::F32,
            vec![2, 1, 56, 56],
            f32_bytes(image),
        ),
        ("labels", safetensors::Dtype::I64, vec![2], labels.clone()),
    ]);
    let inputs = TensorFile::parse("batch.safetensors", &bytes)
        .unwrap()
        .inputs::<f64>(&graph)
        .unwrap();
    assert_eq!(inputs[0].shape(), [2, 1, 56, 56]);
    assert_eq!(inputs[1].as_slice(), Some(&[1.0, 0.0][..]));

    let bytes = raw_file(vec![
        (
            "image",
            safetensors::Dtype::F32,
            vec![2, 56, 56],
            f32_bytes(vec![0.0; 2 * 56 * 56]),
        ),
        ("label", safetensors::Dtype::I64, vec![2], labels),
    ]);
    let error = TensorFile::parse("batch.safetensors", &bytes)
        .unwrap()
        .inputs::<f32>(&graph)
        .unwrap_err();
    assert_eq!(
        error.to_string(),
        format!(
            "batch.safetensors: the tensors do not match the inputs of {}:
  wrong shape  image   the network needs [2, 1, 56, 56], the file has [2, 56, 56]
  missing      labels  the network needs [2]
  extra        label   [2]; did you mean \"labels\"?
help: the network's inputs are image [N, 1, 56, 56], labels [N] (class indices), for N samples",
            graph.name
        )
    );
}

#[test]
fn other_element_types_are_refused_by_name() {
    let bytes = raw_file(vec![
        ("half", safetensors::Dtype::F16, vec![2], vec![0; 4]),
        ("count", safetensors::Dtype::I64, vec![1], vec![0; 8]),
    ]);
    let file = TensorFile::parse("mixed.safetensors", &bytes).unwrap();
    assert_eq!(
        file.tensor::<f32>("half").unwrap_err().to_string(),
        "mixed.safetensors: tensor \"half\" is stored as F16; tapir reads F32 and F64"
    );
    assert_eq!(
        file.tensor::<f32>("count").unwrap_err().to_string(),
        "mixed.safetensors: tensor \"count\" is stored as I64; tapir reads F32 and F64"
    );
    assert_eq!(
        file.labels::<f32>("count").unwrap().as_slice(),
        Some(&[0.0f32][..])
    );
    assert_eq!(
        file.tensor::<f32>("weight").unwrap_err().to_string(),
        "mixed.safetensors: no tensor named \"weight\" (the file holds: count, half)"
    );
}

#[test]
fn missing_truncated_and_foreign_files_name_their_path() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("missing.safetensors");
    assert_eq!(
        TensorFile::open(&missing).unwrap_err().to_string(),
        format!(
            "{}: cannot read the file: No such file or directory (os error 2)",
            missing.display()
        )
    );

    let whole = raw_file(vec![(
        "x",
        safetensors::Dtype::F32,
        vec![4],
        f32_bytes([1.0, 2.0, 3.0, 4.0]),
    )]);
    let truncated = dir.path().join("truncated.safetensors");
    std::fs::write(&truncated, &whole[..whole.len() - 3]).unwrap();
    assert_eq!(
        TensorFile::open(&truncated).unwrap_err().to_string(),
        format!(
            "{}: not a valid safetensors file (incomplete metadata, file not fully covered); \
             is it truncated, or of another format?",
            truncated.display()
        )
    );
    assert_eq!(
        TensorFile::parse("graph.ron", b"Network(inputs: {})")
            .unwrap_err()
            .to_string(),
        "graph.ron: not a valid safetensors file (header too large); \
         is it truncated, or of another format?"
    );
    assert_eq!(
        TensorFile::parse("empty.safetensors", b"")
            .unwrap_err()
            .to_string(),
        "empty.safetensors: not a valid safetensors file (header too small); \
         is it truncated, or of another format?"
    );
}

#[test]
fn saving_refuses_duplicate_names_and_unwritable_places() {
    let dir = tempfile::tempdir().unwrap();
    let x = ArrayD::<f32>::zeros(IxDyn(&[2]));
    let path = dir.path().join("twice.safetensors");
    assert_eq!(
        save_tensors(&path, [("x", &x), ("x", &x)], Dtype::F32)
            .unwrap_err()
            .to_string(),
        format!(
            "{}: two tensors are named \"x\"; names in a file must be unique",
            path.display()
        )
    );
    let nowhere = dir.path().join("no-such-dir").join("x.safetensors");
    let error = save_tensors(&nowhere, [("x", &x)], Dtype::F32).unwrap_err();
    assert!(
        error
            .to_string()
            .starts_with(&format!("{}: cannot write the file: ", nowhere.display())),
        "{error}"
    );
}
