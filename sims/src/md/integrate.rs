//! Integrators and thermostats.
//!
//! `nve`: velocity Verlet, as LAMMPS `fix nve`: in `begin`, v += ½·dt·F/m and
//! x += dt·v (the first half of step n+1, with the forces of step n); in
//! `evolve`, v += ½·dt·F/m with the new forces. `nose_hoover` wraps the same
//! two half-kicks in a Nosé–Hoover thermostat (chain length 1). `langevin`
//! adds friction and random forces to the pair forces (LAMMPS `fix langevin`),
//! and is used together with `nve`.

use glam::{DVec3, Vec3};
use microcosm_engine::neighbor::{CLUSTER, NO_ROW};
use microcosm_engine::par;
use microcosm_engine::prelude::*;
use rayon::prelude::*;
use serde::Deserialize;

use super::lj::{Forces, Lanes, Neighbors, Real};
use super::{AtomType, Position, Species, TimeStep, Velocity};

/// Atoms per rayon task in per-atom loops (fixed: never depends on threads;
/// the kick's reduction is the lowest bad row, exact for any chunking).
/// 1,024 lets 2 threads share the kicks of 4,000 atoms.
const CHUNK: usize = 1024;

/// The `nve` plugin.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Nve {
    /// Time step (τ).
    pub dt: f64,
}

fn check_dt(dt: f64) -> Result<(), Invalid> {
    if dt.is_finite() && dt > 0.0 {
        Ok(())
    } else {
        Err(Invalid::new("dt", "must be a positive number"))
    }
}

impl PluginConfig for Nve {
    const NAME: &'static str = "nve";
    const SUMMARY: &'static str = "MD velocity-Verlet integration (constant NVE)";

    fn validate(&self) -> Result<(), Invalid> {
        check_dt(self.dt)
    }
}

impl Plugin for Nve {
    fn build(&self, b: &mut Builder) -> Result<(), BuildError> {
        b.insert_resource(TimeStep(self.dt));
        b.add_systems(Phase::Begin, initial_integrate.run_if(stepping));
        b.add_systems(Phase::Evolve, final_integrate);
        Ok(())
    }

    fn requires(&self) -> &'static [&'static str] {
        &["atoms", "lj"]
    }
}

/// Per-type inverse masses, and whether atoms carry a type.
fn inv_masses(species: &Species) -> [f64; 256] {
    let mut inv = [0.0; 256];
    for (i, m) in species.masses.iter().enumerate() {
        inv[i] = 1.0 / m;
    }
    inv
}

/// v += ½·dt·F/m, then x += dt·v, for every atom (fixed chunks). Reports a
/// blow-up (the lowest atom index) if a position is not finite or an atom
/// moved more than half the skin in this step: the neighbour list could miss
/// pairs then, and the time step is almost certainly too large.
#[allow(clippy::too_many_arguments)]
pub fn initial_integrate(
    mut q: Query<(&mut Position, &mut Velocity, Option<&AtomType>)>,
    forces: Res<Forces>,
    neigh: Res<Neighbors>,
    species: Res<Species>,
    dt: Res<TimeStep>,
    mut health: ResMut<Health>,
) {
    let limit = if neigh.skin > 0.0 {
        0.5 * neigh.skin
    } else {
        f64::INFINITY
    };
    if let Some((row, moved)) = kick(&mut q, &forces, &neigh, &species, dt.0, Some(limit)) {
        let detail = if moved.is_finite() {
            format!(
                "moved {moved:.4} σ in one step, more than half the skin ({limit:.4} σ): is the time step ({}) too large?",
                dt.0
            )
        } else {
            "position or velocity is not finite".to_string()
        };
        health.report("atom", row as u64, detail);
    }
}

/// v += ½·dt·F/m for every atom.
pub fn final_integrate(
    mut q: Query<(&mut Position, &mut Velocity, Option<&AtomType>)>,
    forces: Res<Forces>,
    neigh: Res<Neighbors>,
    species: Res<Species>,
    dt: Res<TimeStep>,
) {
    kick(&mut q, &forces, &neigh, &species, dt.0, None);
}

