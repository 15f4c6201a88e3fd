//! What the pooling ops share: the geometry of a sliding window over NCHW input (its
//! hyperparameter checks, output size and clipped extents) and the loop that runs a kernel
//! once per `[H, W]` plane, on rayon's threads when the work pays for them.

use std::borrow::Cow;
use std::sync::Arc;

use ndarray::{ArrayD, ArrayViewD, CowArray, IxDyn};
use rayon::prelude::*;
use serde::{Deserialize, Deserializer};
use tapir_core::{BackwardCx, Error, Float, Op, Result};

use crate::conv2d;
use crate::relu::AfterReluOp;
use crate::shape::{self, Pair};

/// The layout every pooling op takes, as named in rank errors.
pub(crate) const NCHW: &str = "N, C, H, W";

/// Below this many element visits, a call runs on the calling thread: handing planes to
/// the pool costs more than it saves (and gradient checks make thousands of tiny calls).
const PARALLEL_MIN_WORK: usize = 1 << 15;

/// The default padding of the windowed pools: none.
pub(crate) fn no_padding() -> Pair {
    Pair::Both(0)
}

/// Reads an optional `Pair` written bare (`stride: 2`) as well as RON's own way
/// (`stride: Some(2)`, `stride: None`); an omitted field stays `None` through
/// `#[serde(default)]`.
pub(crate) fn some_pair<'de, D: Deserializer<'de>>(
    deserializer: D,
) -> std::result::Result<Option<Pair>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged, expecting = "a number, (height, width), Some(...) or None")]
    enum Written {
        Bare(Pair),
        Optional(Option<Pair>),
    }
    Ok(match Written::deserialize(deserializer)? {
        Written::Bare(pair) => Some(pair),
        Written::Optional(pair) => pair,
    })
}

/// A sliding window of `kernel` pixels moved by `stride` over an input padded by `padding`
/// on each side, with the sizes it produces. Built only by [`Window2d::new`], which
/// guarantees that every window holds at least one input pixel.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Window2d {
    /// Batch size `N`.
    pub batch: usize,
    /// Channels `C`.
    pub channels: usize,
    /// Input height and width `(H, W)`, both at least 1.
    pub input: (usize, usize),
    /// Output height and width `(OH, OW)`, both at least 1.
    pub output: (usize, usize),
    /// `(kh, kw)`.
    pub kernel: (usize, usize),
    /// `(sh, sw)`.
    pub stride: (usize, usize),
    /// `(ph, pw)`, on both sides of each axis.
    pub padding: (usize, usize),
}

impl Window2d {
    /// Checks the hyperparameters and the input shape `[N, C, H, W]` of `op`.
    ///
    /// PyTorch's rule `padding <= kernel / 2` makes every window reach the input: the first
    /// window covers `kh - ph >= 1` input rows, and the last one starts at most at
    /// `H + ph - kh <= H - 1` (as `ph < kh`), likewise for columns.
    pub(crate) fn new(
        op: &'static str,
        input: &[usize],
        kernel: Pair,
        stride: Option<Pair>,
        padding: Pair,
    ) -> Result<Self> {
        let (kh, kw) = kernel.check_positive(op, "kernel")?;
        let (sh, sw) = stride.unwrap_or(kernel).check_positive(op, "stride")?;
        let (ph, pw) = padding.hw();
        if ph > kh / 2 || pw > kw / 2 {
            let (axis, p, k) = if ph > kh / 2 {
                ("height", ph, kh)
            } else {
                ("width", pw, kw)
            };
            return Err(Error::hyperparameter(
                op,
                format!(
                    "padding {padding} must be at most half the kernel {kernel} on each axis, as in PyTorch: \
                     {axis} padding {p} > {k} / 2 would make a window of padding only; use padding at most {}",
                    k / 2
                ),
            ));
        }
        // A huge kernel is legal on a tiny input (kernel 2k + 1, padding k); its divisor
        // `kh kw` must still be a number.
        if kh.checked_mul(kw).is_none() {
            return Err(Error::hyperparameter(
                op,
                format!("kernel {kernel} has more pixels than a usize counts"),
            ));
        }
        shape::expect_rank(op, "input", input, 4, NCHW)?;
        let (batch, channels, h, w) = (input[0], input[1], input[2], input[3]);
        if h == 0 || w == 0 {
            return Err(Error::shape(
                op,
                format!(
                    "input {input:?} has no pixels; pooling needs height and width of at least 1"
                ),
            ));
        }
        let with_shape = |e: Error| match e {
            Error::Shape { op, message } => {
                Error::shape(op, format!("{message} (input {input:?})"))
            }
            other => other,
        };
        let oh =
            shape::window_output_len(op, "height", h, ph, ph, kh, 1, sh).map_err(with_shape)?;
        let ow = shape::window_output_len(op, "width", w, pw, pw, kw, 1, sw).map_err(with_shape)?;
        shape::allocatable(op, "output", &[batch, channels, oh, ow])?;
        Ok(Window2d {
            batch,
            channels,
            input: (h, w),
            output: (oh, ow),
            kernel: (kh, kw),
            stride: (sh, sw),
            padding: (ph, pw),
        })
    }

