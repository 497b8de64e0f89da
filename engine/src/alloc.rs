//! A counting global allocator: live bytes, peak bytes, allocation count.
//!
//! Install it once per binary, test or bench:
//!
//! ```
//! #[global_allocator]
//! static ALLOC: microcosm_engine::alloc::CountingAlloc = microcosm_engine::alloc::CountingAlloc;
//!
//! # fn main() {
//! use microcosm_engine::alloc;
//! assert!(alloc::installed());
//! let before = alloc::stats();
//! let v = std::hint::black_box(vec![0u8; 1000]);
//! let (allocations, bytes) = alloc::stats().since(&before);
//! assert_eq!((allocations, bytes), (1, 1000));
//! assert!(alloc::stats().live_bytes >= before.live_bytes + 1000);
//! drop(v);
//! # }
//! ```
//!
//! Counters are process-wide relaxed atomics (one `fetch_add` per allocation
//! and free, one `fetch_max` for the peak). Allocation counts are also kept
//! per [`Account`]: a thread that has entered an account charges its
//! allocations to it as well (one thread-local read per allocation). A sim
//! opens one and its pool's threads enter it, so "allocations in steady
//! steps" counts what the sim's own threads allocate, not what a test
//! harness or another sim in the same process does at the same time. Without the allocator installed,
//! [`installed`] is `false` and every counter reads zero; the instrumentation
//! then reports what it can model (component tables, resources, scratch) and
//! leaves the measured fields at zero.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering::Relaxed};

static LIVE: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);
static ALLOCS: AtomicU64 = AtomicU64::new(0);
static ALLOC_BYTES: AtomicU64 = AtomicU64::new(0);
static INSTALLED: AtomicBool = AtomicBool::new(false);

/// Accounts: slot 0 is unused (no account); one bit per slot in use.
const ACCOUNTS: usize = 64;
static ACCOUNT_ALLOCS: [AtomicU64; ACCOUNTS] = [const { AtomicU64::new(0) }; ACCOUNTS];
static ACCOUNT_BYTES: [AtomicU64; ACCOUNTS] = [const { AtomicU64::new(0) }; ACCOUNTS];
static ACCOUNTS_IN_USE: AtomicU64 = AtomicU64::new(1);

thread_local! {
    // `const`-initialised and without a destructor: reading it never
    // allocates and works while a thread is being torn down.
    static CURRENT: std::cell::Cell<u8> = const { std::cell::Cell::new(0) };
}

/// The counting allocator: forwards to [`System`] and counts.
#[derive(Debug, Clone, Copy, Default)]
pub struct CountingAlloc;

#[inline]
fn on_alloc(size: usize) {
    let live = LIVE.fetch_add(size, Relaxed) + size;
    PEAK.fetch_max(live, Relaxed);
    ALLOCS.fetch_add(1, Relaxed);
    ALLOC_BYTES.fetch_add(size as u64, Relaxed);
    let account = CURRENT.try_with(|c| c.get()).unwrap_or(0) as usize;
    if account != 0 {
        ACCOUNT_ALLOCS[account].fetch_add(1, Relaxed);
        ACCOUNT_BYTES[account].fetch_add(size as u64, Relaxed);
    }
}

// SAFETY: every method forwards the caller's layout and pointer unchanged to
// `System`, which upholds the `GlobalAlloc` contract; the counting only touches
// atomics and never allocates. Exercised by every test binary that installs it
// (e.g. `tests/alloc_counts.rs`, `engine` unit test `counting_alloc_counts`).
#[expect(
    unsafe_code,
    reason = "a GlobalAlloc impl is unsafe by definition; it only forwards to System"
)]
unsafe impl GlobalAlloc for CountingAlloc {
    #[inline]
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: same contract as our caller's.
        let p = unsafe { System.alloc(layout) };
        if !p.is_null() {
            on_alloc(layout.size());
        }
        p
    }

    #[inline]
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        // SAFETY: same contract as our caller's.
        let p = unsafe { System.alloc_zeroed(layout) };
        if !p.is_null() {
            on_alloc(layout.size());
        }
        p
    }

    #[inline]
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: `ptr` was allocated by `System` with `layout` (we forward every alloc).
        unsafe { System.dealloc(ptr, layout) };
        LIVE.fetch_sub(layout.size(), Relaxed);
    }

    #[inline]
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: `ptr`/`layout` come from `System` via us; caller upholds the rest.
        let p = unsafe { System.realloc(ptr, layout, new_size) };
        if !p.is_null() {
            LIVE.fetch_sub(layout.size(), Relaxed);
            on_alloc(new_size);
        }
        p
    }
}

