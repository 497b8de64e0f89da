//! The sim: a bevy_ecs `World`, one step `Schedule`, a rayon pool, and the
//! instrumentation around them.
//!
//! [`Sim::new`] instantiates the scenario's plugins, checks the memory
//! estimate against the budget, builds the world and schedule, and runs the
//! setup pass (step 0: every phase but `evolve`). [`Sim::step`] runs one step
//! inside the sim's rayon pool; [`Sim::run`] runs them all; [`Sim::finish`]
//! flushes outputs and returns the summary and memory report.

use std::path::{Path, PathBuf};
use std::time::Instant;

use bevy_ecs::prelude::*;
use bevy_ecs::schedule::{LogLevel, ScheduleBuildSettings, ScheduleLabel, SingleThreadedExecutor};
use serde::Serialize;

use crate::alloc;
use crate::checkpoint;
use crate::footprint::Footprints;
use crate::memory::{self, Estimate, MemoryReport, MemorySample, Rss, Slope};
use crate::output::{self, Metrics, OutputFiles};
use crate::phase::{Clock, Phase, PhaseStats, Probe, probe, stepping};
use crate::plugin::{BuildError, Builder, Plugins, Registry, Slot};
use crate::scenario::{Scenario, ScenarioError};
use crate::scratch::ScratchArenas;

/// Least wall time between two RSS readings. A run takes ~100 memory
/// samples whatever its length, and a reading (`/proc/self/statm`) costs
/// ~1 µs: for a 100-step run of 1,000 agents (30–60 µs a step) that was 2–4%
/// of every step, on one thread. Samples closer than this repeat the last
/// reading (live heap bytes are read every sample); the last step always
/// reads. RSS then costs at most ~0.1% of a run's time.
const RSS_EVERY: std::time::Duration = std::time::Duration::from_millis(1);

/// The label of the step schedule.
#[derive(ScheduleLabel, Debug, Clone, PartialEq, Eq, Hash)]
pub struct Step;

/// How to run: threads and where outputs go.
#[derive(Debug, Clone, Default)]
pub struct RunOptions {
    /// Threads in the rayon pool (0: all cores).
    pub threads: usize,
    /// Output directory (created if missing); `None` writes no files.
    pub out: Option<PathBuf>,
    /// Write a checkpoint into `out` every this many steps (0: only when
    /// interrupted by a signal).
    pub checkpoint_every: u64,
}

/// Why a sim could not start (all of these are the user's input: exit code 2).
#[derive(Debug, thiserror::Error)]
pub enum SimError {
    /// Bad scenario.
    #[error(transparent)]
    Scenario(#[from] ScenarioError),
    /// A plugin failed to build.
    #[error("{file}: {err}")]
    Build {
        /// The scenario file.
        file: String,
        /// The error.
        err: BuildError,
    },
    /// The estimate is over `memory_budget_mb`.
    #[error(
        "{file}: key `run.memory_budget_mb`: the estimate, {estimate_mb:.1} MB, is over the budget of {budget_mb:.1} MB"
    )]
    OverBudget {
        /// The scenario file.
        file: String,
        /// Estimated MB.
        estimate_mb: f64,
        /// Budget MB.
        budget_mb: f64,
    },
    /// The schedule could not be built (e.g. two systems conflict without an order).
    #[error("schedule: {0}")]
    Schedule(String),
    /// Output directory or file error.
    #[error("output: {0}")]
    Io(String),
    /// No usable checkpoint to resume from (exit code 2).
    #[error(transparent)]
    Checkpoint(#[from] crate::checkpoint::CheckpointError),
}

/// How a run ended.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "snake_case", tag = "kind")]
pub enum Stop {
    /// All steps ran.
    Completed,
    /// Live heap went over the memory budget; outputs were flushed.
    MemoryBudget {
        /// The step after which it stopped.
        step: u64,
        /// Live heap bytes then.
        live_bytes: u64,
        /// The budget.
        budget_bytes: u64,
    },
    /// A system found a non-finite or impossible value (a blow-up);
    /// outputs were flushed.
    BlowUp {
        /// The step it happened in.
        step: u64,
        /// Entity kind, index and what went wrong.
        #[serde(flatten)]
        blowup: crate::phase::BlowUp,
    },
    /// A signal (SIGINT, SIGTERM) asked the run to stop: the step in
    /// progress finished, outputs were flushed.
    Interrupted {
        /// The last step completed.
        step: u64,
        /// The signal number.
        signal: i32,
    },
    /// An output file could not be written.
    OutputError {
        /// The step.
        step: u64,
        /// What failed.
        error: String,
    },
}

