//! Checks of the worker's settings (`WorkerSettings`, defined in
//! `dfscan-core` so that every process knows its keys) and the worker's
//! default name.

pub use dfscan_core::settings::worker::WorkerSettings;

use crate::error::WorkerError;

pub(crate) fn validate(settings: &WorkerSettings) -> Result<(), WorkerError> {
    let invalid = |what: &str| Err(WorkerError::Settings(what.to_string()));
    if settings.max_batch == 0 {
        return invalid("max_batch must be at least 1");
    }
    // A zero claim wait would spin on an empty queue.
    if settings.claim_wait_ms == 0 {
        return invalid("claim_wait_ms must be at least 1");
    }
    if settings.heartbeat_ms == 0 {
        return invalid("heartbeat_ms must be at least 1");
    }
    if settings.worker_id.as_deref().is_some_and(str::is_empty) {
        return invalid("worker_id must not be empty");
    }
    // An idle claim blocks for claim_wait_ms without the loop turning.
    if settings.claim_wait_ms >= settings.liveness_timeout_s.saturating_mul(1000) {
        return Err(WorkerError::Settings(format!(
            "claim_wait_ms ({}) must be shorter than liveness_timeout_s ({} s): an idle \
             claim would make the worker look stuck",
            settings.claim_wait_ms, settings.liveness_timeout_s
        )));
    }
    Ok(())
}

/// The configured id, or `<hostname>-<pid>-<4 random hex digits>`: the
/// random part keeps two workers apart when a restarted container
/// reuses both hostname and pid.
pub(crate) fn worker_id(settings: &WorkerSettings) -> String {
    settings.worker_id.clone().unwrap_or_else(|| {
        format!(
            "{}-{}-{:04x}",
            host_name(),
            std::process::id(),
            rand::random::<u16>()
        )
    })
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
        validate(&settings).unwrap();
        let id = worker_id(&settings);
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
            assert!(validate(&broken).is_err(), "{broken:?}");
        }
    }
}
