//! Reading the queue-wide counters that the job scripts keep (see
//! `scripts/counts.lua`): items queued per tenant, jobs per state, uploads
//! by last activity. Each read costs the same however many jobs exist.

use std::collections::HashMap;

use redis::Value;

use super::scripts::{evalsha, SCRIPTS};
use super::value::{fields, job_record};
use super::RedisQueue;
use crate::types::{abandoned_since, JobRecord, JobState};
use crate::{now_ms, Result};

pub(super) async fn tenant_queued_items(q: &RedisQueue, tenant: &str) -> Result<u64> {
    let [_, queued, ..] = q.keys.counters();
    let mut cmd = redis::cmd("HGET");
    cmd.arg(queued).arg(tenant);
    let items: Option<i64> = q.conn.query("tenant queued items", &cmd).await?;
    Ok(items.unwrap_or(0).max(0) as u64)
}

pub(super) async fn jobs_by_state(q: &RedisQueue) -> Result<Vec<(JobState, u64)>> {
    let mut cmd = evalsha(&SCRIPTS.job_counts, &q.keys.counters());
    cmd.arg(now_ms());
    let reply: Value = q.conn.query("jobs by state", &cmd).await?;
    let counts = fields(&reply)?;
    let count = |state: JobState| {
        let stored = counts.get(state.as_str());
        let n = stored.and_then(|b| std::str::from_utf8(b).ok()?.parse::<i64>().ok());
        n.unwrap_or(0).max(0) as u64
    };
    Ok(JobState::ALL.map(|state| (state, count(state))).to_vec())
}

/// Uploads whose last activity is `timeout_s` or more ago, least recent
/// first, at most `limit`. Ids whose job is gone (deleted by hand) are
/// taken off the index on the way.
pub(super) async fn idle_uploads(
    q: &RedisQueue,
    timeout_s: u64,
    limit: usize,
) -> Result<Vec<JobRecord>> {
    let mut cmd = redis::cmd("ZRANGEBYSCORE");
    cmd.arg(q.keys.uploads())
        .arg("-inf")
        .arg(abandoned_since(now_ms(), timeout_s))
        .arg("LIMIT")
        .arg(0)
        .arg(limit);
    let ids: Vec<String> = q.conn.query("idle uploads", &cmd).await?;
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    let mut pipe = redis::pipe();
    for id in &ids {
        pipe.hgetall(q.keys.job(id));
    }
    let hashes: Vec<HashMap<String, Vec<u8>>> = q.conn.pipe("idle uploads", &pipe).await?;
    let mut uploads = Vec::new();
    let mut gone = Vec::new();
    for (id, hash) in ids.iter().zip(&hashes) {
        match job_record(id, hash)? {
            Some(job) => uploads.push(job),
            None => gone.push(id),
        }
    }
    if !gone.is_empty() {
        let mut cmd = redis::cmd("ZREM");
        cmd.arg(q.keys.uploads()).arg(&gone);
        q.conn.query::<()>("idle uploads", &cmd).await?;
    }
    Ok(uploads)
}
