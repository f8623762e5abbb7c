//! The dfscan model engine: Hugging Face `ViTForImageClassification`
//! checkpoints (local or from the hub cache) run through libtorch on one
//! model thread, fed by a CPU decode pool; [`analysis`] is the one path from
//! an item's bytes to its prediction.

pub mod analysis;
pub mod autocast;
pub mod checkpoint;
pub mod engine;
mod error;
pub mod faces;
pub mod hub;
pub mod labels;
pub mod scorer;
pub mod vit;
pub mod vit_config;

use dfscan_core::settings::ModelSettings;
use dfscan_imaging::DecodeLimits;

pub use analysis::{Analysis, Prepared};
pub use checkpoint::Checkpoint;
pub use engine::{Engine, EngineOptions, ModelInfo};
pub use error::ModelError;
pub use scorer::{ScoreTimes, Scorer};

/// Resolves, opens and loads the model that `settings` names.
pub fn load_engine(settings: &ModelSettings) -> Result<Engine, ModelError> {
    let (dir, name) = hub::resolve(
        &settings.model,
        &hub::HubOptions::from_env(&settings.revision),
    )?;
    let checkpoint = Checkpoint::open(&dir, name)?;
    let (labels, fake_index) = labels::resolve_labels(
        &checkpoint.config.labels,
        settings.labels.as_deref(),
        settings.fake_label.as_deref(),
    )?;
    let opts = EngineOptions {
        device: settings.device,
        dtype: settings.dtype,
        threads: settings.threads,
    };
    Engine::load(checkpoint, labels, fake_index, opts)
}

/// The decode limits `settings` asks for.
pub fn decode_limits(settings: &ModelSettings) -> DecodeLimits {
    DecodeLimits {
        max_bytes: settings.max_image_bytes,
        max_pixels: settings.max_image_pixels,
        max_jpeg_scans: settings.max_jpeg_scans,
        max_decode_ms: settings.max_decode_ms,
    }
}
