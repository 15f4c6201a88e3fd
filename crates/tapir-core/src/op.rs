//! The `Op` trait: what every operation, built-in or user-written, implements.

use std::any::Any;
use std::fmt::Debug;
use std::sync::Arc;

use ndarray::{ArrayD, ArrayViewD};
use serde::de::DeserializeOwned;

use crate::error::{Arity, Result};
use crate::float::Float;
use crate::gradcheck::GradcheckCase;

/// One differentiable operation, generic over the element type.
///
/// An op receives its data inputs followed by its parameters (see [`Op::params`]), all as
/// plain arrays, and knows nothing of tapes: the [`Tape`](crate::Tape) records it, checks
/// what it returns and calls [`Op::backward`] in reverse.
///
/// A complete op, its registration and its proof, in one place:
///
/// ```
/// use ndarray::{ArrayD, ArrayViewD};
/// use serde::Deserialize;
/// use tapir_core::{gradcheck, Arity, BackwardCx, CaseInput, Error, Float, Gen, GradcheckCase,
///                  Op, OpType, Result, Tape};
///
/// /// `y = x^2`, elementwise; `dL/dx = 2 x dL/dy`.
/// #[derive(Debug, Clone, Deserialize)]
/// struct Square;
///
/// impl<F: Float> Op<F> for Square {
///     fn name(&self) -> &'static str { "square" }
///     fn arity(&self) -> Arity { Arity::Exactly(1) }
///     fn output_shape(&self, inputs: &[&[usize]]) -> Result<Vec<usize>> {
///         Arity::Exactly(1).check("square", inputs.len())?;
///         Ok(inputs[0].to_vec())
///     }
///     fn forward(&self, inputs: &[ArrayViewD<F>]) -> Result<ArrayD<F>> {
///         Ok(inputs[0].mapv(|x| x * x))
///     }
///     fn backward(&self, cx: &BackwardCx<F>) -> Result<Vec<Option<ArrayD<F>>>> {
///         let two = F::from_f64(2.0);
///         Ok(vec![Some(&cx.inputs[0].mapv(|x| two * x) * &cx.output_grad)])
///     }
/// }
///
/// impl OpType for Square {
///     const NAME: &'static str = "square";
///     fn gradcheck_cases() -> Vec<GradcheckCase> {
///         vec![GradcheckCase::new("3x4", Square, vec![CaseInput::new("x", &[3, 4], Gen::uniform())])]
///     }
/// }
///
/// // Forward on a tape, backward, and the finite-difference proof.
/// let mut tape = Tape::<f64>::new();
/// let x = tape.leaf(ndarray::arr1(&[3.0]).into_dyn(), true);
/// let y = tape.apply(Square, &[&x])?;
/// let grads = tape.backward(&y)?;
/// assert_eq!(grads.get(&x).unwrap()[[0]], 6.0);
/// for case in Square::gradcheck_cases() {
///     assert!(case.run(&gradcheck::Config::default())?.passed());
/// }
/// # Ok::<(), Error>(())
/// ```
///
/// An op whose outputs or gradients are large (a convolution's, a pooling's) can take their
/// memory from [`buffers`](crate::buffers), where the tape gives back the memory of dead
/// values: the next training step then reuses it instead of faulting fresh pages in.
pub trait Op<F: Float>: Send + Sync + Debug {
    /// The op's name, as in error messages (`"conv2d"`).
    fn name(&self) -> &'static str;

    /// How many data inputs the op takes, not counting its parameters.
    fn arity(&self) -> Arity;

    /// The parameters the op owns, given the shapes of its data inputs; they follow the
    /// data inputs in every call. Most ops own none.
    fn params(&self, data_inputs: &[&[usize]]) -> Result<Vec<ParamSpec>> {
        let _ = data_inputs;
        Ok(Vec::new())
    }

    /// The shape rule: the output shape for these input shapes (data inputs, then
    /// parameters), or an error that names the op and the shapes.
    fn output_shape(&self, inputs: &[&[usize]]) -> Result<Vec<usize>>;

    /// Computes the output. Called only with shapes that [`Op::output_shape`] accepted.
    fn forward(&self, inputs: &[ArrayViewD<F>]) -> Result<ArrayD<F>>;

