//! The `microcosm` CLI with one more plugin, registered here, outside the
//! engine and the bundled sims:
//!
//! ```text
//! cargo run --release --example damping -- run examples/damping/damping.toml
//! ```

mod plugin;

use microcosm_engine::alloc::CountingAlloc;
use microcosm_engine::cli;

#[global_allocator]
static ALLOC: CountingAlloc = CountingAlloc;

fn main() {
    let mut registry = microcosm_sims::registry();
    registry.register::<plugin::Damping>();
    let bundled = cli::Bundled {
        assets: microcosm::assets_dir(),
        default_scenario: "demo/brownian".into(),
        default_steps: None,
        report: Some(|dir| microcosm_report::write(dir).map_err(|e| e.to_string())),
    };
    std::process::exit(cli::main(&registry, &bundled));
}
