//! Observables (LAMMPS `thermo_style custom step time temp pe ke etotal press`,
//! energies per atom as LAMMPS normalises them in LJ units) and the extended
//! XYZ trajectory.

use std::io::Write;

use microcosm_engine::prelude::*;
use serde::Deserialize;

use super::integrate::twice_kinetic;
use super::lj::LjEnergy;
use super::{AtomType, Position, SimBox, Species, TimeStep, Velocity};

/// The `thermo` plugin: metrics columns `time,temp,pe,ke,etotal,press` on
/// sampled steps (`run.sample_every`).
#[derive(Debug, Clone, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct Thermo {}

#[derive(Resource, Debug, Clone, Copy)]
struct ThermoColumns {
    time: usize,
    temp: usize,
    pe: usize,
    ke: usize,
    etotal: usize,
    press: usize,
}

/// The last thermo values (a resource), for tests and tools.
#[derive(Resource, Debug, Clone, Copy, Default, PartialEq)]
pub struct ThermoState {
    /// Step.
    pub step: u64,
    /// Temperature (3N − 3 degrees of freedom).
    pub temp: f64,
    /// Potential energy per atom.
    pub pe: f64,
    /// Kinetic energy per atom.
    pub ke: f64,
    /// Total energy per atom.
    pub etotal: f64,
    /// Pressure (virial).
    pub press: f64,
}

impl PluginConfig for Thermo {
    const NAME: &'static str = "thermo";
    const SUMMARY: &'static str = "MD thermodynamics: temp, pe, ke, etotal, press";
}

impl Plugin for Thermo {
    fn build(&self, b: &mut Builder) -> Result<(), BuildError> {
        let cols = ThermoColumns {
            time: b.metric("time"),
            temp: b.metric("temp"),
            pe: b.metric("pe"),
            ke: b.metric("ke"),
            etotal: b.metric("etotal"),
            press: b.metric("press"),
        };
        b.insert_resource(cols);
        b.insert_resource(ThermoState::default());
        b.add_systems(Phase::Measure, thermo.run_if(sample_step));
        Ok(())
    }

    fn requires(&self) -> &'static [&'static str] {
        &["atoms"]
    }
}

#[allow(clippy::too_many_arguments)]
fn thermo(
    q: Query<(&Velocity, Option<&AtomType>)>,
    species: Res<Species>,
    scratch: Res<ScratchArenas>,
    energy: Option<Res<LjEnergy>>,
    bx: Res<SimBox>,
    dt: Option<Res<TimeStep>>,
    clock: Res<Clock>,
    cols: Res<ThermoColumns>,
    mut state: ResMut<ThermoState>,
    mut m: ResMut<Metrics>,
) {
    let (ke2, n) = twice_kinetic(&q, &species, &scratch);
    let nf = n.max(1) as f64;
    let dof = (3 * n).saturating_sub(3).max(1) as f64;
    let temp = ke2 / dof;
    let (pe, virial) = energy.map_or((0.0, 0.0), |e| (e.pe, e.virial));
    let press = (dof * temp + virial) / (3.0 * bx.0.volume());
    let s = ThermoState {
        step: clock.step,
        temp,
        pe: pe / nf,
        ke: 0.5 * ke2 / nf,
        etotal: (pe + 0.5 * ke2) / nf,
        press,
    };
    *state = s;
    m.set(cols.time, clock.step as f64 * dt.map_or(0.0, |d| d.0));
    m.set(cols.temp, s.temp);
    m.set(cols.pe, s.pe);
    m.set(cols.ke, s.ke);
    m.set(cols.etotal, s.etotal);
    m.set(cols.press, s.press);
}

/// The `dump` plugin: `traj.xyz` (extended XYZ, readable by OVITO and ASE)
/// every `every` steps, positions wrapped into the box.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Dump {
    /// Write a frame every this many steps (and at step 0).
    pub every: u64,
}

#[derive(Resource, Debug, Clone, Copy)]
struct DumpFile {
    file: Option<FileId>,
    every: u64,
}

impl PluginConfig for Dump {
    const NAME: &'static str = "dump";
    const SUMMARY: &'static str = "MD trajectory frames to traj.xyz (extended XYZ)";

    fn validate(&self) -> Result<(), Invalid> {
        if self.every == 0 {
            return Err(Invalid::new("every", "must be at least 1"));
        }
        Ok(())
    }
}

impl Plugin for Dump {
    fn build(&self, b: &mut Builder) -> Result<(), BuildError> {
        let file = b.output_file("traj.xyz")?;
        b.insert_resource(DumpFile {
            file,
            every: self.every,
        });
        b.add_systems(Phase::Output, dump);
        Ok(())
    }

    fn requires(&self) -> &'static [&'static str] {
        &["atoms"]
    }
}

#[allow(clippy::too_many_arguments)]
fn dump(
    q: Query<(&Position, &Velocity, Option<&AtomType>)>,
    species: Res<Species>,
    bx: Res<SimBox>,
    dt: Option<Res<TimeStep>>,
    clock: Res<Clock>,
    d: Res<DumpFile>,
    mut files: ResMut<OutputFiles>,
) {
    let Some(id) = d.file else { return };
    if !clock.step.is_multiple_of(d.every) {
        return;
    }
    let len = bx.0.len;
    let time = clock.step as f64 * dt.map_or(0.0, |d| d.0);
    let n = q.iter().len();
    files.write(id, |w| {
        writeln!(w, "{n}")?;
        writeln!(
            w,
            "Lattice=\"{} 0 0 0 {} 0 0 0 {}\" Properties=species:S:1:pos:R:3:vel:R:3 Time={time} Step={} pbc=\"T T T\"",
            len[0], len[1], len[2], clock.step
        )?;
        for (p, v, t) in q.iter() {
            let x = bx.0.wrap(p.0.to_array());
            let name = &species.names[t.map_or(0, |t| t.0 as usize)];
            writeln!(w, "{name} {} {} {} {} {} {}", x[0], x[1], x[2], v.0.x, v.0.y, v.0.z)?;
        }
        Ok(())
    });
}