/// summary.json.
#[derive(Debug, Clone, Serialize)]
pub struct Summary {
    /// Scenario name.
    pub scenario: String,
    /// Entities.
    pub entities: u64,
    /// Steps run (after setup).
    pub steps: u64,
    /// Threads in the pool.
    pub threads: usize,
    /// Seed.
    pub seed: u64,
    /// Seconds to build and run the setup pass.
    pub setup_seconds: f64,
    /// Seconds in the step loop.
    pub loop_seconds: f64,
    /// entities × steps / loop seconds.
    pub entity_steps_per_second: f64,
    /// Seconds per phase (all steps and the setup pass).
    pub phase_seconds: std::collections::BTreeMap<&'static str, f64>,
    /// Attributable heap bytes per entity (as in memory.json).
    pub bytes_per_entity: f64,
    /// Heap allocations in steady-state steps.
    pub steady_state_heap_allocations: u64,
    /// Plugins in order.
    pub plugins: Vec<String>,
    /// How the run ended.
    pub stop: Stop,
    /// The step this run resumed from (absent for a run from the start).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub resumed_from: Option<u64>,
    /// Checkpoints written by this run.
    pub checkpoints: u64,
    /// Seconds spent writing them.
    pub checkpoint_seconds: f64,
    /// Size of the last one, bytes.
    pub checkpoint_bytes: u64,
    /// Hash of the final state (as checkpoints save it): equal for runs that
    /// end in the same state, whatever the threads or interruptions.
    pub state_hash: String,
}

/// What a finished run reports.
#[derive(Debug, Clone)]
pub struct RunReport {
    /// summary.json.
    pub summary: Summary,
    /// memory.json.
    pub memory: MemoryReport,
}

/// A simulation.
pub struct Sim {
    world: World,
    schedule: Schedule,
    pool: crate::par::Pool,
    /// Dropped after `pool` (which joins its threads first).
    account: alloc::Account,
    scenario: Scenario,
    plugin_names: Vec<String>,
    estimate: Estimate,
    rss: Rss,
    rss_start: u64,
    rss_peak: u64,
    /// The last RSS reading and when it was taken (see [`RSS_EVERY`]).
    rss_last: u64,
    rss_read_at: Instant,
    setup_bytes: u64,
    alloc_start: alloc::AllocStats,
    setup_seconds: f64,
    /// The per-task scratch reservation the arenas were last warmed to.
    warmed_per_task: usize,
    loop_seconds: f64,
    steady_allocs: u64,
    steady_bytes: u64,
    steady_steps: u64,
    leak: Slope,
    samples: Vec<MemorySample>,
    sample_every: u64,
    stop: Option<Stop>,
    interrupt: Option<std::sync::Arc<std::sync::atomic::AtomicUsize>>,
    created_dir: Option<PathBuf>,
    out: Option<PathBuf>,
    /// Scenario text after overrides (saved as scenario.toml and in checkpoints).
    text: String,
    checkpoint_every: u64,
    resumed_from: Option<u64>,
    steady_from: u64,
    last_checkpoint: Option<crate::checkpoint::Written>,
    checkpoints: u64,
    checkpoint_seconds: f64,
    warnings: Vec<String>,
}

/// Instantiates the plugins of a scenario and adds up their memory estimate.
pub fn estimate(
    scenario: &Scenario,
    registry: &Registry,
) -> Result<(Plugins, Estimate), ScenarioError> {
    let plugins = registry.instantiate(scenario)?;
    let mut e = Estimate::default();
    for (_, p) in &plugins {
        p.estimate(scenario, &mut e);
    }
    Ok((plugins, e))
}

impl Sim {
    /// Builds a sim from a scenario and runs its setup pass. With an output
    /// directory, writes the scenario (after overrides) there as scenario.toml.
    pub fn new(scenario: Scenario, registry: &Registry, opts: RunOptions) -> Result<Sim, SimError> {
        Sim::start(scenario, registry, opts, None)
    }

