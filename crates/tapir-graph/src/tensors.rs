//! Tensors as files: safetensors, the format PyTorch and Hugging Face share, is how tapir
//! exchanges parameters, inputs, outputs and gradients.
//!
//! Names and layouts are PyTorch's (`conv.weight [16, 1, 5, 5]`, `logits.weight [2, 16]`), so
//! a `state_dict` written with `safetensors.torch.save_file` loads as it is. Values are
//! stored as `F32` or `F64` and read into whichever precision the caller asks for; class
//! labels may also be stored as integers, as PyTorch keeps them (`int64`). Any other element
//! type is an error naming the tensor.
//!
//! Loading parameters or inputs for a [`Graph`] checks the whole file first and reports every
//! problem at once, in one [`TensorError::Mismatch`]: a file saved for another network shows
//! all its differences, not the first.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::path::{Path, PathBuf};

use ndarray::ArrayD;
use safetensors::{SafeTensors, View};
use tapir_core::Float;

use crate::exec::Params;
use crate::graph::{Graph, InputKind};
use crate::load::nearest;

/// The element type a tensor file stores values in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dtype {
    /// 32-bit floats, PyTorch's default.
    F32,
    /// 64-bit floats.
    F64,
}

impl Dtype {
    /// The element type that stores `F` exactly.
    pub fn of<F: Float>() -> Self {
        if F::NAME == f64::NAME {
            Dtype::F64
        } else {
            Dtype::F32
        }
    }
}

impl fmt::Display for Dtype {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Dtype::F32 => "F32",
            Dtype::F64 => "F64",
        })
    }
}

/// Reading or writing a tensor file went wrong; every error names the file.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum TensorError {
    /// The file cannot be read or written.
    #[error("{}: cannot {action}: {message}", .path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// `"read the file"` or `"write the file"`.
        action: &'static str,
        /// What the system said.
        message: String,
    },
    /// The bytes are not a safetensors file: truncated, damaged or of another format.
    #[error(
        "{}: not a valid safetensors file ({message}); is it truncated, or of another format?",
        .path.display()
    )]
    Corrupt {
        /// The file.
        path: PathBuf,
        /// What the safetensors reader found.
        message: String,
    },
    /// A tensor the caller asked for by name is not in the file.
    #[error("{}: no tensor named \"{name}\" (the file holds: {})", .path.display(), list(.available))]
    Missing {
        /// The file.
        path: PathBuf,
        /// The name asked for.
        name: String,
        /// The names the file holds, sorted.
        available: Vec<String>,
    },
    /// A tensor stored in an element type tapir does not read.
    #[error("{}: tensor \"{name}\" is stored as {found}; tapir reads {allowed}", .path.display())]
    Dtype {
        /// The file.
        path: PathBuf,
        /// The tensor.
        name: String,
        /// Its element type in the file (`F16`).
        found: String,
        /// What would have been read.
        allowed: &'static str,
    },
    /// The file's tensors are not the ones a network needs: every difference, at once.
    #[error("{0}")]
    Mismatch(Box<Mismatch>),
    /// Two tensors to be saved share a name.
    #[error("{}: two tensors are named \"{name}\"; names in a file must be unique", .path.display())]
    Duplicate {
        /// The file.
        path: PathBuf,
        /// The repeated name.
        name: String,
    },
}

/// Every way a file's tensors differ from what a network needs.
#[derive(Debug, Clone, PartialEq)]
pub struct Mismatch {
    /// The file.
    pub path: PathBuf,
    /// What the file was read as: `"the parameters of graphs/cnn-1.ron"`.
    pub wanted: String,
    /// One entry per tensor that is wrong, in the network's order, then the extra ones.
    pub problems: Vec<Problem>,
    /// How to fix it.
    pub help: String,
}

/// What is wrong with one tensor.
#[derive(Debug, Clone, PartialEq)]
pub enum Problem {
    /// The network needs it; the file lacks it.
    Missing {
        /// The tensor.
        name: String,
        /// The shape the network needs (`[N, 1, 56, 56]` for an input of unknown batch).
        expected: String,
    },
    /// The file has it; the network has no such tensor.
    Extra {
        /// The tensor.
        name: String,
        /// Its shape in the file.
        found: Vec<usize>,
        /// The missing name it is closest to, if any is close.
        nearest: Option<String>,
    },
    /// Both have it, in different shapes.
    Shape {
        /// The tensor.
        name: String,
        /// The shape the network needs.
        expected: String,
        /// Its shape in the file.
        found: Vec<usize>,
    },
    /// It is stored in an element type tapir does not read for it.
    Dtype {
        /// The tensor.
        name: String,
        /// Its element type in the file.
        found: String,
        /// What would have been read.
        allowed: &'static str,
    },
}

