//! Running a [`Graph`]: parameters, the forward pass over waves of independent nodes, and
//! the loss's backward.

use std::sync::{Arc, Mutex};
use std::time::Instant;

use ndarray::ArrayD;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, Normal, Uniform};
use tapir_core::{Error, Float, Op, ParamRole, Result, Schedule, Tape, Var};

use crate::graph::{Graph, ValueId};
use crate::schema::Init;

/// A graph's ops built in one precision, ready to run.
///
/// [`Network::new`] fuses where an op offers it ([`Op::fused_after`]): a node whose output
/// only one other node reads, and which is not an output, can run inside that node (a `Relu`
/// before a `MaxPool2d`, and the `Conv2d` before that `Relu`). The results and gradients are
/// the same bits; the fused node's own value is never made, so [`Forward::value`] has none
/// for it. [`Network::unfused`] runs every node on its own, to read every value.
///
/// The independent nodes of a wave run side by side; [`Network::with_schedule`] can make
/// them run one at a time instead (the same bits either way).
#[derive(Debug, Clone)]
pub struct Network<F: Float> {
    graph: Arc<Graph>,
    /// What each node runs: its own op, or the fused op of itself and the node it absorbed.
    ops: Vec<Arc<dyn Op<F>>>,
    /// Per node, how it runs.
    fusion: Vec<Fusion>,
    /// How the tapes this network makes itself ([`Network::loss_and_grads`]) run a wave.
    schedule: Schedule,
}

/// How a node of a [`Network`] runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fusion {
    /// On its own.
    Alone,
    /// Inside the node with this index, which reads its inputs instead of its value.
    Into(usize),
    /// With the node of this index, its first input, inside its own op (and, when that
    /// node's own first input is fused into this one too, that node, and so on).
    Absorbs(usize),
}

/// A network's parameters by name (`conv.weight`), in node order.
#[derive(Debug, Clone, PartialEq)]
pub struct Params<F: Float> {
    /// Name and value of each parameter.
    pub tensors: Vec<(String, ArrayD<F>)>,
}

impl<F: Float> Params<F> {
    /// The parameter named `name`.
    pub fn get(&self, name: &str) -> Option<&ArrayD<F>> {
        self.tensors.iter().find(|(n, _)| n == name).map(|(_, t)| t)
    }

    /// The parameter named `name`, to change it.
    pub fn get_mut(&mut self, name: &str) -> Option<&mut ArrayD<F>> {
        self.tensors
            .iter_mut()
            .find(|(n, _)| n == name)
            .map(|(_, t)| t)
    }

    /// The same parameters in another precision.
    pub fn cast<G: Float>(&self) -> Params<G> {
        Params {
            tensors: self
                .tensors
                .iter()
                .map(|(n, t)| (n.clone(), t.mapv(|x| G::from_f64(x.to_f64()))))
                .collect(),
        }
    }
}

/// What [`Network::loss_and_grads`] returns.
#[derive(Debug, Clone)]
pub struct LossGrads<F: Float> {
    /// The loss.
    pub loss: F,
    /// Every value of the forward pass.
    pub forward: Forward<F>,
    /// The gradient of the loss for every parameter.
    pub params: Params<F>,
    /// The gradient of the loss for each input (`None` unless asked for, and for labels).
    pub inputs: Vec<Option<ArrayD<F>>>,
}

/// When one node ran, for traces and profiles.
#[derive(Debug, Clone, PartialEq)]
pub struct NodeTiming {
    /// The node's index in the graph.
    pub node: usize,
    /// Seconds since the forward pass began.
    pub start: f64,
    /// Seconds since the forward pass began.
    pub end: f64,
}

/// The shapes node `n` reads for one sample: its inputs with a batch axis of 1, then its
/// parameters.
fn per_sample_inputs(graph: &Graph, n: usize) -> Vec<Vec<usize>> {
    let node = &graph.nodes[n];
    let inputs = node.inputs.iter().map(|&v| {
        let shape = match v {
            ValueId::Input(i) => &graph.inputs[i].shape,
            ValueId::Node(m) => &graph.nodes[m].shape,
        };
        std::iter::once(1).chain(shape.iter().copied()).collect()
    });
    let params = node.params.iter().map(|p| p.spec.shape.clone());
    inputs.chain(params).collect()
}

