use dfscan_core::settings::Section;
use serde::{Deserialize, Serialize};

/// The queue's knobs (config section `queue`, env `DFSCAN_QUEUE__*`); the
/// README's configuration table documents each with its default.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct QueueSettings {
    /// Prefix of every Redis key, so several deployments can share a Redis.
    pub key_prefix: String,
    /// A task claimed but neither completed nor refreshed for this long is
    /// handed to another worker.
    pub visibility_timeout_ms: u64,
    /// A task handed out this many times without completing is moved to the
    /// dead-letter stream and its items get error results.
    pub max_deliveries: u64,
    /// Finished jobs (state, results) are deleted this long after finishing.
    pub retention_s: u64,
    /// Backpressure: most items queued (waiting or in progress) per model.
    pub max_queued_items: u64,
    /// Backpressure: most encoded image bytes queued per model.
    pub max_queued_bytes: u64,
    /// A worker that has not sent a heartbeat for this long is not listed.
    pub worker_ttl_ms: u64,
    /// An upload that adds nothing for this long is abandoned (its
    /// coordinator died): it is removed, and its idempotency key freed.
    pub upload_timeout_s: u64,
    /// For `rediss://` URLs: a PEM CA bundle to trust (default: the
    /// system's roots).
    pub tls_ca_file: Option<std::path::PathBuf>,
    /// PEM client certificate and key, for a Redis that checks them
    /// (`tls-auth-clients`).
    pub tls_cert_file: Option<std::path::PathBuf>,
    pub tls_key_file: Option<std::path::PathBuf>,
}

impl Section for QueueSettings {
    const NAME: &'static str = "queue";
}

impl Default for QueueSettings {
    fn default() -> Self {
        Self {
            key_prefix: "dfscan".into(),
            visibility_timeout_ms: 60_000,
            max_deliveries: 5,
            retention_s: 24 * 3600,
            max_queued_items: 10_000_000,
            max_queued_bytes: 4 << 30,
            worker_ttl_ms: 15_000,
            upload_timeout_s: 300,
            tls_ca_file: None,
            tls_cert_file: None,
            tls_key_file: None,
        }
    }
}
