//! The in-memory backend: the whole queue in one process, for `dfscan
//! serve` without Redis. It keeps the Redis backend's semantics (visibility
//! timeout, delivery counts, dead-lettering, idempotent completion, cursor
//! order, retention) so that the same conformance suite holds for both and
//! a deployment can move from one to the other without surprises. Nothing
//! survives the process.

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use dfscan_proto::v1::{Item, ItemResult, Worker};
use tokio::sync::Notify;

use crate::policy::verdict_counts;
use crate::results::dead_letter_results;
use crate::types::*;
use crate::{now_ms, JobQueue, QueueError, QueueSettings, Result};

pub struct MemoryQueue {
    settings: QueueSettings,
    state: Mutex<State>,
    /// Woken whenever results are recorded or a job changes state.
    results_changed: Notify,
    /// Woken whenever tasks are enqueued.
    tasks_added: Notify,
}

#[derive(Default)]
struct State {
    jobs: HashMap<String, Job>,
    idempotency: HashMap<String, String>,
    models: HashMap<String, ModelQueue>,
    workers: HashMap<String, (Worker, Instant)>,
    /// Job id → who delivers its callbacks, until when.
    callback_leases: HashMap<String, (String, Instant)>,
    next_entry: u64,
}

struct Job {
    record: JobRecord,
    /// Result `i` has cursor `i + 1`.
    results: Vec<ItemResult>,
    done: HashSet<String>,
    expires: Option<Instant>,
}

#[derive(Default)]
struct ModelQueue {
    /// Entry ids never delivered, oldest first, per priority (in the order
    /// of [`Priority::ALL`]).
    fresh: [VecDeque<String>; 2],
    /// Every task not yet completed or released, by entry id (ordered, as
    /// stream ids are, so reclaiming goes oldest first).
    tasks: BTreeMap<String, Task>,
    usage: QueueStats,
    dead_letters: Vec<(TaskHandle, u64)>,
}

struct Task {
    handle: TaskHandle,
    items: Vec<Item>,
    bytes: u64,
    /// The consumer holding it and since when (delivery or refresh).
    claim: Option<(String, Instant)>,
    deliveries: u64,
    enqueued_ms: i64,
}

impl MemoryQueue {
    pub fn new(settings: QueueSettings) -> Self {
        Self {
            settings,
            state: Mutex::new(State::default()),
            results_changed: Notify::new(),
            tasks_added: Notify::new(),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        // A panic while holding the lock cannot leave the state half-updated
        // in a way later calls would misread: every update is a few field
        // writes. Keep serving rather than poison the whole process.
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        state.expire(Instant::now());
        state
    }

    fn retention(&self) -> Duration {
        Duration::from_secs(self.settings.retention_s)
    }

    /// Moves a job to state `to` when `allowed(current state)`, finishing it
    /// if every item already has its result (as seal and cancel both do).
    fn transition(
        &self,
        job_id: &str,
        to: JobState,
        action: &'static str,
        allowed: impl Fn(JobState) -> bool,
    ) -> Result<JobRecord> {
        let retention = self.retention();
        let mut state = self.lock();
        let job = state.job_mut(job_id)?;
        if !allowed(job.record.state) {
            return Err(wrong_state(&job.record, action));
        }
        job.record.state = to;
        if job.record.is_finished() {
            finish(job, retention);
        }
        let record = job.record.clone();
        drop(state);
        self.results_changed.notify_waiters();
        Ok(record)
    }

    /// Tasks dead-lettered for `model`, with the deliveries each had.
    pub fn dead_letters(&self, model: &str) -> Vec<(TaskHandle, u64)> {
        self.lock()
            .models
            .get(model)
            .map(|m| m.dead_letters.clone())
            .unwrap_or_default()
    }

    /// Runs `check` until it yields a value or `wait` passes, sleeping on
    /// `notify` in between (registered before each check, so no wake-up is
    /// lost).
    async fn wait_for<T>(
        &self,
        notify: &Notify,
        wait: Duration,
        mut check: impl FnMut() -> Result<Option<T>>,
    ) -> Result<Option<T>> {
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            let notified = notify.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            if let Some(value) = check()? {
                return Ok(Some(value));
            }
            if tokio::time::timeout_at(deadline, notified).await.is_err() {
                return Ok(None);
            }
        }
    }
}

