//! The step pipeline: phases, the step clock, and per-phase probes.
//!
//! One `Schedule`; its phases are system sets chained once in the order of
//! [`Phase::ALL`]. Between consecutive phases the engine places a probe
//! system that closes the previous phase's stopwatch and allocation counters
//! and opens the next one's, so per-phase time and heap traffic are measured
//! without any cooperation from plugin systems.

use std::time::Instant;

use bevy_ecs::prelude::*;

use crate::alloc;

/// The phases of a step, in execution order.
#[derive(SystemSet, Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Phase {
    /// Reset scratch arenas, advance the step counter.
    Begin,
    /// Neighbour search, cell binning.
    Spatial,
    /// Forces, gene expression and fitness, belief updates.
    Interact,
    /// Integration, selection and mutation, agent actions (skipped in the setup pass).
    Evolve,
    /// Observables, memory samples.
    Measure,
    /// Metrics rows, trajectory frames.
    Output,
}

impl Phase {
    /// All phases in execution order.
    pub const ALL: [Phase; 6] = [
        Phase::Begin,
        Phase::Spatial,
        Phase::Interact,
        Phase::Evolve,
        Phase::Measure,
        Phase::Output,
    ];

    /// Lower-case name, as in memory.json and summary.json.
    pub fn name(self) -> &'static str {
        match self {
            Phase::Begin => "begin",
            Phase::Spatial => "spatial",
            Phase::Interact => "interact",
            Phase::Evolve => "evolve",
            Phase::Measure => "measure",
            Phase::Output => "output",
        }
    }

    /// Index in [`Phase::ALL`].
    pub fn index(self) -> usize {
        self as usize
    }
}

/// Probe sets: `Probe(i)` runs just before phase `i` (and `Probe(6)` after the last).
#[derive(SystemSet, Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) struct Probe(pub usize);

/// The step clock (a resource). `step` is the number of completed steps: 0 in
/// the setup pass, which evaluates interactions and observables of the initial
/// state without evolving it (as LAMMPS's setup does before "Step 0").
#[derive(Resource, Debug, Clone)]
pub struct Clock {
    /// Current step: 0 in the setup pass, then 1, 2, ...
    pub step: u64,
    /// Write a metrics row every this many steps (and at step 0 and the last step).
    pub sample_every: u64,
    /// Last step of the run.
    pub last_step: u64,
    /// The run's seed (for [`crate::rng::Rng`] streams).
    pub seed: u64,
    /// Pipeline passes started (the setup pass included).
    pub(crate) passes: u64,
}

impl Clock {
    /// Whether this is the setup pass (step 0, nothing evolves).
    pub fn is_setup(&self) -> bool {
        self.step == 0
    }

    /// Whether observables are sampled this step.
    pub fn is_sample_step(&self) -> bool {
        self.step.is_multiple_of(self.sample_every) || self.step == self.last_step
    }
}

/// Run condition: true except in the setup pass.
pub fn stepping(clock: Res<Clock>) -> bool {
    !clock.is_setup()
}

/// Run condition: true on sampled steps.
pub fn sample_step(clock: Res<Clock>) -> bool {
    clock.is_sample_step()
}

/// Time and heap traffic of one phase.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct PhaseTotals {
    /// Wall seconds.
    pub seconds: f64,
    /// Heap allocations.
    pub allocations: u64,
    /// Heap bytes allocated.
    pub bytes: u64,
}

/// Per-phase counters (a resource): the running step's and the totals.
#[derive(Resource, Debug)]
pub struct PhaseStats {
    open: usize,
    started: Instant,
    at: alloc::AllocStats,
    /// The account whose allocations are counted (the sim's).
    pub account: alloc::AccountId,
    /// The last completed step, per phase.
    pub last_step: [PhaseTotals; 6],
    /// Summed over every step measured so far (including the setup pass).
    pub total: [PhaseTotals; 6],
    /// Summed over steady-state steps only (see [`PhaseStats::steady`]).
    pub steady: [PhaseTotals; 6],
    /// Whether the running step counts as steady state.
    pub steady_now: bool,
}

impl Default for PhaseStats {
    fn default() -> Self {
        PhaseStats {
            open: 0,
            started: Instant::now(),
            at: alloc::AllocStats::default(),
            account: alloc::AccountId::default(),
            last_step: Default::default(),
            total: Default::default(),
            steady: Default::default(),
            steady_now: false,
        }
    }
}

impl PhaseStats {
    fn close_open_phase(&mut self, now: Instant, at: alloc::AllocStats) {
        let p = self.open;
        let (allocations, bytes) = at.since(&self.at);
        let t = PhaseTotals {
            seconds: (now - self.started).as_secs_f64(),
            allocations,
            bytes,
        };
        self.last_step[p] = t;
        for acc in [&mut self.total[p]]
            .into_iter()
            .chain(self.steady_now.then_some(&mut self.steady[p]))
        {
            acc.seconds += t.seconds;
            acc.allocations += t.allocations;
            acc.bytes += t.bytes;
        }
    }
}

/// The probe that runs before phase `next` (or after the last phase when `next == 6`).
pub(crate) fn probe(next: usize) -> impl FnMut(ResMut<PhaseStats>) {
    move |mut stats: ResMut<PhaseStats>| {
        let now = Instant::now();
        let at = stats.account.stats();
        if next > 0 {
            stats.close_open_phase(now, at);
        }
        if next < 6 {
            stats.open = next;
            stats.started = Instant::now();
            stats.at = stats.account.stats();
        }
    }
}

/// A blow-up a system found: the run stops after this step (exit code 3).
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct BlowUp {
    /// What kind of entity (`atom`, `individual`, `agent`).
    pub what: &'static str,
    /// Its index (table row = creation order).
    pub entity: u64,
    /// The quantity that went wrong and its value, in words.
    pub detail: String,
}

/// Health of the run (a resource): systems report a blow-up here; the sim
/// stops after the step with [`crate::sim::Stop::BlowUp`], outputs flushed.
/// The first report of a step is kept (systems report the lowest entity
/// index they find, so the report does not depend on the thread count).
#[derive(Resource, Debug, Clone, Default)]
pub struct Health {
    /// The first blow-up reported, if any.
    pub blowup: Option<BlowUp>,
}

impl Health {
    /// Reports a blow-up of `what` number `entity` (kept if it is the first).
    pub fn report(&mut self, what: &'static str, entity: u64, detail: String) {
        if self.blowup.is_none() {
            self.blowup = Some(BlowUp {
                what,
                entity,
                detail,
            });
        }
    }
}
