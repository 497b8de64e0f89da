//! The `microcosm` command line, as a library: the `microcosm` binary calls
//! [`main`] with the bundled plugins, and a binary that adds its own plugins
//! (see `examples/`) calls it with a larger registry.
//!
//! Exit codes: 0 done; 2 bad input (scenario, key, value, budget estimate,
//! no usable checkpoint to resume), nothing written; 3 a blow-up (outputs
//! flushed); 4 stopped because live heap went over `run.memory_budget_mb`
//! (outputs flushed); 130 / 143 SIGINT / SIGTERM (step finished, checkpoint
//! written, outputs flushed); 1 any other failure (I/O).

use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};

use clap::{Parser, Subcommand};

use crate::memory::MemoryReport;
use crate::plugin::Registry;
use crate::scenario::{Scenario, ScenarioError};
use crate::sim::{self, RunOptions, RunReport, Sim, SimError, Stop};

/// Where bundled scenarios live and which one runs by default.
#[derive(Debug, Clone)]
pub struct Bundled {
    /// The `assets/` directory.
    pub assets: PathBuf,
    /// Bundled name run by a bare `microcosm`.
    pub default_scenario: String,
    /// Steps for the bare `microcosm` run (a short demo).
    pub default_steps: Option<u64>,
    /// Makes `report.html` (and its plots) from a run directory, for
    /// `microcosm report DIR` and `run --report`; returns the page's path.
    pub report: Option<ReportFn>,
}

/// Writes a run directory's report; returns the page's path or a message.
pub type ReportFn = fn(&Path) -> Result<PathBuf, String>;

#[derive(Parser, Debug)]
#[command(
    name = "microcosm",
    version,
    about = "A data-oriented ECS simulation engine"
)]
struct Cli {
    #[command(subcommand)]
    cmd: Option<Cmd>,
}

#[derive(Subcommand, Debug)]
enum Cmd {
    /// List bundled scenarios.
    List,
    /// Run a scenario (bundled name or path to a .toml).
    Run(RunArgs),
    /// Plots and report.html from a run directory's output files.
    Report {
        /// The run's output directory.
        dir: PathBuf,
    },
    /// Continue a run from its newest intact checkpoint, appending to its outputs.
    Resume(ResumeArgs),
    /// Predict memory from the scenario alone; nothing runs.
    Estimate {
        /// Bundled name or path.
        scenario: String,
        /// Override a key: --set run.steps=10 (repeatable).
        #[arg(long = "set", value_name = "KEY=VALUE")]
        set: Vec<String>,
    },
}

#[derive(clap::Args, Debug, Default)]
struct RunArgs {
    /// Bundled name (`md/lj-liquid`) or path to a .toml.
    scenario: String,
    /// Steps (overrides run.steps).
    #[arg(long)]
    steps: Option<u64>,
    /// Seed (overrides run.seed).
    #[arg(long)]
    seed: Option<u64>,
    /// Threads in the rayon pool (0: all cores).
    #[arg(long, default_value_t = 0)]
    threads: usize,
    /// Output directory (default runs/<scenario>/).
    #[arg(long)]
    out: Option<PathBuf>,
    /// Override a key: --set plugins.lj.cutoff=3.0 (repeatable).
    #[arg(long = "set", value_name = "KEY=VALUE")]
    set: Vec<String>,
    /// Write a checkpoint every N steps (the two newest are kept).
    #[arg(long, value_name = "N", default_value_t = 0)]
    checkpoint_every: u64,
    /// Write report.html and plots into the output directory at the end.
    #[arg(long)]
    report: bool,
}

#[derive(clap::Args, Debug, Default)]
struct ResumeArgs {
    /// The run's output directory.
    dir: PathBuf,
    /// Threads in the rayon pool (0: all cores); results do not depend on it.
    #[arg(long, default_value_t = 0)]
    threads: usize,
    /// Checkpoint every N steps (default: as the interrupted run did).
    #[arg(long, value_name = "N", default_value_t = 0)]
    checkpoint_every: u64,
    /// Write report.html and plots at the end.
    #[arg(long)]
    report: bool,
}

