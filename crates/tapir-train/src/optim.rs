//! Optimizers: SGD with momentum and weight decay, and Adam, with PyTorch's update rules so
//! that runs compare one to one.

use ndarray::{ArrayD, Zip};
use serde::{Deserialize, Serialize};
use tapir_core::{Error, Result};
use tapir_graph::Params;

/// Which optimizer, with its hyperparameters.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub enum OptimizerKind {
    /// `torch.optim.SGD`: `g += wd p; b = momentum b + g` (`b = g` on the first step); `p -= lr b`.
    Sgd {
        lr: f64,
        momentum: f64,
        weight_decay: f64,
    },
    /// `torch.optim.Adam` (L2 weight decay added to the gradient):
    /// `m = b1 m + (1 - b1) g; v = b2 v + (1 - b2) g^2; p -= lr (m / (1 - b1^t)) / (sqrt(v / (1 - b2^t)) + eps)`.
    Adam {
        lr: f64,
        beta1: f64,
        beta2: f64,
        eps: f64,
        weight_decay: f64,
    },
}

impl OptimizerKind {
    /// SGD with PyTorch's defaults but for the learning rate and momentum given.
    pub fn sgd(lr: f64, momentum: f64) -> Self {
        OptimizerKind::Sgd {
            lr,
            momentum,
            weight_decay: 0.0,
        }
    }

    /// Adam with PyTorch's defaults (betas 0.9 and 0.999, eps 1e-8) and learning rate `lr`.
    pub fn adam(lr: f64) -> Self {
        OptimizerKind::Adam {
            lr,
            beta1: 0.9,
            beta2: 0.999,
            eps: 1e-8,
            weight_decay: 0.0,
        }
    }

    /// Checks every hyperparameter's range; the message says which and why.
    pub fn validate(&self) -> Result<()> {
        let bad = |message: String| Err(Error::hyperparameter("optimizer", message));
        let (lr, weight_decay) = match *self {
            OptimizerKind::Sgd {
                lr,
                momentum,
                weight_decay,
            } => {
                if !(0.0..1.0).contains(&momentum) {
                    return bad(format!("momentum must be in [0, 1), got {momentum}"));
                }
                (lr, weight_decay)
            }
            OptimizerKind::Adam {
                lr,
                beta1,
                beta2,
                eps,
                weight_decay,
            } => {
                for (name, beta) in [("beta1", beta1), ("beta2", beta2)] {
                    if !(0.0..1.0).contains(&beta) {
                        return bad(format!("{name} must be in [0, 1), got {beta}"));
                    }
                }
                if !(eps > 0.0 && eps.is_finite()) {
                    return bad(format!("eps must be positive, got {eps}"));
                }
                (lr, weight_decay)
            }
        };
        if !(lr > 0.0 && lr.is_finite()) {
            return bad(format!(
                "the learning rate must be positive and finite, got {lr}"
            ));
        }
        if !(weight_decay >= 0.0 && weight_decay.is_finite()) {
            return bad(format!(
                "weight decay must be zero or positive, got {weight_decay}"
            ));
        }
        Ok(())
    }
}

/// An optimizer with its state: one or two buffers per parameter and the step count.
#[derive(Debug, Clone, PartialEq)]
pub struct Optimizer {
    /// The rule and its hyperparameters.
    pub kind: OptimizerKind,
    /// Steps taken so far.
    pub step: u64,
    /// Per parameter, in [`Params`] order: SGD's momentum buffer, or Adam's first moment.
    pub first: Vec<ArrayD<f32>>,
    /// Per parameter: Adam's second moment (empty for SGD).
    pub second: Vec<ArrayD<f32>>,
}

impl Optimizer {
    /// A fresh optimizer for `params` (buffers zero).
    pub fn new(kind: OptimizerKind, params: &Params<f32>) -> Result<Self> {
        kind.validate()?;
        let zeros = || {
            params
                .tensors
                .iter()
                .map(|(_, p)| ArrayD::zeros(p.raw_dim()))
                .collect::<Vec<_>>()
        };
        let second = if matches!(kind, OptimizerKind::Adam { .. }) {
            zeros()
        } else {
            Vec::new()
        };
        Ok(Optimizer {
            kind,
            step: 0,
            first: zeros(),
            second,
        })
    }