    /// Resumes the run in `dir` from its newest intact checkpoint (an older
    /// one if the newest is damaged): rebuilds the world from the scenario
    /// the checkpoint carries, runs the setup pass with outputs muted,
    /// overwrites the state, and appends to the outputs from where the
    /// checkpoint left them. `opts.out` is ignored (outputs stay in `dir`);
    /// `opts.checkpoint_every` 0 keeps the interrupted run's interval.
    pub fn resume(dir: &Path, registry: &Registry, mut opts: RunOptions) -> Result<Sim, SimError> {
        let ours = std::fs::read_to_string(dir.join("scenario.toml"))
            .ok()
            .map(|t| checkpoint::scenario_hash(&t));
        let mut warnings = Vec::new();
        let loaded = checkpoint::Loaded::newest(dir, ours, |e| {
            warnings.push(format!("{e}; trying an older checkpoint"))
        })?;
        let h = &loaded.header;
        let scenario = Scenario::parse(&h.text, &h.name, &h.file, &h.dir, &[])?;
        opts.out = Some(dir.to_path_buf());
        if opts.checkpoint_every == 0 {
            opts.checkpoint_every = h.every;
        }
        let mut sim = Sim::start(scenario, registry, opts, Some(&loaded))?;
        sim.warnings = warnings;
        Ok(sim)
    }

    fn start(
        scenario: Scenario,
        registry: &Registry,
        opts: RunOptions,
        resume: Option<&checkpoint::Loaded>,
    ) -> Result<Sim, SimError> {
        let (plugins, est) = estimate(&scenario, registry)?;
        let file = scenario.file.display().to_string();
        if let Some(budget) = scenario.run.budget_bytes()
            && est.total() > budget
        {
            return Err(SimError::OverBudget {
                file,
                estimate_mb: est.total() as f64 / 1e6,
                budget_mb: budget as f64 / 1e6,
            });
        }
        let threads = if opts.threads == 0 {
            std::thread::available_parallelism().map_or(1, |n| n.get())
        } else {
            opts.threads
        };
        // A pool of its own threads. (rayon's `use_current_thread` would make
        // the caller worker 0, but leaks the pool's registry and binds the
        // thread to it for good, so a second sim on that thread could not.)
        // The sim's allocation account: its pool's threads, and this thread
        // while it builds the sim and steps it.
        let account = alloc::Account::open();
        let _charged = account.id().enter_scoped();
        let pool = crate::par::Pool::new(threads, "microcosm", account.id())
            .map_err(|e| SimError::Io(format!("thread pool: {e}")))?;
        let created_dir = match &opts.out {
            Some(d) if !d.exists() => {
                std::fs::create_dir_all(d)
                    .map_err(|e| SimError::Io(format!("{}: {e}", d.display())))?;
                Some(d.clone())
            }
            _ => None,
        };
        let mut rss = Rss::default();
        let rss_start = rss.sample();
        alloc::reset_peak();
        let alloc_start = account.id().stats();
        let t0 = Instant::now();
        let files = match (&opts.out, resume) {
            (Some(dir), Some(l)) => OutputFiles::resuming(dir.clone(), l.header.outputs.clone()),
            (out, _) => OutputFiles::new(out.clone()),
        };
        let built = Self::build(&scenario, plugins, threads, files);
        let (mut world, schedule, plugin_names) = match built {
            Ok(b) => b,
            Err(e) => {
                if let Some(d) = &created_dir {
                    let _ = std::fs::remove_dir_all(d);
                }
                return Err(match e {
                    SimError::Build { err, .. } => SimError::Build { file, err },
                    other => other,
                });
            }
        };
        // A run that will checkpoint (or resumes) must save every component
        // its entities have, or declare it constant.
        if opts.checkpoint_every > 0 || resume.is_some() {
            let components = checkpoint::uncovered(&world);
            if !components.is_empty() {
                if let Some(d) = &created_dir {
                    let _ = std::fs::remove_dir_all(d);
                }
                return Err(checkpoint::CheckpointError::Unsaved { components }.into());
            }
        }
        let steps = scenario.run.steps;
        let sample_every = steps.div_ceil(100).max(1);
        let text = toml::to_string(&scenario.document).unwrap_or_default();
        world.resource_mut::<PhaseStats>().account = account.id();
        let mut sim = Sim {
            world,
            schedule,
            pool,
            account,
            scenario,
            plugin_names,
            estimate: est,
            rss,
            rss_start,
            rss_peak: rss_start,
            rss_last: rss_start,
            rss_read_at: Instant::now(),
            setup_bytes: 0,
            alloc_start,
            setup_seconds: 0.0,
            warmed_per_task: 0,
            loop_seconds: 0.0,
            steady_allocs: 0,
            steady_bytes: 0,
            steady_steps: 0,
            leak: Slope::default(),
            samples: Vec::with_capacity(steps.div_ceil(sample_every) as usize + 2),
            sample_every,
            stop: None,
            interrupt: None,
            created_dir,
            out: opts.out.clone(),
            text,
            checkpoint_every: opts.checkpoint_every,
            resumed_from: None,
            steady_from: 0,
            last_checkpoint: None,
            checkpoints: 0,
            checkpoint_seconds: 0.0,
            warnings: Vec::new(),
        };
        sim.run_schedule();
        if let Some(l) = resume {
            sim.restore(l)?;
        } else if let Some(dir) = &sim.out {
            // A fresh run replaces an earlier run's outputs in this directory:
            // its checkpoints go too, so `resume` never picks them up.
            for (_, old) in checkpoint::list(dir) {
                std::fs::remove_file(&old)
                    .map_err(|e| SimError::Io(format!("{}: {e}", old.display())))?;
            }
            output::write_atomic(dir, "scenario.toml", sim.text.as_bytes())
                .map_err(|e| SimError::Io(format!("{}: {e}", dir.display())))?;
        }
        let start = sim.clock().step;
        let warmup = sim.scenario.run.warmup().max(
            sim.world
                .get_resource::<crate::plugin::MinWarmup>()
                .map_or(0, |w| w.0),
        );
        sim.steady_from = start + warmup.min(steps.saturating_sub(start));
        sim.warm_scratch();
        sim.setup_bytes = alloc::stats()
            .live_bytes
            .saturating_sub(alloc_start.live_bytes) as u64;
        sim.setup_seconds = t0.elapsed().as_secs_f64();
        sim.sample_memory(0);
        Ok(sim)
    }

