use dfscan_core::settings::{Secret, Section};
use serde::{Deserialize, Serialize};

/// Client knobs (config section `client`, env `DFSCAN_CLIENT__*`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct ClientSettings {
    /// The coordinator's gRPC address.
    pub coordinator: String,
    /// Largest gRPC message sent or received.
    pub max_message_bytes: usize,
    /// An upload message is sent when its images reach this many bytes...
    pub upload_batch_bytes: usize,
    /// ...or this many items.
    pub upload_batch_items: usize,
    /// A broken result stream is resumed for this long without progress
    /// before giving up.
    pub resume_for_s: u64,
    /// API token sent with every call (`authorization: Bearer`).
    pub token: Option<Secret>,
    /// For an `https://` coordinator: a PEM CA bundle to trust besides the
    /// public roots.
    pub tls_ca_file: Option<std::path::PathBuf>,
    /// PEM client certificate and key, for coordinators that check them.
    pub tls_cert_file: Option<std::path::PathBuf>,
    pub tls_key_file: Option<std::path::PathBuf>,
    /// The name the coordinator's certificate must carry, when it is not
    /// the host of `coordinator`.
    pub tls_domain: Option<String>,
}

impl Section for ClientSettings {
    const NAME: &'static str = "client";
}

impl Default for ClientSettings {
    fn default() -> Self {
        Self {
            coordinator: "http://127.0.0.1:50051".into(),
            max_message_bytes: 65 << 20,
            upload_batch_bytes: 4 << 20,
            upload_batch_items: 256,
            resume_for_s: 300,
            token: None,
            tls_ca_file: None,
            tls_cert_file: None,
            tls_key_file: None,
            tls_domain: None,
        }
    }
}
