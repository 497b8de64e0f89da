//! MD benches on LAMMPS's in.lj (`md/lj-liquid`: fcc ρ* = 0.8442, T = 3.0,
//! r_c = 2.5, skin 0.3, rebuild every 20 steps unchecked, NVE, thermo every 50):
//!
//! * `md_step/{1t,2t}/N` — warm world (built, setup pass and 30 steps done
//!   before timing), one step of N atoms, atom-steps/s; rebuilds included at
//!   their real rate, as in LAMMPS's "Loop time";
//! * `md_live_bytes/N` — cold: heap bytes a built sim holds, per atom.
//!
//! The same-sitting LAMMPS figures come from `benches/lammps/run.sh`.

use std::time::Duration;

use criterion::measurement::Measurement;
use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use microcosm::engine::alloc::CountingAlloc;
use microcosm::engine::bench::{LiveBytes, time_steps};
use microcosm::engine::{RunOptions, Scenario, Sim};

#[global_allocator]
static ALLOC: CountingAlloc = CountingAlloc;

/// (fcc cells per edge, atoms): 4,000, 32,000 and 256,000 atoms.
const SIZES: [(u32, u64); 3] = [(10, 4_000), (20, 32_000), (40, 256_000)];

fn scenario(cells: u32) -> Scenario {
    let set = [
        format!("plugins.atoms.lattice.cells=[{cells}, {cells}, {cells}]"),
        "run.steps=1000000000".to_string(),
        "run.warmup_steps=0".to_string(),
    ];
    microcosm::bundled_scenario("md/lj-liquid", &set).unwrap()
}

fn build(cells: u32, threads: usize) -> Sim {
    let registry = microcosm::sims::registry();
    Sim::new(
        scenario(cells),
        &registry,
        RunOptions {
            threads,
            ..Default::default()
        },
    )
    .unwrap()
}

fn step_throughput(c: &mut Criterion) {
    let mut g = c.benchmark_group("md_step");
    g.sample_size(10).measurement_time(Duration::from_secs(4));
    for (cells, n) in SIZES {
        for threads in [1usize, 2] {
            let mut sim = build(cells, threads);
            for _ in 0..30 {
                sim.step();
            }
            g.throughput(Throughput::Elements(n));
            g.bench_function(BenchmarkId::new(format!("{threads}t"), n), |b| {
                b.iter_custom(|iters| time_steps(&mut sim, iters))
            });
        }
    }
    g.finish();
}

fn live_group<M: Measurement>(c: &mut Criterion<M>) {
    let mut g = c.benchmark_group("md_live_bytes");
    g.sample_size(10);
    for (cells, n) in SIZES {
        g.throughput(Throughput::Elements(n));
        g.bench_function(BenchmarkId::from_parameter(n), |b| {
            b.iter_with_large_drop(|| build(cells, 1))
        });
    }
    g.finish();
}

fn live_bytes(c: &mut Criterion<LiveBytes>) {
    live_group(c);
}

criterion_group!(time, step_throughput);
criterion_group! {
    name = bytes;
    config = Criterion::default().with_measurement(LiveBytes);
    targets = live_bytes
}
criterion_main!(time, bytes);
