//! Per-step scratch memory: one bumpalo arena per worker thread.
//!
//! Systems borrow temporaries with [`ScratchArenas::with`]; the closure gets a
//! `&Bump` whose lifetime ends with the closure, so nothing allocated there can
//! be kept past it. The outermost `with` on a thread therefore resets the
//! arena when it returns; nested uses (rayon work stealing inside a `with`)
//! share it until then. The `begin` phase also opens a new epoch every step,
//! and an arena first used in a new epoch starts empty (rayon has no
//! allocation-free way to run a closure on every worker, so that reset is
//! lazy, but it is logically "reset in begin": nothing survives from one step
//! to the next). A reset keeps the arena's largest chunk, so an arena holds
//! what its largest single use needed — not a total that would depend on how
//! many tasks the scheduler gave that thread — and once warm, steps allocate
//! nothing from the heap.
//!
//! Work stealing decides which worker runs which parallel task, so a worker
//! that ran no task during the warm-up steps could meet its first one in a
//! steady step and grow its arena there. A system whose parallel tasks take
//! scratch declares the most one task takes with
//! [`ScratchArenas::reserve_per_task`]; the sim then warms every worker's
//! arena to that size (after the setup pass, and again before the first
//! steady step if a reservation came later).
//!
//! Arenas live in thread-locals of the rayon workers of the sim's pool; the
//! resource keeps the epoch and the bytes each arena holds (one atomic slot
//! per worker), from which the high-water mark is reported.

use std::cell::{Cell, RefCell};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering::Relaxed};

use bevy_ecs::prelude::Resource;
pub use bumpalo::Bump;

struct ThreadArena {
    owner: Cell<u64>,
    epoch: Cell<u64>,
    depth: Cell<u32>,
    bump: RefCell<Bump>,
}

thread_local! {
    static ARENA: ThreadArena = ThreadArena {
        owner: Cell::new(u64::MAX),
        epoch: Cell::new(0),
        depth: Cell::new(0),
        bump: RefCell::new(Bump::new()),
    };
}

static NEXT_ID: AtomicU64 = AtomicU64::new(0);

/// The scratch arenas of one sim (a resource).
#[derive(Resource, Debug)]
pub struct ScratchArenas {
    id: u64,
    epoch: AtomicU64,
    /// Bytes held by each worker's arena (slot `threads` is for callers outside the pool).
    held: Box<[AtomicUsize]>,
    high_water: AtomicUsize,
    /// The most scratch one parallel task takes (see [`ScratchArenas::reserve_per_task`]).
    per_task: AtomicUsize,
}

impl ScratchArenas {
    /// Arenas for a pool of `threads` workers.
    pub fn new(threads: usize) -> Self {
        ScratchArenas {
            id: NEXT_ID.fetch_add(1, Relaxed),
            epoch: AtomicU64::new(1),
            held: (0..=threads).map(|_| AtomicUsize::new(0)).collect(),
            high_water: AtomicUsize::new(0),
            per_task: AtomicUsize::new(0),
        }
    }

    /// Declares that one parallel task takes up to `bytes` from its worker's
    /// arena (the sum of what it allocates there, in bytes, alignment
    /// included). Every worker is then warmed to hold that much, whichever
    /// tasks the scheduler gives it. Cheap (one relaxed `fetch_max`): systems
    /// call it each time they run.
    pub fn reserve_per_task(&self, bytes: usize) {
        self.per_task.fetch_max(bytes, Relaxed);
    }

    /// The largest per-task reservation made so far.
    pub fn per_task_bytes(&self) -> usize {
        self.per_task.load(Relaxed)
    }

    /// Runs `f` with this thread's arena. Re-entrant (a nested call on the same
    /// thread, e.g. from rayon work stealing, gets the same arena). Whatever `f`
    /// allocates is freed at the next step at the latest; the closure's return
    /// value cannot borrow from the arena.
    pub fn with<R>(&self, f: impl FnOnce(&Bump) -> R) -> R {
        let slot = rayon::current_thread_index()
            .filter(|&i| i + 1 < self.held.len())
            .unwrap_or(self.held.len() - 1);
        let epoch = self.epoch.load(Relaxed);
        ARENA.with(|a| {
            // Only the outermost use on this thread may reset: no borrow is live then.
            if a.depth.get() == 0 && (a.owner.get() != self.id || a.epoch.get() != epoch) {
                a.bump.borrow_mut().reset();
                a.owner.set(self.id);
                a.epoch.set(epoch);
            }
            a.depth.set(a.depth.get() + 1);
            let out = f(&a.bump.borrow());
            a.depth.set(a.depth.get() - 1);
            if a.depth.get() == 0 {
                // The peak of this use, then the reset: nothing allocated in
                // the closure can outlive it. A reset keeps the last (largest)
                // chunk, which is what the arena holds from now on.
                self.high_water
                    .fetch_max(a.bump.borrow().allocated_bytes(), Relaxed);
                a.bump.borrow_mut().reset();
                self.held[slot].store(a.bump.borrow().allocated_bytes(), Relaxed);
            }
            out
        })
    }