    /// `[N, C, OH, OW]`.
    pub(crate) fn output_shape(&self) -> Vec<usize> {
        vec![self.batch, self.channels, self.output.0, self.output.1]
    }

    /// The input rows `start..end` of the windows in output row `i`, padding cut off.
    pub(crate) fn rows(&self, i: usize) -> (usize, usize) {
        clip(
            i * self.stride.0,
            self.kernel.0,
            self.padding.0,
            self.input.0,
        )
    }

    /// The input columns `start..end` of the windows in output column `j`, padding cut off.
    pub(crate) fn cols(&self, j: usize) -> (usize, usize) {
        clip(
            j * self.stride.1,
            self.kernel.1,
            self.padding.1,
            self.input.1,
        )
    }

    /// Output pixels times window size: the element visits of one plane (saturating).
    pub(crate) fn work_per_plane(&self) -> usize {
        [self.output.0, self.output.1, self.kernel.0, self.kernel.1]
            .iter()
            .fold(1usize, |acc, &d| acc.saturating_mul(d))
    }

    /// The element visits of one forward call (saturating).
    pub(crate) fn visits(&self) -> u64 {
        (self.batch as u64)
            .saturating_mul(self.channels as u64)
            .saturating_mul(self.work_per_plane() as u64)
    }
}

/// A window starting at `start` in padded coordinates, of `kernel` pixels, over an input of
/// `len` pixels padded by `pad`: its input range. No overflow: `Window2d::new` checked
/// `start + kernel <= len + 2 pad`.
fn clip(start: usize, kernel: usize, pad: usize, len: usize) -> (usize, usize) {
    (
        start.saturating_sub(pad),
        (start + kernel).saturating_sub(pad).min(len),
    )
}

/// The argmax and maximum of the window `rows x cols` of a plane `width` pixels wide: the
/// index in the plane of its FIRST largest element in row-major order, and that element.
/// A NaN wins, so it propagates, and each NaN wins over the ones before it: the LAST NaN is
/// the argmax, as in PyTorch.
pub(crate) fn argmax<F: Float>(
    plane: &[F],
    width: usize,
    rows: (usize, usize),
    cols: (usize, usize),
) -> (usize, F) {
    // Windows are never empty (see `Window2d::new`), so `-inf` survives only if the input
    // holds it; the index then is the window's first, as in PyTorch.
    let mut best = (rows.0 * width + cols.0, F::neg_infinity());
    for r in rows.0..rows.1 {
        let start = r * width + cols.0;
        for (offset, &v) in plane[start..r * width + cols.1].iter().enumerate() {
            // Strict `>` keeps the first of equal maxima; a NaN always wins (PyTorch's rule).
            if v > best.1 || v.is_nan() {
                best = (start + offset, v);
            }
        }
    }
    best
}

