//! Checkpoint and resume, bit for bit: for every bundled sim, 2k steps run
//! straight and k steps (plus a few more that a crash throws away) resumed
//! from the checkpoint at k end in the same outputs, byte for byte, and the
//! same state hash, whatever the thread counts of the three runs. Damaged
//! checkpoints fall back to the older one; checkpoints of another version or
//! another scenario are refused.

mod common;

use std::path::{Path, PathBuf};

use microcosm::engine::checkpoint::{self, CheckpointError};
use microcosm::engine::sim::RunReport;
use microcosm::engine::{RunOptions, Scenario, Sim, SimError};

fn start(name: &str, set: &[&str], threads: usize, out: &Path, every: u64) -> Sim {
    microcosm::bundled_sim(
        name,
        set,
        RunOptions {
            threads,
            out: Some(out.to_path_buf()),
            checkpoint_every: every,
        },
    )
    .unwrap()
}

fn resume(dir: &Path, threads: usize) -> Result<Sim, SimError> {
    Sim::resume(
        dir,
        &microcosm::sims::registry(),
        RunOptions {
            threads,
            ..Default::default()
        },
    )
}

fn finish(mut sim: Sim) -> RunReport {
    sim.run(|_, _| {});
    sim.finish().unwrap()
}

/// Steps a run `steps` times and drops it without finishing, as a crash would
/// (its outputs stay `.part` files, with rows past its last checkpoint).
fn crash_after(mut sim: Sim, steps: u64) {
    sim.in_pool(|s| {
        for _ in 0..steps {
            assert!(s.step());
        }
    });
}

/// Output files of a finished run (everything but the reports, which hold
/// timings, and the checkpoints).
fn outputs(dir: &Path) -> Vec<(String, Vec<u8>)> {
    let mut v: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .flatten()
        .map(|e| e.file_name().into_string().unwrap())
        .filter(|n| !n.ends_with(".json") && !n.ends_with(".mcp") && !n.ends_with(".part"))
        .map(|n| {
            let b = std::fs::read(dir.join(&n)).unwrap();
            (n, b)
        })
        .collect();
    v.sort();
    v
}

/// 2k steps straight (no checkpoints) at `threads.0`; k + k/2 steps with a
/// checkpoint every k at `threads.1`, crashed; resumed at `threads.2`.
fn straight_equals_resumed(test: &str, name: &str, set: &[&str], k: u64, threads: [usize; 3]) {
    let steps = format!("run.steps={}", 2 * k);
    let mut set = set.to_vec();
    set.push(&steps);
    let a = common::temp_dir(&format!("ckpt-{test}-straight"));
    let b = common::temp_dir(&format!("ckpt-{test}-resumed"));
    let straight = finish(start(name, &set, threads[0], &a, 0));

    crash_after(start(name, &set, threads[1], &b, k), k + k / 2);
    let ckpts = checkpoint::list(&b);
    assert_eq!(ckpts.iter().map(|c| c.0).collect::<Vec<_>>(), vec![k]);
    let sim = resume(&b, threads[2]).unwrap();
    assert_eq!(sim.resumed_from(), Some(k));
    assert!(sim.warnings().is_empty());
    let resumed = finish(sim);

    let (oa, ob) = (outputs(&a), outputs(&b));
    assert!(oa.iter().any(|(n, _)| n == "metrics.csv"));
    assert_eq!(
        oa.iter().map(|o| &o.0).collect::<Vec<_>>(),
        ob.iter().map(|o| &o.0).collect::<Vec<_>>()
    );
    for ((n, x), (_, y)) in oa.iter().zip(&ob) {
        assert!(x == y, "{name}: {n} differs after resume");
    }
    let rows = String::from_utf8_lossy(&oa[0].1).lines().count();
    assert!(rows > 2, "{name}: the metrics have rows past the header");
    assert_eq!(straight.summary.steps, 2 * k);
    assert_eq!(resumed.summary.steps, 2 * k);
    assert_eq!(resumed.summary.resumed_from, Some(k));
    assert_eq!(straight.summary.state_hash, resumed.summary.state_hash);
}