    /// Overwrites the state after the setup pass of a resumed run.
    fn restore(&mut self, l: &checkpoint::Loaded) -> Result<(), SimError> {
        let entities = self.world.entities().count_spawned() as u64;
        if entities != l.header.entities {
            return Err(SimError::Checkpoint(checkpoint::CheckpointError::Damaged {
                path: l.path.display().to_string(),
                reason: format!(
                    "{} entities, but the scenario now builds {entities} (did a data file change?)",
                    l.header.entities
                ),
            }));
        }
        l.apply(&mut self.world)?;
        let mut clock = self.world.resource_mut::<Clock>();
        clock.step = l.header.step;
        clock.passes = l.header.passes;
        self.world.resource_mut::<Metrics>().rows = l.header.metrics_rows;
        self.world.resource_mut::<OutputFiles>().unmute();
        self.resumed_from = Some(l.header.step);
        Ok(())
    }

    /// Writes a checkpoint of the state after the last step into the output
    /// directory (outputs are flushed and synced first, and their lengths
    /// recorded).
    pub fn checkpoint(&mut self) -> Result<checkpoint::Written, SimError> {
        let Some(dir) = self.out.clone() else {
            return Err(SimError::Io(
                "checkpoint: the run has no output directory".into(),
            ));
        };
        let components = checkpoint::uncovered(&self.world);
        if !components.is_empty() {
            return Err(checkpoint::CheckpointError::Unsaved { components }.into());
        }
        let t = Instant::now();
        let outputs = self
            .world
            .resource_mut::<OutputFiles>()
            .sync()
            .map_err(|e| SimError::Io(format!("flushing outputs for a checkpoint: {e}")))?;
        let clock = self.clock().clone();
        let header = checkpoint::Header {
            name: self.scenario.name.clone(),
            file: self.scenario.file.clone(),
            dir: self.scenario.dir.clone(),
            text: self.text.clone(),
            step: clock.step,
            passes: clock.passes,
            metrics_rows: self.world.resource::<Metrics>().rows(),
            every: self.checkpoint_every,
            entities: self.world.entities().count_spawned() as u64,
            outputs,
        };
        let w = checkpoint::write(&dir, &header, &mut self.world)?;
        self.checkpoint_seconds += t.elapsed().as_secs_f64();
        self.checkpoints += 1;
        self.last_checkpoint = Some(w.clone());
        Ok(w)
    }

