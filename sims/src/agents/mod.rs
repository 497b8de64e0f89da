//! Active-inference agents in a shared grid world (pymdp's conventions).
//!
//! Each agent is an entity with one [`Agent`] component (true position, last
//! observation, last action, energy); its belief q(s) lives in a resource
//! indexed by the agent's table row — [`dense::DenseBeliefs`] (all S states,
//! f32 or f64, in blocks of 64 or 32 agents) or [`sparse::SparseBeliefs`] (top-K
//! states). The generative model ([`world::Model`]: A, B as a successor
//! table, C, D, `H[A]`) is one shared resource, never copied per agent.
//!
//! One step, in pipeline phases:
//!
//! | phase | system | what |
//! |---|---|---|
//! | interact | `think` | observe `o ~ A[:, s_true]`; prior = `B_{u_prev} q`; infer `q = softmax(log A[o,:] + log prior)`; plan `neg_efe` and `q_pi` over the 5 one-step policies; act `u ~ softmax(α log q_pi)` |
//! | evolve | `environment` | true positions move (cell capacity, conflicts in a random order per step); resources on goal cells are eaten and regrow; action history ring |
//! | measure | `agent_metrics` | `step,mean_entropy,at_goal_fraction,mean_energy,moves_blocked` |
//!
//! All random draws come from per-agent streams keyed by (seed, step, agent),
//! so the outputs are the same bits on any thread count. The setup pass
//! (step 0) only measures the initial state (beliefs at D).
//!
//! [`reference`](mod@reference) has the same update written literally in f64 (the replay
//! plugin uses it; tests hold the kernels to it).

pub mod decide;
pub mod dense;
pub mod math;
pub mod reference;
pub mod replay;
pub mod sparse;
pub mod world;

use std::io::Write;

use microcosm_engine::par;
use microcosm_engine::prelude::*;
use microcosm_engine::simd::Simd;
use rayon::prelude::*;
use serde::Deserialize;

use decide::Precision;
use math::Float;
use world::{Model, Rules};

/// An agent (the entity's only component): 16 bytes.
#[derive(
    Component, Debug, Clone, Copy, PartialEq, Eq, Default, bytemuck::Pod, bytemuck::Zeroable,
)]
#[repr(C)]
pub struct Agent {
    /// True position (state index).
    pub pos: u32,
    /// Last observation.
    pub obs: u32,
    /// Resources eaten.
    pub energy: u32,
    /// Last action (0 stay, 1 up, 2 down, 3 left, 4 right).
    pub action: u8,
    /// Sparse beliefs: entries in use (0: the uniform prior D).
    pub support: u8,
    /// The two bytes the alignment pads with anyway, named so the agent is
    /// plain data (checkpoints copy it as bytes). Always zero.
    pub reserved: [u8; 2],
}

const STEP: StreamId = StreamId::named("agents/step");
const ORDER: StreamId = StreamId::named("agents/order");
const START: StreamId = StreamId::named("agents/start");

/// The random draws of one step: two uniforms per agent (observation, action).
#[derive(Debug, Clone, Copy)]
pub struct Draws {
    /// Run seed.
    pub seed: u64,
    /// Step.
    pub step: u64,
}

impl Draws {
    /// Agent `i`'s (observation, action) uniforms in [0, 1).
    #[inline(always)]
    pub fn uniforms(&self, i: u64) -> (f64, f64) {
        let mut r = Rng::new(self.seed, STEP, self.step, i);
        (r.uniform(), r.uniform())
    }
}

/// Where agents start.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum Start {
    /// All in one state.
    State(u32),
    /// `"random"`: uniform over free cells (distinct cells up to capacity).
    Named(String),
}

/// Belief storage.
#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum Storage {
    /// q(s) over all S states.
    Dense,
    /// Top-K states.
    Sparse,
}

/// Belief float type.
#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum BeliefFloat {
    /// f32 (default).
    F32,
    /// f64.
    F64,
}

