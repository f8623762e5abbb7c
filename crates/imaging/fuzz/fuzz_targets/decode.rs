//! libFuzzer's driver of the decode target (`../target.rs`, which the
//! stable runner `benches/fuzz_decode.rs` drives too). Run it with
//! `-rss_limit_mb` so that memory past the limits is a crash; crashes it
//! finds go into `tests/hostile/` (see crates/imaging/README.md).

#![no_main]

use libfuzzer_sys::fuzz_target;

#[path = "../target.rs"]
mod target;

fuzz_target!(|data: &[u8]| {
    let _ = target::fuzz_decode(data);
});