#[test]
fn md_nve_resumes_bitwise() {
    // 2,048 atoms: list rebuilds every 20 steps and prunes in between, so the
    // checkpoint at step 30 falls between builds (list and prune state saved).
    let set = ["plugins.atoms.lattice.cells=[8,8,8]", "run.sample_every=5"];
    straight_equals_resumed("md", "md/lj-liquid", &set, 30, [1, 2, 1]);
}

#[test]
fn md_langevin_two_types_and_dump_resume_bitwise() {
    let set = [
        "plugins.atoms.lattice.cells=[6,6,6]",
        "run.sample_every=5",
        "run.warmup_steps=0",
    ];
    straight_equals_resumed("ka", "md/kob-andersen", &set, 25, [2, 1, 2]);
}

#[test]
fn genes_resume_bitwise() {
    let set = ["plugins.population.individuals=300", "run.sample_every=1"];
    straight_equals_resumed("genes", "genes/phase2", &set, 20, [1, 2, 2]);
}

#[test]
fn agents_dense_and_sparse_resume_bitwise() {
    straight_equals_resumed("agents-dense", "agents/gridworld", &[], 20, [2, 1, 1]);
    let sparse = ["plugins.agents.beliefs=\"sparse\""];
    straight_equals_resumed("agents-sparse", "agents/maze", &sparse, 20, [1, 2, 1]);
}

#[test]
fn brownian_demo_resumes_bitwise() {
    let set = ["plugins.brownian.particles=5000"];
    straight_equals_resumed("brownian", "demo/brownian", &set, 20, [1, 1, 2]);
}

#[test]
fn the_state_hash_tells_states_apart() {
    let d = common::temp_dir("ckpt-hash");
    let set = ["plugins.population.individuals=50", "run.steps=3"];
    let h = |seed: &str| {
        let mut s = set.to_vec();
        s.push(seed);
        finish(start("genes/phase2", &s, 1, &d, 0))
            .summary
            .state_hash
    };
    assert_eq!(h("run.seed=1"), h("run.seed=1"));
    assert_ne!(h("run.seed=1"), h("run.seed=2"));
}

/// A small MD run with checkpoints at 10 and 20, crashed at 25.
fn crashed_md(test: &str) -> (PathBuf, PathBuf) {
    let set = [
        "plugins.atoms.lattice.cells=[6,6,6]",
        "run.steps=30",
        "run.sample_every=1",
    ];
    let a = common::temp_dir(&format!("ckpt-{test}-straight"));
    let b = common::temp_dir(&format!("ckpt-{test}-crashed"));
    finish(start("md/lj-liquid", &set, 1, &a, 0));
    crash_after(start("md/lj-liquid", &set, 1, &b, 10), 25);
    assert_eq!(
        checkpoint::list(&b).iter().map(|c| c.0).collect::<Vec<_>>(),
        vec![20, 10]
    );
    (a, b)
}

fn flip_byte(path: &Path, at_fraction: f64) {
    let mut bytes = std::fs::read(path).unwrap();
    let i = (bytes.len() as f64 * at_fraction) as usize;
    bytes[i] ^= 0x40;
    std::fs::write(path, bytes).unwrap();
}

#[test]
fn a_damaged_newest_checkpoint_falls_back_to_the_older_one() {
    let (a, b) = crashed_md("damaged");
    let newest = checkpoint::list(&b)[0].1.clone();
    flip_byte(&newest, 0.6);
    let sim = resume(&b, 2).unwrap();
    assert_eq!(sim.resumed_from(), Some(10));
    assert_eq!(sim.warnings().len(), 1);
    assert!(
        sim.warnings()[0].contains("checksum mismatch"),
        "{:?}",
        sim.warnings()
    );
    finish(sim);
    assert_eq!(outputs(&a), outputs(&b));
}

