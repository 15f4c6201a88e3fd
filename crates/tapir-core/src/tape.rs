//! The tape: forward ops record themselves as they run, backward replays them in reverse.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use ndarray::{ArrayD, ArrayViewD, IxDyn};
use rayon::prelude::*;

use crate::buffers;
use crate::error::{Error, Result};
use crate::float::Float;
use crate::op::{BackwardCx, Op};

/// A value computed on a tape: the array, and where the tape recorded it (if it did).
///
/// Cloning is cheap (the array is shared). A `Var` that no recorded path leads to is a
/// constant: backward gives it no gradient and an inference tape makes only these.
#[derive(Debug, Clone)]
pub struct Var<F: Float> {
    value: Arc<ArrayD<F>>,
    slot: Option<Slot>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Slot {
    tape: u64,
    index: usize,
}

impl<F: Float> Var<F> {
    /// A constant: never recorded, never given a gradient.
    pub fn constant(value: ArrayD<F>) -> Self {
        Var {
            value: Arc::new(value),
            slot: None,
        }
    }
    /// The value.
    pub fn value(&self) -> &ArrayD<F> {
        &self.value
    }
    /// The shape of the value.
    pub fn shape(&self) -> &[usize] {
        self.value.shape()
    }
    /// Whether a gradient can flow to this value.
    pub fn is_tracked(&self) -> bool {
        self.slot.is_some()
    }
}

impl<F: Float> Drop for Var<F> {
    fn drop(&mut self) {
        give_back(&mut self.value);
    }
}

/// Gives the memory of a shared array to [`buffers`] if this is its last holder.
fn give_back<F: Float>(shared: &mut Arc<ArrayD<F>>) {
    if let Some(array) = Arc::get_mut(shared)
        && array.len() * std::mem::size_of::<F>() >= buffers::MIN_BYTES
    {
        // An empty array allocates nothing.
        let array = std::mem::replace(array, ArrayD::zeros(IxDyn(&[0])));
        buffers::give_array(array);
    }
}

/// What the tape keeps for one tracked value.
#[derive(Debug)]
enum Entry<F: Float> {
    /// A leaf that asked for a gradient: a parameter, or an input on request.
    Leaf,
    /// The output of an op, with everything its backward needs.
    Op {
        op: Arc<dyn Op<F>>,
        inputs: Vec<Var<F>>,
        output: Arc<ArrayD<F>>,
    },
}

/// What one op's backward returns: a gradient (or none) per input.
type OpGrads<F> = Result<Vec<Option<ArrayD<F>>>>;

/// How the independent ops of one wave run, forward (in a graph's network) and backward.
///
/// Either way each op splits its own work across the rayon pool, and the results are the
/// same bits: ops are recorded, and their gradients added, in a fixed order.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Schedule {
    /// Side by side on the rayon pool: while one branch of a network waits on memory or
    /// cannot split its work further, another runs on the free threads.
    #[default]
    SideBySide,
    /// One after another in a fixed order: the serial baseline that side by side is
    /// measured against (and a way to see each op alone on every thread).
    OneAtATime,
}

impl Schedule {
    /// Runs `run` on each job, side by side or in order, and gives the results in job order.
    pub fn map<J: Sync, R: Send>(self, jobs: &[J], run: impl Fn(&J) -> R + Sync + Send) -> Vec<R> {
        match self {
            Schedule::SideBySide if jobs.len() > 1 => jobs.par_iter().map(run).collect(),
            _ => jobs.iter().map(run).collect(),
        }
    }
}

/// Records ops as they run, for [`Tape::backward`].
///
/// A recording tape keeps every tracked op's inputs and output alive until it is dropped; an
/// inference tape ([`Tape::inference`]) records nothing, so each activation is freed as
/// soon as no `Var` holds it.
#[derive(Debug)]
pub struct Tape<F: Float> {
    id: u64,
    recording: bool,
    schedule: Schedule,
    entries: Vec<Entry<F>>,
}

impl<F: Float> Drop for Tape<F> {
    fn drop(&mut self) {
        for entry in &mut self.entries {
            if let Entry::Op { output, .. } = entry {
                give_back(output);
            }
        }
    }
}

/// Distinguishes tapes, so that a `Var` of one is never read as a slot of another.
static NEXT_TAPE_ID: AtomicU64 = AtomicU64::new(0);