/// What a forward pass produced: every value, so callers can read outputs and the loss.
#[derive(Debug, Clone)]
pub struct Forward<F: Float> {
    /// The parameters as tape variables, in [`Graph::params`] order.
    pub params: Vec<Var<F>>,
    /// The inputs as tape variables, in [`Graph::inputs`] order.
    pub inputs: Vec<Var<F>>,
    /// Each node's output, in node order; `None` for a loss whose labels were not given, and
    /// for a node that ran fused inside another ([`Network::unfused`] keeps every one).
    pub nodes: Vec<Option<Var<F>>>,
}

impl<F: Float> Forward<F> {
    /// The value of `id`, if it was computed.
    pub fn value(&self, id: ValueId) -> Option<&Var<F>> {
        match id {
            ValueId::Input(i) => self.inputs.get(i),
            ValueId::Node(n) => self.nodes.get(n)?.as_ref(),
        }
    }
}

impl<F: Float> Network<F> {
    /// Builds every node's op in precision `F`, fusing nodes where the ops offer it.
    pub fn new(graph: Arc<Graph>) -> Result<Self> {
        let mut network = Self::unfused(graph)?;
        network.fuse();
        Ok(network)
    }

    /// Builds every node's op in precision `F`; every node runs on its own, so a forward
    /// pass keeps every node's value.
    pub fn unfused(graph: Arc<Graph>) -> Result<Self> {
        let ops = graph
            .nodes
            .iter()
            .map(|node| {
                node.entry
                    .build::<F>(&node.hyperparameters)
                    .map_err(|e| e.at_node(&node.name))
            })
            .collect::<Result<_>>()?;
        let fusion = vec![Fusion::Alone; graph.nodes.len()];
        Ok(Network {
            graph,
            ops,
            fusion,
            schedule: Schedule::default(),
        })
    }

    /// This network, with the tapes it makes itself ([`Network::loss_and_grads`]) running the
    /// independent nodes of a wave as `schedule` says. On a tape given to
    /// [`Network::forward`], the tape's own schedule ([`Tape::with_schedule`]) decides.
    pub fn with_schedule(mut self, schedule: Schedule) -> Self {
        self.schedule = schedule;
        self
    }

    /// How the tapes this network makes run a wave.
    pub fn schedule(&self) -> Schedule {
        self.schedule
    }

    /// Fuses each node `b` whose first input is a node `a` read by `b` alone and not an
    /// output of the graph, when `b`'s op offers a fused op ([`Op::fused_after`]); then
    /// offers the fused op `a`'s first input the same way, and so on up the chain.
    fn fuse(&mut self) {
        let graph = Arc::clone(&self.graph);
        let mut readers = vec![0usize; graph.nodes.len()];
        let node_values = graph
            .nodes
            .iter()
            .flat_map(|node| &node.inputs)
            .chain(&graph.outputs);
        for value in node_values {
            if let ValueId::Node(a) = *value {
                readers[a] += 1;
            }
        }
        for b in 0..graph.nodes.len() {
            // The first node of b's chain: b's op reads its first input.
            let mut head = b;
            while let Some(&ValueId::Node(a)) = graph.nodes[head].inputs.first() {
                if readers[a] != 1 || self.fusion[a] != Fusion::Alone {
                    break;
                }
                let shapes = per_sample_inputs(&graph, a);
                let shapes: Vec<&[usize]> = shapes.iter().map(Vec::as_slice).collect();
                let Some(fused) = self.ops[b].fused_after(self.ops[a].as_ref(), &shapes) else {
                    break;
                };
                self.ops[b] = fused;
                self.fusion[a] = Fusion::Into(b);
                if head == b {
                    self.fusion[b] = Fusion::Absorbs(a);
                }
                head = a;
            }
        }
    }

    /// How each node runs, in node order.
    pub fn fusion(&self) -> &[Fusion] {
        &self.fusion
    }

