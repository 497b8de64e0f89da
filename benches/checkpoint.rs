//! Checkpoint cost: seconds per checkpoint (written, synced and renamed, the
//! two newest kept) and bytes per entity on disk, for `md/lj-liquid` (32,000
//! atoms), `genes/phase2` (10,000 individuals × 100 genes) and
//! `agents/crowd-1m` (1,000,000 agents), each after 3 steps. Throughput is in
//! entities: criterion's elem/s is entities checkpointed per second; the
//! bytes per entity are printed once per scenario.

use std::time::Duration;

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use microcosm::engine::alloc::CountingAlloc;
use microcosm::engine::{RunOptions, Sim};

#[global_allocator]
static ALLOC: CountingAlloc = CountingAlloc;

fn build(name: &str, out: &std::path::Path) -> Sim {
    let _ = std::fs::remove_dir_all(out);
    microcosm::bundled_sim(
        name,
        &["run.steps=1000000"],
        RunOptions {
            threads: 2,
            out: Some(out.to_path_buf()),
            ..Default::default()
        },
    )
    .unwrap()
}

fn checkpoints(c: &mut Criterion) {
    let mut g = c.benchmark_group("checkpoint");
    g.sample_size(10).measurement_time(Duration::from_secs(3));
    let tmp = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("bench-checkpoint");
    for name in ["md/lj-liquid", "genes/phase2", "agents/crowd-1m"] {
        let out = tmp.join(name.replace('/', "-"));
        let mut sim = build(name, &out);
        sim.in_pool(|s| {
            for _ in 0..3 {
                s.step();
            }
        });
        let entities = sim.world().entities().count_spawned() as u64;
        let w = sim.checkpoint().unwrap();
        println!(
            "{name}: {} B on disk, {:.1} B/entity",
            w.bytes,
            w.bytes as f64 / entities as f64
        );
        g.throughput(Throughput::Elements(entities));
        g.bench_function(BenchmarkId::new("write", name), |b| {
            b.iter(|| sim.checkpoint().unwrap())
        });
        drop(sim);
        let _ = std::fs::remove_dir_all(&out);
    }
    g.finish();
}

criterion_group!(benches, checkpoints);
criterion_main!(benches);
