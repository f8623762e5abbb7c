//! The worker's side of a task: claim (reclaiming idle tasks and
//! dead-lettering those delivered too often), refresh, release.
//!
//! Anyone who can write to Redis can XADD to a task stream, so a claimed
//! entry is checked before it is handed out: one that is not a task
//! (fields missing or malformed, counts past what a task holds) is
//! dead-lettered at once, with error results for its items when it names
//! a job, instead of failing the claim on every redelivery.

use std::collections::HashMap;
use std::time::Duration;

use dfscan_proto::v1::{FaceOptions, Item, TaskPayload, VerdictPolicy};
use prost::Message;
use redis::{Cmd, Value};
use tokio::time::Instant;

use super::keys::GROUP;
use super::scripts::{evalsha, SCRIPTS};
use super::value::{array, corrupt, entries, entry, int, read_reply, string, Entry};
use super::RedisQueue;
use crate::results::{dead_letter_results, error_results};
use crate::types::*;
use crate::Result;

/// Dead-letter streams keep about this many entries.
const DEAD_LETTER_CAP: u64 = 10_000;

/// The model-slot half of completing or aborting a task: acknowledge it,
/// delete it and give back its usage (once, however often this runs);
/// with `dead_deliveries`, also record it in the dead-letter stream.
pub(super) fn release_cmd(q: &RedisQueue, task: &TaskHandle, dead_deliveries: Option<u64>) -> Cmd {
    let keys = [
        q.keys.tasks(&task.model, task.priority),
        q.keys.usage(&task.model),
        q.keys.dead(&task.model),
    ];
    let mut cmd = evalsha(&SCRIPTS.release, &keys);
    cmd.arg(&task.entry_id)
        .arg(dead_deliveries.map(|d| d.to_string()).unwrap_or_default())
        .arg(DEAD_LETTER_CAP)
        .arg(task.priority.as_str());
    cmd
}

pub(super) async fn claim(
    q: &RedisQueue,
    model: &str,
    consumer: &str,
    max_tasks: usize,
    wait: Duration,
) -> Result<Vec<ClaimedTask>> {
    if max_tasks == 0 {
        return Ok(Vec::new());
    }
    let deadline = Instant::now() + wait;
    let mut claimed = Vec::new();
    // Online tasks first: reclaimed, then new; then bulk ones.
    for priority in Priority::ALL {
        if claimed.len() >= max_tasks {
            break;
        }
        let mut cmd = evalsha(&SCRIPTS.reclaim, &[q.keys.tasks(model, priority)]);
        cmd.arg(consumer)
            .arg(q.settings.visibility_timeout_ms)
            .arg(max_tasks - claimed.len())
            .arg(q.settings.max_deliveries);
        // A retry after a lost reply leaves what the first attempt claimed
        // pending under this consumer: it comes back after the visibility
        // timeout, as after a worker crash.
        let reply: Value = q.conn.query("claim", &cmd).await?;
        for task in array(&reply)? {
            let parts = array(task)?;
            let (Some(id), Some(deliveries), Some(fields)) =
                (parts.first(), parts.get(1), parts.get(2))
            else {
                return Err(corrupt("malformed reply from the claim script"));
            };
            let deliveries = int(deliveries).unwrap_or(1).max(1) as u64;
            let task = match entry(&Value::Array(vec![id.clone(), fields.clone()])) {
                Ok(entry) => claimed_task(model, priority, entry, deliveries),
                Err(e) => Err(Foreign {
                    handle: bare_handle(model, priority, string(id).unwrap_or_default()),
                    why: e.to_string(),
                }),
            };
            match task {
                Ok(task) if deliveries > q.settings.max_deliveries => bury(q, task).await,
                Ok(task) => claimed.push(task),
                Err(foreign) => bury_foreign(q, model, priority, foreign, deliveries).await,
            }
        }
    }
    // Nothing to do yet: wait for new tasks of either priority on a
    // connection of our own.
    let streams = Priority::ALL.map(|priority| (q.keys.tasks(model, priority), priority));
    while claimed.is_empty() {
        let now = Instant::now();
        if now >= deadline {
            break;
        }
        let block = deadline - now;
        let mut read = redis::cmd("XREADGROUP");
        read.arg("GROUP")
            .arg(GROUP)
            .arg(consumer)
            .arg("COUNT")
            .arg(max_tasks)
            .arg("BLOCK")
            .arg(block.as_millis().max(1) as u64)
            .arg("STREAMS");
        for (key, _) in &streams {
            read.arg(key);
        }
        read.arg(">").arg(">");
        let reply: Value = q.conn.blocking("claim", block, &read).await?;
        for (key, entry) in read_reply(&reply)? {
            let priority = streams
                .iter()
                .find(|(k, _)| *k == key)
                .map_or(Priority::Bulk, |(_, p)| *p);
            match claimed_task(model, priority, entry, 1) {
                Ok(task) => claimed.push(task),
                Err(foreign) => bury_foreign(q, model, priority, foreign, 1).await,
            }
        }
        // Both streams may answer at once: online tasks go first.
        claimed.sort_by_key(|task| task.handle.priority != Priority::Online);
    }
    mark_cancelled(q, &mut claimed).await?;
    Ok(claimed)
}

