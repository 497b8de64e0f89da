//! Helpers shared by the integration tests.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard};

use microcosm::engine::{Registry, RunOptions, Scenario, Sim};

/// Tests that read the process-wide allocation counters take this lock, so
/// no other test of the same binary allocates while they measure.
pub fn serial() -> MutexGuard<'static, ()> {
    static LOCK: Mutex<()> = Mutex::new(());
    LOCK.lock().unwrap_or_else(|e| e.into_inner())
}

/// Builds a sim from scenario text.
pub fn sim(text: &str, registry: &Registry, threads: usize, out: Option<PathBuf>) -> Sim {
    let s = Scenario::parse(text, "test", Path::new("test.toml"), Path::new("."), &[]).unwrap();
    Sim::new(
        s,
        registry,
        RunOptions {
            threads,
            out,
            ..Default::default()
        },
    )
    .unwrap()
}

/// Builds a bundled scenario (`md/lj-liquid`) with `--set` overrides.
pub fn bundled(name: &str, set: &[&str], threads: usize, out: Option<PathBuf>) -> Sim {
    microcosm::bundled_sim(
        name,
        set,
        RunOptions {
            threads,
            out,
            ..Default::default()
        },
    )
    .unwrap()
}

/// A fresh empty directory under the target dir.
pub fn temp_dir(name: &str) -> PathBuf {
    let d = Path::new(env!("CARGO_TARGET_TMPDIR")).join(name);
    let _ = std::fs::remove_dir_all(&d);
    d
}
