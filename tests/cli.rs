//! The `microcosm` binary: bad input exits 2 naming file and key and writes
//! nothing; list, estimate, run and the budget stop behave as documented.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_microcosm"))
}

fn tmp(name: &str) -> PathBuf {
    let d = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("cli-{name}"));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn text(o: &Output) -> (String, String) {
    (
        String::from_utf8_lossy(&o.stdout).into_owned(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

const GOOD: &str = "[run]\nsteps = 4\n[plugins.brownian]\nparticles = 100\n[plugins.msd]\n";

/// Writes `scenario` to `<tmp>/<file>`, runs `microcosm run` on it with `args`
/// and `--out <tmp>/out`; returns the output, stderr and the output dir.
fn run_file(test: &str, file: &str, scenario: &str, args: &[&str]) -> (Output, String, PathBuf) {
    let d = tmp(test);
    let f = d.join(file);
    std::fs::write(&f, scenario).unwrap();
    let out = d.join("out");
    let o = bin()
        .arg("run")
        .arg(&f)
        .args(args)
        .arg("--out")
        .arg(&out)
        .output()
        .unwrap();
    let err = text(&o).1;
    (o, err, out)
}

/// Runs `microcosm run NAME --set S... --out <tmp>/out`; returns the output
/// and the output dir.
fn run_bundled(test: &str, name: &str, set: &[&str]) -> (Output, PathBuf) {
    let out = tmp(test).join("out");
    let mut c = bin();
    c.arg("run").arg(name);
    for s in set {
        c.arg("--set").arg(s);
    }
    let o = c.arg("--out").arg(&out).output().unwrap();
    (o, out)
}

#[test]
fn unknown_key_exits_2_names_the_key_and_creates_no_output_dir() {
    let bad = GOOD.replace("particles = 100", "particles = 100\nparticels = 5");
    let (o, err, out) = run_file("unknown-key", "bad.toml", &bad, &[]);
    assert_eq!(o.status.code(), Some(2), "{err}");
    assert!(err.contains("bad.toml"), "{err}");
    assert!(err.contains("key `plugins.brownian.particels`"), "{err}");
    assert!(err.contains("unknown field"), "{err}");
    assert!(!out.exists(), "output directory was created");
}

#[test]
fn bad_values_and_overrides_exit_2_with_file_key_and_reason() {
    for (args, key, reason) in [
        (
            vec!["--set", "plugins.brownian.particles=0"],
            "plugins.brownian.particles",
            "at least 1",
        ),
        (
            vec!["--set", "plugins.brownian.dt=fast"],
            "plugins.brownian.dt",
            "invalid type",
        ),
        (
            vec!["--set", "run.sample_every=0"],
            "run.sample_every",
            "at least 1",
        ),
        (
            vec!["--set", "plugins.nosuch.x=1"],
            "plugins.nosuch",
            "unknown plugin",
        ),
        (
            vec!["--set", "run.memory_budget_mb=0.001"],
            "run.memory_budget_mb",
            "over the budget",
        ),
    ] {
        let (o, err, out) = run_file("bad-values", "s.toml", GOOD, &args);
        assert_eq!(o.status.code(), Some(2), "{args:?}: {err}");
        assert!(
            err.contains(&format!("key `{key}`")) && err.contains(reason),
            "{args:?}: {err}"
        );
        assert!(err.contains("s.toml"), "{err}");
        assert!(!out.exists(), "{args:?} created the output directory");
    }
    let o = bin().args(["run", "no/such-scenario"]).output().unwrap();
    assert_eq!(o.status.code(), Some(2));
    assert!(text(&o).1.contains("no/such-scenario"));
}

#[test]
fn run_writes_outputs_and_stable_summary_lines() {
    let args = ["--steps", "6", "--seed", "3", "--threads", "1"];
    let (o, err, out) = run_file("run", "s.toml", GOOD, &args);
    let stdout = text(&o).0;
    assert_eq!(o.status.code(), Some(0), "{err}");
    for line in [
        "entities: 100\n",
        "steps: 6\n",
        "threads: 1\n",
        "seed: 3\n",
        "steady_state_heap_allocations: 0 (5 steps)\n",
    ] {
        assert!(stdout.contains(line), "missing {line:?} in\n{stdout}");
    }
    for key in [
        "wall_seconds: ",
        "entity_steps_per_second: ",
        "bytes_per_entity: ",
    ] {
        assert!(stdout.lines().any(|l| l.starts_with(key)), "missing {key}");
    }
    let names = [
        "metrics.csv",
        "summary.json",
        "memory.json",
        "scenario.toml",
    ];
    for n in names {
        assert!(out.join(n).is_file(), "{n} missing");
    }
    // scenario.toml is the scenario as run: the file with --steps and --seed applied.
    let ran = std::fs::read_to_string(out.join("scenario.toml")).unwrap();
    let ran: toml::Table = ran.parse().unwrap();
    assert_eq!(ran["run"]["steps"].as_integer(), Some(6));
    assert_eq!(ran["run"]["seed"].as_integer(), Some(3));
    assert_eq!(
        ran["plugins"]["brownian"]["particles"].as_integer(),
        Some(100)
    );
    let count = std::fs::read_dir(&out).unwrap().count();
    assert_eq!(count, names.len(), "no .part files left");
    let summary: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("summary.json")).unwrap()).unwrap();
    assert_eq!(summary["entities"], 100);
    assert_eq!(summary["steps"], 6);
    assert_eq!(summary["seed"], 3);
    let mem: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("memory.json")).unwrap()).unwrap();
    for k in [
        "entities",
        "bytes_per_entity",
        "components",
        "resources",
        "scratch",
        "heap",
        "steady_state",
        "rss",
        "phases",
        "leak",
        "estimate",
    ] {
        assert!(mem.get(k).is_some(), "memory.json lacks {k}");
    }
    assert_eq!(mem["phases"].as_array().unwrap().len(), 6);
    assert!(mem["rss"]["peak_bytes"].as_u64().unwrap() > 0);
}

