//! microcosm: the CLI package. It re-exports the engine and the bundled sims
//! and says where the bundled scenarios are.

pub use microcosm_engine as engine;
pub use microcosm_report as report;
pub use microcosm_sims as sims;

/// The bundled `assets/` directory: `$MICROCOSM_ASSETS` if set, else the one
/// in this source tree.
pub fn assets_dir() -> std::path::PathBuf {
    std::env::var_os("MICROCOSM_ASSETS")
        .map(Into::into)
        .unwrap_or_else(|| concat!(env!("CARGO_MANIFEST_DIR"), "/assets").into())
}