/// A snapshot of the allocator counters.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct AllocStats {
    /// Bytes currently allocated.
    pub live_bytes: usize,
    /// Highest `live_bytes` seen since start (or since [`reset_peak`]).
    pub peak_bytes: usize,
    /// Number of allocations (and reallocations) since start.
    pub allocations: u64,
    /// Bytes requested by those allocations, in total.
    pub allocated_bytes: u64,
}

impl AllocStats {
    /// Allocations and bytes made between `earlier` and `self`.
    pub fn since(&self, earlier: &AllocStats) -> (u64, u64) {
        (
            self.allocations - earlier.allocations,
            self.allocated_bytes - earlier.allocated_bytes,
        )
    }
}

/// Reads the counters (all zero when [`CountingAlloc`] is not installed).
#[inline]
pub fn stats() -> AllocStats {
    AllocStats {
        live_bytes: LIVE.load(Relaxed),
        peak_bytes: PEAK.load(Relaxed),
        allocations: ALLOCS.load(Relaxed),
        allocated_bytes: ALLOC_BYTES.load(Relaxed),
    }
}

/// An allocation account: what the threads that entered it allocate.
///
/// There are 63 accounts; when all are taken, [`Account::open`] returns the
/// process-wide account, whose counts are those of [`stats`]. Dropping the
/// account frees its slot; threads still in it should have ended by then (a
/// sim's pool joins its threads before its account is dropped).
#[derive(Debug)]
pub struct Account {
    id: AccountId,
}

/// A copyable handle to read or enter an [`Account`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct AccountId(u8);

impl Account {
    /// Opens a fresh account (counts start at zero).
    pub fn open() -> Account {
        let mut used = ACCOUNTS_IN_USE.load(Relaxed);
        loop {
            let free = (!used).trailing_zeros() as usize;
            if free >= ACCOUNTS {
                return Account { id: AccountId(0) };
            }
            match ACCOUNTS_IN_USE.compare_exchange_weak(used, used | 1 << free, Relaxed, Relaxed) {
                Ok(_) => {
                    ACCOUNT_ALLOCS[free].store(0, Relaxed);
                    ACCOUNT_BYTES[free].store(0, Relaxed);
                    return Account {
                        id: AccountId(free as u8),
                    };
                }
                Err(now) => used = now,
            }
        }
    }

    /// Its handle.
    pub fn id(&self) -> AccountId {
        self.id
    }
}

impl Drop for Account {
    fn drop(&mut self) {
        if self.id.0 != 0 {
            ACCOUNTS_IN_USE.fetch_and(!(1u64 << self.id.0), Relaxed);
        }
    }
}

impl AccountId {
    /// The counters with this account's allocation counts (live and peak
    /// bytes stay process-wide). The process-wide account reads [`stats`].
    pub fn stats(self) -> AllocStats {
        let mut s = stats();
        if self.0 != 0 {
            s.allocations = ACCOUNT_ALLOCS[self.0 as usize].load(Relaxed);
            s.allocated_bytes = ACCOUNT_BYTES[self.0 as usize].load(Relaxed);
        }
        s
    }

    /// Makes the calling thread charge its allocations to this account
    /// (for good: pool threads enter it when they start).
    pub fn enter(self) {
        let _ = CURRENT.try_with(|c| c.set(self.0));
    }

    /// Charges the calling thread's allocations to this account until the
    /// guard is dropped, then to whichever account it was in before.
    pub fn enter_scoped(self) -> Entered {
        let before = CURRENT.try_with(|c| c.replace(self.0)).unwrap_or(0);
        Entered(before, std::marker::PhantomData)
    }
}

/// Restores the thread's previous account on drop (see [`AccountId::enter_scoped`]).
/// Not `Send`: it restores the thread it was made on.
#[derive(Debug)]
pub struct Entered(u8, std::marker::PhantomData<*const ()>);

impl Drop for Entered {
    fn drop(&mut self) {
        let _ = CURRENT.try_with(|c| c.set(self.0));
    }
}

/// Sets the peak to the current live bytes, so a later peak is that of a run.
pub fn reset_peak() {
    PEAK.store(LIVE.load(Relaxed), Relaxed);
}

/// Whether [`CountingAlloc`] is the global allocator of this process.
///
/// Detected by allocating a probe box and seeing whether the counter moved.
pub fn installed() -> bool {
    if INSTALLED.load(Relaxed) {
        return true;
    }
    let before = ALLOCS.load(Relaxed);
    let probe = std::hint::black_box(Box::new(0u64));
    drop(probe);
    let yes = ALLOCS.load(Relaxed) > before;
    INSTALLED.store(yes, Relaxed);
    yes
}
