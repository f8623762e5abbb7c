//! Turns claimed tasks into work: cancelled jobs are answered at once (and
//! a job cancelled while its task is being handed out gets its remaining
//! items answered, see `cancel`), unreadable payloads are left to the
//! queue, and the items of the rest go to the decoders: a bounded number of
//! items at a time, each of which, once decoded, waits for its rows' share
//! of the decoded-rows budget (`RowBudget`), so that decoding never runs far
//! ahead of the model, in items or in memory.

use std::sync::Arc;

use dfscan_queue::{error_result, error_results, ClaimedTask, CANCELLED_ERROR};
use tokio::sync::{mpsc, Semaphore};

use crate::batcher::Decoded;
use crate::cancel::Cancelled;
use crate::claim::Claimed;
use crate::metrics::WorkerMetrics;
use crate::scoring::{RowBudget, Runner};
use crate::task::{Finished, Finisher, InHand, TaskSlot};

pub(crate) struct Dispatcher {
    pub runner: Arc<Runner>,
    /// Items handed to the decoders and not yet decoded.
    pub places: Arc<Semaphore>,
    /// Rows decoded and not yet through the model.
    pub rows: RowBudget,
    pub finisher: Finisher,
    pub in_hand: Arc<InHand>,
    pub metrics: Arc<WorkerMetrics>,
    /// Jobs cancelled since their tasks were claimed.
    pub cancelled: Arc<Cancelled>,
}

impl Dispatcher {
    /// Runs until the claimer stops and every claimed task is dispatched.
    pub(crate) async fn run(
        self,
        mut claimed: mpsc::UnboundedReceiver<Claimed>,
        decoded: mpsc::UnboundedSender<Decoded>,
    ) {
        while let Some(Claimed { task, permit }) = claimed.recv().await {
            self.dispatch(task, &decoded).await;
            // Only now may the claimer take another task in its place.
            drop(permit);
        }
    }

    async fn dispatch(&self, task: ClaimedTask, decoded: &mpsc::UnboundedSender<Decoded>) {
        let ClaimedTask {
            handle,
            items,
            job_cancelled,
            deliveries,
            policy,
            faces,
            enqueued_ms,
        } = task;
        if job_cancelled || self.cancelled.contains(&handle.job_id) {
            let results = error_results(&handle, items.as_deref().ok(), CANCELLED_ERROR);
            self.finisher.finish(Finished {
                handle,
                results,
                enqueued_ms,
            });
            return;
        }
        let items = match items {
            Ok(items) => items,
            Err(e) => {
                // Neither completed nor refreshed: the queue redelivers it
                // and, after `max_deliveries`, dead-letters it with error
                // results, which is the one place that can record them.
                tracing::warn!(
                    job = %handle.job_id,
                    task = %handle.entry_id,
                    deliveries,
                    error = %e,
                    "cannot read the task's items; leaving it to the queue"
                );
                self.in_hand.remove(&handle);
                return;
            }
        };
        if items.is_empty() {
            self.finisher.finish(Finished {
                handle,
                results: Vec::new(),
                enqueued_ms,
            });
            return;
        }
        let faces = match dfscan_queue::faces::job_faces(self.runner.faces(), faces.as_ref()) {
            Ok(faces) => Arc::new(faces),
            Err(e) => {
                let error = format!("the job's face options cannot be used: {e}");
                let results = error_results(&handle, Some(&items), &error);
                self.finisher.finish(Finished {
                    handle,
                    results,
                    enqueued_ms,
                });
                return;
            }
        };
        let job_id = handle.job_id.clone();
        let slot = TaskSlot::new(handle, enqueued_ms, &items, policy);
        let mut items = items.into_iter().enumerate();
        while let Some((position, item)) = items.next() {
            let Ok(place) = Arc::clone(&self.places).acquire_owned().await else {
                // The semaphore is never closed.
                return;
            };
            if self.cancelled.contains(&job_id) {
                drop(place);
                for (position, item) in std::iter::once((position, item)).chain(items) {
                    let index = slot.index(position);
                    let result = error_result(&item.id, index, CANCELLED_ERROR);
                    self.finisher.record(&slot, position, result);
                }
                return;
            }
            let slot = Arc::clone(&slot);
            let finisher = self.finisher.clone();
            let decoded = decoded.clone();
            let id = item.id.clone();
            let metrics = Arc::clone(&self.metrics);
            self.runner.decode(
                item,
                Arc::clone(&faces),
                self.rows.clone(),
                move |prepared, took| {
                    metrics.decoded(took);
                    // Decoded: its place goes to the next item, its rows
                    // hold the budget until the model is done with them.
                    drop(place);
                    match prepared {
                        Ok((item, rows)) => {
                            // Fails only while the worker is torn down.
                            let _ = decoded.send(Decoded {
                                slot,
                                position,
                                id,
                                item,
                                permit: rows,
                            });
                        }
                        Err(e) => {
                            let index = slot.index(position);
                            finisher.record(&slot, position, error_result(&id, index, &e));
                        }
                    }
                },
            );
        }
    }
}