/// The `agents` plugin.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Agents {
    /// Number of agents.
    pub count: u32,
    /// Start state, or `"random"`.
    pub start: Start,
    /// `dense` (default) or `sparse`.
    #[serde(default = "dense")]
    pub beliefs: Storage,
    /// `f32` (default) or `f64`.
    #[serde(default = "f32_")]
    pub precision: BeliefFloat,
    /// Sparse: states kept per agent (1..=8).
    #[serde(default = "four")]
    pub top_k: u32,
    /// Sparse: drop states below this posterior probability.
    #[serde(default = "prune")]
    pub prune: f64,
    /// Policy precision γ.
    #[serde(default = "one")]
    pub gamma: f64,
    /// Action precision α.
    #[serde(default = "one")]
    pub alpha: f64,
    /// Actions remembered per agent (ring buffer length K).
    #[serde(default = "eight")]
    pub history: u32,
}

fn dense() -> Storage {
    Storage::Dense
}
fn f32_() -> BeliefFloat {
    BeliefFloat::F32
}
fn four() -> u32 {
    4
}
fn eight() -> u32 {
    8
}
fn one() -> f64 {
    1.0
}
fn prune() -> f64 {
    1e-6
}

/// The last K actions of every agent (a resource): agent i's ring is
/// `buf[i·K .. (i+1)·K]`, step t's action at slot (t − 1) mod K.
#[derive(Resource, Debug, Clone)]
pub struct History {
    /// K.
    pub k: usize,
    /// N·K actions.
    pub buf: Vec<u8>,
}

impl Footprint for History {
    fn heap_bytes(&self) -> usize {
        self.buf.heap_bytes()
    }
}

/// State: every ring.
impl State for History {
    fn save(&self, e: &mut Encoder) -> std::io::Result<()> {
        e.slice(&self.buf)
    }

    fn load(&mut self, d: &mut Decoder) -> Result<(), Corrupt> {
        d.slice_into(&mut self.buf)
    }
}

impl History {
    /// Agent `i`'s last min(K, steps) actions, oldest first, after `step` steps.
    pub fn actions(&self, i: usize, step: u64) -> Vec<u8> {
        let k = self.k as u64;
        let n = step.min(k);
        (step - n..step)
            .map(|t| self.buf[i * self.k + (t % k) as usize])
            .collect()
    }
}

/// Cell occupancy (a resource, with a capacity) and resource regrowth.
#[derive(Resource, Debug, Clone, Default)]
pub struct Cells {
    /// Agents per state (empty when capacity is unlimited).
    pub count: Vec<u32>,
    /// Per goal (in `Model::goals` order): first step its resource is back.
    pub ready_at: Vec<u64>,
}

/// State: occupancy and regrowth times.
impl State for Cells {
    fn save(&self, e: &mut Encoder) -> std::io::Result<()> {
        e.slice(&self.count)?;
        e.slice(&self.ready_at)
    }

    fn load(&mut self, d: &mut Decoder) -> Result<(), Corrupt> {
        d.slice_into(&mut self.count)?;
        d.slice_into(&mut self.ready_at)
    }
}

impl Footprint for Cells {
    fn heap_bytes(&self) -> usize {
        self.count.heap_bytes() + self.ready_at.heap_bytes()
    }
}

/// What the kernels need besides the model (a resource).
#[derive(Resource, Debug, Clone, Copy)]
struct Config {
    simd: Simd,
    gamma: f64,
    alpha: f64,
}

/// This step's figures for the metrics row.
#[derive(Resource, Debug, Clone, Copy, Default)]
struct StepStats {
    entropy_sum: f64,
    blocked: u64,
}

#[derive(Resource, Debug, Clone, Copy)]
struct Columns {
    entropy: usize,
    at_goal: usize,
    energy: usize,
    blocked: usize,
}

impl PluginConfig for Agents {
    const NAME: &'static str = "agents";
    const SUMMARY: &'static str =
        "agents: active-inference agents (observe, infer, plan, act) in the gridworld";

