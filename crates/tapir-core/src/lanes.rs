//! SIMD vectors of a [`Float`](crate::Float), for kernels that a matrix product does not fit.
//!
//! A kernel written against [`Lanes`] is generic over the element type and over
//! [`pulp::Simd`], the instruction set `pulp` picks at run time (AVX-512, or AVX2 with FMA,
//! on x86-64; NEON on aarch64; one lane elsewhere). Run it through
//! [`pulp::Arch::dispatch`] with a type that implements [`pulp::WithSimd`], every function it
//! calls `#[inline(always)]`: the code is then compiled once per instruction set, and the
//! vectors below become single instructions. (A closure handed to `dispatch` is not
//! inlined into it and runs on the baseline instruction set, with `mul_add` a library call.)
//!
//! The order of every sum is fixed by the instruction set: the same machine gives the same
//! bits whatever the thread count.

pub use pulp::{Arch, Simd, WithSimd};

/// The vector operations of a kernel over elements `Self`.
pub trait Lanes: Copy + 'static {
    /// A vector of `Self`s in instruction set `S`.
    type Vector<S: Simd>: Copy;
    /// Elements per vector in `S`.
    fn lanes<S: Simd>() -> usize;
    /// `value` in every lane.
    fn splat<S: Simd>(simd: S, value: Self) -> Self::Vector<S>;
    /// The elements of `xs` (at most [`Self::lanes`]) in the first lanes, zeros in the rest.
    fn load<S: Simd>(simd: S, xs: &[Self]) -> Self::Vector<S>;
    /// The first `xs.len()` lanes (at most [`Self::lanes`]) of `v`, into `xs`.
    fn store<S: Simd>(simd: S, xs: &mut [Self], v: Self::Vector<S>);
    /// `a + b` in each lane.
    fn add_lanes<S: Simd>(simd: S, a: Self::Vector<S>, b: Self::Vector<S>) -> Self::Vector<S>;
    /// `a * b + c` in each lane, rounded once.
    fn mul_add_lanes<S: Simd>(
        simd: S,
        a: Self::Vector<S>,
        b: Self::Vector<S>,
        c: Self::Vector<S>,
    ) -> Self::Vector<S>;
    /// `a * b + c` in the last `count` lanes (at most [`Self::lanes`]), `c` in the others.
    fn mul_add_last_lanes<S: Simd>(
        simd: S,
        a: Self::Vector<S>,
        b: Self::Vector<S>,
        c: Self::Vector<S>,
        count: usize,
    ) -> Self::Vector<S>;
    /// The sum of the lanes of `v`, in an order fixed by `S`.
    fn sum_lanes<S: Simd>(simd: S, v: Self::Vector<S>) -> Self;
    /// One flag per lane.
    type Mask<S: Simd>: Copy;
    /// `a == b` in each lane (false where either is NaN).
    fn equal_lanes<S: Simd>(simd: S, a: Self::Vector<S>, b: Self::Vector<S>) -> Self::Mask<S>;
    /// `a > b` in each lane (false where either is NaN).
    fn greater_lanes<S: Simd>(simd: S, a: Self::Vector<S>, b: Self::Vector<S>) -> Self::Mask<S>;
    /// `if mask { a } else { b }` in each lane.
    fn select_lanes<S: Simd>(
        simd: S,
        mask: Self::Mask<S>,
        a: Self::Vector<S>,
        b: Self::Vector<S>,
    ) -> Self::Vector<S>;
    /// The even elements of the pair `v` (lanes of `v[0]`, then of `v[1]`), then the odd
    /// ones, in an order of `S`'s choosing (within 128-bit blocks on x86), the same for both.
    fn deinterleave<S: Simd>(simd: S, v: [Self::Vector<S>; 2]) -> [Self::Vector<S>; 2];
    /// The inverse of [`Lanes::deinterleave`]: `interleave(deinterleave(v)) == v`.
    fn interleave<S: Simd>(simd: S, v: [Self::Vector<S>; 2]) -> [Self::Vector<S>; 2];
}

