//! Large buffers kept for reuse, from one training step to the next.
//!
//! A training step makes and frees the same large tensors every time (in
//! `graphs/cnn-2.ron` at batch 64, about 37 MB of activations and gradients). An allocator
//! hands memory of that size back to the operating system soon after it is freed, and the
//! next step pays for it again: a page fault, and a page cleared by the kernel, for every
//! 4 KiB. In a `perf` profile of that step this was 12% of the time.
//!
//! So the tape gives large arrays back here when they die (a [`Var`](crate::Var) dropped
//! last, a gradient consumed by backward, a tape dropped), and the ops that make large
//! outputs take their memory with [`for_overwrite`] or [`zeroed`]. An op of your own may do
//! the same; one that allocates as usual works just as well, only without the reuse.
//!
//! What is kept: buffers of at least [`MIN_BYTES`] of exactly the size of one of the last
//! [`RECENT_REQUESTS`] requests (the size this module made them), no more of a size than
//! those requests asked for, so that an array made elsewhere (an input batch) is simply
//! freed. A request takes the smallest kept buffer that holds it without wasting more than
//! a quarter of the buffer. A kept buffer that [`IDLE_TAKES`] requests have passed over is
//! freed too (a tensor of a batch size no longer in use), and never more than
//! [`MAX_KEPT_BYTES`] are kept: the oldest go first.
//! [`release`] frees them all.
//!
//! Reuse changes where a result is stored, never its value: [`for_overwrite`] is for callers
//! that write every element (in debug builds it fills the buffer with NaN, so that tests
//! catch an element left unwritten), [`zeroed`] for callers that add into zeros.

use std::any::Any;
use std::mem::size_of;
use std::sync::{Mutex, MutexGuard};

use ndarray::{Array, ArrayD, Dimension};

use crate::float::Float;

/// Buffers smaller than this are left to the allocator, which keeps them itself.
pub const MIN_BYTES: usize = 256 * 1024;

/// A kept buffer that this many requests have passed over is freed.
pub const IDLE_TAKES: u64 = 64;

/// A buffer given back is kept only if one of this many latest requests was of its size.
pub const RECENT_REQUESTS: usize = 64;

/// At most this much memory is kept.
pub const MAX_KEPT_BYTES: usize = 1 << 30;

/// A kept `Vec<F>`, boxed so that `f32` and `f64` buffers share one list.
struct Kept {
    /// Its capacity, in bytes.
    bytes: usize,
    /// [`Shelf::takes`] when it was given back.
    given_at: u64,
    buffer: Box<dyn Any + Send>,
}

/// The kept buffers, oldest first, and the requests they serve.
struct Shelf {
    kept: Vec<Kept>,
    bytes: usize,
    /// Requests so far, to age the kept buffers.
    takes: u64,
    /// The sizes in bytes of the latest requests of at least [`MIN_BYTES`], a ring.
    wanted: Vec<usize>,
}

static SHELF: Mutex<Shelf> = Mutex::new(Shelf::new());

fn shelf() -> MutexGuard<'static, Shelf> {
    // A panic while the lock was held leaves only a list of spare buffers behind: still
    // sound to use.
    SHELF
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Whether a buffer of `bytes` serves a request of `need` bytes: without wasting more than
/// a quarter of itself.
fn serves(bytes: usize, need: usize) -> bool {
    bytes >= need && bytes - need <= bytes / 4
}

impl Shelf {
    const fn new() -> Self {
        Shelf {
            kept: Vec::new(),
            bytes: 0,
            takes: 0,
            wanted: Vec::new(),
        }
    }

    /// Takes out the smallest kept `Vec<F>` that serves a request for `len` elements.
    fn take<F: Float>(&mut self, len: usize) -> Option<Vec<F>> {
        let need = len.checked_mul(size_of::<F>())?;
        if need < MIN_BYTES {
            return None;
        }
        // Which request this is fixes its place in the ring (the ring is never longer).
        let place = (self.takes % RECENT_REQUESTS as u64) as usize;
        match self.wanted.get_mut(place) {
            Some(slot) => *slot = need,
            None => self.wanted.push(need),
        }
        self.takes += 1;
        let fits = |k: &Kept| k.buffer.is::<Vec<F>>() && serves(k.bytes, need);
        let (position, _) = self
            .kept
            .iter()
            .enumerate()
            .filter(|(_, k)| fits(k))
            .min_by_key(|(_, k)| k.bytes)?;
        let kept = self.kept.remove(position);
        self.bytes -= kept.bytes;
        kept.buffer.downcast::<Vec<F>>().ok().map(|boxed| *boxed)
    }

