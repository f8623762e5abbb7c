//! The values that cross the queue boundary.

use std::collections::BTreeMap;

use dfscan_proto::v1::{self as pb, Callback, FaceOptions, Item, ItemResult, VerdictPolicy};

/// What a job is created from (the SubmitJob header, validated).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct JobSpec {
    pub model: String,
    pub metadata: BTreeMap<String, String>,
    pub idempotency_key: Option<String>,
    pub priority: Priority,
    /// How long the job outlives its end; `None`: the queue's
    /// `retention_s`.
    pub retention_s: Option<u64>,
    /// Verdicts for the job's scored items (validated by the coordinator).
    pub policy: Option<VerdictPolicy>,
    pub callback: Option<Callback>,
    /// How the job's images become face crops, over the workers'
    /// configuration (validated by the coordinator).
    pub faces: Option<FaceOptions>,
    /// The tenant the job belongs to ("" without authentication).
    pub tenant: String,
}

/// Which of its model's two task queues a job waits in: workers take
/// `Online` tasks (interactive calls, a few images each) before `Bulk`
/// ones, so online and batch traffic can share the workers.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub enum Priority {
    #[default]
    Bulk,
    Online,
}

impl Priority {
    /// In the order workers take tasks.
    pub const ALL: [Priority; 2] = [Priority::Online, Priority::Bulk];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Bulk => "bulk",
            Self::Online => "online",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|p| p.as_str() == s)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JobState {
    Uploading,
    Running,
    Completed,
    Cancelled,
}

impl JobState {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Uploading => "uploading",
            Self::Running => "running",
            Self::Completed => "completed",
            Self::Cancelled => "cancelled",
        }
    }

    /// In the order of a job's life.
    pub const ALL: [JobState; 4] = [
        Self::Uploading,
        Self::Running,
        Self::Completed,
        Self::Cancelled,
    ];

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|state| state.as_str() == s)
    }

    pub fn to_proto(self) -> pb::JobState {
        match self {
            Self::Uploading => pb::JobState::Uploading,
            Self::Running => pb::JobState::Running,
            Self::Completed => pb::JobState::Completed,
            Self::Cancelled => pb::JobState::Cancelled,
        }
    }

    pub fn from_proto(state: pb::JobState) -> Option<Self> {
        match state {
            pb::JobState::Unspecified => None,
            pb::JobState::Uploading => Some(Self::Uploading),
            pb::JobState::Running => Some(Self::Running),
            pb::JobState::Completed => Some(Self::Completed),
            pb::JobState::Cancelled => Some(Self::Cancelled),
        }
    }
}

impl std::fmt::Display for JobState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A job as the queue keeps it: what it was created from and where it is.
#[derive(Debug, Clone, PartialEq)]
pub struct JobRecord {
    /// 32 lowercase hex digits (128 random bits).
    pub id: String,
    pub spec: JobSpec,
    pub state: JobState,
    pub total: u64,
    pub completed: u64,
    pub failed: u64,
    pub created_ms: i64,
    pub finished_ms: Option<i64>,
    /// Scored items per verdict.
    pub verdicts: BTreeMap<String, u64>,
    /// Item callbacks are delivered for the results up to this cursor.
    pub callback_cursor: u64,
    /// The job's callbacks are over (delivered or given up).
    pub callback_done: bool,
    /// The upload's last activity (creation, then each enqueue), in ms
    /// since the Unix epoch.
    pub updated_ms: i64,
}

impl JobRecord {
    /// A new job, uploading, with a fresh random id.
    pub fn new(spec: JobSpec) -> Self {
        let now = crate::now_ms();
        Self {
            id: new_job_id(),
            spec,
            state: JobState::Uploading,
            total: 0,
            completed: 0,
            failed: 0,
            created_ms: now,
            finished_ms: None,
            verdicts: BTreeMap::new(),
            callback_cursor: 0,
            callback_done: false,
            updated_ms: now,
        }
    }

    /// Items not yet given a result: what the job holds of its tenant's
    /// quota.
    pub fn queued_items(&self) -> u64 {
        self.total.saturating_sub(self.completed + self.failed)
    }

    /// Still uploading with nothing added for `timeout_s`: its uploader
    /// is gone (a coordinator that died mid-upload) and nobody will seal it.
    pub fn upload_abandoned(&self, now_ms: i64, timeout_s: u64) -> bool {
        self.state == JobState::Uploading && self.updated_ms <= abandoned_since(now_ms, timeout_s)
    }

    /// The upload is over and every item has its result.
    pub fn is_finished(&self) -> bool {
        self.state != JobState::Uploading && self.completed + self.failed >= self.total
    }

