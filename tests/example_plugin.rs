//! The plugin in examples/damping/, written outside engine/ and sims/,
//! registers itself and runs from its scenario file.

mod common;

#[path = "../examples/damping/plugin.rs"]
mod damping;

use std::path::Path;

use microcosm::engine::alloc::CountingAlloc;
use microcosm::engine::{RunOptions, Scenario, Sim};

#[global_allocator]
static ALLOC: CountingAlloc = CountingAlloc;

fn registry() -> microcosm::engine::Registry {
    let mut r = microcosm::sims::registry();
    r.register::<damping::Damping>();
    r
}

#[test]
fn example_plugin_runs_from_its_scenario_file_with_the_exact_answer() {
    let _g = common::serial();
    let file = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/damping/damping.toml");
    let s = Scenario::load(&file, "damping", &["run.steps=40".into()]).unwrap();
    let (gamma, dt, v0) = (0.5f64, 0.01f64, 2.0f64);
    let dir = common::temp_dir("example-damping");
    let mut sim = Sim::new(
        s,
        &registry(),
        RunOptions {
            threads: 2,
            out: Some(dir.clone()),
            ..Default::default()
        },
    )
    .unwrap();
    sim.run(|_, _| {});
    let r = sim.finish().unwrap();
    assert_eq!(r.summary.entities, 50_000);
    assert_eq!(
        r.memory.steady_state.heap_allocations, 0,
        "{:?}",
        r.memory.phases
    );

    let csv = std::fs::read_to_string(dir.join("metrics.csv")).unwrap();
    let mut lines = csv.lines();
    assert_eq!(lines.next(), Some("step,mean_speed"));
    let f = (-gamma * dt).exp();
    let mut rows = 0;
    for line in lines {
        let (step, v) = line.split_once(',').unwrap();
        let (step, v): (i32, f64) = (step.parse().unwrap(), v.parse().unwrap());
        // Every body's speed is v0·fⁿ, computed by the same n multiplications.
        let mut expect = v0;
        (0..step).for_each(|_| expect *= f);
        assert!(
            (v - expect).abs() <= 1e-12 * expect,
            "step {step}: {v} vs {expect}"
        );
        // And it follows the exact solution v0·exp(-γ t).
        let exact = v0 * (-gamma * dt * step as f64).exp();
        assert!((v - exact).abs() < 1e-12, "step {step}: {v} vs {exact}");
        rows += 1;
    }
    assert_eq!(rows, 5, "steps 0, 10, 20, 30, 40");
}