impl<F: Float> Default for Tape<F> {
    fn default() -> Self {
        Self::new()
    }
}

impl<F: Float> Tape<F> {
    /// A recording tape, for training and gradient checks.
    pub fn new() -> Self {
        Tape {
            id: NEXT_TAPE_ID.fetch_add(1, Ordering::Relaxed),
            recording: true,
            schedule: Schedule::default(),
            entries: Vec::new(),
        }
    }

    /// This tape, running the independent ops of a wave as `schedule` says (side by side
    /// unless told otherwise).
    pub fn with_schedule(mut self, schedule: Schedule) -> Self {
        self.schedule = schedule;
        self
    }

    /// How the independent ops of a wave run on this tape.
    pub fn schedule(&self) -> Schedule {
        self.schedule
    }

    /// An inference tape: ops run, nothing is recorded, no activation is kept.
    pub fn inference() -> Self {
        let mut tape = Self::new();
        tape.recording = false;
        tape
    }

    /// Whether this tape records ops.
    pub fn is_recording(&self) -> bool {
        self.recording
    }

    /// How many tracked values the tape holds.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether the tape holds no tracked value.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// A leaf value; with `requires_grad` (and a recording tape), backward returns its gradient.
    pub fn leaf(&mut self, value: ArrayD<F>, requires_grad: bool) -> Var<F> {
        if !(requires_grad && self.recording) {
            return Var::constant(value);
        }
        let slot = self.push(Entry::Leaf);
        Var {
            value: Arc::new(value),
            slot: Some(slot),
        }
    }

    /// Runs `op` on `inputs` and records it.
    pub fn apply(&mut self, op: impl Op<F> + 'static, inputs: &[&Var<F>]) -> Result<Var<F>> {
        self.apply_shared(Arc::new(op), inputs)
    }

    /// Runs a shared `op` on `inputs` and records it (graphs keep their ops in `Arc`s).
    pub fn apply_shared(&mut self, op: Arc<dyn Op<F>>, inputs: &[&Var<F>]) -> Result<Var<F>> {
        let output = self.run(op.as_ref(), inputs)?;
        self.record(op, inputs, output)
    }

    /// Runs `op` without recording it: the shape rule, forward, and the check that forward
    /// kept to the shape rule. With [`Tape::record`], lets callers run ops on many threads and
    /// record them in a fixed order.
    pub fn run(&self, op: &dyn Op<F>, inputs: &[&Var<F>]) -> Result<ArrayD<F>> {
        for input in inputs {
            self.check_owned(input)?;
        }
        let shapes: Vec<&[usize]> = inputs.iter().map(|v| v.shape()).collect();
        let expected = op.output_shape(&shapes)?;
        let views: Vec<ArrayViewD<F>> = inputs.iter().map(|v| v.value.view()).collect();
        let output = op.forward(&views)?;
        if output.shape() != expected.as_slice() {
            return Err(Error::Contract {
                op: op.name(),
                message: format!(
                    "forward returned shape {:?}, its shape rule says {:?}",
                    output.shape(),
                    expected
                ),
            });
        }
        Ok(output)
    }

    /// Records `op`'s `output` for these `inputs`, as [`Tape::apply_shared`] does after running it.
    pub fn record(
        &mut self,
        op: Arc<dyn Op<F>>,
        inputs: &[&Var<F>],
        output: ArrayD<F>,
    ) -> Result<Var<F>> {
        for input in inputs {
            self.check_owned(input)?;
        }
        let output = Arc::new(output);
        if !(self.recording && inputs.iter().any(|v| v.is_tracked())) {
            return Ok(Var {
                value: output,
                slot: None,
            });
        }
        let inputs = inputs.iter().map(|&v| v.clone()).collect();
        let slot = self.push(Entry::Op {
            op,
            inputs,
            output: Arc::clone(&output),
        });
        Ok(Var {
            value: output,
            slot: Some(slot),
        })
    }

    /// Backward from a scalar `loss` (one element): the gradient of every leaf that asked for one.
    pub fn backward(&self, loss: &Var<F>) -> Result<Gradients<F>> {
        if loss.value.len() != 1 {
            return Err(Error::Tape(format!(
                "backward needs a scalar loss, got shape {:?}; use backward_from with an output gradient",
                loss.shape()
            )));
        }
        self.backward_from(loss, ArrayD::from_elem(loss.shape(), F::one()))
    }