/// The windows of one output row, resolved once per call: each output column's input
/// columns ([`Window2d::cols`]), and whether they tile the row (stride = kernel, no
/// padding), so that window `j` is the `j`-th chunk of `kernel` columns.
pub(crate) struct RowWindows {
    cols: Vec<(usize, usize)>,
    tiles: bool,
    /// With stride 1, the output columns `a..b` whose windows padding does not cut: window
    /// `j` of them starts at input column `j - padding`, so column `t` of windows `a..b` is
    /// one contiguous run of the row, and a whole row of them is `kernel` runs.
    slides: Option<(usize, usize)>,
}

impl RowWindows {
    /// The windows of `g`'s output rows.
    pub(crate) fn new(g: &Window2d) -> Self {
        let cols: Vec<(usize, usize)> = (0..g.output.1).map(|j| g.cols(j)).collect();
        let whole = |j: &usize| cols[*j].1 - cols[*j].0 == g.kernel.1;
        let slides = (g.stride.1 == 1)
            .then(|| {
                let a = (0..cols.len()).find(whole)?;
                let b = (a..cols.len()).find(|j| !whole(j)).unwrap_or(cols.len());
                Some((a, b))
            })
            .flatten();
        RowWindows {
            tiles: g.padding.1 == 0 && g.stride.1 == g.kernel.1,
            slides,
            cols,
        }
    }

    /// The output columns outside `slides` (all of them without it).
    fn edges(&self) -> impl Iterator<Item = usize> {
        let (a, b) = self.slides.unwrap_or((self.cols.len(), self.cols.len()));
        (0..a).chain(b..self.cols.len())
    }
}

/// The maximum of every window of output row `i` of a plane, into `max` (one per output
/// column): [`argmax`]'s value, window by window, computed a whole input row at a time.
///
/// `if v > m { v } else { m }` is one branch-free `max` instruction that vectorises; it
/// skips NaN, so a row holding a NaN is redone window by window with [`argmax`]'s rule.
pub(crate) fn row_max<F: Float>(
    g: &Window2d,
    windows: &RowWindows,
    plane: &[F],
    i: usize,
    max: &mut [F],
) {
    let width = g.input.1;
    let (r0, r1) = g.rows(i);
    max.fill(F::neg_infinity());
    let mut nan = false;
    for r in r0..r1 {
        let row = plane_row(plane, width, r);
        nan |= row.iter().fold(false, |nan, v| nan | v.is_nan());
        match (windows.tiles, g.kernel.1) {
            (true, 2) => tile_max::<F, 2>(row, max),
            (true, 3) => tile_max::<F, 3>(row, max),
            _ if windows.slides.is_some() => slide_max(windows, g.kernel.1, row, max),
            _ => {
                for (m, &(c0, c1)) in max.iter_mut().zip(&windows.cols) {
                    *m = row[c0..c1]
                        .iter()
                        .fold(*m, |m, &v| if v > m { v } else { m });
                }
            }
        }
    }
    if nan {
        for (m, &cols) in max.iter_mut().zip(&windows.cols) {
            *m = argmax(plane, width, (r0, r1), cols).1;
        }
    }
}

