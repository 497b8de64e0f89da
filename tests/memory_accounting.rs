//! memory.json agrees with the counting allocator: bytes per entity against
//! the slope of live heap between runs of different sizes, the estimate
//! against the measurement, a leak's slope, and the memory budget.

mod common;

use microcosm::engine::alloc::CountingAlloc;
use microcosm::engine::prelude::*;
use microcosm::engine::sim::Stop;
use microcosm::engine::{RunOptions, SimError};

#[global_allocator]
static ALLOC: CountingAlloc = CountingAlloc;

fn brownian(n: u64) -> String {
    format!("[run]\nsteps = 20\n[plugins.brownian]\nparticles = {n}\n[plugins.msd]\n")
}

#[test]
fn bytes_per_entity_agrees_with_live_heap_slope_and_estimate() {
    let _g = common::serial();
    let registry = microcosm::sims::registry();
    // Sizes just under powers of two, so bevy's doubled entity metadata is
    // the same fraction of both runs.
    let (n1, n2) = ((1u64 << 15) - 100, (1u64 << 17) - 100);
    let run = |n| {
        let mut sim = common::sim(&brownian(n), &registry, 2, None);
        sim.run(|_, _| {});
        sim.finish().unwrap().memory
    };
    let (m1, m2) = (run(n1), run(n2));
    let slope = (m2.heap.setup_bytes as f64 - m1.heap.setup_bytes as f64) / (n2 - n1) as f64;
    let bpe = m2.bytes_per_entity;
    eprintln!("slope {slope:.2} B/entity, memory.json {bpe:.2} B/entity");
    // The issue asks for 10%; we hold 2% (measured: 0.4%).
    assert!(
        (bpe - slope).abs() / slope < 0.02,
        "bytes_per_entity {bpe} vs slope {slope}"
    );
    // Components: 12 B + 8 B ticks, twice.
    let per: f64 = m2.components.iter().map(|c| c.bytes_per_entity).sum();
    assert_eq!(per, 40.0);
    // The estimate, made before spawning, is within 5% of the measurement.
    let est = m2.estimate.bytes as f64;
    let got = m2.attributable_bytes as f64;
    assert!(
        (est - got).abs() / got < 0.05,
        "estimate {est} vs attributable {got}"
    );
    assert_eq!(m2.estimate.entities, n2);
}

/// A plugin that leaks `bytes` of heap every step (to test the leak check and the budget).
#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct Leaky {
    bytes: usize,
}

#[derive(Resource, Default)]
struct Leaked(Vec<Box<[u8]>>);

impl Footprint for Leaked {
    fn heap_bytes(&self) -> usize {
        self.0.heap_bytes() + self.0.iter().map(|b| b.len()).sum::<usize>()
    }
}

impl Plugin for Leaky {
    fn build(&self, b: &mut Builder) -> Result<(), BuildError> {
        let n = self.bytes;
        b.insert_resource_with_footprint(Leaked(Vec::with_capacity(1 << 16)));
        b.add_systems(Phase::Evolve, move |mut l: ResMut<Leaked>| {
            l.0.push(vec![1u8; n].into_boxed_slice())
        });
        Ok(())
    }
}

impl PluginConfig for Leaky {
    const NAME: &'static str = "leaky";
    const SUMMARY: &'static str = "leaks on purpose";
}

fn leaky_registry() -> Registry {
    let mut r = microcosm::sims::registry();
    r.register::<Leaky>();
    r
}

