//! The worker against the in-memory queue with the no-op scorer, which
//! runs the whole pipeline (claims, dispatch, batches, completions,
//! heartbeats, refreshes) without a model. A wrapper around the queue
//! injects outages, slow calls and unreadable payloads.

use std::collections::HashSet;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use dfscan_proto::v1::{ItemResult, Worker as WorkerEntry};
use dfscan_queue::testing::{finished_results, sealed_job};
use dfscan_queue::{
    ClaimedTask, Completion, Created, JobQueue, JobRecord, JobSpec, JobState, ListQuery,
    MemoryQueue, NewTask, QueueError, QueueSettings, QueueStats, ResultPage, TaskHandle,
    CANCELLED_ERROR,
};
use dfscan_worker::{Inference, Worker, WorkerError, WorkerReport, WorkerSettings};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

const MODEL: &str = "test/model";

/// MemoryQueue with knobs for what a real backend does to a worker.
struct Wrapped {
    inner: MemoryQueue,
    /// Calls of `claim` / `complete` still to fail as if Redis were down.
    claim_outages: AtomicU32,
    complete_outages: AtomicU32,
    complete_delay: Duration,
    /// Tasks (by first index) whose payload cannot be read.
    unreadable: HashSet<u64>,
    heartbeats: Mutex<Vec<WorkerEntry>>,
    /// Calls of `complete` that reached the backend.
    completions: Mutex<Vec<TaskHandle>>,
}

impl Wrapped {
    fn new(settings: QueueSettings) -> Self {
        Self {
            inner: MemoryQueue::new(settings),
            claim_outages: AtomicU32::new(0),
            complete_outages: AtomicU32::new(0),
            complete_delay: Duration::ZERO,
            unreadable: HashSet::new(),
            heartbeats: Mutex::new(Vec::new()),
            completions: Mutex::new(Vec::new()),
        }
    }
}

fn outage(counter: &AtomicU32) -> Result<(), QueueError> {
    match counter.fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1)) {
        Ok(_) => Err(QueueError::Unavailable("injected outage".into())),
        Err(_) => Ok(()),
    }
}