/// The argmax of every window of output row `i` of a plane (its index in the plane), into
/// `index`, given the windows' maxima `max` ([`row_max`]'s answer, which backward reads off
/// the forward output instead of computing it again): [`argmax`]'s answer, window by window.
///
/// The first pixel equal to the window's maximum is its first maximum: a later pixel could
/// only have replaced an earlier equal one by being strictly larger than it. Scanning the
/// window backwards and keeping every match finds it without a data-dependent branch.
pub(crate) fn row_argmax<F: Float>(
    g: &Window2d,
    windows: &RowWindows,
    plane: &[F],
    i: usize,
    max: &[F],
    index: &mut [usize],
) {
    let width = g.input.1;
    let (r0, r1) = g.rows(i);
    let tile = match (windows.tiles, g.kernel.1) {
        (true, 2) => Some(tile_first::<F, 2> as fn(&[F], usize, &[F], &mut [usize])),
        (true, 3) => Some(tile_first::<F, 3> as fn(&[F], usize, &[F], &mut [usize])),
        _ => None,
    };
    if let Some(tile_first) = tile {
        for (j, k) in index.iter_mut().enumerate() {
            *k = r0 * width + j * g.kernel.1;
        }
        for r in (r0..r1).rev() {
            tile_first(plane_row(plane, width, r), r * width, max, index);
        }
        for ((k, &m), &cols) in index.iter_mut().zip(max).zip(&windows.cols) {
            if m.is_nan() {
                *k = argmax(plane, width, (r0, r1), cols).0;
            }
        }
        return;
    }
    let first_of = |j: usize| {
        let (c0, c1) = windows.cols[j];
        let m = max[j];
        if m.is_nan() {
            return argmax(plane, width, (r0, r1), (c0, c1)).0;
        }
        let mut first = r0 * width + c0;
        for r in (r0..r1).rev() {
            let start = r * width;
            let row = plane_row(plane, width, r);
            for (c, &v) in (c0..c1).zip(&row[c0..c1]).rev() {
                first = std::hint::select_unpredictable(v == m, start + c, first);
            }
        }
        first
    };
    let Some((a, b)) = windows.slides else {
        for (j, k) in index.iter_mut().enumerate() {
            *k = first_of(j);
        }
        return;
    };
    for j in windows.edges() {
        index[j] = first_of(j);
    }
    // The same backward scan for windows a..b, one run of the row per window column:
    // column t of window j is input column j - padding + t (a whole window starts at or
    // after column 0, so a >= padding).
    let c0 = windows.cols[a].0; // a - padding
    for (o, k) in index[a..b].iter_mut().enumerate() {
        *k = r0 * width + c0 + o;
    }
    for r in (r0..r1).rev() {
        let row = plane_row(plane, width, r);
        for t in (0..g.kernel.1).rev() {
            let run = &row[c0 + t..c0 + t + (b - a)];
            let start = r * width + c0 + t;
            for (o, ((k, &m), &v)) in index[a..b].iter_mut().zip(&max[a..b]).zip(run).enumerate() {
                *k = std::hint::select_unpredictable(v == m, start + o, *k);
            }
        }
    }
    for j in a..b {
        if max[j].is_nan() {
            index[j] = argmax(plane, width, (r0, r1), windows.cols[j]).0;
        }
    }
}

/// [`row_max`] on one input `row` for the windows of [`RowWindows::slides`] (the others
/// as in general): `kernel` runs of the row, each compared with a run of maxima.
fn slide_max<F: Float>(windows: &RowWindows, kernel: usize, row: &[F], max: &mut [F]) {
    for j in windows.edges() {
        let (c0, c1) = windows.cols[j];
        max[j] = row[c0..c1]
            .iter()
            .fold(max[j], |m, &v| if v > m { v } else { m });
    }
    let Some((a, b)) = windows.slides else {
        return;
    };
    let c0 = windows.cols[a].0; // window j of a..b starts at input column c0 + j - a
    for t in 0..kernel {
        let run = &row[c0 + t..c0 + t + (b - a)];
        for (m, &v) in max[a..b].iter_mut().zip(run) {
            *m = if v > *m { v } else { *m };
        }
    }
}

/// Row `r` of a plane `width` pixels wide.
fn plane_row<F>(plane: &[F], width: usize, r: usize) -> &[F] {
    plane
        .get(r * width..(r + 1) * width)
        .unwrap_or_else(|| panic!("BUG: row {r} outside a plane of {}", plane.len()))
}

