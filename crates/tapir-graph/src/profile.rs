//! Where a training step spends its time (`tapir profile`): a network's forward and backward
//! timed node by node on random data, with each node's FLOPs and GFLOP/s, the step's
//! images/s and the process's peak memory.
//!
//! A step is what training does: forward on a recording tape, backward from the loss, and
//! `p -= learning_rate * grad` for every parameter, so the parameters change every step.
//! Untimed warm-up steps come first (caches, the allocator, the thread pool); then every
//! figure is the median over the timed steps, each taken alone.

use std::fmt::Write;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use ndarray::ArrayD;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use serde::Serialize;
use tapir_core::{Error, Result, Schedule, Tape};

use crate::exec::{Fusion, Network, NodeTiming, Params};
use crate::graph::Graph;
use crate::load::camel_case;
use crate::summary::group_digits;

/// How [`Graph::profile`] runs.
#[derive(Debug, Clone, PartialEq)]
pub struct ProfileConfig {
    /// Samples per step.
    pub batch: usize,
    /// Threads of the rayon pool the steps run in; `None` runs on rayon's global pool.
    pub threads: Option<usize>,
    /// How the independent nodes of a wave run (side by side unless told otherwise).
    pub schedule: Schedule,
    /// Untimed steps first: at least this many ...
    pub warmup_steps: usize,
    /// ... and for at least this long.
    pub warmup_time: Duration,
    /// Timed steps: at least this many ...
    pub steps: usize,
    /// ... and for at least this long.
    pub time: Duration,
    /// Seed of the parameters (the graph's `init`) and of the data.
    pub seed: u64,
    /// The SGD learning rate of the update that ends each step.
    pub learning_rate: f32,
}

impl Default for ProfileConfig {
    /// Batch 64 on rayon's pool, a wave's nodes side by side; 5 warm-up steps over at least
    /// 0.5 s, then at least 20 timed steps over at least 2 s; seed 0, learning rate 0.01.
    fn default() -> Self {
        ProfileConfig {
            batch: 64,
            threads: None,
            schedule: Schedule::SideBySide,
            warmup_steps: 5,
            warmup_time: Duration::from_millis(500),
            steps: 20,
            time: Duration::from_secs(2),
            seed: 0,
            learning_rate: 0.01,
        }
    }
}

/// A profiled training step; times in seconds, medians over the timed steps.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Profile {
    /// The graph's name (its file).
    pub graph: String,
    /// Samples per step.
    pub batch: usize,
    /// Threads of the pool the steps ran in.
    pub threads: usize,
    /// Whether the independent nodes of a wave ran side by side (or one at a time).
    pub side_by_side: bool,
    /// Untimed steps run first.
    pub warmup_steps: usize,
    /// Timed steps.
    pub steps: usize,
    /// A whole step: forward, backward, the update, freeing the tape.
    pub step_s: f64,
    /// The fastest step.
    pub step_min_s: f64,
    /// The forward pass, wall clock.
    pub forward_s: f64,
    /// The backward pass, wall clock.
    pub backward_s: f64,
    /// The rest of the step: parameters onto the tape, the update, freeing the tape.
    pub rest_s: f64,
    /// Samples per second of the median step.
    pub images_per_s: f64,
    /// FLOPs of a step: the forward's, and twice them for the backward.
    pub flops_per_step: u64,
    /// `flops_per_step` over the median step.
    pub gflop_per_s: f64,
    /// The process's peak resident memory (VmHWM), where the system reports it (Linux).
    pub peak_memory_bytes: Option<u64>,
    /// The inputs and every node's output as the network defines them: what a step keeps
    /// without fusion (a fused node's output is counted, though it is never made).
    pub activation_bytes: u64,
    /// The parameters.
    pub parameter_bytes: u64,
    /// One entry per node, in node order.
    pub nodes: Vec<NodeProfile>,
}

/// One node's share of a training step.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct NodeProfile {
    /// The node's name.
    pub name: String,
    /// Its op, as network files write it (`Conv2d`).
    pub op: String,
    /// Forward FLOPs for the whole batch.
    pub flops: u64,
    /// Its forward.
    pub forward_s: f64,
    /// Its backward (0 where no gradient flows through it).
    pub backward_s: f64,
    /// `flops` over `forward_s` (with the FLOPs of the nodes that ran inside this one);
    /// `None` without FLOPs or time.
    pub forward_gflop_per_s: Option<f64>,
    /// Twice the FLOPs of `forward_gflop_per_s` over `backward_s`; `None` without FLOPs or
    /// time.
    pub backward_gflop_per_s: Option<f64>,
    /// Forward and backward as a fraction of the step: the median over the timed steps of
    /// each step's fraction. Nodes that ran side by side overlap, so the shares can add up
    /// to more than 1.
    pub share: f64,
    /// The node that ran this one inside its own op (see [`Network`]): this node's times
    /// are 0, and counted in that node's.
    pub fused_into: Option<String>,
}

