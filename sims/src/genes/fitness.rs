//! The `fitness` plugin: each individual's fitness from its levels e (G genes).
//!
//! | model | fitness |
//! |---|---|
//! | `proportional` | mean(e) (happygene's `ProportionalSelection`) |
//! | `threshold { threshold }` | 1 if mean(e) ≥ threshold else 0 (happygene's `ThresholdSelection`) |
//! | `epistatic { interactions }` | mean(e) + eᵀ·M·e / G |
//! | `multi_objective { weights }` | Σ w_g·e_g / Σ w_g |
//! | `stabilizing { theta, sigma }` | exp(−Σ_g (e_g − θ_g)² / (2σ²)) |
//!
//! The same pass sums the levels and their squares (f64, fixed chunk order)
//! for the generation's expression mean and variance.

use microcosm_engine::prelude::*;
use rayon::prelude::*;
use serde::Deserialize;

use super::network::{MatrixSpec, Sparse};
use super::{Fitness, GenerationStats, Genomes, ROWS};

/// A per-gene value: one number for every gene, or one per gene.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum PerGene {
    /// The same for every gene.
    All(f64),
    /// One per gene.
    Each(Vec<f64>),
}

impl PerGene {
    fn expand(&self, g: usize) -> Option<Vec<f64>> {
        match self {
            PerGene::All(v) => Some(vec![*v; g]),
            PerGene::Each(v) if v.len() == g => Some(v.clone()),
            PerGene::Each(_) => None,
        }
    }

    fn finite(&self) -> bool {
        match self {
            PerGene::All(v) => v.is_finite(),
            PerGene::Each(v) => v.iter().all(|x| x.is_finite()),
        }
    }
}

/// A fitness model.
#[derive(Debug, Clone, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum Model {
    /// Mean level.
    Proportional,
    /// 1 if the mean level reaches the threshold, else 0.
    Threshold {
        /// The threshold.
        threshold: f64,
    },
    /// Mean + eᵀMe/G.
    Epistatic {
        /// M.
        interactions: MatrixSpec,
    },
    /// Weighted mean.
    MultiObjective {
        /// Weights (one per gene, or one for all).
        weights: PerGene,
    },
    /// Gaussian stabilizing selection toward θ.
    Stabilizing {
        /// Target profile θ.
        theta: PerGene,
        /// Width σ.
        sigma: f64,
    },
}

/// The `fitness` plugin.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FitnessModel {
    /// The model.
    pub model: Model,
}

impl PluginConfig for FitnessModel {
    const NAME: &'static str = "fitness";
    const SUMMARY: &'static str =
        "genes: fitness models (proportional, threshold, epistatic, multi_objective, stabilizing)";

    fn validate(&self) -> Result<(), Invalid> {
        match &self.model {
            Model::Proportional => Ok(()),
            Model::Threshold { threshold } if !threshold.is_finite() => {
                Err(Invalid::new("model.threshold", "must be a finite number"))
            }
            Model::Threshold { .. } => Ok(()),
            Model::Epistatic { interactions } => interactions.validate("model.interactions"),
            Model::MultiObjective { weights } if !weights.finite() => {
                Err(Invalid::new("model.weights", "must be finite numbers"))
            }
            Model::MultiObjective { .. } => Ok(()),
            Model::Stabilizing { theta, sigma } => {
                if !theta.finite() {
                    return Err(Invalid::new("model.theta", "must be finite numbers"));
                }
                if !(sigma.is_finite() && *sigma > 0.0) {
                    return Err(Invalid::new("model.sigma", "must be a positive number"));
                }
                Ok(())
            }
        }
    }
}

/// The compiled model (a resource).
#[derive(Resource, Debug, Clone)]
pub enum Compiled {
    /// Mean.
    Proportional,
    /// Threshold on the mean.
    Threshold(f64),
    /// Mean + eᵀMe/G.
    Epistatic(Sparse),
    /// Σ w e / Σ w.
    MultiObjective(Vec<f32>, f64),
    /// exp(−Σ (e−θ)²/(2σ²)).
    Stabilizing(Vec<f32>, f64),
}

impl Footprint for Compiled {
    fn heap_bytes(&self) -> usize {
        match self {
            Compiled::Epistatic(m) => m.heap_bytes(),
            Compiled::MultiObjective(v, _) | Compiled::Stabilizing(v, _) => v.heap_bytes(),
            _ => 0,
        }
    }
}

/// Lanes of the per-row sums: independent accumulators the compiler keeps in
/// vector registers (a single running sum would be a sequential chain).
const L: usize = 16;

