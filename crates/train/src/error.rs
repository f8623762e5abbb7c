//! The error type at the `dfscan-train` boundary.

use std::path::PathBuf;

use dfscan_model::ModelError;
use thiserror::Error;

#[derive(Debug, Error)]
pub enum TrainError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("training data {path}: {reason}")]
    Data { path: PathBuf, reason: String },
    #[error("settings: {0}")]
    Settings(String),
    #[error(transparent)]
    Model(#[from] ModelError),
    #[error("cannot resume from {path}: {reason}")]
    Resume { path: PathBuf, reason: String },
    #[error("libtorch: {0}")]
    Torch(String),
    #[error("the loss is not finite at step {step} (lower --lr, or check the data)")]
    Diverged { step: usize },
    #[error("interrupted: state saved in {state}; run the same command with --resume to continue")]
    Interrupted { state: PathBuf },
    #[error("cannot start threads: {0}")]
    Spawn(String),
}

impl From<tch::TchError> for TrainError {
    fn from(e: tch::TchError) -> Self {
        Self::Torch(e.to_string())
    }
}

pub(crate) fn io_error(path: impl Into<PathBuf>) -> impl FnOnce(std::io::Error) -> TrainError {
    let path = path.into();
    move |source| TrainError::Io { path, source }
}