    /// The last checkpoint this run wrote.
    pub fn last_checkpoint(&self) -> Option<&checkpoint::Written> {
        self.last_checkpoint.as_ref()
    }

    /// The step this run resumed from, if it did.
    pub fn resumed_from(&self) -> Option<u64> {
        self.resumed_from
    }

    /// Damaged checkpoints skipped while resuming, and a checkpoint a
    /// signal's stop could not write.
    pub fn warnings(&self) -> &[String] {
        &self.warnings
    }

    /// A hash of the state that checkpoints save: equal for equal states.
    pub fn state_hash(&mut self) -> u64 {
        checkpoint::state_hash(&mut self.world)
    }

    fn build(
        scenario: &Scenario,
        plugins: Plugins,
        threads: usize,
        files: OutputFiles,
    ) -> Result<(World, Schedule, Vec<String>), SimError> {
        let mut world = World::new();
        let run = &scenario.run;
        world.insert_resource(Clock {
            step: 0,
            sample_every: run.sample_every,
            last_step: run.steps,
            seed: run.seed,
            passes: 0,
        });
        world.insert_resource(PhaseStats::default());
        world.insert_resource(crate::phase::Health::default());
        world.insert_resource(ScratchArenas::new(threads));
        world.insert_resource(Metrics::default());
        world.insert_resource(files);
        world.insert_resource(checkpoint::Registered::default());
        world.insert_resource(Footprints::default());
        crate::footprint::register::<Metrics>(&mut world);
        crate::footprint::register::<OutputFiles>(&mut world);

        let mut schedule = Schedule::new(Step);
        schedule.set_executor(SingleThreadedExecutor::new());
        schedule.set_build_settings(ScheduleBuildSettings {
            ambiguity_detection: LogLevel::Error,
            ..Default::default()
        });
        // Probe(0) Begin Probe(1) Spatial ... Output Probe(6), chained once.
        for (i, phase) in Phase::ALL.into_iter().enumerate() {
            schedule.configure_sets((Probe(i), phase, Probe(i + 1)).chain());
            schedule.add_systems(probe(i).in_set(Probe(i)));
        }
        schedule.add_systems(probe(6).in_set(Probe(6)));
        schedule.configure_sets(Phase::Evolve.run_if(stepping));
        let last = plugins.len() + 1;
        for phase in Phase::ALL {
            for s in 0..=last {
                schedule.configure_sets(Slot(phase, s).in_set(phase));
                if s > 0 {
                    schedule.configure_sets(Slot(phase, s).after(Slot(phase, s - 1)));
                }
            }
        }
        schedule.add_systems(begin_step.in_set(Slot(Phase::Begin, 0)));
        schedule.add_systems(output::write_metrics.in_set(Slot(Phase::Output, last)));

        let mut names = Vec::with_capacity(plugins.len());
        let mut spawns = Vec::new();
        for (i, (name, p)) in plugins.into_iter().enumerate() {
            let mut b = Builder {
                world: &mut world,
                schedule: &mut schedule,
                scenario,
                plugin: name.clone(),
                slot: i + 1,
                threads,
                spawns: &mut spawns,
            };
            p.build(&mut b).map_err(|err| SimError::Build {
                file: String::new(),
                err,
            })?;
            names.push(name);
        }
        output::open_metrics(&mut world).map_err(|e| SimError::Io(format!("metrics.csv: {e}")))?;
        if let Err(e) = schedule.initialize(&mut world) {
            return Err(SimError::Schedule(e.to_string(schedule.graph(), &world)));
        }
        // Entities last: see `Builder::spawn_batch`.
        for spawn in spawns {
            spawn(&mut world);
        }
        Ok((world, schedule, names))
    }

    fn run_schedule(&mut self) {
        let Sim {
            pool,
            schedule,
            world,
            ..
        } = self;
        pool.install(|| schedule.run(world));
    }

