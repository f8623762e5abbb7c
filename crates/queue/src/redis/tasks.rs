//! The worker's side of a task: claim (reclaiming idle tasks and
//! dead-lettering those delivered too often), refresh, release.

use std::collections::HashMap;
use std::time::Duration;

use dfscan_proto::v1::{TaskPayload, VerdictPolicy};
use prost::Message;
use redis::{Cmd, Value};
use tokio::time::Instant;

use super::keys::GROUP;
use super::scripts::{evalsha, SCRIPTS};
use super::value::{array, corrupt, entries, entry, int, read_reply, Entry};
use super::RedisQueue;
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
            let entry = entry(&Value::Array(vec![id.clone(), fields.clone()]))?;
            let deliveries = int(deliveries).unwrap_or(1).max(1) as u64;
            let task = claimed_task(model, priority, entry, deliveries);
            if deliveries > q.settings.max_deliveries {
                bury(q, task).await;
            } else {
                claimed.push(task);
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
            claimed.push(claimed_task(model, priority, entry, 1));
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

fn claimed_task(model: &str, priority: Priority, entry: Entry, deliveries: u64) -> ClaimedTask {
    let items = match entry.fields.get("p") {
        Some(payload) => TaskPayload::decode(payload.as_slice())
            .map(|p| p.items)
            .map_err(|e| format!("task payload cannot be read: {e}")),
        None => Err("task entry has no payload".to_string()),
    };
    // Stream entry ids start with the milliseconds they were added at.
    let enqueued_ms = entry_ms(&entry.id);
    ClaimedTask {
        handle: TaskHandle {
            model: model.to_string(),
            priority,
            job_id: entry.text("job").unwrap_or_default(),
            first_index: entry.number("first").unwrap_or(0),
            count: entry.number("n").unwrap_or(0),
            entry_id: entry.id,
        },
        items,
        job_cancelled: false,
        deliveries,
        policy: None,
        enqueued_ms,
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

/// Sets `job_cancelled` and `policy` from the jobs' current states (one
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
            .arg("policy");
    }
    let states: Vec<(Option<String>, Option<Vec<u8>>)> = q.conn.pipe("claim", &pipe).await?;
    let mut by_job = HashMap::new();
    for (job, (state, policy)) in jobs.iter().zip(states) {
        let cancelled = state.as_deref() == Some(JobState::Cancelled.as_str());
        let policy = policy
            .filter(|p| !p.is_empty())
            .map(|p| VerdictPolicy::decode(p.as_slice()))
            .transpose()
            .map_err(|_| corrupt(format!("job {job}: field policy is malformed")))?;
        by_job.insert(job.to_string(), (cancelled, policy));
    }
    for task in tasks {
        if let Some((cancelled, policy)) = by_job.get(&task.handle.job_id) {
            task.job_cancelled = *cancelled;
            task.policy.clone_from(policy);
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
