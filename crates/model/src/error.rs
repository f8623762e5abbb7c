//! The error type at the `dfscan-model` boundary.

use std::path::PathBuf;

use thiserror::Error;

#[derive(Debug, Error)]
pub enum ModelError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("invalid checkpoint {path}: {reason}")]
    InvalidCheckpoint { path: PathBuf, reason: String },
    #[error("checkpoint is missing tensor `{name}` (expected shape {expected:?})")]
    MissingTensor { name: String, expected: Vec<i64> },
    #[error(
        "tensor `{name}` has shape {found:?} in the checkpoint, the config implies {expected:?}"
    )]
    ShapeMismatch {
        name: String,
        expected: Vec<i64>,
        found: Vec<i64>,
    },
    #[error("{0}")]
    Hub(String),
    #[error("labels: {0}")]
    Labels(String),
    #[error("device: {0}")]
    Device(String),
    #[error("libtorch: {0}")]
    Torch(String),
    #[error("cannot start threads: {0}")]
    Spawn(String),
    #[error("invalid batch: {0}")]
    InvalidBatch(String),
    #[error("the model thread has stopped")]
    EngineStopped,
    #[error("invalid face detector {path}: {reason}")]
    InvalidDetector { path: PathBuf, reason: String },
    #[error("face detection: {0}")]
    FaceSettings(String),
    #[error("video: {0}")]
    VideoSettings(String),
    #[error("faces were asked for but no face detector is loaded (see faces.detector)")]
    NoFaceDetector,
}

impl From<tch::TchError> for ModelError {
    fn from(e: tch::TchError) -> Self {
        Self::Torch(e.to_string())
    }
}

pub(crate) fn io_error(path: impl Into<PathBuf>) -> impl FnOnce(std::io::Error) -> ModelError {
    let path = path.into();
    move |source| ModelError::Io { path, source }
}