impl State {
    fn expire(&mut self, now: Instant) {
        let expired: Vec<String> = self
            .jobs
            .iter()
            .filter(|(_, job)| job.expires.is_some_and(|at| at <= now))
            .map(|(id, _)| id.clone())
            .collect();
        for id in expired {
            self.remove_job(&id);
        }
    }

    fn remove_job(&mut self, id: &str) {
        self.callback_leases.remove(id);
        if let Some(job) = self.jobs.remove(id) {
            if let Some(key) = job.record.idempotency_key {
                if self.idempotency.get(&key).map(String::as_str) == Some(id) {
                    self.idempotency.remove(&key);
                }
            }
        }
    }

    fn job(&self, id: &str) -> Result<&Job> {
        self.jobs
            .get(id)
            .ok_or_else(|| QueueError::JobNotFound(id.to_string()))
    }

    fn job_mut(&mut self, id: &str) -> Result<&mut Job> {
        self.jobs
            .get_mut(id)
            .ok_or_else(|| QueueError::JobNotFound(id.to_string()))
    }

    /// Removes a task from its model queue, giving back its usage; a task
    /// already gone (completed twice, aborted) changes nothing.
    fn release(&mut self, handle: &TaskHandle) {
        if let Some(model) = self.models.get_mut(&handle.model) {
            if let Some(task) = model.tasks.remove(&handle.entry_id) {
                model.usage.items -= task.handle.count;
                model.usage.bytes -= task.bytes;
                model.fresh[lane(handle.priority)].retain(|id| id != &handle.entry_id);
            }
        }
    }

    /// Records a task's results once; the task itself is released either way.
    fn complete(
        &mut self,
        task: &TaskHandle,
        mut results: Vec<ItemResult>,
        retention: Duration,
    ) -> Completion {
        let outcome = match self.jobs.get_mut(&task.job_id) {
            None => Completion::JobGone,
            Some(job) if job.done.contains(&task.entry_id) => Completion::Duplicate,
            Some(job) => {
                job.done.insert(task.entry_id.clone());
                let record = &mut job.record;
                for (verdict, count) in verdict_counts(&results) {
                    *record.verdicts.entry(verdict).or_default() += count;
                }
                for result in &mut results {
                    result.cursor = job.results.len() as u64 + 1;
                    if result.error.is_empty() {
                        record.completed += 1;
                    } else {
                        record.failed += 1;
                    }
                    job.results.push(std::mem::take(result));
                }
                if record.is_finished() && record.finished_ms.is_none() {
                    finish(job, retention);
                }
                Completion::Recorded
            }
        };
        self.release(task);
        outcome
    }
}

/// Stamps a job finished and schedules its expiry (after the job's own
/// retention if it has one, else the queue's).
fn finish(job: &mut Job, retention: Duration) {
    if job.record.state == JobState::Running {
        job.record.state = JobState::Completed;
    }
    job.record.finished_ms = Some(now_ms());
    let retention = job
        .record
        .retention_s
        .map_or(retention, Duration::from_secs);
    job.expires = Some(Instant::now() + retention);
}

/// Index of a priority's queue in [`ModelQueue::fresh`].
fn lane(priority: Priority) -> usize {
    match priority {
        Priority::Online => 0,
        Priority::Bulk => 1,
    }
}

fn full(model: &str, what: &str, queued: u64, new: u64, limit: u64) -> QueueError {
    QueueError::Full {
        model: model.to_string(),
        detail: format!("{queued} {what} queued + {new} new > limit {limit}"),
    }
}

fn wrong_state(job: &JobRecord, action: &'static str) -> QueueError {
    QueueError::WrongState {
        job: job.id.clone(),
        state: job.state.to_string(),
        action,
    }
}

