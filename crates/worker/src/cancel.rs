//! Cancellation of work already in hand. A claim marks the tasks of jobs
//! cancelled before it, and the dispatcher answers those at once; but a
//! worker holds up to `prefetch_tasks` tasks besides the ones it is
//! decoding and scoring, and a job cancelled after they were claimed would
//! be scored to the end. So the states of the jobs in hand are read every
//! [`POLL`], and the dispatcher stops handing a cancelled job's items to
//! the decoders: they get the error "job cancelled". Items already at the
//! decoders, decoded or at the model (at most two batches of each) finish.

use std::collections::HashSet;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use dfscan_queue::{JobQueue, JobState};
use tokio::time::{interval, MissedTickBehavior};
use tokio_util::sync::CancellationToken;

use crate::task::InHand;

/// How often the jobs in hand are looked at: a cancel takes effect within
/// about this long, at one job read per job in hand.
pub(crate) const POLL: Duration = Duration::from_secs(1);

/// The jobs in hand known to be cancelled.
#[derive(Default)]
pub(crate) struct Cancelled(Mutex<HashSet<String>>);

impl Cancelled {
    pub(crate) fn contains(&self, job_id: &str) -> bool {
        self.lock().contains(job_id)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashSet<String>> {
        self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Reads the states of the jobs in hand every [`POLL`] until `halt`.
    pub(crate) async fn watch(
        self: Arc<Self>,
        queue: Arc<dyn JobQueue>,
        in_hand: Arc<InHand>,
        halt: CancellationToken,
    ) {
        let mut tick = interval(POLL);
        tick.set_missed_tick_behavior(MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                biased;
                () = halt.cancelled() => return,
                _ = tick.tick() => {}
            }
            let mut jobs: Vec<String> = in_hand.handles().into_iter().map(|h| h.job_id).collect();
            jobs.sort_unstable();
            jobs.dedup();
            // Jobs no longer in hand are forgotten, so the set stays small.
            self.lock().retain(|job| jobs.binary_search(job).is_ok());
            for job in jobs {
                if self.contains(&job) {
                    continue;
                }
                match queue.get_job(&job).await {
                    Ok(record) if record.state == JobState::Cancelled => {
                        tracing::info!(job = %job, "job cancelled: its items in hand are not scored");
                        self.lock().insert(job);
                    }
                    Ok(_) => {}
                    // Looked at again at the next tick.
                    Err(error) => tracing::debug!(job = %job, %error, "reading a job's state"),
                }
            }
        }
    }
}