impl fmt::Display for Mismatch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let width = self
            .problems
            .iter()
            .map(|p| p.name().chars().count())
            .max()
            .unwrap_or(0);
        write!(
            f,
            "{}: the tensors do not match {}:",
            self.path.display(),
            self.wanted
        )?;
        for problem in &self.problems {
            let (what, detail) = match problem {
                Problem::Missing { expected, .. } => {
                    ("missing", format!("the network needs {expected}"))
                }
                Problem::Extra { found, nearest, .. } => (
                    "extra",
                    match nearest {
                        Some(near) => format!("{found:?}; did you mean \"{near}\"?"),
                        None => format!("{found:?}; the network has no such tensor"),
                    },
                ),
                Problem::Shape {
                    expected, found, ..
                } => (
                    "wrong shape",
                    format!("the network needs {expected}, the file has {found:?}"),
                ),
                Problem::Dtype { found, allowed, .. } => {
                    ("wrong dtype", format!("{found}; tapir reads {allowed}"))
                }
            };
            write!(f, "\n  {what:<11}  {:<width$}  {detail}", problem.name())?;
        }
        write!(f, "\nhelp: {}", self.help)
    }
}

impl Problem {
    /// The tensor's name.
    pub fn name(&self) -> &str {
        match self {
            Problem::Missing { name, .. }
            | Problem::Extra { name, .. }
            | Problem::Shape { name, .. }
            | Problem::Dtype { name, .. } => name,
        }
    }
}

/// What tensors of floating-point values may be stored as.
const FLOATS: &str = "F32 and F64";
/// What class labels may be stored as.
const LABELS: &str = "integers (I64, I32, I16, I8, U8...), F32 and F64 for labels";

/// Writes named tensors to a safetensors file at `path`, every value converted to `dtype`.
///
/// The file gets the permissions of any new file (the safetensors crate's own writer makes
/// private temporary files, which surprises whoever shares the results).
pub fn save_tensors<'a, F: Float>(
    path: impl AsRef<Path>,
    tensors: impl IntoIterator<Item = (&'a str, &'a ArrayD<F>)>,
    dtype: Dtype,
) -> Result<(), TensorError> {
    save_tensors_with_metadata(path, tensors, dtype, &BTreeMap::new())
}

/// [`save_tensors`] with text metadata in the file's header (safetensors' `__metadata__`),
/// read back by [`TensorFile::metadata`]. The file is written beside `path` first and then
/// renamed over it, so an interrupted save never leaves half a file.
pub fn save_tensors_with_metadata<'a, F: Float>(
    path: impl AsRef<Path>,
    tensors: impl IntoIterator<Item = (&'a str, &'a ArrayD<F>)>,
    dtype: Dtype,
    metadata: &BTreeMap<String, String>,
) -> Result<(), TensorError> {
    let path = path.as_ref();
    let mut seen = BTreeSet::new();
    let mut encoded = Vec::new();
    for (name, array) in tensors {
        if !seen.insert(name) {
            return Err(TensorError::Duplicate {
                path: path.to_path_buf(),
                name: name.to_string(),
            });
        }
        encoded.push((name.to_string(), Encoded::new(array, dtype)));
    }
    let write_error = |message: String| TensorError::Io {
        path: path.to_path_buf(),
        action: "write the file",
        message,
    };
    let metadata = (!metadata.is_empty()).then(|| metadata.clone().into_iter().collect());
    let bytes =
        safetensors::serialize(encoded, metadata).map_err(|e| write_error(e.to_string()))?;
    let mut partial = path.as_os_str().to_owned();
    partial.push(".partial");
    let partial = PathBuf::from(partial);
    std::fs::write(&partial, bytes).map_err(|e| write_error(e.to_string()))?;
    std::fs::rename(&partial, path).map_err(|e| write_error(e.to_string()))
}

/// One tensor in the file's byte layout: little-endian, row-major.
struct Encoded {
    dtype: safetensors::Dtype,
    shape: Vec<usize>,
    data: Vec<u8>,
}