    /// Backward from any `output`, given the loss's gradient with respect to it.
    pub fn backward_from(&self, output: &Var<F>, output_grad: ArrayD<F>) -> Result<Gradients<F>> {
        self.backward_inner(output, output_grad, None)
    }

    /// [`Tape::backward_from`], calling `timing(entry, time)` once for each op whose backward
    /// ran, with the op's [`Tape::entry_index`] and how long its backward took (the checks of
    /// its result included, the sums of gradients not). Ops of one wave run side by side
    /// (unless the tape's [`Schedule`] says one at a time), so their times can overlap.
    pub fn backward_from_timed(
        &self,
        output: &Var<F>,
        output_grad: ArrayD<F>,
        timing: &mut dyn FnMut(usize, Duration),
    ) -> Result<Gradients<F>> {
        self.backward_inner(output, output_grad, Some(timing))
    }

    /// Where this tape recorded `var`: the entry index [`Tape::backward_from_timed`] reports.
    /// `None` for a constant or a value of another tape.
    pub fn entry_index(&self, var: &Var<F>) -> Option<usize> {
        var.slot
            .filter(|slot| slot.tape == self.id)
            .map(|slot| slot.index)
    }

    fn backward_inner(
        &self,
        output: &Var<F>,
        output_grad: ArrayD<F>,
        timing: Option<&mut dyn FnMut(usize, Duration)>,
    ) -> Result<Gradients<F>> {
        match timing {
            // The timing callback stays on the calling thread: it need not be `Send`.
            Some(timing) => self.backward_waves(output, output_grad, Some(timing)),
            None => crate::on_pool(|| self.backward_waves(output, output_grad, None)),
        }
    }

    fn backward_waves(
        &self,
        output: &Var<F>,
        output_grad: ArrayD<F>,
        mut timing: Option<&mut dyn FnMut(usize, Duration)>,
    ) -> Result<Gradients<F>> {
        self.check_owned(output)?;
        if output_grad.shape() != output.shape() {
            return Err(Error::Tape(format!(
                "output gradient has shape {:?}, the output has shape {:?}",
                output_grad.shape(),
                output.shape()
            )));
        }
        let Some(start) = output.slot else {
            return Err(Error::Tape(
                "backward from a value no recorded op or gradient-requiring leaf leads to".into(),
            ));
        };
        let mut grads: Vec<Option<ArrayD<F>>> = vec![None; start.index + 1];
        grads[start.index] = Some(output_grad);
        // Ops run backward in waves: wave h holds the ops whose longest path to `output` has h
        // steps. An op's consumers all sit in earlier waves, so its gradient is complete when
        // its wave comes, and the ops of one wave are independent: they run side by side
        // (unless the tape's schedule says one at a time).
        // Their gradients are then added in a fixed order (descending entry index), so the
        // sums do not depend on the thread count.
        for wave in self.waves(start.index) {
            let jobs: Vec<(usize, ArrayD<F>)> = wave
                .into_iter()
                .filter_map(|index| Some((index, grads[index].take()?)))
                .collect();
            let timed = timing.is_some();
            let run = |(index, output_grad): &(usize, ArrayD<F>)| {
                let began = timed.then(Instant::now);
                let grads = match &self.entries[*index] {
                    Entry::Op { op, inputs, output } => {
                        Self::backward_op(op.as_ref(), inputs, output, output_grad)
                    }
                    Entry::Leaf => Ok(Vec::new()),
                };
                (grads, began.map(|began| began.elapsed()))
            };
            let results: Vec<(OpGrads<F>, Option<Duration>)> = self.schedule.map(&jobs, run);
            for ((index, _), (input_grads, elapsed)) in jobs.iter().zip(results) {
                if let (Some(timing), Some(elapsed)) = (timing.as_mut(), elapsed) {
                    timing(*index, elapsed);
                }
                let Entry::Op { inputs, .. } = &self.entries[*index] else {
                    continue;
                };
                for (input, grad) in inputs.iter().zip(input_grads?) {
                    let (Some(slot), Some(grad)) = (input.slot, grad) else {
                        continue;
                    };
                    match &mut grads[slot.index] {
                        Some(sum) => {
                            *sum += &grad;
                            buffers::give_array(grad);
                        }
                        empty => *empty = Some(grad),
                    }
                }
            }
            // Each op's output gradient is spent: its memory serves the next wave.
            for (_, output_grad) in jobs {
                buffers::give_array(output_grad);
            }
        }
        Ok(Gradients {
            tape: self.id,
            grads,
        })
    }

