//! Same scenario and seed: bitwise-identical outputs with 1 and 2 threads.

mod common;

use microcosm::engine::bevy_ecs::prelude::*;
use microcosm::sims::brownian::{Displacement, Position};

const SCENARIO: &str = r#"
[run]
steps = 50
seed = 9
sample_every = 5
[plugins.brownian]
particles = 30000
box_length = 20.0
dt = 0.01
[plugins.msd]
"#;

/// FNV-1a over the bits of every particle's state, in entity order.
fn state_hash(world: &mut World) -> u64 {
    let mut q = world.query::<(Entity, &Position, &Displacement)>();
    let mut rows: Vec<_> = q
        .iter(world)
        .map(|(e, p, d)| (e.index().index(), p.0.to_array(), d.0.to_array()))
        .collect();
    rows.sort_by_key(|r| r.0);
    let mut h = 0xcbf2_9ce4_8422_2325u64;
    for (i, p, d) in rows {
        for w in [i]
            .into_iter()
            .chain(p.iter().chain(&d).map(|x| x.to_bits()))
        {
            h = (h ^ w as u64).wrapping_mul(0x100_0000_01b3);
        }
    }
    h
}

#[test]
fn one_and_two_threads_give_bitwise_identical_outputs() {
    let registry = microcosm::sims::registry();
    let mut outs = Vec::new();
    for threads in [1, 2] {
        let dir = common::temp_dir(&format!("det-{threads}"));
        let mut sim = common::sim(SCENARIO, &registry, threads, Some(dir.clone()));
        assert_eq!(sim.threads(), threads);
        sim.run(|_, _| {});
        let hash = state_hash(sim.world_mut());
        sim.finish().unwrap();
        let csv = std::fs::read(dir.join("metrics.csv")).unwrap();
        outs.push((csv, hash));
    }
    assert_eq!(outs[0].1, outs[1].1, "final state differs");
    assert_eq!(outs[0].0, outs[1].0, "metrics.csv differs");
    let text = String::from_utf8(outs[0].0.clone()).unwrap();
    assert_eq!(text.lines().count(), 1 + 11, "header + steps 0, 5, ..., 50");
    // A different seed gives a different trajectory (the test can fail).
    let mut sim = common::sim(
        &SCENARIO.replace("seed = 9", "seed = 10"),
        &registry,
        2,
        None,
    );
    sim.run(|_, _| {});
    assert_ne!(state_hash(sim.world_mut()), outs[0].1);
}