/// Runs the CLI on `std::env::args`; returns the process exit code.
pub fn main(registry: &Registry, bundled: &Bundled) -> i32 {
    let cli = Cli::parse();
    let mut out = std::io::stdout().lock();
    match cli.cmd {
        None => {
            let args = RunArgs {
                scenario: bundled.default_scenario.clone(),
                steps: bundled.default_steps,
                ..Default::default()
            };
            run(registry, bundled, args, &mut out)
        }
        Some(Cmd::List) => list(registry, bundled, &mut out),
        Some(Cmd::Run(args)) => run(registry, bundled, args, &mut out),
        Some(Cmd::Resume(args)) => resume(registry, bundled, args, &mut out),
        Some(Cmd::Report { dir }) => report(bundled, &dir, &mut out),
        Some(Cmd::Estimate { scenario, set }) => {
            estimate(registry, bundled, &scenario, &set, &mut out)
        }
    }
}

fn fail(e: impl std::fmt::Display, code: i32) -> i32 {
    eprintln!("error: {e}");
    code
}

/// Finds a scenario: a path to a file, or a bundled name.
pub fn locate(bundled: &Bundled, s: &str) -> Result<(PathBuf, String), ScenarioError> {
    let p = Path::new(s);
    if s.ends_with(".toml") || p.is_file() {
        let name = p
            .file_stem()
            .map_or(s.into(), |n| n.to_string_lossy().into_owned());
        return Ok((p.to_path_buf(), name));
    }
    let f = bundled.assets.join(format!("{s}.toml"));
    if f.is_file() {
        Ok((f, s.to_string()))
    } else {
        Err(ScenarioError::File {
            file: s.to_string(),
            reason: "no such file and no bundled scenario of that name (see `microcosm list`)"
                .into(),
        })
    }
}

fn load(bundled: &Bundled, s: &str, set: &[String]) -> Result<Scenario, ScenarioError> {
    let (path, name) = locate(bundled, s)?;
    Scenario::load(&path, &name, set)
}

/// Bundled scenarios: (name, description), sorted by name.
pub fn bundled_scenarios(assets: &Path) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut stack = vec![assets.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(rd) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in rd.flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else if p.extension().is_some_and(|x| x == "toml") {
                let name = p
                    .strip_prefix(assets)
                    .unwrap_or(&p)
                    .with_extension("")
                    .to_string_lossy()
                    .replace('\\', "/");
                let desc = std::fs::read_to_string(&p)
                    .ok()
                    .and_then(|t| t.parse::<toml::Table>().ok())
                    .and_then(|t| {
                        t.get("run")?
                            .get("description")?
                            .as_str()
                            .map(str::to_string)
                    })
                    .unwrap_or_default();
                out.push((name, desc));
            }
        }
    }
    out.sort();
    out
}

fn list(registry: &Registry, bundled: &Bundled, out: &mut impl Write) -> i32 {
    for (name, desc) in bundled_scenarios(&bundled.assets) {
        let _ = writeln!(out, "{name:<28} {desc}");
    }
    let _ = writeln!(out, "\nplugins:");
    for n in registry.names() {
        let _ = writeln!(out, "  {n:<26} {}", registry.summary(n).unwrap_or(""));
    }
    0
}

fn estimate(
    registry: &Registry,
    bundled: &Bundled,
    s: &str,
    set: &[String],
    out: &mut impl Write,
) -> i32 {
    let scenario = match load(bundled, s, set) {
        Ok(s) => s,
        Err(e) => return fail(e, 2),
    };
    let (_, e) = match sim::estimate(&scenario, registry) {
        Ok(x) => x,
        Err(e) => return fail(e, 2),
    };
    let _ = writeln!(
        out,
        "estimate for {} ({} entities)",
        scenario.name, e.entities
    );
    for (what, b) in &e.lines {
        let _ = writeln!(out, "  {what:<48} {b:>14} B");
    }
    let per = if e.entities > 0 {
        e.total() as f64 / e.entities as f64
    } else {
        0.0
    };
    let _ = writeln!(out, "estimate_bytes: {}", e.total());
    let _ = writeln!(out, "estimate_bytes_per_entity: {per:.1}");
    if let Some(b) = scenario.run.budget_bytes() {
        let verdict = if e.total() > b { "over" } else { "within" };
        let _ = writeln!(out, "memory_budget_bytes: {b} ({verdict})");
    }
    0
}