/// The times of one step.
struct StepTimes {
    step: Duration,
    forward: Duration,
    backward: Duration,
    node_forward: Vec<Duration>,
    node_backward: Vec<Duration>,
}

impl Graph {
    /// Profiles a training step (forward, backward, SGD update) of this network in `f32`,
    /// node by node, on random data: images uniform in [0, 1), labels uniform over the
    /// classes, parameters as the graph's `init` says.
    pub fn profile(self: &Arc<Self>, config: &ProfileConfig) -> Result<Profile> {
        match config.threads {
            Some(threads) => rayon::ThreadPoolBuilder::new()
                .num_threads(threads)
                .build()
                .map_err(|e| Error::Tape(format!("profile: cannot start {threads} threads: {e}")))?
                .install(|| self.profile_here(config)),
            None => tapir_core::on_pool(|| self.profile_here(config)),
        }
    }

    /// [`Graph::profile`] on the current rayon pool.
    fn profile_here(self: &Arc<Self>, config: &ProfileConfig) -> Result<Profile> {
        if self.loss.is_none() {
            return Err(Error::Tape(format!(
                "{}: the network has no loss, so no training step to profile",
                self.name
            )));
        }
        if config.batch == 0 {
            return Err(Error::Tape(
                "profile: the batch must hold at least one sample".into(),
            ));
        }
        let network = Network::<f32>::new(Arc::clone(self))?;
        let mut params = network.init_params(config.seed);
        let mut rng = ChaCha8Rng::seed_from_u64(config.seed.wrapping_add(1));
        let inputs: Vec<ArrayD<f32>> = self.random_inputs(config.batch, &mut rng);

        let warmup = Instant::now();
        let mut warmup_steps = 0;
        while warmup_steps < config.warmup_steps || warmup.elapsed() < config.warmup_time {
            self.timed_step(&network, &mut params, inputs.clone(), config)?;
            warmup_steps += 1;
        }
        let timed = Instant::now();
        let mut steps: Vec<StepTimes> = Vec::new();
        while steps.len() < config.steps.max(1) || timed.elapsed() < config.time {
            steps.push(self.timed_step(&network, &mut params, inputs.clone(), config)?);
        }
        Ok(self.summarise(config, network.fusion(), warmup_steps, &steps))
    }

    /// One training step, timed node by node.
    fn timed_step(
        &self,
        network: &Network<f32>,
        params: &mut Params<f32>,
        inputs: Vec<ArrayD<f32>>,
        config: &ProfileConfig,
    ) -> Result<StepTimes> {
        let trace: Mutex<Vec<NodeTiming>> = Mutex::new(Vec::with_capacity(self.nodes.len()));
        let mut node_backward = vec![Duration::ZERO; self.nodes.len()];
        let began = Instant::now();
        let mut tape = Tape::new().with_schedule(config.schedule);
        let forward = network.forward(&mut tape, params, inputs, false, Some(&trace))?;
        let forward_time = began.elapsed();
        let loss = self
            .loss
            .and_then(|loss| forward.nodes[loss].as_ref())
            .ok_or_else(|| Error::Tape("BUG: the loss did not run".into()))?;
        let mut node_of_entry = vec![None; tape.len()];
        for (n, var) in forward.nodes.iter().enumerate() {
            if let Some(entry) = var.as_ref().and_then(|var| tape.entry_index(var)) {
                node_of_entry[entry] = Some(n);
            }
        }
        let backward_began = Instant::now();
        let mut grads = tape.backward_from_timed(
            loss,
            ArrayD::from_elem(loss.shape(), 1.0),
            &mut |entry, time| {
                if let Some(&Some(n)) = node_of_entry.get(entry) {
                    node_backward[n] += time;
                }
            },
        )?;
        let backward_time = backward_began.elapsed();
        for ((_, value), var) in params.tensors.iter_mut().zip(&forward.params) {
            if let Some(grad) = grads.take(var) {
                value.scaled_add(-config.learning_rate, &grad);
            }
        }
        // Freeing the tape and the activations is part of every step.
        drop((grads, forward, tape));
        let step = began.elapsed();
        let mut node_forward = vec![Duration::ZERO; self.nodes.len()];
        let trace = trace
            .into_inner()
            .map_err(|_| Error::Tape("BUG: a forward thread panicked".into()))?;
        for timing in trace {
            node_forward[timing.node] +=
                Duration::from_secs_f64((timing.end - timing.start).max(0.0));
        }
        Ok(StepTimes {
            step,
            forward: forward_time,
            backward: backward_time,
            node_forward,
            node_backward,
        })
    }

