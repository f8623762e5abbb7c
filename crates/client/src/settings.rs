use dfscan_core::settings::Secret;
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
        }
    }
}