/// [`row_argmax`]'s backward scan of one window row for windows of `K` columns that tile
/// `row` (which starts at `start` in the plane).
fn tile_first<F: Float, const K: usize>(row: &[F], start: usize, max: &[F], index: &mut [usize]) {
    for (j, ((chunk, &m), k)) in row.chunks_exact(K).zip(max).zip(index).enumerate() {
        let mut first = *k;
        for (q, &v) in chunk.iter().enumerate().rev() {
            first = std::hint::select_unpredictable(v == m, start + j * K + q, first);
        }
        *k = first;
    }
}

/// [`row_max`]'s update for windows of `K` columns that tile `row` from its start.
fn tile_max<F: Float, const K: usize>(row: &[F], max: &mut [F]) {
    for (chunk, m) in row.chunks_exact(K).zip(max.iter_mut()) {
        *m = chunk.iter().fold(*m, |m, &v| if v > m { v } else { m });
    }
}

/// The elements of `array` in row-major order: borrowed from `as_standard_layout()`'s result.
pub(crate) fn elements<'a, F: Float>(array: &'a CowArray<'a, F, IxDyn>) -> Cow<'a, [F]> {
    match array.as_slice() {
        Some(slice) => Cow::Borrowed(slice),
        // Unreachable after `as_standard_layout`, and still correct: a row-major copy.
        None => Cow::Owned(array.iter().copied().collect()),
    }
}

/// Plane `p` of `data`, planes being `len` elements long.
pub(crate) fn plane<F>(data: &[F], p: usize, len: usize) -> &[F] {
    data.get(p * len..(p + 1) * len)
        .unwrap_or_else(|| panic!("BUG: plane {p} of {len} elements outside {}", data.len()))
}

/// An array of `shape` (of `planes * plane_len` elements) whose plane `p` is written by
/// `kernel(p, plane)`, starting from zeros.
///
/// Each plane is computed by the same code whichever thread runs it and no plane reads
/// another's result, so the output does not depend on the thread count.
pub(crate) fn from_planes<F: Float>(
    op: &'static str,
    shape: &[usize],
    plane_len: usize,
    work_per_plane: usize,
    kernel: impl Fn(usize, &mut [F]) + Sync,
) -> Result<ArrayD<F>> {
    let len = shape::element_count(op, shape)?;
    // Each task zeroes its planes just before its kernel writes them, while in cache.
    let mut data = tapir_core::buffers::for_overwrite(len);
    let kernel = |p: usize, out: &mut [F]| {
        out.fill(F::zero());
        kernel(p, out);
    };
    // `plane_len` is never 0 (shapes have a pixel at least); `checked_div` just says so safely.
    if let Some(planes) = len.checked_div(plane_len) {
        if planes < 2 || planes.saturating_mul(work_per_plane) < PARALLEL_MIN_WORK {
            data.chunks_mut(plane_len)
                .enumerate()
                .for_each(|(p, out)| kernel(p, out));
        } else {
            // Enough planes per task that each task is worth a thread's wake-up.
            let min_planes = (PARALLEL_MIN_WORK / work_per_plane.max(1)).max(1);
            data.par_chunks_mut(plane_len)
                .enumerate()
                .with_min_len(min_planes)
                .for_each(|(p, out)| kernel(p, out));
        }
    } else {
        data.fill(F::zero());
    }
    ArrayD::from_shape_vec(IxDyn(shape), data).map_err(|e| Error::Contract {
        op,
        message: format!("output of shape {shape:?}: {e}"),
    })
}

/// A pooling that maps each `[H, W]` plane of its input to one plane of its output, alone:
/// the ops run it over a batch with [`pool_planes`] and [`unpool_planes`], and a convolution
/// fused with it (`conv2d::ConvReluPool`) runs it on each sample's maps while they are in
/// cache. One code path for both, so the fused op gives the same bits.
pub(crate) trait PlanePool<F: Float>: Sync {
    /// Elements of one input plane and of one output plane.
    fn plane_lens(&self) -> (usize, usize);
    /// Comparisons per input plane, to size parallel tasks.
    fn work_per_plane(&self) -> usize;
    /// Output plane `y` from input plane `x`; of `relu(x)` with `after_relu`.
    fn forward_plane(&self, x: &[F], y: &mut [F], after_relu: bool);
    /// Adds the gradient for input plane `x` into `dx` (zeros on entry), from the output
    /// plane `y` that [`PlanePool::forward_plane`] made and its gradient `dy`.
    fn backward_plane(&self, x: &[F], y: &[F], dy: &[F], dx: &mut [F], after_relu: bool);
}

