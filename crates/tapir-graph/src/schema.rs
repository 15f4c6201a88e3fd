//! The network file format, as `serde` types: what a `graphs/*.ron` file says, before any
//! of it is checked. `graphs/README.md` documents the format for users.

use std::fmt;
use std::marker::PhantomData;

use ron::value::RawValue;
use serde::Deserialize;
use serde::de::{Deserializer, MapAccess, Visitor};

/// A whole network file.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename = "Network")]
pub struct NetworkFile {
    /// The data inputs, with their per-sample shapes: the batch axis is implicit and comes
    /// first at run time (`"image": [1, 56, 56]` takes `[N, 1, 56, 56]`).
    pub inputs: Ordered<Vec<usize>>,
    /// The nodes, in file order.
    pub nodes: Ordered<NodeSpec>,
    /// The names of the nodes whose values the network returns.
    pub outputs: Vec<String>,
    /// The loss that training and gradient checks differentiate.
    #[serde(default)]
    pub loss: Option<LossSpec>,
    /// How parameters are initialised.
    #[serde(default)]
    pub init: InitSpec,
}

/// One node: its op with hyperparameters, and the values it reads.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NodeSpec {
    /// The op as written, `Conv2d(filters: 16, kernel: 5)` or `Relu`: the registered name in
    /// CamelCase (`MaxPool2d` for `max_pool2d`), then the hyperparameters by field name;
    /// resolved by the registry.
    pub op: Box<RawValue>,
    /// The one value the node reads (a graph input or a node).
    #[serde(default)]
    pub input: Option<String>,
    /// The values the node reads, in order, for ops with several inputs.
    #[serde(default)]
    pub inputs: Option<Vec<String>>,
}

/// The loss a network is trained on.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub enum LossSpec {
    /// Softmax cross-entropy of a `[N, classes]` node against integer class labels, given at
    /// run time as the implicit input `labels`; the mean over the batch.
    SoftmaxCrossEntropy {
        /// The node holding the class scores.
        logits: String,
    },
    /// Mean squared error of a node against a graph input of the same shape, the mean over
    /// every element of the batch.
    Mse {
        /// The node holding the prediction.
        prediction: String,
        /// The value the prediction is compared with, normally a graph input.
        target: String,
    },
}

/// Parameter initialisation: one rule for weights, one for biases; the seed is the run's.
#[derive(Debug, Clone, Copy, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InitSpec {
    /// For weights (default `He`).
    #[serde(default = "InitSpec::default_weights")]
    pub weights: Init,
    /// For biases (default `Zeros`).
    #[serde(default = "InitSpec::default_biases")]
    pub biases: Init,
}

impl InitSpec {
    fn default_weights() -> Init {
        Init::He
    }
    fn default_biases() -> Init {
        Init::Zeros
    }
}

impl Default for InitSpec {
    fn default() -> Self {
        InitSpec {
            weights: Init::He,
            biases: Init::Zeros,
        }
    }
}

/// How one parameter tensor is initialised.
#[derive(Debug, Clone, Copy, PartialEq, Deserialize)]
pub enum Init {
    /// Normal with mean 0 and standard deviation `sqrt(2 / fan_in)` (He et al. 2015): keeps
    /// the variance of ReLU activations constant from layer to layer.
    He,
    /// Uniform in `±sqrt(6 / (fan_in + fan_out))` (Glorot and Bengio 2010).
    Glorot,
    /// All zeros (for weights: the saddle point where no conv filter ever moves).
    Zeros,
    /// Every element the same value.
    Constant(f64),
}

/// A RON map whose entries keep their file order and whose duplicate keys are kept for the
/// validator to report (a `BTreeMap` would sort them and silently keep the last).
#[derive(Debug)]
pub struct Ordered<T>(pub Vec<(String, T)>);

impl<'de, T: Deserialize<'de>> Deserialize<'de> for Ordered<T> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct OrderedVisitor<T>(PhantomData<T>);
        impl<'de, T: Deserialize<'de>> Visitor<'de> for OrderedVisitor<T> {
            type Value = Ordered<T>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a map from names to entries: { \"name\": ..., }")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
                let mut entries = Vec::new();
                while let Some(entry) = map.next_entry()? {
                    entries.push(entry);
                }
                Ok(Ordered(entries))
            }
        }
        deserializer.deserialize_map(OrderedVisitor(PhantomData))
    }
}
