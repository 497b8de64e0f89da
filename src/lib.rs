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

/// A bundled scenario by name (`md/lj-liquid`), with `--set` overrides.
pub fn bundled_scenario<S: AsRef<str>>(
    name: &str,
    set: &[S],
) -> Result<engine::Scenario, engine::ScenarioError> {
    let file = assets_dir().join(format!("{name}.toml"));
    let set: Vec<String> = set.iter().map(|s| s.as_ref().to_string()).collect();
    engine::Scenario::load(&file, name, &set)
}

/// A sim of a bundled scenario with the bundled plugins (benches, tests).
pub fn bundled_sim<S: AsRef<str>>(
    name: &str,
    set: &[S],
    opts: engine::RunOptions,
) -> Result<engine::Sim, engine::SimError> {
    engine::Sim::new(bundled_scenario(name, set)?, &sims::registry(), opts)
}