/// The two impls differ only in the names of `pulp`'s functions.
macro_rules! lanes_impl {
    ($t:ty, $vector:ident, $lanes:ident, $as_simd:ident, $as_mut_simd:ident, $splat:ident,
     $partial_load:ident, $partial_store:ident, $add:ident, $mul_add:ident, $reduce_sum:ident,
     $mask_between:ident, $select:ident, $mask_int:ty, $mask:ident, $equal:ident,
     $greater:ident, $deinterleave:ident, $interleave:ident) => {
        impl Lanes for $t {
            type Vector<S: Simd> = S::$vector;
            #[inline(always)]
            fn lanes<S: Simd>() -> usize {
                S::$lanes
            }
            #[inline(always)]
            fn splat<S: Simd>(simd: S, value: Self) -> Self::Vector<S> {
                simd.$splat(value)
            }
            #[inline(always)]
            fn load<S: Simd>(simd: S, xs: &[Self]) -> Self::Vector<S> {
                match S::$as_simd(xs).0.first() {
                    // A whole vector: one plain load rather than a masked one.
                    Some(&whole) if xs.len() == S::$lanes => whole,
                    _ => simd.$partial_load(xs),
                }
            }
            #[inline(always)]
            fn store<S: Simd>(simd: S, xs: &mut [Self], v: Self::Vector<S>) {
                if xs.len() == S::$lanes {
                    // A whole vector: one plain store; `xs` holds exactly one.
                    if let Some(whole) = S::$as_mut_simd(xs).0.first_mut() {
                        *whole = v;
                    }
                } else {
                    simd.$partial_store(xs, v)
                }
            }
            #[inline(always)]
            fn add_lanes<S: Simd>(
                simd: S,
                a: Self::Vector<S>,
                b: Self::Vector<S>,
            ) -> Self::Vector<S> {
                simd.$add(a, b)
            }
            #[inline(always)]
            fn mul_add_lanes<S: Simd>(
                simd: S,
                a: Self::Vector<S>,
                b: Self::Vector<S>,
                c: Self::Vector<S>,
            ) -> Self::Vector<S> {
                simd.$mul_add(a, b, c)
            }
            #[inline(always)]
            fn mul_add_last_lanes<S: Simd>(
                simd: S,
                a: Self::Vector<S>,
                b: Self::Vector<S>,
                c: Self::Vector<S>,
                count: usize,
            ) -> Self::Vector<S> {
                let lanes = S::$lanes;
                if count == 0 {
                    // Not an empty mask: pulp 0.22.3 indexes past a table for one of `f64`s.
                    return c;
                }
                // Lane counts are at most 16: the casts are exact.
                let from = lanes.saturating_sub(count) as $mask_int;
                let keep = simd.$mask_between(from, lanes as $mask_int).mask();
                simd.$select(keep, simd.$mul_add(a, b, c), c)
            }
            #[inline(always)]
            fn sum_lanes<S: Simd>(simd: S, v: Self::Vector<S>) -> Self {
                simd.$reduce_sum(v)
            }
            type Mask<S: Simd> = S::$mask;
            #[inline(always)]
            fn equal_lanes<S: Simd>(
                simd: S,
                a: Self::Vector<S>,
                b: Self::Vector<S>,
            ) -> Self::Mask<S> {
                simd.$equal(a, b)
            }
            #[inline(always)]
            fn greater_lanes<S: Simd>(
                simd: S,
                a: Self::Vector<S>,
                b: Self::Vector<S>,
            ) -> Self::Mask<S> {
                simd.$greater(a, b)
            }
            #[inline(always)]
            fn select_lanes<S: Simd>(
                simd: S,
                mask: Self::Mask<S>,
                a: Self::Vector<S>,
                b: Self::Vector<S>,
            ) -> Self::Vector<S> {
                simd.$select(mask, a, b)
            }
            #[inline(always)]
            fn deinterleave<S: Simd>(simd: S, v: [Self::Vector<S>; 2]) -> [Self::Vector<S>; 2] {
                simd.$deinterleave(v)
            }
            #[inline(always)]
            fn interleave<S: Simd>(simd: S, v: [Self::Vector<S>; 2]) -> [Self::Vector<S>; 2] {
                simd.$interleave(v)
            }
        }
    };
}

lanes_impl!(
    f32,
    f32s,
    F32_LANES,
    as_simd_f32s,
    as_mut_simd_f32s,
    splat_f32s,
    partial_load_f32s,
    partial_store_f32s,
    add_f32s,
    mul_add_f32s,
    reduce_sum_f32s,
    mask_between_m32s,
    select_f32s,
    u32,
    m32s,
    equal_f32s,
    greater_than_f32s,
    deinterleave_shfl_f32s,
    interleave_shfl_f32s
);
lanes_impl!(
    f64,
    f64s,
    F64_LANES,
    as_simd_f64s,
    as_mut_simd_f64s,
    splat_f64s,
    partial_load_f64s,
    partial_store_f64s,
    add_f64s,
    mul_add_f64s,
    reduce_sum_f64s,
    mask_between_m64s,
    select_f64s,
    u64,
    m64s,
    equal_f64s,
    greater_than_f64s,
    deinterleave_shfl_f64s,
    interleave_shfl_f64s
);

#[cfg(test)]
mod tests {
    use super::*;

    /// Loads, stores, `add_lanes`, `mul_add_lanes` and the lane sum on whole and partial
    /// vectors, in whatever instruction set this machine has.
    struct RoundTrip;