    fn validate(&self) -> Result<(), Invalid> {
        if self.count == 0 {
            return Err(Invalid::new("count", "must be at least 1"));
        }
        if let Start::Named(s) = &self.start
            && s != "random"
        {
            return Err(Invalid::new("start", "is a state index or \"random\""));
        }
        if !(1..=sparse::K_MAX as u32).contains(&self.top_k) {
            return Err(Invalid::new(
                "top_k",
                format!("must be in 1..={}", sparse::K_MAX),
            ));
        }
        if !(0.0..1.0).contains(&self.prune) {
            return Err(Invalid::new("prune", "must be in [0, 1)"));
        }
        if !(self.gamma.is_finite() && self.gamma >= 0.0) {
            return Err(Invalid::new("gamma", "must be finite and ≥ 0"));
        }
        if !(self.alpha.is_finite() && self.alpha >= 0.0) {
            return Err(Invalid::new("alpha", "must be finite and ≥ 0"));
        }
        if !(1..=1024).contains(&self.history) {
            return Err(Invalid::new("history", "must be in 1..=1024"));
        }
        Ok(())
    }
}

impl Agents {
    /// Start states of all agents.
    fn starts(&self, b: &Builder, m: &Model, capacity: u32) -> Result<Vec<u32>, BuildError> {
        let n = self.count as usize;
        let s_n = m.states;
        if capacity > 0 && n as u64 > capacity as u64 * s_n as u64 {
            return Err(b.key_error(
                "count",
                format!("{n} agents do not fit in {s_n} cells of capacity {capacity}"),
            ));
        }
        match self.start {
            Start::State(s) => {
                if s as usize >= s_n {
                    return Err(b.key_error(
                        "start",
                        format!("state {s} is not a free cell (there are {s_n})"),
                    ));
                }
                if capacity > 0 && n > capacity as usize {
                    return Err(b.key_error(
                        "start",
                        format!("{n} agents in one cell of capacity {capacity}"),
                    ));
                }
                Ok(vec![s; n])
            }
            Start::Named(_) if capacity == 0 => Ok((0..n)
                .map(|i| Rng::new(b.seed(), START, 0, i as u64).below(s_n as u64) as u32)
                .collect()),
            Start::Named(_) => {
                // Distinct slots: a seeded partial Fisher–Yates over S·capacity
                // (a capacity above N is the same as N: no cell can get more).
                let cap = capacity.min(self.count) as u64;
                let mut slots: Vec<u32> = (0..s_n as u64 * cap).map(|x| (x / cap) as u32).collect();
                let mut r = Rng::new(b.seed(), START, 0, 0);
                for i in 0..n {
                    let j = i + r.below((slots.len() - i) as u64) as usize;
                    slots.swap(i, j);
                }
                slots.truncate(n);
                Ok(slots)
            }
        }
    }
}

impl Plugin for Agents {
    fn build(&self, b: &mut Builder) -> Result<(), BuildError> {
        // The model is taken out of the world while the agents' tables are
        // built from it (no copy of a table per state), then put back. No
        // entity exists yet, so re-inserting it costs nothing per entity.
        let Some(rules) = b.world().get_resource::<Rules>().copied() else {
            return Err(b.error("needs the `gridworld` plugin before it"));
        };
        let Some(model) = b.world_mut().remove_resource::<Model>() else {
            return Err(b.error("needs the `gridworld` plugin before it"));
        };
        let built = self.build_with(b, &model, rules);
        b.world_mut().insert_resource(model);
        built
    }

    fn estimate(&self, s: &Scenario, e: &mut Estimate) {
        let n = self.count as u64;
        e.entities("agents", n, &[size_of::<Agent>()]);
        e.bytes("action history: N × K B", n * self.history as u64);
        let Some(states) = world::states_in(s) else {
            return;
        };
        let f = match self.precision {
            BeliefFloat::F32 => 4,
            BeliefFloat::F64 => 8,
        };
        match self.beliefs {
            Storage::Dense => {
                let lanes = 256 / f;
                e.bytes(
                    "dense beliefs: N × S floats",
                    n.div_ceil(lanes) * lanes * states * f,
                )
            }
            Storage::Sparse => e.bytes(
                "sparse beliefs: N × K × (4 + float) B",
                n * self.top_k as u64 * (4 + f),
            ),
        }
        e.bytes("kernel tables: ~100 B per state", 100 * states);
    }

    fn requires(&self) -> &'static [&'static str] {
        &[world::Gridworld::NAME]
    }
}

