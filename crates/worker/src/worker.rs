//! The worker's life: warms the model up, wires the pipeline stages
//! together, runs them until shutdown, drains what was claimed within the
//! grace period, and leaves the queue's worker list, telling its
//! [`Health`] each step.

use std::sync::Arc;
use std::time::Duration;

use dfscan_proto::v1 as pb;
use dfscan_queue::{now_ms, JobQueue, QueueSettings};
use tokio::sync::{mpsc, Semaphore};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::batcher::Batcher;
use crate::cancel::Cancelled;
use crate::claim::Claimer;
use crate::complete::Completer;
use crate::dispatch::Dispatcher;
use crate::error::WorkerError;
use crate::health::Health;
use crate::keepalive;
use crate::metrics::WorkerMetrics;
use crate::scoring::{Inference, RowBudget, Runner};
use crate::settings::{host_name, worker_id, WorkerSettings};
use crate::task::{Counters, Finisher, InHand};
use crate::uri::UriRoots;

/// One model on one device, serving its model's queue.
pub struct Worker {
    queue: Arc<dyn JobQueue>,
    runner: Arc<Runner>,
    model: String,
    settings: WorkerSettings,
    worker_id: String,
    refresh_every: Duration,
    metrics: Arc<WorkerMetrics>,
    health: Health,
}

/// What a worker did before it stopped.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct WorkerReport {
    /// Tasks completed.
    pub tasks: u64,
    /// Item results recorded (scores and per-item errors).
    pub items: u64,
    /// Batches run through the model.
    pub batches: u64,
}

impl Worker {
    /// `model_name` is the name jobs use for the model in the queue (for
    /// [`Inference::Model`], the model's `identity.name`).
    pub fn new(
        queue: Arc<dyn JobQueue>,
        scoring: Inference,
        model_name: String,
        settings: WorkerSettings,
        queue_settings: &QueueSettings,
    ) -> Result<Self, WorkerError> {
        // Checks the settings too.
        let health = Health::new(&settings)?;
        if model_name.is_empty() {
            return Err(WorkerError::Settings(
                "the model name must not be empty".into(),
            ));
        }
        if settings.heartbeat_ms >= queue_settings.worker_ttl_ms {
            tracing::warn!(
                heartbeat_ms = settings.heartbeat_ms,
                worker_ttl_ms = queue_settings.worker_ttl_ms,
                "heartbeats are further apart than the queue's worker TTL; the worker will flicker \
                 in and out of the worker list"
            );
        }
        let uris = UriRoots::new(&settings.uri_roots)?;
        let runner = Arc::new(Runner::new(scoring, uris)?);
        let worker_id = worker_id(&settings);
        let metrics = WorkerMetrics::new(&model_name, &worker_id, runner.device());
        Ok(Self {
            queue,
            runner,
            metrics: Arc::new(metrics),
            health,
            model: model_name,
            worker_id,
            // Three refreshes per timeout: two can fail before a claim lapses.
            refresh_every: Duration::from_millis((queue_settings.visibility_timeout_ms / 3).max(1)),
            settings,
        })
    }

    /// The name this worker claims tasks and sends heartbeats under.
    pub fn worker_id(&self) -> &str {
        &self.worker_id
    }

    /// Reports to `health` instead of a health of its own: one made before
    /// the model was loaded, so that probes were answered (not ready) while
    /// it loaded.
    pub fn with_health(mut self, health: Health) -> Self {
        self.health = health;
        self
    }

    /// Its Prometheus metrics (for the process's `/metrics`).
    pub fn metrics(&self) -> Arc<WorkerMetrics> {
        Arc::clone(&self.metrics)
    }

