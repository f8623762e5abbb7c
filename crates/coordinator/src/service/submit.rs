//! SubmitJob: the upload. Items are cut into tasks and enqueued as they
//! arrive, so the coordinator holds at most one request message and one
//! partial task however large the job is. The job exists for readers only
//! once the upload is sealed: any failure on the way (a bad item, a full
//! queue, a client that goes away, shutdown) aborts it, removing the tasks
//! already enqueued, so a refused upload leaves nothing behind.

use std::collections::BTreeMap;

use dfscan_core::FaceSettings;
use dfscan_proto::v1::item::Source;
use dfscan_proto::v1::submit_job_request::Message;
use dfscan_proto::v1::{Item, JobHeader, SubmitJobRequest, SubmitJobResponse};
use dfscan_queue::{
    item_bytes, policy, Created, JobQueue, JobRecord, JobSpec, NewTask, TaskHandle,
};
use tokio_util::sync::CancellationToken;
use tonic::{Status, Streaming};

use super::{invalid, ScoringService};
use crate::auth::Tenant;
use crate::cancel::BodyFailed;
use crate::error::{policy_status, status};
use crate::settings::MAX_TASK_SIZE;

// Limits on the header, which is stored with the job and returned by every
// GetJob and ListJobs: kept small so a job record stays small.
const MAX_METADATA_ENTRIES: usize = 64;
const MAX_METADATA_KEY_BYTES: usize = 256;
const MAX_METADATA_VALUE_BYTES: usize = 4096;
const MAX_IDEMPOTENCY_KEY_BYTES: usize = 256;
/// An item id travels with every result of the item.
const MAX_ITEM_ID_BYTES: usize = 1024;
/// So does its metadata.
const MAX_ITEM_METADATA_ENTRIES: usize = 16;
const MAX_ITEM_METADATA_BYTES: usize = 4096;

pub(super) async fn submit_job(
    svc: &ScoringService,
    tenant: Tenant,
    mut stream: Streaming<SubmitJobRequest>,
    body_failed: BodyFailed,
) -> Result<SubmitJobResponse, Status> {
    let header = match next_message(&mut stream, &svc.shutdown).await? {
        Some(Message::Header(header)) => header,
        Some(Message::Items(_)) => return Err(invalid("the first message must be a JobHeader")),
        None => return Err(invalid("no JobHeader: the upload is empty")),
    };
    let (mut spec, task_size) = svc.job_spec(header).await?;
    if !tenant.0.is_empty() {
        // Keys are per tenant: another tenant's key must not find its job.
        if let Some(key) = &mut spec.idempotency_key {
            *key = format!("{}/{key}", tenant.0);
        }
    }
    let quota = svc.quota_room(&tenant).await?;
    spec.tenant = tenant.0;
    let job = match svc.queue.create_job(spec).await.map_err(status)? {
        Created::New(job) => job,
        Created::Existing(job) => {
            // The items are those of the first submission: read and drop
            // them so the client sees a normal end of its upload.
            drain(&mut stream, &svc.shutdown).await;
            tracing::info!(job = %job.id, "duplicate submission: returning the existing job");
            return Ok(SubmitJobResponse {
                job: Some(job.to_proto()),
                deduplicated: true,
            });
        }
    };
    let mut upload = Upload::new(svc, &job, task_size);
    upload.quota = quota;
    let outcome = upload.run(&mut stream, &svc.shutdown, &body_failed).await;
    let sealed = upload.abort_on_error(outcome).await?;
    let model = crate::metrics::ModelLabel {
        model: sealed.spec.model.clone(),
    };
    svc.metrics.jobs_submitted.get_or_create(&model).inc();
    svc.metrics
        .items_submitted
        .get_or_create(&model)
        .inc_by(sealed.total);
    tracing::info!(job = %sealed.id, model = %sealed.spec.model, items = sealed.total, "job submitted");
    Ok(SubmitJobResponse {
        job: Some(sealed.to_proto()),
        deduplicated: false,
    })
}

