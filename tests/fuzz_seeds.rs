//! The fuzz target's check (`fuzz/check/source_stream.rs`) run over every
//! committed seed, so the target cannot rot while the fuzzer is not run (it
//! needs nightly flags; see the README).

#[path = "../fuzz/check/source_stream.rs"]
mod source_stream;

#[test]
fn every_fuzz_seed_passes_the_fuzz_check() {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/fuzz/seeds/source_stream");
    let mut seeds = 0;
    for entry in std::fs::read_dir(dir).expect("the seed directory") {
        let path = entry.expect("a seed").path();
        let data = std::fs::read(&path).expect("a readable seed");
        source_stream::check(&data);
        seeds += 1;
    }
    assert!(seeds >= 3, "only {seeds} seeds in {dir}");
}