    /// Gives every worker's arena a first chunk of 16 KiB, or of the largest
    /// per-task reservation ([`ScratchArenas::reserve_per_task`]) if larger,
    /// after the setup pass (a broadcast allocates; this is setup), and again
    /// before the first steady step if a system reserved more since. Serial
    /// uses are not warmed: [`Sim::run`] keeps the schedule on one worker, so
    /// warm-up steps grow exactly the arenas later steps use (warming every
    /// worker to the largest arena would hold, e.g., a 200 kB alias table
    /// once per thread). Parallel tasks are what need the reservation: work
    /// stealing decides which worker runs them.
    fn warm_scratch(&mut self) {
        let scratch = self.world.resource::<ScratchArenas>();
        let bytes = scratch.per_task_bytes().max(16 << 10);
        self.pool.broadcast(|_| scratch.warm(bytes));
        self.warmed_per_task = scratch.per_task_bytes();
    }

    fn sample_memory(&mut self, step: u64) {
        let now = Instant::now();
        if step == self.scenario.run.steps || now.duration_since(self.rss_read_at) >= RSS_EVERY {
            self.rss_last = self.rss.sample();
            self.rss_read_at = now;
        }
        let rss = self.rss_last;
        self.rss_peak = self.rss_peak.max(rss);
        if self.samples.len() < self.samples.capacity() {
            self.samples.push(MemorySample {
                step,
                live_bytes: alloc::stats().live_bytes as u64,
                rss_bytes: rss,
            });
        }
    }

    /// Runs one step. Returns `false` once the run has stopped (all steps done,
    /// memory budget exceeded, or an output error).
    pub fn step(&mut self) -> bool {
        if self.stop.is_some() {
            return false;
        }
        let step = self.clock().step + 1;
        if step > self.scenario.run.steps {
            self.stop = Some(Stop::Completed);
            return false;
        }
        let _charged = self.account.id().enter_scoped();
        let steady = step > self.steady_from;
        if steady && self.world.resource::<ScratchArenas>().per_task_bytes() > self.warmed_per_task
        {
            self.warm_scratch();
        }
        self.world.resource_mut::<PhaseStats>().steady_now = steady;
        let before = self.account.id().stats();
        let t = Instant::now();
        self.run_schedule();
        self.loop_seconds += t.elapsed().as_secs_f64();
        let after = self.account.id().stats();
        if steady {
            let (n, b) = after.since(&before);
            self.steady_allocs += n;
            self.steady_bytes += b;
            self.steady_steps += 1;
            self.leak.add(step as f64, after.live_bytes as f64);
        }
        if step.is_multiple_of(self.sample_every) || step == self.scenario.run.steps {
            self.sample_memory(step);
        }
        if let Some(b) = self
            .world
            .resource_mut::<crate::phase::Health>()
            .blowup
            .take()
        {
            self.stop = Some(Stop::BlowUp { step, blowup: b });
        } else if let Some(e) = self.world.resource::<OutputFiles>().error() {
            self.stop = Some(Stop::OutputError {
                step,
                error: e.to_string(),
            });
        } else if let Some(budget) = self.scenario.run.budget_bytes()
            && alloc::installed()
            && after.live_bytes as u64 > budget
        {
            self.stop = Some(Stop::MemoryBudget {
                step,
                live_bytes: after.live_bytes as u64,
                budget_bytes: budget,
            });
        } else if let Some(sig) = self
            .interrupt
            .as_ref()
            .map(|f| f.load(std::sync::atomic::Ordering::Relaxed))
            && sig != 0
        {
            self.stop = Some(Stop::Interrupted {
                step,
                signal: sig as i32,
            });
        } else if step == self.scenario.run.steps {
            self.stop = Some(Stop::Completed);
        }
        // Periodic checkpoints, and one when a signal stops the run.
        let every = self.checkpoint_every;
        let due = matches!(self.stop, None | Some(Stop::Completed))
            && every > 0
            && step.is_multiple_of(every);
        let interrupted = matches!(self.stop, Some(Stop::Interrupted { .. }));
        if (due || interrupted)
            && self.out.is_some()
            && let Err(e) = self.checkpoint()
        {
            if interrupted {
                // Still a clean stop on the signal; say why it cannot resume.
                self.warnings.push(format!("no checkpoint written: {e}"));
            } else {
                self.stop = Some(Stop::OutputError {
                    step,
                    error: e.to_string(),
                });
            }
        }
        self.stop.is_none()
    }

