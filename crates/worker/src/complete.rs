//! Recording finished tasks in the queue. Results must never be lost, so a
//! completion that fails because the backend is unavailable is retried
//! until it goes through (completion is idempotent); completions run
//! concurrently so that one slow round trip does not hold up the rest.

use std::sync::Arc;

use dfscan_queue::{Completion, JobQueue, QueueError};
use tokio::sync::mpsc;
use tokio::task::JoinSet;

use crate::backoff::queue_backoff;
use crate::health::{Health, Turn};
use crate::metrics::{since_ms, WorkerMetrics};
use crate::task::{Counters, Finished, InHand};

pub(crate) struct Completer {
    pub queue: Arc<dyn JobQueue>,
    pub in_hand: Arc<InHand>,
    pub counters: Arc<Counters>,
    pub metrics: Arc<WorkerMetrics>,
    /// Every completion attempt, failed ones included, is the loop turning.
    pub health: Health,
}

impl Completer {
    /// Runs until every producer of results is gone and every completion
    /// is recorded.
    pub(crate) async fn run(self, mut finished: mpsc::UnboundedReceiver<Finished>) {
        let this = Arc::new(self);
        let mut running = JoinSet::new();
        loop {
            tokio::select! {
                done = finished.recv() => match done {
                    Some(done) => {
                        running.spawn(Arc::clone(&this).complete(done));
                    }
                    None => break,
                },
                Some(joined) = running.join_next(), if !running.is_empty() => report_panic(joined),
            }
        }
        while let Some(joined) = running.join_next().await {
            report_panic(joined);
        }
    }

    async fn complete(self: Arc<Self>, done: Finished) {
        let mut backoff = queue_backoff();
        let items = done.results.len() as u64;
        loop {
            let attempt = self
                .queue
                .complete(&done.handle, done.results.clone())
                .await;
            self.health.turned(Turn::Completion);
            match attempt {
                Ok(completion) => {
                    if completion != Completion::Recorded {
                        tracing::debug!(job = %done.handle.job_id, task = %done.handle.entry_id, ?completion, "task was completed already or its job is gone");
                    }
                    Counters::add(&self.counters.tasks, 1);
                    Counters::add(&self.counters.items, items);
                    if completion == Completion::Recorded {
                        let failed =
                            done.results.iter().filter(|r| !r.error.is_empty()).count() as u64;
                        self.metrics
                            .completed(items - failed, failed, since_ms(done.enqueued_ms));
                    }
                    break;
                }
                Err(QueueError::Unavailable(e)) => {
                    let delay = backoff.next_delay();
                    tracing::warn!(job = %done.handle.job_id, task = %done.handle.entry_id, error = %e, retry_in_ms = delay.as_millis() as u64, "recording results failed");
                    tokio::time::sleep(delay).await;
                }
                Err(e) => {
                    // Not an outage: retrying would fail the same way. The
                    // queue redelivers the task after its visibility timeout.
                    tracing::warn!(job = %done.handle.job_id, task = %done.handle.entry_id, error = %e, "the queue refused the task's results");
                    break;
                }
            }
        }
        self.in_hand.remove(&done.handle);
        self.metrics.tasks_in_hand.set(self.in_hand.len() as i64);
    }
}

fn report_panic(joined: Result<(), tokio::task::JoinError>) {
    if let Err(e) = joined {
        tracing::error!(error = %e, "a task completion panicked; the queue will redeliver the task");
    }
}