#[async_trait]
impl JobQueue for MemoryQueue {
    async fn ping(&self) -> Result<()> {
        Ok(())
    }

    async fn create_job(&self, spec: JobSpec) -> Result<Created> {
        let mut state = self.lock();
        if let Some(key) = &spec.idempotency_key {
            if let Some(job) = state.idempotency.get(key).and_then(|id| state.jobs.get(id)) {
                if !job
                    .record
                    .upload_abandoned(now_ms(), self.settings.upload_timeout_s)
                {
                    return Ok(Created::Existing(job.record.clone()));
                }
                // Its uploader is gone: the key is free again.
                let abandoned = job.record.id.clone();
                state.remove_job(&abandoned);
            }
        }
        let record = JobRecord::new(spec);
        if let Some(key) = &record.idempotency_key {
            state.idempotency.insert(key.clone(), record.id.clone());
        }
        state.jobs.insert(
            record.id.clone(),
            Job {
                record: record.clone(),
                results: Vec::new(),
                done: HashSet::new(),
                expires: None,
            },
        );
        Ok(Created::New(record))
    }

    async fn enqueue(&self, job: &JobRecord, tasks: Vec<NewTask>) -> Result<Vec<TaskHandle>> {
        let mut state = self.lock();
        let record = &state.job(&job.id)?.record;
        if record.state != JobState::Uploading {
            return Err(wrong_state(record, "add items"));
        }
        let items: u64 = tasks.iter().map(|t| t.items.len() as u64).sum();
        let bytes: u64 = tasks.iter().map(NewTask::image_bytes).sum();
        let usage = state
            .models
            .get(&job.model)
            .map(|m| m.usage)
            .unwrap_or_default();
        let (max_items, max_bytes) = (
            self.settings.max_queued_items,
            self.settings.max_queued_bytes,
        );
        if usage.items + items > max_items {
            return Err(full(&job.model, "items", usage.items, items, max_items));
        }
        if usage.bytes + bytes > max_bytes {
            return Err(full(&job.model, "bytes", usage.bytes, bytes, max_bytes));
        }
        let record = &mut state.job_mut(&job.id)?.record;
        record.total += items;
        record.updated_ms = now_ms();
        let mut handles = Vec::with_capacity(tasks.len());
        for task in tasks {
            state.next_entry += 1;
            // Zero-padded so that the BTreeMap orders entries as they came.
            let entry_id = format!("{:020}", state.next_entry);
            let handle = TaskHandle {
                model: job.model.clone(),
                priority: job.priority,
                entry_id: entry_id.clone(),
                job_id: job.id.clone(),
                first_index: task.first_index,
                count: task.items.len() as u64,
            };
            let model = state.models.entry(job.model.clone()).or_default();
            let bytes = task.image_bytes();
            model.usage.items += handle.count;
            model.usage.bytes += bytes;
            model.fresh[lane(job.priority)].push_back(entry_id.clone());
            model.tasks.insert(
                entry_id,
                Task {
                    handle: handle.clone(),
                    items: task.items,
                    bytes,
                    claim: None,
                    deliveries: 0,
                    enqueued_ms: now_ms(),
                },
            );
            handles.push(handle);
        }
        drop(state);
        self.tasks_added.notify_waiters();
        Ok(handles)
    }

    async fn seal_job(&self, job_id: &str) -> Result<JobRecord> {
        self.transition(job_id, JobState::Running, "finish the upload", |state| {
            state == JobState::Uploading
        })
    }

    async fn abort_job(&self, job: &JobRecord, enqueued: &[TaskHandle]) -> Result<()> {
        let mut state = self.lock();
        state.remove_job(&job.id);
        for handle in enqueued {
            state.release(handle);
        }
        drop(state);
        self.results_changed.notify_waiters();
        Ok(())
    }

    async fn get_job(&self, job_id: &str) -> Result<JobRecord> {
        Ok(self.lock().job(job_id)?.record.clone())
    }

