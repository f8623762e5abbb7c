//! The worker's knobs (config section `worker`, env `DFSCAN_WORKER__*`),
//! kept apart from the model's settings because one model can be served by
//! workers tuned differently (batch size per GPU, URI roots per host).

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::error::WorkerError;

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

impl WorkerSettings {
    pub(crate) fn validate(&self) -> Result<(), WorkerError> {
        let invalid = |what: &str| Err(WorkerError::Settings(what.to_string()));
        if self.max_batch == 0 {
            return invalid("max_batch must be at least 1");
        }
        // A zero claim wait would spin on an empty queue.
        if self.claim_wait_ms == 0 {
            return invalid("claim_wait_ms must be at least 1");
        }
        if self.heartbeat_ms == 0 {
            return invalid("heartbeat_ms must be at least 1");
        }
        if self.worker_id.as_deref().is_some_and(str::is_empty) {
            return invalid("worker_id must not be empty");
        }
        // An idle claim blocks for claim_wait_ms without the loop turning.
        if self.claim_wait_ms >= self.liveness_timeout_s.saturating_mul(1000) {
            return Err(WorkerError::Settings(format!(
                "claim_wait_ms ({}) must be shorter than liveness_timeout_s ({} s): an idle \
                 claim would make the worker look stuck",
                self.claim_wait_ms, self.liveness_timeout_s
            )));
        }
        Ok(())
    }

    /// The configured id, or `<hostname>-<pid>-<4 random hex digits>`: the
    /// random part keeps two workers apart when a restarted container
    /// reuses both hostname and pid.
    pub(crate) fn worker_id(&self) -> String {
        self.worker_id.clone().unwrap_or_else(|| {
            format!(
                "{}-{}-{:04x}",
                host_name(),
                std::process::id(),
                rand::random::<u16>()
            )
        })
    }
}

pub(crate) fn host_name() -> String {
    hostname::get()
        .map(|h| h.to_string_lossy().into_owned())
        .unwrap_or_else(|_| "unknown-host".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_validate_and_name_the_worker() {
        let settings = WorkerSettings::default();
        settings.validate().unwrap();
        let id = settings.worker_id();
        let pid = std::process::id().to_string();
        let parts: Vec<&str> = id.rsplitn(3, '-').collect();
        assert_eq!(parts.len(), 3, "{id}");
        assert_eq!(parts[0].len(), 4, "{id}");
        assert!(u16::from_str_radix(parts[0], 16).is_ok(), "{id}");
        assert_eq!(parts[1], pid, "{id}");
    }

    #[test]
    fn rejects_values_that_cannot_work() {
        for broken in [
            WorkerSettings {
                max_batch: 0,
                ..Default::default()
            },
            WorkerSettings {
                claim_wait_ms: 0,
                ..Default::default()
            },
            WorkerSettings {
                heartbeat_ms: 0,
                ..Default::default()
            },
            WorkerSettings {
                worker_id: Some(String::new()),
                ..Default::default()
            },
            WorkerSettings {
                liveness_timeout_s: 0,
                ..Default::default()
            },
            WorkerSettings {
                claim_wait_ms: 5000,
                liveness_timeout_s: 5,
                ..Default::default()
            },
        ] {
            assert!(broken.validate().is_err(), "{broken:?}");
        }
    }

    #[test]
    fn every_key_is_in_the_readme_table() {
        let readme = include_str!("../../../README.md");
        let value = serde_json::to_value(WorkerSettings::default()).unwrap();
        let missing: Vec<&String> = value
            .as_object()
            .unwrap()
            .keys()
            .filter(|k| !readme.contains(&format!("| `worker.{k}` |")))
            .collect();
        assert!(
            missing.is_empty(),
            "worker keys missing from README: {missing:?}"
        );
    }
}
