//! The dfscan model engine: Hugging Face `ViTForImageClassification`
//! checkpoints (local or from the hub cache) run through libtorch on one
//! model thread, fed by a CPU decode pool; [`analysis`] is the one path from
//! an item's bytes to its prediction.

pub mod analysis;
pub mod autocast;
pub mod checkpoint;
pub mod dtype_choice;
pub mod engine;
mod error;
mod explain;
pub mod faces;
pub mod hub;
mod inbox;
pub mod labels;
pub mod scorer;
pub mod vit;
pub mod vit_config;

use std::path::PathBuf;

use dfscan_core::settings::ModelSettings;
use dfscan_core::{FaceMode, FaceSettings};
use dfscan_imaging::DecodeLimits;

pub use analysis::{Analysis, Input, Plan, Prepared};
pub use checkpoint::Checkpoint;
pub use dfscan_core::ItemScore;
/// What a folder walk takes for a video, by extension.
pub use dfscan_video::VIDEO_EXTENSIONS;
pub use engine::{Engine, EngineOptions, ModelInfo};
pub use error::ModelError;
pub use scorer::{ScoreTimes, Scorer};

/// Resolves, opens and loads the model that `settings` names, with the face
/// detector `faces` names (or the one setup converted, when faces are on or
/// it is there); forward passes take at most `max_rows` images.
pub fn load_engine(
    settings: &ModelSettings,
    faces: &FaceSettings,
    max_rows: usize,
) -> Result<Engine, ModelError> {
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
        max_rows,
        face_detector: face_detector_dir(faces)?,
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

/// The face detector to load: the one `faces.detector` names (which must
/// exist), else the one setup converts, under the dfscan cache
/// (`$DFSCAN_CACHE_DIR`, default `~/.cache/dfscan`,
/// `face-detectors/centerface`) when it is there. With faces on, no
/// detector is an error, not a silent whole-image run.
pub fn face_detector_dir(faces: &FaceSettings) -> Result<Option<PathBuf>, ModelError> {
    if let Some(dir) = &faces.detector {
        return Ok(Some(dir.clone()));
    }
    let default = default_face_detector_dir();
    match default {
        Some(dir) if dir.join("graph.json").is_file() => Ok(Some(dir)),
        _ if faces.mode == FaceMode::Off => Ok(None),
        _ => Err(ModelError::InvalidDetector {
            path: default.unwrap_or_default(),
            reason: "no converted face detector there: run scripts/setup.sh (or \
                     scripts/install.sh), set faces.detector, or turn faces off \
                     (faces.mode = off, --faces off)"
                .into(),
        }),
    }
}

/// Where setup puts the face detector it converts.
pub fn default_face_detector_dir() -> Option<PathBuf> {
    let cache = std::env::var_os("DFSCAN_CACHE_DIR")
        .map(PathBuf::from)
        .or_else(|| {
            std::env::var_os("HOME").map(|home| PathBuf::from(home).join(".cache/dfscan"))
        })?;
    Some(cache.join("face-detectors").join("centerface"))
}
