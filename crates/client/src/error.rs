use thiserror::Error;

#[derive(Debug, Error)]
pub enum ClientError {
    #[error("cannot connect to the coordinator at {0}")]
    Connect(String),
    /// The server's answer: shown as the code's name and its message, with
    /// how to fix what the client can fix.
    #[error("{}", describe(.0))]
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

fn describe(status: &tonic::Status) -> String {
    let mut line = format!("{:?}: {}", status.code(), status.message());
    if status.code() == tonic::Code::Unauthenticated {
        line.push_str(
            " (the client sends the API token from DFSCAN_CLIENT__TOKEN or `client.token` \
             in the config file; Python: Client(token=...))",
        );
    }
    line
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_refused_token_says_where_the_token_comes_from() {
        let error = ClientError::from(tonic::Status::unauthenticated("unknown API token"));
        let text = error.to_string();
        assert!(
            text.starts_with("Unauthenticated: unknown API token"),
            "{text}"
        );
        assert!(text.contains("DFSCAN_CLIENT__TOKEN"), "{text}");
        let other = ClientError::from(tonic::Status::not_found("no such job")).to_string();
        assert_eq!(other, "NotFound: no such job");
    }
}