#[test]
fn a_truncated_newest_checkpoint_falls_back_too() {
    let (a, b) = crashed_md("truncated");
    let newest = checkpoint::list(&b)[0].1.clone();
    let bytes = std::fs::read(&newest).unwrap();
    std::fs::write(&newest, &bytes[..bytes.len() / 2]).unwrap();
    let sim = resume(&b, 1).unwrap();
    assert_eq!(sim.resumed_from(), Some(10));
    finish(sim);
    assert_eq!(outputs(&a), outputs(&b));
}

#[test]
fn two_damaged_checkpoints_are_a_clear_error() {
    let (_, b) = crashed_md("both-damaged");
    for (_, p) in checkpoint::list(&b) {
        flip_byte(&p, 0.3);
    }
    let Err(e) = resume(&b, 1) else {
        panic!("resumed from damaged checkpoints")
    };
    let msg = e.to_string();
    assert!(
        matches!(e, SimError::Checkpoint(CheckpointError::NoneUsable { .. })),
        "{msg}"
    );
    assert!(msg.contains("no intact checkpoint"), "{msg}");
    assert!(
        msg.contains("checkpoint-000000000020.mcp: damaged"),
        "{msg}"
    );
    assert!(
        msg.contains("checkpoint-000000000010.mcp: damaged"),
        "{msg}"
    );
    // Nothing was touched: the crashed run's outputs are still .part files.
    assert!(b.join("metrics.csv.part").exists());
}

#[test]
fn no_checkpoint_is_a_clear_error() {
    let d = common::temp_dir("ckpt-none");
    std::fs::create_dir_all(&d).unwrap();
    let Err(e) = resume(&d, 1) else {
        panic!("resumed from nothing")
    };
    assert!(e.to_string().contains("no checkpoint-*.mcp files"), "{e}");
}

/// Rewrites the version string of a checkpoint (same length) and its checksum.
fn forge_version(path: &Path, version: &str) {
    let mut bytes = std::fs::read(path).unwrap();
    let at = 8 + 4 + 8;
    assert_eq!(
        &bytes[at..at + version.len()],
        checkpoint::VERSION.as_bytes()
    );
    bytes[at..at + version.len()].copy_from_slice(version.as_bytes());
    let body = bytes.len() - 12;
    let crc = crc32fast::hash(&bytes[..body]);
    bytes[body..body + 4].copy_from_slice(&crc.to_le_bytes());
    std::fs::write(path, bytes).unwrap();
}

#[test]
fn checkpoints_of_another_version_or_scenario_are_refused() {
    let (_, b) = crashed_md("version");
    let newest = checkpoint::list(&b)[0].1.clone();
    let other: String = checkpoint::VERSION
        .chars()
        .map(|c| if c.is_ascii_digit() { '9' } else { c })
        .collect();
    forge_version(&newest, &other);
    let Err(e) = resume(&b, 1) else {
        panic!("resumed a checkpoint of another version")
    };
    assert!(
        matches!(e, SimError::Checkpoint(CheckpointError::Version { .. })),
        "{e}"
    );
    assert!(
        e.to_string()
            .contains(&format!("written by microcosm {other}")),
        "{e}"
    );

    // A genes checkpoint dropped into an MD run directory.
    let (_, md) = crashed_md("scenario");
    let g = common::temp_dir("ckpt-scenario-genes");
    let set = ["plugins.population.individuals=20", "run.steps=4"];
    crash_after(start("genes/phase2", &set, 1, &g, 2), 3);
    let (step, from) = checkpoint::list(&g)[0].clone();
    std::fs::copy(&from, md.join(format!("checkpoint-{:012}.mcp", step + 100))).unwrap();
    let Err(e) = resume(&md, 1) else {
        panic!("resumed another scenario's checkpoint")
    };
    assert!(
        matches!(e, SimError::Checkpoint(CheckpointError::Scenario { .. })),
        "{e}"
    );
    assert!(e.to_string().contains("genes/phase2"), "{e}");
}

