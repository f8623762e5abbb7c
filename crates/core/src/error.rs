//! The error type at the `dfscan-core` boundary.

use thiserror::Error;

#[derive(Debug, Error)]
pub enum CoreError {
    #[error("invalid value {value:?} for {what}: {expected}")]
    InvalidValue {
        what: &'static str,
        value: String,
        expected: &'static str,
    },
    #[error("configuration: {0}")]
    Config(#[from] config::ConfigError),
}
