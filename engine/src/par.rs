//! Parallel execution: the sim's thread pool, its busy workers, and
//! fixed-order parallel reductions.
//!
//! * [`Pool`]: a rayon pool whose threads are joined when it is dropped and
//!   charge their allocations to the sim's [`crate::alloc::Account`].
//! * [`with_busy_workers`]: while a sim steps, the other workers poll for
//!   work instead of parking between parallel regions.
//! * [`map_reduce`] / [`sum`]: the result does not depend on the thread
//!   count. The input is cut into chunks of a fixed size (never "one chunk
//!   per thread"); each chunk's partial result is computed in parallel into a
//!   slot of a buffer taken from the scratch arena, and the partials are then
//!   folded in chunk order on one thread. Floating-point sums are therefore
//!   the same bits with 1 or N threads.

use std::sync::Arc;
use std::thread::JoinHandle;

use rayon::prelude::*;

use crate::scratch::ScratchArenas;

/// A rayon pool whose worker threads have ended when it is dropped.
///
/// rayon's own `ThreadPool` lets its threads finish in the background after
/// the drop; a worker's exit then allocates (crossbeam-epoch moves the
/// thread's garbage bag to the global queue in a new node), and under load
/// that exit lands in whatever the process measures next — the steady steps
/// of the next sim in the same process. Joining the threads on drop keeps
/// each sim's allocations inside its own lifetime.
pub struct Pool {
    pool: Option<Arc<rayon::ThreadPool>>,
    threads: Vec<JoinHandle<()>>,
}

impl Pool {
    /// A pool of `threads` threads named `{name}-{index}`, which charge
    /// their allocations to `account`.
    pub fn new(
        threads: usize,
        name: &str,
        account: crate::alloc::AccountId,
    ) -> Result<Pool, rayon::ThreadPoolBuildError> {
        let mut handles = Vec::with_capacity(threads);
        let name = name.to_owned();
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .thread_name(move |i| format!("{name}-{i}"))
            .spawn_handler(|t| {
                let mut b = std::thread::Builder::new();
                if let Some(n) = t.name() {
                    b = b.name(n.to_owned());
                }
                if let Some(size) = t.stack_size() {
                    b = b.stack_size(size);
                }
                handles.push(b.spawn(move || {
                    account.enter();
                    t.run()
                })?);
                Ok(())
            })
            .build()?;
        // A worker's first look for work in another's deque registers it
        // with crossbeam's epoch GC (and its thread-local destructors with
        // std): allocations, once per thread. Under load a worker may get
        // no CPU until a sim's steady steps and make them there; so every
        // worker looks once now.
        pool.broadcast(|_| {
            rayon::yield_now();
        });
        Ok(Pool {
            pool: Some(Arc::new(pool)),
            threads: handles,
        })
    }

    /// The rayon pool (shared: a caller may keep a handle while it borrows
    /// the owner of this `Pool` mutably inside `install`).
    pub fn handle(&self) -> &Arc<rayon::ThreadPool> {
        self.pool.as_ref().expect("present until drop")
    }
}

impl std::ops::Deref for Pool {
    type Target = rayon::ThreadPool;
    fn deref(&self) -> &rayon::ThreadPool {
        self.handle()
    }
}

impl std::fmt::Debug for Pool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pool")
            .field("threads", &self.threads.len())
            .finish()
    }
}

impl Drop for Pool {
    fn drop(&mut self) {
        let Some(pool) = self.pool.take() else { return };
        // Joining from one of its own workers would wait for ourselves, and
        // while another handle lives the threads do not end: leave them then.
        let inside = pool.current_thread_index().is_some();
        if let Some(pool) = Arc::into_inner(pool)
            && !inside
        {
            drop(pool);
            for t in self.threads.drain(..) {
                // A worker that panicked has already reported it.
                let _ = t.join();
            }
        }
    }
}

/// Default chunk length for [`map_reduce`].
pub const CHUNK: usize = 4096;

/// Maps each fixed-size chunk of `items` to a partial result in parallel and
/// folds the partials in chunk order. Allocates only from the scratch arena.
pub fn map_reduce<T, A>(
    scratch: &ScratchArenas,
    items: &[T],
    chunk: usize,
    identity: A,
    map: impl Fn(usize, &[T]) -> A + Sync + Send,
    fold: impl Fn(A, A) -> A,
) -> A
where
    T: Sync,
    A: Copy + Send + Sync,
{
    let chunk = chunk.max(1);
    let n = items.len().div_ceil(chunk);
    scratch.with(|bump| {
        let partials = bump.alloc_slice_fill_copy(n, identity);
        partials
            .par_iter_mut()
            .zip(items.par_chunks(chunk))
            .enumerate()
            .for_each(|(i, (p, c))| *p = map(i * chunk, c));
        partials.iter().fold(identity, |acc, &p| fold(acc, p))
    })
}

