//! # microcosm-sims
//!
//! The bundled simulations, each a set of plugins registered in [`registry`]:
//!
//! * [`brownian`] — overdamped Brownian particles in a periodic box, the
//!   default demo (its mean-square displacement has the exact answer 6·D·t);
//! * [`md`] — Lennard-Jones molecular dynamics;
//! * [`genes`] — populations of gene-expression genomes under selection;
//! * [`agents`] — active-inference agents in a shared grid world.

pub mod agents;
pub mod brownian;
mod csv;
pub mod genes;
pub mod md;

use microcosm_engine::Registry;

/// Every bundled plugin, by name.
pub fn registry() -> Registry {
    let mut r = Registry::default();
    r.register::<brownian::Brownian>();
    r.register::<brownian::Msd>();
    md::register(&mut r);
    genes::register(&mut r);
    agents::register(&mut r);
    r
}
