//! Bookkeeping of the tasks a worker holds. A task's items finish in any
//! order and in different places (a decode error on a decode thread, scores
//! from whichever batches the items landed in), so each task gathers its
//! results in a shared slot and the last one to arrive hands the task on
//! for completion.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use dfscan_proto::v1::{Item, ItemResult, VerdictPolicy};
use dfscan_queue::policy::verdict;
use dfscan_queue::TaskHandle;
use tokio::sync::{mpsc, Semaphore};

/// A task whose every item has its result.
#[derive(Debug)]
pub(crate) struct Finished {
    pub handle: TaskHandle,
    pub results: Vec<ItemResult>,
    /// When the task was queued (ms since the Unix epoch).
    pub enqueued_ms: i64,
}

/// Where one task's results gather.
pub(crate) struct TaskSlot {
    handle: TaskHandle,
    enqueued_ms: i64,
    /// The job's verdict policy and each item's metadata, added to the
    /// results once they are all in.
    policy: Option<VerdictPolicy>,
    metadata: Vec<HashMap<String, String>>,
    gathering: Mutex<Gathering>,
}

struct Gathering {
    results: Vec<Option<ItemResult>>,
    missing: usize,
}

impl TaskSlot {
    pub(crate) fn new(
        handle: TaskHandle,
        enqueued_ms: i64,
        items: &[Item],
        policy: Option<VerdictPolicy>,
    ) -> Arc<Self> {
        Arc::new(Self {
            handle,
            enqueued_ms,
            policy,
            metadata: items.iter().map(|item| item.metadata.clone()).collect(),
            gathering: Mutex::new(Gathering {
                results: vec![None; items.len()],
                missing: items.len(),
            }),
        })
    }

    /// The item's position in its job's upload.
    pub(crate) fn index(&self, position: usize) -> u64 {
        self.handle.first_index + position as u64
    }

    /// Stores the result of the item at `position`; returns the task once
    /// it is the last. A second result for a position is ignored.
    fn record(&self, position: usize, result: ItemResult) -> Option<Finished> {
        let mut g = lock(&self.gathering);
        let slot = g.results.get_mut(position)?;
        if slot.is_some() {
            return None;
        }
        *slot = Some(result);
        g.missing -= 1;
        if g.missing > 0 {
            return None;
        }
        let mut results: Vec<ItemResult> = g.results.iter_mut().filter_map(Option::take).collect();
        for (result, metadata) in results.iter_mut().zip(&self.metadata) {
            result.metadata.clone_from(metadata);
            if let (Some(policy), Some(score)) = (&self.policy, result.fake_score) {
                result.verdict = verdict(policy, score);
            }
        }
        Some(Finished {
            handle: self.handle.clone(),
            results,
            enqueued_ms: self.enqueued_ms,
        })
    }
}

/// Hands finished tasks to the completer; cloned into every place that
/// produces results.
#[derive(Clone)]
pub(crate) struct Finisher {
    tx: mpsc::UnboundedSender<Finished>,
}

impl Finisher {
    pub(crate) fn new() -> (Self, mpsc::UnboundedReceiver<Finished>) {
        let (tx, rx) = mpsc::unbounded_channel();
        (Self { tx }, rx)
    }

    pub(crate) fn record(&self, slot: &TaskSlot, position: usize, result: ItemResult) {
        if let Some(done) = slot.record(position, result) {
            self.finish(done);
        }
    }

    /// A task settled without scoring (cancelled, empty).
    pub(crate) fn finish(&self, done: Finished) {
        // Fails only when the completer is gone, i.e. the worker is being
        // torn down after its grace period: the queue redelivers the task.
        let _ = self.tx.send(done);
    }
}

/// Every task claimed and not yet completed or given up, so they can be
/// refreshed and, at a forced stop, counted. Its room bounds how many a
/// worker holds at once, completions waiting on a slow queue included.
pub(crate) struct InHand {
    tasks: Mutex<HashMap<String, TaskHandle>>,
    room: Semaphore,
}

impl InHand {
    pub(crate) fn new(capacity: usize) -> Self {
        Self {
            tasks: Mutex::default(),
            room: Semaphore::new(capacity.clamp(1, Semaphore::MAX_PERMITS)),
        }
    }

    /// Waits for room for at least one task and reserves room for up to
    /// `max`; returns how many.
    pub(crate) async fn reserve(&self, max: usize) -> usize {
        // The semaphore is never closed.
        if let Ok(first) = self.room.acquire().await {
            first.forget();
        }
        let more = u32::try_from(self.room.available_permits().min(max.saturating_sub(1)))
            .unwrap_or(u32::MAX);
        if more > 0 {
            if let Ok(permits) = self.room.try_acquire_many(more) {
                permits.forget();
            }
        }
        1 + more as usize
    }

