//! Overdamped Brownian particles in a periodic cubic box (the default demo).
//!
//! Each step every particle moves by `sqrt(2·D·dt)·ξ`, ξ a standard normal
//! 3-vector drawn from the particle's own random stream (seed, "brownian",
//! step, particle number), so trajectories do not depend on the thread count.
//! The particle number is its row in the particles' table: particles are
//! spawned once in order and never despawned, so rows are stable, and unlike
//! bevy entity indices they do not shift when another plugin adds a resource.
//! Positions are wrapped into the box; the unwrapped displacement is kept in
//! its own component so the `msd` plugin can report the mean-square
//! displacement, whose expectation is exactly `6·D·t`.
//!
//! Components per particle: `Position` (12 B), `Displacement` (12 B).

use glam::Vec3;
use microcosm_engine::par;
use microcosm_engine::prelude::*;
use rayon::prelude::*;
use serde::Deserialize;

/// Wrapped position in the box, in [0, box_length)³.
#[derive(Component, Debug, Clone, Copy, PartialEq, bytemuck::Pod, bytemuck::Zeroable)]
#[repr(transparent)]
pub struct Position(pub Vec3);

/// Unwrapped displacement since step 0.
#[derive(Component, Debug, Clone, Copy, PartialEq, Default, bytemuck::Pod, bytemuck::Zeroable)]
#[repr(transparent)]
pub struct Displacement(pub Vec3);

/// The box and the diffusion parameters (a resource).
#[derive(Resource, Debug, Clone, Copy)]
pub struct BrownianParams {
    /// Box edge.
    pub box_length: f32,
    /// Diffusion coefficient.
    pub diffusion: f32,
    /// Time step.
    pub dt: f64,
}

/// The `brownian` plugin: spawns particles and moves them.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Brownian {
    /// Number of particles.
    pub particles: u32,
    /// Box edge length.
    #[serde(default = "default_box")]
    pub box_length: f32,
    /// Diffusion coefficient D.
    #[serde(default = "one")]
    pub diffusion: f32,
    /// Time step.
    #[serde(default = "default_dt")]
    pub dt: f64,
}

fn default_box() -> f32 {
    10.0
}
fn one() -> f32 {
    1.0
}
fn default_dt() -> f64 {
    0.001
}

const MOVE: StreamId = StreamId::named("brownian/move");
const PLACE: StreamId = StreamId::named("brownian/place");
/// Particles per rayon task: fixed, so the work split never depends on threads.
const CHUNK: usize = 2048;

impl PluginConfig for Brownian {
    const NAME: &'static str = "brownian";
    const SUMMARY: &'static str = "overdamped Brownian particles in a periodic box";

    fn validate(&self) -> Result<(), Invalid> {
        if self.particles == 0 {
            return Err(Invalid::new("particles", "must be at least 1"));
        }
        for (k, v) in [
            ("box_length", self.box_length as f64),
            ("diffusion", self.diffusion as f64),
            ("dt", self.dt),
        ] {
            if !(v.is_finite() && v > 0.0) {
                return Err(Invalid::new(k, "must be a positive number"));
            }
        }
        Ok(())
    }
}

impl Plugin for Brownian {
    fn build(&self, b: &mut Builder) -> Result<(), BuildError> {
        let seed = b.seed();
        let l = self.box_length;
        b.insert_resource(BrownianParams {
            box_length: l,
            diffusion: self.diffusion,
            dt: self.dt,
        });
        b.checkpoint_component::<Position>();
        b.checkpoint_component::<Displacement>();
        b.spawn_batch((0..self.particles).map(move |i| {
            let mut r = Rng::new(seed, PLACE, 0, i as u64);
            let p = Vec3::new(r.uniform() as f32, r.uniform() as f32, r.uniform() as f32) * l;
            (Position(p), Displacement::default())
        }));
        b.add_systems(Phase::Evolve, diffuse);
        Ok(())
    }

    fn estimate(&self, _s: &Scenario, e: &mut Estimate) {
        e.entities(
            "particles",
            self.particles as u64,
            &[size_of::<Position>(), size_of::<Displacement>()],
        );
    }
}

/// Moves every particle by one Brownian step (evolve phase).
pub fn diffuse(
    mut q: Query<(&mut Position, &mut Displacement)>,
    params: Res<BrownianParams>,
    clock: Res<Clock>,
) {
    let p = *params;
    let sigma = (2.0 * p.diffusion as f64 * p.dt).sqrt();
    let (seed, step) = (clock.seed, clock.step);
    let Ok(iter) = q.contiguous_iter_mut() else {
        return;
    };
    // One table (all particles carry the same components); rows number them.
    for (mut pos, mut disp) in iter {
        let pos = pos.bypass_change_detection();
        let disp = disp.bypass_change_detection();
        pos.par_chunks_mut(CHUNK)
            .zip(disp.par_chunks_mut(CHUNK))
            .enumerate()
            .for_each(|(c, (pos, disp))| {
                for (i, (x, d)) in pos.iter_mut().zip(disp.iter_mut()).enumerate() {
                    let row = (c * CHUNK + i) as u64;
                    let mut r = Rng::new(seed, MOVE, step, row);
                    let dx = Vec3::new(r.normal() as f32, r.normal() as f32, r.normal() as f32)
                        * sigma as f32;
                    d.0 += dx;
                    x.0 = (x.0 + dx).rem_euclid(Vec3::splat(p.box_length));
                }
            });
    }
}

/// The `msd` plugin: mean-square displacement (and time) in metrics.csv.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Msd {}

/// Column indices of the `msd` plugin.
#[derive(Resource, Debug, Clone, Copy)]
struct MsdColumns {
    time: usize,
    msd: usize,
}

impl PluginConfig for Msd {
    const NAME: &'static str = "msd";
    const SUMMARY: &'static str = "mean-square displacement of Brownian particles";
}

impl Plugin for Msd {
    fn build(&self, b: &mut Builder) -> Result<(), BuildError> {
        let cols = MsdColumns {
            time: b.metric("time"),
            msd: b.metric("msd"),
        };
        b.insert_resource(cols);
        b.add_systems(Phase::Measure, measure_msd.run_if(sample_step));
        Ok(())
    }

    fn requires(&self) -> &'static [&'static str] {
        &["brownian"]
    }
}

/// Mean-square displacement by a fixed-order parallel sum (measure phase).
fn measure_msd(
    q: Query<&Displacement>,
    scratch: Res<ScratchArenas>,
    params: Res<BrownianParams>,
    cols: Res<MsdColumns>,
    clock: Res<Clock>,
    mut metrics: ResMut<Metrics>,
) {
    let (mut sum, mut n) = (0.0, 0usize);
    if let Ok(iter) = q.contiguous_iter() {
        for d in iter {
            sum += par::sum(&scratch, d, |_, d| d.0.as_dvec3().length_squared());
            n += d.len();
        }
    }
    metrics.set(cols.time, clock.step as f64 * params.dt);
    metrics.set(cols.msd, if n > 0 { sum / n as f64 } else { 0.0 });
}
