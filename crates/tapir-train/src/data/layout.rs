//! The `quadrants` layout of the translation-invariance experiment, as its protocol defines it.
//!
//! Each of the two classes' samples is shuffled and split 80/20 into a training and a
//! validation pool (1,000 samples: 800 and 200). Silhouettes (28x28) are pasted on a 56x56
//! canvas of zeros, pixels scaled to [0, 1], at one of four quadrant offsets (row, col): TL
//! (0,0), TR (0,28), BL (28,0), BR (28,28).
//! - training: class 0 at a random one of TL, TR, BL; class 1 at BR;
//! - `same`: the validation pool, laid out like the training set;
//! - `swapped`: class 0 at BR, class 1 at a random one of TL, TR, BL;
//! - `anywhere`: every sample at a uniformly random offset in [0, 28] x [0, 28].
//!
//! Everything random comes from one seed: each step draws from its own stream of a
//! `ChaCha8Rng` seeded with it (split 0, training 1, `same` 2, `swapped` 3, `anywhere` 4), so
//! one step's draws never shift another's, and the same seed gives bit-identical sets.

use ndarray::{Array2, Array4, ArrayView2, ArrayView4, ArrayViewMut2, Axis, Slice};
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use super::animal_mnist::{AnimalMnist, SIDE};
use super::classes::ClassPair;
use super::error::DataError;

/// The side of the canvas, in pixels.
pub const CANVAS: usize = 2 * SIDE;
/// The largest offset, in rows or columns, that keeps a silhouette on the canvas.
pub const MAX_OFFSET: usize = CANVAS - SIDE;

/// The share of each class that goes to training, as a fraction: 4/5.
const TRAIN_SHARE: (usize, usize) = (4, 5);

/// The random streams of [`Quadrants::build`], one per step.
const SPLIT_STREAM: u64 = 0;
const TRAIN_STREAM: u64 = 1;
const SAME_STREAM: u64 = 2;
const SWAPPED_STREAM: u64 = 3;
const ANYWHERE_STREAM: u64 = 4;

/// Where a silhouette's top-left pixel sits on the canvas.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Offset {
    /// Rows from the top.
    pub row: usize,
    /// Columns from the left.
    pub col: usize,
}

impl Offset {
    /// The offset `(row, col)`.
    pub const fn new(row: usize, col: usize) -> Self {
        Offset { row, col }
    }
}

/// One of the canvas's four quarters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Quadrant {
    /// TL, offset (0, 0).
    TopLeft,
    /// TR, offset (0, 28).
    TopRight,
    /// BL, offset (28, 0).
    BottomLeft,
    /// BR, offset (28, 28).
    BottomRight,
}

impl Quadrant {
    /// All four, in reading order.
    pub const ALL: [Quadrant; 4] = [
        Quadrant::TopLeft,
        Quadrant::TopRight,
        Quadrant::BottomLeft,
        Quadrant::BottomRight,
    ];
    /// The three where class 0 trains (and class 1 is shown in `swapped`).
    pub const NOT_BOTTOM_RIGHT: [Quadrant; 3] =
        [Quadrant::TopLeft, Quadrant::TopRight, Quadrant::BottomLeft];

    /// The offset of a silhouette filling this quadrant.
    pub const fn offset(self) -> Offset {
        match self {
            Quadrant::TopLeft => Offset::new(0, 0),
            Quadrant::TopRight => Offset::new(0, SIDE),
            Quadrant::BottomLeft => Offset::new(SIDE, 0),
            Quadrant::BottomRight => Offset::new(SIDE, SIDE),
        }
    }

    /// The quadrant a silhouette at `offset` fills exactly, if any.
    pub fn at(offset: Offset) -> Option<Quadrant> {
        Quadrant::ALL.into_iter().find(|q| q.offset() == offset)
    }

    /// The short name: TL, TR, BL or BR.
    pub const fn name(self) -> &'static str {
        match self {
            Quadrant::TopLeft => "TL",
            Quadrant::TopRight => "TR",
            Quadrant::BottomLeft => "BL",
            Quadrant::BottomRight => "BR",
        }
    }

    fn random_not_bottom_right<R: Rng + ?Sized>(rng: &mut R) -> Quadrant {
        Quadrant::NOT_BOTTOM_RIGHT[rng.random_range(0..Quadrant::NOT_BOTTOM_RIGHT.len())]
    }
}

/// A uniformly random offset in [0, 28] x [0, 28]: anywhere the silhouette stays on the canvas.
pub fn random_offset<R: Rng + ?Sized>(rng: &mut R) -> Offset {
    Offset::new(
        rng.random_range(0..=MAX_OFFSET),
        rng.random_range(0..=MAX_OFFSET),
    )
}