impl Encoded {
    fn new<F: Float>(array: &ArrayD<F>, dtype: Dtype) -> Self {
        // `iter` walks in logical row-major order whatever the memory layout.
        let (dtype, data) = match dtype {
            Dtype::F32 => (
                safetensors::Dtype::F32,
                array
                    .iter()
                    .flat_map(|&x| (Float::to_f64(x) as f32).to_le_bytes())
                    .collect(),
            ),
            Dtype::F64 => (
                safetensors::Dtype::F64,
                array
                    .iter()
                    .flat_map(|&x| Float::to_f64(x).to_le_bytes())
                    .collect(),
            ),
        };
        Encoded {
            dtype,
            shape: array.shape().to_vec(),
            data,
        }
    }
}

impl View for Encoded {
    fn dtype(&self) -> safetensors::Dtype {
        self.dtype
    }
    fn shape(&self) -> &[usize] {
        &self.shape
    }
    fn data(&self) -> std::borrow::Cow<'_, [u8]> {
        std::borrow::Cow::Borrowed(&self.data)
    }
    fn data_len(&self) -> usize {
        self.data.len()
    }
}

/// A safetensors file read into memory: its tensors by name, decoded on request.
#[derive(Debug, Clone)]
pub struct TensorFile {
    path: PathBuf,
    tensors: BTreeMap<String, Stored>,
    metadata: BTreeMap<String, String>,
}

/// One tensor as the file stores it.
#[derive(Debug, Clone)]
struct Stored {
    dtype: safetensors::Dtype,
    shape: Vec<usize>,
    data: Vec<u8>,
}

impl TensorFile {
    /// Reads and checks the safetensors file at `path`.
    pub fn open(path: impl AsRef<Path>) -> Result<Self, TensorError> {
        let path = path.as_ref();
        let bytes = std::fs::read(path).map_err(|e| TensorError::Io {
            path: path.to_path_buf(),
            action: "read the file",
            message: e.to_string(),
        })?;
        Self::parse(path, &bytes)
    }

    /// Checks safetensors `bytes`, naming them `path` in messages.
    pub fn parse(path: impl Into<PathBuf>, bytes: &[u8]) -> Result<Self, TensorError> {
        let path = path.into();
        let file = SafeTensors::deserialize(bytes).map_err(|e| TensorError::Corrupt {
            path: path.clone(),
            message: e.to_string(),
        })?;
        let tensors = file
            .iter()
            .map(|(name, view)| {
                let stored = Stored {
                    dtype: view.dtype(),
                    shape: view.shape().to_vec(),
                    data: view.data().to_vec(),
                };
                (name.to_string(), stored)
            })
            .collect();
        let metadata = SafeTensors::read_metadata(bytes)
            .ok()
            .and_then(|(_, header)| header.metadata().clone())
            .map(|m| m.into_iter().collect())
            .unwrap_or_default();
        Ok(TensorFile {
            path,
            tensors,
            metadata,
        })
    }

    /// The text metadata of the file's header (empty when it has none).
    pub fn metadata(&self) -> &BTreeMap<String, String> {
        &self.metadata
    }