    /// Given the gradient of the loss with respect to the output, returns one gradient per
    /// input, each with its input's shape, or `None` for inputs that need none
    /// (`cx.needs_grad(i)` is false) or have none (integer labels): no gradient flows there.
    /// A `None` where a gradient exists is a bug that the gradient checker reports.
    fn backward(&self, cx: &BackwardCx<F>) -> Result<Vec<Option<ArrayD<F>>>>;

    /// Forward floating-point operations for one call with these input shapes
    /// (a multiply-add counts as two); for summaries and benchmarks.
    fn flops(&self, inputs: &[&[usize]]) -> u64 {
        let _ = inputs;
        0
    }

    /// An op that computes this op applied to `producer`'s output in one pass, reading
    /// `producer`'s inputs instead; `None` (the default) when there is none, or when fusing
    /// would not pay for `producer_inputs`: the shapes of `producer`'s inputs for one
    /// sample (batch 1) followed by those of its parameters.
    ///
    /// A network asks each op whose first data input is the output of an op read by
    /// nothing else and not itself an output of the network; a fused op is asked again with
    /// the producer of its chain's first input, and so on. The fused op then takes
    /// `producer`'s inputs and parameters followed by this op's other inputs and its
    /// parameters; its results and gradients must be those of the ops run one after the
    /// other, bit for bit, and its own gradient-check cases prove its backward. `producer` is
    /// recognised by [`Op::name`], which is unique within a registry, and read through
    /// [`Op::as_any`]. Max pooling after `relu` is one (the ReLU's tensor, the largest of
    /// the step, is never written), and that after a `conv2d` another.
    fn fused_after(
        &self,
        producer: &dyn Op<F>,
        producer_inputs: &[&[usize]],
    ) -> Option<Arc<dyn Op<F>>> {
        let _ = (producer, producer_inputs);
        None
    }

    /// This op as [`Any`], for a consumer's [`Op::fused_after`] that needs more of its
    /// producer than its name (its hyperparameters); `None` (the default) keeps it opaque.
    fn as_any(&self) -> Option<&dyn Any> {
        None
    }
}

/// What [`Op::backward`] gets to work with.
pub struct BackwardCx<'a, F: Float> {
    /// The inputs of the forward call, data inputs then parameters.
    pub inputs: &'a [ArrayViewD<'a, F>],
    /// The output the forward call returned.
    pub output: ArrayViewD<'a, F>,
    /// The gradient of the loss with respect to the output; the output's shape.
    pub output_grad: ArrayViewD<'a, F>,
    /// Which inputs want a gradient.
    pub needs_grad: &'a [bool],
}

impl<F: Float> BackwardCx<'_, F> {
    /// Whether input `index` wants a gradient; ops may skip the work for those that do not.
    pub fn needs_grad(&self, index: usize) -> bool {
        self.needs_grad.get(index).copied().unwrap_or(false)
    }
}

/// A parameter an op owns: its name within the node, shape and role.
#[derive(Debug, Clone, PartialEq)]
pub struct ParamSpec {
    /// `"weight"` or `"bias"`, as in PyTorch; a graph node `conv` owns `conv.weight`.
    pub name: &'static str,
    /// The shape, in PyTorch's layout.
    pub shape: Vec<usize>,
    /// How the parameter feeds the op, which decides how to initialise it.
    pub role: ParamRole,
}

/// How a parameter feeds its op.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ParamRole {
    /// Multiplies inputs: `fan_in` inputs feed each output, each input feeds `fan_out` outputs.
    Weight {
        /// How many inputs feed each output.
        fan_in: usize,
        /// How many outputs each input feeds.
        fan_out: usize,
    },
    /// Added to outputs.
    Bias {
        /// The `fan_in` of the weight it goes with: biases are initialised like it.
        fan_in: usize,
    },
}

/// An op type that can be registered: built from hyperparameters, in both precisions, and
/// shipped with the gradient-check cases that prove its backward.
pub trait OpType: Op<f32> + Op<f64> + DeserializeOwned + Clone + 'static {
    /// The registered name; the same as [`Op::name`].
    const NAME: &'static str;

    /// Configurations whose gradients are checked against finite differences; an op
    /// without any is refused by the test suite.
    fn gradcheck_cases() -> Vec<GradcheckCase>;
}