/// Queues `items` as the whole of a new job of `spec` and seals it, in as
/// few tasks as `max_task_bytes` allows: what one ModelInfer call does
/// with its images. Like an upload, it leaves nothing behind on failure.
pub(crate) async fn submit_items(
    svc: &ScoringService,
    spec: JobSpec,
    items: Vec<Item>,
) -> Result<JobRecord, Status> {
    debug_assert!(spec.idempotency_key.is_none(), "a new job every time");
    let (Created::New(job) | Created::Existing(job)) =
        svc.queue.create_job(spec).await.map_err(status)?;
    let mut upload = Upload::new(svc, &job, items.len().clamp(1, MAX_TASK_SIZE));
    let outcome = match upload.add(items).await {
        Ok(()) => upload.seal().await,
        Err(error) => Err(error),
    };
    upload.abort_on_error(outcome).await
}

/// The next message's content; `None` at the end of the upload. Shutdown
/// interrupts a waiting upload so that it cannot hold the server open.
async fn next_message(
    stream: &mut Streaming<SubmitJobRequest>,
    shutdown: &CancellationToken,
) -> Result<Option<Message>, Status> {
    let request = tokio::select! {
        biased;
        () = shutdown.cancelled() => {
            return Err(Status::unavailable("the coordinator is shutting down: submit again"));
        }
        request = stream.message() => request.map_err(oversized_is_exhausted)?,
    };
    match request {
        None => Ok(None),
        Some(SubmitJobRequest {
            message: Some(message),
        }) => Ok(Some(message)),
        Some(SubmitJobRequest { message: None }) => {
            Err(invalid("a message carries neither a header nor items"))
        }
    }
}

/// tonic reports a message over `max_decoding_message_size` as OUT_OF_RANGE;
/// gRPC's convention (grpc-go, grpc-java, grpc-core) for a message over the
/// receive limit is RESOURCE_EXHAUSTED, which is what clients retry on with
/// smaller messages. Uploads are the only requests that can be that large.
fn oversized_is_exhausted(status: Status) -> Status {
    if status.code() == tonic::Code::OutOfRange {
        Status::resource_exhausted(format!(
            "{}: send images in smaller messages",
            status.message()
        ))
    } else {
        status
    }
}

/// Reads what is left of an upload and drops it; gives up quietly on an
/// error, as the response no longer depends on it.
async fn drain(stream: &mut Streaming<SubmitJobRequest>, shutdown: &CancellationToken) {
    while let Ok(Some(_)) = next_message(stream, shutdown).await {}
}

impl ScoringService {
    /// How many more items `tenant` may queue under its quota, with the
    /// quota; `None` without one. Read once, when the upload starts (the
    /// queue keeps every tenant's count of items without a result), so two
    /// uploads racing each other may overshoot by what they send at the
    /// same time.
    async fn quota_room(&self, tenant: &Tenant) -> Result<Option<(u64, u64)>, Status> {
        let quota = self.settings.auth.tenant_max_queued_items;
        if quota == 0 || tenant.0.is_empty() {
            return Ok(None);
        }
        let queued = self
            .queue
            .tenant_queued_items(&tenant.0)
            .await
            .map_err(status)?;
        Ok(Some((quota.saturating_sub(queued), quota)))
    }