#[test]
fn a_leak_shows_as_slope_and_the_budget_stops_the_run_with_outputs_flushed() {
    let _g = common::serial();
    let text = "[run]\nsteps = 1000\nwarmup_steps = 2\nmemory_budget_mb = 8\n\
                [plugins.brownian]\nparticles = 1000\n[plugins.leaky]\nbytes = 100000\n[plugins.msd]\n";
    let dir = common::temp_dir("leaky");
    let mut sim = common::sim(text, &leaky_registry(), 1, Some(dir.clone()));
    sim.run(|_, _| {});
    let stop = sim.stopped().cloned().unwrap();
    let Stop::MemoryBudget {
        step,
        live_bytes,
        budget_bytes,
    } = stop
    else {
        panic!("expected a budget stop, got {stop:?}")
    };
    assert_eq!(budget_bytes, 8_000_000);
    assert!(live_bytes > budget_bytes);
    assert!((60..=80).contains(&step), "stopped at step {step}");
    let r = sim.finish().unwrap();
    // The resource reports its heap through `Footprint`: step × 100 kB + the Vec.
    let leaked = r
        .memory
        .resources
        .iter()
        .find(|r| r.name == "Leaked")
        .unwrap();
    assert_eq!(leaked.bytes, step * 100_000 + (1 << 16) * 16);
    let slope = r.memory.leak.slope_bytes_per_step;
    assert!((slope - 100_000.0).abs() < 1_000.0, "leak slope {slope}");
    assert!(r.memory.steady_state.heap_allocations >= step - 2);
    // Outputs flushed and renamed: no .part files, summary says why it stopped.
    let names: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    assert!(names.iter().all(|n| !n.ends_with(".part")), "{names:?}");
    let summary = std::fs::read_to_string(dir.join("summary.json")).unwrap();
    assert!(summary.contains("\"kind\": \"memory_budget\""), "{summary}");
    let rows = std::fs::read_to_string(dir.join("metrics.csv")).unwrap();
    // Every step up to the stop has its row (sample_every = 1).
    let last = step.to_string();
    assert_eq!(
        rows.lines().last().unwrap().split(',').next(),
        Some(last.as_str())
    );
    assert_eq!(rows.lines().count() as u64, 1 + step + 1);
}

#[test]
fn an_estimate_over_budget_refuses_to_start_and_writes_nothing() {
    let _g = common::serial();
    let text = "[run]\nsteps = 10\nmemory_budget_mb = 1\n[plugins.brownian]\nparticles = 100000\n";
    let s = microcosm::engine::Scenario::parse(
        text,
        "t",
        std::path::Path::new("t.toml"),
        std::path::Path::new("."),
        &[],
    )
    .unwrap();
    let dir = common::temp_dir("over-budget");
    let e = microcosm::engine::Sim::new(
        s,
        &microcosm::sims::registry(),
        RunOptions {
            threads: 1,
            out: Some(dir.clone()),
            ..Default::default()
        },
    );
    let Err(e @ SimError::OverBudget { .. }) = e else {
        panic!("expected OverBudget")
    };
    assert!(e.to_string().contains("key `run.memory_budget_mb`"), "{e}");
    assert!(!dir.exists());
}

/// A plugin that fills and keeps 64 MiB at the last step (to test that the
/// last memory sample reads RSS afresh).
#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct Balloon {}

#[derive(Resource, Default)]
struct Held(Vec<u8>);

impl Footprint for Held {
    fn heap_bytes(&self) -> usize {
        self.0.heap_bytes()
    }
}

impl Plugin for Balloon {
    fn build(&self, b: &mut Builder) -> Result<(), BuildError> {
        b.insert_resource_with_footprint(Held::default());
        b.add_systems(
            Phase::Evolve,
            |clock: Res<Clock>, mut held: ResMut<Held>| {
                if clock.step == clock.last_step {
                    held.0 = vec![1u8; 64 << 20];
                }
            },
        );
        Ok(())
    }
}

impl PluginConfig for Balloon {
    const NAME: &'static str = "balloon";
    const SUMMARY: &'static str = "fills 64 MiB at the last step";
}

/// RSS is read at most once a millisecond and always at the last step: a run
/// of fast steps (~µs) whose last step fills 64 MiB shows them in its last
/// sample, not a reading reused from an earlier step. (Filling 64 MiB takes
/// over a millisecond itself, so this holds by the time rule too; the test
/// guards against readings that stop being refreshed.)
#[test]
fn the_last_memory_sample_reads_rss_afresh() {
    let _g = common::serial();
    let mut registry = microcosm::sims::registry();
    registry.register::<Balloon>();
    let text = "[run]\nsteps = 50\n[plugins.brownian]\nparticles = 100\n[plugins.balloon]\n";
    let mut sim = common::sim(text, &registry, 1, None);
    sim.run(|_, _| {});
    let m = sim.finish().unwrap().memory;
    assert_eq!(m.samples.len(), 51, "the setup pass and every step");
    let (first, last) = (&m.samples[0], m.samples.last().unwrap());
    assert_eq!(last.step, 50);
    assert!(
        last.rss_bytes >= first.rss_bytes + (60 << 20),
        "last sample RSS {} vs first {}",
        last.rss_bytes,
        first.rss_bytes
    );
    assert!(m.rss.peak_bytes >= last.rss_bytes);
}