    /// The graph this network runs.
    pub fn graph(&self) -> &Arc<Graph> {
        &self.graph
    }

    /// Fresh parameters, initialised as the graph's `init` says, from `seed`.
    ///
    /// Values are drawn in `f64` and rounded, so `f32` and `f64` networks start from the same point.
    pub fn init_params(&self, seed: u64) -> Params<F> {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let tensors = self
            .graph
            .params()
            .map(|param| {
                let (rule, fan_in, fan_out) = match param.spec.role {
                    ParamRole::Weight { fan_in, fan_out } => {
                        (self.graph.init.weights, fan_in, fan_out)
                    }
                    ParamRole::Bias { fan_in } => (self.graph.init.biases, fan_in, 1),
                };
                let (fan_in, fan_out) = (fan_in.max(1) as f64, fan_out.max(1) as f64);
                let shape = param.spec.shape.as_slice();
                let value = match rule {
                    Init::Zeros => ArrayD::zeros(shape),
                    Init::Constant(c) => ArrayD::from_elem(shape, F::from_f64(c)),
                    Init::He => {
                        // Safe: the standard deviation sqrt(2 / fan_in) is finite and positive.
                        let normal =
                            Normal::new(0.0, (2.0 / fan_in).sqrt()).expect("BUG: He std is finite");
                        ArrayD::from_shape_simple_fn(shape, || F::from_f64(normal.sample(&mut rng)))
                    }
                    Init::Glorot => {
                        let bound = (6.0 / (fan_in + fan_out)).sqrt();
                        // Safe: -bound < bound, both finite.
                        let uniform =
                            Uniform::new(-bound, bound).expect("BUG: Glorot bound is finite");
                        ArrayD::from_shape_simple_fn(shape, || {
                            F::from_f64(uniform.sample(&mut rng))
                        })
                    }
                };
                (param.name.clone(), value)
            })
            .collect();
        Params { tensors }
    }

    /// Runs the network on `inputs` (one array per graph input, batch axis first, in
    /// [`Graph::inputs`] order; `labels` may be left out when the loss is not needed).
    ///
    /// Nodes run wave by wave; the nodes of a wave run side by side on the rayon pool (or one
    /// at a time, as `tape`'s [`Schedule`] says) and are recorded on the tape in node order,
    /// so the result depends on neither the thread count nor the schedule.
    /// With `trace`, each node's start and end times are pushed there.
    pub fn forward(
        &self,
        tape: &mut Tape<F>,
        params: &Params<F>,
        inputs: Vec<ArrayD<F>>,
        grad_inputs: bool,
        trace: Option<&Mutex<Vec<NodeTiming>>>,
    ) -> Result<Forward<F>> {
        // One hand-over to the pool for the whole pass, not one per parallel kernel.
        tapir_core::on_pool(|| {
            let param_vars = self.param_vars(tape, params)?;
            let input_vars = self.input_vars(tape, inputs, grad_inputs)?;
            self.forward_vars(tape, param_vars, input_vars, trace)
        })
    }