    /// Opens a new step: the arenas' contents from earlier steps are dead.
    /// Run by `begin`.
    pub fn begin_step(&mut self) {
        *self.epoch.get_mut() += 1;
    }

    /// Bytes the arenas hold between uses (retained chunks: heap they own).
    pub fn held_bytes(&self) -> usize {
        self.held.iter().map(|h| h.load(Relaxed)).sum()
    }

    /// Heap the arenas own, at its highest: the retained chunks of all
    /// arenas, or the peak of a single use if that was larger.
    pub fn high_water_bytes(&self) -> usize {
        self.high_water.load(Relaxed).max(self.held_bytes())
    }

    /// Makes this thread's arena hold one chunk of at least `bytes` (replacing
    /// a smaller arena by one of exactly that capacity, so warming never
    /// compounds bumpalo's chunk doubling), so later uses on this thread of up
    /// to that size allocate nothing. The sim calls it on every worker.
    pub fn warm(&self, bytes: usize) {
        let slot = rayon::current_thread_index()
            .filter(|&i| i + 1 < self.held.len())
            .unwrap_or(self.held.len() - 1);
        ARENA.with(|a| {
            if a.depth.get() != 0 {
                return;
            }
            if a.owner.get() != self.id {
                a.bump.borrow_mut().reset();
                a.owner.set(self.id);
                a.epoch.set(self.epoch.load(Relaxed));
            }
            let mut bump = a.bump.borrow_mut();
            if bump.chunk_capacity() < bytes {
                *bump = Bump::with_capacity(bytes);
            }
            self.held[slot].store(bump.allocated_bytes(), Relaxed);
        });
    }

    /// Number of arenas that have been used.
    pub fn arenas(&self) -> usize {
        self.held.iter().filter(|h| h.load(Relaxed) > 0).count()
    }

    /// The current epoch (advanced once per step).
    pub fn epoch(&self) -> u64 {
        self.epoch.load(Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reset_at_new_epoch_reuses_memory_and_reports_high_water() {
        let mut s = ScratchArenas::new(1);
        // One chunk large enough for the whole test: a reset keeps the last chunk.
        s.warm(64 << 10);
        s.begin_step();
        let (p1, p1b) = s.with(|b| {
            let x = b.alloc_slice_fill_copy(1000, 1u8).as_ptr() as usize;
            let y = b.alloc_slice_fill_copy(1000, 2u8).as_ptr() as usize;
            (x, y)
        });
        assert_ne!(p1, p1b, "inside one use, allocations are distinct");
        let p1c = s.with(|b| b.alloc_slice_fill_copy(1000, 1u8).as_ptr() as usize);
        assert_eq!(p1, p1c, "the next use starts from an empty arena");
        s.begin_step();
        let p2 = s.with(|b| b.alloc_slice_fill_copy(1000, 3u8).as_ptr() as usize);
        assert_eq!(
            p1, p2,
            "new epoch: the arena was reset and reuses its chunk"
        );
        s.with(|b| b.alloc_slice_fill_copy(1 << 20, 0u8).len());
        s.begin_step();
        assert!(s.high_water_bytes() >= 1 << 20);
        assert_eq!(s.arenas(), 1);
    }

    #[test]
    fn warming_to_the_per_task_reservation_lets_any_worker_run_a_task_without_growing() {
        // Two workers; only the reservation (not a task run during warm-up)
        // sizes the arenas. Each worker then runs one task of exactly the
        // reserved size, and no arena grows: a grown arena would keep its
        // new, larger chunk, and hold more bytes than after warming.
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(2)
            .build()
            .unwrap();
        let s = ScratchArenas::new(2);
        let task = 3 * 40_000; // three slices of 40 kB, 4-byte aligned
        s.reserve_per_task(task);
        s.reserve_per_task(1000); // a smaller one does not lower it
        assert_eq!(s.per_task_bytes(), task);
        pool.broadcast(|_| s.warm(s.per_task_bytes()));
        let warmed: Vec<usize> = s.held.iter().map(|h| h.load(Relaxed)).collect();
        assert!(warmed[..2].iter().all(|&h| h >= task), "{warmed:?}");
        let ran = AtomicUsize::new(0);
        pool.broadcast(|_| {
            s.with(|b| {
                for v in 0..3 {
                    b.alloc_slice_fill_copy(10_000, v as f32);
                }
            });
            ran.fetch_add(1, Relaxed);
        });
        assert_eq!(ran.load(Relaxed), 2);
        let after: Vec<usize> = s.held.iter().map(|h| h.load(Relaxed)).collect();
        assert_eq!(warmed, after, "an arena grew");
    }

    #[test]
    fn nested_use_on_one_thread_does_not_reset_or_panic() {
        let s = ScratchArenas::new(1);
        let n = s.with(|outer| {
            let a = outer.alloc(5u32);
            let inner = s.with(|b| *b.alloc(7u32));
            *a + inner
        });
        assert_eq!(n, 12);
    }
}