#[test]
fn only_the_two_newest_checkpoints_are_kept() {
    let d = common::temp_dir("ckpt-keep");
    let set = ["plugins.population.individuals=20", "run.steps=10"];
    let r = finish(start("genes/phase2", &set, 1, &d, 2));
    assert_eq!(r.summary.checkpoints, 5);
    assert_eq!(
        checkpoint::list(&d).iter().map(|c| c.0).collect::<Vec<_>>(),
        vec![10, 8]
    );
    assert!(
        !std::fs::read_dir(&d)
            .unwrap()
            .flatten()
            .any(|e| e.file_name().to_string_lossy().ends_with(".part")),
        "no temporary file left behind"
    );
}

#[test]
fn a_fresh_run_in_the_same_directory_drops_the_earlier_runs_checkpoints() {
    let d = common::temp_dir("ckpt-rerun");
    let set = ["plugins.population.individuals=20", "run.steps=20"];
    finish(start("genes/phase2", &set, 1, &d, 10));
    assert_eq!(checkpoint::list(&d).len(), 2);
    let set = ["plugins.population.individuals=20", "run.steps=8"];
    crash_after(start("genes/phase2", &set, 1, &d, 4), 6);
    assert_eq!(
        checkpoint::list(&d).iter().map(|c| c.0).collect::<Vec<_>>(),
        vec![4]
    );
    let sim = resume(&d, 1).unwrap();
    assert_eq!(sim.resumed_from(), Some(4));
    assert_eq!(finish(sim).summary.steps, 8);
}

mod unsaved {
    use super::*;
    use microcosm::engine::prelude::*;

    /// A toy plugin whose component changes every step but is not saved.
    #[derive(serde::Deserialize)]
    struct Spin {}

    #[derive(Component, Clone, Copy)]
    struct Angle(f32);

    impl Plugin for Spin {
        fn build(&self, b: &mut Builder) -> Result<(), BuildError> {
            b.spawn_batch((0..10).map(|_| Angle(0.0)));
            b.add_systems(Phase::Evolve, |mut q: Query<&mut Angle>| {
                for mut a in &mut q {
                    a.0 += 0.1;
                }
            });
            Ok(())
        }
    }

    impl PluginConfig for Spin {
        const NAME: &'static str = "spin";
        const SUMMARY: &'static str = "test";
    }

    #[test]
    fn a_component_neither_saved_nor_constant_refuses_checkpoints() {
        let mut reg = Registry::default();
        reg.register::<Spin>();
        let text = "[run]\nsteps = 3\n[plugins.spin]\n";
        let s = Scenario::parse(text, "t", Path::new("t.toml"), Path::new("."), &[]).unwrap();
        let d = common::temp_dir("ckpt-unsaved");
        let opts = |every| RunOptions {
            threads: 1,
            out: Some(d.clone()),
            checkpoint_every: every,
        };
        let Err(e) = Sim::new(s.clone(), &reg, opts(1)) else {
            panic!("a run that would checkpoint an unsaved component started")
        };
        assert!(
            matches!(e, SimError::Checkpoint(CheckpointError::Unsaved { .. })),
            "{e}"
        );
        assert!(e.to_string().contains("Angle"), "{e}");
        assert!(!d.exists(), "nothing written");
        // Without checkpoints it runs; an explicit checkpoint is refused.
        let mut sim = Sim::new(s, &reg, opts(0)).unwrap();
        assert!(sim.step());
        let Err(e) = sim.checkpoint() else {
            panic!("checkpointed an unsaved component")
        };
        assert!(e.to_string().contains("Angle"), "{e}");
        assert!(checkpoint::list(&d).is_empty());
    }
}
