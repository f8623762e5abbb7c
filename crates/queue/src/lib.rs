//! The job queue between coordinators and workers. One trait, two
//! backends with the same observable behaviour (checked by one conformance
//! suite, `tests/conformance.rs`):
//!
//! - [`RedisQueue`]: Redis Streams, for clusters; survives process crashes
//!   and Redis restarts (with AOF).
//! - [`MemoryQueue`]: one process (`dfscan serve` without Redis).
//!
//! The guarantees both give: every uploaded item gets exactly one result
//! (a score or an error), however often its task is delivered; results get
//! consecutive cursors from 1 in the order they are recorded, so a reader
//! can resume after any cursor with no gaps and no repeats; a task claimed
//! and not completed or refreshed within the visibility timeout goes to
//! another worker, and after `max_deliveries` it is dead-lettered with an
//! error result for each of its items.

mod error;
pub mod faces;
pub mod media;
pub mod memory;
pub mod policy;
pub mod redis;
mod results;
mod settings;
#[cfg(feature = "test-support")]
pub mod testing;
mod types;

use std::time::Duration;

use async_trait::async_trait;
use dfscan_proto::v1::{ItemResult, Worker};

pub use error::{PolicyError, QueueError, Result};
pub use memory::MemoryQueue;
pub use redis::RedisQueue;
pub use results::{error_result, error_results, CANCELLED_ERROR};
pub use settings::QueueSettings;
pub use types::{
    item_bytes, ClaimedTask, Completion, Created, JobRecord, JobSpec, JobState, ListQuery, NewTask,
    Priority, QueueStats, ResultPage, TaskHandle, MAX_TASK_ITEMS,
};

