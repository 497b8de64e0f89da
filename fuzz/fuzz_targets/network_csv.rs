//! Fuzzes the regulatory-network CSV parser
//! (`sims::genes::network::Sparse::from_csv`).
//!
//! Input: two bytes (little-endian u16 `k`, genes n = k + 1), then the CSV text.
#![no_main]

use libfuzzer_sys::fuzz_target;
use microcosm_sims::genes::network::Sparse;

fuzz_target!(|data: &[u8]| {
    let [a, b, rest @ ..] = data else {
        return;
    };
    let n = usize::from(u16::from_le_bytes([*a, *b])) + 1;
    if let Ok(text) = std::str::from_utf8(rest) {
        let _ = Sparse::from_csv(text, n);
    }
});