impl Agents {
    /// The agents' resources, systems and entities, from the model.
    fn build_with(&self, b: &mut Builder, model: &Model, rules: Rules) -> Result<(), BuildError> {
        let n = self.count as usize;
        let s_n = model.states;
        let starts = self.starts(b, model, rules.capacity)?;
        let mut cells = Cells::default();
        if rules.capacity > 0 {
            cells.count = vec![0; s_n];
            for &s in &starts {
                cells.count[s as usize] += 1;
            }
        }
        if rules.regrow.is_some() {
            cells.ready_at = vec![0; model.goals.len()];
        }
        let simd = Simd::detect();
        b.insert_resource(Config {
            simd,
            gamma: self.gamma,
            alpha: self.alpha,
        });
        b.insert_resource_with_footprint(cells);
        b.insert_resource_with_footprint(History {
            k: self.history as usize,
            buf: vec![0; n * self.history as usize],
        });
        b.insert_resource(StepStats::default());
        b.checkpoint_component::<Agent>();
        b.checkpoint_resource::<Cells>();
        b.checkpoint_resource::<History>();
        match (self.beliefs, self.precision) {
            (Storage::Dense, BeliefFloat::F32) => self.dense::<f32, 64>(b, model, n),
            (Storage::Dense, BeliefFloat::F64) => self.dense::<f64, 32>(b, model, n),
            (Storage::Sparse, BeliefFloat::F32) => self.sparse::<f32, 16>(b, model, n),
            (Storage::Sparse, BeliefFloat::F64) => self.sparse::<f64, 8>(b, model, n),
        }
        b.add_systems(Phase::Evolve, environment);
        b.index_column("step");
        let cols = Columns {
            entropy: b.metric("mean_entropy"),
            at_goal: b.metric("at_goal_fraction"),
            energy: b.metric("mean_energy"),
            blocked: b.metric("moves_blocked"),
        };
        b.insert_resource(cols);
        b.add_systems(Phase::Measure, agent_metrics.run_if(sample_step));
        let file = b.output_file("occupancy.csv")?;
        let count = if file.is_some() {
            vec![0; model.states]
        } else {
            Vec::new()
        };
        b.insert_resource_with_footprint(Occupancy { file, count });
        b.add_systems(Phase::Output, write_occupancy);
        b.memory_unit("agent", n as u64);
        b.spawn_batch(starts.into_iter().map(|pos| Agent {
            pos,
            ..Agent::default()
        }));
        Ok(())
    }

    fn dense<F: Float, const L: usize>(&self, b: &mut Builder, m: &Model, n: usize) {
        b.insert_resource_with_footprint(dense::DenseTables::<F>::new(m));
        b.insert_resource_with_footprint(dense::DenseBeliefs::<F>::uniform(n, m.states, L));
        b.checkpoint_resource::<dense::DenseBeliefs<F>>();
        b.add_systems(Phase::Interact, think_dense::<F, L>.run_if(stepping));
    }

    fn sparse<F: Float, const L: usize>(&self, b: &mut Builder, m: &Model, n: usize) {
        b.insert_resource_with_footprint(sparse::SparseTables::<F>::new(
            m,
            self.top_k as usize,
            self.prune,
        ));
        b.insert_resource_with_footprint(sparse::SparseBeliefs::<F>::new(n, self.top_k as usize));
        b.checkpoint_resource::<sparse::SparseBeliefs<F>>();
        b.add_systems(Phase::Interact, think_sparse::<F, L>.run_if(stepping));
    }
}

/// The step's draws.
fn draws(clock: &Clock) -> Draws {
    Draws {
        seed: clock.seed,
        step: clock.step,
    }
}

#[allow(clippy::too_many_arguments)]
fn think_dense<F: Float, const L: usize>(
    mut q: Query<&mut Agent>,
    mut beliefs: ResMut<dense::DenseBeliefs<F>>,
    tables: Res<dense::DenseTables<F>>,
    model: Res<Model>,
    cfg: Res<Config>,
    clock: Res<Clock>,
    scratch: Res<ScratchArenas>,
    mut stats: ResMut<StepStats>,
    mut health: ResMut<Health>,
) {
    let Ok(mut iter) = q.contiguous_iter_mut() else {
        return;
    };
    let Some(mut agents) = iter.next() else {
        return;
    };
    let agents = agents.bypass_change_detection();
    let n = agents.len();
    stats.entropy_sum = dense::step::<F, L>(
        &scratch,
        cfg.simd,
        &tables,
        &model,
        Precision::new(cfg.gamma, cfg.alpha),
        draws(&clock),
        &mut beliefs,
        agents,
        clock.is_sample_step(),
    );
    // A belief that cannot be normalised (a non-finite entry) makes the
    // entropy sum non-finite: only then look for the first such agent.
    if !stats.entropy_sum.is_finite() {
        let s_n = beliefs.states;
        if let Some(i) = (0..n).find(|&i| !normalised((0..s_n).map(|s| beliefs.get(i, s).to_f64())))
        {
            health.report(
                "agent",
                i as u64,
                "belief is not normalised (non-finite entries)".into(),
            );
        }
    }
}

