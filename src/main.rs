//! The `microcosm` command line: bundled scenarios and plugins.

use microcosm_engine::alloc::CountingAlloc;
use microcosm_engine::cli;

#[global_allocator]
static ALLOC: CountingAlloc = CountingAlloc;

fn main() {
    let bundled = cli::Bundled {
        assets: microcosm::assets_dir(),
        default_scenario: "md/lj-liquid".into(),
        default_steps: None,
        report: Some(|dir| microcosm_report::write(dir).map_err(|e| e.to_string())),
    };
    std::process::exit(cli::main(&microcosm_sims::registry(), &bundled));
}
