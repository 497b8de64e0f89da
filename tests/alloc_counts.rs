//! Steady-state steps allocate nothing: counted by the counting allocator.

mod common;

use microcosm::engine::alloc::{self, CountingAlloc};
use microcosm::engine::memory::MemoryReport;

#[global_allocator]
static ALLOC: CountingAlloc = CountingAlloc;

const BROWNIAN: &str = r#"
[run]
steps = 60
warmup_steps = 5
sample_every = 7
[plugins.brownian]
particles = 20000
[plugins.msd]
"#;

fn phases(m: &MemoryReport) -> String {
    m.phases
        .iter()
        .map(|p| format!("{}={}/{}B", p.phase, p.allocations, p.bytes))
        .collect::<Vec<_>>()
        .join(" ")
}

#[test]
fn steady_state_steps_make_zero_heap_allocations() {
    let _g = common::serial();
    assert!(alloc::installed());
    for threads in [1, 2] {
        let dir = common::temp_dir(&format!("alloc-{threads}"));
        let mut sim = common::sim(BROWNIAN, &microcosm::sims::registry(), threads, Some(dir));
        sim.run(|_, _| {});
        let m = sim.finish().unwrap().memory;
        assert_eq!(m.steady_state.steps, 55);
        assert_eq!(
            m.steady_state.heap_allocations,
            0,
            "threads={threads}: {} ({} bytes); per phase: {}",
            m.steady_state.heap_allocations,
            m.steady_state.heap_bytes,
            phases(&m)
        );
        assert_eq!(m.steady_state.heap_bytes, 0);
        assert!(m.phases.iter().all(|p| p.allocations == 0));
    }
}

/// The rdf plugin samples every 100 steps: its first sample (which sizes its
/// scratch) falls in the warm-up it asks for, whatever `run.warmup_steps`;
/// every later sample and the final rdf.csv allocate nothing.
#[test]
fn periodic_measurements_allocate_nothing_after_their_first_sample() {
    let _g = common::serial();
    for threads in [1, 2] {
        let dir = common::temp_dir(&format!("alloc-rdf-{threads}"));
        let set = ["run.steps=350", "run.warmup_steps=5"];
        let mut sim = common::bundled("md/lj-small", &set, threads, Some(dir.clone()));
        sim.run(|_, _| {});
        let m = sim.finish().unwrap().memory;
        assert_eq!(m.steady_state.steps, 250, "warm-up of 100 steps: rdf.every");
        assert_eq!(
            m.steady_state.heap_allocations,
            0,
            "threads={threads}: per phase: {}",
            phases(&m)
        );
        let rdf = std::fs::read_to_string(dir.join("rdf.csv")).unwrap();
        assert_eq!(rdf.lines().count(), 101, "header + 100 bins");
    }
}

#[test]
fn a_dropped_pool_has_ended_its_threads_so_their_exit_allocates_nothing_later() {
    let _g = common::serial();
    // Every worker steals from the injector, which registers it with
    // crossbeam-epoch, whose thread exit allocates a node (in the worker's
    // account). After the drop all of them have ended: nothing more is
    // charged to the account. (With rayon's own pool, 2-4 allocations
    // arrive after the drop.)
    let account = alloc::Account::open();
    let ran = std::sync::atomic::AtomicUsize::new(0);
    let pool = microcosm::engine::par::Pool::new(2, "pool-test", account.id()).unwrap();
    let weak = std::sync::Arc::downgrade(pool.handle());
    pool.broadcast(|_| ran.fetch_add(1, std::sync::atomic::Ordering::Relaxed));
    assert_eq!(ran.into_inner(), 2);
    drop(pool);
    assert_eq!(weak.strong_count(), 0);
    let before = account.id().stats();
    assert!(
        before.allocations > 0,
        "the workers' exits are charged to the account"
    );
    std::thread::sleep(std::time::Duration::from_millis(100));
    assert_eq!(
        account.id().stats().since(&before).0,
        0,
        "a worker ended after the drop"
    );
}

#[test]
fn accounts_count_only_their_own_threads() {
    let _g = common::serial();
    let a = alloc::Account::open();
    let b = alloc::Account::open();
    assert_ne!(a.id(), b.id());
    let (a0, b0) = (a.id().stats(), b.id().stats());
    {
        let _in = a.id().enter_scoped();
        std::hint::black_box(vec![0u8; 100]);
        std::hint::black_box(vec![0u8; 28]);
    }
    std::hint::black_box(vec![0u8; 1000]); // on no account
    let id = b.id();
    std::thread::spawn(move || {
        id.enter();
        std::hint::black_box(vec![0u64; 10]);
    })
    .join()
    .unwrap();
    assert_eq!(a.id().stats().since(&a0), (2, 128));
    // The thread's own start-up may allocate before it enters; after, one
    // vector of 80 bytes (and its exit, which is in the account).
    let (n, bytes) = b.id().stats().since(&b0);
    assert!(n >= 1 && bytes >= 80, "{n} allocations, {bytes} bytes");
}

#[test]
fn busy_workers_run_nested_parallel_work_and_allocate_nothing() {
    use microcosm::engine::rayon::prelude::*;
    let _g = common::serial();
    for threads in [1, 2, 3] {
        let account = alloc::Account::open();
        let pool = microcosm::engine::par::Pool::new(threads, "busy-test", account.id()).unwrap();
        let xs: Vec<u64> = (0..100_000).collect();
        let run = || {
            microcosm::engine::par::with_busy_workers(|| {
                // Many short parallel regions with serial work between them,
                // as a step has.
                (0..200)
                    .map(|k| {
                        xs.par_chunks(1000)
                            .map(|c| c.iter().sum::<u64>() + k)
                            .sum::<u64>()
                    })
                    .sum::<u64>()
            })
        };
        let expect: u64 = (0..200).map(|k| 4_999_950_000 + 100 * k).sum();
        let (first, second, allocations) = pool.install(|| {
            let first = run();
            let before = account.id().stats();
            let second = run();
            (first, second, account.id().stats().since(&before).0)
        });
        assert_eq!((first, second), (expect, expect), "{threads} threads");
        assert_eq!(allocations, 0, "{threads} threads");
    }
}