    /// Serves the queue until `shutdown` is cancelled and the tasks already
    /// claimed are finished, or `drain_grace_s` after the cancellation,
    /// whichever comes first. An error means the worker cannot go on (the
    /// model stopped); its unfinished tasks go to other workers.
    pub async fn run(self, shutdown: CancellationToken) -> Result<WorkerReport, WorkerError> {
        let s = &self.settings;
        self.health.warming_up();
        let warm_up = std::time::Instant::now();
        if let Err(e) = self.runner.warm_up(s.max_batch).await {
            self.health.stopped();
            release(self.runner).await;
            return Err(e);
        }
        tracing::info!(
            images = s.max_batch,
            ms = warm_up.elapsed().as_secs_f64() * 1e3,
            "model warmed up"
        );
        self.health.serving(shutdown.clone());
        // Tasks in progress hold at least one item each in the pipeline: up
        // to two batches decoding or waiting and two at the model. Beyond
        // that, only completions held up by a slow queue, which must not
        // let the claimer run on without bound.
        let in_hand = Arc::new(InHand::new(
            s.prefetch_tasks
                .saturating_add(1)
                .saturating_add(s.max_batch.saturating_mul(4)),
        ));
        let counters = Arc::new(Counters::default());
        let (claimed_tx, claimed_rx) = mpsc::unbounded_channel();
        let (decoded_tx, decoded_rx) = mpsc::unbounded_channel();
        let (finisher, finished_rx) = Finisher::new();
        tracing::info!(
            worker = %self.worker_id,
            model = %self.model,
            device = %self.runner.device(),
            dtype = %self.runner.dtype(),
            max_batch = s.max_batch,
            "worker started"
        );

        // Each stage ends when the one before it has ended and its own work
        // is done, so cancelling the claimer drains the whole pipeline.
        let mut stages: JoinSet<Result<(), WorkerError>> = JoinSet::new();
        let claimer = Claimer {
            queue: Arc::clone(&self.queue),
            model: self.model.clone(),
            worker_id: self.worker_id.clone(),
            wait: Duration::from_millis(s.claim_wait_ms),
            places: Arc::new(Semaphore::new(
                s.prefetch_tasks
                    .saturating_add(1)
                    .min(Semaphore::MAX_PERMITS),
            )),
            in_hand: Arc::clone(&in_hand),
            metrics: Arc::clone(&self.metrics),
            health: self.health.clone(),
        };
        let claim_shutdown = shutdown.clone();
        stages.spawn(async move {
            claimer.run(claimed_tx, claim_shutdown).await;
            Ok(())
        });
        let cancelled = Arc::new(Cancelled::default());
        let dispatcher = Dispatcher {
            runner: Arc::clone(&self.runner),
            // Two batches' worth of each: one being gathered, one decoding
            // behind it.
            places: Arc::new(Semaphore::new(
                s.max_batch.saturating_mul(2).min(Semaphore::MAX_PERMITS),
            )),
            rows: RowBudget::new(s.max_batch.saturating_mul(2)),
            finisher: finisher.clone(),
            in_hand: Arc::clone(&in_hand),
            metrics: Arc::clone(&self.metrics),
            cancelled: Arc::clone(&cancelled),
        };
        stages.spawn(async move {
            dispatcher.run(claimed_rx, decoded_tx).await;
            Ok(())
        });
        let batcher = Batcher {
            runner: Arc::clone(&self.runner),
            max_batch: s.max_batch,
            max_wait: Duration::from_millis(s.max_wait_ms),
            finisher,
            counters: Arc::clone(&counters),
            metrics: Arc::clone(&self.metrics),
            health: self.health.clone(),
        };
        stages.spawn(batcher.run(decoded_rx));
        let completer = Completer {
            queue: Arc::clone(&self.queue),
            in_hand: Arc::clone(&in_hand),
            counters: Arc::clone(&counters),
            metrics: Arc::clone(&self.metrics),
            health: self.health.clone(),
        };
        stages.spawn(async move {
            completer.run(finished_rx).await;
            Ok(())
        });

        let halt = CancellationToken::new();
        let heartbeat_every = Duration::from_millis(s.heartbeat_ms);
        let mut keepalive = JoinSet::new();
        keepalive.spawn(keepalive::heartbeat(
            Arc::clone(&self.queue),
            self.heartbeat_template(),
            Arc::clone(&counters),
            heartbeat_every,
            shutdown.clone(),
            halt.clone(),
        ));
        keepalive.spawn(cancelled.watch(
            Arc::clone(&self.queue),
            Arc::clone(&in_hand),
            halt.clone(),
        ));
        keepalive.spawn(keepalive::refresh(
            Arc::clone(&self.queue),
            self.worker_id.clone(),
            Arc::clone(&in_hand),
            self.refresh_every,
            halt.clone(),
        ));

        let grace = Duration::from_secs(s.drain_grace_s);
        let outcome = tokio::select! {
            outcome = all_done(&mut stages) => outcome,
            () = async {
                shutdown.cancelled().await;
                tokio::time::sleep(grace).await;
            } => {
                tracing::warn!(
                    tasks = in_hand.len(),
                    grace_s = s.drain_grace_s,
                    "drain grace period over; the queue redelivers the unfinished tasks after \
                     the visibility timeout"
                );
                Ok(())
            }
        };
        // After a fatal error or the grace period, whatever still runs is
        // abandoned.
        stages.shutdown().await;

        halt.cancel();
        // A heartbeat landing after the deregistration would list the worker
        // again until its TTL, so let one under way finish first.
        let _ = tokio::time::timeout(heartbeat_every, async {
            while keepalive.join_next().await.is_some() {}
        })
        .await;
        keepalive.shutdown().await;
        if let Err(e) = self.queue.deregister(&self.worker_id).await {
            tracing::warn!(error = %e, "leaving the worker list failed; the entry expires on its own");
        }
        self.health.stopped();
        release(self.runner).await;

        let report = WorkerReport {
            tasks: Counters::get(&counters.tasks),
            items: Counters::get(&counters.items),
            batches: Counters::get(&counters.batches),
        };
        tracing::info!(
            worker = %self.worker_id,
            tasks = report.tasks,
            items = report.items,
            batches = report.batches,
            "worker stopped"
        );
        outcome.map(|()| report)
    }