    /// The medians of the timed steps.
    fn summarise(
        &self,
        config: &ProfileConfig,
        fusion: &[Fusion],
        warmup_steps: usize,
        steps: &[StepTimes],
    ) -> Profile {
        let median_of =
            |time: &dyn Fn(&StepTimes) -> Duration| median(steps.iter().map(time).collect());
        let median_share = |n: usize| {
            // Per step, a node's time lies inside the step's (on a chain, so a share is at
            // most 1; the sum of the medians of its parts and the step's could pass 1 for a
            // node that takes almost all of it).
            let shares = steps.iter().map(|s| {
                let node = s.node_forward[n] + s.node_backward[n];
                node.as_secs_f64() / s.step.as_secs_f64().max(f64::MIN_POSITIVE)
            });
            median_of_values(shares.collect())
        };
        let step_s = median_of(&|s| s.step);
        let batch = config.batch as u64;
        // A fused op does the work of every node that runs inside it: its rates count it all.
        let mut chain_flops: Vec<u64> = self.nodes.iter().map(|node| node.flops).collect();
        for (n, how) in fusion.iter().enumerate() {
            if let Fusion::Into(b) = *how {
                chain_flops[b] = chain_flops[b].saturating_add(self.nodes[n].flops);
            }
        }
        let nodes = self
            .nodes
            .iter()
            .enumerate()
            .map(|(n, node)| {
                let flops = node.flops * batch;
                let chain = chain_flops[n] * batch;
                let forward_s = median_of(&|s| s.node_forward[n]);
                let backward_s = median_of(&|s| s.node_backward[n]);
                NodeProfile {
                    name: node.name.clone(),
                    op: camel_case(node.op),
                    flops,
                    forward_s,
                    backward_s,
                    forward_gflop_per_s: gflop_per_s(chain, forward_s),
                    backward_gflop_per_s: gflop_per_s(2 * chain, backward_s),
                    share: median_share(n),
                    fused_into: match fusion[n] {
                        Fusion::Into(b) => Some(self.nodes[b].name.clone()),
                        _ => None,
                    },
                }
            })
            .collect();
        let flops_per_step = 3 * self.flops() * batch;
        let element = size_of::<f32>() as u64;
        let per_sample: usize = self
            .inputs
            .iter()
            .map(|i| i.shape.iter().product::<usize>())
            .chain(self.nodes.iter().map(|n| n.shape.iter().product()))
            .sum();
        Profile {
            graph: self.name.clone(),
            batch: config.batch,
            threads: rayon::current_num_threads(),
            side_by_side: config.schedule == Schedule::SideBySide,
            warmup_steps,
            steps: steps.len(),
            step_s,
            step_min_s: steps
                .iter()
                .map(|s| s.step.as_secs_f64())
                .fold(f64::INFINITY, f64::min),
            forward_s: median_of(&|s| s.forward),
            backward_s: median_of(&|s| s.backward),
            rest_s: median_of(&|s| s.step.saturating_sub(s.forward + s.backward)),
            images_per_s: config.batch as f64 / step_s,
            flops_per_step,
            gflop_per_s: flops_per_step as f64 / step_s / 1e9,
            peak_memory_bytes: peak_memory_bytes(),
            activation_bytes: per_sample as u64 * batch * element,
            parameter_bytes: self.param_count() as u64 * element,
            nodes,
        }
    }
}

/// The median of `times`, in seconds (the mean of the middle two for an even count).
fn median(times: Vec<Duration>) -> f64 {
    median_of_values(times.iter().map(Duration::as_secs_f64).collect())
}

/// The median of `values` (the mean of the middle two for an even count), 0 for none.
fn median_of_values(mut values: Vec<f64>) -> f64 {
    values.sort_unstable_by(f64::total_cmp);
    match values.len() {
        0 => 0.0,
        n if n % 2 == 1 => values[n / 2],
        n => (values[n / 2 - 1] + values[n / 2]) / 2.0,
    }
}

fn gflop_per_s(flops: u64, seconds: f64) -> Option<f64> {
    (flops > 0 && seconds > 0.0).then(|| flops as f64 / seconds / 1e9)
}

/// The process's peak resident memory so far, from `/proc/self/status`.
#[cfg(target_os = "linux")]
fn peak_memory_bytes() -> Option<u64> {
    vm_hwm(&std::fs::read_to_string("/proc/self/status").ok()?)
}

/// Peak resident memory is read from Linux's `/proc` only.
#[cfg(not(target_os = "linux"))]
fn peak_memory_bytes() -> Option<u64> {
    None
}