fn entry_ms(entry_id: &str) -> i64 {
    entry_id
        .split_once('-')
        .and_then(|(ms, _)| ms.parse().ok())
        .unwrap_or(0)
}

/// A claimed entry that is not a task: what of it could be read, for its
/// dead letter.
struct Foreign {
    /// Job and items are set only as far as they could be read.
    handle: TaskHandle,
    why: String,
}

/// The task an entry holds, or why it is not one. A payload that does not
/// decode, or holds another number of items than the entry says, is still
/// a task (`items` is the error): it goes the way of a task no worker can
/// finish, redelivered and then dead-lettered by `max_deliveries`.
fn claimed_task(
    model: &str,
    priority: Priority,
    entry: Entry,
    deliveries: u64,
) -> Result<ClaimedTask, Foreign> {
    let mut handle = bare_handle(model, priority, entry.id.clone());
    let foreign = |handle, why: &str| Foreign {
        handle,
        why: why.to_string(),
    };
    let Some(job_id) = entry.text("job").filter(|id| is_job_id(id)) else {
        return Err(foreign(handle, "its job field is not a job id"));
    };
    handle.job_id = job_id;
    let (Some(first_index), Some(count)) = (entry.number("first"), entry.number("n")) else {
        return Err(foreign(handle, "its first or n field is not a number"));
    };
    if count > MAX_TASK_ITEMS || first_index.checked_add(count).is_none() {
        return Err(foreign(handle, "it declares more items than a task holds"));
    }
    handle.first_index = first_index;
    handle.count = count;
    let Some(payload) = entry.fields.get("p") else {
        return Err(foreign(handle, "it has no payload"));
    };
    let items = TaskPayload::decode(payload.as_slice())
        .map_err(|e| format!("task payload cannot be read: {e}"))
        .and_then(|p| checked_items(p.items, count));
    Ok(ClaimedTask {
        handle,
        items,
        job_cancelled: false,
        deliveries,
        policy: None,
        faces: None,
        // Stream entry ids start with the milliseconds they were added at.
        enqueued_ms: entry_ms(&entry.id),
    })
}

/// The handle of entry `entry_id` before anything else of it is known.
fn bare_handle(model: &str, priority: Priority, entry_id: String) -> TaskHandle {
    TaskHandle {
        model: model.to_string(),
        priority,
        entry_id,
        job_id: String::new(),
        first_index: 0,
        count: 0,
    }
}

/// The job ids `new_job_id` makes: 32 lowercase hex digits. Anything else
/// would name keys that are no job's.
fn is_job_id(id: &str) -> bool {
    id.len() == 32 && id.bytes().all(|c| matches!(c, b'0'..=b'9' | b'a'..=b'f'))
}

/// A payload's items if they are as many as its entry says: the job
/// counts on exactly that many results from the task.
fn checked_items(items: Vec<Item>, count: u64) -> Result<Vec<Item>, String> {
    if items.len() as u64 == count {
        Ok(items)
    } else {
        Err(format!(
            "the task payload holds {} items; its entry says {count}",
            items.len()
        ))
    }
}

/// Dead-letters an entry that is not a task, with an error result for
/// each item it declares when it names a job. A failure leaves it pending:
/// the next claim after the visibility timeout meets it again.
async fn bury_foreign(
    q: &RedisQueue,
    model: &str,
    priority: Priority,
    foreign: Foreign,
    deliveries: u64,
) {
    let Foreign { handle, why } = foreign;
    if handle.entry_id.is_empty() {
        // Nothing to acknowledge it by: the claim script's reply itself
        // is damaged.
        tracing::warn!(model, priority = priority.as_str(), %why, "unreadable task entry");
        return;
    }
    let error = format!("dead-lettered: the task entry is malformed ({why})");
    let results = error_results(&handle, None, &error);
    match super::results::complete(q, &handle, results, Some(deliveries)).await {
        Ok(_) => tracing::warn!(
            job = %handle.job_id,
            entry = %handle.entry_id,
            %why,
            "foreign task entry dead-lettered"
        ),
        Err(e) => tracing::warn!(
            entry = %handle.entry_id,
            error = %e,
            "dead-lettering a foreign task entry failed; a later claim retries"
        ),
    }
}