    /// [`Network::forward`] on values already on `tape`: parameters in [`Graph::params`]
    /// order, inputs in [`Graph::inputs`] order (the loss's implicit ones may be left out).
    pub fn forward_vars(
        &self,
        tape: &mut Tape<F>,
        param_vars: Vec<Var<F>>,
        input_vars: Vec<Var<F>>,
        trace: Option<&Mutex<Vec<NodeTiming>>>,
    ) -> Result<Forward<F>> {
        let graph = &self.graph;
        let expected = graph.params().count();
        if param_vars.len() != expected {
            return Err(Error::Input(format!(
                "the network takes {expected} parameters, got {}",
                param_vars.len()
            )));
        }
        let shapes: Vec<&[usize]> = input_vars.iter().map(Var::shape).collect();
        self.check_inputs(&shapes)?;
        let mut nodes: Vec<Option<Var<F>>> = vec![None; graph.nodes.len()];
        let mut first_param = vec![0; graph.nodes.len()];
        let mut offset = 0;
        for (n, node) in graph.nodes.iter().enumerate() {
            first_param[n] = offset;
            offset += node.params.len();
        }
        let start = Instant::now();
        for wave in &graph.waves {
            let wave: Vec<usize> = wave
                .iter()
                .copied()
                .filter(|&n| self.runnable(n, &input_vars))
                .filter(|&n| !matches!(self.fusion[n], Fusion::Into(_)))
                .collect();
            let value = |v: ValueId| match v {
                ValueId::Input(i) => input_vars[i].clone(),
                // Safe: waves put every node after the nodes it reads.
                ValueId::Node(m) => nodes[m].clone().expect("BUG: node ran before its input"),
            };
            let arguments = |n: usize| -> Vec<Var<F>> {
                let mut arguments = Vec::new();
                self.gather_arguments(n, n, &value, &first_param, &param_vars, &mut arguments);
                arguments
            };
            let jobs: Vec<(usize, Vec<Var<F>>)> = wave.iter().map(|&n| (n, arguments(n))).collect();
            let run = |(n, args): &(usize, Vec<Var<F>>)| -> Result<ArrayD<F>> {
                let began = start.elapsed().as_secs_f64();
                let refs: Vec<&Var<F>> = args.iter().collect();
                let output = tape
                    .run(self.ops[*n].as_ref(), &refs)
                    .map_err(|e| e.at_node(&graph.nodes[*n].name));
                if let Some(trace) = trace {
                    let timing = NodeTiming {
                        node: *n,
                        start: began,
                        end: start.elapsed().as_secs_f64(),
                    };
                    if let Ok(mut trace) = trace.lock() {
                        trace.push(timing);
                    }
                }
                output
            };
            let outputs: Vec<Result<ArrayD<F>>> = tape.schedule().map(&jobs, run);
            for ((n, args), output) in jobs.iter().zip(outputs) {
                let refs: Vec<&Var<F>> = args.iter().collect();
                nodes[*n] = Some(tape.record(Arc::clone(&self.ops[*n]), &refs, output?)?);
            }
        }
        Ok(Forward {
            params: param_vars,
            inputs: input_vars,
            nodes,
        })
    }

    /// Pushes what node `m` reads, as run by node `target`'s op: its inputs, then its
    /// parameters. A first input that runs inside `target`'s op too is replaced by what
    /// that node reads, so a fused op gets the inputs and parameters of its whole chain.
    fn gather_arguments(
        &self,
        m: usize,
        target: usize,
        value: &dyn Fn(ValueId) -> Var<F>,
        first_param: &[usize],
        param_vars: &[Var<F>],
        arguments: &mut Vec<Var<F>>,
    ) {
        let node = &self.graph.nodes[m];
        let mut inputs = node.inputs.iter().copied();
        match inputs.next() {
            Some(ValueId::Node(a)) if self.fusion[a] == Fusion::Into(target) => {
                self.gather_arguments(a, target, value, first_param, param_vars, arguments);
            }
            Some(first) => arguments.push(value(first)),
            None => {}
        }
        arguments.extend(inputs.map(value));
        let params = first_param[m]..first_param[m] + node.params.len();
        arguments.extend(param_vars[params].iter().cloned());
    }

    /// Whether node `n` can run: inference may leave out the loss's implicit inputs, and
    /// then the loss does not run.
    fn runnable(&self, n: usize, inputs: &[Var<F>]) -> bool {
        Some(n) != self.graph.loss || inputs.len() == self.graph.inputs.len()
    }

    /// How many inputs a forward pass needs: all but the loss's implicit labels, which
    /// inference may leave out.
    fn inputs_needed(&self) -> usize {
        let graph = &self.graph;
        graph.inputs.len()
            - usize::from(graph.loss.is_some() && graph.input(crate::LABELS_INPUT).is_some())
    }

    fn param_vars(&self, tape: &mut Tape<F>, params: &Params<F>) -> Result<Vec<Var<F>>> {
        self.graph
            .params()
            .map(|param| {
                let value = params.get(&param.name).ok_or_else(|| {
                    Error::Input(format!("parameter \"{}\" is missing", param.name))
                })?;
                if value.shape() != param.spec.shape.as_slice() {
                    return Err(Error::Input(format!(
                        "parameter \"{}\" has shape {:?}, the network needs {:?}",
                        param.name,
                        value.shape(),
                        param.spec.shape
                    )));
                }
                Ok(tape.leaf(value.clone(), true))
            })
            .collect()
    }

