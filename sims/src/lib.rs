//! # microcosm-sims
//!
//! The bundled simulations, each a set of plugins registered in [`registry`]:
//!
//! * [`brownian`] — overdamped Brownian particles in a periodic box, the
//!   default demo (its mean-square displacement has the exact answer 6·D·t);
//! * `md`, `genes`, `agents` — Lennard-Jones molecular dynamics, gene
//!   populations and active-inference agents (issues #3, #4, #5; not yet here).

pub mod brownian;

use microcosm_engine::Registry;

/// Every bundled plugin, by name.
pub fn registry() -> Registry {
    let mut r = Registry::default();
    r.register::<brownian::Brownian>();
    r.register::<brownian::Msd>();
    r
}
