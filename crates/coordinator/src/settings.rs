//! The coordinator's knobs (config section `coordinator`, environment
//! `DFSCAN_COORDINATOR__*`), with the checks that keep a bad value from
//! turning into a hang or an endless loop at request time.

use dfscan_core::settings::{Secret, Section};
use serde::{Deserialize, Serialize};

use crate::callbacks::AllowedHost;
use crate::CoordinatorError;

/// Most items per queue task, whatever the settings or a job header ask:
/// a task is what a worker holds (and a redelivery repeats), so it stays
/// small.
pub const MAX_TASK_SIZE: usize = dfscan_queue::MAX_TASK_ITEMS as usize;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct CoordinatorSettings {
    /// Address the gRPC server listens on (`host:port`).
    pub listen: String,
    /// Model a job gets when its header names none. Unset: the only known
    /// model when there is exactly one. Always accepted, like `models`.
    pub default_model: Option<String>,
    /// Models accepted even when no live worker serves them (workers scaled
    /// to zero, or not started yet). A job naming a model that is neither
    /// here nor served by a live worker is refused.
    pub models: Vec<String>,
    /// Items per queue task when the job header asks for none; a header's
    /// own value overrides it. Both are capped at 1024.
    pub task_size: usize,
    /// A task is cut before `task_size` items once its encoded images (plus
    /// ids) reach this many bytes, so large images make smaller tasks.
    pub max_task_bytes: u64,
    /// Largest gRPC message accepted or sent, in bytes (set explicitly on
    /// both directions: tonic's default for receiving is 4 MiB).
    pub max_message_bytes: usize,
    /// Most results per StreamResults message.
    pub result_batch: usize,
    /// How often the queue's reachability is probed for the gRPC health
    /// service, in milliseconds.
    pub health_interval_ms: u64,
    /// Most images in one ModelInfer call (the KServe `max_batch_size`);
    /// at most 1024, as a call is queued as one task.
    pub infer_max_batch: usize,
    /// Longest a ModelInfer call waits for its results before answering
    /// DEADLINE_EXCEEDED and cancelling them, in milliseconds.
    pub infer_timeout_ms: u64,
    /// How long a ModelInfer call's job is kept after it ends, in seconds
    /// (bulk jobs keep `queue.retention_s`).
    pub infer_retention_s: u64,
    /// `host` (on the scheme's default port) or `host:port` entries a job's
    /// callback URL may point at; empty: jobs cannot ask for callbacks.
    pub callback_hosts: Vec<String>,
    /// Key of the callbacks' HMAC-SHA256 signature; required with
    /// `callback_hosts`.
    pub callback_secret: Secret,
    /// Deliveries tried per callback (with exponential backoff) before it
    /// is given up.
    pub callback_attempts: u32,
    pub auth: AuthSettings,
    pub limits: ConnectionLimits,
    pub tls: TlsSettings,
}

/// TLS of the gRPC listener (config section `coordinator.tls`): both
/// files set turn it on; a client CA adds client-certificate checks.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct TlsSettings {
    /// PEM certificate chain of the listener.
    pub cert_file: Option<std::path::PathBuf>,
    /// PEM private key of that certificate.
    pub key_file: Option<std::path::PathBuf>,
    /// PEM CA bundle: client certificates it signed are accepted.
    pub client_ca_file: Option<std::path::PathBuf>,
    /// With `client_ca_file`: refuse clients without such a certificate.
    pub client_cert_required: bool,
}

/// What one client connection may hold of the server (config section
/// `coordinator.limits`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct ConnectionLimits {
    /// Concurrent HTTP/2 streams (calls) a connection may open.
    pub max_concurrent_streams: u32,
    /// Calls of one connection served at once; more are refused with
    /// RESOURCE_EXHAUSTED right away (load shedding), for the client to
    /// retry.
    pub max_calls_per_connection: usize,
}

impl Default for ConnectionLimits {
    fn default() -> Self {
        Self {
            max_concurrent_streams: 256,
            max_calls_per_connection: 128,
        }
    }
}

/// API tokens and tenants (config section `coordinator.auth`, environment
/// `DFSCAN_COORDINATOR__AUTH__*`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct AuthSettings {
    /// Run without authentication: every client sees every job. Off only
    /// when set explicitly (and the coordinator says so at startup).
    pub disabled: bool,
    /// Lines of `TENANT TOKEN`; a call's bearer token names its tenant.
    pub tokens_file: Option<std::path::PathBuf>,
    /// Most items a tenant may have queued (waiting or in progress) at
    /// once; 0: no quota.
    pub tenant_max_queued_items: u64,
}

impl Section for CoordinatorSettings {
    const NAME: &'static str = "coordinator";
    const LIST_KEYS: &'static [&'static str] = &["models", "callback_hosts"];
}