    /// The file's path, as given.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The names of the tensors, sorted.
    pub fn names(&self) -> impl Iterator<Item = &str> + '_ {
        self.tensors.keys().map(String::as_str)
    }

    /// The shape of tensor `name`, if the file holds it.
    pub fn shape(&self, name: &str) -> Option<&[usize]> {
        self.tensors.get(name).map(|t| t.shape.as_slice())
    }

    /// Tensor `name`, stored as `F32` or `F64`, in precision `F`.
    pub fn tensor<F: Float>(&self, name: &str) -> Result<ArrayD<F>, TensorError> {
        self.decode(name, false)
    }

    /// Class labels `name`, stored as integers or floats, in precision `F` (the loss
    /// checks that each is a class index).
    pub fn labels<F: Float>(&self, name: &str) -> Result<ArrayD<F>, TensorError> {
        self.decode(name, true)
    }

    fn decode<F: Float>(&self, name: &str, labels: bool) -> Result<ArrayD<F>, TensorError> {
        let stored = self.tensors.get(name).ok_or_else(|| TensorError::Missing {
            path: self.path.clone(),
            name: name.to_string(),
            available: self.tensors.keys().cloned().collect(),
        })?;
        let Some(values) = stored.values::<F>(labels) else {
            return Err(TensorError::Dtype {
                path: self.path.clone(),
                name: name.to_string(),
                found: stored.dtype.to_string(),
                allowed: if labels { LABELS } else { FLOATS },
            });
        };
        // The reader checked that every tensor's byte count matches its shape and dtype.
        ArrayD::from_shape_vec(stored.shape.as_slice(), values).map_err(|e| TensorError::Corrupt {
            path: self.path.clone(),
            message: format!("tensor \"{name}\": {e}"),
        })
    }

    /// The parameters of `graph`, in precision `F`: the file must hold exactly the graph's
    /// parameters (`conv.weight`, `conv.bias`...), each in the graph's shape, as `F32` or `F64`.
    pub fn params<F: Float>(&self, graph: &Graph) -> Result<Params<F>, TensorError> {
        let mut problems = Vec::new();
        for param in graph.params() {
            let expected = &param.spec.shape;
            match self.tensors.get(&param.name) {
                None => problems.push(Problem::Missing {
                    name: param.name.clone(),
                    expected: format!("{expected:?}"),
                }),
                Some(stored) if !readable(stored.dtype, false) => {
                    problems.push(stored.dtype_problem(&param.name, false));
                }
                Some(stored) if &stored.shape != expected => problems.push(Problem::Shape {
                    name: param.name.clone(),
                    expected: format!("{expected:?}"),
                    found: stored.shape.clone(),
                }),
                Some(_) => {}
            }
        }
        let names: BTreeSet<&str> = graph.params().map(|p| p.name.as_str()).collect();
        self.extras(&names, &mut problems);
        if !problems.is_empty() {
            let expected: Vec<String> = graph
                .params()
                .map(|p| format!("{} {:?}", p.name, p.spec.shape))
                .collect();
            return Err(self.mismatch(
                format!("the parameters of {}", graph.name),
                problems,
                format!(
                    "the network's parameters are {}, in PyTorch's names and layouts",
                    expected.join(", ")
                ),
            ));
        }
        let tensors = graph
            .params()
            .map(|p| Ok((p.name.clone(), self.tensor(&p.name)?)))
            .collect::<Result<_, TensorError>>()?;
        Ok(Params { tensors })
    }

    /// The inputs of `graph`, in [`Graph::inputs`] order and precision `F`: one tensor per
    /// input, named like it, with the batch axis first and the same batch for all; the
    /// class labels (`labels`) may be integers.
    pub fn inputs<F: Float>(&self, graph: &Graph) -> Result<Vec<ArrayD<F>>, TensorError> {
        // The batch is whatever the first input present says; the others must agree.
        let batch = graph
            .inputs
            .iter()
            .find_map(|i| self.shape(&i.name).and_then(|s| s.first().copied()));
        let mut problems = Vec::new();
        for input in &graph.inputs {
            let labels = input.kind == InputKind::Labels;
            let expected = batched(batch, &input.shape);
            match self.tensors.get(&input.name) {
                None => problems.push(Problem::Missing {
                    name: input.name.clone(),
                    expected,
                }),
                Some(stored) if !readable(stored.dtype, labels) => {
                    problems.push(stored.dtype_problem(&input.name, labels));
                }
                Some(stored) => {
                    let fits = batch.is_some_and(|b| {
                        stored.shape.first() == Some(&b) && stored.shape[1..] == input.shape
                    });
                    if !fits {
                        problems.push(Problem::Shape {
                            name: input.name.clone(),
                            expected,
                            found: stored.shape.clone(),
                        });
                    }
                }
            }
        }
        let names: BTreeSet<&str> = graph.inputs.iter().map(|i| i.name.as_str()).collect();
        self.extras(&names, &mut problems);
        if !problems.is_empty() {
            let expected: Vec<String> = graph
                .inputs
                .iter()
                .map(|i| {
                    let shape = batched(None, &i.shape);
                    match i.kind {
                        InputKind::Labels => format!("{} {shape} (class indices)", i.name),
                        InputKind::Data | InputKind::Target => format!("{} {shape}", i.name),
                    }
                })
                .collect();
            return Err(self.mismatch(
                format!("the inputs of {}", graph.name),
                problems,
                format!(
                    "the network's inputs are {}, for N samples",
                    expected.join(", ")
                ),
            ));
        }
        graph
            .inputs
            .iter()
            .map(|i| match i.kind {
                InputKind::Labels => self.labels(&i.name),
                InputKind::Data | InputKind::Target => self.tensor(&i.name),
            })
            .collect()
    }

    /// Adds a problem for every tensor of the file not in `wanted`.
    fn extras(&self, wanted: &BTreeSet<&str>, problems: &mut Vec<Problem>) {
        let missing: Vec<String> = problems
            .iter()
            .filter(|p| matches!(p, Problem::Missing { .. }))
            .map(|p| p.name().to_string())
            .collect();
        for (name, stored) in &self.tensors {
            if !wanted.contains(name.as_str()) {
                problems.push(Problem::Extra {
                    name: name.clone(),
                    found: stored.shape.clone(),
                    nearest: nearest(name, missing.iter().map(String::as_str)).map(str::to_string),
                });
            }
        }
    }

    fn mismatch(&self, wanted: String, problems: Vec<Problem>, help: String) -> TensorError {
        TensorError::Mismatch(Box::new(Mismatch {
            path: self.path.clone(),
            wanted,
            problems,
            help,
        }))
    }
}

