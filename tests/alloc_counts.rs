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
