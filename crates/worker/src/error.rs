//! The error type at the `dfscan-worker` boundary. Only what stops the
//! worker is here: a bad item becomes that item's error result, and queue
//! outages are retried rather than returned.

use std::path::PathBuf;

use dfscan_model::ModelError;
use thiserror::Error;

#[derive(Debug, Error)]
pub enum WorkerError {
    #[error("invalid worker settings: {0}")]
    Settings(String),
    #[error("URI root {path}: {source}")]
    UriRoot {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot start the decode threads: {0}")]
    DecodePool(String),
    /// The model thread is gone; scoring more would only turn every task
    /// into errors, so the worker stops and leaves its tasks to others.
    #[error("the model is no longer running: {0}")]
    Engine(ModelError),
    /// The first batch, run before taking work, failed: every batch would.
    #[error(
        "the warm-up batch of {rows} images failed (a smaller worker.max_batch may fit): {source}"
    )]
    WarmUp { rows: usize, source: ModelError },
    /// A part of the worker panicked (a bug).
    #[error("worker {0}")]
    Panicked(String),
}
