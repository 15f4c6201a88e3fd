//! The backward of `conv2d` for one sample whose output gradient is almost all zeros (see
//! the module doc of `conv2d` for the math and symbols).
//!
//! A global max pooling after a convolution sends each map's gradient to one position: of
//! `F*P` elements of `dy_n`, at most `F` are not zero (32 of 18,432 for `graphs/cnn-2.ron`'s
//! second convolution). The lowered route spends the same time on such a `dy_n` as on a
//! full one: the sample lowered again, `dy_g cols_g^T` and `W_g^T dy_g` over every position,
//! and `col2im`. Here each nonzero `g = dy[f,i,j]` sends its share straight from the sums
//! of the module doc, over the taps `(c, p, q)` of its window that fall inside the image:
//!
//! - `dL/dw[f,c,p,q] += g x[n, gC/G + c, h(i,p), v(j,q)]`;
//! - `dL/dx[n, gC/G + c, h(i,p), v(j,q)] += w[f,c,p,q] g`.
//!
//! That is `4K` FLOPs per nonzero, one at a time, against `4KP` FLOPs per filter on
//! vectors plus the lowering, so the break-even density does not depend on `K`. Measured
//! on that convolution's shapes (batch 64, one thread, `dy` with random nonzeros), the
//! lowered route takes 8.9-9.9 ms whatever the density; this one 9.0-9.5 ms at one
//! nonzero in 64 elements, 5.1-5.4 ms at one in 128 and 1.9-2.0 ms at one in 576 (a
//! global max pooling's). It is taken while at most one element in [`DENSITY`] is nonzero.
//!
//! A zero of `dy` adds nothing here, even against an infinite or NaN input, where the
//! lowered route's products give NaN: the sums' terms are `0 * x`, and the gradient of an
//! output that does not reach the loss is 0.
//!
//! Nonzeros are visited in row-major order of `dy_n`, so the sums are the same whatever the
//! thread count, and the decision depends on `dy_n` alone.

use tapir_core::Float;

use super::kernel::Geometry;

/// A sample's `dy_n` takes this route when at most one of every `DENSITY` of its elements
/// is nonzero.
pub(crate) const DENSITY: usize = 64;

/// Whether `dy_n` has at most `dy_n.len() / DENSITY` nonzero elements (NaN counts as
/// nonzero). Counts a block at a time and stops once past the limit, so a full gradient
/// costs a few blocks of reading.
pub(crate) fn is_sparse<F: Float>(dy_n: &[F]) -> bool {
    const BLOCK: usize = 256;
    let limit = dy_n.len() / DENSITY;
    let mut nonzeros = 0;
    for block in dy_n.chunks(BLOCK) {
        nonzeros += block.iter().filter(|&&d| d != F::zero()).count();
        if nonzeros > limit {
            return false;
        }
    }
    true
}

/// Adds sample `x_n`'s share of `dL/dw` to `dw` (`[F, K]`, row-major) and writes its
/// `dL/dx` into `dx_n` (`[C, H, W]`, every element written), from the sample's `dy_n`
/// (`[F, P]`, row-major) and the weight matrix `w [F, K]` (row-major).
pub(crate) fn backward_sample<F: Float>(
    geometry: &Geometry,
    x_n: &[F],
    w: &[F],
    dy_n: &[F],
    mut dw: Option<&mut [F]>,
    mut dx_n: Option<&mut [F]>,
) {
    /// Elements of `dy_n` checked for a nonzero at once: a loop without early exit, which
    /// the compiler vectorises (element by element, the scan took a third of the route's
    /// time on `graphs/cnn-2.ron`).
    const BLOCK: usize = 16;
    let (height, width) = (&geometry.height, &geometry.width);
    let (kh, kw, ow) = (height.kernel, width.kernel, width.output);
    let (plane, patch) = (height.input * width.input, geometry.patch_len());
    let (channels, filters) = (geometry.channels_per_group(), geometry.filters_per_group());
    let positions = geometry.positions().max(1);
    if let Some(dx_n) = &mut dx_n {
        dx_n.fill(F::zero());
    }
    for (f, dy_f) in dy_n.chunks(positions).enumerate() {
        let w_f = &w[f * patch..(f + 1) * patch];
        let group = f / filters;
        let offset = group * channels * plane;
        for (block, dys) in dy_f.chunks(BLOCK).enumerate() {
            if !dys.iter().fold(false, |any, &d| any | (d != F::zero())) {
                continue;
            }
            for (position, &g) in (block * BLOCK..).zip(dys) {
                if g == F::zero() {
                    continue;
                }
                let (i, j) = (position / ow, position % ow);
                // The window's taps inside the image: `p` in `rows`, `q` in `columns` (its
                // input columns `dilation` apart).
                let (rows, columns) = (height.taps_inside(i), width.taps_inside(j));
                if columns.is_empty() {
                    continue;
                }
                let (q, taps, step) = (columns.start, columns.len(), width.dilation);
                let v = width.input_position(j, q);
                for c in 0..channels {
                    for p in rows.clone() {
                        let h = height.input_position(i, p);
                        let k = (c * kh + p) * kw + q;
                        let at = offset + c * plane + h * width.input + v;
                        if let Some(dw) = &mut dw {
                            let dw_f = &mut dw[f * patch + k..f * patch + k + taps];
                            for (t, d) in dw_f.iter_mut().enumerate() {
                                *d += g * x_n[at + t * step];
                            }
                        }
                        if let Some(dx_n) = &mut dx_n {
                            for (t, &w_k) in w_f[k..k + taps].iter().enumerate() {
                                dx_n[at + t * step] += w_k * g;
                            }
                        }
                    }
                }
            }
        }
    }
}