    /// Runs the remaining steps, calling `progress(step, steps)` after each.
    ///
    /// The whole loop runs on one worker of the sim's pool: entering the pool
    /// from outside (as each [`Sim::step`] called from another thread does)
    /// pushes a job into rayon's injector, which allocates a block every 63
    /// jobs; from inside, each step's `install` runs in place. The other
    /// workers poll for work between parallel regions instead of parking
    /// ([`crate::par::with_busy_workers`]).
    pub fn run(&mut self, mut progress: impl FnMut(u64, u64) + Send) {
        let total = self.scenario.run.steps;
        let pool = std::sync::Arc::clone(self.pool.handle());
        pool.install(|| {
            crate::par::with_busy_workers(|| {
                while self.step() {
                    progress(self.clock().step, total);
                }
                progress(self.clock().step, total);
            })
        });
    }

    /// Runs `f` on one worker of the sim's pool (as [`Sim::run`] does), so
    /// the steps `f` takes do not each cross into the pool from outside:
    /// benches of small worlds time steps this way.
    pub fn in_pool<R: Send>(&mut self, f: impl FnOnce(&mut Sim) -> R + Send) -> R {
        let pool = std::sync::Arc::clone(self.pool.handle());
        pool.install(|| crate::par::with_busy_workers(|| f(self)))
    }

    /// Stops the run after the step in progress once `flag` is non-zero
    /// (the CLI stores the number of a caught signal there).
    pub fn interrupt_on(&mut self, flag: std::sync::Arc<std::sync::atomic::AtomicUsize>) {
        self.interrupt = Some(flag);
    }

    /// The clock.
    pub fn clock(&self) -> &Clock {
        self.world.resource::<Clock>()
    }

    /// The world.
    pub fn world(&self) -> &World {
        &self.world
    }

    /// The world, mutably (tests and tools).
    pub fn world_mut(&mut self) -> &mut World {
        &mut self.world
    }

    /// The step schedule (for inspection: systems, conflicts).
    pub fn schedule(&self) -> &Schedule {
        &self.schedule
    }

    /// The scenario.
    pub fn scenario(&self) -> &Scenario {
        &self.scenario
    }

    /// The memory estimate made before building.
    pub fn estimate(&self) -> &Estimate {
        &self.estimate
    }

    /// Threads in the pool.
    pub fn threads(&self) -> usize {
        self.pool.current_num_threads()
    }

    /// How the run stopped, once it has.
    pub fn stopped(&self) -> Option<&Stop> {
        self.stop.as_ref()
    }

    /// The memory report as of now.
    pub fn memory_report(&mut self) -> MemoryReport {
        let wb = memory::world_bytes(&self.world);
        let scratch = self.world.resource::<ScratchArenas>();
        let (scratch_hw, arenas) = (scratch.high_water_bytes() as u64, scratch.arenas() as u64);
        let attributable =
            wb.component_bytes() + wb.entity_bookkeeping_bytes + wb.resource_bytes() + scratch_hw;
        let per = |b: u64| {
            if wb.entities > 0 {
                b as f64 / wb.entities as f64
            } else {
                0.0
            }
        };
        let stats = self.account.id().stats();
        let ps = self.world.resource::<PhaseStats>();
        let phases = Phase::ALL
            .iter()
            .map(|p| memory::PhaseReport {
                phase: p.name().to_string(),
                seconds: ps.total[p.index()].seconds,
                allocations: ps.steady[p.index()].allocations,
                bytes: ps.steady[p.index()].bytes,
            })
            .collect();
        let rss_end = self.rss.sample();
        self.rss_peak = self.rss_peak.max(rss_end);
        MemoryReport {
            entities: wb.entities,
            bytes_per_entity: per(attributable),
            attributable_bytes: attributable,
            entity_bookkeeping: memory::EntityBookkeeping {
                bytes: wb.entity_bookkeeping_bytes,
                bytes_per_entity: per(wb.entity_bookkeeping_bytes),
            },
            components: wb.components,
            resources: wb.resources,
            scratch: memory::ScratchReport {
                high_water_bytes: scratch_hw,
                arenas,
            },
            heap: memory::HeapReport {
                live_bytes: stats.live_bytes as u64,
                peak_bytes: stats.peak_bytes as u64,
                allocations: stats.allocations - self.alloc_start.allocations,
                setup_bytes: self.setup_bytes,
                counting: alloc::installed(),
            },
            steady_state: memory::SteadyState {
                steps: self.steady_steps,
                heap_allocations: self.steady_allocs,
                heap_bytes: self.steady_bytes,
            },
            rss: memory::RssReport {
                start_bytes: self.rss_start,
                peak_bytes: self.rss_peak,
                end_bytes: rss_end,
            },
            phases,
            leak: memory::LeakReport {
                slope_bytes_per_step: self.leak.slope(),
                points: self.leak.len() as u64,
            },
            estimate: memory::EstimateReport {
                bytes: self.estimate.total(),
                bytes_per_entity: if self.estimate.entities > 0 {
                    self.estimate.total() as f64 / self.estimate.entities as f64
                } else {
                    0.0
                },
                entities: self.estimate.entities,
            },
            samples: self.samples.clone(),
            per_unit: self
                .world
                .get_resource::<memory::MemoryUnits>()
                .map(|u| {
                    u.0.iter()
                        .map(|&(name, n)| {
                            (
                                format!("bytes_per_{name}"),
                                attributable as f64 / n.max(1) as f64,
                            )
                        })
                        .collect()
                })
                .unwrap_or_default(),
        }
    }

