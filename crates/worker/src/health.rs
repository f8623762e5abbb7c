//! Whether the worker can take work (readiness) and whether it is still
//! doing it (liveness), as Kubernetes' probes ask.
//!
//! A worker serves no API, so nothing outside it notices when it hangs: a
//! forward pass that never returns (a stuck CUDA call) or a deadlock leaves
//! the process running and its tasks claimed. Liveness is therefore a
//! watchdog on the claim-and-score loop: every claim that returns (with
//! tasks, empty, or with a Redis error that will be retried), every batch
//! the model answers and every completion attempt counts as the loop
//! turning, and a batch at the model is timed on its own, because an idle
//! queue keeps claims turning while a hung batch waits. Readiness is the
//! model loaded and warmed up, not draining, and live.

use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use tokio_util::sync::CancellationToken;

use crate::error::WorkerError;
use crate::settings::{self, WorkerSettings};

/// The worker's state as the probes see it; clones share it.
#[derive(Clone)]
pub struct Health {
    inner: Arc<Inner>,
}

struct Inner {
    /// How long the loop may go without turning, or the model without
    /// answering a batch, before the worker is not live.
    timeout: Duration,
    state: Mutex<State>,
}

struct State {
    phase: Phase,
    /// When the loop last turned, and how.
    turned: (Instant, Turn),
    /// Batches handed to the model and not yet answered.
    at_model: usize,
    /// Since when the model has been working on its oldest batch.
    busy_since: Option<Instant>,
}

enum Phase {
    Loading,
    WarmingUp,
    /// The pipeline runs; draining once `shutdown` is cancelled.
    Serving {
        shutdown: CancellationToken,
    },
    Stopped,
}

/// What made the loop turn last (named in the probes' answers).
#[derive(Debug, Clone, Copy)]
pub(crate) enum Turn {
    Started,
    Claimed,
    IdleClaim,
    ClaimFailed,
    Batch,
    Completion,
}

impl Turn {
    fn describe(self) -> &'static str {
        match self {
            Turn::Started => "the pipeline starting",
            Turn::Claimed => "a claim that returned tasks",
            Turn::IdleClaim => "a claim that found the queue empty",
            Turn::ClaimFailed => "a failed claim, retried",
            Turn::Batch => "a batch answered by the model",
            Turn::Completion => "a completion attempt",
        }
    }
}

impl Health {
    /// A worker that is loading its model, with `settings.liveness_timeout_s`.
    /// The settings are checked here, the first thing a worker does, so
    /// that a bad value fails the start before a model is downloaded.
    pub fn new(settings: &WorkerSettings) -> Result<Self, WorkerError> {
        settings::validate(settings)?;
        Ok(Self {
            inner: Arc::new(Inner {
                timeout: Duration::from_secs(settings.liveness_timeout_s),
                state: Mutex::new(State {
                    phase: Phase::Loading,
                    turned: (Instant::now(), Turn::Started),
                    at_model: 0,
                    busy_since: None,
                }),
            }),
        })
    }

    fn state(&self) -> MutexGuard<'_, State> {
        // The state is a few plain fields, consistent after any panic.
        self.inner.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub(crate) fn warming_up(&self) {
        self.state().phase = Phase::WarmingUp;
    }

    /// The pipeline starts: the watchdog is armed, and the worker is ready
    /// until `shutdown` is cancelled.
    pub(crate) fn serving(&self, shutdown: CancellationToken) {
        let mut state = self.state();
        state.phase = Phase::Serving { shutdown };
        state.turned = (Instant::now(), Turn::Started);
    }

    pub(crate) fn stopped(&self) {
        self.state().phase = Phase::Stopped;
    }

    pub(crate) fn turned(&self, turn: Turn) {
        self.state().turned = (Instant::now(), turn);
    }

    /// A batch goes to the model; with none there, its clock starts now.
    pub(crate) fn batch_submitted(&self) {
        let mut state = self.state();
        if state.at_model == 0 {
            state.busy_since = Some(Instant::now());
        }
        state.at_model += 1;
    }

    /// The model answered its oldest batch (it runs them in order), so the
    /// next one, if any, starts now.
    pub(crate) fn batch_answered(&self) {
        let now = Instant::now();
        let mut state = self.state();
        state.at_model = state.at_model.saturating_sub(1);
        state.busy_since = (state.at_model > 0).then_some(now);
        state.turned = (now, Turn::Batch);
    }

