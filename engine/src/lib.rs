//! # microcosm-engine
//!
//! A data-oriented simulation engine on bevy_ecs: entities whose components
//! live in struct-of-arrays tables, one scheduled step pipeline, per-step
//! scratch arenas, and instrumentation that accounts for every heap byte.
//!
//! Goals, in order: (1) results that do not depend on the thread count,
//! (2) steady-state steps that allocate nothing, (3) every byte attributed
//! and reported, (4) throughput.
//!
//! The engine knows nothing about atoms, genes or agents: a sim is a set of
//! [`Plugin`]s named in a scenario file and found in a [`Registry`].
//!
//! * [`sim`] — [`Sim`]: world + schedule + rayon pool; setup pass, steps, finish.
//! * [`phase`] — the pipeline phases, the step [`Clock`], per-phase probes.
//! * [`plugin`] — [`Plugin`], [`PluginConfig`], [`Registry`], [`Builder`].
//! * [`scenario`] — TOML scenarios, `--set` overrides, errors naming file and key.
//! * [`scratch`] — per-thread bump arenas, reset every step.
//! * [`rng`] — counter-based random streams keyed by (seed, stream, step, entity).
//! * [`par`] — fixed-order parallel reductions.
//! * [`alloc`] — the counting global allocator.
//! * [`memory`] — component, entity, resource, scratch, heap and RSS accounting.
//! * [`footprint`] — the [`Footprint`] trait for resources.
//! * [`output`] — metrics.csv and other output files, atomically renamed.
//! * [`simd`] — runtime choice of vector instructions for hot kernels.
//! * [`checkpoint`] — checkpoints: state to a file and back, bit for bit.
//! * [`bench`](mod@bench) — a criterion `Measurement` of allocated bytes.
//! * [`cli`] — the `microcosm` command line, reusable by binaries that add plugins.

pub mod alloc;
pub mod bench;
pub mod checkpoint;
pub mod cli;
pub mod footprint;
pub mod memory;
pub mod neighbor;
pub mod output;
pub mod par;
pub mod phase;
pub mod plugin;
pub mod rng;
pub mod scenario;
pub mod scratch;
pub mod sim;
pub mod simd;

pub use bevy_ecs;
pub use footprint::Footprint;
pub use phase::{Clock, Phase};
pub use plugin::{BuildError, Builder, Plugin, PluginConfig, Registry};
/// The rayon the engine schedules on (plugins write their parallel loops with it).
pub use rayon;
pub use scenario::{Invalid, Scenario, ScenarioError};
pub use sim::{RunOptions, Sim, SimError};

/// What a plugin author needs in scope.
pub mod prelude {
    pub use crate::checkpoint::{Corrupt, Decoder, Encoder, State};
    pub use crate::footprint::Footprint;
    pub use crate::memory::Estimate;
    pub use crate::output::{FileId, Metrics, OutputFiles};
    pub use crate::phase::{Clock, Health, Phase, sample_step, stepping};
    pub use crate::plugin::{BuildError, Builder, Plugin, PluginConfig, Registry};
    pub use crate::rng::{Rng, StreamId};
    pub use crate::scenario::{Invalid, Scenario};
    pub use crate::scratch::ScratchArenas;
    pub use bevy_ecs::prelude::*;
}