/// The `VmHWM:  1234 kB` line of a `/proc/PID/status` text, in bytes.
#[cfg_attr(not(target_os = "linux"), allow(dead_code))]
fn vm_hwm(status: &str) -> Option<u64> {
    let line = status.lines().find_map(|l| l.strip_prefix("VmHWM:"))?;
    let kib: u64 = line.trim().strip_suffix("kB")?.trim().parse().ok()?;
    Some(kib * 1024)
}

impl Profile {
    /// The per-node table and the step's totals, as `tapir profile` prints them.
    pub fn table(&self) -> String {
        let ms = |s: f64| format!("{:.3}", s * 1e3);
        let rate = |r: Option<f64>| r.map_or_else(|| "-".to_string(), |r| format!("{r:.1}"));
        let mut rows: Vec<[String; 8]> = vec![[
            "node".into(),
            "op".into(),
            "FLOPs".into(),
            "forward ms".into(),
            "GFLOP/s".into(),
            "backward ms".into(),
            "GFLOP/s".into(),
            "share".into(),
        ]];
        for node in &self.nodes {
            if let Some(into) = &node.fused_into {
                let mut row: [String; 8] = Default::default();
                row[0] = node.name.clone();
                row[1] = node.op.clone();
                row[2] = group_digits(node.flops);
                row[3] = format!("runs in {into}");
                rows.push(row);
                continue;
            }
            rows.push([
                node.name.clone(),
                node.op.clone(),
                group_digits(node.flops),
                ms(node.forward_s),
                rate(node.forward_gflop_per_s),
                ms(node.backward_s),
                rate(node.backward_gflop_per_s),
                format!("{:.1}%", node.share * 100.0),
            ]);
        }
        let mut out = String::new();
        let _ = writeln!(
            out,
            "{}: a training step (forward, backward, SGD update) in f32, batch {}, {}{}",
            self.graph,
            self.batch,
            plural(self.threads, "thread"),
            if self.side_by_side {
                ""
            } else {
                ", the nodes of a wave one at a time"
            }
        );
        let _ = writeln!(
            out,
            "median of {} after {}; backward FLOPs count twice the forward's",
            plural(self.steps, "timed step"),
            plural(self.warmup_steps, "warm-up step")
        );
        out.push('\n');
        // Everything from the FLOPs on (column 2) is a number.
        out.push_str(&crate::table::render(&rows, 2));
        let _ = writeln!(
            out,
            "step {} ms (fastest {} ms): forward {} ms, backward {} ms, the rest {} ms",
            ms(self.step_s),
            ms(self.step_min_s),
            ms(self.forward_s),
            ms(self.backward_s),
            ms(self.rest_s)
        );
        let _ = writeln!(
            out,
            "  (the rest: parameters onto the tape, the update, freeing the tape)"
        );
        let _ = writeln!(
            out,
            "{} images/s, {:.1} GFLOP/s",
            group_digits(self.images_per_s.round() as u64),
            self.gflop_per_s
        );
        let kept = self.activation_bytes + self.parameter_bytes;
        let _ = match self.peak_memory_bytes {
            Some(peak) => writeln!(
                out,
                "peak memory (VmHWM) {} MiB, {:.1}x the {} MiB of the network's activations and parameters",
                mib(peak),
                peak as f64 / kept as f64,
                mib(kept)
            ),
            None => writeln!(
                out,
                "peak memory n/a (read from Linux's /proc only); the network's activations and parameters: {} MiB",
                mib(kept)
            ),
        };
        out
    }
}

fn mib(bytes: u64) -> String {
    format!("{:.1}", bytes as f64 / (1024.0 * 1024.0))
}

/// `1 thread`, `2 threads`.
fn plural(n: usize, thing: &str) -> String {
    if n == 1 {
        format!("1 {thing}")
    } else {
        format!("{n} {thing}s")
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    #[test]
    fn the_median_of_an_even_count_is_the_mean_of_the_middle_two() {
        let ms = Duration::from_millis;
        assert_eq!(super::median(vec![ms(3), ms(1), ms(2)]), 0.002);
        assert_eq!(super::median(vec![ms(4), ms(1), ms(2), ms(3)]), 0.0025);
        assert_eq!(super::median(Vec::new()), 0.0);
        assert_eq!(super::median_of_values(vec![0.5, 0.25, 1.0]), 0.5);
        assert_eq!(super::median_of_values(vec![0.5, 0.25, 1.0, 0.75]), 0.625);
        assert_eq!(super::median_of_values(Vec::new()), 0.0);
    }

    #[test]
    fn peak_memory_is_read_from_the_vm_hwm_line() {
        let status = "Name:\ttapir\nVmPeak:\t  20000 kB\nVmHWM:\t    1234 kB\nVmRSS:\t 1000 kB\n";
        assert_eq!(super::vm_hwm(status), Some(1234 * 1024));
        assert_eq!(super::vm_hwm("Name:\ttapir\n"), None);
    }
}