/// Whether a belief's entries are finite, ≥ 0 and sum to 1 (to 1e-3).
fn normalised(p: impl Iterator<Item = f64>) -> bool {
    let mut sum = 0.0;
    for x in p {
        if !(x.is_finite() && x >= 0.0) {
            return false;
        }
        sum += x;
    }
    (sum - 1.0).abs() < 1e-3
}

#[allow(clippy::too_many_arguments)]
fn think_sparse<F: Float, const L: usize>(
    mut q: Query<&mut Agent>,
    mut beliefs: ResMut<sparse::SparseBeliefs<F>>,
    tables: Res<sparse::SparseTables<F>>,
    model: Res<Model>,
    cfg: Res<Config>,
    clock: Res<Clock>,
    mut stats: ResMut<StepStats>,
    mut health: ResMut<Health>,
) {
    let Ok(mut iter) = q.contiguous_iter_mut() else {
        return;
    };
    let Some(mut agents) = iter.next() else {
        return;
    };
    let agents = agents.bypass_change_detection();
    stats.entropy_sum = sparse::step::<F, L>(
        cfg.simd,
        &tables,
        &model,
        Precision::new(cfg.gamma, cfg.alpha),
        draws(&clock),
        &mut beliefs,
        agents,
    );
    if !stats.entropy_sum.is_finite() {
        let k = beliefs.k;
        if let Some(i) = agents.iter().enumerate().position(|(i, a)| {
            a.support > 0
                && !normalised((0..a.support as usize).map(|j| beliefs.p[i * k + j].to_f64()))
        }) {
            health.report(
                "agent",
                i as u64,
                "belief is not normalised (non-finite entries)".into(),
            );
        }
    }
}

/// Agents per parallel chunk in the environment and metrics passes.
const CHUNK: usize = 4096;

/// True positions move; resources; the action history.
#[allow(clippy::too_many_arguments)]
fn environment(
    mut q: Query<&mut Agent>,
    model: Res<Model>,
    rules: Res<Rules>,
    clock: Res<Clock>,
    scratch: Res<ScratchArenas>,
    mut cells: ResMut<Cells>,
    mut hist: ResMut<History>,
    mut stats: ResMut<StepStats>,
) {
    let Ok(mut iter) = q.contiguous_iter_mut() else {
        return;
    };
    let Some(mut agents) = iter.next() else {
        return;
    };
    let agents = agents.bypass_change_detection();
    let (seed, step) = (clock.seed, clock.step);
    let m = &*model;
    let k = hist.k;
    let head = ((step - 1) % k as u64) as usize;
    let free_moves = rules.capacity == 0;
    hist.buf
        .par_chunks_mut(CHUNK * k)
        .zip(agents.par_chunks_mut(CHUNK))
        .for_each(|(h, agents)| {
            for (i, a) in agents.iter_mut().enumerate() {
                h[i * k + head] = a.action;
                if free_moves {
                    a.pos = m.succ[a.pos as usize][a.action as usize];
                }
            }
        });
    let key = |i: usize| Rng::new(seed, ORDER, step, i as u64).next_u64();
    stats.blocked = 0;
    let Cells { count, ready_at } = &mut *cells;
    if !free_moves {
        // Movers in a random order per step; a move into a full cell is blocked.
        let cap = rules.capacity;
        stats.blocked = scratch.with(|bump| {
            let mut movers = bumpalo::collections::Vec::new_in(bump);
            for (i, a) in agents.iter().enumerate() {
                if m.succ[a.pos as usize][a.action as usize] != a.pos {
                    movers.push((key(i), i as u32));
                }
            }
            movers.sort_unstable();
            let mut blocked = 0;
            for &(_, i) in movers.iter() {
                let a = &mut agents[i as usize];
                let to = m.succ[a.pos as usize][a.action as usize];
                if count[to as usize] < cap {
                    count[to as usize] += 1;
                    count[a.pos as usize] -= 1;
                    a.pos = to;
                } else {
                    blocked += 1;
                }
            }
            blocked
        });
    }
    if let Some(regrow) = rules.regrow {
        // Each goal with its resource back feeds one agent there: the one
        // first in this step's random order.
        scratch.with(|bump| {
            let best = bump.alloc_slice_fill_copy(m.goals.len(), (u64::MAX, u32::MAX));
            for (i, a) in agents.iter().enumerate() {
                if m.is_goal[a.pos as usize]
                    && let Ok(g) = m.goals.binary_search(&a.pos)
                    && ready_at[g] <= step
                {
                    let kk = key(i);
                    if kk < best[g].0 {
                        best[g] = (kk, i as u32);
                    }
                }
            }
            for (g, &(_, i)) in best.iter().enumerate() {
                if i != u32::MAX {
                    agents[i as usize].energy += 1;
                    ready_at[g] = step + regrow;
                }
            }
        });
    }
}