/// A pooling op described by its planes ([`PlanePool`]): what the max poolings implement.
/// From it come their forward and backward ([`pool`], [`unpool`]), their form after a ReLU
/// (the [`AfterReluOp`] impl below) and their form after a ReLU after a convolution
/// (`conv2d::ConvReluPool`), all through the same plane code, hence the same bits.
pub(crate) trait PlanePooling<F: Float>: Op<F> + Clone + 'static {
    /// The name of the op fused with a ReLU before it (`"relu_max_pool2d"`).
    const RELU_FUSED_NAME: &'static str;
    /// The name of the op fused with a convolution and a ReLU before it
    /// (`"conv2d_relu_max_pool2d"`).
    const CONV_FUSED_NAME: &'static str;
    /// The planes of one input shape.
    type Planes: PlanePool<F>;
    /// The planes of an input of shape `input` `[N, C, H, W]`, or its shape error.
    fn planes(&self, input: &[usize]) -> Result<Self::Planes>;
}

/// `op(x)`, or `op(relu(x))` with `after_relu`.
pub(crate) fn pool<F: Float>(
    op: &impl PlanePooling<F>,
    x: &ArrayViewD<F>,
    after_relu: bool,
) -> Result<ArrayD<F>> {
    let planes = op.planes(x.shape())?;
    let shape = op.output_shape(&[x.shape()])?;
    pool_planes(op.name(), &planes, x, &shape, after_relu)
}

/// The input gradient of [`pool`]; `cx.output` is its result.
pub(crate) fn unpool<F: Float>(
    op: &impl PlanePooling<F>,
    cx: &BackwardCx<F>,
    after_relu: bool,
) -> Result<Vec<Option<ArrayD<F>>>> {
    let input = cx.inputs.first().map(|x| x.shape()).unwrap_or_default();
    let planes = op.planes(input)?;
    let shape = op.output_shape(&[input])?;
    unpool_planes(op.name(), &planes, cx, &shape, after_relu)
}

impl<F: Float, P: PlanePooling<F>> AfterReluOp<F> for P {
    const FUSED_NAME: &'static str = P::RELU_FUSED_NAME;

    fn forward_after_relu(&self, x: &ArrayViewD<F>) -> Result<ArrayD<F>> {
        pool(self, x, true)
    }

    fn backward_after_relu(&self, cx: &BackwardCx<F>) -> Result<Vec<Option<ArrayD<F>>>> {
        unpool(self, cx, true)
    }

    fn fused_after_relu(
        &self,
        producer: &dyn Op<F>,
        producer_inputs: &[&[usize]],
    ) -> Option<Arc<dyn Op<F>>> {
        conv2d::fuse_conv(self, producer, producer_inputs)
    }
}

/// The pooling `planes` of every plane of `x`, into an array of `shape`.
pub(crate) fn pool_planes<F: Float>(
    op: &'static str,
    planes: &impl PlanePool<F>,
    x: &ArrayViewD<F>,
    shape: &[usize],
    after_relu: bool,
) -> Result<ArrayD<F>> {
    let (in_len, out_len) = planes.plane_lens();
    let x = x.as_standard_layout();
    let x = elements(&x);
    from_planes(op, shape, out_len, planes.work_per_plane(), |p, y| {
        planes.forward_plane(plane(&x, p, in_len), y, after_relu);
    })
}

