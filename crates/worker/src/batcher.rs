//! Merges decoded images from any tasks into batches for the model. A
//! batch is full at `max_batch` classifier rows (an image is one row, or
//! one per face); it goes as soon as it is full, or `max_wait` after its
//! first image
//! when the model has room; while the model is busy it keeps filling, so a
//! loaded worker runs full batches and a quiet one answers within a few
//! milliseconds.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;

use dfscan_model::engine::LogitsReceiver;
use dfscan_model::ModelError;
use tokio::sync::{mpsc, oneshot, OwnedSemaphorePermit};
use tokio::time::{sleep_until, Instant};

use crate::error::WorkerError;
use crate::health::Health;
use crate::metrics::WorkerMetrics;
use crate::scoring::{rows, Plans, Ready, Runner};
use crate::task::{Counters, Finisher, TaskSlot};

/// Batches at the model at once: one running and one queued behind it,
/// which is what the engine's channel holds, so submitting never waits on
/// it and no third batch of pixels exists.
const MAX_IN_FLIGHT: usize = 2;

/// An item ready for the model.
pub(crate) struct Decoded {
    pub slot: Arc<TaskSlot>,
    pub position: usize,
    pub id: String,
    pub item: Ready,
    /// Its rows' share of the decoded-rows budget.
    pub permit: OwnedSemaphorePermit,
}

/// Whose row is which in a batch.
struct Member {
    slot: Arc<TaskSlot>,
    position: usize,
    id: String,
}

struct InFlight {
    members: Vec<Member>,
    plans: Plans,
    logits: LogitsReceiver,
    submitted: Instant,
}

type Outcome = Result<Result<Vec<f32>, ModelError>, oneshot::error::RecvError>;

enum Event {
    Scored(Outcome),
    Image(Option<Decoded>),
    Due,
}

pub(crate) struct Batcher {
    pub runner: Arc<Runner>,
    pub max_batch: usize,
    pub max_wait: Duration,
    pub finisher: Finisher,
    pub counters: Arc<Counters>,
    pub metrics: Arc<WorkerMetrics>,
    /// Times each batch at the model (the liveness watchdog).
    pub health: Health,
}

impl Batcher {
    /// Runs until the image channel is closed and every batch is scored.
    pub(crate) async fn run(
        self,
        mut images: mpsc::UnboundedReceiver<Decoded>,
    ) -> Result<(), WorkerError> {
        let mut in_flight: VecDeque<InFlight> = VecDeque::with_capacity(MAX_IN_FLIGHT);
        let mut open = true;
        loop {
            let mut batch = Vec::with_capacity(self.max_batch);
            let mut batch_rows = 0;
            let mut due: Option<Instant> = None;
            while open && batch_rows < self.max_batch {
                let room = in_flight.len() < MAX_IN_FLIGHT;
                let wake = due.unwrap_or_else(Instant::now);
                let event = tokio::select! {
                    biased;
                    outcome = oldest(&mut in_flight) => Event::Scored(outcome),
                    image = images.recv() => Event::Image(image),
                    () = sleep_until(wake), if room && due.is_some() => Event::Due,
                };
                match event {
                    Event::Scored(outcome) => {
                        if let Some(done) = in_flight.pop_front() {
                            self.finish(done, outcome)?;
                        }
                    }
                    Event::Image(Some(image)) => {
                        due.get_or_insert_with(|| Instant::now() + self.max_wait);
                        batch_rows += rows(&image.item);
                        batch.push(image);
                    }
                    Event::Image(None) => open = false,
                    Event::Due => break,
                }
            }
            if !batch.is_empty() {
                while in_flight.len() >= MAX_IN_FLIGHT {
                    self.finish_oldest(&mut in_flight).await?;
                }
                in_flight.push_back(self.submit(batch).await?);
            }
            if !open {
                while !in_flight.is_empty() {
                    self.finish_oldest(&mut in_flight).await?;
                }
                return Ok(());
            }
        }
    }

    async fn submit(&self, batch: Vec<Decoded>) -> Result<InFlight, WorkerError> {
        let submitted = Instant::now();
        let mut members = Vec::with_capacity(batch.len());
        let mut items = Vec::with_capacity(batch.len());
        let mut permits = Vec::with_capacity(batch.len());
        for image in batch {
            members.push(Member {
                slot: image.slot,
                position: image.position,
                id: image.id,
            });
            items.push(image.item);
            permits.push(image.permit);
        }
        // Counted from before the hand-over: a model that is stuck blocks
        // the submission itself once its channel is full.
        self.health.batch_submitted();
        let (logits, plans) = self.runner.submit(items, permits).await?;
        Ok(InFlight {
            members,
            plans,
            logits,
            submitted,
        })
    }

    async fn finish_oldest(&self, in_flight: &mut VecDeque<InFlight>) -> Result<(), WorkerError> {
        if let Some(mut done) = in_flight.pop_front() {
            let outcome = (&mut done.logits).await;
            self.finish(done, outcome)?;
        }
        Ok(())
    }

    /// Gives each row's task its result.
    fn finish(&self, batch: InFlight, outcome: Outcome) -> Result<(), WorkerError> {
        self.health.batch_answered();
        let rows = batch.members.len();
        let scores = self.runner.scores(batch.plans, outcome)?;
        let scored = scores.iter().filter(|p| p.is_ok()).count();
        Counters::add(&self.counters.batches, 1);
        Counters::add(&self.counters.scored, scored as u64);
        self.metrics.batch(rows, batch.submitted.elapsed());
        tracing::debug!(
            images = rows,
            failed = rows - scored,
            ms = batch.submitted.elapsed().as_secs_f64() * 1e3,
            "batch scored"
        );
        for (member, score) in batch.members.into_iter().zip(scores) {
            let index = member.slot.index(member.position);
            let result = self.runner.result(member.id, index, score);
            self.finisher.record(&member.slot, member.position, result);
        }
        Ok(())
    }
}

/// The logits of the oldest batch in flight (the model runs batches in
/// order, so it finishes first); never ready when none is.
async fn oldest(in_flight: &mut VecDeque<InFlight>) -> Outcome {
    match in_flight.front_mut() {
        Some(batch) => (&mut batch.logits).await,
        None => std::future::pending().await,
    }
}
