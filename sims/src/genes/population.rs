//! The `population` plugin: N individuals × G genes, initial levels uniform.

use microcosm_engine::prelude::*;
use serde::Deserialize;

use super::{Fitness, GenerationStats, Genomes};

/// Initial levels: uniform in `[low, high)`.
#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Uniform {
    /// Lower bound (≥ 0).
    pub low: f64,
    /// Upper bound.
    pub high: f64,
}

/// The `population` plugin.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Population {
    /// Individuals N.
    pub individuals: u32,
    /// Genes per individual G.
    pub genes: u32,
    /// Initial levels.
    pub initial: Uniform,
}

const INIT: StreamId = StreamId::named("genes/init");

impl PluginConfig for Population {
    const NAME: &'static str = "population";
    const SUMMARY: &'static str = "genes: N individuals with G continuous expression levels";

    fn validate(&self) -> Result<(), Invalid> {
        if self.individuals == 0 {
            return Err(Invalid::new("individuals", "must be at least 1"));
        }
        if self.genes == 0 {
            return Err(Invalid::new("genes", "must be at least 1"));
        }
        let u = self.initial;
        if !(u.low.is_finite() && u.high.is_finite() && u.low >= 0.0 && u.high >= u.low) {
            return Err(Invalid::new("initial", "needs finite 0 ≤ low ≤ high"));
        }
        if (self.individuals as u64) * (self.genes as u64) > (1 << 34) {
            return Err(Invalid::new("individuals", "N × G is over 2³⁴ genes"));
        }
        Ok(())
    }
}

impl Plugin for Population {
    fn build(&self, b: &mut Builder) -> Result<(), BuildError> {
        let (n, g) = (self.individuals as usize, self.genes as usize);
        let seed = b.seed();
        let u = self.initial;
        let mut cur = Vec::with_capacity(n * g);
        for i in 0..n {
            let mut r = Rng::new(seed, INIT, 0, i as u64);
            cur.extend((0..g).map(|_| r.range(u.low, u.high) as f32));
        }
        b.insert_resource_with_footprint(Genomes {
            n,
            g,
            cur,
            next: vec![0.0; n * g],
        });
        b.insert_resource(GenerationStats::default());
        b.memory_unit("gene", (n * g) as u64);
        b.checkpoint_resource::<Genomes>();
        b.checkpoint_component::<Fitness>();
        b.spawn_batch((0..n).map(|_| Fitness(0.0)));
        Ok(())
    }

    fn estimate(&self, _s: &Scenario, e: &mut Estimate) {
        let (n, g) = (self.individuals as u64, self.genes as u64);
        e.entities("individuals", n, &[size_of::<Fitness>()]);
        e.bytes("genomes: 2 buffers × N × G × 4 B", 2 * n * g * 4);
    }
}