/// The half-kick, and the drift when `drift` holds the largest allowed
/// displacement; returns the first atom (lowest row) that moved further or
/// went non-finite, with its displacement.
fn kick(
    q: &mut Query<(&mut Position, &mut Velocity, Option<&AtomType>)>,
    forces: &Forces,
    neigh: &Neighbors,
    species: &Species,
    dt: f64,
    drift: Option<f64>,
) -> Option<(usize, f64)> {
    let inv = inv_masses(species);
    let slot_of = &neigh.list.slot_of;
    let Ok(iter) = q.contiguous_iter_mut() else {
        return None;
    };
    let mut first: Option<(usize, f64)> = None;
    for (mut pos, mut vel, types) in iter {
        let pos = pos.bypass_change_detection();
        let vel = vel.bypass_change_detection();
        let k = Kick {
            slot_of,
            types,
            inv: &inv,
            dt,
            drift,
        };
        // One match on the force precision, outside the per-atom loop.
        let bad = match forces {
            Forces::Mixed(p) => k.run(&p.force, pos, vel),
            Forces::Double(p) => k.run(&p.force, pos, vel),
        };
        first = first.or(bad);
    }
    first
}

/// What a half-kick needs besides the force array.
struct Kick<'a> {
    slot_of: &'a [u32],
    types: Option<&'a [AtomType]>,
    inv: &'a [f64; 256],
    dt: f64,
    drift: Option<f64>,
}

impl Kick<'_> {
    /// The kick over all atoms, in fixed chunks; the first bad atom, if any.
    fn run<F: Real>(
        &self,
        force: &[Lanes<F>],
        pos: &mut [Position],
        vel: &mut [Velocity],
    ) -> Option<(usize, f64)> {
        pos.par_chunks_mut(CHUNK)
            .zip(vel.par_chunks_mut(CHUNK))
            .enumerate()
            .map(|(k, (pos, vel))| {
                let start = k * CHUNK;
                match (self.types, self.drift.is_some()) {
                    (Some(t), true) => self.chunk::<F, true, true>(force, start, pos, vel, t),
                    (Some(t), false) => self.chunk::<F, true, false>(force, start, pos, vel, t),
                    (None, true) => self.chunk::<F, false, true>(force, start, pos, vel, &[]),
                    (None, false) => self.chunk::<F, false, false>(force, start, pos, vel, &[]),
                }
            })
            .reduce(
                || None,
                |a, b| match (a, b) {
                    (Some(x), Some(y)) => Some(if x.0 <= y.0 { x } else { y }),
                    (x, None) => x,
                    (None, y) => y,
                },
            )
    }

    /// One chunk starting at row `start`: v += ½·dt·F/m, and x += dt·v when
    /// drifting (`DRIFT`). Flags a bad atom without a branch per atom; only a chunk
    /// with one is searched again for the first.
    #[inline(always)]
    fn chunk<F: Real, const TYPED: bool, const DRIFT: bool>(
        &self,
        force: &[Lanes<F>],
        start: usize,
        pos: &mut [Position],
        vel: &mut [Velocity],
        types: &[AtomType],
    ) -> Option<(usize, f64)> {
        let half = 0.5 * self.dt;
        let slots = &self.slot_of[start..start + pos.len()];
        let limit2 = self.drift.map_or(f64::INFINITY, |l| l * l);
        let mut ok = true;
        for (i, ((x, v), &slot)) in pos.iter_mut().zip(vel.iter_mut()).zip(slots).enumerate() {
            let inv = if TYPED {
                self.inv[types[start + i].0 as usize]
            } else {
                self.inv[0]
            };
            let (c, l) = (slot as usize / CLUSTER, slot as usize % CLUSTER);
            let fc = &force[c];
            let f = DVec3::new(fc[0][l].to_f64(), fc[1][l].to_f64(), fc[2][l].to_f64());
            let vn = v.0.as_dvec3() + f * (half * inv);
            v.0 = vn.as_vec3();
            if DRIFT {
                let d = v.0.as_dvec3() * self.dt;
                x.0 += d;
                // 0·x is 0 for a finite x and NaN otherwise: one test for
                // the three coordinates, and no branch.
                let finite = (x.0 * 0.0).element_sum() == 0.0;
                ok &= (d.length_squared() <= limit2) & finite;
            }
        }
        if ok {
            return None;
        }
        // The first atom that moved too far or is not finite (positions
        // after this step's drift; the displacement is dt·v).
        pos.iter()
            .zip(vel.iter())
            .enumerate()
            .find_map(|(i, (x, v))| {
                let d2 = (v.0.as_dvec3() * self.dt).length_squared();
                (!(d2 <= limit2 && x.0.is_finite())).then(|| {
                    (
                        start + i,
                        if x.0.is_finite() { d2.sqrt() } else { f64::NAN },
                    )
                })
            })
    }
}

