//! How dfscan's long-running processes start and stop: logging, the tokio
//! runtime, one [`CancellationToken`] that SIGTERM and Ctrl-C cancel, the
//! connection to the Redis queue, the HTTP endpoints (metrics, a worker's
//! health), the coordinator process itself, and the configuration every
//! process loads (`settings`: all sections, unknown keys refused).
//!
//! It exists apart from the CLI so that `dfscan-coordinator`, its binary,
//! builds without libtorch: nothing here or below it links tch, which keeps
//! the coordinator's memory and container image small. `dfscan coordinator`
//! runs the same code inside the all-in-one binary.

pub mod coordinator;
pub mod health;
mod http;
pub mod metrics;
pub mod settings;

use std::io::IsTerminal;
use std::path::Path;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use dfscan_queue::{JobQueue, QueueError, QueueSettings, RedisQueue};
use thiserror::Error;
use tokio_util::sync::CancellationToken;

/// Why a process could not start.
#[derive(Debug, Error)]
pub enum ProcessError {
    #[error(transparent)]
    Config(#[from] dfscan_core::CoreError),
    #[error(
        "dfscan {command} needs the queue's Redis URL: --redis URL or DFSCAN_REDIS \
         (for one process without Redis, use dfscan serve)"
    )]
    NoRedisUrl { command: &'static str },
    #[error("connecting to Redis at {url}: {source}")]
    Redis { url: String, source: QueueError },
    #[error("listening on {address}: {source}")]
    Listen {
        address: String,
        source: std::io::Error,
    },
    /// The gRPC API's address is taken (often another `serve` or
    /// coordinator still running): the way out is another address.
    #[error(
        "listening on {address}: the address is in use (another dfscan serve or coordinator?); \
         give another with --listen HOST:PORT (or coordinator.listen)"
    )]
    ApiAddressInUse { address: String },
    #[error("starting the tokio runtime: {0}")]
    Runtime(std::io::Error),
    #[error(transparent)]
    Coordinator(#[from] dfscan_coordinator::CoordinatorError),
}

/// How logs are written (config key `log_format`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Human-readable lines.
    #[default]
    Text,
    /// One JSON object per line, fields included (for log pipelines).
    Json,
}

#[derive(Debug, Default, Serialize, Deserialize)]
#[serde(default)]
struct LogSettings {
    log_format: LogFormat,
}

/// Logs on stderr, filtered by `DFSCAN_LOG` (default `info`), as text or
/// JSON per `log_format` in the config file or `DFSCAN_LOG_FORMAT`. Read
/// before the rest of the configuration, so that its loading can log; a
/// configuration that does not load leaves text logs, and the full load
/// that follows reports the problem.
pub fn init_logging(config: Option<&Path>) {
    let format = settings::load::<LogSettings>(config, &[])
        .map(|s| s.log_format)
        .unwrap_or_default();
    let filter =
        tracing_subscriber::EnvFilter::try_from_env("DFSCAN_LOG").unwrap_or_else(|_| "info".into());
    let builder = tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(filter);
    match format {
        LogFormat::Text => builder.with_ansi(std::io::stderr().is_terminal()).init(),
        LogFormat::Json => builder.json().with_current_span(false).init(),
    }
}

pub fn runtime() -> Result<tokio::runtime::Runtime, ProcessError> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(ProcessError::Runtime)
}

/// A token cancelled by SIGTERM (Kubernetes stopping the pod) or Ctrl-C.
/// Must be called inside the runtime.
pub fn shutdown_on_signals() -> CancellationToken {
    let token = CancellationToken::new();
    let cancel = token.clone();
    tokio::spawn(async move {
        use tokio::signal::unix::{signal, SignalKind};
        let mut term = match signal(SignalKind::terminate()) {
            Ok(term) => term,
            Err(e) => {
                tracing::error!("cannot watch for SIGTERM: {e}");
                return;
            }
        };
        tokio::select! {
            _ = term.recv() => tracing::info!("SIGTERM: shutting down"),
            _ = tokio::signal::ctrl_c() => tracing::info!("interrupted: shutting down"),
        }
        cancel.cancel();
    });
    token
}

/// Connects to the Redis queue that `command` (for the error message)
/// was configured with.
pub async fn connect_queue(
    url: Option<&str>,
    settings: &QueueSettings,
    command: &'static str,
) -> Result<Arc<dyn JobQueue>, ProcessError> {
    let url = url.ok_or(ProcessError::NoRedisUrl { command })?;
    let queue = RedisQueue::connect(url, settings.clone())
        .await
        .map_err(|source| ProcessError::Redis {
            url: redact_password(url),
            source,
        })?;
    Ok(Arc::new(queue))
}

/// The URL with its password replaced, fit for errors and logs
/// (`redis://user:***@host:6379/0`).
pub fn redact_password(url: &str) -> String {
    let Some(scheme_end) = url.find("://").map(|i| i + 3) else {
        return url.to_owned();
    };
    let Some(at) = url[scheme_end..].rfind('@').map(|i| scheme_end + i) else {
        return url.to_owned();
    };
    match url[scheme_end..at].find(':') {
        Some(colon) => format!("{}:***{}", &url[..scheme_end + colon], &url[at..]),
        None => url.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_are_redacted() {
        for (url, shown) in [
            ("redis://127.0.0.1:6379", "redis://127.0.0.1:6379"),
            ("redis://:s3cret@redis:6379/0", "redis://:***@redis:6379/0"),
            (
                "rediss://app:p@ss:w0rd@redis:6380",
                "rediss://app:***@redis:6380",
            ),
            ("redis://app@redis", "redis://app@redis"),
            ("not a url", "not a url"),
        ] {
            assert_eq!(redact_password(url), shown, "{url}");
        }
    }
}
