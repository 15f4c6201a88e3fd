//! The element types tapir computes in: `f32` for training, `f64` for gradient checks.

use std::fmt::{Debug, Display};
use std::iter::Sum;

use ndarray::{ArrayView2, ArrayViewMut2, NdFloat};

use crate::lanes::Lanes;

/// A floating-point element type: `f32` or `f64`.
///
/// Every op is written once, generic over `Float`; the conversions below are the only
/// way numbers cross between the two precisions.
pub trait Float: NdFloat + Lanes + Sum + Default + Debug + Display + Send + Sync + 'static {
    /// Converts from `f64`, rounding to nearest where `Self` is narrower.
    fn from_f64(value: f64) -> Self;
    /// Converts to `f64` exactly.
    fn to_f64(self) -> f64;
    /// Converts a count or index (exact below 2^24 for `f32`).
    fn from_usize(value: usize) -> Self;
    /// The type's name, for messages: `"f32"` or `"f64"`.
    const NAME: &'static str;
    /// `c = alpha a b`, or `c += alpha a b`: the matrix product of [`crate::gemm`], which
    /// is the way to call it.
    fn gemm(
        alpha: Self,
        a: &ArrayView2<Self>,
        b: &ArrayView2<Self>,
        accumulate: bool,
        c: &mut ArrayViewMut2<Self>,
    );
}

/// The two impls differ only in the type; the conversions read the same for both.
macro_rules! float_impl {
    ($t:ty) => {
        impl Float for $t {
            fn from_f64(value: f64) -> Self {
                // Rounds to nearest for f32; the identity for f64.
                value as $t
            }
            fn to_f64(self) -> f64 {
                f64::from(self)
            }
            fn from_usize(value: usize) -> Self {
                value as $t
            }
            const NAME: &'static str = stringify!($t);
            fn gemm(
                alpha: Self,
                a: &ArrayView2<Self>,
                b: &ArrayView2<Self>,
                accumulate: bool,
                c: &mut ArrayViewMut2<Self>,
            ) {
                crate::gemm::product(alpha, a, b, accumulate, c);
            }
        }
    };
}

float_impl!(f32);
float_impl!(f64);
