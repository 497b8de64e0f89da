//! Agent benches: agent-steps per second for `agents/gridworld` (open 10×10,
//! S = 100, goal 77) at 1k, 100k and 1M agents, dense f32 and sparse (top-4)
//! beliefs, 1 and 2 threads — warm world (built, setup pass and 5 steps
//! before timing: beliefs are then nearly one-hot, as in a long run), one
//! step per iteration, the timed steps run inside the sim's pool as
//! `microcosm run` does (`Sim::in_pool`: at 1k agents a step is ~60 µs, and
//! entering the pool from outside for each step would add a thread hand-off
//! to every one) — and bytes per agent of a built sim (`LiveBytes`, cold;
//! B/elem = bytes per agent).

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
        "run.steps=1000000000".to_string(),
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

fn steps(c: &mut Criterion) {
    let mut g = c.benchmark_group("agents_step");
    g.sample_size(10).measurement_time(Duration::from_secs(3));
    for beliefs in ["dense", "sparse"] {
        for n in COUNTS {
            for threads in [1usize, 2] {
                let mut sim = build(n, beliefs, threads);
                for _ in 0..5 {
                    sim.step();
                }
                g.throughput(Throughput::Elements(n));
                let id = BenchmarkId::new(format!("{beliefs}/{threads}t"), n);
                g.bench_function(id, |b| b.iter_custom(|iters| time_steps(&mut sim, iters)));
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
