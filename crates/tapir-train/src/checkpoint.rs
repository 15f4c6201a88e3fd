//! Checkpoints: everything a run needs to continue bit for bit, in one safetensors file.
//!
//! Tensors: `param.<name>` (the parameters), `optimizer.first.<name>` and, for Adam,
//! `optimizer.second.<name>` (the optimizer's buffers), all `f32` as trained. The header's
//! metadata holds the epoch reached, the optimizer's rule and step count, the seed, the
//! settings the run was started with (a resumed run must use the same) and the history of
//! metrics so far. Written to a temporary file and renamed, so a crash never leaves half a
//! checkpoint.

use std::collections::BTreeMap;
use std::path::Path;

use ndarray::ArrayD;
use tapir_graph::{Dtype, Graph, Params, TensorFile, save_tensors_with_metadata};

use crate::error::{Result, TrainError};
use crate::optim::{Optimizer, OptimizerKind};
use crate::train::EpochRecord;

/// The format written in every checkpoint's metadata, so a future change can be told apart.
const FORMAT: &str = "tapir-checkpoint-1";

/// A run's state after an epoch.
#[derive(Debug, Clone, PartialEq)]
pub struct Checkpoint {
    /// Epochs completed.
    pub epoch: usize,
    /// The run's seed.
    pub seed: u64,
    /// The settings that must not change on resume, as `name -> value` text.
    pub settings: BTreeMap<String, String>,
    /// The parameters.
    pub params: Params<f32>,
    /// The optimizer with its buffers and step count.
    pub optimizer: Optimizer,
    /// Every epoch's metrics so far.
    pub history: Vec<EpochRecord>,
}

impl Checkpoint {
    /// Writes the checkpoint to `path`.
    pub fn save(&self, path: &Path) -> Result<()> {
        let names: Vec<&str> = self
            .params
            .tensors
            .iter()
            .map(|(n, _)| n.as_str())
            .collect();
        let mut tensors: Vec<(String, &ArrayD<f32>)> = Vec::new();
        for (name, value) in &self.params.tensors {
            tensors.push((format!("param.{name}"), value));
        }
        for (name, value) in names.iter().zip(&self.optimizer.first) {
            tensors.push((format!("optimizer.first.{name}"), value));
        }
        for (name, value) in names.iter().zip(&self.optimizer.second) {
            tensors.push((format!("optimizer.second.{name}"), value));
        }
        let mut metadata = BTreeMap::from([
            ("format".to_string(), FORMAT.to_string()),
            ("epoch".to_string(), self.epoch.to_string()),
            ("seed".to_string(), self.seed.to_string()),
            ("optimizer".to_string(), to_json(&self.optimizer.kind)?),
            (
                "optimizer_step".to_string(),
                self.optimizer.step.to_string(),
            ),
            ("history".to_string(), to_json(&self.history)?),
        ]);
        for (key, value) in &self.settings {
            metadata.insert(format!("setting.{key}"), value.clone());
        }
        save_tensors_with_metadata(
            path,
            tensors.iter().map(|(n, t)| (n.as_str(), *t)),
            Dtype::F32,
            &metadata,
        )
        .map_err(|e| TrainError::file(path, e.to_string()))
    }

    /// Reads the checkpoint at `path` for `graph`'s parameters.
    pub fn load(path: &Path, graph: &Graph) -> Result<Self> {
        let file = TensorFile::open(path)?;
        let bad = |what: String| {
            TrainError::file(
                path,
                format!(
                    "{what}; it is not a checkpoint of this run (delete it, or train without --resume)"
                ),
            )
        };
        let meta = file.metadata();
        let field = |key: &str| {
            meta.get(key)
                .ok_or_else(|| bad(format!("the checkpoint has no `{key}`")))
        };
        if field("format")? != FORMAT {
            return Err(bad(format!(
                "unknown checkpoint format {:?}",
                meta.get("format")
            )));
        }
        let number = |key: &str| -> Result<u64> {
            field(key)?
                .parse()
                .map_err(|_| bad(format!("`{key}` is not a number")))
        };
        let kind: OptimizerKind = serde_json::from_str(field("optimizer")?)
            .map_err(|e| bad(format!("`optimizer`: {e}")))?;
        let history: Vec<EpochRecord> =
            serde_json::from_str(field("history")?).map_err(|e| bad(format!("`history`: {e}")))?;
        let tensor = |name: String| -> Result<ArrayD<f32>> {
            file.tensor::<f32>(&name)
                .map_err(|e| TrainError::file(path, e.to_string()))
        };
        let mut params = Params {
            tensors: Vec::new(),
        };
        let (mut first, mut second) = (Vec::new(), Vec::new());
        for param in graph.params() {
            let value = tensor(format!("param.{}", param.name))?;
            if value.shape() != param.spec.shape.as_slice() {
                return Err(bad(format!(
                    "`param.{}` has shape {:?}, the network needs {:?}",
                    param.name,
                    value.shape(),
                    param.spec.shape
                )));
            }
            params.tensors.push((param.name.clone(), value));
            first.push(tensor(format!("optimizer.first.{}", param.name))?);
            if matches!(kind, OptimizerKind::Adam { .. }) {
                second.push(tensor(format!("optimizer.second.{}", param.name))?);
            }
        }
        let settings = meta
            .iter()
            .filter_map(|(k, v)| Some((k.strip_prefix("setting.")?.to_string(), v.clone())))
            .collect();
        Ok(Checkpoint {
            epoch: usize::try_from(number("epoch")?)
                .map_err(|_| bad("`epoch` is too large".into()))?,
            seed: number("seed")?,
            settings,
            params,
            optimizer: Optimizer {
                kind,
                step: number("optimizer_step")?,
                first,
                second,
            },
            history,
        })
    }
}

/// JSON text of a structured metadata value.
fn to_json(value: &impl serde::Serialize) -> Result<String> {
    serde_json::to_string(value)
        .map_err(|e| TrainError::file("checkpoint", format!("BUG: cannot encode: {e}")))
}
