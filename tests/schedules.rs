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
                ..Default::default()
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

/// Two systems writing `Counter` (+1 then ×2), ordered only if `chain`.
#[derive(serde::Deserialize)]
struct Writers {
    chain: bool,
}

impl Plugin for Writers {
    fn build(&self, b: &mut Builder) -> Result<(), BuildError> {
        b.insert_resource(Counter::default());
        let add = |mut c: ResMut<Counter>| c.0 += 1;
        let double = |mut c: ResMut<Counter>| c.0 *= 2;
        if self.chain {
            b.add_systems(Phase::Evolve, (add, double).chain());
        } else {
            b.add_systems(Phase::Evolve, (add, double));
        }
        Ok(())
    }
}

impl PluginConfig for Writers {
    const NAME: &'static str = "writers";
    const SUMMARY: &'static str = "two writers of one resource";
}

#[test]
fn unordered_conflicting_systems_are_refused() {
    let mut r = Registry::default();
    r.register::<Writers>();
    let build = |chain: bool| {
        let text = format!("[run]\nsteps = 1\n[plugins.writers]\nchain = {chain}\n");
        let s = Scenario::parse(&text, "t", "t.toml".as_ref(), ".".as_ref(), &[]).unwrap();
        Sim::new(s, &r, RunOptions::default())
    };
    let Err(e) = build(false) else {
        panic!("accepted an ambiguous schedule")
    };
    assert!(matches!(e, SimError::Schedule(_)), "{e}");
    assert!(e.to_string().contains("Counter"), "{e}");
    // The same systems chained are accepted, and run in order: (0 + 1) × 2.
    let mut sim = build(true).unwrap_or_else(|e| panic!("{e}"));
    sim.run(|_, _| {});
    assert_eq!(sim.world().resource::<Counter>().0, 2);
}