    async fn list_jobs(&self, query: ListQuery) -> Result<Vec<JobRecord>> {
        let state = self.lock();
        let mut jobs: Vec<JobRecord> = state
            .jobs
            .values()
            .map(|job| job.record.clone())
            .filter(|job| query.matches(job))
            .collect();
        jobs.sort_by(|a, b| b.created_ms.cmp(&a.created_ms).then(b.id.cmp(&a.id)));
        jobs.truncate(if query.limit == 0 { 100 } else { query.limit });
        Ok(jobs)
    }

    async fn cancel_job(&self, job_id: &str) -> Result<JobRecord> {
        self.transition(job_id, JobState::Cancelled, "cancel", |state| {
            !matches!(state, JobState::Completed | JobState::Cancelled)
        })
    }

    async fn read_results(
        &self,
        job_id: &str,
        after: u64,
        max_results: usize,
        wait: Duration,
    ) -> Result<ResultPage> {
        let page = self
            .wait_for(&self.results_changed, wait, || {
                let state = self.lock();
                let job = state.job(job_id)?;
                let start = (after as usize).min(job.results.len());
                let end = job.results.len().min(start + max_results.max(1));
                let results = job.results[start..end].to_vec();
                let recorded = job.record.completed + job.record.failed;
                let finished = job.record.is_finished() && end as u64 >= recorded;
                Ok((!results.is_empty() || finished).then_some(ResultPage { results, finished }))
            })
            .await?;
        Ok(page.unwrap_or(ResultPage {
            results: Vec::new(),
            finished: false,
        }))
    }

    async fn queue_stats(&self, model: &str) -> Result<QueueStats> {
        Ok(self
            .lock()
            .models
            .get(model)
            .map(|m| m.usage)
            .unwrap_or_default())
    }

    async fn claim(
        &self,
        model: &str,
        consumer: &str,
        max_tasks: usize,
        wait: Duration,
    ) -> Result<Vec<ClaimedTask>> {
        let visibility = Duration::from_millis(self.settings.visibility_timeout_ms);
        let max_deliveries = self.settings.max_deliveries;
        let retention = self.retention();
        let claimed = self
            .wait_for(&self.tasks_added, wait, || {
                let mut state = self.lock();
                let now = Instant::now();
                let Some(queue) = state.models.get_mut(model) else {
                    return Ok(None);
                };
                let mut out = Vec::new();
                let mut dead = Vec::new();
                // Online tasks first: reclaimed, then new; then bulk ones.
                for priority in Priority::ALL {
                    let tasks = queue.tasks.values_mut();
                    for task in tasks.filter(|t| t.handle.priority == priority) {
                        if out.len() >= max_tasks {
                            break;
                        }
                        let idle = task
                            .claim
                            .as_ref()
                            .is_some_and(|(_, since)| now.duration_since(*since) >= visibility);
                        if !idle {
                            continue;
                        }
                        task.deliveries += 1;
                        if task.deliveries > max_deliveries {
                            let handed_out = task.deliveries - 1;
                            dead.push((task.handle.clone(), task.items.clone(), handed_out));
                            continue;
                        }
                        task.claim = Some((consumer.to_string(), now));
                        out.push(task.handle.entry_id.clone());
                    }
                    while out.len() < max_tasks {
                        let Some(id) = queue.fresh[lane(priority)].pop_front() else {
                            break;
                        };
                        if let Some(task) = queue.tasks.get_mut(&id) {
                            task.deliveries = 1;
                            task.claim = Some((consumer.to_string(), now));
                            out.push(id);
                        }
                    }
                }
                let tasks: Vec<ClaimedTask> = out
                    .iter()
                    .filter_map(|id| queue.tasks.get(id))
                    .map(|task| ClaimedTask {
                        handle: task.handle.clone(),
                        items: Ok(task.items.clone()),
                        job_cancelled: false,
                        deliveries: task.deliveries,
                        policy: None,
                        enqueued_ms: task.enqueued_ms,
                    })
                    .collect();
                for (handle, items, deliveries) in dead {
                    let results = dead_letter_results(&handle, Some(&items), deliveries);
                    if let Some(queue) = state.models.get_mut(model) {
                        queue.dead_letters.push((handle.clone(), deliveries));
                    }
                    state.complete(&handle, results, retention);
                    self.results_changed.notify_waiters();
                }
                let tasks: Vec<ClaimedTask> = tasks
                    .into_iter()
                    .map(|mut task| {
                        if let Some(job) = state.jobs.get(&task.handle.job_id) {
                            task.job_cancelled = job.record.state == JobState::Cancelled;
                            task.policy.clone_from(&job.record.policy);
                        }
                        task
                    })
                    .collect();
                Ok((!tasks.is_empty()).then_some(tasks))
            })
            .await?;
        Ok(claimed.unwrap_or_default())
    }

