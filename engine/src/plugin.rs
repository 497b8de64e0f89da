//! Plugins and the registry that names them.
//!
//! A plugin is the user's description of one piece of a sim (a config struct
//! read from its scenario table, as an OpenMM `Force` or a LAMMPS style);
//! [`Plugin::build`] installs the components, resources and systems that
//! implement it. The [`Registry`] maps names to constructors, so a scenario
//! lists plugins by name. Adding a plugin is one file (a config struct that
//! implements [`Plugin`] and [`PluginConfig`]) plus one line:
//! `registry.register::<MyPlugin>()`.
//!
//! ```
//! use microcosm_engine::prelude::*;
//!
//! /// Counts steps (a toy plugin).
//! #[derive(serde::Deserialize)]
//! #[serde(deny_unknown_fields)]
//! struct Ticker { every: u64 }
//!
//! #[derive(Resource, Default)]
//! struct Ticks(u64);
//!
//! impl Plugin for Ticker {
//!     fn build(&self, b: &mut Builder) -> Result<(), BuildError> {
//!         b.insert_resource(Ticks::default());
//!         b.add_systems(Phase::Evolve, |mut t: ResMut<Ticks>| t.0 += 1);
//!         Ok(())
//!     }
//! }
//!
//! impl PluginConfig for Ticker {
//!     const NAME: &'static str = "ticker";
//!     const SUMMARY: &'static str = "counts steps";
//!     fn validate(&self) -> Result<(), Invalid> {
//!         if self.every == 0 { return Err(Invalid::new("every", "must be at least 1")); }
//!         Ok(())
//!     }
//! }
//!
//! let mut registry = Registry::default();
//! registry.register::<Ticker>();
//! assert!(registry.names().any(|n| n == "ticker"));
//! ```

use std::collections::BTreeMap;
use std::path::PathBuf;

use bevy_ecs::prelude::*;
use bevy_ecs::schedule::ScheduleConfigs;
use bevy_ecs::system::ScheduleSystem;
use serde::de::DeserializeOwned;

use crate::memory::Estimate;
use crate::output::{FileId, Metrics, OutputFiles};
use crate::phase::Phase;
use crate::scenario::{Invalid, Scenario, ScenarioError, typed};

/// Why a plugin could not build (bad data file, missing dependency...).
#[derive(Debug, Clone, thiserror::Error, PartialEq)]
#[error("plugin `{plugin}`: {reason}")]
pub struct BuildError {
    /// The plugin's name.
    pub plugin: String,
    /// Why.
    pub reason: String,
    /// The scenario key at fault, if one is.
    pub key: Option<String>,
}

/// A plugin: installs components, resources and systems into a sim.
///
/// Lifecycle: the registry deserializes the plugin from its scenario table and
/// calls [`PluginConfig::validate`]; the engine then calls [`Plugin::estimate`]
/// (before anything is spawned, to check the memory budget) and, in scenario
/// order, [`Plugin::build`]. Systems go into phases with
/// [`Builder::add_systems`]; inside a phase, plugins run in scenario order and
/// each plugin orders its own systems (e.g. with `.chain()`).
pub trait Plugin: Send + Sync + 'static {
    /// Installs the plugin.
    fn build(&self, b: &mut Builder) -> Result<(), BuildError>;

    /// Adds the memory this plugin will use, from its parameters alone.
    fn estimate(&self, _scenario: &Scenario, _e: &mut Estimate) {}

    /// Registry names of plugins that must come before this one.
    fn requires(&self) -> &'static [&'static str] {
        &[]
    }
}

/// A plugin that can be named in a scenario file.
pub trait PluginConfig: Plugin + DeserializeOwned + Sized {
    /// Registry name, as written in `[plugins.NAME]`.
    const NAME: &'static str;
    /// One line for `microcosm list` and errors.
    const SUMMARY: &'static str;

    /// Checks values serde cannot (ranges, consistency).
    fn validate(&self) -> Result<(), Invalid> {
        Ok(())
    }
}

/// Instantiated plugins with their scenario names, in scenario order.
pub type Plugins = Vec<(String, Box<dyn Plugin>)>;

type Make = fn(toml::Value) -> Result<Box<dyn Plugin>, Invalid>;

fn make<P: PluginConfig>(v: toml::Value) -> Result<Box<dyn Plugin>, Invalid> {
    let p: P = typed(v).map_err(|(key, reason)| Invalid { key, reason })?;
    p.validate()?;
    Ok(Box::new(p))
}