    /// Calls `op.backward` and checks its result: one entry per input, and each gradient
    /// with its input's shape. `None` means no gradient flows to that input (integer labels).
    fn backward_op(
        op: &dyn Op<F>,
        inputs: &[Var<F>],
        output: &ArrayD<F>,
        output_grad: &ArrayD<F>,
    ) -> OpGrads<F> {
        let views: Vec<ArrayViewD<F>> = inputs.iter().map(|v| v.value.view()).collect();
        let needs_grad: Vec<bool> = inputs.iter().map(Var::is_tracked).collect();
        let cx = BackwardCx {
            inputs: &views,
            output: output.view(),
            output_grad: output_grad.view(),
            needs_grad: &needs_grad,
        };
        let grads = op.backward(&cx)?;
        let contract = |message: String| Error::Contract {
            op: op.name(),
            message,
        };
        if grads.len() != inputs.len() {
            return Err(contract(format!(
                "backward returned {} gradients for {} inputs",
                grads.len(),
                inputs.len()
            )));
        }
        for (index, (grad, input)) in grads.iter().zip(inputs).enumerate() {
            if let Some(grad) = grad
                && grad.shape() != input.shape()
            {
                return Err(contract(format!(
                    "backward returned a gradient of shape {:?} for input {index} of shape {:?}",
                    grad.shape(),
                    input.shape()
                )));
            }
        }
        Ok(grads)
    }

    /// The op entries that lead to entry `start`, grouped by the length of their longest path
    /// to it, each group in descending entry order.
    fn waves(&self, start: usize) -> Vec<Vec<usize>> {
        let mut height: Vec<Option<usize>> = vec![None; start + 1];
        height[start] = Some(0);
        let mut waves: Vec<Vec<usize>> = Vec::new();
        // Inputs precede their consumers, so descending order sees every consumer of an entry
        // (fixing its height) before the entry itself.
        for index in (0..=start).rev() {
            let (Some(h), Entry::Op { inputs, .. }) = (height[index], &self.entries[index]) else {
                continue;
            };
            if waves.len() <= h {
                waves.resize_with(h + 1, Vec::new);
            }
            waves[h].push(index);
            for slot in inputs.iter().filter_map(|v| v.slot) {
                height[slot.index] = Some(height[slot.index].map_or(h + 1, |old| old.max(h + 1)));
            }
        }
        waves
    }

    fn push(&mut self, entry: Entry<F>) -> Slot {
        self.entries.push(entry);
        Slot {
            tape: self.id,
            index: self.entries.len() - 1,
        }
    }

    fn check_owned(&self, var: &Var<F>) -> Result<()> {
        match var.slot {
            Some(slot) if slot.tape != self.id => Err(Error::Tape(
                "a value recorded on another tape was used on this one".into(),
            )),
            _ => Ok(()),
        }
    }
}

/// The gradients of one backward pass, looked up by the `Var` they belong to.
#[derive(Debug)]
pub struct Gradients<F: Float> {
    tape: u64,
    grads: Vec<Option<ArrayD<F>>>,
}

impl<F: Float> Drop for Gradients<F> {
    fn drop(&mut self) {
        self.grads.drain(..).flatten().for_each(buffers::give_array);
    }
}

impl<F: Float> Gradients<F> {
    /// The gradient of `var`, if backward reached it and it asked for one.
    pub fn get(&self, var: &Var<F>) -> Option<&ArrayD<F>> {
        let slot = var.slot?;
        if slot.tape != self.tape {
            return None;
        }
        self.grads.get(slot.index)?.as_ref()
    }

    /// Takes the gradient of `var` out, without copying it.
    pub fn take(&mut self, var: &Var<F>) -> Option<ArrayD<F>> {
        let slot = var.slot?;
        if slot.tape != self.tape {
            return None;
        }
        self.grads.get_mut(slot.index)?.take()
    }
}
