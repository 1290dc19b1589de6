//! Fuzz target: see `../check/source_stream.rs` for what is checked.
#![no_main]

#[path = "../check/source_stream.rs"]
mod check;

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| check::check(data));
