//! Where the parallel work of a pass starts.

/// Runs `work` on a thread of the current rayon pool, or right here if this is one.
///
/// A forward or backward pass started on another thread (a program's main thread) would
/// hand each parallel kernel to the pool and wait for it, op by op, and its serial parts
/// would run on another core than the kernels, their data moving between the caches. One
/// hand-over per pass avoids both: `tapir profile` made 1,310 images/s on the CNN's training
/// step with one thread on a pool thread against 1,030 from the main thread (medians of four
/// alternating runs). Nested calls run in place.
///
/// A training loop gains from running whole inside one call: each step's activations are
/// then freed, and the parameters updated, on the thread that made them (the CNN's step
/// under `cargo bench -- W5`, one thread: 44-47 ms against 52 ms from the main thread).
pub fn on_pool<R: Send>(work: impl FnOnce() -> R + Send) -> R {
    if rayon::current_thread_index().is_some() {
        work()
    } else {
        rayon::join(work, || ()).0
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn work_runs_on_a_pool_thread_and_returns_its_result() {
        assert_eq!(rayon::current_thread_index(), None);
        let inside = super::on_pool(rayon::current_thread_index);
        assert!(inside.is_some());
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(1)
            .build()
            .unwrap();
        // Already on a pool thread: run in place, on that same thread.
        let (outer, inner) = pool.install(|| {
            (
                rayon::current_thread_index(),
                super::on_pool(rayon::current_thread_index),
            )
        });
        assert_eq!(outer, inner);
    }
}
