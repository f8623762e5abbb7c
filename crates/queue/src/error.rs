use dfscan_core::error::shown;
use thiserror::Error;

use crate::policy::{MAX_THRESHOLDS, MAX_VERDICT_BYTES};

/// Why a queue operation failed. The coordinator maps each variant to one
/// gRPC status.
#[derive(Debug, Error)]
pub enum QueueError {
    #[error("job {0} not found")]
    JobNotFound(String),
    /// Backpressure: the model's queue is over its item or byte limit.
    #[error("the queue for model {model} is full: {detail}")]
    Full { model: String, detail: String },
    /// The job's state does not allow the operation (cancel a finished job,
    /// add items to a cancelled one).
    #[error("job {job} is {state}: cannot {action}")]
    WrongState {
        job: String,
        state: String,
        action: &'static str,
    },
    /// The backend (Redis) cannot be reached; retrying later may work.
    #[error("queue backend unavailable: {0}")]
    Unavailable(String),
    /// An entry in the backend cannot be read (written by an incompatible
    /// version, or damaged).
    #[error("corrupt queue entry: {0}")]
    Corrupt(String),
}

/// Why a job's verdict policy cannot be used (see [`crate::policy::checked`]).
/// The coordinator refuses the job with the message.
#[derive(Debug, Clone, PartialEq, Error)]
pub enum PolicyError {
    #[error("policy: {0} thresholds; give 1 to {MAX_THRESHOLDS}")]
    ThresholdCount(usize),
    #[error(
        "policy: {verdict:?} starts at {min_fake_score}; thresholds are fake_scores in [0, 1]"
    )]
    ThresholdRange {
        verdict: String,
        min_fake_score: f32,
    },
    #[error(
        "policy: verdict {} must be 1 to {MAX_VERDICT_BYTES} letters, digits, '-', '_' or '.'",
        shown(.0)
    )]
    VerdictName(String),
    #[error("policy: each verdict may appear once")]
    RepeatedVerdict,
    #[error("policy: two verdicts start at the same fake_score")]
    SharedThreshold,
}

pub type Result<T, E = QueueError> = std::result::Result<T, E>;