    /// Finishes the run: flushes and renames output files, writes summary.json
    /// and memory.json (when there is an output directory), and reports.
    pub fn finish(mut self) -> Result<RunReport, SimError> {
        let stop = self.stop.clone().unwrap_or(Stop::Completed);
        let memory = self.memory_report();
        let steps = self.clock().step;
        let run_steps = steps - self.resumed_from.unwrap_or(0);
        let state_hash = format!("{:016x}", self.state_hash());
        let ps = self.world.resource::<PhaseStats>();
        let summary = Summary {
            scenario: self.scenario.name.clone(),
            entities: memory.entities,
            steps,
            threads: self.threads(),
            seed: self.scenario.run.seed,
            setup_seconds: self.setup_seconds,
            loop_seconds: self.loop_seconds,
            entity_steps_per_second: if self.loop_seconds > 0.0 {
                (memory.entities * run_steps) as f64 / self.loop_seconds
            } else {
                0.0
            },
            phase_seconds: Phase::ALL
                .iter()
                .map(|p| (p.name(), ps.total[p.index()].seconds))
                .collect(),
            bytes_per_entity: memory.bytes_per_entity,
            steady_state_heap_allocations: memory.steady_state.heap_allocations,
            plugins: self.plugin_names.clone(),
            stop,
            resumed_from: self.resumed_from,
            checkpoints: self.checkpoints,
            checkpoint_seconds: self.checkpoint_seconds,
            checkpoint_bytes: self.last_checkpoint.as_ref().map_or(0, |w| w.bytes),
            state_hash,
        };
        let mut files = self.world.resource_mut::<OutputFiles>();
        let dir = files.dir().map(PathBuf::from);
        files
            .finish()
            .map_err(|e| SimError::Io(format!("finishing outputs: {e}")))?;
        if let Some(dir) = dir {
            let io = |e: std::io::Error| SimError::Io(format!("{}: {e}", dir.display()));
            output::write_atomic(&dir, "summary.json", to_json(&summary).as_bytes()).map_err(io)?;
            output::write_atomic(&dir, "memory.json", to_json(&memory).as_bytes()).map_err(io)?;
        }
        self.created_dir = None;
        Ok(RunReport { summary, memory })
    }
}

/// Pretty JSON with a final newline.
pub fn to_json<T: Serialize>(v: &T) -> String {
    let mut s = serde_json::to_string_pretty(v).unwrap_or_default();
    s.push('\n');
    s
}

/// The engine's `begin` system: advance the step counter, open a scratch epoch.
fn begin_step(mut clock: ResMut<Clock>, mut scratch: ResMut<ScratchArenas>) {
    // The setup pass runs with step 0; every later pass advances by one.
    if clock.passes > 0 {
        clock.step += 1;
    }
    clock.passes += 1;
    scratch.begin_step();
}