#[async_trait]
impl JobQueue for Wrapped {
    async fn ping(&self) -> Result<(), QueueError> {
        self.inner.ping().await
    }
    async fn create_job(&self, spec: JobSpec) -> Result<Created, QueueError> {
        self.inner.create_job(spec).await
    }
    async fn enqueue(
        &self,
        job: &JobRecord,
        tasks: Vec<NewTask>,
    ) -> Result<Vec<TaskHandle>, QueueError> {
        self.inner.enqueue(job, tasks).await
    }
    async fn seal_job(&self, job_id: &str) -> Result<JobRecord, QueueError> {
        self.inner.seal_job(job_id).await
    }
    async fn abort_job(&self, job: &JobRecord, enqueued: &[TaskHandle]) -> Result<(), QueueError> {
        self.inner.abort_job(job, enqueued).await
    }
    async fn get_job(&self, job_id: &str) -> Result<JobRecord, QueueError> {
        self.inner.get_job(job_id).await
    }
    async fn list_jobs(&self, query: ListQuery) -> Result<Vec<JobRecord>, QueueError> {
        self.inner.list_jobs(query).await
    }
    async fn cancel_job(&self, job_id: &str) -> Result<JobRecord, QueueError> {
        self.inner.cancel_job(job_id).await
    }
    async fn read_results(
        &self,
        job_id: &str,
        after: u64,
        max_results: usize,
        wait: Duration,
    ) -> Result<ResultPage, QueueError> {
        self.inner
            .read_results(job_id, after, max_results, wait)
            .await
    }
    async fn queue_stats(&self, model: &str) -> Result<QueueStats, QueueError> {
        self.inner.queue_stats(model).await
    }
    async fn tenant_queued_items(&self, tenant: &str) -> Result<u64, QueueError> {
        self.inner.tenant_queued_items(tenant).await
    }
    async fn jobs_by_state(&self) -> Result<Vec<(JobState, u64)>, QueueError> {
        self.inner.jobs_by_state().await
    }
    async fn claim(
        &self,
        model: &str,
        consumer: &str,
        max_tasks: usize,
        wait: Duration,
    ) -> Result<Vec<ClaimedTask>, QueueError> {
        outage(&self.claim_outages)?;
        let mut tasks = self.inner.claim(model, consumer, max_tasks, wait).await?;
        for task in &mut tasks {
            if self.unreadable.contains(&task.handle.first_index) {
                task.items = Err("injected: payload cannot be decoded".into());
            }
        }
        Ok(tasks)
    }
    async fn refresh(&self, consumer: &str, tasks: &[TaskHandle]) -> Result<(), QueueError> {
        self.inner.refresh(consumer, tasks).await
    }
    async fn complete(
        &self,
        task: &TaskHandle,
        results: Vec<ItemResult>,
    ) -> Result<Completion, QueueError> {
        outage(&self.complete_outages)?;
        self.completions.lock().unwrap().push(task.clone());
        tokio::time::sleep(self.complete_delay).await;
        self.inner.complete(task, results).await
    }
    async fn heartbeat(&self, worker: &WorkerEntry) -> Result<(), QueueError> {
        self.heartbeats.lock().unwrap().push(worker.clone());
        self.inner.heartbeat(worker).await
    }
    async fn deregister(&self, worker_id: &str) -> Result<(), QueueError> {
        self.inner.deregister(worker_id).await
    }
    async fn list_workers(&self) -> Result<Vec<WorkerEntry>, QueueError> {
        self.inner.list_workers().await
    }
    async fn reap_abandoned_uploads(&self) -> Result<usize, QueueError> {
        self.inner.reap_abandoned_uploads().await
    }
    async fn pending_callbacks(&self, limit: usize) -> Result<Vec<String>, QueueError> {
        self.inner.pending_callbacks(limit).await
    }
    async fn lease_callback(
        &self,
        job_id: &str,
        holder: &str,
        ttl: Duration,
    ) -> Result<bool, QueueError> {
        self.inner.lease_callback(job_id, holder, ttl).await
    }
    async fn callback_progress(
        &self,
        job_id: &str,
        cursor: u64,
        done: bool,
    ) -> Result<(), QueueError> {
        self.inner.callback_progress(job_id, cursor, done).await
    }
}

fn queue_settings() -> QueueSettings {
    QueueSettings {
        visibility_timeout_ms: 60_000,
        ..Default::default()
    }
}

fn settings() -> WorkerSettings {
    WorkerSettings {
        max_batch: 4,
        max_wait_ms: 2,
        claim_wait_ms: 50,
        heartbeat_ms: 50,
        drain_grace_s: 10,
        ..Default::default()
    }
}

/// A sealed job with tasks of the given sizes; item `i` is named `item-i`.
async fn submit(queue: &dyn JobQueue, task_sizes: &[u64]) -> JobRecord {
    sealed_job(queue, MODEL, task_sizes).await
}

/// Every result of a job, waiting until it is finished.
async fn results(queue: &dyn JobQueue, job_id: &str) -> Vec<ItemResult> {
    finished_results(queue, job_id, Duration::from_secs(20)).await
}

fn start(
    queue: Arc<dyn JobQueue>,
    settings: WorkerSettings,
) -> (
    JoinHandle<Result<WorkerReport, WorkerError>>,
    CancellationToken,
) {
    let worker = Worker::new(
        queue,
        Inference::Noop {
            model: MODEL.into(),
        },
        MODEL.into(),
        settings,
        &queue_settings(),
    )
    .unwrap();
    let shutdown = CancellationToken::new();
    let handle = tokio::spawn(worker.run(shutdown.clone()));
    (handle, shutdown)
}

async fn stop(
    worker: (
        JoinHandle<Result<WorkerReport, WorkerError>>,
        CancellationToken,
    ),
) -> WorkerReport {
    worker.1.cancel();
    tokio::time::timeout(Duration::from_secs(10), worker.0)
        .await
        .expect("the worker stops")
        .unwrap()
        .unwrap()
}

