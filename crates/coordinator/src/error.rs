//! The coordinator's errors: what stops `serve`, and the one place where a
//! queue error or a refused verdict policy becomes a gRPC status (so every
//! RPC reports the same failure with the same code).

pub(crate) use dfscan_core::error::shown;
use dfscan_queue::{PolicyError, QueueError};
use thiserror::Error;
use tonic::Status;

/// Why the coordinator could not start or stopped serving.
#[derive(Debug, Error)]
pub enum CoordinatorError {
    #[error("invalid coordinator settings: {0}")]
    Settings(String),
    /// The reflection service could not read the descriptor sets.
    #[error("gRPC reflection: {0}")]
    Reflection(#[from] tonic_reflection::server::Error),
    #[error("gRPC server: {0}")]
    Transport(#[from] tonic::transport::Error),
}

/// The gRPC status for a queue error. No wildcard arm: a new variant must
/// be given its code here.
pub(crate) fn status(error: QueueError) -> Status {
    let message = error.to_string();
    match error {
        QueueError::JobNotFound(_) => Status::not_found(message),
        QueueError::Full { .. } => Status::resource_exhausted(message),
        QueueError::WrongState { .. } => Status::failed_precondition(message),
        QueueError::Unavailable(_) => {
            tracing::warn!(error = %message, "queue unavailable");
            Status::unavailable(message)
        }
        QueueError::Corrupt(_) => {
            tracing::error!(error = %message, "corrupt queue entry");
            Status::internal(message)
        }
    }
}

/// The gRPC status for a verdict policy that cannot be used: the client
/// sent it, so the client must change it.
pub(crate) fn policy_status(error: PolicyError) -> Status {
    Status::invalid_argument(error.to_string())
}

#[cfg(test)]
mod tests {
    use tonic::Code;

    use super::*;

    #[test]
    fn each_queue_error_has_its_code() {
        let cases = [
            (QueueError::JobNotFound("j".into()), Code::NotFound),
            (
                QueueError::Full {
                    model: "m".into(),
                    detail: "10 items queued, the limit is 10".into(),
                },
                Code::ResourceExhausted,
            ),
            (
                QueueError::WrongState {
                    job: "j".into(),
                    state: "completed".into(),
                    action: "cancel",
                },
                Code::FailedPrecondition,
            ),
            (QueueError::Unavailable("down".into()), Code::Unavailable),
            (QueueError::Corrupt("bad".into()), Code::Internal),
        ];
        for (error, code) in cases {
            let message = error.to_string();
            let status = status(error);
            assert_eq!(status.code(), code);
            assert_eq!(status.message(), message);
        }
        let refused = policy_status(PolicyError::RepeatedVerdict);
        assert_eq!(refused.code(), Code::InvalidArgument);
        assert_eq!(refused.message(), PolicyError::RepeatedVerdict.to_string());
    }
}