#[async_trait]
pub trait JobQueue: Send + Sync + 'static {
    /// Whether the backend is reachable.
    async fn ping(&self) -> Result<()>;

    // --- coordinator side ---

    /// Starts a job in state `Uploading` with a new random id; with an
    /// idempotency key that an unexpired job already holds, returns that
    /// job instead.
    async fn create_job(&self, spec: JobSpec) -> Result<Created>;
    /// Appends tasks to the job's model queue and adds their items to the
    /// job's total. All or nothing: `Full` when the model's queue would go
    /// over `max_queued_items` or `max_queued_bytes`; `WrongState` unless the
    /// job is `Uploading`.
    async fn enqueue(&self, job: &JobRecord, tasks: Vec<NewTask>) -> Result<Vec<TaskHandle>>;
    /// Ends the upload: `Uploading` → `Running` (or `Completed` when every
    /// item already has its result).
    async fn seal_job(&self, job_id: &str) -> Result<JobRecord>;
    /// Removes a job whose upload failed, with the tasks it enqueued (as
    /// returned by `enqueue`) and its idempotency key, as if it had never
    /// been submitted. Tasks a worker already holds complete as no-ops.
    async fn abort_job(&self, job: &JobRecord, enqueued: &[TaskHandle]) -> Result<()>;
    async fn get_job(&self, job_id: &str) -> Result<JobRecord>;
    /// Newest first.
    async fn list_jobs(&self, query: ListQuery) -> Result<Vec<JobRecord>>;
    /// Marks a job cancelled; workers then give its remaining items the
    /// error result "job cancelled". `WrongState` when already finished or
    /// cancelled.
    async fn cancel_job(&self, job_id: &str) -> Result<JobRecord>;
    /// Results with cursors after `after`, in cursor order, at most
    /// `max_results`. When there are none yet and the job is not finished,
    /// waits up to `wait` for some.
    async fn read_results(
        &self,
        job_id: &str,
        after: u64,
        max_results: usize,
        wait: Duration,
    ) -> Result<ResultPage>;
    /// Items and bytes queued for `model`.
    async fn queue_stats(&self, model: &str) -> Result<QueueStats>;
    /// Items of `tenant`'s jobs that have no result yet (see
    /// [`JobRecord::queued_items`]), summed over all its jobs: kept as a
    /// counter, so the answer costs the same however many jobs exist.
    async fn tenant_queued_items(&self, tenant: &str) -> Result<u64>;
    /// How many jobs are in each state, every state once in
    /// [`JobState::ALL`] order: a finished job counts until its retention
    /// ends (it expires). Kept as counters, like
    /// [`tenant_queued_items`](JobQueue::tenant_queued_items).
    async fn jobs_by_state(&self) -> Result<Vec<(JobState, u64)>>;

    // --- worker side ---

    /// Up to `max_tasks` tasks of `model` for `consumer`: first tasks idle
    /// past the visibility timeout (dead-lettering those delivered
    /// `max_deliveries` times already), then new ones, waiting up to `wait`
    /// when there are none.
    async fn claim(
        &self,
        model: &str,
        consumer: &str,
        max_tasks: usize,
        wait: Duration,
    ) -> Result<Vec<ClaimedTask>>;
    /// Restarts the visibility timeout of tasks `consumer` still works on.
    async fn refresh(&self, consumer: &str, tasks: &[TaskHandle]) -> Result<()>;
    /// Records the results of a task (one per item, in any order; the queue
    /// sets their cursors) and removes the task. Idempotent: a second
    /// completion of the same task records nothing.
    async fn complete(&self, task: &TaskHandle, results: Vec<ItemResult>) -> Result<Completion>;
    /// Registers a worker or refreshes its entry; it is listed until
    /// `worker_ttl_ms` passes without another heartbeat.
    async fn heartbeat(&self, worker: &Worker) -> Result<()>;
    async fn deregister(&self, worker_id: &str) -> Result<()>;
    async fn list_workers(&self) -> Result<Vec<Worker>>;

    // --- callbacks (delivered by coordinators) ---

    /// Ids of jobs with a callback not yet over, oldest first, at most
    /// `limit`.
    async fn pending_callbacks(&self, limit: usize) -> Result<Vec<String>>;
    /// Takes or renews the right to deliver the job's callbacks for `ttl`;
    /// false while another holder has it.
    async fn lease_callback(&self, job_id: &str, holder: &str, ttl: Duration) -> Result<bool>;
    /// Removes uploads abandoned for `queue.upload_timeout_s` (see
    /// [`JobRecord::upload_abandoned`]), the least recently active first
    /// and at most `REAP_BATCH` a call; returns how many. Their tasks
    /// already queued are released as workers come to them (their job is
    /// gone).
    async fn reap_abandoned_uploads(&self) -> Result<usize>;

    /// Records that item callbacks are delivered up to result `cursor`;
    /// with `done`, that the job's callbacks are over (delivered, given up,
    /// or the job is gone), which takes it out of `pending_callbacks`.
    async fn callback_progress(&self, job_id: &str, cursor: u64, done: bool) -> Result<()>;
}

/// Most abandoned uploads one sweep removes, least recently active first;
/// any more wait for the next sweep. Each backend keeps its uploads ordered
/// by last activity, so a sweep reads only the uploads idle past the
/// timeout, whatever else the queue holds.
const REAP_BATCH: usize = 1000;

/// [`JobQueue::reap_abandoned_uploads`] for any backend: removes those of
/// `idle` (uploads idle past the timeout by the backend's index) that are
/// still abandoned by their record.
async fn reap_abandoned(
    queue: &dyn JobQueue,
    idle: Vec<JobRecord>,
    timeout_s: u64,
) -> Result<usize> {
    let now = now_ms();
    let mut reaped = 0;
    for job in idle {
        if job.upload_abandoned(now, timeout_s) {
            tracing::warn!(job = %job.id, "upload abandoned: removing the job");
            queue.abort_job(&job, &[]).await?;
            reaped += 1;
        }
    }
    Ok(reaped)
}

/// Milliseconds since the Unix epoch.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}