    /// Checks a header and turns it into the job's spec and task size.
    async fn job_spec(&self, header: JobHeader) -> Result<(JobSpec, usize), Status> {
        if header.metadata.len() > MAX_METADATA_ENTRIES {
            return Err(invalid(format!(
                "metadata has {} entries; the limit is {MAX_METADATA_ENTRIES}",
                header.metadata.len()
            )));
        }
        for (key, value) in &header.metadata {
            if key.len() > MAX_METADATA_KEY_BYTES {
                return Err(invalid(format!(
                    "a metadata key is {} bytes; the limit is {MAX_METADATA_KEY_BYTES}",
                    key.len()
                )));
            }
            if value.len() > MAX_METADATA_VALUE_BYTES {
                return Err(invalid(format!(
                    "metadata {key:?} is {} bytes; the limit is {MAX_METADATA_VALUE_BYTES}",
                    value.len()
                )));
            }
        }
        if header.idempotency_key.len() > MAX_IDEMPOTENCY_KEY_BYTES {
            return Err(invalid(format!(
                "idempotency_key is {} bytes; the limit is {MAX_IDEMPOTENCY_KEY_BYTES}",
                header.idempotency_key.len()
            )));
        }
        let model = self.resolve_model(&header.model).await?;
        let policy = header
            .policy
            .map(policy::checked)
            .transpose()
            .map_err(policy_status)?;
        let callback = header
            .callback
            .map(|c| super::callback::checked_callback(c, policy.as_ref(), &self.settings))
            .transpose()?;
        if let Some(faces) = &header.faces {
            // The job's values must hold whatever the workers' own are.
            dfscan_queue::faces::job_faces(&FaceSettings::default(), Some(faces))
                .map_err(|e| invalid(format!("faces: {e}")))?;
        }
        let task_size = match header.task_size as usize {
            0 => self.settings.task_size,
            n => n.min(MAX_TASK_SIZE),
        };
        let spec = JobSpec {
            model,
            metadata: BTreeMap::from_iter(header.metadata),
            idempotency_key: Some(header.idempotency_key).filter(|key| !key.is_empty()),
            policy,
            callback,
            faces: header.faces,
            ..Default::default()
        };
        Ok((spec, task_size))
    }
}

/// What is wrong with an item's metadata, which travels with its task and
/// its result: kept small.
fn item_metadata_problem(item: &Item) -> Option<String> {
    let bytes: usize = item.metadata.iter().map(|(k, v)| k.len() + v.len()).sum();
    (item.metadata.len() > MAX_ITEM_METADATA_ENTRIES || bytes > MAX_ITEM_METADATA_BYTES).then(|| {
        format!(
            "metadata has {} entries of {bytes} bytes; the limits are {MAX_ITEM_METADATA_ENTRIES} and {MAX_ITEM_METADATA_BYTES}",
            item.metadata.len()
        )
    })
}

/// Why `item` (at upload position `index`) cannot be queued, if it cannot.
fn check_item(index: u64, item: &Item) -> Result<(), Status> {
    let problem = if item.id.is_empty() {
        "id is empty".to_string()
    } else if item.id.len() > MAX_ITEM_ID_BYTES {
        format!(
            "id is {} bytes; the limit is {MAX_ITEM_ID_BYTES}",
            item.id.len()
        )
    } else if let Some(problem) = item_metadata_problem(item) {
        problem
    } else {
        match &item.source {
            None => "no image: set data or uri".to_string(),
            Some(Source::Uri(uri)) if uri.is_empty() => "uri is empty".to_string(),
            Some(_) => return Ok(()),
        }
    };
    Err(invalid(format!("item {index}: {problem}")))
}

/// One upload in progress: what has been enqueued (to abort it on failure)
/// and the task being filled.
struct Upload<'a> {
    queue: &'a dyn JobQueue,
    job: &'a JobRecord,
    task_size: usize,
    max_task_bytes: u64,
    enqueued: Vec<TaskHandle>,
    pending: Vec<Item>,
    pending_bytes: u64,
    /// Upload position of the next item.
    next_index: u64,
    /// Items the job's tenant may still queue, and the quota, if it has one.
    quota: Option<(u64, u64)>,
}

impl<'a> Upload<'a> {
    fn new(svc: &'a ScoringService, job: &'a JobRecord, task_size: usize) -> Self {
        Self {
            queue: svc.queue.as_ref(),
            job,
            task_size,
            max_task_bytes: svc.settings.max_task_bytes,
            enqueued: Vec::new(),
            pending: Vec::new(),
            pending_bytes: 0,
            next_index: 0,
            quota: None,
        }
    }

