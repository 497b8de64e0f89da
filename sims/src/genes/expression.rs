//! The `expression` plugin: each generation, every level is recomputed by the
//! expression model from the transcription-factor concentration `tf` (and,
//! for `composite`, from the previous levels through the regulatory network),
//! clamped at 0.
//!
//! | model | level |
//! |---|---|
//! | `inherited` | unchanged (only selection, crossover and mutation change it) |
//! | `constant { level }` | level |
//! | `linear { slope, intercept }` | slope·tf + intercept |
//! | `hill { v_max, k, n }` | v_max·tfⁿ / (kⁿ + tfⁿ) |
//! | `composite { base, regulation }` | t = A·E_old; `additive { weight }`: b + w·t, `multiplicative { weight }`: b·(1 + w·t), b = the base model's level |

use microcosm_engine::prelude::*;
use rayon::prelude::*;
use serde::Deserialize;

use super::network::{MatrixSpec, Sparse};
use super::{Genomes, ROWS};

/// An expression model.
#[derive(Debug, Clone, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum Model {
    /// Levels pass unchanged.
    Inherited,
    /// A constant level.
    Constant {
        /// The level.
        level: f64,
    },
    /// slope·tf + intercept.
    Linear {
        /// Slope.
        slope: f64,
        /// Intercept.
        intercept: f64,
    },
    /// v_max·tfⁿ/(kⁿ + tfⁿ).
    Hill {
        /// Maximum.
        v_max: f64,
        /// Half-saturation constant.
        k: f64,
        /// Hill coefficient.
        n: f64,
    },
    /// A base model regulated through the network.
    Composite {
        /// The base model (not composite).
        base: Box<Model>,
        /// How the network's input t = A·E_old acts on the base level.
        regulation: Regulation,
    },
}

/// How regulation acts on the base level b.
#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum Regulation {
    /// max(0, b + w·t).
    Additive {
        /// w.
        weight: f64,
    },
    /// max(0, b·(1 + w·t)).
    Multiplicative {
        /// w.
        weight: f64,
    },
}

impl Model {
    /// The level of a non-composite, non-inherited model at `tf`, clamped at 0.
    pub fn level(&self, tf: f64) -> Option<f64> {
        let v = match *self {
            Model::Constant { level } => level,
            Model::Linear { slope, intercept } => slope * tf + intercept,
            Model::Hill { v_max, k, n } => {
                let t = tf.powf(n);
                if t == 0.0 {
                    0.0
                } else {
                    v_max * t / (k.powf(n) + t)
                }
            }
            Model::Inherited | Model::Composite { .. } => return None,
        };
        Some(v.max(0.0))
    }

    fn validate(&self, key: &str) -> Result<(), Invalid> {
        let fin = |k: &str, v: f64| {
            if v.is_finite() {
                Ok(())
            } else {
                Err(Invalid::new(
                    format!("{key}.{k}"),
                    "must be a finite number",
                ))
            }
        };
        match self {
            Model::Inherited => Ok(()),
            Model::Constant { level } => fin("level", *level),
            Model::Linear { slope, intercept } => {
                fin("slope", *slope).and(fin("intercept", *intercept))
            }
            Model::Hill { v_max, k, n } => {
                fin("v_max", *v_max)?;
                if !(k.is_finite() && *k > 0.0) {
                    return Err(Invalid::new(
                        format!("{key}.k"),
                        "must be a positive number",
                    ));
                }
                if !(n.is_finite() && *n > 0.0) {
                    return Err(Invalid::new(
                        format!("{key}.n"),
                        "must be a positive number",
                    ));
                }
                Ok(())
            }
            Model::Composite { base, regulation } => {
                if matches!(**base, Model::Composite { .. }) {
                    return Err(Invalid::new(
                        format!("{key}.base"),
                        "cannot itself be composite",
                    ));
                }
                base.validate(&format!("{key}.base"))?;
                let (Regulation::Additive { weight } | Regulation::Multiplicative { weight }) =
                    regulation;
                fin("regulation.weight", *weight)
            }
        }
    }
}

/// The `expression` plugin.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Expression {
    /// Transcription-factor concentration.
    #[serde(default)]
    pub tf: f64,
    /// The model (all genes).
    pub model: Model,
    /// The regulatory network (for `composite`).
    pub network: Option<MatrixSpec>,
}

impl PluginConfig for Expression {
    const NAME: &'static str = "expression";
    const SUMMARY: &'static str =
        "genes: expression models (inherited, constant, linear, hill, composite + network)";