    /// The heartbeat's fields that do not change.
    fn heartbeat_template(&self) -> pb::Worker {
        pb::Worker {
            worker_id: self.worker_id.clone(),
            model: self.model.clone(),
            identity: Some(self.runner.identity().clone()),
            host: host_name(),
            pid: std::process::id(),
            device: self.runner.device().to_string(),
            dtype: self.runner.dtype().to_string(),
            max_batch: u32::try_from(self.settings.max_batch).unwrap_or(u32::MAX),
            started_unix_ms: now_ms(),
            labels: self.runner.labels().to_vec(),
            ..Default::default()
        }
    }
}

/// Drops the scorer off the async threads: dropping the engine waits for
/// the model thread to finish.
async fn release(runner: Arc<Runner>) {
    let _ = tokio::task::spawn_blocking(move || drop(runner)).await;
}

/// Waits for every stage; the first failure ends the wait.
async fn all_done(stages: &mut JoinSet<Result<(), WorkerError>>) -> Result<(), WorkerError> {
    while let Some(joined) = stages.join_next().await {
        match joined {
            Ok(Ok(())) => {}
            Ok(Err(e)) => return Err(e),
            Err(e) => return Err(WorkerError::Panicked(format!("stage failed: {e}"))),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::io::{Read, Write};
    use std::net::{SocketAddr, TcpStream};
    use std::time::Instant;

    use dfscan_process::health::{self, Probes};
    use dfscan_queue::testing::sealed_job;
    use dfscan_queue::MemoryQueue;

    use super::*;
    use crate::scoring::stall::Gate;

    const MODEL: &str = "test/model";

    /// One HTTP GET: the status code and the body.
    fn get(address: SocketAddr, path: &str) -> (u16, String) {
        let mut stream = TcpStream::connect(address).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(30)))
            .unwrap();
        write!(
            stream,
            "GET {path} HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n"
        )
        .unwrap();
        let mut response = String::new();
        stream.read_to_string(&mut response).unwrap();
        let (head, body) = response.split_once("\r\n\r\n").unwrap();
        let status = head.split(' ').nth(1).unwrap().parse().unwrap();
        (status, body.to_string())
    }

    async fn probe(address: SocketAddr, path: &'static str) -> (u16, String) {
        tokio::task::spawn_blocking(move || get(address, path))
            .await
            .unwrap()
    }

    /// Polls `path` until it answers `status`; its body.
    async fn wait_for(address: SocketAddr, path: &'static str, status: u16) -> String {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let (got, body) = probe(address, path).await;
            if got == status {
                return body;
            }
            assert!(
                Instant::now() < deadline,
                "{path} still answers {got} {body}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// A worker on an in-memory queue whose model answers only while its
    /// gate is open.
    fn stalling_worker(settings: WorkerSettings) -> (Arc<MemoryQueue>, Arc<Gate>, Worker) {
        let queue = Arc::new(MemoryQueue::new(QueueSettings::default()));
        let gate = Arc::new(Gate::default());
        let scoring = Inference::Stalling {
            model: MODEL.into(),
            gate: Arc::clone(&gate),
        };
        let worker = Worker::new(
            queue.clone(),
            scoring,
            MODEL.into(),
            settings,
            &QueueSettings::default(),
        )
        .unwrap();
        (queue, gate, worker)
    }

    /// A worker whose model stops answering: `/livez` turns 503 naming the
    /// stuck batch while the endpoint (and `/readyz`) still answer, the
    /// drain is not ready, and the worker finishes once the model answers.
    #[tokio::test(flavor = "multi_thread")]
    async fn a_hung_forward_pass_fails_livez_while_the_endpoint_answers() {
        let settings = WorkerSettings {
            max_batch: 2,
            max_wait_ms: 1,
            claim_wait_ms: 50,
            heartbeat_ms: 50,
            liveness_timeout_s: 2,
            ..Default::default()
        };
        let health = Health::new(&settings).unwrap();
        let (live, ready) = (health.clone(), health.clone());
        let address = health::start(
            "127.0.0.1:0",
            Probes {
                live: Arc::new(move || live.live()),
                ready: Arc::new(move || ready.ready()),
            },
        )
        .await
        .unwrap();
        // Served before the worker exists, as while its model loads.
        let (status, body) = probe(address, "/readyz").await;
        assert_eq!((status, body.trim()), (503, "not ready: loading the model"));
        assert_eq!(probe(address, "/livez").await.0, 200);

        let (queue, gate, worker) = stalling_worker(settings);
        let worker = worker.with_health(health);
        let shutdown = CancellationToken::new();
        let running = tokio::spawn(worker.run(shutdown.clone()));
        assert_eq!(wait_for(address, "/readyz", 200).await.trim(), "ready");
        // Idle past the timeout: empty claims keep the loop turning.
        tokio::time::sleep(Duration::from_secs(3)).await;
        let (status, body) = probe(address, "/livez").await;
        assert_eq!(status, 200, "{body}");

        // The model hangs on the next batch. The queue stays empty, so
        // claims go on returning: only the batch's own clock can tell.
        gate.close();
        let job = sealed_job(queue.as_ref(), MODEL, &[1]).await;
        let stale = wait_for(address, "/livez", 503).await;
        assert!(stale.contains("running one batch for"), "{stale}");
        let seconds: u64 = stale
            .split("for ")
            .nth(1)
            .and_then(|rest| rest.split(' ').next())
            .and_then(|n| n.parse().ok())
            .unwrap_or_else(|| panic!("{stale}"));
        assert!(seconds >= 2, "{stale}");
        let (status, body) = probe(address, "/readyz").await;
        assert_eq!(status, 503);
        assert!(body.starts_with("not ready: the model"), "{body}");

        // SIGTERM while the batch is stuck: draining, so not ready.
        shutdown.cancel();
        let (status, body) = probe(address, "/readyz").await;
        assert_eq!(
            (status, body.trim()),
            (
                503,
                "not ready: draining (finishing the tasks in hand, then exiting)"
            )
        );
        // The model answers: the drain completes the task and the worker ends.
        gate.open();
        let report = tokio::time::timeout(Duration::from_secs(60), running)
            .await
            .expect("the worker stops")
            .unwrap()
            .unwrap();
        assert_eq!((report.tasks, report.items), (1, 1));
        assert_eq!(queue.get_job(&job.id).await.unwrap().completed, 1);
        let (status, body) = probe(address, "/readyz").await;
        assert_eq!(
            (status, body.trim()),
            (503, "not ready: the worker has stopped")
        );
    }

    /// A job cancelled after its tasks were claimed: what the worker holds
    /// is not scored to the end, only what was already decoded or at the
    /// model, and every item still gets exactly one result.
    #[tokio::test(flavor = "multi_thread")]
    async fn a_job_cancelled_while_in_hand_is_not_scored_to_the_end() {
        use crate::cancel::POLL;
        use dfscan_queue::testing::finished_results;
        use dfscan_queue::CANCELLED_ERROR;

        let settings = WorkerSettings {
            max_batch: 2,
            max_wait_ms: 1,
            claim_wait_ms: 50,
            heartbeat_ms: 50,
            ..Default::default()
        };
        let (queue, gate, worker) = stalling_worker(settings);
        let shutdown = CancellationToken::new();
        let running = tokio::spawn(worker.run(shutdown.clone()));
        // Listed once warmed up (with the gate open).
        let deadline = Instant::now() + Duration::from_secs(60);
        while queue.list_workers().await.unwrap().is_empty() {
            assert!(Instant::now() < deadline, "the worker never registered");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }

        // The model hangs on the first batch, so the first task is in hand
        // with most of its items not yet handed to the decoders. Then the
        // job is cancelled.
        gate.close();
        let job = sealed_job(queue.as_ref(), MODEL, &[8, 8, 8, 8]).await;
        let deadline = Instant::now() + Duration::from_secs(60);
        while gate.held() == 0 {
            assert!(Instant::now() < deadline, "no batch reached the model");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        queue.cancel_job(&job.id).await.unwrap();
        tokio::time::sleep(POLL * 3).await;
        gate.open();

        let results = finished_results(queue.as_ref(), &job.id, Duration::from_secs(60)).await;
        assert_eq!(results.len(), 32, "one result per item");
        let scored = results.iter().filter(|r| r.error.is_empty()).count();
        let cancelled = results
            .iter()
            .filter(|r| r.error == CANCELLED_ERROR)
            .count();
        assert_eq!(scored + cancelled, 32);
        // At most the items handed to the decoders (two batches), those
        // decoded and waiting for a batch (the rows budget, two batches) and
        // the batches at the model (two): a handful, not the job.
        assert!(scored <= 12, "{scored} of 32 scored after the cancel");
        shutdown.cancel();
        tokio::time::timeout(Duration::from_secs(60), running)
            .await
            .expect("the worker stops")
            .unwrap()
            .unwrap();
    }
}
