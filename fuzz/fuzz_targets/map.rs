//! Fuzzes the ASCII map parser (`sims::agents::world::Map::parse`) and, when
//! it accepts, the generative model built from the map (`Model::new`), with
//! the invariants `tests/parsers.rs` checks.
#![no_main]

use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;
use microcosm_sims::agents::world::{Map, Model};

#[derive(Arbitrary, Debug)]
struct Input<'a> {
    /// Extra goal states (validated by `Model::new`).
    goals: [Option<u32>; 3],
    /// `p_true` = max(p / 65535, 1e-3), in (0, 1] as the scenario requires.
    p: u16,
    /// The map text (the rest of the input).
    text: &'a str,
}

fuzz_target!(|input: Input<'_>| {
    let Ok(map) = Map::parse(input.text) else {
        return;
    };
    assert!(map.free.iter().any(|&f| f));
    assert_eq!(map.free.len(), (map.width * map.height) as usize);
    let goals: Vec<u32> = input.goals.iter().flatten().copied().collect();
    let p = (f64::from(input.p) / 65535.0).max(1e-3);
    if let Ok(m) = Model::new(&map, &goals, p, 4.0) {
        for s in 0..m.states {
            let o = m.sample_obs(s, 0.999_999);
            assert!((o as usize) < m.states);
        }
    }
});