    impl WithSimd for RoundTrip {
        type Output = ();
        #[inline(always)]
        fn with_simd<S: Simd>(self, simd: S) {
            let lanes = f64::lanes::<S>();
            for len in 0..=lanes {
                let xs: Vec<f64> = (1..=len).map(|i| i as f64).collect();
                let v = f64::load(simd, &xs);
                // 2 x + 1.5 in the loaded lanes, 1.5 in the zeroed ones.
                let (two, one) = (f64::splat(simd, 2.0), f64::splat(simd, 1.0));
                let v = f64::mul_add_lanes(simd, two, v, one);
                let v = f64::add_lanes(simd, v, f64::splat(simd, 0.5));
                let mut out = vec![-1.0; lanes];
                f64::store(simd, &mut out[..len], v);
                let expected: Vec<f64> = (0..lanes)
                    .map(|i| {
                        if i < len {
                            2.0 * (i + 1) as f64 + 1.5
                        } else {
                            -1.0
                        }
                    })
                    .collect();
                assert_eq!(out, expected, "{len} of {lanes} lanes");
                let total = (len * (len + 1) + len + (lanes - len)) as f64 + 0.5 * lanes as f64;
                assert_eq!(f64::sum_lanes(simd, v), total, "{len} of {lanes} lanes");
            }
            for count in 0..=lanes {
                let ones = f64::splat(simd, 1.0);
                let v = f64::mul_add_last_lanes(simd, ones, ones, ones, count);
                let mut out = vec![0.0; lanes];
                f64::store(simd, &mut out, v);
                let expected: Vec<f64> = (0..lanes)
                    .map(|i| if i + count >= lanes { 2.0 } else { 1.0 })
                    .collect();
                assert_eq!(out, expected, "the last {count} of {lanes} lanes");
            }
            let xs: Vec<f32> = (0..f32::lanes::<S>()).map(|i| i as f32).collect();
            let mut out = vec![0.0; xs.len()];
            f32::store(simd, &mut out, f32::load(simd, &xs));
            assert_eq!(out, xs);
        }
    }

    #[test]
    fn vectors_round_trip() {
        Arch::new().dispatch(RoundTrip);
    }

    /// `deinterleave`, `interleave`, `equal_lanes` and `select_lanes` for elements `F`.
    struct Shuffles<F>(std::marker::PhantomData<F>);

    impl<F: crate::Float> WithSimd for Shuffles<F> {
        type Output = ();
        #[inline(always)]
        fn with_simd<S: Simd>(self, simd: S) {
            let lanes = F::lanes::<S>();
            let xs: Vec<F> = (0..2 * lanes).map(F::from_usize).collect();
            let v = [F::load(simd, &xs[..lanes]), F::load(simd, &xs[lanes..])];
            let [even, odd] = F::deinterleave(simd, v);
            let (mut evens, mut odds) = (vec![F::zero(); lanes], vec![F::zero(); lanes]);
            F::store(simd, &mut evens, even);
            F::store(simd, &mut odds, odd);
            // Every even element once, each odd one in the lane of the even one before it.
            let mut sorted: Vec<usize> = evens
                .iter()
                .map(|&e| crate::Float::to_f64(e) as usize)
                .collect();
            sorted.sort_unstable();
            assert_eq!(sorted, (0..lanes).map(|k| 2 * k).collect::<Vec<_>>());
            for (e, o) in evens.iter().zip(&odds) {
                assert_eq!(*o, *e + F::one(), "{evens:?} {odds:?}");
            }
            let [a, b] = F::interleave(simd, [even, odd]);
            let mut back = vec![F::zero(); 2 * lanes];
            F::store(simd, &mut back[..lanes], a);
            F::store(simd, &mut back[lanes..], b);
            assert_eq!(back, xs);
            // Lanes equal to 3 (and a NaN equal to nothing) pick from the first vector.
            let three = F::splat(simd, F::from_usize(3));
            let mut ys = xs[..lanes].to_vec();
            ys[0] = F::nan();
            let y = F::load(simd, &ys);
            let picked = F::select_lanes(
                simd,
                F::equal_lanes(simd, y, three),
                y,
                F::splat(simd, F::zero()),
            );
            let mut out = vec![F::one(); lanes];
            F::store(simd, &mut out, picked);
            let above = F::select_lanes(
                simd,
                F::greater_lanes(simd, y, three),
                y,
                F::splat(simd, F::zero()),
            );
            let mut out_above = vec![F::one(); lanes];
            F::store(simd, &mut out_above, above);
            let expected_above: Vec<F> = ys
                .iter()
                .map(|&y| if y > F::from_usize(3) { y } else { F::zero() })
                .collect();
            assert_eq!(out_above, expected_above);
            let expected: Vec<F> = ys
                .iter()
                .map(|&y| if y == F::from_usize(3) { y } else { F::zero() })
                .collect();
            assert_eq!(out, expected);
        }
    }

    #[test]
    fn deinterleave_is_undone_by_interleave() {
        Arch::new().dispatch(Shuffles::<f32>(std::marker::PhantomData));
        Arch::new().dispatch(Shuffles::<f64>(std::marker::PhantomData));
    }
}
