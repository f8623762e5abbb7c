//! The decode fuzz target, defined once: libFuzzer runs it
//! (`fuzz_targets/decode.rs`, nightly) and so does the stable runner
//! (`benches/fuzz_decode.rs`), each including this file. Any bytes through
//! `preprocess` with the default limits must give pixels or an
//! `ImagingError`, never a panic; the runners bound memory (libFuzzer's
//! `-rss_limit_mb`, the stable runner's heap count) and report time.
//!
//! The configuration is drawn from the input itself, so that a crash
//! replays with the one it had: mostly the tiny test checkpoints' 40x40,
//! which keeps resizing cheap; one input in eight ViT-base's 224x224, and
//! one in sixteen keys out the transparent colour (`do_convert_rgb`).

use std::sync::OnceLock;

use dfscan_imaging::{preprocess, DecodeLimits, ImagingError, PreprocessorConfig};

/// FNV-1a: a hash that stays the same across builds and toolchains.
pub fn fnv(data: &[u8]) -> u64 {
    data.iter().fold(0xcbf2_9ce4_8422_2325, |h, &b| {
        (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3)
    })
}

/// The configuration `data` is preprocessed with.
fn config(data: &[u8]) -> &'static PreprocessorConfig {
    static CONFIGS: OnceLock<[PreprocessorConfig; 3]> = OnceLock::new();
    let [small, base, convert] = CONFIGS.get_or_init(|| {
        let small = PreprocessorConfig {
            height: 40,
            width: 40,
            ..PreprocessorConfig::default()
        };
        let convert = PreprocessorConfig {
            do_convert_rgb: true,
            ..small.clone()
        };
        [small, PreprocessorConfig::default(), convert]
    });
    match fnv(data) % 16 {
        0 | 1 => base,
        2 => convert,
        _ => small,
    }
}

/// One input through decode + preprocess.
pub fn fuzz_decode(data: &[u8]) -> Result<Vec<f32>, ImagingError> {
    preprocess(data, config(data), &DecodeLimits::default())
}
