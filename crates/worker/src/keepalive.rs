//! What keeps the worker known to the queue while it works: heartbeats (so
//! the coordinator lists it, with its progress and whether it is draining)
//! and claim refreshes (so a task waiting behind long batches is not
//! handed to another worker).

use std::sync::Arc;
use std::time::Duration;

use dfscan_proto::v1::Worker;
use dfscan_queue::{now_ms, JobQueue};
use tokio::time::{interval, interval_at, Instant, MissedTickBehavior};
use tokio_util::sync::CancellationToken;

use crate::task::{Counters, InHand};

/// Sends heartbeats until `halt`; one goes out as soon as `shutdown` is
/// cancelled, so the worker shows as draining right away.
pub(crate) async fn heartbeat(
    queue: Arc<dyn JobQueue>,
    template: Worker,
    counters: Arc<Counters>,
    every: Duration,
    shutdown: CancellationToken,
    halt: CancellationToken,
) {
    let mut tick = interval(every);
    tick.set_missed_tick_behavior(MissedTickBehavior::Delay);
    let mut told_draining = false;
    loop {
        tokio::select! {
            biased;
            () = halt.cancelled() => return,
            () = shutdown.cancelled(), if !told_draining => {}
            _ = tick.tick() => {}
        }
        let draining = shutdown.is_cancelled();
        told_draining |= draining;
        let worker = Worker {
            heartbeat_unix_ms: now_ms(),
            items_scored: Counters::get(&counters.scored),
            batches: Counters::get(&counters.batches),
            draining,
            ..template.clone()
        };
        if let Err(e) = queue.heartbeat(&worker).await {
            tracing::warn!(error = %e, "heartbeat failed");
        }
    }
}

/// Restarts the visibility timeout of every task in hand each `every`
/// until `halt`.
pub(crate) async fn refresh(
    queue: Arc<dyn JobQueue>,
    worker_id: String,
    in_hand: Arc<InHand>,
    every: Duration,
    halt: CancellationToken,
) {
    let mut tick = interval_at(Instant::now() + every, every);
    tick.set_missed_tick_behavior(MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            biased;
            () = halt.cancelled() => return,
            _ = tick.tick() => {}
        }
        let handles = in_hand.handles();
        if handles.is_empty() {
            continue;
        }
        if let Err(e) = queue.refresh(&worker_id, &handles).await {
            tracing::warn!(error = %e, tasks = handles.len(), "refreshing claimed tasks failed");
        }
    }
}