#[test]
fn live_heap_over_budget_stops_with_exit_4_and_flushed_outputs() {
    // The estimate (~10 kB) is under the budget; the process's live heap is not.
    let scenario = GOOD.replace(
        "steps = 4",
        "steps = 50
memory_budget_mb = 0.05",
    );
    let (o, err, out) = run_file("budget", "s.toml", &scenario, &[]);
    assert_eq!(o.status.code(), Some(4), "{err}");
    assert!(err.contains("memory_budget_mb"), "{err}");
    let summary = std::fs::read_to_string(out.join("summary.json")).unwrap();
    assert!(summary.contains("memory_budget"));
    let csv = std::fs::read_to_string(out.join("metrics.csv")).unwrap();
    assert_eq!(csv.lines().count(), 3, "header, step 0, step 1:\n{csv}");
}

#[test]
fn list_and_estimate() {
    let o = bin().arg("list").output().unwrap();
    let (stdout, _) = text(&o);
    assert_eq!(o.status.code(), Some(0));
    assert!(
        stdout.lines().any(|l| l.starts_with("demo/brownian ")),
        "{stdout}"
    );
    assert!(stdout.contains("plugins:") && stdout.contains("msd"));
    let o = bin()
        .args([
            "estimate",
            "demo/brownian",
            "--set",
            "plugins.brownian.particles=1000",
        ])
        .output()
        .unwrap();
    let (stdout, err) = text(&o);
    assert_eq!(o.status.code(), Some(0), "{err}");
    // 1000 × (2 × (12 + 8) + 8 + 16) + entity metadata (1000 + 16 → 1024 slots × 24 B).
    assert!(stdout.contains("estimate_bytes: 88576\n"), "{stdout}");
}

#[test]
fn bare_microcosm_runs_the_default_scenario() {
    let d = tmp("bare");
    let o = bin().current_dir(&d).output().unwrap();
    let (stdout, err) = text(&o);
    assert_eq!(o.status.code(), Some(0), "{err}");
    assert!(stdout.contains("scenario: md/lj-liquid"));
    assert!(stdout.contains("memory ("), "memory table printed");
    assert!(d.join("runs/md/lj-liquid/memory.json").is_file());
}

#[test]
fn md_with_an_absurd_time_step_stops_with_exit_3_naming_step_and_atom() {
    let (o, out) = run_bundled(
        "blowup",
        "md/lj-small",
        &["plugins.nve.dt=0.5", "run.steps=50"],
    );
    let err = text(&o).1;
    assert_eq!(o.status.code(), Some(3), "{err}");
    // At dt = 0.5 τ the first drift already moves atoms ~2 σ (skin/2 = 0.15).
    assert!(
        err.contains("blow-up at step 1: atom ") && err.contains("more than half the skin"),
        "{err}"
    );
    let summary = std::fs::read_to_string(out.join("summary.json")).unwrap();
    assert!(summary.contains("\"kind\": \"blow_up\""), "{summary}");
    assert!(out.join("metrics.csv").exists(), "outputs flushed");
    // The normal time step never trips the check (lj-small's own tests run
    // 10,000 steps of it).
}