fn run(registry: &Registry, bundled: &Bundled, args: RunArgs, out: &mut impl Write) -> i32 {
    let mut set = Vec::new();
    if let Some(n) = args.steps {
        set.push(format!("run.steps={n}"));
    }
    if let Some(s) = args.seed {
        set.push(format!("run.seed={s}"));
    }
    set.extend(args.set.iter().cloned());
    let scenario = match load(bundled, &args.scenario, &set) {
        Ok(s) => s,
        Err(e) => return fail(e, 2),
    };
    let dir = args
        .out
        .unwrap_or_else(|| Path::new("runs").join(&scenario.name));
    let opts = RunOptions {
        threads: args.threads,
        out: Some(dir.clone()),
        checkpoint_every: args.checkpoint_every,
    };
    let code = match Sim::new(scenario, registry, opts) {
        Ok(sim) => drive(sim, &dir, out),
        Err(e) => return fail_start(e),
    };
    if args.report && code != 1 {
        let r = report(bundled, &dir, out);
        if code == 0 {
            return r;
        }
    }
    code
}

fn report(bundled: &Bundled, dir: &Path, out: &mut impl Write) -> i32 {
    let Some(make) = bundled.report else {
        return fail("this binary has no report writer", 1);
    };
    if !dir.join("summary.json").is_file() {
        return fail(
            format!(
                "{}: not a finished run directory (no summary.json)",
                dir.display()
            ),
            2,
        );
    }
    match make(dir) {
        Ok(page) => {
            let _ = writeln!(out, "report: {}", page.display());
            0
        }
        Err(e) => fail(e, 1),
    }
}

/// Exit code of a sim that could not start: 2 for the user's input.
fn fail_start(e: SimError) -> i32 {
    match e {
        e @ (SimError::Scenario(_)
        | SimError::Build { .. }
        | SimError::OverBudget { .. }
        | SimError::Checkpoint(_)) => fail(e, 2),
        e => fail(e, 1),
    }
}

fn resume(registry: &Registry, bundled: &Bundled, args: ResumeArgs, out: &mut impl Write) -> i32 {
    if !args.dir.is_dir() {
        return fail(format!("{}: no such run directory", args.dir.display()), 2);
    }
    let opts = RunOptions {
        threads: args.threads,
        out: Some(args.dir.clone()),
        checkpoint_every: args.checkpoint_every,
    };
    match Sim::resume(&args.dir, registry, opts) {
        Ok(sim) => {
            for w in sim.warnings() {
                eprintln!("warning: {w}");
            }
            eprintln!(
                "resuming {} from step {}",
                sim.scenario().name,
                sim.resumed_from().unwrap_or(0)
            );
            let code = drive(sim, &args.dir, out);
            if args.report && code == 0 {
                return report(bundled, &args.dir, out);
            }
            code
        }
        Err(e) => fail_start(e),
    }
}

/// Runs a started sim to its end, prints the report, returns the exit code.
fn drive(mut sim: Sim, dir: &Path, out: &mut impl Write) -> i32 {
    // SIGINT / SIGTERM: finish the step in progress, flush, exit 130 / 143.
    let signal = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    #[cfg(unix)]
    for sig in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        if let Err(e) =
            signal_hook::flag::register_usize(sig, std::sync::Arc::clone(&signal), sig as usize)
        {
            eprintln!("warning: cannot catch signal {sig}: {e}");
        }
    }
    sim.interrupt_on(signal);
    let seen = sim.warnings().len();
    let bar = progress_bar(sim.scenario().run.steps);
    sim.run(|step, _| {
        if let Some(b) = &bar {
            b.set_position(step);
        }
    });
    if let Some(b) = bar {
        b.finish_and_clear();
    }
    let warnings = sim.warnings()[seen..].to_vec();
    let report = match sim.finish() {
        Ok(r) => r,
        Err(e) => return fail(e, 1),
    };
    print_report(&report, dir, out);
    match &report.summary.stop {
        Stop::Completed => 0,
        Stop::MemoryBudget {
            step,
            live_bytes,
            budget_bytes,
        } => {
            eprintln!(
                "error: live heap {live_bytes} B went over run.memory_budget_mb ({budget_bytes} B) after step {step}; stopped, outputs flushed"
            );
            4
        }
        Stop::BlowUp { step, blowup } => {
            eprintln!(
                "error: blow-up at step {step}: {} {}: {}; stopped, outputs flushed",
                blowup.what, blowup.entity, blowup.detail
            );
            3
        }
        Stop::Interrupted { step, signal } => {
            for w in &warnings {
                eprintln!("warning: {w}");
            }
            let name = if *signal == 15 { "SIGTERM" } else { "SIGINT" };
            let saved = if report.summary.checkpoints > 0 {
                "checkpoint written, "
            } else {
                ""
            };
            eprintln!(
                "interrupted by {name} after step {step}; {saved}outputs flushed; continue with: microcosm resume {}",
                dir.display()
            );
            128 + signal
        }
        Stop::OutputError { step, error } => {
            eprintln!("error: writing outputs at step {step}: {error}");
            1
        }
    }
}