/// occupancy.csv, written at the last step, and its per-state counts
/// (allocated when the run has an output directory, at build: counting into
/// scratch made the last step of `agents/crowd-1m` grow an arena by 4 MB, a
/// heap allocation in a steady step).
#[derive(Resource, Debug, Clone)]
struct Occupancy {
    file: Option<FileId>,
    count: Vec<u32>,
}

impl microcosm_engine::Footprint for Occupancy {
    fn heap_bytes(&self) -> usize {
        self.count.heap_bytes()
    }
}

/// At the last step: `x,y,agents` for every free cell (row-major, y down as
/// in the map), for occupancy maps.
fn write_occupancy(
    q: Query<&Agent>,
    model: Res<Model>,
    clock: Res<Clock>,
    mut occupancy: ResMut<Occupancy>,
    mut files: ResMut<OutputFiles>,
) {
    let Occupancy { file, count } = &mut *occupancy;
    let Some(id) = *file else { return };
    if clock.step != clock.last_step {
        return;
    }
    count.fill(0);
    for a in q.iter() {
        count[a.pos as usize] += 1;
    }
    let w = model.width;
    files.write(id, |out| {
        writeln!(out, "x,y,agents")?;
        for (s, &c) in count.iter().enumerate() {
            let cell = model.cell_of[s];
            writeln!(out, "{},{},{c}", cell % w, cell / w)?;
        }
        Ok(())
    });
}

fn agent_metrics(
    q: Query<&Agent>,
    model: Res<Model>,
    clock: Res<Clock>,
    stats: Res<StepStats>,
    scratch: Res<ScratchArenas>,
    cols: Res<Columns>,
    mut metrics: ResMut<Metrics>,
) {
    let Ok(mut iter) = q.contiguous_iter() else {
        return;
    };
    let Some(agents) = iter.next() else { return };
    let n = agents.len().max(1) as f64;
    let m = &*model;
    let (goal, energy) = par::map_reduce(
        &scratch,
        agents,
        CHUNK,
        (0u64, 0u64),
        |_, c| {
            c.iter().fold((0, 0), |(g, e), a| {
                (g + m.is_goal[a.pos as usize] as u64, e + a.energy as u64)
            })
        },
        |a, b| (a.0 + b.0, a.1 + b.1),
    );
    let entropy = if clock.is_setup() {
        (m.states as f64).ln()
    } else {
        stats.entropy_sum / n
    };
    metrics.set(cols.entropy, entropy);
    metrics.set(cols.at_goal, goal as f64 / n);
    metrics.set(cols.energy, energy as f64 / n);
    metrics.set(
        cols.blocked,
        if clock.is_setup() {
            0.0
        } else {
            stats.blocked as f64
        },
    );
}

/// Registers the agent plugins.
pub fn register(r: &mut Registry) {
    r.register::<world::Gridworld>();
    r.register::<Agents>();
    r.register::<replay::Replay>();
}