/// Registry of plugin constructors by name.
#[derive(Default, Clone)]
pub struct Registry {
    entries: BTreeMap<&'static str, (&'static str, Make)>,
}

impl Registry {
    /// Registers `P` under [`PluginConfig::NAME`] (a later registration of the same name wins).
    pub fn register<P: PluginConfig>(&mut self) -> &mut Self {
        self.entries.insert(P::NAME, (P::SUMMARY, make::<P>));
        self
    }

    /// Registered names, sorted.
    pub fn names(&self) -> impl Iterator<Item = &'static str> + '_ {
        self.entries.keys().copied()
    }

    /// One-line summary of a plugin.
    pub fn summary(&self, name: &str) -> Option<&'static str> {
        self.entries.get(name).map(|e| e.0)
    }

    /// Instantiates and validates every plugin of a scenario, in order.
    pub fn instantiate(&self, s: &Scenario) -> Result<Plugins, ScenarioError> {
        let mut out: Plugins = Vec::new();
        for (name, table) in &s.plugins {
            let key = format!("plugins.{name}");
            let (_, make) = self.entries.get(name.as_str()).ok_or_else(|| {
                let known: Vec<_> = self.names().collect();
                s.key_error(
                    &key,
                    format!("unknown plugin (known: {})", known.join(", ")),
                )
            })?;
            let p = make(toml::Value::Table(table.clone())).map_err(|i| {
                s.key_error(
                    &if i.key.is_empty() {
                        key.clone()
                    } else {
                        format!("{key}.{}", i.key)
                    },
                    i.reason,
                )
            })?;
            for req in p.requires() {
                if !out.iter().any(|(n, _)| n == req) {
                    return Err(
                        s.key_error(&key, format!("requires plugin `{req}` listed before it"))
                    );
                }
            }
            out.push((name.clone(), p));
        }
        Ok(out)
    }
}

/// The slot of one plugin (or the engine) inside one phase; slots of a phase
/// are chained in order, so plugins run in scenario order within each phase.
#[derive(SystemSet, Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) struct Slot(pub Phase, pub usize);

/// A plugin's access to the sim while it builds.
pub struct Builder<'a> {
    pub(crate) world: &'a mut World,
    pub(crate) schedule: &'a mut Schedule,
    pub(crate) scenario: &'a Scenario,
    pub(crate) plugin: String,
    pub(crate) slot: usize,
    pub(crate) threads: usize,
    pub(crate) spawns: &'a mut Vec<DeferredSpawn>,
}

/// The largest [`Builder::min_warmup`] asked for (a resource).
#[derive(Resource, Debug, Default, Clone, Copy)]
pub(crate) struct MinWarmup(pub u64);

/// A spawn queued by [`Builder::spawn_batch`].
pub(crate) type DeferredSpawn = Box<dyn FnOnce(&mut World) + Send>;