    /// Keeps `buffer`; returns what no longer fits or was idle too long, to be freed after
    /// the lock is released.
    fn give<F: Float>(&mut self, buffer: Vec<F>) -> Vec<Kept> {
        let bytes = buffer.capacity().saturating_mul(size_of::<F>());
        let mut freed = Vec::new();
        // Buffers made here are made to the size of a request, and never grow. No more of
        // a size are kept than the latest requests asked for: arrays of that size made
        // elsewhere (by an op that allocates as usual) and given back on every step would
        // otherwise pile up, as nothing takes them and only takes age them.
        let wanted = self.wanted.iter().filter(|&&need| need == bytes).count();
        let kept = self.kept.iter().filter(|k| k.bytes == bytes).count();
        if kept >= wanted || !(MIN_BYTES..=MAX_KEPT_BYTES).contains(&bytes) {
            return freed; // and `buffer` is freed on return
        }
        let takes = self.takes;
        let (idle, kept): (Vec<Kept>, Vec<Kept>) = std::mem::take(&mut self.kept)
            .into_iter()
            .partition(|k| takes - k.given_at > IDLE_TAKES);
        self.kept = kept;
        self.bytes -= idle.iter().map(|k| k.bytes).sum::<usize>();
        freed.extend(idle);
        while self.bytes + bytes > MAX_KEPT_BYTES && !self.kept.is_empty() {
            let oldest = self.kept.remove(0);
            self.bytes -= oldest.bytes;
            freed.push(oldest);
        }
        self.bytes += bytes;
        self.kept.push(Kept {
            bytes,
            given_at: takes,
            buffer: Box::new(buffer),
        });
        freed
    }
}

/// A vector of `len` elements whose values are unspecified (the previous user's), for a
/// caller that writes every one of them. In debug builds every element is NaN.
pub fn for_overwrite<F: Float>(len: usize) -> Vec<F> {
    let fill = if cfg!(debug_assertions) {
        F::nan()
    } else {
        F::zero()
    };
    match shelf().take::<F>(len) {
        Some(mut buffer) => {
            // Every kept buffer holds initialised elements up to its length; a shorter one
            // is lengthened, a longer one cut.
            buffer.resize(len, fill);
            if cfg!(debug_assertions) {
                buffer.fill(fill);
            }
            buffer
        }
        // A fresh allocation of zeros costs the allocator nothing to clear.
        None => vec![fill; len],
    }
}

/// An array of `shape` in memory from [`for_overwrite`] (standard layout), for a caller that
/// writes every element.
pub fn array_for_overwrite<F: Float, D: Dimension>(shape: D) -> Array<F, D> {
    let len = shape.size();
    // The vector holds exactly the shape's element count, in row-major order: it always fits.
    Array::from_shape_vec(shape, for_overwrite(len))
        .unwrap_or_else(|e| panic!("BUG: an array of {len} elements from as many: {e}"))
}

/// A vector of `len` zeros, for a caller that adds into it.
pub fn zeroed<F: Float>(len: usize) -> Vec<F> {
    match shelf().take::<F>(len) {
        Some(mut buffer) => {
            buffer.clear();
            buffer.resize(len, F::zero());
            buffer
        }
        None => vec![F::zero(); len],
    }
}

/// Gives `buffer` back for reuse (or frees it, if it is too small to keep).
pub fn give<F: Float>(buffer: Vec<F>) {
    if buffer.capacity().saturating_mul(size_of::<F>()) < MIN_BYTES {
        return;
    }
    let freed = shelf().give(buffer);
    drop(freed);
}

/// Gives the memory of `array` back for reuse.
pub fn give_array<F: Float>(array: ArrayD<F>) {
    if array.len().saturating_mul(size_of::<F>()) >= MIN_BYTES {
        give(array.into_raw_vec_and_offset().0);
    }
}

/// Frees every kept buffer (at the end of training, say).
pub fn release() {
    let kept = {
        let mut shelf = shelf();
        shelf.bytes = 0;
        std::mem::take(&mut shelf.kept)
    };
    drop(kept);
}