#[test]
fn genes_with_overflowing_expression_stop_with_exit_3_naming_the_individual() {
    let model = "plugins.expression.model={ kind = \"composite\", base = { kind = \"hill\", \
                 v_max = 1.0, k = 0.5, n = 2.0 }, regulation = { kind = \"multiplicative\", weight = 1e30 } }";
    let (o, out) = run_bundled("genes-blowup", "genes/phase2", &[model, "run.steps=20"]);
    let err = text(&o).1;
    assert_eq!(o.status.code(), Some(3), "{err}");
    assert!(
        err.contains("blow-up at step 1: individual ") && err.contains("expression level inf"),
        "{err}"
    );
    assert!(out.join("metrics.csv").exists(), "outputs flushed");
}

#[test]
fn sigint_finishes_the_step_flushes_outputs_and_exits_130() {
    let d = tmp("sigint");
    let out = d.join("out");
    // 100,000 generations of phase2 would take minutes: it must be interrupted.
    let mut child = bin()
        .args([
            "run",
            "genes/phase2",
            "--set",
            "run.steps=100000",
            "--set",
            "run.sample_every=1",
        ])
        .arg("--out")
        .arg(&out)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // Wait until the run is stepping (metrics rows being produced), then signal.
    let t0 = std::time::Instant::now();
    while !out.join("metrics.csv.part").exists() && t0.elapsed().as_secs() < 20 {
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    std::thread::sleep(std::time::Duration::from_millis(500));
    let pid = child.id().to_string();
    assert!(
        Command::new("kill")
            .args(["-INT", &pid])
            .status()
            .unwrap()
            .success()
    );
    let t1 = std::time::Instant::now();
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        if t1.elapsed().as_secs() > 60 {
            let _ = child.kill();
            panic!("no exit within 60 s of SIGINT");
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    };
    let o = child.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&o.stderr).into_owned();
    assert_eq!(status.code(), Some(130), "{err}");
    assert!(err.contains("interrupted by SIGINT after step "), "{err}");
    assert!(
        err.contains(&format!(
            "checkpoint written, outputs flushed; continue with: microcosm resume {}",
            out.display()
        )),
        "{err}"
    );
    let summary = std::fs::read_to_string(out.join("summary.json")).unwrap();
    assert!(summary.contains("\"kind\": \"interrupted\""), "{summary}");
    // Flushed: every completed generation has its row (sample_every = 1).
    let v: serde_json::Value = serde_json::from_str(&summary).unwrap();
    let step = v["stop"]["step"].as_u64().unwrap();
    let csv = std::fs::read_to_string(out.join("metrics.csv")).unwrap();
    assert_eq!(
        csv.lines().count() as u64,
        step + 2,
        "header + steps 0..={step}"
    );
    assert!(step < 100_000);
    // The checkpoint is of the last completed step, and records the
    // metrics.csv that is on disk.
    let ckpts = microcosm::engine::checkpoint::list(&out);
    assert_eq!(ckpts.len(), 1);
    assert_eq!(ckpts[0].0, step);
    let l = microcosm::engine::checkpoint::Loaded::read(&ckpts[0].1).unwrap();
    let recorded = l
        .header
        .outputs
        .iter()
        .find(|o| o.0 == "metrics.csv")
        .unwrap();
    assert_eq!(recorded.1, csv.len() as u64);
}