    pub fn to_proto(&self) -> pb::Job {
        pb::Job {
            job_id: self.id.clone(),
            state: self.state.to_proto() as i32,
            model: self.spec.model.clone(),
            total: self.total,
            completed: self.completed,
            failed: self.failed,
            created_unix_ms: self.created_ms,
            finished_unix_ms: self.finished_ms.unwrap_or(0),
            metadata: self.spec.metadata.clone().into_iter().collect(),
            idempotency_key: self.spec.idempotency_key.clone().unwrap_or_default(),
            finished: self.is_finished(),
            policy: self.spec.policy.clone(),
            callback: self.spec.callback.clone(),
            faces: self.spec.faces.clone(),
            verdicts: self.verdicts.clone().into_iter().collect(),
        }
    }
}

/// An upload last active at this time (ms since the Unix epoch) or
/// earlier is abandoned at `now_ms`.
pub(crate) fn abandoned_since(now_ms: i64, timeout_s: u64) -> i64 {
    let timeout_ms = i64::try_from(timeout_s.saturating_mul(1000)).unwrap_or(i64::MAX);
    now_ms.saturating_sub(timeout_ms)
}

/// A new job id: 128 random bits as hex.
pub fn new_job_id() -> String {
    format!("{:032x}", rand::random::<u128>())
}

#[derive(Debug, Clone, PartialEq)]
pub enum Created {
    New(JobRecord),
    /// The idempotency key belongs to this job already.
    Existing(JobRecord),
}

/// Consecutive items of a job, to be scored together.
#[derive(Debug, Clone, PartialEq)]
pub struct NewTask {
    /// Upload position of the first item.
    pub first_index: u64,
    pub items: Vec<Item>,
}

impl NewTask {
    /// Encoded image bytes this task holds (what `max_queued_bytes` limits).
    pub fn image_bytes(&self) -> u64 {
        self.items.iter().map(item_bytes).sum()
    }
}

/// Bytes an item occupies in the queue, for the byte limit.
pub fn item_bytes(item: &Item) -> u64 {
    use dfscan_proto::v1::item::Source;
    let source = match &item.source {
        Some(Source::Data(d)) => d.len(),
        Some(Source::Uri(u)) => u.len(),
        None => 0,
    };
    (source + item.id.len()) as u64
}

/// Most items of one task. Coordinators cut tasks no larger (a task is
/// what a worker holds and a redelivery repeats); a stored entry that
/// declares more is not one of theirs and is dead-lettered when claimed.
pub const MAX_TASK_ITEMS: u64 = 1024;

/// Where a task is in the queue; what workers complete and refresh.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct TaskHandle {
    pub model: String,
    /// Which of the model's task queues holds it (its job's priority).
    pub priority: Priority,
    /// The backend's id of the task entry.
    pub entry_id: String,
    pub job_id: String,
    pub first_index: u64,
    pub count: u64,
}

/// A task handed to a worker.
#[derive(Debug, Clone, PartialEq)]
pub struct ClaimedTask {
    pub handle: TaskHandle,
    /// The items, or why the stored payload cannot be read (the worker then
    /// leaves the task to be redelivered and, in the end, dead-lettered).
    pub items: Result<Vec<Item>, String>,
    /// The job was cancelled: give every item the error "job cancelled".
    pub job_cancelled: bool,
    /// How many times the task has been handed out, this time included.
    pub deliveries: u64,
    /// The job's verdict policy, for the worker to apply.
    pub policy: Option<VerdictPolicy>,
    /// The job's face options, for the worker to apply over its own.
    pub faces: Option<FaceOptions>,
    /// When the task was queued (ms since the Unix epoch), for the time
    /// it waited.
    pub enqueued_ms: i64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Completion {
    Recorded,
    /// The task was completed before (a redelivery finished twice).
    Duplicate,
    /// The job no longer exists (aborted or expired).
    JobGone,
}

#[derive(Debug, Clone, PartialEq)]
pub struct ResultPage {
    pub results: Vec<ItemResult>,
    /// The job is finished and these are its last results.
    pub finished: bool,
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct ListQuery {
    pub limit: usize,
    pub state: Option<JobState>,
    /// Only this tenant's jobs.
    pub tenant: Option<String>,
}

impl ListQuery {
    pub fn matches(&self, job: &JobRecord) -> bool {
        self.state.is_none_or(|s| s == job.state)
            && self.tenant.as_ref().is_none_or(|t| *t == job.spec.tenant)
    }
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct QueueStats {
    /// Items in tasks waiting or in progress.
    pub items: u64,
    /// Their encoded bytes.
    pub bytes: u64,
}