/// The input gradient of [`pool_planes`] (`None` if the input needs none); `cx.output` is
/// its result, of `shape`.
pub(crate) fn unpool_planes<F: Float>(
    op: &'static str,
    planes: &impl PlanePool<F>,
    cx: &BackwardCx<F>,
    shape: &[usize],
    after_relu: bool,
) -> Result<Vec<Option<ArrayD<F>>>> {
    if !cx.needs_grad(0) {
        return Ok(vec![None]);
    }
    check_backward(op, cx, shape, true)?;
    let (in_len, out_len) = planes.plane_lens();
    let x = cx.inputs[0].as_standard_layout();
    let x = elements(&x);
    let dy = cx.output_grad.as_standard_layout();
    let dy = elements(&dy);
    // The forward output holds every window's maximum: only the argmax is left to find.
    let y = cx.output.as_standard_layout();
    let y = elements(&y);
    let work = planes.work_per_plane();
    let dx = from_planes(op, cx.inputs[0].shape(), in_len, work, |p, dx| {
        let (y, dy) = (plane(&y, p, out_len), plane(&dy, p, out_len));
        planes.backward_plane(plane(&x, p, in_len), y, dy, dx, after_relu);
    })?;
    Ok(vec![Some(dx)])
}

/// Checks that backward was given an output gradient (and, with `output`, an output) of the
/// output's shape: the kernels index them plane by plane.
pub(crate) fn check_backward<F: Float>(
    op: &'static str,
    cx: &BackwardCx<F>,
    expected: &[usize],
    output: bool,
) -> Result<()> {
    let given = [
        ("output gradient", cx.output_grad.shape()),
        ("output", cx.output.shape()),
    ];
    for (what, shape) in given.into_iter().take(if output { 2 } else { 1 }) {
        if shape != expected {
            return Err(Error::shape(
                op,
                format!(
                    "backward: the {what} has shape {shape:?}, but the output for an input of \
                     shape {:?} has shape {expected:?}; pass the forward call's output and a \
                     gradient of its shape",
                    cx.inputs.first().map(|x| x.shape()).unwrap_or_default()
                ),
            ));
        }
    }
    Ok(())
}

/// Checks the input `[N, C, H, W]` of a global pool: `(N, C, H W)`.
pub(crate) fn global_shape(op: &'static str, input: &[usize]) -> Result<(usize, usize, usize)> {
    shape::expect_rank(op, "input", input, 4, NCHW)?;
    let pixels = shape::element_count(op, &input[2..])?;
    if pixels == 0 {
        return Err(Error::shape(
            op,
            format!("input {input:?} has no pixels; pooling needs height and width of at least 1"),
        ));
    }
    Ok((input[0], input[1], pixels))
}

#[cfg(test)]
mod tests {
    use ndarray::{Array, ArrayD};
    use tapir_core::{BackwardCx, Op};

    use crate::shape::Pair;
    use crate::{AvgPool2d, GlobalMaxPool, MaxPool2d};

    /// Forward and backward of `op` at `x` with output gradient `dy`, on `threads` threads.
    fn run(op: &dyn Op<f32>, x: &ArrayD<f32>, threads: usize) -> (ArrayD<f32>, ArrayD<f32>) {
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .build()
            .unwrap();
        pool.install(|| {
            let y = op.forward(&[x.view()]).unwrap();
            let dy = y.mapv(|v| v.sin());
            let cx = BackwardCx {
                inputs: &[x.view()],
                output: y.view(),
                output_grad: dy.view(),
                needs_grad: &[true],
            };
            let dx = op.backward(&cx).unwrap().remove(0).unwrap();
            (y, dx)
        })
    }