impl Builder<'_> {
    /// Adds systems to a phase, after earlier plugins' systems in that phase.
    /// Order your own systems explicitly (`.chain()`, `.before()`).
    pub fn add_systems<M>(
        &mut self,
        phase: Phase,
        systems: impl IntoScheduleConfigs<ScheduleSystem, M>,
    ) -> &mut Self {
        let cfg: ScheduleConfigs<ScheduleSystem> = systems.into_configs();
        self.schedule
            .add_systems(cfg.in_set(Slot(phase, self.slot)));
        self
    }

    /// Inserts a resource that owns no heap memory worth reporting.
    pub fn insert_resource<R: Resource>(&mut self, r: R) -> &mut Self {
        self.world.insert_resource(r);
        self
    }

    /// Inserts a resource and lists its heap bytes in the memory report.
    pub fn insert_resource_with_footprint<R: Resource + crate::Footprint>(
        &mut self,
        r: R,
    ) -> &mut Self {
        self.world.insert_resource(r);
        crate::footprint::register::<R>(self.world);
        self
    }

    /// Spawns entities from an iterator of bundles, reserving storage once.
    ///
    /// The spawn is deferred until every plugin has built and the schedule is
    /// initialised, in call order: bevy_ecs 0.20 keeps each resource on an
    /// entity in a sparse set indexed by entity index, so a resource inserted
    /// after N entities costs about 4·N bytes. Spawning last avoids that.
    pub fn spawn_batch<I>(&mut self, bundles: I)
    where
        I: IntoIterator + Send + 'static,
        I::IntoIter: Iterator + Send + Sync + 'static,
        I::Item: Bundle<Effect: bevy_ecs::bundle::NoBundleEffect>,
    {
        self.spawns.push(Box::new(move |w: &mut World| {
            w.spawn_batch(bundles);
        }));
    }

    /// Saves this component, for every entity, in checkpoints: a resumed run
    /// continues bitwise from it. Every component whose values carry over
    /// from one step to the next must be registered.
    pub fn checkpoint_component<C>(&mut self)
    where
        C: Component<Mutability = bevy_ecs::component::Mutable> + bytemuck::Pod,
    {
        let id = self.world.register_component::<C>();
        let mut reg = self.world.resource_mut::<crate::checkpoint::Registered>();
        reg.component::<C>();
        reg.cover(id);
    }

    /// Declares a component constant for checkpoints: set at spawn from the
    /// scenario and never changed, so a resumed run rebuilds it (an atom's
    /// type, say). Components neither saved nor constant make checkpoints
    /// refuse to be written (see [`crate::checkpoint::uncovered`]).
    pub fn checkpoint_constant<C: Component>(&mut self) {
        let id = self.world.register_component::<C>();
        self.world
            .resource_mut::<crate::checkpoint::Registered>()
            .cover(id);
    }

    /// Saves the state part of this resource in checkpoints (see
    /// [`crate::checkpoint::State`]). Resources that carry state from one
    /// step to the next must be registered; constants and scratch need not.
    pub fn checkpoint_resource<R>(&mut self)
    where
        R: Resource<Mutability = bevy_ecs::component::Mutable> + crate::checkpoint::State,
    {
        self.world
            .resource_mut::<crate::checkpoint::Registered>()
            .resource::<R>();
    }

    /// Keeps the first `steps` steps out of the steady-state accounting
    /// (allocations, leak slope), on top of `run.warmup_steps`: for a system
    /// that first runs, and sizes its buffers or scratch, only at step
    /// `steps` (a measurement every `steps` steps, say).
    pub fn min_warmup(&mut self, steps: u64) {
        let mut w = self.world.get_resource_or_init::<MinWarmup>();
        w.0 = w.0.max(steps);
    }

    /// Declares a unit the memory report also divides attributable bytes by:
    /// `memory_unit("gene", n * g)` adds `bytes_per_gene` to memory.json.
    pub fn memory_unit(&mut self, name: &'static str, count: u64) {
        let mut u = self
            .world
            .get_resource_or_init::<crate::memory::MemoryUnits>();
        u.0.retain(|(n, _)| *n != name);
        u.0.push((name, count));
    }

    /// Names metrics.csv's first column, the step number (default `step`).
    pub fn index_column(&mut self, name: &'static str) {
        self.world.resource_mut::<Metrics>().set_index_name(name);
    }

    /// Declares a metrics.csv column; returns its index for [`Metrics::set`].
    pub fn metric(&mut self, name: &'static str) -> usize {
        self.world.resource_mut::<Metrics>().add_column(name)
    }

    /// Opens an output file in the run directory (`None` when the run writes no
    /// files). Written to a temporary name, renamed when the run finishes.
    pub fn output_file(&mut self, name: &str) -> Result<Option<FileId>, BuildError> {
        let r = self.world.resource_mut::<OutputFiles>().open(name);
        r.map_err(|e| self.error(format!("cannot create output file {name}: {e}")))
    }

    /// The world.
    pub fn world(&self) -> &World {
        self.world
    }

    /// The world, mutably.
    pub fn world_mut(&mut self) -> &mut World {
        self.world
    }

    /// The scenario being built.
    pub fn scenario(&self) -> &Scenario {
        self.scenario
    }

    /// A data path from the scenario, resolved against the scenario's directory.
    pub fn resolve(&self, p: &str) -> PathBuf {
        self.scenario.resolve(p)
    }

    /// The run's seed.
    pub fn seed(&self) -> u64 {
        self.scenario.run.seed
    }

    /// Threads in the sim's rayon pool.
    pub fn threads(&self) -> usize {
        self.threads
    }

    /// This plugin's name.
    pub fn plugin_name(&self) -> &str {
        &self.plugin
    }

    /// A build error for this plugin.
    pub fn error(&self, reason: impl Into<String>) -> BuildError {
        BuildError {
            plugin: self.plugin.clone(),
            reason: reason.into(),
            key: None,
        }
    }

    /// A build error about one of this plugin's keys.
    pub fn key_error(&self, key: &str, reason: impl Into<String>) -> BuildError {
        BuildError {
            plugin: self.plugin.clone(),
            reason: reason.into(),
            key: Some(format!("plugins.{}.{key}", self.plugin)),
        }
    }
}
