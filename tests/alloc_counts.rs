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