/// How many bytes are kept now.
pub fn kept_bytes() -> usize {
    shelf().bytes
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Tests share the one shelf: each uses its own sizes, so that the buffers of a test
    /// running beside it never fit its requests.
    fn elements(kib: usize) -> usize {
        kib * 1024 / size_of::<f32>()
    }

    #[test]
    fn a_given_buffer_is_taken_again() {
        let len = elements(500);
        let mut buffer = zeroed::<f32>(len);
        buffer[0] = 7.0;
        let address = buffer.as_ptr() as usize;
        give(buffer);
        let again = zeroed::<f32>(len);
        assert_eq!(again.as_ptr() as usize, address);
        assert!(again.iter().all(|&v| v == 0.0), "zeroed holds zeros");
    }

    #[test]
    fn overwrite_buffers_are_poisoned_in_debug_builds() {
        let len = elements(1100);
        give(for_overwrite::<f32>(len));
        let buffer = for_overwrite::<f32>(len);
        assert_eq!(buffer.len(), len);
        if cfg!(debug_assertions) {
            assert!(buffer.iter().all(|v| v.is_nan()));
        }
    }

    #[test]
    fn arrays_for_overwrite_have_their_shape_in_row_major_order() {
        let array = array_for_overwrite::<f64, _>(ndarray::Ix3(2, 3, 40_000));
        assert_eq!(array.shape(), &[2, 3, 40_000]);
        assert!(array.is_standard_layout());
        if cfg!(debug_assertions) {
            assert!(array.iter().all(|v| v.is_nan()));
        }
    }

    #[test]
    fn small_buffers_and_poor_fits_are_not_used() {
        let mut shelf = Shelf::new();
        assert!(shelf.take::<f32>(16).is_none());
        shelf.give(vec![0.0_f32; 16]);
        assert!(
            shelf.kept.is_empty(),
            "the allocator keeps small buffers itself"
        );

        let big = elements(8000);
        assert!(shelf.take::<f32>(big).is_none());
        shelf.give(vec![0.0_f32; big]);
        // Serving half its size would waste half of it.
        assert!(shelf.take::<f32>(big / 2).is_none());
        // Nor is an f32 buffer an f64 one, though of the same bytes.
        assert!(shelf.take::<f64>(big / 2).is_none());
        assert_eq!(shelf.take::<f32>(big).map(|b| b.len()), Some(big));
    }

    #[test]
    fn only_buffers_a_recent_request_could_use_are_kept() {
        let mut shelf = Shelf::new();
        let len = elements(300);
        shelf.give(vec![0.0_f32; len]);
        assert!(shelf.kept.is_empty(), "nobody asked for 300 KiB");
        assert!(shelf.take::<f32>(len).is_none());
        shelf.give(vec![0.0_f32; len]);
        assert_eq!(shelf.bytes, len * 4);
        assert!(shelf.take::<f32>(len).is_some());
        assert_eq!(shelf.bytes, 0);
        // Nor for a buffer a little larger than any request: not one of the shelf's.
        shelf.give(vec![0.0_f32; len + 1]);
        assert!(shelf.kept.is_empty());
    }

    #[test]
    fn no_more_of_a_size_are_kept_than_were_asked_for() {
        let mut shelf = Shelf::new();
        let len = elements(700);
        for _ in 0..2 {
            assert!(shelf.take::<f32>(len).is_none());
        }
        // An op that allocates as usual gives back an array of that size on every call.
        for _ in 0..10 {
            shelf.give(vec![0.0_f32; len]);
        }
        assert_eq!(shelf.kept.len(), 2, "two requests, two buffers");
        assert_eq!(shelf.bytes, 2 * len * 4);
    }

    #[test]
    fn idle_buffers_are_freed() {
        let mut shelf = Shelf::new();
        let len = elements(300);
        assert!(shelf.take::<f32>(len).is_none());
        assert!(shelf.give(vec![0.0_f32; len]).is_empty());
        for _ in 0..=IDLE_TAKES {
            assert!(shelf.take::<f32>(elements(900)).is_none());
        }
        assert_eq!(
            shelf.wanted.len(),
            RECENT_REQUESTS,
            "the ring does not grow"
        );
        let freed = shelf.give(vec![0.0_f32; elements(900)]);
        assert_eq!(freed.len(), 1, "the idle buffer goes, the new one stays");
        assert_eq!(shelf.kept.len(), 1);
        assert_eq!(shelf.bytes, elements(900) * 4);
    }
}
