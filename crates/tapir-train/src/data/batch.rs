//! Batches of a [`PlacedSet`], in a seeded random order or in order, ready for a network:
//! images `[b, 1, 56, 56]` and labels `[b]` as floats (the class indices that
//! `softmax_cross_entropy` takes).

use ndarray::{Array1, ArrayD, Axis};
use rand::Rng;
use rand::seq::SliceRandom;

use super::error::DataError;
use super::layout::PlacedSet;

/// One batch: images `[b, 1, 56, 56]` and task labels `[b]` stored as floats.
pub type Batch = (ArrayD<f32>, ArrayD<f32>);

/// An iterator over a set's batches; the last one holds what is left and may be smaller.
#[derive(Debug, Clone)]
pub struct Batches<'a> {
    set: &'a PlacedSet,
    order: Vec<usize>,
    batch_size: usize,
    next: usize,
}

impl<'a> Batches<'a> {
    /// Every sample once, in an order drawn from `rng` (a permutation per call: call it
    /// once per epoch).
    pub fn shuffled<R: Rng + ?Sized>(
        set: &'a PlacedSet,
        batch_size: usize,
        rng: &mut R,
    ) -> Result<Self, DataError> {
        let mut batches = Self::in_order(set, batch_size)?;
        batches.order.shuffle(rng);
        Ok(batches)
    }

    /// Every sample once, in the set's order (for evaluation).
    pub fn in_order(set: &'a PlacedSet, batch_size: usize) -> Result<Self, DataError> {
        if batch_size == 0 {
            return Err(DataError::BatchSize);
        }
        Ok(Batches {
            set,
            order: (0..set.len()).collect(),
            batch_size,
            next: 0,
        })
    }

    /// The samples' positions in the set, in the order the batches take them.
    pub fn order(&self) -> &[usize] {
        &self.order
    }
}

impl Iterator for Batches<'_> {
    type Item = Batch;

    fn next(&mut self) -> Option<Batch> {
        let start = self.next;
        if start >= self.order.len() {
            return None;
        }
        let end = (start + self.batch_size).min(self.order.len());
        self.next = end;
        let picked = &self.order[start..end];
        let images = self.set.images().select(Axis(0), picked).into_dyn();
        let labels = picked
            .iter()
            .map(|&i| self.set.labels()[i] as f32)
            .collect::<Array1<f32>>()
            .into_dyn();
        Some((images, labels))
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        let left = self.order.len() - self.next.min(self.order.len());
        let batches = left.div_ceil(self.batch_size);
        (batches, Some(batches))
    }
}

impl ExactSizeIterator for Batches<'_> {}