/// Sum of `f(index, item)` over `items`, in fixed chunk order.
pub fn sum<T: Sync>(
    scratch: &ScratchArenas,
    items: &[T],
    f: impl Fn(usize, &T) -> f64 + Sync + Send,
) -> f64 {
    map_reduce(
        scratch,
        items,
        CHUNK,
        0.0,
        |start, c| c.iter().enumerate().map(|(i, x)| f(start + i, x)).sum(),
        |a, b| a + b,
    )
}

/// Runs `body` on the calling worker while the pool's other workers poll
/// for work ([`rayon::yield_now`]) instead of going to sleep between
/// parallel regions, until `body` returns.
///
/// rayon parks an idle worker after a few dozen rounds of looking for work,
/// and waking it costs tens of microseconds: for steps of a few hundred
/// microseconds with serial parts between their parallel regions, a parked
/// worker joins each region late. A sim runs its step loop inside this (only
/// the schedule of work changes, never what is computed or in which order it
/// is summed). Call it from a worker of the pool (inside `install`); with one
/// thread, or outside a pool, it just runs `body`. Allocates nothing.
pub fn with_busy_workers<R: Send>(body: impl FnOnce() -> R + Send) -> R {
    let (Some(owner), n) = (rayon::current_thread_index(), rayon::current_num_threads()) else {
        return body();
    };
    if n < 2 {
        return body();
    }
    let stop = std::sync::atomic::AtomicBool::new(false);
    let (r, ()) = rayon::join(
        || {
            // Set on return and on unwinding: a panicking body must not
            // leave the pollers spinning (the join would wait for them).
            let _stop = StopOnDrop(&stop);
            body()
        },
        || pollers(n - 1, owner, &stop),
    );
    r
}

/// Stops the pollers when dropped.
struct StopOnDrop<'a>(&'a std::sync::atomic::AtomicBool);

impl Drop for StopOnDrop<'_> {
    fn drop(&mut self) {
        self.0.store(true, std::sync::atomic::Ordering::Release);
    }
}

/// `k` polling jobs, each stealable by another worker.
fn pollers(k: usize, owner: usize, stop: &std::sync::atomic::AtomicBool) {
    match k {
        0 => {}
        1 => poll(owner, stop),
        _ => {
            rayon::join(|| poll(owner, stop), || pollers(k - 1, owner, stop));
        }
    }
}

/// Runs other jobs of the pool until `stop`. On the owner's own thread it
/// returns at once: there it would sit on top of `body`'s frames (reached
/// while `body` waits in a nested join) and never let `body` finish.
fn poll(owner: usize, stop: &std::sync::atomic::AtomicBool) {
    if rayon::current_thread_index() == Some(owner) {
        return;
    }
    let mut idle = 0u32;
    while !stop.load(std::sync::atomic::Ordering::Acquire) {
        if rayon::yield_now() == Some(rayon::Yield::Executed) {
            idle = 0;
        } else {
            idle = idle.wrapping_add(1);
            // Now and then let another runnable thread have the core (an
            // oversubscribed machine), else stay hot.
            if idle.is_multiple_of(256) {
                std::thread::yield_now();
            } else {
                std::hint::spin_loop();
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_panicking_body_under_busy_workers_unwinds_instead_of_hanging() {
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let pool = rayon::ThreadPoolBuilder::new()
                .num_threads(2)
                .build()
                .unwrap();
            let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                pool.install(|| {
                    with_busy_workers(|| {
                        let s: u64 = (0..1000u64).into_par_iter().sum();
                        assert_eq!(s, 499_500);
                        panic!("body fails");
                    })
                })
            }));
            let _ = tx.send(r.is_err());
        });
        let unwound = rx
            .recv_timeout(std::time::Duration::from_secs(20))
            .expect("with_busy_workers hung after its body panicked");
        assert!(unwound);
    }

    #[test]
    fn sum_is_bitwise_identical_across_pool_sizes() {
        let xs: Vec<f64> = (0..100_003).map(|i| 1.0 / (1.0 + i as f64)).collect();
        let run = |threads| {
            let pool = rayon::ThreadPoolBuilder::new()
                .num_threads(threads)
                .build()
                .unwrap();
            let s = ScratchArenas::new(threads);
            pool.install(|| sum(&s, &xs, |_, x| x * x * 1e3 + x))
        };
        let a = run(1);
        assert_eq!(a.to_bits(), run(2).to_bits());
        assert_eq!(a.to_bits(), run(3).to_bits());
        // Same as a sequential sum of per-chunk sums.
        let seq = xs
            .chunks(CHUNK)
            .map(|c| c.iter().map(|x| x * x * 1e3 + x).sum::<f64>())
            .fold(0.0, |a, b| a + b);
        assert_eq!(a.to_bits(), seq.to_bits());
    }
}
