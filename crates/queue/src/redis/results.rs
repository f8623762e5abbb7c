//! Recording results (completion) and reading them back by cursor.
//!
//! A completion stores its results as one chunk in the job's results
//! stream under the entry id `0-<cursor of its last result>`; the cursors
//! themselves are not stored but derived on reading (chunk of n results
//! ending at e: cursors e-n+1 ..= e). So a reader resuming after cursor c
//! starts at entry `0-(c+1)`, the chunk holding c+1, and skips what it
//! already has.

use std::time::Duration;

use dfscan_proto::v1::{ItemResult, ResultChunk};
use prost::Message;
use redis::Value;
use tokio::time::Instant;

use super::scripts::{evalsha, SCRIPTS};
use super::tasks::release_cmd;
use super::value::{array, corrupt, entries, fields, id_seq, int, job_record, string, Entry};
use super::RedisQueue;
use crate::policy::verdict_counts;
use crate::types::*;
use crate::{now_ms, QueueError, Result};

/// Result chunks fetched per round trip.
const CHUNKS_PER_READ: usize = 64;
/// Pause after a failed blocking wait, so that an unreachable Redis does
/// not turn the wait loop into a busy one (the next read reports it).
const WAIT_ERROR_PAUSE: Duration = Duration::from_millis(100);

/// Completes a task; with `dead_deliveries`, as a dead letter.
pub(super) async fn complete(
    q: &RedisQueue,
    task: &TaskHandle,
    mut results: Vec<ItemResult>,
    dead_deliveries: Option<u64>,
) -> Result<Completion> {
    let failed = results.iter().filter(|r| !r.error.is_empty()).count();
    let verdicts = verdict_counts(&results);
    for result in &mut results {
        result.cursor = 0;
    }
    let count = results.len();
    let chunk = ResultChunk { results }.encode_to_vec();
    let keys = q.keys.and_counters(q.keys.job_keys(&task.job_id));
    let mut record = evalsha(&SCRIPTS.complete, &keys);
    record
        .arg(&task.entry_id)
        .arg(count)
        .arg(failed)
        .arg(chunk)
        .arg(q.retention_ms())
        .arg(now_ms())
        .arg(new_job_id())
        .arg(&task.job_id);
    for (verdict, count) in verdicts {
        record.arg(verdict).arg(count);
    }
    // One round trip; the release runs whatever the job script answered,
    // which is what turns a duplicate or orphaned task into a bare release.
    let mut pipe = redis::pipe();
    pipe.add_command(record)
        .add_command(release_cmd(q, task, dead_deliveries))
        .ignore();
    let (reply,): (Value,) = q.conn.pipe("complete", &pipe).await?;
    let reply = array(&reply)?;
    match reply.first().and_then(string).as_deref() {
        Some("gone") => Ok(Completion::JobGone),
        Some("dup") => Ok(Completion::Duplicate),
        Some("rec") => {
            let idem = reply.get(2).and_then(string).filter(|k| !k.is_empty());
            if reply.get(1).and_then(int) == Some(1) {
                super::jobs::expire_idempotency_key(q, &task.job_id, idem.as_deref()).await;
            }
            Ok(Completion::Recorded)
        }
        _ => Err(corrupt("unexpected reply from the complete script")),
    }
}

pub(super) async fn read(
    q: &RedisQueue,
    job_id: &str,
    after: u64,
    max_results: usize,
    wait: Duration,
) -> Result<ResultPage> {
    let max_results = max_results.max(1);
    let deadline = Instant::now() + wait;
    let [job_key, results_key, _, events_key] = q.keys.job_keys(job_id);
    loop {
        // One snapshot of the job and its first chunks, so `finished` is
        // judged on the same state the results come from.
        let mut pipe = redis::pipe();
        pipe.atomic()
            .hgetall(&job_key)
            .cmd("XRANGE")
            .arg(&results_key)
            .arg(format!("0-{}", after.saturating_add(1)))
            .arg("+")
            .arg("COUNT")
            .arg(CHUNKS_PER_READ)
            .cmd("XREVRANGE")
            .arg(&events_key)
            .arg("+")
            .arg("-")
            .arg("COUNT")
            .arg(1);
        let (hash, chunks, last_event): (Value, Value, Value) =
            q.conn.pipe("read results", &pipe).await?;
        let job = job_record(job_id, &fields(&hash)?)?
            .ok_or_else(|| QueueError::JobNotFound(job_id.to_string()))?;
        let mut page = Vec::new();
        let mut chunks = entries(&chunks)?;
        loop {
            let full_read = chunks.len() == CHUNKS_PER_READ;
            let last = chunks.last().map(|c| c.id.clone());
            for chunk in chunks {
                take_results(&chunk, after, max_results, &mut page)?;
            }
            // Later chunks may postdate the snapshot; `finished` below
            // allows for results beyond it.
            let Some(last) = last.filter(|_| full_read && page.len() < max_results) else {
                break;
            };
            let mut more = redis::cmd("XRANGE");
            more.arg(&results_key)
                .arg(format!("({last}"))
                .arg("+")
                .arg("COUNT")
                .arg(CHUNKS_PER_READ);
            let reply: Value = q.conn.query("read results", &more).await?;
            chunks = entries(&reply)?;
        }
        let recorded = job.completed + job.failed;
        let finished = job.is_finished() && after + page.len() as u64 >= recorded;
        if !page.is_empty() || finished {
            return Ok(ResultPage {
                results: page,
                finished,
            });
        }
        let now = Instant::now();
        if now >= deadline {
            return Ok(ResultPage {
                results: Vec::new(),
                finished: false,
            });
        }
        // Wait for a chunk past `after` or a state change (seal, cancel,
        // abort), both of which come after the snapshot by their ids.
        let since_event = array(&last_event)?
            .first()
            .and_then(|e| array(e).ok()?.first().and_then(string))
            .unwrap_or_else(|| "0-0".to_string());
        let block = deadline - now;
        let mut read = redis::cmd("XREAD");
        read.arg("COUNT")
            .arg(1)
            .arg("BLOCK")
            .arg(block.as_millis().max(1) as u64)
            .arg("STREAMS")
            .arg(&results_key)
            .arg(&events_key)
            .arg(format!("0-{after}"))
            .arg(since_event);
        // Whatever woke us (or failed), the next snapshot tells.
        if let Err(e) = q
            .conn
            .blocking::<Value>("wait for results", block, &read)
            .await
        {
            tracing::debug!(job = job_id, error = %e, "waiting for results failed");
            let left = deadline.saturating_duration_since(Instant::now());
            tokio::time::sleep(WAIT_ERROR_PAUSE.min(left)).await;
        }
    }
}

/// Appends the results of `chunk` with cursors after `after`, up to `max`.
fn take_results(chunk: &Entry, after: u64, max: usize, page: &mut Vec<ItemResult>) -> Result<()> {
    let bad = || corrupt(format!("result chunk {} cannot be read", chunk.id));
    let end = id_seq(&chunk.id).ok_or_else(bad)?;
    let bytes = chunk.fields.get("p").ok_or_else(bad)?;
    let results = ResultChunk::decode(bytes.as_slice())
        .map_err(|_| bad())?
        .results;
    let n = results.len() as u64;
    if n == 0 || n > end {
        return Err(bad());
    }
    let first = end - n + 1;
    for (cursor, mut result) in (first..=end).zip(results) {
        if page.len() >= max {
            break;
        }
        if cursor > after {
            result.cursor = cursor;
            page.push(result);
        }
    }
    Ok(())
}