    /// `Ok` with a description while the worker is live, `Err` with what is
    /// stale and for how long when it is not. Not armed before the pipeline
    /// runs: loading a model (downloading it) has no progress to watch, and
    /// a start that never ends is the readiness (startup) probe's to catch.
    pub fn live(&self) -> Result<String, String> {
        let state = self.state();
        match state.phase {
            Phase::Loading | Phase::WarmingUp => Ok("live: starting".into()),
            Phase::Stopped => Err("not live: the worker has stopped".into()),
            Phase::Serving { .. } => self.watch(&state),
        }
    }

    fn watch(&self, state: &State) -> Result<String, String> {
        let limit = self.inner.timeout;
        if let Some(since) = state.busy_since {
            let busy = since.elapsed();
            if busy > limit {
                return Err(format!(
                    "not live: the model has been running one batch for {:.0} s \
                     (liveness_timeout_s = {}): a forward pass is not returning",
                    busy.as_secs_f64(),
                    limit.as_secs()
                ));
            }
        }
        let (at, turn) = state.turned;
        let idle = at.elapsed();
        if idle > limit {
            return Err(format!(
                "not live: the claim-and-score loop has not turned for {:.0} s \
                 (liveness_timeout_s = {}; last: {})",
                idle.as_secs_f64(),
                limit.as_secs(),
                turn.describe()
            ));
        }
        Ok(format!(
            "live: last turn {:.1} s ago ({})",
            idle.as_secs_f64(),
            turn.describe()
        ))
    }

    /// `Ok` once the model is loaded and warmed up, while the worker is not
    /// draining and is live; `Err` with the reason otherwise.
    pub fn ready(&self) -> Result<String, String> {
        let state = self.state();
        match &state.phase {
            Phase::Loading => Err("not ready: loading the model".into()),
            Phase::WarmingUp => Err("not ready: warming up the model".into()),
            Phase::Stopped => Err("not ready: the worker has stopped".into()),
            Phase::Serving { shutdown } if shutdown.is_cancelled() => {
                Err("not ready: draining (finishing the tasks in hand, then exiting)".into())
            }
            Phase::Serving { .. } => self
                .watch(&state)
                .map(|_| "ready".into())
                .map_err(|stale| stale.replacen("not live", "not ready", 1)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn health(timeout_s: u64) -> Health {
        Health::new(&WorkerSettings {
            liveness_timeout_s: timeout_s,
            ..Default::default()
        })
        .unwrap()
    }

    /// Moves the loop's and the model's clocks `by` into the past.
    fn age(health: &Health, by: Duration) {
        let mut state = health.state();
        state.turned.0 -= by;
        if let Some(since) = &mut state.busy_since {
            *since -= by;
        }
    }

    #[test]
    fn ready_only_between_warm_up_and_drain() {
        let h = health(60);
        assert!(h.ready().unwrap_err().contains("loading"));
        assert!(h.live().is_ok(), "not armed while loading");
        h.warming_up();
        assert!(h.ready().unwrap_err().contains("warming up"));
        let shutdown = CancellationToken::new();
        h.serving(shutdown.clone());
        assert_eq!(h.ready().unwrap(), "ready");
        shutdown.cancel();
        assert!(h.ready().unwrap_err().contains("draining"));
        assert!(h.live().is_ok(), "draining is still live");
        h.stopped();
        assert!(h.ready().is_err() && h.live().is_err());
    }

    #[test]
    fn a_loop_that_stops_turning_is_not_live() {
        let h = health(30);
        h.serving(CancellationToken::new());
        h.turned(Turn::IdleClaim);
        age(&h, Duration::from_secs(31));
        let stale = h.live().unwrap_err();
        assert!(stale.contains("has not turned for 31 s"), "{stale}");
        assert!(
            stale.contains("a claim that found the queue empty"),
            "{stale}"
        );
        assert!(h.ready().unwrap_err().starts_with("not ready"));
        h.turned(Turn::ClaimFailed);
        assert!(h.live().unwrap().contains("a failed claim"));
    }

    #[test]
    fn a_batch_the_model_does_not_answer_is_not_live_while_claims_turn() {
        let h = health(30);
        h.serving(CancellationToken::new());
        h.batch_submitted();
        h.batch_submitted();
        age(&h, Duration::from_secs(31));
        h.turned(Turn::IdleClaim);
        let stale = h.live().unwrap_err();
        assert!(stale.contains("one batch for 31 s"), "{stale}");
        // The oldest batch is answered: the second one's clock starts then.
        h.batch_answered();
        assert!(h.live().is_ok());
        age(&h, Duration::from_secs(31));
        h.turned(Turn::IdleClaim);
        assert!(h.live().unwrap_err().contains("one batch"));
        h.batch_answered();
        age(&h, Duration::from_secs(31));
        h.turned(Turn::IdleClaim);
        assert!(h.live().is_ok(), "an idle model is not stalled");
    }
}