/// Twice the kinetic energy, Σ m v², by a fixed-order parallel sum.
pub fn twice_kinetic(
    q: &Query<(&Velocity, Option<&AtomType>)>,
    species: &Species,
    scratch: &ScratchArenas,
) -> (f64, usize) {
    let (mut s, mut n) = (0.0, 0);
    let Ok(iter) = q.contiguous_iter() else {
        return (0.0, 0);
    };
    for (vel, types) in iter {
        s += par::sum(scratch, vel, |i, v| {
            let t = types.map_or(0, |t| t[i].0 as usize);
            species.masses[t] * v.0.as_dvec3().length_squared()
        });
        n += vel.len();
    }
    (s, n)
}

/// The `langevin` plugin: F += −(m/damp)·v + √(2·m·k_B·T/(damp·dt))·ξ, ξ
/// standard normal per component, drawn per (seed, step, atom).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Langevin {
    /// Target temperature.
    pub temperature: f64,
    /// Damping time (τ).
    pub damp: f64,
}

/// Langevin parameters (a resource).
#[derive(Resource, Debug, Clone, Copy)]
struct LangevinParams {
    temperature: f64,
    damp: f64,
}

const LANGEVIN: StreamId = StreamId::named("md/langevin");

impl PluginConfig for Langevin {
    const NAME: &'static str = "langevin";
    const SUMMARY: &'static str = "MD Langevin thermostat (friction + random forces, with nve)";

    fn validate(&self) -> Result<(), Invalid> {
        if !(self.temperature.is_finite() && self.temperature >= 0.0) {
            return Err(Invalid::new("temperature", "must be a finite number ≥ 0"));
        }
        if !(self.damp.is_finite() && self.damp > 0.0) {
            return Err(Invalid::new("damp", "must be a positive number"));
        }
        Ok(())
    }
}

impl Plugin for Langevin {
    fn build(&self, b: &mut Builder) -> Result<(), BuildError> {
        b.insert_resource(LangevinParams {
            temperature: self.temperature,
            damp: self.damp,
        });
        b.add_systems(Phase::Interact, langevin_forces.run_if(stepping));
        Ok(())
    }

    fn requires(&self) -> &'static [&'static str] {
        &["atoms", "lj", "nve"]
    }
}

fn langevin_forces(
    q: Query<(&Velocity, Option<&AtomType>)>,
    mut forces: ResMut<Forces>,
    neigh: Res<Neighbors>,
    species: Res<Species>,
    params: Res<LangevinParams>,
    dt: Res<TimeStep>,
    clock: Res<Clock>,
) {
    let Ok(mut iter) = q.contiguous_iter() else {
        return;
    };
    let Some((vel, types)) = iter.next() else {
        return;
    };
    let rows = &neigh.list.row_of;
    let (seed, step, dt) = (clock.seed, clock.step, dt.0);
    let p = *params;
    let forces = &mut *forces;
    let add = |c: usize, f: &mut dyn FnMut(usize, DVec3)| {
        for l in 0..CLUSTER {
            let r = rows[c * CLUSTER + l];
            if r == NO_ROW {
                continue;
            }
            let r = r as usize;
            let m = species.masses[types.map_or(0, |t| t[r].0 as usize)];
            let mut g = Rng::new(seed, LANGEVIN, step, r as u64);
            let xi = DVec3::new(g.normal(), g.normal(), g.normal());
            let amp = (2.0 * m * p.temperature / (p.damp * dt)).sqrt();
            f(l, -vel[r].0.as_dvec3() * (m / p.damp) + xi * amp);
        }
    };
    // Each cluster's lanes are independent: a per-cluster loop (sequential
    // over clusters; the random draws dominate and are keyed per atom).
    for c in 0..forces.clusters() {
        let mut out = [None; CLUSTER];
        add(c, &mut |l, v| out[l] = Some(v));
        forces.add_cluster(c, |l| out[l]);
    }
}

