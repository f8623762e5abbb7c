use thiserror::Error;

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

pub type Result<T, E = QueueError> = std::result::Result<T, E>;