    fn validate(&self) -> Result<(), Invalid> {
        if !(self.tf.is_finite() && self.tf >= 0.0) {
            return Err(Invalid::new("tf", "must be a finite number ≥ 0"));
        }
        self.model.validate("model")?;
        match (&self.model, &self.network) {
            (Model::Composite { .. }, None) => {
                Err(Invalid::new("network", "a composite model needs a network"))
            }
            (Model::Composite { .. }, Some(n)) => n.validate("network"),
            (_, Some(_)) => Err(Invalid::new(
                "network",
                "only a composite model uses a network",
            )),
            _ => Ok(()),
        }
    }
}

/// What the expression system computes with (a resource).
#[derive(Resource, Debug, Clone)]
pub struct ExpressionState {
    /// The model.
    pub model: Model,
    /// tf.
    pub tf: f64,
    /// The network (empty unless composite).
    pub network: Sparse,
}

impl Footprint for ExpressionState {
    fn heap_bytes(&self) -> usize {
        self.network.heap_bytes()
    }
}

const NETWORK: StreamId = StreamId::named("genes/network");

impl Plugin for Expression {
    fn build(&self, b: &mut Builder) -> Result<(), BuildError> {
        let g = super::genes_per_individual(b)?;
        let network = match &self.network {
            Some(spec) => spec.load(g, b, "network", NETWORK)?,
            None => Sparse::default(),
        };
        b.insert_resource_with_footprint(ExpressionState {
            model: self.model.clone(),
            tf: self.tf,
            network,
        });
        if !matches!(self.model, Model::Inherited) {
            b.add_systems(Phase::Interact, express);
        }
        Ok(())
    }

    fn estimate(&self, s: &Scenario, e: &mut Estimate) {
        if let Some(MatrixSpec {
            density: Some(d), ..
        }) = &self.network
        {
            let g = s
                .plugins
                .iter()
                .find(|p| p.0 == "population")
                .and_then(|p| p.1.get("genes")?.as_integer())
                .unwrap_or(0) as f64;
            e.bytes(
                "regulatory network (8 B per entry)",
                (d * g * g * 8.0 + g * 4.0) as u64,
            );
        }
    }

    fn requires(&self) -> &'static [&'static str] {
        &["population"]
    }
}

/// Individuals per tile of the network product.
const LANES: usize = 16;

/// Recomputes every level (interact phase).
pub fn express(
    mut genomes: ResMut<Genomes>,
    state: Res<ExpressionState>,
    scratch: Res<ScratchArenas>,
) {
    let g = genomes.g;
    let st = &*state;
    let cur = &mut genomes.cur;
    match &st.model {
        Model::Inherited => {}
        Model::Composite { base, regulation } => {
            let b = base.level(st.tf).map(|b| b as f32);
            let reg = *regulation;
            scratch.reserve_per_task(2 * g * LANES * std::mem::size_of::<f32>());
            cur.par_chunks_mut(ROWS * g).for_each(|rows| {
                scratch.with(|bump| {
                    // Tiles of LANES individuals, gene-major, so each network
                    // entry is one LANES-wide multiply-add.
                    let x = bump.alloc_slice_fill_copy(g * LANES, 0.0f32);
                    let t = bump.alloc_slice_fill_copy(g * LANES, 0.0f32);
                    for tile in rows.chunks_mut(g * LANES) {
                        let m = tile.len() / g;
                        for (l, row) in tile.chunks_exact(g).enumerate() {
                            for (xv, &v) in x[l..].iter_mut().step_by(LANES).zip(row) {
                                *xv = v;
                            }
                        }
                        st.network.mul_lanes::<LANES>(x, t);
                        let (add, w) = match reg {
                            Regulation::Additive { weight } => (true, weight as f32),
                            Regulation::Multiplicative { weight } => (false, weight as f32),
                        };
                        for (l, row) in tile.chunks_mut(g).enumerate().take(m) {
                            for (i, out) in row.iter_mut().enumerate() {
                                let base = b.unwrap_or(x[i * LANES + l]);
                                let ti = t[i * LANES + l];
                                let v = if add {
                                    base + w * ti
                                } else {
                                    base * (1.0 + w * ti)
                                };
                                *out = v.max(0.0);
                            }
                        }
                    }
                });
            });
        }
        m => {
            let v = m.level(st.tf).unwrap_or(0.0) as f32;
            cur.par_chunks_mut(ROWS * g).for_each(|c| c.fill(v));
        }
    }
}
