//! The error type at the `dfscan-core` boundary, how every dfscan program
//! prints an error, and how a client's string is quoted in one.

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
    #[error("unknown configuration {}", unknown_keys(.0))]
    UnknownKeys(Vec<crate::settings::UnknownKey>),
    #[error("configuration: environment variable {0} is not valid Unicode")]
    NotUnicode(String),
}

fn unknown_keys(keys: &[crate::settings::UnknownKey]) -> String {
    let list: Vec<String> = keys.iter().map(ToString::to_string).collect();
    match list.len() {
        1 => format!("key {}", list[0]),
        _ => format!("keys: {}", list.join("; ")),
    }
}

/// An error and the causes under it, each said once, as the programs print
/// a fatal error: a transport error's own message is only "transport
/// error" (the TLS or connection failure is its source), while errors that
/// quote their source in their message would otherwise say it twice.
pub fn with_causes(error: &(dyn std::error::Error + 'static)) -> String {
    let mut line = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        let text = cause.to_string();
        if !line.contains(&text) {
            line.push_str(": ");
            line.push_str(&text);
        }
        source = cause.source();
    }
    line
}

/// Most characters of a client's string quoted back in an error message.
const SHOWN_CHARS: usize = 64;

/// A client's string quoted for an error message, cut short: the
/// coordinator's messages travel in an HTTP/2 trailer, which clients refuse
/// past a few KiB, so a 1 MB id quoted whole would turn a clean
/// INVALID_ARGUMENT into a broken call.
pub fn shown(value: &str) -> String {
    let mut chars = value.chars();
    let head: String = chars.by_ref().take(SHOWN_CHARS).collect();
    if chars.next().is_none() {
        format!("{head:?}")
    } else {
        format!("{head:?}… ({} bytes)", value.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, Error)]
    #[error("transport error")]
    struct Transport(#[source] std::io::Error);

    #[derive(Debug, Error)]
    #[error("{path}: {source}")]
    struct Quoting {
        path: &'static str,
        source: std::io::Error,
    }

    #[test]
    fn each_cause_is_said_once() {
        let tls = std::io::Error::other("invalid peer certificate: UnknownIssuer");
        assert_eq!(
            with_causes(&Transport(tls)),
            "transport error: invalid peer certificate: UnknownIssuer"
        );
        let missing = std::io::Error::from(std::io::ErrorKind::NotFound);
        let quoting = Quoting {
            path: "/m/config.json",
            source: missing,
        };
        assert_eq!(with_causes(&quoting), quoting.to_string());
    }

    #[test]
    fn long_strings_are_shown_cut_short() {
        assert_eq!(shown("a\nb"), "\"a\\nb\"");
        let long = "é".repeat(1 << 19);
        let quoted = shown(&long);
        assert!(quoted.ends_with("… (1048576 bytes)"), "{quoted}");
        assert!(quoted.len() < 200);
        assert_eq!(shown(&"x".repeat(64)), format!("{:?}", "x".repeat(64)));
    }
}
