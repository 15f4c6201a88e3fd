//! Buffers that outlive a call: each thread keeps the lowered matrices of its last
//! convolution, so a training step neither allocates nor page-faults them again.
//!
//! A buffer is taken out of the thread's pool for the length of one task and given back
//! after; its contents are garbage to the next user, which overwrites what it reads.

use std::any::Any;
use std::cell::RefCell;

use tapir_core::Float;

/// At most this many buffers are kept per thread (a task holds four at most: the lowered
/// matrix, its gradient, and a fused op's maps and their gradient).
const KEPT: usize = 4;

thread_local! {
    /// Vectors of either element type, as `Box<Vec<F>>`.
    static POOL: RefCell<Vec<Box<dyn Any>>> = const { RefCell::new(Vec::new()) };
}

/// A buffer of `len` elements from this thread's pool (or a new one), returned to the pool
/// when dropped.
pub(crate) struct Buffer<F: Float> {
    data: Vec<F>,
}

impl<F: Float> Buffer<F> {
    /// A buffer of `len` elements, of unspecified values.
    pub(crate) fn take(len: usize) -> Self {
        let recycled = POOL.with(|pool| {
            let mut pool = pool.borrow_mut();
            let position = pool.iter().position(|b| b.is::<Vec<F>>())?;
            pool.swap_remove(position).downcast::<Vec<F>>().ok()
        });
        let mut data = recycled.map_or_else(Vec::new, |boxed| *boxed);
        data.resize(len, F::zero());
        Buffer { data }
    }

    /// The elements, to read.
    pub(crate) fn as_slice(&self) -> &[F] {
        &self.data
    }

    /// The elements, to write.
    pub(crate) fn as_mut_slice(&mut self) -> &mut [F] {
        &mut self.data
    }
}

impl<F: Float> Drop for Buffer<F> {
    fn drop(&mut self) {
        let data = std::mem::take(&mut self.data);
        // `try_with`: a buffer dropped while the thread shuts down is simply freed.
        let _ = POOL.try_with(|pool| {
            if let Ok(mut pool) = pool.try_borrow_mut()
                && pool.len() < KEPT
            {
                pool.push(Box::new(data));
            }
        });
    }
}