/// Writes `silhouette` scaled to [0, 1] into `canvas` at `offset`, leaving the rest as it is.
pub fn paste(
    mut canvas: ArrayViewMut2<'_, f32>,
    silhouette: ArrayView2<'_, u8>,
    offset: Offset,
) -> Result<(), DataError> {
    let (height, width) = silhouette.dim();
    let (rows, cols) = canvas.dim();
    let fits = |start: usize, size: usize, limit: usize| {
        start.checked_add(size).is_some_and(|end| end <= limit)
    };
    if !(fits(offset.row, height, rows) && fits(offset.col, width, cols)) {
        return Err(DataError::Invalid(format!(
            "a {height}x{width} silhouette at offset (row {}, col {}) leaves the {rows}x{cols} \
             canvas; offsets run from 0 to {} down and 0 to {} across",
            offset.row,
            offset.col,
            rows.saturating_sub(height),
            cols.saturating_sub(width),
        )));
    }
    window(canvas.view_mut(), offset, height, width).zip_mut_with(&silhouette, |out, &pixel| {
        *out = f32::from(pixel) / 255.0;
    });
    Ok(())
}

/// The `height` x `width` part of `canvas` at `offset`; the caller checked that it fits.
fn window(
    mut canvas: ArrayViewMut2<'_, f32>,
    offset: Offset,
    height: usize,
    width: usize,
) -> ArrayViewMut2<'_, f32> {
    canvas.slice_axis_inplace(Axis(0), Slice::from(offset.row..offset.row + height));
    canvas.slice_axis_inplace(Axis(1), Slice::from(offset.col..offset.col + width));
    canvas
}

/// Which silhouette a sample shows, and where.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Placement {
    /// The silhouette's index in the [`AnimalMnist`] data.
    pub source: usize,
    /// Where it sits on the canvas.
    pub offset: Offset,
}

/// Samples laid out on canvases: images `[n, 1, 56, 56]`, task labels (0 or 1) and where
/// each image came from. Outside its silhouette, every canvas is 0.
#[derive(Debug, Clone, PartialEq)]
pub struct PlacedSet {
    images: Array4<f32>,
    labels: Vec<usize>,
    placements: Vec<Placement>,
}

impl PlacedSet {
    /// Pastes each placement's silhouette on its own canvas; `labels` has one label each.
    pub fn build(
        data: &AnimalMnist,
        placements: Vec<Placement>,
        labels: Vec<usize>,
    ) -> Result<Self, DataError> {
        if placements.len() != labels.len() {
            return Err(DataError::Invalid(format!(
                "{} placements but {} labels; give one label per placement",
                placements.len(),
                labels.len()
            )));
        }
        let mut images = Array4::zeros((placements.len(), 1, CANVAS, CANVAS));
        for (i, (placement, mut image)) in
            placements.iter().zip(images.outer_iter_mut()).enumerate()
        {
            let silhouette = data.image(placement.source).ok_or_else(|| {
                DataError::Invalid(format!(
                    "sample {i}: silhouette {} does not exist; the data has {}",
                    placement.source,
                    data.len()
                ))
            })?;
            paste(
                image.index_axis_mut(Axis(0), 0),
                silhouette,
                placement.offset,
            )
            .map_err(|e| DataError::Invalid(format!("sample {i}: {e}")))?;
        }
        Ok(PlacedSet {
            images,
            labels,
            placements,
        })
    }

    /// The canvases, `[n, 1, 56, 56]`, pixels in [0, 1].
    pub fn images(&self) -> ArrayView4<'_, f32> {
        self.images.view()
    }

    /// One task label (0 or 1) per sample.
    pub fn labels(&self) -> &[usize] {
        &self.labels
    }

    /// Which silhouette each sample shows, and where.
    pub fn placements(&self) -> &[Placement] {
        &self.placements
    }

    /// How many samples.
    pub fn len(&self) -> usize {
        self.labels.len()
    }

    /// Whether there are no samples.
    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }

    /// Moves every silhouette to a new [`random_offset`]: the training set of `fcn-aug`,
    /// drawn anew each epoch. Clone the set first to keep the original layout.
    pub fn reposition_randomly<R: Rng + ?Sized>(&mut self, rng: &mut R) {
        let mut silhouette = Array2::<f32>::zeros((SIDE, SIDE));
        for (placement, mut image) in self.placements.iter_mut().zip(self.images.outer_iter_mut()) {
            let old = placement.offset;
            let new = random_offset(rng);
            let mut canvas = image.index_axis_mut(Axis(0), 0);
            // Every canvas is zero outside its silhouette's window (see `build`), so cutting
            // the window out and clearing it leaves an empty canvas.
            let mut old_window = window(canvas.view_mut(), old, SIDE, SIDE);
            silhouette.assign(&old_window);
            old_window.fill(0.0);
            window(canvas, new, SIDE, SIDE).assign(&silhouette);
            placement.offset = new;
        }
    }
}

