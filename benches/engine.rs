//! Engine benches on the Brownian demo: warm-world step throughput
//! (entity-steps/s) at 1 and 2 threads, and heap bytes per entity of a built
//! sim — retained (`LiveBytes`) and allocated on the way (`AllocatedBytes`),
//! both reported as B/elem.
//!
//! `cargo bench --bench engine`; `cargo bench -- --test` runs each once.

use std::hint::black_box;
use std::path::Path;

use criterion::measurement::Measurement;
use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use microcosm::engine::alloc::CountingAlloc;
use microcosm::engine::bench::{AllocatedBytes, LiveBytes};
use microcosm::engine::{RunOptions, Scenario, Sim};

#[global_allocator]
static ALLOC: CountingAlloc = CountingAlloc;

fn scenario(n: u64) -> Scenario {
    // Enough steps that the bench never reaches the end of the run.
    let text = format!(
        "[run]\nsteps = 1000000000\nwarmup_steps = 0\nsample_every = 1000000\n\
         [plugins.brownian]\nparticles = {n}\n[plugins.msd]\n"
    );
    Scenario::parse(&text, "bench", Path::new("bench.toml"), Path::new("."), &[]).unwrap()
}

/// Warm world: the sim is built and stepped once before timing.
fn step_throughput(c: &mut Criterion) {
    let registry = microcosm::sims::registry();
    let mut g = c.benchmark_group("brownian_step");
    g.sample_size(20);
    for n in [10_000u64, 100_000] {
        for threads in [1usize, 2] {
            let mut sim = Sim::new(
                scenario(n),
                &registry,
                RunOptions {
                    threads,
                    ..Default::default()
                },
            )
            .unwrap();
            sim.step();
            g.throughput(Throughput::Elements(n));
            g.bench_function(BenchmarkId::new(format!("{threads}t"), n), |b| {
                b.iter(|| black_box(sim.step()))
            });
        }
    }
    g.finish();
}

/// A cold-world group: building a sim of N particles, one sample per size,
/// under measurement `M` (bytes), reported per particle.
fn build_group<M: Measurement>(c: &mut Criterion<M>, name: &str) {
    let registry = microcosm::sims::registry();
    let mut g = c.benchmark_group(name);
    g.sample_size(10);
    for n in [10_000u64, 100_000] {
        g.throughput(Throughput::Elements(n));
        g.bench_function(BenchmarkId::from_parameter(n), |b| {
            // Outputs are dropped after the measurement, so LiveBytes sees them.
            b.iter_with_large_drop(|| {
                Sim::new(
                    scenario(n),
                    &registry,
                    RunOptions {
                        threads: 1,
                        out: None,
                        ..Default::default()
                    },
                )
                .unwrap()
            })
        });
    }
    g.finish();
}

/// Cold: heap bytes a built sim holds, per particle.
fn live_bytes(c: &mut Criterion<LiveBytes>) {
    build_group(c, "brownian_live_bytes");
}

/// Cold: heap bytes allocated on the way to a built sim, per particle.
fn build_bytes(c: &mut Criterion<AllocatedBytes>) {
    build_group(c, "brownian_build_bytes");
}

criterion_group!(time, step_throughput);
criterion_group! {
    name = bytes;
    config = Criterion::default().with_measurement(AllocatedBytes);
    targets = build_bytes
}
criterion_group! {
    name = live;
    config = Criterion::default().with_measurement(LiveBytes);
    targets = live_bytes
}
criterion_main!(time, live, bytes);