    fn input_vars(
        &self,
        tape: &mut Tape<F>,
        inputs: Vec<ArrayD<F>>,
        grad_inputs: bool,
    ) -> Result<Vec<Var<F>>> {
        let shapes: Vec<&[usize]> = inputs.iter().map(ArrayD::shape).collect();
        self.check_inputs(&shapes)?;
        Ok(inputs
            .into_iter()
            .zip(&self.graph.inputs)
            .map(|(value, input)| {
                let differentiable = grad_inputs && input.kind != crate::InputKind::Labels;
                tape.leaf(value, differentiable)
            })
            .collect())
    }

    /// Checks the shapes of the values given for the graph's inputs, in [`Graph::inputs`]
    /// order: every declared input but the loss's implicit ones, which may be left out, and
    /// each of shape `[batch, per-sample shape...]` with one batch size for all.
    fn check_inputs(&self, shapes: &[&[usize]]) -> Result<()> {
        let graph = &self.graph;
        let declared = graph.inputs.len();
        let needed = self.inputs_needed();
        if shapes.len() < needed || shapes.len() > declared {
            let names: Vec<&str> = graph.inputs.iter().map(|i| i.name.as_str()).collect();
            return Err(Error::Input(format!(
                "the network takes the inputs {names:?}, got {} arrays",
                shapes.len()
            )));
        }
        let batch = shapes
            .first()
            .and_then(|shape| shape.first().copied())
            .unwrap_or(0);
        for (shape, input) in shapes.iter().zip(&graph.inputs) {
            let expected: Vec<usize> = std::iter::once(batch)
                .chain(input.shape.iter().copied())
                .collect();
            if *shape != expected.as_slice() {
                return Err(Error::Input(format!(
                    "input \"{}\" has shape {:?}, the network expects {:?} (batch {batch}, then {:?})",
                    input.name, shape, expected, input.shape
                )));
            }
        }
        Ok(())
    }

    /// Forward and backward for the loss: the loss value and every parameter's gradient
    /// (and each differentiable input's, with `grad_inputs`).
    pub fn loss_and_grads(
        &self,
        params: &Params<F>,
        inputs: Vec<ArrayD<F>>,
        grad_inputs: bool,
    ) -> Result<LossGrads<F>> {
        tapir_core::on_pool(|| self.loss_and_grads_on_pool(params, inputs, grad_inputs))
    }

    /// [`Network::loss_and_grads`], on a thread of the pool.
    fn loss_and_grads_on_pool(
        &self,
        params: &Params<F>,
        inputs: Vec<ArrayD<F>>,
        grad_inputs: bool,
    ) -> Result<LossGrads<F>> {
        let Some(loss) = self.graph.loss else {
            return Err(Error::Input(format!(
                "{} has no loss to differentiate",
                self.graph.name
            )));
        };
        let mut tape = Tape::new().with_schedule(self.schedule);
        let forward = self.forward(&mut tape, params, inputs, grad_inputs, None)?;
        let Some(loss_var) = forward.nodes[loss].as_ref() else {
            return Err(Error::Input("the loss needs its labels".into()));
        };
        let value = loss_var
            .value()
            .iter()
            .next()
            .copied()
            .unwrap_or_else(F::nan);
        let mut grads = tape.backward(loss_var)?;
        let param_grads = Params {
            tensors: self
                .graph
                .params()
                .zip(&forward.params)
                .map(|(param, var)| {
                    let grad = grads
                        .take(var)
                        .unwrap_or_else(|| ArrayD::zeros(param.spec.shape.as_slice()));
                    (param.name.clone(), grad)
                })
                .collect(),
        };
        let input_grads = forward.inputs.iter().map(|v| grads.take(v)).collect();
        Ok(LossGrads {
            loss: value,
            forward,
            params: param_grads,
            inputs: input_grads,
        })
    }
}