/// Each task class's silhouettes (indices into the data), shuffled and split 80/20.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Split {
    /// The training pools of task classes 0 and 1.
    pub train: [Vec<usize>; 2],
    /// The validation pools of task classes 0 and 1.
    pub validation: [Vec<usize>; 2],
}

impl Split {
    /// Shuffles each class's indices with `rng`; the first 80% train, the rest validate.
    fn draw(
        data: &AnimalMnist,
        classes: ClassPair,
        rng: &mut ChaCha8Rng,
    ) -> Result<Self, DataError> {
        let mut train: [Vec<usize>; 2] = Default::default();
        let mut validation: [Vec<usize>; 2] = Default::default();
        for (k, (label, name)) in classes
            .labels()
            .into_iter()
            .zip(classes.names())
            .enumerate()
        {
            let mut indices = data.indices_of(label);
            let total = indices.len();
            let n_train = total * TRAIN_SHARE.0 / TRAIN_SHARE.1;
            if n_train == 0 || n_train == total {
                return Err(DataError::Invalid(format!(
                    "class \"{name}\" has {total} sample{}; the quadrants layout keeps 80% of each \
                     class for training and the rest for validation, so it needs at least 2 of \
                     each",
                    if total == 1 { "" } else { "s" },
                )));
            }
            indices.shuffle(rng);
            validation[k] = indices.split_off(n_train);
            train[k] = indices;
        }
        Ok(Split { train, validation })
    }
}

/// The experiment's four sets, built from one seed.
#[derive(Debug, Clone, PartialEq)]
pub struct Quadrants {
    /// The two classes: task class 0 first.
    pub classes: ClassPair,
    /// Which silhouettes train and which validate.
    pub split: Split,
    /// Class 0 at TL, TR or BL, class 1 at BR.
    pub train: PlacedSet,
    /// The validation pool laid out like the training set.
    pub same: PlacedSet,
    /// The validation pool with the quadrants swapped: class 0 at BR, class 1 at TL, TR or BL.
    pub swapped: PlacedSet,
    /// The validation pool at uniformly random offsets.
    pub anywhere: PlacedSet,
}

impl Quadrants {
    /// Splits `data`'s two `classes` and lays out the four sets, all randomness from `seed`.
    pub fn build(data: &AnimalMnist, classes: ClassPair, seed: u64) -> Result<Self, DataError> {
        let split = Split::draw(data, classes, &mut stream(seed, SPLIT_STREAM))?;
        let quadrant = |class: usize, rng: &mut ChaCha8Rng, bottom_right_class: usize| {
            if class == bottom_right_class {
                Quadrant::BottomRight.offset()
            } else {
                Quadrant::random_not_bottom_right(rng).offset()
            }
        };
        let train = lay_out(data, &split.train, TRAIN_STREAM, seed, |c, rng| {
            quadrant(c, rng, 1)
        })?;
        let same = lay_out(data, &split.validation, SAME_STREAM, seed, |c, rng| {
            quadrant(c, rng, 1)
        })?;
        let swapped = lay_out(data, &split.validation, SWAPPED_STREAM, seed, |c, rng| {
            quadrant(c, rng, 0)
        })?;
        let anywhere = lay_out(data, &split.validation, ANYWHERE_STREAM, seed, |_, rng| {
            random_offset(rng)
        })?;
        Ok(Quadrants {
            classes,
            split,
            train,
            same,
            swapped,
            anywhere,
        })
    }
}

/// The `ChaCha8Rng` of `seed`, on its stream `stream`.
fn stream(seed: u64, stream: u64) -> ChaCha8Rng {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    rng.set_stream(stream);
    rng
}

/// Class 0's pool then class 1's, each sample where `offset(class, rng)` says.
fn lay_out(
    data: &AnimalMnist,
    pools: &[Vec<usize>; 2],
    stream_id: u64,
    seed: u64,
    offset: impl Fn(usize, &mut ChaCha8Rng) -> Offset,
) -> Result<PlacedSet, DataError> {
    let mut rng = stream(seed, stream_id);
    let mut placements = Vec::new();
    let mut labels = Vec::new();
    for (class, pool) in pools.iter().enumerate() {
        for &source in pool {
            placements.push(Placement {
                source,
                offset: offset(class, &mut rng),
            });
            labels.push(class);
        }
    }
    PlacedSet::build(data, placements, labels)
}

#[cfg(test)]
mod tests {
    use ndarray::Array3;

    use super::*;