/// Gives a task delivered too often its error results and moves it to the
/// dead-letter stream. A failure here is not the claim's: the task stays
/// pending and the next claim after the visibility timeout buries it.
async fn bury(q: &RedisQueue, task: ClaimedTask) {
    let handed_out = task.deliveries - 1;
    let items = task.items.as_ref().ok().map(Vec::as_slice);
    let results = dead_letter_results(&task.handle, items, handed_out);
    let outcome = super::results::complete(q, &task.handle, results, Some(handed_out)).await;
    match outcome {
        Ok(_) => tracing::warn!(
            job = %task.handle.job_id,
            entry = %task.handle.entry_id,
            deliveries = handed_out,
            "task dead-lettered"
        ),
        Err(e) => tracing::warn!(
            entry = %task.handle.entry_id,
            error = %e,
            "dead-lettering a task failed; the next claim retries"
        ),
    }
}

/// Sets `job_cancelled`, `policy` and `faces` from the jobs' current states (one
/// read per job).
async fn mark_cancelled(q: &RedisQueue, tasks: &mut [ClaimedTask]) -> Result<()> {
    let mut jobs: Vec<&str> = tasks.iter().map(|t| t.handle.job_id.as_str()).collect();
    jobs.sort_unstable();
    jobs.dedup();
    if jobs.is_empty() {
        return Ok(());
    }
    let mut pipe = redis::pipe();
    for job in &jobs {
        pipe.cmd("HMGET")
            .arg(q.keys.job(job))
            .arg("state")
            .arg("policy")
            .arg("faces");
    }
    type Fields = (Option<String>, Option<Vec<u8>>, Option<Vec<u8>>);
    let states: Vec<Fields> = q.conn.pipe("claim", &pipe).await?;
    let mut by_job = HashMap::new();
    for (job, (state, policy, faces)) in jobs.iter().zip(states) {
        let cancelled = state.as_deref() == Some(JobState::Cancelled.as_str());
        let policy = policy
            .filter(|p| !p.is_empty())
            .map(|p| VerdictPolicy::decode(p.as_slice()))
            .transpose()
            .map_err(|_| corrupt(format!("job {job}: field policy is malformed")))?;
        let faces = faces
            .filter(|f| !f.is_empty())
            .map(|f| FaceOptions::decode(f.as_slice()))
            .transpose()
            .map_err(|_| corrupt(format!("job {job}: field faces is malformed")))?;
        by_job.insert(job.to_string(), (cancelled, policy, faces));
    }
    for task in tasks {
        if let Some((cancelled, policy, faces)) = by_job.get(&task.handle.job_id) {
            task.job_cancelled = *cancelled;
            task.policy.clone_from(policy);
            task.faces.clone_from(faces);
        }
    }
    Ok(())
}

pub(super) async fn refresh(q: &RedisQueue, consumer: &str, tasks: &[TaskHandle]) -> Result<()> {
    let mut by_stream: HashMap<(&str, Priority), Vec<&str>> = HashMap::new();
    for task in tasks {
        by_stream
            .entry((task.model.as_str(), task.priority))
            .or_default()
            .push(task.entry_id.as_str());
    }
    if by_stream.is_empty() {
        return Ok(());
    }
    let mut pipe = redis::pipe();
    for ((model, priority), ids) in by_stream {
        // Idle 0 and JUSTID: the claim restarts its clock without counting
        // as another delivery. Entries already gone are skipped by Redis.
        pipe.cmd("XCLAIM")
            .arg(q.keys.tasks(model, priority))
            .arg(GROUP)
            .arg(consumer)
            .arg(0)
            .arg(ids)
            .arg("JUSTID")
            .ignore();
    }
    q.conn.pipe::<()>("refresh", &pipe).await
}

pub(super) async fn dead_letters(q: &RedisQueue, model: &str) -> Result<Vec<(TaskHandle, u64)>> {
    let mut cmd = redis::cmd("XRANGE");
    cmd.arg(q.keys.dead(model)).arg("-").arg("+");
    let reply: Value = q.conn.query("dead letters", &cmd).await?;
    Ok(entries(&reply)?
        .into_iter()
        .map(|e| {
            let handle = TaskHandle {
                model: model.to_string(),
                priority: e
                    .text("priority")
                    .and_then(|p| Priority::parse(&p))
                    .unwrap_or_default(),
                entry_id: e.text("entry").unwrap_or_default(),
                job_id: e.text("job").unwrap_or_default(),
                first_index: e.number("first").unwrap_or(0),
                count: e.number("n").unwrap_or(0),
            };
            (handle, e.number("deliveries").unwrap_or(0))
        })
        .collect())
}
