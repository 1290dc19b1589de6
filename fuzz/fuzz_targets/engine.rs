//! Fuzz target: see `../check/engine.rs` for what is checked.
#![no_main]

// The seed test (`tests/fuzz_seeds.rs`) uses the rest of the module.
#[allow(dead_code)]
#[path = "../check/engine.rs"]
mod check;

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| check::check(data));
