//! Inputs that cannot crash the engine: property tests over every parser —
//! scenario TOML with `--set` overrides (and plugin validation), ASCII maps
//! (and the model built from them), replay traces, regulatory-network CSVs
//! and XYZ structures. Each must return `Ok` or an error message, never
//! panic, on any input: random bytes, and near-valid text from each format's
//! own alphabet (which reaches deeper than random bytes do).

use std::path::Path;

use microcosm::engine::Scenario;
use microcosm::sims::agents::replay::Trace;
use microcosm::sims::agents::world::{Map, Model};
use microcosm::sims::genes::network::Sparse;
use microcosm::sims::md::atoms::parse_xyz;
use proptest::prelude::*;

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn maps_never_panic(text in "[#.G\nx ]{0,120}", goals in proptest::collection::vec(0u32..200, 0..4), p in 0.0f64..=1.0) {
        if let Ok(map) = Map::parse(&text) {
            prop_assert!(map.free.iter().any(|&f| f));
            prop_assert_eq!(map.free.len(), (map.width * map.height) as usize);
            if let Ok(m) = Model::new(&map, &goals, p.max(1e-3), 4.0) {
                for s in 0..m.states {
                    let o = m.sample_obs(s, 0.999_999);
                    prop_assert!((o as usize) < m.states);
                }
            }
        }
    }

    #[test]
    fn maps_from_any_text_never_panic(text in "\\PC{0,200}") {
        let _ = Map::parse(&text);
    }

    #[test]
    fn traces_never_panic(text in "(agent,t,obs,action\n)?([0-9,\\-a ]{0,12}\n){0,12}", states in 1usize..50) {
        if let Ok(t) = Trace::parse(&text, states) {
            prop_assert!(t.records.iter().all(|r| (r.obs as usize) < states && r.action < 5));
            prop_assert!(t.records.iter().all(|r| (r.agent as usize) < t.ids.len()));
        }
    }

    #[test]
    fn traces_from_any_text_never_panic(text in "\\PC{0,200}", states in 1usize..50) {
        let _ = Trace::parse(&text, states);
    }

    #[test]
    fn network_csvs_never_panic(text in "(source,target,weight\n)?([0-9,.e\\-naif# ]{0,14}\n){0,10}", n in 1usize..20) {
        let _ = Sparse::from_csv(&text, n);
    }

    #[test]
    fn xyz_never_panics(text in "([0-9]{0,3}\n)?(Lattice=\"[0-9 .\\-]{0,30}\"[ a-z]{0,5}\n)?([A-Za-z]{0,2} [0-9 .\\-e]{0,20}\n){0,6}") {
        let _ = parse_xyz(&text);
    }

    #[test]
    fn xyz_from_any_text_never_panics(text in "\\PC{0,200}") {
        let _ = parse_xyz(&text);
    }

    #[test]
    fn scenarios_and_overrides_never_panic(
        text in "(\\[run\\]\n(steps|seed|sample_every|warmup_steps|memory_budget_mb) = [0-9.\\-e\"]{0,6}\n)?(\\[plugins\\.(agents|gridworld|lj|atoms|population|expression|brownian|nope)\\]\n([a-z_]{1,10} = [0-9.\\-\\[\\]\"a-z,{}= ]{0,16}\n){0,4}){0,3}",
        set in proptest::collection::vec("[a-z_.]{0,20}(=[0-9a-z\"\\[\\]{}., =]{0,12})?", 0..3),
    ) {
        let reg = microcosm::sims::registry();
        if let Ok(s) = Scenario::parse(&text, "t", Path::new("t.toml"), Path::new("."), &set) {
            let _ = reg.instantiate(&s);
        }
    }

    #[test]
    fn scenarios_from_any_text_never_panic(text in "\\PC{0,300}") {
        let _ = Scenario::parse(&text, "t", Path::new("t.toml"), Path::new("."), &[]);
    }
}