/// Polls `dir` until a checkpoint of at least `step` exists.
fn wait_for_checkpoint(dir: &Path, step: u64, child: &mut std::process::Child) {
    let t0 = std::time::Instant::now();
    loop {
        if microcosm::engine::checkpoint::list(dir)
            .first()
            .is_some_and(|c| c.0 >= step)
        {
            return;
        }
        if let Some(s) = child.try_wait().unwrap() {
            panic!("the run ended ({s}) before a checkpoint of step {step}");
        }
        assert!(t0.elapsed().as_secs() < 120, "no checkpoint within 120 s");
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
}

#[test]
fn a_run_killed_with_sigkill_resumes_and_ends_as_an_uninterrupted_one() {
    let d = tmp("sigkill");
    let (straight, killed) = (d.join("straight"), d.join("killed"));
    let args = [
        "run",
        "md/lj-small",
        "--steps",
        "3000",
        "--set",
        "run.sample_every=10",
        "--set",
        "plugins.dump.every=500",
    ];
    let o = bin()
        .args(args)
        .arg("--out")
        .arg(&straight)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", text(&o).1);

    let mut child = bin()
        .args(args)
        .args(["--checkpoint-every", "40", "--threads", "1", "--out"])
        .arg(&killed)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    wait_for_checkpoint(&killed, 80, &mut child);
    child.kill().unwrap(); // SIGKILL: no handler, no flush
    assert!(child.wait().unwrap().code().is_none(), "killed by a signal");
    assert!(killed.join("metrics.csv.part").exists());
    assert!(!killed.join("summary.json").exists());

    let o = bin()
        .args(["resume", "--threads", "2"])
        .arg(&killed)
        .output()
        .unwrap();
    let (stdout, err) = text(&o);
    assert!(o.status.success(), "{err}");
    assert!(err.contains("resuming md/lj-small from step "), "{err}");
    assert!(stdout.contains("steps: 3000"), "{stdout}");
    for f in ["metrics.csv", "traj.xyz"] {
        let (a, b) = (
            std::fs::read(straight.join(f)).unwrap(),
            std::fs::read(killed.join(f)).unwrap(),
        );
        assert!(a == b, "{f} differs from the uninterrupted run's");
    }
    let hash = |dir: &Path| {
        let s = std::fs::read_to_string(dir.join("summary.json")).unwrap();
        let v: serde_json::Value = serde_json::from_str(&s).unwrap();
        v["state_hash"].as_str().unwrap().to_string()
    };
    assert_eq!(hash(&straight), hash(&killed));
}

#[test]
fn resume_without_a_usable_checkpoint_exits_2() {
    let d = tmp("resume-nothing");
    let o = bin().arg("resume").arg(&d).output().unwrap();
    assert_eq!(o.status.code(), Some(2));
    assert!(
        text(&o).1.contains("no checkpoint-*.mcp files"),
        "{}",
        text(&o).1
    );
    let o = bin().arg("resume").arg(d.join("missing")).output().unwrap();
    assert_eq!(o.status.code(), Some(2));
    assert!(
        text(&o).1.contains("no such run directory"),
        "{}",
        text(&o).1
    );
}

#[test]
fn a_full_disk_is_a_clear_error_and_earlier_outputs_stay_intact() {
    let d = tmp("disk-full");
    let f = d.join("s.toml");
    std::fs::write(&f, GOOD.replace("steps = 4", "steps = 2000")).unwrap();
    let out = d.join("out");
    let run = || {
        bin()
            .arg("run")
            .arg(&f)
            .arg("--out")
            .arg(&out)
            .output()
            .unwrap()
    };
    let o = run();
    assert!(o.status.success(), "{}", text(&o).1);
    let before = std::fs::read(out.join("metrics.csv")).unwrap();
    let summary = std::fs::read(out.join("summary.json")).unwrap();
    // The second run's metrics go to a device that is always full.
    std::os::unix::fs::symlink("/dev/full", out.join("metrics.csv.part")).unwrap();
    let o = run();
    let err = text(&o).1;
    assert_eq!(o.status.code(), Some(1), "{err}");
    assert!(err.contains("metrics.csv"), "{err}");
    assert!(err.contains("No space left on device"), "{err}");
    assert_eq!(std::fs::read(out.join("metrics.csv")).unwrap(), before);
    assert_eq!(std::fs::read(out.join("summary.json")).unwrap(), summary);
}

#[test]
fn an_output_directory_that_cannot_be_created_is_a_clear_error() {
    let d = tmp("out-not-dir");
    let file = d.join("a-file");
    std::fs::write(&file, "not a directory").unwrap();
    let f = d.join("s.toml");
    std::fs::write(&f, GOOD).unwrap();
    let o = bin()
        .arg("run")
        .arg(&f)
        .arg("--out")
        .arg(file.join("out"))
        .output()
        .unwrap();
    let err = text(&o).1;
    assert_eq!(o.status.code(), Some(1), "{err}");
    assert!(
        err.contains(&file.join("out").display().to_string()),
        "{err}"
    );
    assert_eq!(std::fs::read_to_string(&file).unwrap(), "not a directory");
}

#[test]
fn report_writes_the_page_and_refuses_a_directory_that_is_not_a_run() {
    let (o, err, out) = run_file("report", "s.toml", GOOD, &["--report"]);
    assert_eq!(o.status.code(), Some(0), "{err}");
    assert!(
        text(&o)
            .0
            .contains(&format!("report: {}", out.join("report.html").display())),
        "{}",
        text(&o).0
    );
    assert!(out.join("plots/memory_breakdown.png").is_file());
    let o = bin()
        .arg("report")
        .arg(tmp("report-empty"))
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2));
    assert!(
        text(&o).1.contains("not a finished run directory"),
        "{}",
        text(&o).1
    );
}