    async fn refresh(&self, consumer: &str, tasks: &[TaskHandle]) -> Result<()> {
        let mut state = self.lock();
        let now = Instant::now();
        for handle in tasks {
            let task = state
                .models
                .get_mut(&handle.model)
                .and_then(|m| m.tasks.get_mut(&handle.entry_id));
            if let Some(task) = task {
                task.claim = Some((consumer.to_string(), now));
            }
        }
        Ok(())
    }

    async fn complete(&self, task: &TaskHandle, results: Vec<ItemResult>) -> Result<Completion> {
        let retention = self.retention();
        let outcome = self.lock().complete(task, results, retention);
        self.results_changed.notify_waiters();
        Ok(outcome)
    }

    async fn heartbeat(&self, worker: &Worker) -> Result<()> {
        self.lock()
            .workers
            .insert(worker.worker_id.clone(), (worker.clone(), Instant::now()));
        Ok(())
    }

    async fn deregister(&self, worker_id: &str) -> Result<()> {
        self.lock().workers.remove(worker_id);
        Ok(())
    }

    async fn list_workers(&self) -> Result<Vec<Worker>> {
        let ttl = Duration::from_millis(self.settings.worker_ttl_ms);
        let mut state = self.lock();
        state.workers.retain(|_, (_, seen)| seen.elapsed() < ttl);
        let mut workers: Vec<Worker> = state.workers.values().map(|(w, _)| w.clone()).collect();
        workers.sort_by(|a, b| a.worker_id.cmp(&b.worker_id));
        Ok(workers)
    }

    async fn reap_abandoned_uploads(&self) -> Result<usize> {
        crate::reap_abandoned(self, self.settings.upload_timeout_s).await
    }

    async fn pending_callbacks(&self, limit: usize) -> Result<Vec<String>> {
        let state = self.lock();
        let mut pending: Vec<&JobRecord> = state
            .jobs
            .values()
            .map(|job| &job.record)
            .filter(|record| record.callback.is_some() && !record.callback_done)
            .collect();
        pending.sort_by(|a, b| a.created_ms.cmp(&b.created_ms).then(a.id.cmp(&b.id)));
        Ok(pending
            .into_iter()
            .take(limit.max(1))
            .map(|record| record.id.clone())
            .collect())
    }

    async fn lease_callback(&self, job_id: &str, holder: &str, ttl: Duration) -> Result<bool> {
        let mut state = self.lock();
        let now = Instant::now();
        if let Some((other, until)) = state.callback_leases.get(job_id) {
            if other != holder && *until > now {
                return Ok(false);
            }
        }
        state
            .callback_leases
            .insert(job_id.to_string(), (holder.to_string(), now + ttl));
        Ok(true)
    }

    async fn callback_progress(&self, job_id: &str, cursor: u64, done: bool) -> Result<()> {
        let mut state = self.lock();
        if done {
            state.callback_leases.remove(job_id);
        }
        if let Some(job) = state.jobs.get_mut(job_id) {
            job.record.callback_cursor = cursor;
            job.record.callback_done |= done;
        }
        Ok(())
    }
}
