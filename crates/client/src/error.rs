use thiserror::Error;

#[derive(Debug, Error)]
pub enum ClientError {
    #[error("cannot connect to the coordinator at {0}")]
    Connect(String),
    /// The server's answer: shown as the code's name and its message.
    #[error("{:?}: {}", .0.code(), .0.message())]
    Status(tonic::Status),
    /// The server broke the API's promises (a cursor gap or repeat).
    #[error("protocol error: {0}")]
    Protocol(String),
    /// The caller's result sink failed (e.g. the output file).
    #[error("{0}")]
    Sink(String),
}

impl From<tonic::Status> for ClientError {
    fn from(status: tonic::Status) -> Self {
        Self::Status(status)
    }
}
