//! A loaded network: every name resolved, every shape inferred, the DAG known to be acyclic.

use tapir_core::{ParamSpec, RegistryEntry};

use crate::error::GraphError;
use crate::schema::InitSpec;

/// A validated network, independent of the element type: build a
/// [`Network`](crate::Network) from it to run it.
#[derive(Debug, Clone)]
pub struct Graph {
    /// Where it came from (a file path, or a name given with the text).
    pub name: String,
    /// The inputs: the declared data inputs, then the loss's implicit ones (`labels`).
    pub inputs: Vec<GraphInput>,
    /// The nodes, in file order, then the loss node (named `loss`) if there is a loss.
    pub nodes: Vec<Node>,
    /// The values the network returns.
    pub outputs: Vec<ValueId>,
    /// The index of the loss node in `nodes`.
    pub loss: Option<usize>,
    /// How parameters are initialised.
    pub init: InitSpec,
    /// The nodes grouped by depth: a node's inputs are all in earlier waves, so the nodes of
    /// one wave can run side by side. Each wave is in node order.
    pub waves: Vec<Vec<usize>>,
    /// Problems that do not stop the network from running (unused nodes).
    pub warnings: Vec<GraphError>,
}

/// One input of the network.
#[derive(Debug, Clone, PartialEq)]
pub struct GraphInput {
    /// Its name, as in the file (`image`), or `labels` for the loss's class labels.
    pub name: String,
    /// Its shape per sample: the batch axis is implicit and comes first at run time.
    pub shape: Vec<usize>,
    /// What it carries.
    pub kind: InputKind,
}

/// What an input carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InputKind {
    /// Data the network computes on; differentiable.
    Data,
    /// Integer class labels for softmax cross-entropy; not differentiable.
    Labels,
    /// The target of a mean-squared-error loss; differentiable, though rarely asked for.
    Target,
}

/// One node of the network.
#[derive(Debug, Clone)]
pub struct Node {
    /// Its name, unique in the file.
    pub name: String,
    /// The registered op's name (`conv2d`).
    pub op: &'static str,
    /// The op's hyperparameters, as RON text (`(filters: 16, kernel: 5)`).
    pub hyperparameters: String,
    /// The values it reads, in order.
    pub inputs: Vec<ValueId>,
    /// The parameters it owns, named `node.weight`, `node.bias`.
    pub params: Vec<Param>,
    /// Its output shape per sample.
    pub shape: Vec<usize>,
    /// Forward floating-point operations per sample.
    pub flops: u64,
    pub(crate) entry: RegistryEntry,
}

impl Node {
    /// The number of scalar parameters the node owns (saturating at `usize::MAX`).
    pub fn param_count(&self) -> usize {
        self.params.iter().fold(0, |sum: usize, p| {
            let count = p
                .spec
                .shape
                .iter()
                .fold(1, |count: usize, &size| count.saturating_mul(size));
            sum.saturating_add(count)
        })
    }
}

/// A parameter of the network.
#[derive(Debug, Clone, PartialEq)]
pub struct Param {
    /// `node.weight` or `node.bias`.
    pub name: String,
    /// Its shape and role, as its op declared them.
    pub spec: ParamSpec,
}

/// A value of the network: a graph input or a node's output.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ValueId {
    /// The graph input at this index.
    Input(usize),
    /// The output of the node at this index.
    Node(usize),
}

impl Graph {
    /// The name of a value.
    pub fn value_name(&self, value: ValueId) -> &str {
        match value {
            ValueId::Input(i) => &self.inputs[i].name,
            ValueId::Node(i) => &self.nodes[i].name,
        }
    }

    /// The per-sample shape of a value.
    pub fn value_shape(&self, value: ValueId) -> &[usize] {
        match value {
            ValueId::Input(i) => &self.inputs[i].shape,
            ValueId::Node(i) => &self.nodes[i].shape,
        }
    }

    /// Every parameter, in node order.
    pub fn params(&self) -> impl Iterator<Item = &Param> + '_ {
        self.nodes.iter().flat_map(|n| n.params.iter())
    }

    /// The number of scalar parameters (saturating at `usize::MAX`).
    pub fn param_count(&self) -> usize {
        self.nodes
            .iter()
            .fold(0, |sum: usize, n| sum.saturating_add(n.param_count()))
    }

    /// Forward floating-point operations per sample, over all nodes (saturating at `u64::MAX`).
    pub fn flops(&self) -> u64 {
        self.nodes
            .iter()
            .fold(0, |sum: u64, n| sum.saturating_add(n.flops))
    }

    /// The node named `name`.
    pub fn node(&self, name: &str) -> Option<&Node> {
        self.nodes.iter().find(|n| n.name == name)
    }

    /// The input named `name`, with its index.
    pub fn input(&self, name: &str) -> Option<(usize, &GraphInput)> {
        self.inputs.iter().enumerate().find(|(_, i)| i.name == name)
    }
}
