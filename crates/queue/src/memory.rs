//! The in-memory backend: the whole queue in one process, for `dfscan
//! serve` without Redis. It keeps the Redis backend's semantics (visibility
//! timeout, delivery counts, dead-lettering, idempotent completion, cursor
//! order, retention) so that the same conformance suite holds for both and
//! a deployment can move from one to the other without surprises. Nothing
//! survives the process.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet, VecDeque};
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
    /// Changed only through [`State::insert_job`], [`State::update_job`]
    /// and [`State::remove_job`], which keep `tally` with them (a change
    /// to what the tally does not count, such as callback progress, may go
    /// direct).
    jobs: HashMap<String, Job>,
    tally: Tally,
    idempotency: HashMap<String, String>,
    models: HashMap<String, ModelQueue>,
    workers: HashMap<String, (Worker, Instant)>,
    /// Job id → who delivers its callbacks, until when.
    callback_leases: HashMap<String, (String, Instant)>,
    next_entry: u64,
}

/// What all jobs add up to, kept as they change, so that questions about
/// every job (a tenant's queued items, jobs per state, which uploads are
/// idle, which jobs expire now) need no pass over them: each job adds its
/// share while it exists.
#[derive(Default)]
struct Tally {
    by_state: HashMap<&'static str, u64>,
    /// Only tenants with items queued.
    queued_by_tenant: HashMap<String, u64>,
    /// Uploading jobs by last activity (`updated_ms`).
    uploads: BTreeSet<(i64, String)>,
    /// Finished jobs by when they expire.
    expiries: BTreeSet<(Instant, String)>,
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

/// One claim as it goes: who claims, within which limits, what it took.
struct Claim<'a> {
    consumer: &'a str,
    at: Instant,
    max_tasks: usize,
    visibility: Duration,
    max_deliveries: u64,
    /// Entry ids handed out, in the order they were taken.
    taken: Vec<String>,
    /// Tasks past `max_deliveries`, with their items and how often they
    /// were handed out.
    dead: Vec<(TaskHandle, Vec<Item>, u64)>,
}

impl Claim<'_> {
    fn is_full(&self) -> bool {
        self.taken.len() >= self.max_tasks
    }
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
        state.expire_due(Instant::now());
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
        let record = state.update_job(job_id, |job| {
            if !allowed(job.record.state) {
                return Err(wrong_state(&job.record, action));
            }
            job.record.state = to;
            if job.record.is_finished() {
                finish(job, retention);
            }
            Ok(job.record.clone())
        })??;
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

impl Tally {
    fn add(&mut self, id: &str, job: &Job) {
        let record = &job.record;
        *self.by_state.entry(record.state.as_str()).or_default() += 1;
        let queued = record.queued_items();
        if queued > 0 {
            *self
                .queued_by_tenant
                .entry(record.spec.tenant.clone())
                .or_default() += queued;
        }
        if record.state == JobState::Uploading {
            self.uploads.insert((record.updated_ms, id.to_string()));
        }
        if let Some(at) = job.expires {
            self.expiries.insert((at, id.to_string()));
        }
    }

    fn remove(&mut self, id: &str, job: &Job) {
        let record = &job.record;
        if let Some(count) = self.by_state.get_mut(record.state.as_str()) {
            *count -= 1;
        }
        let tenant = &record.spec.tenant;
        if let Some(queued) = self.queued_by_tenant.get_mut(tenant) {
            *queued -= record.queued_items();
            if *queued == 0 {
                self.queued_by_tenant.remove(tenant);
            }
        }
        self.uploads.remove(&(record.updated_ms, id.to_string()));
        if let Some(at) = job.expires {
            self.expiries.remove(&(at, id.to_string()));
        }
    }
}

impl State {
    /// Removes the jobs whose retention has ended: only those, found from
    /// the earliest expiry on, so a call costs nothing when none is due.
    fn expire_due(&mut self, now: Instant) {
        while let Some((at, id)) = self.tally.expiries.first() {
            if *at > now {
                break;
            }
            let id = id.clone();
            self.remove_job(&id);
        }
    }

    fn insert_job(&mut self, job: Job) {
        let id = job.record.id.clone();
        if let Some(key) = &job.record.spec.idempotency_key {
            self.idempotency.insert(key.clone(), id.clone());
        }
        self.tally.add(&id, &job);
        self.jobs.insert(id, job);
    }

