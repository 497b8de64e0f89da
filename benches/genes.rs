//! Gene-population benches: gene-updates per second (N·G per generation) for
//! `genes/happygene-memtest` (5,000 × 100) and `genes/phase2` (10,000 × 100,
//! network + stabilizing selection + sexual Wright–Fisher) at 1 and 2 threads
//! — warm world (built, setup pass and 5 generations before timing), one
//! generation per iteration — and bytes per gene of a built population
//! (`LiveBytes`, cold; B/elem = bytes per gene).

use std::time::Duration;

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use microcosm::engine::alloc::CountingAlloc;
use microcosm::engine::bench::{LiveBytes, time_steps};
use microcosm::engine::{RunOptions, Sim};

#[global_allocator]
static ALLOC: CountingAlloc = CountingAlloc;

/// (scenario, genes per generation).
const CASES: [(&str, u64); 2] = [
    ("genes/happygene-memtest", 500_000),
    ("genes/phase2", 1_000_000),
];

fn build(name: &str, threads: usize) -> Sim {
    microcosm::bundled_sim(
        name,
        &["run.steps=1000000000", "run.warmup_steps=0"],
        RunOptions {
            threads,
            ..Default::default()
        },
    )
    .unwrap()
}

fn generations(c: &mut Criterion) {
    let mut g = c.benchmark_group("genes_generation");
    g.sample_size(20).measurement_time(Duration::from_secs(3));
    for (name, genes) in CASES {
        for threads in [1usize, 2] {
            let mut sim = build(name, threads);
            for _ in 0..5 {
                sim.step();
            }
            g.throughput(Throughput::Elements(genes));
            let id = BenchmarkId::new(
                format!("{}/{threads}t", name.trim_start_matches("genes/")),
                genes,
            );
            g.bench_function(id, |b| b.iter_custom(|iters| time_steps(&mut sim, iters)));
        }
    }
    g.finish();
}

fn live_bytes(c: &mut Criterion<LiveBytes>) {
    let mut g = c.benchmark_group("genes_live_bytes");
    g.sample_size(10);
    for (name, genes) in CASES {
        g.throughput(Throughput::Elements(genes));
        g.bench_function(name.trim_start_matches("genes/"), |b| {
            b.iter_with_large_drop(|| build(name, 1))
        });
    }
    g.finish();
}

criterion_group!(time, generations);
criterion_group! {
    name = bytes;
    config = Criterion::default().with_measurement(LiveBytes);
    targets = live_bytes
}
criterion_main!(time, bytes);