    /// Gives back room reserved and not used.
    pub(crate) fn unreserve(&self, n: usize) {
        self.room.add_permits(n);
    }

    /// Takes one reserved place.
    pub(crate) fn insert(&self, handle: &TaskHandle) {
        let known = lock(&self.tasks).insert(handle.entry_id.clone(), handle.clone());
        // Redelivered to us while we still hold it (our claim lapsed): one
        // entry, one place.
        if known.is_some() {
            self.unreserve(1);
        }
    }

    /// Frees the task's place.
    pub(crate) fn remove(&self, handle: &TaskHandle) {
        if lock(&self.tasks).remove(&handle.entry_id).is_some() {
            self.unreserve(1);
        }
    }

    pub(crate) fn handles(&self) -> Vec<TaskHandle> {
        lock(&self.tasks).values().cloned().collect()
    }

    pub(crate) fn len(&self) -> usize {
        lock(&self.tasks).len()
    }
}

/// Running totals for heartbeats and the final report.
#[derive(Default)]
pub(crate) struct Counters {
    /// Tasks completed.
    pub tasks: AtomicU64,
    /// Results recorded by those completions (scores and errors).
    pub items: AtomicU64,
    /// Items the model (or the no-op scorer) gave a score.
    pub scored: AtomicU64,
    pub batches: AtomicU64,
}

impl Counters {
    pub(crate) fn add(counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Ordering::Relaxed);
    }

    pub(crate) fn get(counter: &AtomicU64) -> u64 {
        counter.load(Ordering::Relaxed)
    }
}

/// The guarded data stays consistent even if a holder panicked (every
/// update is a few field writes), so a poisoned lock is used as is rather
/// than taking the worker down.
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

#[cfg(test)]
mod tests {
    use dfscan_queue::error_result;

    use super::*;

    fn handle(first_index: u64, count: u64) -> TaskHandle {
        TaskHandle {
            model: "m".into(),
            priority: Default::default(),
            entry_id: "1".into(),
            job_id: "j".into(),
            first_index,
            count,
        }
    }

    #[test]
    fn the_last_result_finishes_the_task_in_item_order() {
        let (finisher, mut rx) = Finisher::new();
        let items: Vec<Item> = ["a", "b", "c"]
            .map(|id| Item {
                id: id.into(),
                ..Default::default()
            })
            .into();
        let slot = TaskSlot::new(handle(10, 3), 0, &items, None);
        finisher.record(&slot, 2, error_result("c", slot.index(2), "bad"));
        finisher.record(&slot, 0, error_result("a", slot.index(0), "bad"));
        // A duplicate must not finish the task early.
        finisher.record(&slot, 0, error_result("a", slot.index(0), "again"));
        assert!(rx.try_recv().is_err());
        finisher.record(&slot, 1, error_result("b", slot.index(1), "bad"));
        let done = rx.try_recv().unwrap();
        let got: Vec<(&str, u64, &str)> = done
            .results
            .iter()
            .map(|r| (r.id.as_str(), r.index, r.error.as_str()))
            .collect();
        assert_eq!(got, [("a", 10, "bad"), ("b", 11, "bad"), ("c", 12, "bad")]);
        // Out of range positions are ignored rather than panicking.
        finisher.record(&slot, 7, error_result("x", 0, "bad"));
        assert!(rx.try_recv().is_err());
    }

    #[tokio::test]
    async fn in_hand_bounds_the_tasks_held() {
        let in_hand = InHand::new(3);
        assert_eq!(in_hand.reserve(10).await, 3);
        let (a, b) = (
            handle(0, 1),
            TaskHandle {
                entry_id: "2".into(),
                ..handle(1, 1)
            },
        );
        in_hand.insert(&a);
        in_hand.insert(&b);
        // A redelivery of a task in hand takes no second place.
        in_hand.insert(&a);
        assert_eq!(in_hand.len(), 2);
        assert_eq!(in_hand.reserve(10).await, 1);
        in_hand.unreserve(1);
        in_hand.remove(&a);
        in_hand.remove(&a);
        assert_eq!(in_hand.reserve(10).await, 2);
        assert!(
            tokio::time::timeout(std::time::Duration::from_millis(20), in_hand.reserve(1))
                .await
                .is_err()
        );
    }
}