    /// Queues every item of the stream, then seals the job, unless the
    /// stream's end was the client cancelling.
    async fn run(
        &mut self,
        stream: &mut Streaming<SubmitJobRequest>,
        shutdown: &CancellationToken,
        body_failed: &BodyFailed,
    ) -> Result<JobRecord, Status> {
        while let Some(message) = next_message(stream, shutdown).await? {
            let Message::Items(batch) = message else {
                return Err(invalid("a second JobHeader: only the first message is one"));
            };
            self.add(batch.items).await?;
        }
        if body_failed.is_set() {
            return Err(Status::cancelled("the client cancelled the upload"));
        }
        self.seal().await
    }

    /// Checks the items and queues the tasks they fill.
    async fn add(&mut self, items: Vec<Item>) -> Result<(), Status> {
        let mut full = Vec::new();
        for item in items {
            check_item(self.next_index, &item)?;
            self.next_index += 1;
            if let Some((room, quota)) = self.quota {
                if self.next_index > room {
                    return Err(Status::resource_exhausted(format!(
                        "the tenant's quota of {quota} queued items is reached \
                         (coordinator.auth.tenant_max_queued_items): wait for its jobs to progress"
                    )));
                }
            }
            self.pending_bytes += item_bytes(&item);
            self.pending.push(item);
            if self.pending.len() >= self.task_size || self.pending_bytes >= self.max_task_bytes {
                full.push(self.cut());
            }
        }
        self.enqueue(full).await
    }

    /// Queues the last, partial task and ends the upload.
    async fn seal(&mut self) -> Result<JobRecord, Status> {
        if !self.pending.is_empty() {
            let last = self.cut();
            self.enqueue(vec![last]).await?;
        }
        self.queue.seal_job(&self.job.id).await.map_err(status)
    }

    /// The upload's outcome; a failed upload's job is aborted first.
    async fn abort_on_error(
        &self,
        outcome: Result<JobRecord, Status>,
    ) -> Result<JobRecord, Status> {
        if let Err(error) = &outcome {
            let job = &self.job.id;
            tracing::info!(%job, %error, "upload failed: aborting the job");
            if let Err(abort) = self.queue.abort_job(self.job, &self.enqueued).await {
                tracing::warn!(%job, error = %abort, "could not abort the failed upload");
            }
        }
        outcome
    }

    /// The pending items as a task, leaving the next one empty.
    fn cut(&mut self) -> NewTask {
        let items = std::mem::take(&mut self.pending);
        self.pending_bytes = 0;
        NewTask {
            first_index: self.next_index - items.len() as u64,
            items,
        }
    }

    async fn enqueue(&mut self, tasks: Vec<NewTask>) -> Result<(), Status> {
        if tasks.is_empty() {
            return Ok(());
        }
        let handles = self.queue.enqueue(self.job, tasks).await.map_err(status)?;
        self.enqueued.extend(handles);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use tonic::Code;

    use super::*;

    fn item(id: &str, source: Option<Source>) -> Item {
        Item {
            id: id.into(),
            source,
            ..Default::default()
        }
    }

    #[test]
    fn items_need_an_id_and_an_image() {
        let data = || Some(Source::Data(vec![1u8].into()));
        assert!(check_item(0, &item("a", data())).is_ok());
        assert!(check_item(0, &item("a", Some(Source::Uri("/x.jpg".into())))).is_ok());
        let cases = [
            (item("", data()), "item 7: id is empty"),
            (item(&"x".repeat(1025), data()), "item 7: id is 1025 bytes"),
            (item("a", None), "item 7: no image"),
            (
                item("a", Some(Source::Uri(String::new()))),
                "item 7: uri is empty",
            ),
            (
                Item {
                    metadata: (0..17).map(|i| (i.to_string(), String::new())).collect(),
                    ..item("a", data())
                },
                "item 7: metadata has 17 entries",
            ),
        ];
        for (item, message) in cases {
            let error = check_item(7, &item).unwrap_err();
            assert_eq!(error.code(), Code::InvalidArgument);
            assert!(error.message().starts_with(message), "{}", error.message());
        }
    }
}