    #[test]
    fn row_kernels_agree_with_the_window_by_window_argmax() {
        // Few distinct values (many ties), a NaN and -inf here and there: every rule of
        // `argmax` is exercised, on tiling windows, on overlapping, padded ones, and on
        // sliding ones (stride 1) whose whole windows make runs shorter and longer than a
        // vector.
        for width in [9, 37] {
            let x: Vec<f64> = (0..7 * width)
                .map(|k| match k % 17 {
                    5 => f64::NAN,
                    11 => f64::NEG_INFINITY,
                    _ => ((k * 7) % 4) as f64,
                })
                .collect();
            let geometries = [
                (2, 2, 0),
                (3, 3, 0),
                (3, 1, 1),
                (2, 1, 1),
                (3, 2, 1),
                (3, 1, 0),
                (1, 1, 0),
                (5, 1, 2),
                (4, 1, 2),
            ];
            for (kernel, stride, padding) in geometries {
                let g = super::Window2d::new(
                    "test",
                    &[1, 1, 7, width],
                    Pair::Both(kernel),
                    Some(Pair::Both(stride)),
                    Pair::Both(padding),
                )
                .unwrap();
                let windows = super::RowWindows::new(&g);
                assert_eq!(windows.slides.is_some(), stride == 1);
                let ow = g.output.1;
                let (mut max, mut index) = (vec![0.0; ow], vec![0; ow]);
                for i in 0..g.output.0 {
                    super::row_max(&g, &windows, &x, i, &mut max);
                    super::row_argmax(&g, &windows, &x, i, &max, &mut index);
                    for j in 0..ow {
                        let (m, v) = super::argmax(&x, width, g.rows(i), g.cols(j));
                        let at = format!(
                            "width {width}, kernel {kernel} stride {stride} padding {padding} ({i}, {j})"
                        );
                        assert_eq!(index[j], m, "{at}");
                        assert_eq!(max[j].to_bits(), v.to_bits(), "{at}");
                    }
                }
            }
        }
    }

    #[test]
    fn a_backward_call_with_misshaped_values_is_an_error_not_a_panic() {
        let x = Array::from_shape_fn((1, 2, 4, 4), |(_, c, a, b)| (c * 16 + a * 4 + b) as f32)
            .into_dyn();
        let wrong = ArrayD::<f32>::zeros(vec![1, 2, 3, 3]);
        let ops: [&dyn Op<f32>; 4] = [
            &MaxPool2d {
                kernel: Pair::Both(2),
                stride: None,
                padding: Pair::Both(0),
            },
            &AvgPool2d {
                kernel: Pair::Both(2),
                stride: None,
                padding: Pair::Both(0),
                count_include_pad: true,
            },
            &GlobalMaxPool,
            &crate::GlobalAvgPool,
        ];
        for op in ops {
            let y = op.forward(&[x.view()]).unwrap();
            for (output, output_grad) in [(&y, &wrong), (&wrong, &y)] {
                let cx = BackwardCx {
                    inputs: &[x.view()],
                    output: output.view(),
                    output_grad: output_grad.view(),
                    needs_grad: &[true],
                };
                let name = op.name();
                match op.backward(&cx) {
                    Err(e) => assert!(e.to_string().contains("backward: the"), "{name}: {e}"),
                    // Average pooling reads no output: only a wrong gradient is an error.
                    Ok(_) => assert!(name.contains("avg") && output_grad.shape() == y.shape()),
                }
            }
        }
    }

    #[test]
    fn results_do_not_depend_on_the_thread_count() {
        // 64 planes of 32x32: enough work to take the parallel path.
        let x = Array::from_shape_fn((4, 16, 32, 32), |(n, c, a, b)| {
            ((n * 31 + c * 17 + a * 7 + b * 3) % 23) as f32 * 0.37 - 4.0
        })
        .into_dyn();
        let ops: [&dyn Op<f32>; 3] = [
            &MaxPool2d {
                kernel: Pair::Both(3),
                stride: Some(Pair::Both(2)),
                padding: Pair::Both(1),
            },
            &AvgPool2d {
                kernel: Pair::Both(3),
                stride: Some(Pair::Both(1)),
                padding: Pair::Both(1),
                count_include_pad: false,
            },
            &GlobalMaxPool,
        ];
        for op in ops {
            let one = run(op, &x, 1);
            let four = run(op, &x, 4);
            assert_eq!(one, four, "{}", op.name());
        }
    }
}
