//! A plugin written outside the engine and the bundled sims: bodies whose
//! velocity decays under a linear damping force, `dv/dt = -γ·v`.
//!
//! Integrated exactly each step, `v ← v·exp(-γ·dt)`, so after `n` steps every
//! body's velocity is `v0·exp(-γ·dt)ⁿ`: the metrics column `mean_speed` has a
//! hand-computable answer.

use microcosm_engine::par;
use microcosm_engine::prelude::*;
use serde::Deserialize;

/// A body's velocity (the toy component; plain data, so checkpoints can copy it).
#[derive(Component, Debug, Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
#[repr(transparent)]
pub struct Velocity(pub [f64; 3]);

/// The `damping` plugin: its scenario table is `[plugins.damping]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Damping {
    /// Number of bodies.
    pub bodies: u32,
    /// Damping rate γ.
    pub gamma: f64,
    /// Time step.
    pub dt: f64,
    /// Initial speed (along x).
    #[serde(default = "one")]
    pub v0: f64,
}

fn one() -> f64 {
    1.0
}

/// Per-step decay factor and the metrics column (a resource).
#[derive(Resource, Debug, Clone, Copy)]
pub struct DampingState {
    /// exp(-γ·dt).
    pub factor: f64,
    /// metrics.csv column of the mean speed.
    pub column: usize,
}

impl PluginConfig for Damping {
    const NAME: &'static str = "damping";
    const SUMMARY: &'static str = "example: bodies slowed by a linear damping force";

    fn validate(&self) -> Result<(), Invalid> {
        if self.bodies == 0 {
            return Err(Invalid::new("bodies", "must be at least 1"));
        }
        if !(self.gamma.is_finite() && self.gamma >= 0.0) {
            return Err(Invalid::new("gamma", "must be a finite number ≥ 0"));
        }
        if !(self.dt.is_finite() && self.dt > 0.0) {
            return Err(Invalid::new("dt", "must be a positive number"));
        }
        Ok(())
    }
}

impl Plugin for Damping {
    fn build(&self, b: &mut Builder) -> Result<(), BuildError> {
        let column = b.metric("mean_speed");
        b.insert_resource(DampingState {
            factor: (-self.gamma * self.dt).exp(),
            column,
        });
        let v0 = self.v0;
        // The velocities carry over from step to step: checkpoints save them.
        b.checkpoint_component::<Velocity>();
        b.spawn_batch((0..self.bodies).map(move |_| Velocity([v0, 0.0, 0.0])));
        b.add_systems(Phase::Evolve, damp);
        b.add_systems(Phase::Measure, mean_speed.run_if(sample_step));
        Ok(())
    }

    fn estimate(&self, _s: &Scenario, e: &mut Estimate) {
        e.entities("bodies", self.bodies as u64, &[size_of::<Velocity>()]);
    }
}

fn damp(mut q: Query<&mut Velocity>, s: Res<DampingState>) {
    let Ok(iter) = q.contiguous_iter_mut() else {
        return;
    };
    for mut v in iter {
        for v in v.bypass_change_detection() {
            v.0.iter_mut().for_each(|c| *c *= s.factor);
        }
    }
}

fn mean_speed(
    q: Query<&Velocity>,
    s: Res<DampingState>,
    scratch: Res<ScratchArenas>,
    mut m: ResMut<Metrics>,
) {
    let (mut sum, mut n) = (0.0, 0);
    if let Ok(iter) = q.contiguous_iter() {
        for v in iter {
            sum += par::sum(&scratch, v, |_, v| {
                v.0.iter().map(|c| c * c).sum::<f64>().sqrt()
            });
            n += v.len();
        }
    }
    m.set(s.column, sum / n.max(1) as f64);
}
