//! Fuzzes the replay-trace CSV parser (`sims::agents::replay::Trace::parse`),
//! with the invariants `tests/parsers.rs` checks on accepted traces.
//!
//! Input: two bytes (little-endian u16 `k`, states = k + 1), then the CSV text.
#![no_main]

use libfuzzer_sys::fuzz_target;
use microcosm_sims::agents::replay::Trace;

fuzz_target!(|data: &[u8]| {
    let [a, b, rest @ ..] = data else {
        return;
    };
    let states = usize::from(u16::from_le_bytes([*a, *b])) + 1;
    let Ok(text) = std::str::from_utf8(rest) else {
        return;
    };
    if let Ok(t) = Trace::parse(text, states) {
        assert!(
            t.records
                .iter()
                .all(|r| (r.obs as usize) < states && r.action < 5)
        );
        assert!(t.records.iter().all(|r| (r.agent as usize) < t.ids.len()));
    }
});