/// Σ f(x_i, y_i) over a row with `L` lane accumulators, folded in lane order.
#[inline(always)]
fn lane_sum(x: &[f32], y: &[f32], f: impl Fn(f32, f32) -> f32) -> f32 {
    let mut acc = [0.0f32; L];
    let (xc, yc) = (x.chunks_exact(L), y.chunks_exact(L));
    let (xr, yr) = (xc.remainder(), yc.remainder());
    for (a, b) in xc.zip(yc) {
        for l in 0..L {
            acc[l] += f(a[l], b[l]);
        }
    }
    for (l, (&a, &b)) in xr.iter().zip(yr).enumerate() {
        acc[l] += f(a, b);
    }
    acc.iter().sum()
}

impl Compiled {
    /// Fitness of one row of levels.
    #[inline]
    pub fn eval(&self, e: &[f32]) -> f64 {
        self.eval_with_sum(e, lane_sum(e, e, |x, _| x))
    }

    /// Fitness of one row whose level sum is `sum` (from [`row_sums`]).
    #[inline]
    pub fn eval_with_sum(&self, e: &[f32], sum: f32) -> f64 {
        let g = e.len() as f64;
        let mean = || sum as f64 / g;
        match self {
            Compiled::Proportional => mean(),
            Compiled::Threshold(t) => {
                if mean() >= *t {
                    1.0
                } else {
                    0.0
                }
            }
            Compiled::Epistatic(m) => mean() + m.quad(e) / g,
            Compiled::MultiObjective(w, wsum) => lane_sum(e, w, |x, w| x * w) as f64 / wsum,
            Compiled::Stabilizing(theta, inv2s2) => {
                let d2 = lane_sum(e, theta, |x, t| (x - t) * (x - t));
                (-(d2 as f64) * inv2s2).exp()
            }
        }
    }
}

/// Σ x and Σ x² of a row (lane accumulators).
#[inline]
pub fn row_sums(e: &[f32]) -> (f32, f32) {
    (lane_sum(e, e, |x, _| x), lane_sum(e, e, |x, _| x * x))
}

const EPISTASIS: StreamId = StreamId::named("genes/epistasis");

impl Plugin for FitnessModel {
    fn build(&self, b: &mut Builder) -> Result<(), BuildError> {
        let g = super::genes_per_individual(b)?;
        let per_gene = |v: &PerGene, key: &str| {
            v.expand(g)
                .ok_or_else(|| b.key_error(key, format!("needs one number or {g} (one per gene)")))
        };
        let compiled = match &self.model {
            Model::Proportional => Compiled::Proportional,
            Model::Threshold { threshold } => Compiled::Threshold(*threshold),
            Model::Epistatic { interactions } => {
                Compiled::Epistatic(interactions.load(g, b, "model.interactions", EPISTASIS)?)
            }
            Model::MultiObjective { weights } => {
                let w = per_gene(weights, "model.weights")?;
                let sum: f64 = w.iter().sum();
                if sum == 0.0 {
                    return Err(b.key_error("model.weights", "must not sum to 0"));
                }
                Compiled::MultiObjective(w.iter().map(|&x| x as f32).collect(), sum)
            }
            Model::Stabilizing { theta, sigma } => {
                let t = per_gene(theta, "model.theta")?;
                Compiled::Stabilizing(
                    t.iter().map(|&x| x as f32).collect(),
                    1.0 / (2.0 * sigma * sigma),
                )
            }
        };
        b.insert_resource_with_footprint(compiled);
        b.add_systems(Phase::Interact, evaluate);
        Ok(())
    }

    fn requires(&self) -> &'static [&'static str] {
        &["population"]
    }
}

/// Fitness of every individual, and the level sums (interact phase).
pub fn evaluate(
    mut q: Query<&mut Fitness>,
    genomes: Res<Genomes>,
    model: Res<Compiled>,
    scratch: Res<ScratchArenas>,
    mut stats: ResMut<GenerationStats>,
) {
    let g = genomes.g;
    let Ok(mut iter) = q.contiguous_iter_mut() else {
        return;
    };
    let Some(mut fit) = iter.next() else { return };
    let fit = fit.bypass_change_detection();
    let (sum, sum2) = scratch.with(|bump| {
        let chunks = fit.len().div_ceil(ROWS);
        let partial = bump.alloc_slice_fill_copy(chunks, (0.0f64, 0.0f64));
        fit.par_chunks_mut(ROWS)
            .zip(genomes.cur.par_chunks(ROWS * g))
            .zip(partial.par_iter_mut())
            .for_each(|((f, rows), p)| {
                for (fi, row) in f.iter_mut().zip(rows.chunks(g)) {
                    let (s, s2) = row_sums(row);
                    fi.0 = model.eval_with_sum(row, s);
                    p.0 += s as f64;
                    p.1 += s2 as f64;
                }
            });
        partial
            .iter()
            .fold((0.0, 0.0), |a, p| (a.0 + p.0, a.1 + p.1))
    });
    let n = (genomes.n * g) as f64;
    let mean = sum / n;
    stats.mean_expression = mean;
    stats.var_expression = (sum2 / n - mean * mean).max(0.0);
}
