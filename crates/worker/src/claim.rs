//! Claiming tasks. The worker holds a bounded number of tasks that are not
//! yet being decoded (the prefetch), so a slow model never makes it take
//! more work than it can finish within the visibility timeout, and memory
//! stays bounded however long the queue is.

use std::sync::Arc;
use std::time::Duration;

use dfscan_queue::{ClaimedTask, JobQueue};
use tokio::sync::{mpsc, OwnedSemaphorePermit, Semaphore};
use tokio_util::sync::CancellationToken;

use crate::backoff::queue_backoff;
use crate::health::{Health, Turn};
use crate::metrics::{since_ms, WorkerMetrics};
use crate::task::InHand;

/// A claimed task with its place in the prefetch, freed once its items are
/// handed to the decoders.
pub(crate) struct Claimed {
    pub task: ClaimedTask,
    pub permit: OwnedSemaphorePermit,
}

pub(crate) struct Claimer {
    pub queue: Arc<dyn JobQueue>,
    pub model: String,
    pub worker_id: String,
    pub wait: Duration,
    /// Places for tasks claimed and not yet handed to the decoders.
    pub places: Arc<Semaphore>,
    /// Also bounds the tasks in progress and waiting to be completed.
    pub in_hand: Arc<InHand>,
    pub metrics: Arc<WorkerMetrics>,
    /// Every claim that returns, empty or failed, is the loop turning.
    pub health: Health,
}

impl Claimer {
    /// Claims until `shutdown`. A claim under way then is finished rather
    /// than dropped (it returns within `wait`): dropping a Redis read could
    /// leave its tasks delivered to nobody until their visibility timeout.
    pub(crate) async fn run(
        self,
        tasks: mpsc::UnboundedSender<Claimed>,
        shutdown: CancellationToken,
    ) {
        let mut backoff = queue_backoff();
        loop {
            let acquired = tokio::select! {
                biased;
                () = shutdown.cancelled() => return,
                permit = Arc::clone(&self.places).acquire_owned() => permit,
            };
            // The semaphore is never closed.
            let Ok(mut permit) = acquired else { return };
            // Claim every free place at once: one round trip instead of one per task.
            let free = u32::try_from(self.places.available_permits()).unwrap_or(u32::MAX);
            if free > 0 {
                if let Ok(more) = Arc::clone(&self.places).try_acquire_many_owned(free) {
                    permit.merge(more);
                }
            }
            let places = permit.num_permits();
            let room = tokio::select! {
                biased;
                () = shutdown.cancelled() => return,
                room = self.in_hand.reserve(places) => room,
            };
            if room < places {
                drop(permit.split(places - room));
            }
            match self
                .queue
                .claim(&self.model, &self.worker_id, room, self.wait)
                .await
            {
                Ok(claimed) => {
                    backoff.reset();
                    let got = claimed.len();
                    self.health.turned(if got == 0 {
                        Turn::IdleClaim
                    } else {
                        Turn::Claimed
                    });
                    self.in_hand.unreserve(room.saturating_sub(got));
                    for task in claimed {
                        let Some(place) = permit.split(1) else {
                            tracing::warn!(
                                asked = room,
                                got,
                                "the queue handed out more tasks than asked for; the extra ones \
                                 will be redelivered after the visibility timeout"
                            );
                            break;
                        };
                        self.in_hand.insert(&task.handle);
                        self.metrics.tasks_in_hand.set(self.in_hand.len() as i64);
                        self.metrics.claimed(since_ms(task.enqueued_ms));
                        if tasks
                            .send(Claimed {
                                task,
                                permit: place,
                            })
                            .is_err()
                        {
                            // The pipeline is being torn down.
                            return;
                        }
                    }
                }
                Err(e) => {
                    self.health.turned(Turn::ClaimFailed);
                    drop(permit);
                    self.in_hand.unreserve(room);
                    let delay = backoff.next_delay();
                    tracing::warn!(error = %e, retry_in_ms = delay.as_millis() as u64, "claiming tasks failed");
                    tokio::select! {
                        () = shutdown.cancelled() => return,
                        () = tokio::time::sleep(delay) => {}
                    }
                }
            }
        }
    }
}