/// The `nose_hoover` plugin: velocity Verlet inside a Nosé–Hoover thermostat
/// of one chain element, thermostat mass Q = g·k_B·T·damp² (g = 3N − 3).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NoseHoover {
    /// Time step (τ).
    pub dt: f64,
    /// Target temperature.
    pub temperature: f64,
    /// Thermostat period (τ).
    pub damp: f64,
}

/// Thermostat state (a resource).
#[derive(Resource, Debug, Clone, Copy)]
pub struct NhState {
    /// Target temperature.
    pub temperature: f64,
    /// Period.
    pub damp: f64,
    /// Thermostat "velocity" ξ.
    pub xi: f64,
}

/// State: ξ (the target and period come from the scenario).
impl State for NhState {
    fn save(&self, e: &mut Encoder) -> std::io::Result<()> {
        e.f64(self.xi)
    }

    fn load(&mut self, d: &mut Decoder) -> Result<(), Corrupt> {
        self.xi = d.f64()?;
        Ok(())
    }
}

impl PluginConfig for NoseHoover {
    const NAME: &'static str = "nose_hoover";
    const SUMMARY: &'static str = "MD Nosé–Hoover NVT integration (chain length 1)";

    fn validate(&self) -> Result<(), Invalid> {
        check_dt(self.dt)?;
        if !(self.temperature.is_finite() && self.temperature > 0.0) {
            return Err(Invalid::new("temperature", "must be a positive number"));
        }
        if !(self.damp.is_finite() && self.damp > 0.0) {
            return Err(Invalid::new("damp", "must be a positive number"));
        }
        Ok(())
    }
}

impl Plugin for NoseHoover {
    fn build(&self, b: &mut Builder) -> Result<(), BuildError> {
        b.insert_resource(TimeStep(self.dt));
        b.insert_resource(NhState {
            temperature: self.temperature,
            damp: self.damp,
            xi: 0.0,
        });
        b.checkpoint_resource::<NhState>();
        b.add_systems(
            Phase::Begin,
            (nh_begin, initial_integrate).chain().run_if(stepping),
        );
        b.add_systems(Phase::Evolve, (final_integrate, nh_end).chain());
        Ok(())
    }

    fn requires(&self) -> &'static [&'static str] {
        &["atoms", "lj"]
    }
}

/// Thermostat half step before the first half-kick: ξ += ½dt·(2K − g·T)/Q,
/// then v ← v·exp(−ξ·½dt).
fn nh_begin(
    mut qv: Query<(&mut Velocity, Option<&AtomType>)>,
    mut nh: ResMut<NhState>,
    species: Res<Species>,
    scratch: Res<ScratchArenas>,
    dt: Res<TimeStep>,
) {
    update_xi(&qv.as_readonly(), &mut nh, &species, &scratch, dt.0);
    scale_velocities(&mut qv, (-nh.xi * 0.5 * dt.0).exp());
}

/// Thermostat half step after the second half-kick: the mirror image of
/// [`nh_begin`] (scale, then update ξ), so the step is time-reversible.
fn nh_end(
    mut qv: Query<(&mut Velocity, Option<&AtomType>)>,
    mut nh: ResMut<NhState>,
    species: Res<Species>,
    scratch: Res<ScratchArenas>,
    dt: Res<TimeStep>,
) {
    scale_velocities(&mut qv, (-nh.xi * 0.5 * dt.0).exp());
    update_xi(&qv.as_readonly(), &mut nh, &species, &scratch, dt.0);
}

fn update_xi(
    q: &Query<(&Velocity, Option<&AtomType>)>,
    nh: &mut NhState,
    species: &Species,
    scratch: &ScratchArenas,
    dt: f64,
) {
    let (ke2, n) = twice_kinetic(q, species, scratch);
    let g = (3 * n).saturating_sub(3).max(1) as f64;
    let q_mass = g * nh.temperature * nh.damp * nh.damp;
    nh.xi += 0.5 * dt * (ke2 - g * nh.temperature) / q_mass;
}

fn scale_velocities(q: &mut Query<(&mut Velocity, Option<&AtomType>)>, s: f64) {
    let s = Vec3::splat(s as f32);
    let Ok(iter) = q.contiguous_iter_mut() else {
        return;
    };
    for (mut vel, _) in iter {
        vel.bypass_change_detection()
            .par_chunks_mut(CHUNK)
            .for_each(|c| c.iter_mut().for_each(|v| v.0 *= s));
    }
}
