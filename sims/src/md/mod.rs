//! Lennard-Jones molecular dynamics, in LJ reduced units.
//!
//! Units: lengths in σ, energies in ε, masses in m, time in τ = σ·√(m/ε),
//! temperature in ε/k_B, pressure in ε/σ³ (LAMMPS `units lj`).
//!
//! Plugins, as a LAMMPS input deck would name them:
//!
//! | plugin | LAMMPS analogue | phase |
//! |---|---|---|
//! | `atoms` | `lattice fcc` + `create_atoms`, or `read_data` (extended XYZ) | build |
//! | `velocity` | `velocity all create T seed` | build |
//! | `lj` | `pair_style lj/cut`, `neighbor`, `neigh_modify` | spatial, interact |
//! | `nve` | `fix nve` (velocity Verlet) | begin, evolve |
//! | `langevin` | `fix langevin` | interact |
//! | `nose_hoover` | `fix nvt` (chain length 1) | begin, evolve |
//! | `thermo` | `thermo_style custom step time temp pe ke etotal press` | measure |
//! | `dump` | `dump xyz` (extended XYZ) | output |
//! | `rdf` | `compute rdf` + `fix ave/time` (g(r) to rdf.csv) | measure, output |
//!
//! The step: `begin` does the first half-kick and the drift (skipped in the
//! setup pass), `spatial` rebuilds the neighbour list when needed, `interact`
//! computes forces (and energy and virial on sampled steps), `evolve` does the
//! second half-kick, `measure` the thermo, `output` the dump.
//!
//! Per atom the ECS holds `Position` (f64, 24 B) and `Velocity` (f32, 12 B),
//! plus `AtomType` (1 B) when there is more than one type; each column also
//! carries bevy's 8 B of change ticks. The force kernel works on copies of the
//! positions in cluster order (see `microcosm_engine::neighbor`).

pub mod atoms;
pub mod integrate;
pub mod lj;
pub mod rdf;
pub mod thermo;

use bevy_ecs::prelude::*;
use glam::{DVec3, Vec3};

/// Position (f64: the integration stays in double precision).
#[derive(Component, Debug, Clone, Copy, PartialEq, bytemuck::Pod, bytemuck::Zeroable)]
#[repr(transparent)]
pub struct Position(pub DVec3);

/// Velocity.
#[derive(Component, Debug, Clone, Copy, PartialEq, Default, bytemuck::Pod, bytemuck::Zeroable)]
#[repr(transparent)]
pub struct Velocity(pub Vec3);

/// Atom type index into [`Species`] (only when there is more than one type).
#[derive(Component, Debug, Clone, Copy, PartialEq, Eq, bytemuck::Pod, bytemuck::Zeroable)]
#[repr(transparent)]
pub struct AtomType(pub u8);

/// The atom types: names and masses (a resource, from the `atoms` plugin).
#[derive(Resource, Debug, Clone)]
pub struct Species {
    /// Type names (element names in XYZ files).
    pub names: Vec<String>,
    /// Masses.
    pub masses: Vec<f64>,
}

/// The simulation box (a resource).
#[derive(Resource, Debug, Clone, Copy)]
pub struct SimBox(pub microcosm_engine::neighbor::PeriodicBox);

impl SimBox {
    /// The box, for a plugin that needs the `atoms` plugin before it.
    pub fn of(
        b: &microcosm_engine::Builder,
    ) -> Result<microcosm_engine::neighbor::PeriodicBox, microcosm_engine::BuildError> {
        b.world()
            .get_resource::<SimBox>()
            .map(|s| s.0)
            .ok_or_else(|| b.error("needs the `atoms` plugin before it"))
    }
}

/// The time step (a resource, from the integrator).
#[derive(Resource, Debug, Clone, Copy)]
pub struct TimeStep(pub f64);

/// Registers the MD plugins.
pub fn register(r: &mut microcosm_engine::Registry) {
    r.register::<atoms::Atoms>();
    r.register::<atoms::VelocityCreate>();
    r.register::<lj::Lj>();
    r.register::<integrate::Nve>();
    r.register::<integrate::Langevin>();
    r.register::<integrate::NoseHoover>();
    r.register::<thermo::Thermo>();
    r.register::<thermo::Dump>();
    r.register::<rdf::Rdf>();
}