    /// `per_class` samples each of dog (4) and cat (2), every pixel of sample `i` equal to `i`.
    fn tiny(dogs: usize, cats: usize) -> AnimalMnist {
        let labels: Vec<u8> = [vec![4; dogs], vec![2; cats]].concat();
        let images = Array3::from_shape_fn((labels.len(), SIDE, SIDE), |(i, _, _)| {
            u8::try_from(i + 1).unwrap()
        });
        AnimalMnist::from_arrays(images, labels).unwrap()
    }

    #[test]
    fn quadrant_offsets() {
        let offsets: Vec<(usize, usize)> = Quadrant::ALL
            .iter()
            .map(|q| (q.offset().row, q.offset().col))
            .collect();
        assert_eq!(offsets, [(0, 0), (0, 28), (28, 0), (28, 28)]);
        assert_eq!(Quadrant::at(Offset::new(28, 0)), Some(Quadrant::BottomLeft));
        assert_eq!(Quadrant::at(Offset::new(27, 0)), None);
        assert_eq!(Quadrant::BottomRight.name(), "BR");
    }

    #[test]
    fn paste_scales_to_unit_range_and_keeps_the_rest() {
        let mut canvas = Array2::from_elem((4, 5), 0.5f32);
        let silhouette = ndarray::arr2(&[[0u8, 255], [51, 102]]);
        paste(canvas.view_mut(), silhouette.view(), Offset::new(2, 3)).unwrap();
        // 51 / 255 = 0.2, 102 / 255 = 0.4.
        assert_eq!(canvas.row(2).to_vec(), [0.5, 0.5, 0.5, 0.0, 1.0]);
        assert_eq!(canvas.row(3).to_vec(), [0.5, 0.5, 0.5, 0.2, 0.4]);
        assert!(
            canvas
                .rows()
                .into_iter()
                .take(2)
                .flatten()
                .all(|&v| v == 0.5)
        );
    }

    #[test]
    fn paste_outside_the_canvas() {
        let mut canvas = Array2::zeros((CANVAS, CANVAS));
        let silhouette = Array2::<u8>::zeros((SIDE, SIDE));
        let err = paste(canvas.view_mut(), silhouette.view(), Offset::new(0, 29)).unwrap_err();
        assert_eq!(
            err.to_string(),
            "a 28x28 silhouette at offset (row 0, col 29) leaves the 56x56 canvas; offsets run \
             from 0 to 28 down and 0 to 28 across"
        );
        let far = Offset::new(usize::MAX, 0);
        assert!(paste(canvas.view_mut(), silhouette.view(), far).is_err());
    }

    #[test]
    fn build_checks_its_arguments() {
        let data = tiny(1, 1);
        let at = |source, row, col| Placement {
            source,
            offset: Offset::new(row, col),
        };
        let err = |placements, labels| {
            PlacedSet::build(&data, placements, labels)
                .unwrap_err()
                .to_string()
        };
        assert_eq!(
            err(vec![at(0, 0, 0)], vec![]),
            "1 placements but 0 labels; give one label per placement"
        );
        assert_eq!(
            err(vec![at(0, 0, 0), at(2, 0, 0)], vec![0, 1]),
            "sample 1: silhouette 2 does not exist; the data has 2"
        );
        assert_eq!(
            err(vec![at(1, 30, 0)], vec![1]),
            "sample 0: a 28x28 silhouette at offset (row 30, col 0) leaves the 56x56 canvas; \
             offsets run from 0 to 28 down and 0 to 28 across"
        );
    }

    #[test]
    fn pools_follow_the_class_sizes() {
        // 10 dogs: 8 train, 2 validate; 5 cats: 4 and 1.
        let sets = Quadrants::build(&tiny(10, 5), ClassPair::default(), 0).unwrap();
        assert_eq!(sets.split.train.each_ref().map(Vec::len), [8, 4]);
        assert_eq!(sets.split.validation.each_ref().map(Vec::len), [2, 1]);
        assert_eq!(sets.train.len(), 12);
        assert_eq!(sets.anywhere.len(), 3);
    }

    #[test]
    fn too_few_samples_of_a_class() {
        let err = Quadrants::build(&tiny(5, 1), ClassPair::default(), 0).unwrap_err();
        assert_eq!(
            err.to_string(),
            "class \"cat\" has 1 sample; the quadrants layout keeps 80% of each class for \
             training and the rest for validation, so it needs at least 2 of each"
        );
        let err = Quadrants::build(&tiny(5, 5), ClassPair::parse("dog,zebra").unwrap(), 0);
        assert_eq!(
            err.unwrap_err().to_string(),
            "class \"zebra\" has 0 samples; the quadrants layout keeps 80% of each class for \
             training and the rest for validation, so it needs at least 2 of each"
        );
    }
}
