//! Every bundled scenario builds a schedule with ambiguity detection on (as
//! errors) and has no unordered conflicting systems; a plugin that adds two
//! conflicting systems without an order is refused.

mod common;

use microcosm::engine::prelude::*;
use microcosm::engine::{RunOptions, Scenario, Sim, SimError, cli};

#[test]
fn every_bundled_scenario_builds_without_ambiguities() {
    let assets = microcosm::assets_dir();
    let scenarios = cli::bundled_scenarios(&assets);
    assert!(!scenarios.is_empty());
    let registry = microcosm::sims::registry();
    for (name, _) in scenarios {
        let file = assets.join(format!("{name}.toml"));
        // Small and short: this checks the schedule, not the physics.
        let s = Scenario::load(&file, &name, &["run.steps=2".into()]).unwrap();
        let sim = Sim::new(
            s,
            &registry,
            RunOptions {
                threads: 1,
                out: None,
            },
        )
        .unwrap_or_else(|e| panic!("{name}: {e}"));
        let conflicts = &sim.schedule().graph().conflicting_systems().0;
        assert!(
            conflicts.is_empty(),
            "{name}: {} conflicts",
            conflicts.len()
        );
        assert!(
            sim.schedule().systems_len() >= 9,
            "{name}: engine + plugin systems"
        );
    }
}

#[derive(Resource, Default)]
struct Counter(u64);

#[derive(serde::Deserialize)]
struct Racy {}

impl Plugin for Racy {
    fn build(&self, b: &mut Builder) -> Result<(), BuildError> {
        b.insert_resource(Counter::default());
        b.add_systems(
            Phase::Evolve,
            (
                |mut c: ResMut<Counter>| c.0 += 1,
                |mut c: ResMut<Counter>| c.0 *= 2,
            ),
        );
        Ok(())
    }
}

impl PluginConfig for Racy {
    const NAME: &'static str = "racy";
    const SUMMARY: &'static str = "two unordered writers";
}

#[test]
fn unordered_conflicting_systems_are_refused() {
    let mut r = Registry::default();
    r.register::<Racy>();
    let text = "[run]\nsteps = 1\n[plugins.racy]\n";
    let s = Scenario::parse(text, "t", "t.toml".as_ref(), ".".as_ref(), &[]).unwrap();
    let Err(e) = Sim::new(s, &r, RunOptions::default()) else {
        panic!("accepted an ambiguous schedule")
    };
    assert!(matches!(e, SimError::Schedule(_)), "{e}");
    assert!(e.to_string().contains("Counter"), "{e}");
    // The same systems chained are accepted, and run in order: (0 + 1) × 2.
    let mut sim = Sim::new(
        Scenario::parse(text, "t", "t.toml".as_ref(), ".".as_ref(), &[]).unwrap(),
        &{
            let mut r = Registry::default();
            r.register::<Chained>();
            r
        },
        RunOptions::default(),
    )
    .unwrap_or_else(|e| panic!("{e}"));
    sim.run(|_, _| {});
    assert_eq!(sim.world().resource::<Counter>().0, 2);
}

#[derive(serde::Deserialize)]
struct Chained {}

impl Plugin for Chained {
    fn build(&self, b: &mut Builder) -> Result<(), BuildError> {
        b.insert_resource(Counter::default());
        b.add_systems(
            Phase::Evolve,
            (
                |mut c: ResMut<Counter>| c.0 += 1,
                |mut c: ResMut<Counter>| c.0 *= 2,
            )
                .chain(),
        );
        Ok(())
    }
}

impl PluginConfig for Chained {
    const NAME: &'static str = "racy";
    const SUMMARY: &'static str = "two ordered writers";
}