impl Default for CoordinatorSettings {
    fn default() -> Self {
        Self {
            listen: "127.0.0.1:50051".into(),
            default_model: None,
            models: Vec::new(),
            task_size: 32,
            max_task_bytes: 8 << 20,
            max_message_bytes: 65 << 20,
            result_batch: 256,
            health_interval_ms: 1000,
            infer_max_batch: 64,
            infer_timeout_ms: 30_000,
            infer_retention_s: 60,
            callback_hosts: Vec::new(),
            callback_secret: Secret::default(),
            callback_attempts: 8,
            auth: AuthSettings::default(),
            limits: ConnectionLimits::default(),
            tls: TlsSettings::default(),
        }
    }
}

impl CoordinatorSettings {
    /// Refuses values that would make the service misbehave rather than
    /// fail: zero-sized tasks or pages loop forever, a zero interval spins.
    pub fn validate(&self) -> Result<(), CoordinatorError> {
        let invalid = |what: String| Err(CoordinatorError::Settings(what));
        if self.task_size == 0 || self.task_size > MAX_TASK_SIZE {
            return invalid(format!(
                "task_size is {}; it must be between 1 and {MAX_TASK_SIZE}",
                self.task_size
            ));
        }
        if self.max_task_bytes == 0 {
            return invalid("max_task_bytes must be at least 1".into());
        }
        if self.max_message_bytes == 0 {
            return invalid("max_message_bytes must be at least 1".into());
        }
        if self.result_batch == 0 {
            return invalid("result_batch must be at least 1".into());
        }
        if self.health_interval_ms == 0 {
            return invalid("health_interval_ms must be at least 1".into());
        }
        if self.infer_max_batch == 0 || self.infer_max_batch > MAX_TASK_SIZE {
            return invalid(format!(
                "infer_max_batch is {}; it must be between 1 and {MAX_TASK_SIZE}",
                self.infer_max_batch
            ));
        }
        if self.infer_timeout_ms == 0 {
            return invalid("infer_timeout_ms must be at least 1".into());
        }
        if let Some(entry) = self
            .callback_hosts
            .iter()
            .find(|entry| AllowedHost::parse(entry).is_none())
        {
            return invalid(format!(
                "callback_hosts entry {entry:?} is not host or host:port \
                 (an IPv6 address in brackets: [::1]:8443)"
            ));
        }
        if !self.callback_hosts.is_empty() && self.callback_secret.0.is_empty() {
            return invalid(
                "callback_hosts is set but callback_secret is empty: callbacks must be signed"
                    .into(),
            );
        }
        if self.limits.max_concurrent_streams == 0 || self.limits.max_calls_per_connection == 0 {
            return invalid("connection limits must be at least 1".into());
        }
        let tls = &self.tls;
        if tls.cert_file.is_some() != tls.key_file.is_some() {
            return invalid("tls.cert_file and tls.key_file go together".into());
        }
        if tls.client_ca_file.is_some() && tls.cert_file.is_none() {
            return invalid("tls.client_ca_file needs tls.cert_file and tls.key_file".into());
        }
        if tls.client_cert_required && tls.client_ca_file.is_none() {
            return invalid("tls.client_cert_required needs tls.client_ca_file".into());
        }
        if self.callback_attempts == 0 {
            return invalid("callback_attempts must be at least 1".into());
        }
        let empty = |name: &Option<String>| name.as_deref().is_some_and(str::is_empty);
        if empty(&self.default_model) || self.models.iter().any(String::is_empty) {
            return invalid("model names must not be empty".into());
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid() {
        CoordinatorSettings::default().validate().unwrap();
    }

    #[test]
    fn refuses_values_that_would_loop() {
        for settings in [
            CoordinatorSettings {
                task_size: 0,
                ..Default::default()
            },
            CoordinatorSettings {
                task_size: MAX_TASK_SIZE + 1,
                ..Default::default()
            },
            CoordinatorSettings {
                result_batch: 0,
                ..Default::default()
            },
            CoordinatorSettings {
                health_interval_ms: 0,
                ..Default::default()
            },
            CoordinatorSettings {
                models: vec![String::new()],
                ..Default::default()
            },
            CoordinatorSettings {
                infer_max_batch: MAX_TASK_SIZE + 1,
                ..Default::default()
            },
            CoordinatorSettings {
                callback_hosts: vec!["hooks".into()],
                ..Default::default()
            },
            CoordinatorSettings {
                callback_hosts: vec!["https://hooks".into()],
                callback_secret: Secret("key".into()),
                ..Default::default()
            },
        ] {
            assert!(settings.validate().is_err(), "{settings:?}");
        }
    }
}
