//! Fuzzes scenario TOML with `--set` overrides: `Scenario::parse`, then
//! plugin instantiation and validation (`registry().instantiate`).
//!
//! Input: UTF-8 text; the part before the first `\0` is the scenario file,
//! each line after it is one `--set key=value` override.
#![no_main]

use std::path::Path;

use libfuzzer_sys::fuzz_target;
use microcosm_engine::Scenario;

fuzz_target!(|data: &[u8]| {
    let Ok(input) = std::str::from_utf8(data) else {
        return;
    };
    let (text, sets) = input.split_once('\0').unwrap_or((input, ""));
    let set: Vec<String> = sets.lines().take(8).map(str::to_owned).collect();
    if let Ok(s) = Scenario::parse(text, "t", Path::new("t.toml"), Path::new("."), &set) {
        let _ = microcosm_sims::registry().instantiate(&s);
    }
});
