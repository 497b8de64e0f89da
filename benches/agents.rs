//! Agent benches: agent-steps per second for `agents/gridworld` (open 10×10,
//! S = 100, goal 77) at 1k, 100k and 1M agents, dense f32 and sparse (top-4)
//! beliefs, 1 and 2 threads, and bytes per agent of a built sim
//! (`LiveBytes`, cold; B/elem = bytes per agent).
//!
//! One iteration times the scenario's run: the [`STEPS`] steps of a freshly
//! built world (building it and its setup pass untimed), as the numpy port
//! times its runs (`benches/peers/agents_numpy.py --steps 100`). A step's
//! cost depends on the world's state — beliefs spread while the agents walk
//! towards the goal, then sharpen (sparse steps 1–20 run at about half the
//! rate of the later ones) — so timing the same steps keeps the comparison
//! with the port, and between thread counts, fair: a bench that kept
//! stepping one world would time later, cheaper steps the faster it runs.
//! The steps run inside the sim's pool as `microcosm run` runs them
//! (`Sim::in_pool`: at 1k agents a step is 50–100 µs, and entering the
//! pool from outside for each step would add a thread hand-off to every
//! one). At 1M agents an iteration of the dense bench takes ~35 s on one
//! core: the whole bench takes about a quarter of an hour.

use std::time::Duration;

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use microcosm::engine::alloc::CountingAlloc;
use microcosm::engine::bench::{LiveBytes, time_steps};
use microcosm::engine::{RunOptions, Sim};

#[global_allocator]
static ALLOC: CountingAlloc = CountingAlloc;

const COUNTS: [u64; 3] = [1_000, 100_000, 1_000_000];

fn build(agents: u64, beliefs: &str, threads: usize) -> Sim {
    let set = [
        format!("run.steps={STEPS}"),
        "run.warmup_steps=0".to_string(),
        format!("plugins.agents.count={agents}"),
        format!("plugins.agents.beliefs=\"{beliefs}\""),
    ];
    microcosm::bundled_sim(
        "agents/gridworld",
        &set,
        RunOptions {
            threads,
            ..Default::default()
        },
    )
    .unwrap()
}

/// Steps timed per iteration: the gridworld scenario's run.
const STEPS: u64 = 100;

fn steps(c: &mut Criterion) {
    let mut g = c.benchmark_group("agents_step");
    g.sample_size(10).measurement_time(Duration::from_secs(3));
    for beliefs in ["dense", "sparse"] {
        for n in COUNTS {
            for threads in [1usize, 2] {
                g.throughput(Throughput::Elements(n * STEPS));
                let id = BenchmarkId::new(format!("{beliefs}/{threads}t"), n);
                g.bench_function(id, |b| {
                    b.iter_custom(|iters| {
                        (0..iters)
                            .map(|_| time_steps(&mut build(n, beliefs, threads), STEPS))
                            .sum()
                    })
                });
            }
        }
    }
    g.finish();
}

fn live_bytes(c: &mut Criterion<LiveBytes>) {
    let mut g = c.benchmark_group("agents_live_bytes");
    g.sample_size(10);
    for beliefs in ["dense", "sparse"] {
        for n in [100_000u64, 1_000_000] {
            g.throughput(Throughput::Elements(n));
            g.bench_function(BenchmarkId::new(beliefs, n), |b| {
                b.iter_with_large_drop(|| build(n, beliefs, 1))
            });
        }
    }
    g.finish();
}

criterion_group!(time, steps);
criterion_group! {
    name = bytes;
    config = Criterion::default().with_measurement(LiveBytes);
    targets = live_bytes
}
criterion_main!(time, bytes);
