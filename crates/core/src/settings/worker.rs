//! The worker's knobs (config section `worker`, env `DFSCAN_WORKER__*`),
//! kept apart from the model's settings because one model can be served by
//! workers tuned differently (batch size per GPU, URI roots per host).
//! Defined here, not in `dfscan-worker`, so that processes built without
//! libtorch (the coordinator) know its keys and refuse misspelt ones in a
//! configuration file they share with the workers; the checks of its values
//! stay with the worker.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use super::Section;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct WorkerSettings {
    /// Most images per forward pass; tasks of any job are merged to fill it.
    pub max_batch: usize,
    /// How long a partial batch waits for more images after its first one,
    /// in milliseconds (while the model is idle; a busy model lets the batch
    /// keep filling).
    pub max_wait_ms: u64,
    /// Tasks claimed ahead, beyond the one whose items are being handed to
    /// the decoders.
    pub prefetch_tasks: usize,
    /// How long one claim waits for tasks when the queue is empty, in
    /// milliseconds; also the most a shutdown waits for a claim in progress.
    pub claim_wait_ms: u64,
    /// Interval between heartbeats, in milliseconds; keep it well under the
    /// queue's `worker_ttl_ms`.
    pub heartbeat_ms: u64,
    /// After shutdown is requested, how long to finish the tasks in hand, in
    /// seconds; tasks left then are redelivered by the queue after its
    /// visibility timeout.
    pub drain_grace_s: u64,
    /// Directories whose files items may name by URI (`file://` or an
    /// absolute path); empty: URI inputs are refused.
    pub uri_roots: Vec<PathBuf>,
    /// This worker's name in the queue; default
    /// `<hostname>-<pid>-<4 random hex digits>`.
    pub worker_id: Option<String>,
    /// `host:port` of the worker's `/livez` and `/readyz`; none: no
    /// endpoint. Off by default because workers on one host (one per GPU)
    /// would all want the same port.
    pub health_listen: Option<String>,
    /// Seconds the claim-and-score loop may go without turning (no claim
    /// returned, no batch answered, no completion attempted), or one batch
    /// may stay at the model, before `/livez` fails. Longer than the longest
    /// batch and than a queue call to a Redis that does not answer.
    pub liveness_timeout_s: u64,
}

impl Section for WorkerSettings {
    const NAME: &'static str = "worker";
    const LIST_KEYS: &'static [&'static str] = &["uri_roots"];
}

impl Default for WorkerSettings {
    fn default() -> Self {
        Self {
            max_batch: 32,
            max_wait_ms: 5,
            prefetch_tasks: 4,
            claim_wait_ms: 1000,
            heartbeat_ms: 2000,
            drain_grace_s: 30,
            uri_roots: Vec::new(),
            worker_id: None,
            health_listen: None,
            liveness_timeout_s: 120,
        }
    }
}
