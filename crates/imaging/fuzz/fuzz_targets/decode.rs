//! libFuzzer target: any bytes through `preprocess` with the default
//! limits must give pixels or an `ImagingError`, never a panic, and never
//! hold more memory than the limits allow (run with `-rss_limit_mb`).
//! Crashes it finds go into `tests/hostile/` (see crates/imaging/README.md).

#![no_main]

use std::sync::OnceLock;

use dfscan_imaging::{preprocess, DecodeLimits, PreprocessorConfig};
use libfuzzer_sys::fuzz_target;

fn config() -> &'static PreprocessorConfig {
    static CONFIG: OnceLock<PreprocessorConfig> = OnceLock::new();
    // The tiny test checkpoints' 40x40 keeps resizing cheap.
    CONFIG.get_or_init(|| PreprocessorConfig {
        height: 40,
        width: 40,
        ..PreprocessorConfig::default()
    })
}

fuzz_target!(|data: &[u8]| {
    let _ = preprocess(data, config(), &DecodeLimits::default());
});