    /// Runs `change` on a job, keeping the tally with it.
    fn update_job<R>(&mut self, id: &str, change: impl FnOnce(&mut Job) -> R) -> Result<R> {
        let job = self
            .jobs
            .get_mut(id)
            .ok_or_else(|| QueueError::JobNotFound(id.to_string()))?;
        self.tally.remove(id, job);
        let outcome = change(job);
        self.tally.add(id, job);
        Ok(outcome)
    }

    fn remove_job(&mut self, id: &str) {
        self.callback_leases.remove(id);
        if let Some(job) = self.jobs.remove(id) {
            self.tally.remove(id, &job);
            if let Some(key) = job.record.spec.idempotency_key {
                if self.idempotency.get(&key).map(String::as_str) == Some(id) {
                    self.idempotency.remove(&key);
                }
            }
        }
    }

    /// Uploads last active at `since_ms` or before, least recent first, at
    /// most `limit`.
    fn idle_uploads(&self, since_ms: i64, limit: usize) -> Vec<JobRecord> {
        self.tally
            .uploads
            .iter()
            .take_while(|(activity, _)| *activity <= since_ms)
            .take(limit)
            .filter_map(|(_, id)| self.jobs.get(id))
            .map(|job| job.record.clone())
            .collect()
    }

    fn job(&self, id: &str) -> Result<&Job> {
        self.jobs
            .get(id)
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
        let recorded = self.update_job(&task.job_id, |job| {
            if !job.done.insert(task.entry_id.clone()) {
                return Completion::Duplicate;
            }
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
        });
        self.release(task);
        recorded.unwrap_or(Completion::JobGone)
    }

    /// Up to `max_tasks` tasks of `model` for `consumer`: online ones
    /// first, reclaimed then new, then bulk ones the same way. Tasks past
    /// `max_deliveries` are dead-lettered on the way; the flag says whether
    /// any were.
    fn claim(
        &mut self,
        model: &str,
        consumer: &str,
        max_tasks: usize,
        settings: &QueueSettings,
        retention: Duration,
    ) -> (Vec<ClaimedTask>, bool) {
        let Some(queue) = self.models.get_mut(model) else {
            return (Vec::new(), false);
        };
        let mut claim = Claim {
            consumer,
            at: Instant::now(),
            max_tasks,
            visibility: Duration::from_millis(settings.visibility_timeout_ms),
            max_deliveries: settings.max_deliveries,
            taken: Vec::new(),
            dead: Vec::new(),
        };
        for priority in Priority::ALL {
            queue.reclaim_idle(priority, &mut claim);
            queue.take_fresh(priority, &mut claim);
        }
        let tasks = self.handed_out(model, &claim.taken);
        let dead_lettered = !claim.dead.is_empty();
        for (handle, items, deliveries) in claim.dead {
            self.dead_letter(handle, &items, deliveries, retention);
        }
        (tasks, dead_lettered)
    }

    /// Claimed tasks as a worker gets them: with their job's verdict policy
    /// and whether the job is cancelled.
    fn handed_out(&self, model: &str, taken: &[String]) -> Vec<ClaimedTask> {
        let Some(queue) = self.models.get(model) else {
            return Vec::new();
        };
        taken
            .iter()
            .filter_map(|id| queue.tasks.get(id))
            .map(|task| {
                let job = self.jobs.get(&task.handle.job_id).map(|job| &job.record);
                ClaimedTask {
                    handle: task.handle.clone(),
                    items: Ok(task.items.clone()),
                    job_cancelled: job.is_some_and(|job| job.state == JobState::Cancelled),
                    deliveries: task.deliveries,
                    policy: job.and_then(|job| job.spec.policy.clone()),
                    faces: job.and_then(|job| job.spec.faces.clone()),
                    enqueued_ms: task.enqueued_ms,
                }
            })
            .collect()
    }

    /// Records a task delivered too often as a dead letter and gives each
    /// of its items an error result.
    fn dead_letter(
        &mut self,
        handle: TaskHandle,
        items: &[Item],
        deliveries: u64,
        retention: Duration,
    ) {
        let results = dead_letter_results(&handle, Some(items), deliveries);
        if let Some(queue) = self.models.get_mut(&handle.model) {
            queue.dead_letters.push((handle.clone(), deliveries));
        }
        self.complete(&handle, results, retention);
    }
}

