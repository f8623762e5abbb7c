//! The Redis Streams backend, for clusters: any number of coordinators and
//! workers share one Redis, and the queue survives the restart of any of
//! them (and of Redis itself, with AOF).
//!
//! Layout (`keys.rs`): per job a hash, a stream of result chunks, a hash of
//! completed task entries and a stream of state changes, all in the job's
//! hash slot; per model a task stream with the consumer group `workers`, a
//! usage hash and a dead-letter stream, all in the model's slot; queue-wide
//! counters (jobs per state, items queued per tenant, uploads by last
//! activity). Every state change that must be atomic is one Lua script
//! (`scripts/*.lua`), the job scripts updating the counters in the same
//! step; where an operation spans a job and its model (enqueue, complete)
//! the two scripts are ordered so that a crash in between is repaired by a
//! retry or a redelivery, never by a lost or doubled result.

mod callbacks;
mod conn;
mod counters;
mod jobs;
mod keys;
mod results;
mod scripts;
mod tasks;
mod value;
mod workers;

use std::time::Duration;

use async_trait::async_trait;
use dfscan_proto::v1::{ItemResult, Worker};

use self::conn::Conn;
use self::keys::Keys;
use crate::types::*;
use crate::{JobQueue, QueueSettings, Result};

pub struct RedisQueue {
    conn: Conn,
    keys: Keys,
    settings: QueueSettings,
}

impl RedisQueue {
    /// Connects to `url` (`redis://host:port/db`); fails with
    /// `Unavailable` when Redis cannot be reached now. Later calls
    /// reconnect by themselves.
    pub async fn connect(url: &str, settings: QueueSettings) -> Result<RedisQueue> {
        let conn = Conn::connect(url, &settings).await?;
        let queue = RedisQueue {
            conn,
            keys: Keys::new(&settings.key_prefix),
            settings,
        };
        queue.ping().await?;
        Ok(queue)
    }

    pub fn settings(&self) -> &QueueSettings {
        &self.settings
    }

    /// Tasks dead-lettered for `model` (oldest first, at most the last
    /// 10 000), with the deliveries each had.
    pub async fn dead_letters(&self, model: &str) -> Result<Vec<(TaskHandle, u64)>> {
        tasks::dead_letters(self, model).await
    }

    fn retention_ms(&self) -> u64 {
        self.settings.retention_s.saturating_mul(1000)
    }
}

#[async_trait]
impl JobQueue for RedisQueue {
    async fn ping(&self) -> Result<()> {
        self.conn
            .query::<String>("ping", &redis::cmd("PING"))
            .await
            .map(drop)
    }

    async fn create_job(&self, spec: JobSpec) -> Result<Created> {
        jobs::create(self, spec).await
    }

    async fn enqueue(&self, job: &JobRecord, tasks: Vec<NewTask>) -> Result<Vec<TaskHandle>> {
        jobs::enqueue(self, job, tasks).await
    }

    async fn seal_job(&self, job_id: &str) -> Result<JobRecord> {
        jobs::transition(self, job_id, jobs::Transition::Seal).await
    }

    async fn abort_job(&self, job: &JobRecord, enqueued: &[TaskHandle]) -> Result<()> {
        jobs::abort(self, job, enqueued).await
    }

    async fn get_job(&self, job_id: &str) -> Result<JobRecord> {
        jobs::get(self, job_id)
            .await?
            .ok_or_else(|| crate::QueueError::JobNotFound(job_id.to_string()))
    }

    async fn list_jobs(&self, query: ListQuery) -> Result<Vec<JobRecord>> {
        jobs::list(self, query).await
    }

    async fn cancel_job(&self, job_id: &str) -> Result<JobRecord> {
        jobs::transition(self, job_id, jobs::Transition::Cancel).await
    }

    async fn read_results(
        &self,
        job_id: &str,
        after: u64,
        max_results: usize,
        wait: Duration,
    ) -> Result<ResultPage> {
        results::read(self, job_id, after, max_results, wait).await
    }

    async fn queue_stats(&self, model: &str) -> Result<QueueStats> {
        let mut cmd = redis::cmd("HMGET");
        cmd.arg(self.keys.usage(model)).arg("items").arg("bytes");
        let (items, bytes): (Option<i64>, Option<i64>) =
            self.conn.query("queue stats", &cmd).await?;
        // Never negative in a consistent store; clamp rather than wrap if
        // someone edited the counters by hand.
        Ok(QueueStats {
            items: items.unwrap_or(0).max(0) as u64,
            bytes: bytes.unwrap_or(0).max(0) as u64,
        })
    }

    async fn tenant_queued_items(&self, tenant: &str) -> Result<u64> {
        counters::tenant_queued_items(self, tenant).await
    }

    async fn jobs_by_state(&self) -> Result<Vec<(JobState, u64)>> {
        counters::jobs_by_state(self).await
    }

    async fn claim(
        &self,
        model: &str,
        consumer: &str,
        max_tasks: usize,
        wait: Duration,
    ) -> Result<Vec<ClaimedTask>> {
        tasks::claim(self, model, consumer, max_tasks, wait).await
    }

    async fn refresh(&self, consumer: &str, tasks: &[TaskHandle]) -> Result<()> {
        tasks::refresh(self, consumer, tasks).await
    }

    async fn complete(&self, task: &TaskHandle, results: Vec<ItemResult>) -> Result<Completion> {
        results::complete(self, task, results, None).await
    }

    async fn heartbeat(&self, worker: &Worker) -> Result<()> {
        workers::heartbeat(self, worker).await
    }

    async fn deregister(&self, worker_id: &str) -> Result<()> {
        workers::deregister(self, worker_id).await
    }

    async fn list_workers(&self) -> Result<Vec<Worker>> {
        workers::list(self).await
    }

    async fn reap_abandoned_uploads(&self) -> Result<usize> {
        let timeout_s = self.settings.upload_timeout_s;
        let idle = counters::idle_uploads(self, timeout_s, crate::REAP_BATCH).await?;
        crate::reap_abandoned(self, idle, timeout_s).await
    }

    async fn pending_callbacks(&self, limit: usize) -> Result<Vec<String>> {
        callbacks::pending(self, limit).await
    }

    async fn lease_callback(&self, job_id: &str, holder: &str, ttl: Duration) -> Result<bool> {
        callbacks::lease(self, job_id, holder, ttl).await
    }

    async fn callback_progress(&self, job_id: &str, cursor: u64, done: bool) -> Result<()> {
        callbacks::progress(self, job_id, cursor, done).await
    }
}