impl Stored {
    /// The values in precision `F`, or `None` for an element type not read (see [`readable`]).
    fn values<F: Float>(&self, labels: bool) -> Option<Vec<F>> {
        use safetensors::Dtype as D;
        fn each<const N: usize, F: Float>(data: &[u8], convert: fn([u8; N]) -> f64) -> Vec<F> {
            data.chunks_exact(N)
                .map(|chunk| {
                    let mut bytes = [0; N];
                    bytes.copy_from_slice(chunk);
                    F::from_f64(convert(bytes))
                })
                .collect()
        }
        if !readable(self.dtype, labels) {
            return None;
        }
        let data = self.data.as_slice();
        Some(match self.dtype {
            D::F32 => each::<4, F>(data, |b| f64::from(f32::from_le_bytes(b))),
            D::F64 => each::<8, F>(data, f64::from_le_bytes),
            D::I64 => each::<8, F>(data, |b| i64::from_le_bytes(b) as f64),
            D::U64 => each::<8, F>(data, |b| u64::from_le_bytes(b) as f64),
            D::I32 => each::<4, F>(data, |b| f64::from(i32::from_le_bytes(b))),
            D::U32 => each::<4, F>(data, |b| f64::from(u32::from_le_bytes(b))),
            D::I16 => each::<2, F>(data, |b| f64::from(i16::from_le_bytes(b))),
            D::U16 => each::<2, F>(data, |b| f64::from(u16::from_le_bytes(b))),
            D::I8 => each::<1, F>(data, |b| f64::from(i8::from_le_bytes(b))),
            D::U8 => each::<1, F>(data, |b| f64::from(b[0])),
            _ => return None,
        })
    }

    fn dtype_problem(&self, name: &str, labels: bool) -> Problem {
        Problem::Dtype {
            name: name.to_string(),
            found: self.dtype.to_string(),
            allowed: if labels { LABELS } else { FLOATS },
        }
    }
}

/// Whether values stored as `dtype` are read (integers only as labels).
fn readable(dtype: safetensors::Dtype, labels: bool) -> bool {
    use safetensors::Dtype as D;
    match dtype {
        D::F32 | D::F64 => true,
        D::I64 | D::U64 | D::I32 | D::U32 | D::I16 | D::U16 | D::I8 | D::U8 => labels,
        _ => false,
    }
}

/// A shape with a batch axis first: `[4, 1, 56, 56]`, or `[N, 1, 56, 56]` when the batch is
/// not known.
fn batched(batch: Option<usize>, per_sample: &[usize]) -> String {
    let axes: Vec<String> = std::iter::once(batch.map_or("N".to_string(), |b| b.to_string()))
        .chain(per_sample.iter().map(usize::to_string))
        .collect();
    format!("[{}]", axes.join(", "))
}

impl<F: Float> Params<F> {
    /// Writes the parameters to a safetensors file, as `dtype`.
    pub fn save(&self, path: impl AsRef<Path>, dtype: Dtype) -> Result<(), TensorError> {
        save_tensors(
            path,
            self.tensors
                .iter()
                .map(|(name, value)| (name.as_str(), value)),
            dtype,
        )
    }

    /// Reads the parameters of `graph` from a safetensors file (see [`TensorFile::params`]).
    pub fn load(path: impl AsRef<Path>, graph: &Graph) -> Result<Self, TensorError> {
        TensorFile::open(path)?.params(graph)
    }
}

/// `a, b, c`, or `nothing`.
fn list(names: &[String]) -> String {
    if names.is_empty() {
        "nothing".to_string()
    } else {
        names.join(", ")
    }
}