impl ModelQueue {
    /// Takes the tasks of `priority` whose holder let the visibility
    /// timeout pass, oldest first; those now past `max_deliveries` go to
    /// `claim.dead` instead.
    fn reclaim_idle(&mut self, priority: Priority, claim: &mut Claim<'_>) {
        let tasks = self.tasks.values_mut();
        for task in tasks.filter(|t| t.handle.priority == priority) {
            if claim.is_full() {
                break;
            }
            let idle = task
                .claim
                .as_ref()
                .is_some_and(|(_, since)| claim.at.duration_since(*since) >= claim.visibility);
            if !idle {
                continue;
            }
            task.deliveries += 1;
            if task.deliveries > claim.max_deliveries {
                let handed_out = task.deliveries - 1;
                claim
                    .dead
                    .push((task.handle.clone(), task.items.clone(), handed_out));
                continue;
            }
            task.claim = Some((claim.consumer.to_string(), claim.at));
            claim.taken.push(task.handle.entry_id.clone());
        }
    }

    /// Takes tasks of `priority` never delivered, oldest first.
    fn take_fresh(&mut self, priority: Priority, claim: &mut Claim<'_>) {
        while !claim.is_full() {
            let Some(id) = self.fresh[lane(priority)].pop_front() else {
                break;
            };
            if let Some(task) = self.tasks.get_mut(&id) {
                task.deliveries = 1;
                task.claim = Some((claim.consumer.to_string(), claim.at));
                claim.taken.push(id);
            }
        }
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
        .spec
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
        state.insert_job(Job {
            record: record.clone(),
            results: Vec::new(),
            done: HashSet::new(),
            expires: None,
        });
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
        let model = &job.spec.model;
        let usage = state.models.get(model).map(|m| m.usage).unwrap_or_default();
        let (max_items, max_bytes) = (
            self.settings.max_queued_items,
            self.settings.max_queued_bytes,
        );
        if usage.items + items > max_items {
            return Err(full(model, "items", usage.items, items, max_items));
        }
        if usage.bytes + bytes > max_bytes {
            return Err(full(model, "bytes", usage.bytes, bytes, max_bytes));
        }
        state.update_job(&job.id, |job| {
            job.record.total += items;
            job.record.updated_ms = now_ms();
        })?;
        let mut handles = Vec::with_capacity(tasks.len());
        for task in tasks {
            state.next_entry += 1;
            // Zero-padded so that the BTreeMap orders entries as they came.
            let entry_id = format!("{:020}", state.next_entry);
            let handle = TaskHandle {
                model: model.clone(),
                priority: job.spec.priority,
                entry_id: entry_id.clone(),
                job_id: job.id.clone(),
                first_index: task.first_index,
                count: task.items.len() as u64,
            };
            let queue = state.models.entry(model.clone()).or_default();
            let bytes = task.image_bytes();
            queue.usage.items += handle.count;
            queue.usage.bytes += bytes;
            queue.fresh[lane(job.spec.priority)].push_back(entry_id.clone());
            queue.tasks.insert(
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

    async fn tenant_queued_items(&self, tenant: &str) -> Result<u64> {
        let state = self.lock();
        Ok(state
            .tally
            .queued_by_tenant
            .get(tenant)
            .copied()
            .unwrap_or(0))
    }

    async fn jobs_by_state(&self) -> Result<Vec<(JobState, u64)>> {
        let state = self.lock();
        let count = |s: JobState| state.tally.by_state.get(s.as_str()).copied().unwrap_or(0);
        Ok(JobState::ALL.map(|s| (s, count(s))).to_vec())
    }

    async fn claim(
        &self,
        model: &str,
        consumer: &str,
        max_tasks: usize,
        wait: Duration,
    ) -> Result<Vec<ClaimedTask>> {
        let retention = self.retention();
        let claimed = self
            .wait_for(&self.tasks_added, wait, || {
                let mut state = self.lock();
                let (tasks, dead_lettered) =
                    state.claim(model, consumer, max_tasks, &self.settings, retention);
                drop(state);
                if dead_lettered {
                    self.results_changed.notify_waiters();
                }
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
        let timeout_s = self.settings.upload_timeout_s;
        let since = abandoned_since(now_ms(), timeout_s);
        let idle = self.lock().idle_uploads(since, crate::REAP_BATCH);
        crate::reap_abandoned(self, idle, timeout_s).await
    }

    async fn pending_callbacks(&self, limit: usize) -> Result<Vec<String>> {
        let state = self.lock();
        let mut pending: Vec<&JobRecord> = state
            .jobs
            .values()
            .map(|job| &job.record)
            .filter(|record| record.spec.callback.is_some() && !record.callback_done)
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
        // Not counted by the tally: changed in place.
        if let Some(job) = state.jobs.get_mut(job_id) {
            job.record.callback_cursor = cursor;
            job.record.callback_done |= done;
        }
        Ok(())
    }
}