fn progress_bar(steps: u64) -> Option<indicatif::ProgressBar> {
    if !std::io::stderr().is_terminal() || std::env::var_os("CI").is_some() {
        return None;
    }
    let b = indicatif::ProgressBar::new(steps);
    b.set_style(
        indicatif::ProgressStyle::with_template("{bar:40} {pos}/{len} steps  {per_sec}  ETA {eta}")
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
    );
    Some(b)
}

fn mb(b: u64) -> String {
    format!("{:.2} MB", b as f64 / 1e6)
}

/// Prints the stable end-of-run lines and the memory table.
pub fn print_report(r: &RunReport, dir: &Path, out: &mut impl Write) {
    let s = &r.summary;
    let m = &r.memory;
    let _ = writeln!(out, "scenario: {}", s.scenario);
    let _ = writeln!(out, "plugins: {}", s.plugins.join(" "));
    let _ = writeln!(out, "entities: {}", s.entities);
    let _ = writeln!(out, "steps: {}", s.steps);
    let _ = writeln!(out, "threads: {}", s.threads);
    let _ = writeln!(out, "seed: {}", s.seed);
    let _ = writeln!(out, "setup_seconds: {:.4}", s.setup_seconds);
    let _ = writeln!(out, "wall_seconds: {:.4}", s.loop_seconds);
    let _ = writeln!(
        out,
        "entity_steps_per_second: {:.4e}",
        s.entity_steps_per_second
    );
    let _ = writeln!(out, "bytes_per_entity: {:.1}", m.bytes_per_entity);
    for (k, v) in &m.per_unit {
        let _ = writeln!(out, "{k}: {v:.3}");
    }
    let _ = writeln!(
        out,
        "steady_state_heap_allocations: {} ({} steps)",
        m.steady_state.heap_allocations, m.steady_state.steps
    );
    let _ = writeln!(out, "outputs: {}", dir.display());
    print_memory_table(m, out);
}

/// The memory table: where every attributable byte goes.
pub fn print_memory_table(m: &MemoryReport, out: &mut impl Write) {
    let n = m.entities.max(1) as f64;
    let _ = writeln!(out, "\nmemory ({} entities)", m.entities);
    let _ = writeln!(out, "  {:<34} {:>14} {:>12}", "what", "bytes", "B/entity");
    for c in &m.components {
        let label = format!("component {} ({} B + 8 ticks)", c.name, c.size);
        let _ = writeln!(
            out,
            "  {label:<34} {:>14} {:>12.1}",
            c.capacity_bytes,
            c.capacity_bytes as f64 / n
        );
    }
    let eb = m.entity_bookkeeping.bytes;
    let _ = writeln!(
        out,
        "  {:<34} {eb:>14} {:>12.1}",
        "entity bookkeeping",
        eb as f64 / n
    );
    for res in &m.resources {
        let label = format!("resource {}", res.name);
        let _ = writeln!(
            out,
            "  {label:<34} {:>14} {:>12.1}",
            res.bytes,
            res.bytes as f64 / n
        );
    }
    let sc = m.scratch.high_water_bytes;
    let label = format!("scratch high water ({} arenas)", m.scratch.arenas);
    let _ = writeln!(out, "  {label:<34} {sc:>14} {:>12.1}", sc as f64 / n);
    let _ = writeln!(
        out,
        "  {:<34} {:>14} {:>12.1}",
        "total attributable", m.attributable_bytes, m.bytes_per_entity
    );
    let _ = writeln!(
        out,
        "  estimate {}; heap live {}, peak {}; RSS start {}, peak {}, end {}; leak {:.1} B/step",
        mb(m.estimate.bytes),
        mb(m.heap.live_bytes),
        mb(m.heap.peak_bytes),
        mb(m.rss.start_bytes),
        mb(m.rss.peak_bytes),
        mb(m.rss.end_bytes),
        m.leak.slope_bytes_per_step
    );
}
