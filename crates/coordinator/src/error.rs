//! The coordinator's errors: what stops `serve`, and the one place where a
//! queue error becomes a gRPC status (so every RPC reports the same failure
//! with the same code).

use dfscan_queue::QueueError;
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

/// Most characters of a client's string quoted back in a status message.
const SHOWN_CHARS: usize = 64;

/// A client's string quoted for a status message, cut short: the message
/// travels in an HTTP/2 trailer, which clients refuse past a few KiB, so a
/// 1 MB id quoted whole would turn a clean INVALID_ARGUMENT into a broken
/// call.
pub(crate) fn shown(value: &str) -> String {
    let mut chars = value.chars();
    let head: String = chars.by_ref().take(SHOWN_CHARS).collect();
    if chars.next().is_none() {
        format!("{head:?}")
    } else {
        format!("{head:?}… ({} bytes)", value.len())
    }
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

#[cfg(test)]
mod tests {
    use tonic::Code;

    use super::*;

    #[test]
    fn long_strings_are_shown_cut_short() {
        assert_eq!(shown("a\nb"), "\"a\\nb\"");
        let long = "é".repeat(1 << 19);
        let quoted = shown(&long);
        assert!(quoted.ends_with("… (1048576 bytes)"), "{quoted}");
        assert!(quoted.len() < 200);
        assert_eq!(shown(&"x".repeat(64)), format!("{:?}", "x".repeat(64)));
    }

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
    }
}