/// Each item once, in upload order by index, scored by the no-op model.
fn assert_scored_once(results: &[ItemResult], total: u64) {
    let cursors: Vec<u64> = results.iter().map(|r| r.cursor).collect();
    assert_eq!(cursors, (1..=total).collect::<Vec<_>>());
    let mut by_index: Vec<&ItemResult> = results.iter().collect();
    by_index.sort_by_key(|r| r.index);
    for (i, r) in by_index.iter().enumerate() {
        assert_eq!(r.index, i as u64, "{r:?}");
        assert_eq!(r.id, format!("item-{i}"));
        assert_eq!(r.error, "", "{r:?}");
        assert_eq!(r.label, "Real");
        assert_eq!(r.fake_score, Some(0.0));
        let model = r.model.as_ref().unwrap();
        assert_eq!(
            (model.name.as_str(), model.sha256.as_str()),
            (MODEL, "noop")
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_job_of_many_tasks_is_completed_exactly_once() {
    let queue = Arc::new(Wrapped::new(queue_settings()));
    let sizes = [1, 10, 3, 7, 1, 1, 25, 4, 2];
    let total: u64 = sizes.iter().sum();
    let job = submit(&*queue, &sizes).await;
    // Two workers share the queue: still one result per item.
    let a = start(queue.clone(), settings());
    let b = start(queue.clone(), settings());
    let results = results(&*queue, &job.id).await;
    assert_scored_once(&results, total);
    let record = queue.get_job(&job.id).await.unwrap();
    assert_eq!(record.state, JobState::Completed);
    assert_eq!((record.completed, record.failed), (total, 0));
    assert_eq!(queue.list_workers().await.unwrap().len(), 2);

    let (ra, rb) = (stop(a).await, stop(b).await);
    assert_eq!(ra.tasks + rb.tasks, sizes.len() as u64);
    assert_eq!(ra.items + rb.items, total);
    // Batches hold at most max_batch (4) images.
    assert!(
        ra.batches + rb.batches >= total.div_ceil(4),
        "{ra:?} {rb:?}"
    );
    assert_eq!(queue.completions.lock().unwrap().len(), sizes.len());
    assert!(queue.list_workers().await.unwrap().is_empty());
    assert_eq!(
        queue.queue_stats(MODEL).await.unwrap(),
        QueueStats::default()
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn cancelled_jobs_get_the_cancelled_error() {
    let queue = Arc::new(Wrapped::new(queue_settings()));
    let job = submit(&*queue, &[3, 2]).await;
    queue.cancel_job(&job.id).await.unwrap();
    let worker = start(queue.clone(), settings());
    let results = results(&*queue, &job.id).await;
    let mut got: Vec<(u64, String, String)> = results
        .iter()
        .map(|r| (r.index, r.id.clone(), r.error.clone()))
        .collect();
    got.sort();
    let want: Vec<(u64, String, String)> = (0..5)
        .map(|i| (i, format!("item-{i}"), CANCELLED_ERROR.to_string()))
        .collect();
    assert_eq!(got, want);
    assert!(results
        .iter()
        .all(|r| r.label.is_empty() && r.fake_score.is_none()));
    let report = stop(worker).await;
    assert_eq!((report.tasks, report.items, report.batches), (2, 5, 0));
    let record = queue.get_job(&job.id).await.unwrap();
    assert_eq!((record.state, record.failed), (JobState::Cancelled, 5));
}

#[tokio::test(flavor = "multi_thread")]
async fn shutdown_drains_claimed_tasks_and_returns() {
    let mut wrapped = Wrapped::new(queue_settings());
    // Slow completions keep claimed tasks in flight when shutdown comes.
    wrapped.complete_delay = Duration::from_millis(100);
    let queue = Arc::new(wrapped);
    let sizes = [3; 40];
    let job = submit(&*queue, &sizes).await;
    let worker = start(
        queue.clone(),
        WorkerSettings {
            prefetch_tasks: 4,
            ..settings()
        },
    );
    while queue.completions.lock().unwrap().is_empty() {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let stopping = Instant::now();
    let report = stop(worker).await;
    assert!(stopping.elapsed() < Duration::from_secs(5));
    assert!(
        report.tasks >= 1 && report.tasks < sizes.len() as u64,
        "{report:?}"
    );
    assert_eq!(report.items, report.tasks * 3);
    // Nothing was left claimed: the remaining tasks are all fresh, so the
    // next worker gets them at once rather than after the 60 s visibility
    // timeout.
    let stats = queue.queue_stats(MODEL).await.unwrap();
    assert_eq!(stats.items, (sizes.len() as u64 - report.tasks) * 3);
    let last = queue.heartbeats.lock().unwrap().last().cloned().unwrap();
    assert!(last.draining, "{last:?}");
    assert!(queue.list_workers().await.unwrap().is_empty());

    let next = start(queue.clone(), settings());
    let results = results(&*queue, &job.id).await;
    assert_scored_once(&results, 3 * sizes.len() as u64);
    stop(next).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn the_grace_period_bounds_a_stuck_drain() {
    let mut wrapped = Wrapped::new(queue_settings());
    wrapped.complete_delay = Duration::from_secs(30);
    let queue = Arc::new(wrapped);
    submit(&*queue, &[2, 2]).await;
    let worker = start(
        queue.clone(),
        WorkerSettings {
            drain_grace_s: 1,
            ..settings()
        },
    );
    while queue.completions.lock().unwrap().is_empty() {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let stopping = Instant::now();
    let report = stop(worker).await;
    let took = stopping.elapsed();
    assert!(
        took >= Duration::from_secs(1) && took < Duration::from_secs(4),
        "{took:?}"
    );
    assert_eq!(report.tasks, 0);
}

#[tokio::test(flavor = "multi_thread")]
async fn queue_outages_are_retried_and_no_result_is_lost() {
    let wrapped = Wrapped::new(queue_settings());
    wrapped.claim_outages.store(2, Ordering::SeqCst);
    wrapped.complete_outages.store(3, Ordering::SeqCst);
    let queue = Arc::new(wrapped);
    let sizes = [2, 5, 1];
    let job = submit(&*queue, &sizes).await;
    let worker = start(queue.clone(), settings());
    let results = results(&*queue, &job.id).await;
    assert_scored_once(&results, 8);
    let report = stop(worker).await;
    assert_eq!((report.tasks, report.items), (3, 8));
    assert_eq!(queue.complete_outages.load(Ordering::SeqCst), 0);
    assert_eq!(queue.claim_outages.load(Ordering::SeqCst), 0);
}

#[tokio::test(flavor = "multi_thread")]
async fn tasks_in_hand_are_refreshed() {
    let short = QueueSettings {
        visibility_timeout_ms: 600,
        ..Default::default()
    };
    let mut wrapped = Wrapped::new(short.clone());
    // The task stays in hand for over two visibility timeouts.
    wrapped.complete_delay = Duration::from_millis(1500);
    let queue = Arc::new(wrapped);
    let job = submit(&*queue, &[2]).await;
    let worker = Worker::new(
        queue.clone(),
        Inference::Noop {
            model: MODEL.into(),
        },
        MODEL.into(),
        settings(),
        &short,
    )
    .unwrap();
    let shutdown = CancellationToken::new();
    let running = tokio::spawn(worker.run(shutdown.clone()));
    tokio::time::sleep(Duration::from_millis(1000)).await;
    let stolen = queue
        .claim(MODEL, "thief", 10, Duration::ZERO)
        .await
        .unwrap();
    assert!(stolen.is_empty(), "the claim lapsed: {stolen:?}");
    let results = results(&*queue, &job.id).await;
    assert_scored_once(&results, 2);
    shutdown.cancel();
    running.await.unwrap().unwrap();
    // A lapsed claim would have been redelivered, to this worker too, and
    // completed a second time.
    assert_eq!(queue.completions.lock().unwrap().len(), 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn tasks_of_different_jobs_share_batches() {
    let queue = Arc::new(Wrapped::new(queue_settings()));
    let first = submit(&*queue, &[1, 1, 1, 1]).await;
    let second = submit(&*queue, &[2, 2]).await;
    let worker = start(
        queue.clone(),
        WorkerSettings {
            max_batch: 8,
            // Long enough for every task to be claimed and decoded.
            max_wait_ms: 500,
            ..settings()
        },
    );
    assert_scored_once(&results(&*queue, &first.id).await, 4);
    assert_scored_once(&results(&*queue, &second.id).await, 4);
    let report = stop(worker).await;
    assert_eq!((report.tasks, report.items, report.batches), (6, 8, 1));
}

#[tokio::test(flavor = "multi_thread")]
async fn unreadable_payloads_are_left_to_be_dead_lettered() {
    let short = QueueSettings {
        visibility_timeout_ms: 200,
        max_deliveries: 2,
        ..Default::default()
    };
    let mut wrapped = Wrapped::new(short.clone());
    wrapped.unreadable.insert(2);
    let queue = Arc::new(wrapped);
    let job = submit(&*queue, &[2, 3]).await;
    let worker = Worker::new(
        queue.clone(),
        Inference::Noop {
            model: MODEL.into(),
        },
        MODEL.into(),
        settings(),
        &short,
    )
    .unwrap();
    let shutdown = CancellationToken::new();
    let running = tokio::spawn(worker.run(shutdown.clone()));
    let results = results(&*queue, &job.id).await;
    let mut by_index: Vec<(u64, bool)> = results
        .iter()
        .map(|r| (r.index, r.error.starts_with("dead-lettered")))
        .collect();
    by_index.sort();
    assert_eq!(
        by_index,
        [(0, false), (1, false), (2, true), (3, true), (4, true)]
    );
    shutdown.cancel();
    let report = running.await.unwrap().unwrap();
    // The worker completed only the readable task.
    assert_eq!((report.tasks, report.items), (1, 2));
    let completed: Vec<u64> = queue
        .completions
        .lock()
        .unwrap()
        .iter()
        .map(|h| h.first_index)
        .collect();
    assert_eq!(completed, [0]);
    assert_eq!(queue.inner.dead_letters(MODEL).len(), 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn heartbeats_describe_the_worker() {
    let queue = Arc::new(Wrapped::new(queue_settings()));
    let job = submit(&*queue, &[4, 4]).await;
    let worker = start(
        queue.clone(),
        WorkerSettings {
            worker_id: Some("w-1".into()),
            ..settings()
        },
    );
    results(&*queue, &job.id).await;
    // Wait for a heartbeat that saw all the scores.
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let listed = queue.list_workers().await.unwrap();
        if listed.first().is_some_and(|w| w.items_scored == 8) {
            let w = &listed[0];
            assert_eq!((w.worker_id.as_str(), w.model.as_str()), ("w-1", MODEL));
            assert_eq!(w.identity.as_ref().unwrap().sha256, "noop");
            assert_eq!(
                (w.pid, w.max_batch, w.draining),
                (std::process::id(), 4, false)
            );
            assert!(w.batches >= 2 && w.started_unix_ms <= w.heartbeat_unix_ms);
            break;
        }
        assert!(Instant::now() < deadline, "no heartbeat with the scores");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    stop(worker).await;
    assert!(queue.heartbeats.lock().unwrap().iter().any(|w| w.draining));
    assert!(queue.list_workers().await.unwrap().is_empty());
}

#[test]
fn settings_that_cannot_work_are_refused() {
    let queue: Arc<dyn JobQueue> = Arc::new(MemoryQueue::new(queue_settings()));
    let new = |settings: WorkerSettings| {
        Worker::new(
            queue.clone(),
            Inference::Noop {
                model: MODEL.into(),
            },
            MODEL.into(),
            settings,
            &queue_settings(),
        )
    };
    assert!(matches!(
        new(WorkerSettings {
            max_batch: 0,
            ..settings()
        }),
        Err(WorkerError::Settings(_))
    ));
    let err = new(WorkerSettings {
        uri_roots: vec!["/nonexistent/dfscan-uri-root".into()],
        ..settings()
    })
    .err()
    .unwrap();
    assert!(
        err.to_string().contains("/nonexistent/dfscan-uri-root"),
        "{err}"
    );
    let worker = new(WorkerSettings {
        worker_id: Some("named".into()),
        ..settings()
    })
    .unwrap();
    assert_eq!(worker.worker_id(), "named");
}