    /// Applies one update to `params` from `grads` (same names, same order).
    pub fn update(&mut self, params: &mut Params<f32>, grads: &Params<f32>) -> Result<()> {
        let buffers = if matches!(self.kind, OptimizerKind::Adam { .. }) {
            params.tensors.len()
        } else {
            0
        };
        if grads.tensors.len() != params.tensors.len()
            || self.first.len() != params.tensors.len()
            || self.second.len() != buffers
        {
            return Err(Error::Tape(format!(
                "optimizer: {} parameters, {} gradients, state for {}",
                params.tensors.len(),
                grads.tensors.len(),
                self.first.len()
            )));
        }
        let step = self
            .step
            .checked_add(1)
            .ok_or_else(|| Error::Tape("optimizer: the step count overflows".into()))?;
        for (index, (_, p)) in params.tensors.iter().enumerate() {
            let second = self.second.get(index).map_or(p.shape(), |b| b.shape());
            if self.first[index].shape() != p.shape() || second != p.shape() {
                return Err(Error::Tape(format!(
                    "optimizer: the state of parameter {index} does not have its shape {:?}",
                    p.shape()
                )));
            }
        }
        self.step = step;
        for (index, ((name, p), (grad_name, g))) in
            params.tensors.iter_mut().zip(&grads.tensors).enumerate()
        {
            if name != grad_name || p.shape() != g.shape() {
                return Err(Error::Tape(format!(
                    "optimizer: gradient \"{grad_name}\" {:?} does not match parameter \"{name}\" {:?}",
                    g.shape(),
                    p.shape()
                )));
            }
            match self.kind {
                OptimizerKind::Sgd {
                    lr,
                    momentum,
                    weight_decay,
                } => {
                    let (lr, momentum, wd) = (lr as f32, momentum as f32, weight_decay as f32);
                    let buffer = &mut self.first[index];
                    Zip::from(p.view_mut())
                        .and(g)
                        .and(buffer)
                        .for_each(|p, &g, b| {
                            let g = g + wd * *p;
                            *b = if step == 1 { g } else { momentum * *b + g };
                            *p -= lr * *b;
                        });
                }
                OptimizerKind::Adam {
                    lr,
                    beta1,
                    beta2,
                    eps,
                    weight_decay,
                } => {
                    let correction1 = 1.0 - beta1.powi(step.min(i32::MAX as u64) as i32);
                    let correction2 = 1.0 - beta2.powi(step.min(i32::MAX as u64) as i32);
                    let (b1, b2, wd) = (beta1 as f32, beta2 as f32, weight_decay as f32);
                    let (step_size, c2, eps) =
                        ((lr / correction1) as f32, correction2 as f32, eps as f32);
                    let (m, v) = (&mut self.first[index], &mut self.second[index]);
                    Zip::from(p.view_mut())
                        .and(g)
                        .and(m)
                        .and(v)
                        .for_each(|p, &g, m, v| {
                            let g = g + wd * *p;
                            *m = b1 * *m + (1.0 - b1) * g;
                            *v = b2 * *v + (1.0 - b2) * g * g;
                            *p -= step_size * *m / ((*v / c2).sqrt() + eps);
                        });
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::arr1;

    fn params(values: &[f32]) -> Params<f32> {
        Params {
            tensors: vec![("w".to_string(), arr1(values).into_dyn())],
        }
    }

    #[test]
    fn sgd_with_momentum_by_hand() {
        // lr 0.1, momentum 0.9, g = 1 twice: b1 = 1, p = 1 - 0.1 = 0.9; b2 = 0.9 + 1 = 1.9, p = 0.9 - 0.19 = 0.71.
        let mut p = params(&[1.0]);
        let g = params(&[1.0]);
        let mut sgd = Optimizer::new(OptimizerKind::sgd(0.1, 0.9), &p).unwrap();
        sgd.update(&mut p, &g).unwrap();
        assert_eq!(p.tensors[0].1[[0]], 0.9);
        sgd.update(&mut p, &g).unwrap();
        assert!((p.tensors[0].1[[0]] - 0.71).abs() < 1e-6);
    }

    #[test]
    fn weight_decay_adds_to_the_gradient() {
        // g = 0, wd 0.5, p = 2: effective g = 1, p = 2 - 0.1 = 1.9.
        let mut p = params(&[2.0]);
        let kind = OptimizerKind::Sgd {
            lr: 0.1,
            momentum: 0.0,
            weight_decay: 0.5,
        };
        Optimizer::new(kind, &p)
            .unwrap()
            .update(&mut p, &params(&[0.0]))
            .unwrap();
        assert!((p.tensors[0].1[[0]] - 1.9).abs() < 1e-6);
    }

    #[test]
    fn adam_first_step_moves_by_the_learning_rate() {
        // After bias correction m/(1-b1) = g and v/(1-b2) = g^2, so the first step is lr * g / (|g| + eps).
        let mut p = params(&[1.0, -1.0]);
        Optimizer::new(OptimizerKind::adam(0.01), &p)
            .unwrap()
            .update(&mut p, &params(&[3.0, -0.5]))
            .unwrap();
        assert!((p.tensors[0].1[[0]] - 0.99).abs() < 1e-6);
        assert!((p.tensors[0].1[[1]] + 0.99).abs() < 1e-6);
    }

    #[test]
    fn bad_hyperparameters_are_errors() {
        let p = params(&[1.0]);
        let err = Optimizer::new(OptimizerKind::sgd(-1.0, 0.9), &p)
            .unwrap_err()
            .to_string();
        assert_eq!(
            err,
            "optimizer: invalid hyperparameter: the learning rate must be positive and finite, got -1"
        );
        let err = Optimizer::new(OptimizerKind::sgd(0.1, 1.0), &p)
            .unwrap_err()
            .to_string();
        assert_eq!(
            err,
            "optimizer: invalid hyperparameter: momentum must be in [0, 1), got 1"
        );
    }
}
