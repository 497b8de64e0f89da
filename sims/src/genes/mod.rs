//! Populations of individuals with continuous gene-expression genomes
//! (a happygene-compatible model that also evolves).
//!
//! Each individual is an entity (with its [`Fitness`]); its genome is row
//! `i` of the population's N×G matrix of levels (f32, ≥ 0), where `i` is the
//! individual's row in its table. The matrix is one contiguous block, plus a
//! second block the offspring are written into; the two swap every
//! generation, so nothing is allocated per generation. (A runtime-sized
//! component per individual would store the same bytes contiguously in bevy's
//! table, but reading it needs raw pointers; a dense resource indexed by row
//! is safe and measured to cost the same 4 B per gene per buffer.)
//!
//! One generation, in pipeline phases:
//!
//! | phase | plugin | what |
//! |---|---|---|
//! | interact | `expression` | levels ← model(tf, previous levels, network) |
//! | interact | `fitness` | fitness of each individual from its levels |
//! | evolve | `selection` | parents drawn by fitness; offspring (clones or crossovers) into the second buffer; swap |
//! | evolve | `mutation` | point mutations at geometric gaps, clamped at 0 |
//! | measure | `gene_stats` | `generation,mean_fitness,var_fitness,max_fitness,mean_expression,var_expression,mutations`; optional `genes.csv` |
//!
//! The setup pass (generation 0) evaluates the initial population.

pub mod evolve;
pub mod expression;
pub mod fitness;
pub mod network;
pub mod population;
pub mod stats;

use bevy_ecs::prelude::*;
use microcosm_engine::Footprint;

/// An individual's fitness (the entity's only component).
#[derive(Component, Debug, Clone, Copy, PartialEq, Default, bytemuck::Pod, bytemuck::Zeroable)]
#[repr(transparent)]
pub struct Fitness(pub f64);

/// The population's genomes: N×G levels, row-major, and the offspring buffer.
#[derive(Resource, Debug, Clone)]
pub struct Genomes {
    /// Individuals.
    pub n: usize,
    /// Genes per individual.
    pub g: usize,
    /// Current levels (row `i` = individual `i`).
    pub cur: Vec<f32>,
    /// Offspring levels (written by selection, then swapped with `cur`).
    pub next: Vec<f32>,
}

impl Genomes {
    /// Individual `i`'s levels.
    pub fn row(&self, i: usize) -> &[f32] {
        &self.cur[i * self.g..(i + 1) * self.g]
    }
}

/// State: the current levels (`next` is overwritten before it is read).
impl microcosm_engine::checkpoint::State for Genomes {
    fn save(&self, e: &mut microcosm_engine::checkpoint::Encoder) -> std::io::Result<()> {
        e.slice(&self.cur)
    }

    fn load(
        &mut self,
        d: &mut microcosm_engine::checkpoint::Decoder,
    ) -> Result<(), microcosm_engine::checkpoint::Corrupt> {
        d.slice_into(&mut self.cur)
    }
}

impl Footprint for Genomes {
    fn heap_bytes(&self) -> usize {
        self.cur.heap_bytes() + self.next.heap_bytes()
    }
}

/// Per-generation figures shared between the plugins (a resource).
#[derive(Resource, Debug, Clone, Copy, Default, PartialEq)]
pub struct GenerationStats {
    /// Mean of all levels the fitness saw.
    pub mean_expression: f64,
    /// Variance of all levels.
    pub var_expression: f64,
    /// Mutations made this generation.
    pub mutations: u64,
}

/// G, from the `population` plugin (which must come first).
pub(crate) fn genes_per_individual(
    b: &microcosm_engine::Builder,
) -> Result<usize, microcosm_engine::BuildError> {
    b.world()
        .get_resource::<Genomes>()
        .map(|x| x.g)
        .ok_or_else(|| b.error("needs the `population` plugin before it"))
}

/// Individuals per rayon task: fixed, so work splits never depend on threads.
pub(crate) const ROWS: usize = 64;

/// Registers the gene-population plugins.
pub fn register(r: &mut microcosm_engine::Registry) {
    r.register::<population::Population>();
    r.register::<expression::Expression>();
    r.register::<fitness::FitnessModel>();
    r.register::<evolve::Selection>();
    r.register::<evolve::Mutation>();
    r.register::<stats::GeneStats>();
}
