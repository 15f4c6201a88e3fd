//! The gradient check of a whole network (`tapir gradcheck`): the loss against every
//! parameter and input, in `f64`, against central finite differences.

use std::sync::Arc;

use ndarray::ArrayD;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use tapir_core::gradcheck::{self, CheckInput, Config, Report};
use tapir_core::{Error, Float, Result, Var};

use crate::exec::Network;
use crate::graph::{Graph, InputKind, ValueId};

/// What a network gradient check ran on, and its verdict.
#[derive(Debug, Clone)]
pub struct NetworkCheck {
    /// The batch size of the drawn inputs.
    pub batch: usize,
    /// One tensor report per parameter, then per differentiable input.
    pub report: Report,
}

impl Graph {
    /// Checks the gradient of the loss against every parameter and input at random
    /// parameters (the graph's initialisation from `config.seed`) and random inputs: data
    /// uniform in [0, 1) like pixels, labels uniform over the classes.
    pub fn gradcheck(self: &Arc<Self>, batch: usize, config: &Config) -> Result<NetworkCheck> {
        let Some(loss) = self.loss else {
            return Err(Error::Input(format!(
                "{}: the network has no loss to check",
                self.name
            )));
        };
        if batch == 0 {
            return Err(Error::Input(
                "gradcheck: the batch must hold at least one sample".into(),
            ));
        }
        let network = Network::<f64>::new(Arc::clone(self))?;
        let params = network.init_params(config.seed);
        let mut rng = ChaCha8Rng::seed_from_u64(config.seed.wrapping_add(1));
        let mut inputs: Vec<CheckInput> = params
            .tensors
            .iter()
            .map(|(name, value)| CheckInput {
                name: name.clone(),
                value: value.clone(),
                differentiable: true,
            })
            .collect();
        for (input, value) in self.inputs.iter().zip(self.random_inputs(batch, &mut rng)) {
            let differentiable = input.kind != InputKind::Labels;
            inputs.push(CheckInput {
                name: input.name.clone(),
                value,
                differentiable,
            });
        }
        let param_count = params.tensors.len();
        let report = gradcheck::check(
            |tape, vars: &[Var<f64>]| {
                let forward = network.forward_vars(
                    tape,
                    vars[..param_count].to_vec(),
                    vars[param_count..].to_vec(),
                    None,
                )?;
                forward
                    .value(ValueId::Node(loss))
                    .cloned()
                    .ok_or_else(|| Error::Tape("BUG: the loss did not run".into()))
            },
            &inputs,
            config,
        )?;
        Ok(NetworkCheck { batch, report })
    }

    /// A random batch for every input, in [`Graph::inputs`] order: data uniform in [0, 1)
    /// like pixels, labels uniform over the loss's classes. Drawn in `f64` and rounded, so
    /// both precisions see the same numbers.
    pub(crate) fn random_inputs<F: Float>(
        &self,
        batch: usize,
        rng: &mut impl Rng,
    ) -> Vec<ArrayD<F>> {
        let classes = self
            .loss
            .and_then(|loss| self.nodes[loss].inputs.first())
            .map_or(1, |&logits| {
                self.value_shape(logits).last().copied().unwrap_or(1)
            });
        self.inputs
            .iter()
            .map(|input| {
                let shape: Vec<usize> = std::iter::once(batch)
                    .chain(input.shape.iter().copied())
                    .collect();
                match input.kind {
                    InputKind::Labels => ArrayD::from_shape_simple_fn(shape, || {
                        F::from_usize(rng.random_range(0..classes.max(1)))
                    }),
                    InputKind::Data | InputKind::Target => {
                        ArrayD::from_shape_simple_fn(shape, || F::from_f64(rng.random::<f64>()))
                    }
                }
            })
            .collect()
    }
}
