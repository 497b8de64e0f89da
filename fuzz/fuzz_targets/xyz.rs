//! Fuzzes the extended XYZ structure parser (`sims::md::atoms::parse_xyz`).
#![no_main]

use libfuzzer_sys::fuzz_target;
use microcosm_sims::md::atoms::parse_xyz;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = parse_xyz(text);
    }
});
