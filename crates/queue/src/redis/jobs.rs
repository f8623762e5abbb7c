//! The coordinator's side of a job's life: create, enqueue, seal, cancel,
//! abort, and reading jobs back.

use std::collections::{HashMap, HashSet};

use redis::Value;

use super::scripts::{evalsha, SCRIPTS};
use super::value::{array, corrupt, encode_metadata, fields, int, job_record, string};
use super::RedisQueue;
use crate::types::*;
use crate::{now_ms, QueueError, Result};

/// How long a retried `enqueue` can still find that its first attempt was
/// applied (well beyond the retry window; the tokens are deleted once the
/// call succeeds, this only bounds what a crashed caller leaves behind).
const TOKEN_TTL_MS: u64 = 60_000;
/// How long an aborted job's events stream outlives it, for readers that
/// were waiting on it to wake up and see the job gone.
const ABORTED_EVENTS_TTL_MS: u64 = 60_000;
/// Jobs read per round trip when listing.
const LIST_PAGE: isize = 100;
/// Most job records one listing reads, newest first, however few of them
/// match its filters: a listing by tenant or state costs at most this.
const LIST_SCAN: isize = 10_000;
/// Attempts at taking an idempotency key held by expired jobs.
const IDEM_ATTEMPTS: usize = 4;

pub(super) async fn get(q: &RedisQueue, id: &str) -> Result<Option<JobRecord>> {
    let mut cmd = redis::cmd("HGETALL");
    cmd.arg(q.keys.job(id));
    let hash: Value = q.conn.query("get job", &cmd).await?;
    job_record(id, &fields(&hash)?)
}

pub(super) async fn create(q: &RedisQueue, spec: JobSpec) -> Result<Created> {
    // The common repeat: answer it without writing anything.
    if let Some(key) = &spec.idempotency_key {
        let mut cmd = redis::cmd("GET");
        cmd.arg(q.keys.idem(key));
        let holder: Option<String> = q.conn.query("idempotency key", &cmd).await?;
        if let Some(existing) = match holder {
            Some(id) => get(q, &id).await?,
            None => None,
        } {
            if !existing.upload_abandoned(now_ms(), q.settings.upload_timeout_s) {
                return Ok(Created::Existing(existing));
            }
            // Its uploader is gone: the key is free again.
            abort(q, &existing, &[]).await?;
        }
    }
    let record = JobRecord::new(spec);
    let spec = &record.spec;
    let keys = [q.keys.job(&record.id), q.keys.jobs(), q.keys.callbacks()];
    let mut create = evalsha(&SCRIPTS.create, &q.keys.and_counters(keys));
    create
        .arg(&record.id)
        .arg(record.created_ms)
        .arg(if spec.callback.is_some() { "1" } else { "" })
        .arg("model")
        .arg(&spec.model)
        .arg("state")
        .arg(record.state.as_str())
        .arg("total")
        .arg(0)
        .arg("completed")
        .arg(0)
        .arg("failed")
        .arg(0)
        .arg("cursor")
        .arg(0)
        .arg("created_ms")
        .arg(record.created_ms)
        .arg("updated_ms")
        .arg(record.updated_ms)
        .arg("metadata")
        .arg(encode_metadata(&spec.metadata))
        .arg("priority")
        .arg(spec.priority.as_str());
    if let Some(key) = &spec.idempotency_key {
        create.arg("idem").arg(key);
    }
    if !spec.tenant.is_empty() {
        create.arg("tenant").arg(&spec.tenant);
    }
    if let Some(policy) = &spec.policy {
        create
            .arg("policy")
            .arg(prost::Message::encode_to_vec(policy));
    }
    if let Some(faces) = &spec.faces {
        create
            .arg("faces")
            .arg(prost::Message::encode_to_vec(faces));
    }
    if let Some(callback) = &spec.callback {
        create
            .arg("callback")
            .arg(prost::Message::encode_to_vec(callback));
    }
    // Read by the scripts that finish the job (finish.lua).
    if let Some(seconds) = spec.retention_s {
        create.arg("retention_ms").arg(seconds.saturating_mul(1000));
    }
    q.conn.query::<i64>("create job", &create).await?;
    let Some(key) = record.spec.idempotency_key.clone() else {
        return Ok(Created::New(record));
    };
    // The job exists before it holds the key, so whoever finds the key
    // taken also finds the job; a racing create that loses deletes its own.
    let mut stale = String::new();
    for _ in 0..IDEM_ATTEMPTS {
        let mut claim = evalsha(&SCRIPTS.idem, &[q.keys.idem(&key)]);
        claim.arg("claim").arg(&record.id).arg(&stale);
        let holder: String = q.conn.query("idempotency key", &claim).await?;
        if holder == record.id {
            return Ok(Created::New(record));
        }
        if let Some(existing) = get(q, &holder).await? {
            abort(q, &record, &[]).await?;
            return Ok(Created::Existing(existing));
        }
        stale = holder;
    }
    abort(q, &record, &[]).await?;
    Err(QueueError::Unavailable(format!(
        "idempotency key {key} keeps changing hands"
    )))
}

pub(super) async fn enqueue(
    q: &RedisQueue,
    job: &JobRecord,
    tasks: Vec<NewTask>,
) -> Result<Vec<TaskHandle>> {
    let items: u64 = tasks.iter().map(|t| t.items.len() as u64).sum();
    // One token per call: both scripts remember it, so retrying either
    // after a lost reply applies it once.
    let token = new_job_id();
    add_total(q, job, &token, items, "add").await?;
    if tasks.is_empty() {
        forget_tokens(q, job, &token).await;
        return Ok(Vec::new());
    }
    let model = &job.spec.model;
    let other = match job.spec.priority {
        Priority::Bulk => Priority::Online,
        Priority::Online => Priority::Bulk,
    };
    let keys = [
        q.keys.tasks(model, job.spec.priority),
        q.keys.usage(model),
        q.keys.model_token(model, &token),
        q.keys.tasks(model, other),
    ];
    let mut cmd = evalsha(&SCRIPTS.enqueue, &keys);
    cmd.arg(q.settings.max_queued_items)
        .arg(q.settings.max_queued_bytes)
        .arg(TOKEN_TTL_MS);
    for task in &tasks {
        let payload = dfscan_proto::v1::TaskPayload {
            items: task.items.clone(),
        };
        cmd.arg(&job.id)
            .arg(task.first_index)
            .arg(task.items.len())
            .arg(task.image_bytes())
            .arg(prost::Message::encode_to_vec(&payload));
    }
    let reply: Value = q.conn.query("enqueue", &cmd).await?;
    let reply = array(&reply)?;
    match reply.first().and_then(string).as_deref() {
        Some("ok") => {
            forget_tokens(q, job, &token).await;
            let ids = reply.get(1).and_then(string).unwrap_or_default();
            let ids: Vec<&str> = ids.split(' ').filter(|s| !s.is_empty()).collect();
            if ids.len() != tasks.len() {
                return Err(corrupt("enqueue returned the wrong number of entry ids"));
            }
            Ok(tasks
                .iter()
                .zip(ids)
                .map(|(task, id)| TaskHandle {
                    model: model.clone(),
                    priority: job.spec.priority,
                    entry_id: id.to_string(),
                    job_id: job.id.clone(),
                    first_index: task.first_index,
                    count: task.items.len() as u64,
                })
                .collect())
        }
        Some("full") => {
            add_total(q, job, &token, items, "undo").await?;
            let what = reply.get(1).and_then(string).unwrap_or_default();
            let number = |i: usize| reply.get(i).and_then(int).unwrap_or(0);
            Err(QueueError::Full {
                model: model.clone(),
                detail: format!(
                    "{} {what} queued + {} new > limit {}",
                    number(2),
                    number(3),
                    number(4)
                ),
            })
        }
        _ => Err(corrupt("unexpected reply from the enqueue script")),
    }
}

/// The call succeeded: no retry will look for its tokens any more.
async fn forget_tokens(q: &RedisQueue, job: &JobRecord, token: &str) {
    let mut pipe = redis::pipe();
    pipe.del(q.keys.job_token(&job.id, token)).ignore();
    pipe.del(q.keys.model_token(&job.spec.model, token))
        .ignore();
    if let Err(e) = q.conn.pipe::<()>("enqueue", &pipe).await {
        tracing::debug!(job = %job.id, error = %e, "enqueue tokens left to expire");
    }
}

async fn add_total(
    q: &RedisQueue,
    job: &JobRecord,
    token: &str,
    items: u64,
    mode: &str,
) -> Result<()> {
    let keys = [q.keys.job(&job.id), q.keys.job_token(&job.id, token)];
    let mut cmd = evalsha(&SCRIPTS.add_total, &q.keys.and_counters(keys));
    cmd.arg(items)
        .arg(mode)
        .arg(TOKEN_TTL_MS)
        .arg(now_ms())
        .arg(&job.id);
    let reply: Value = q.conn.query("enqueue", &cmd).await?;
    let reply = array(&reply)?;
    match reply.first().and_then(string).as_deref() {
        Some("ok") => Ok(()),
        Some("missing") => Err(QueueError::JobNotFound(job.id.clone())),
        Some("state") => Err(QueueError::WrongState {
            job: job.id.clone(),
            state: reply.get(1).and_then(string).unwrap_or_default(),
            action: "add items",
        }),
        _ => Err(corrupt("unexpected reply from the total script")),
    }
}

#[derive(Clone, Copy)]
pub(super) enum Transition {
    Seal,
    Cancel,
}

pub(super) async fn transition(q: &RedisQueue, id: &str, to: Transition) -> Result<JobRecord> {
    let (mode, action) = match to {
        Transition::Seal => ("seal", "finish the upload"),
        Transition::Cancel => ("cancel", "cancel"),
    };
    let mut cmd = evalsha(
        &SCRIPTS.transition,
        &q.keys.and_counters(q.keys.job_keys(id)),
    );
    cmd.arg(mode).arg(q.retention_ms()).arg(now_ms()).arg(id);
    let reply: Value = q.conn.query(mode, &cmd).await?;
    let reply = array(&reply)?;
    match reply.first().and_then(string).as_deref() {
        Some("ok") => {
            let hash = reply.get(2).map(fields).transpose()?.unwrap_or_default();
            let record = job_record(id, &hash)?.ok_or_else(|| corrupt("job vanished"))?;
            if reply.get(1).and_then(int) == Some(1) {
                expire_idempotency_key(q, id, record.spec.idempotency_key.as_deref()).await;
            }
            Ok(record)
        }
        Some("missing") => Err(QueueError::JobNotFound(id.to_string())),
        Some("state") => Err(QueueError::WrongState {
            job: id.to_string(),
            state: reply.get(1).and_then(string).unwrap_or_default(),
            action,
        }),
        _ => Err(corrupt(format!("unexpected reply from the {mode} script"))),
    }
}

/// A finished job's idempotency key expires with the job. It lives in
/// another slot, hence after the job script; if this fails the key
/// outlives the job, which `create` then treats as free.
pub(super) async fn expire_idempotency_key(q: &RedisQueue, job_id: &str, key: Option<&str>) {
    let Some(key) = key else {
        return;
    };
    let mut cmd = evalsha(&SCRIPTS.idem, &[q.keys.idem(key)]);
    cmd.arg("expire").arg(job_id).arg(q.retention_ms());
    if let Err(e) = q.conn.query::<Value>("expire idempotency key", &cmd).await {
        tracing::warn!(job = job_id, error = %e, "the idempotency key did not get its expiry");
    }
}

pub(super) async fn abort(q: &RedisQueue, job: &JobRecord, enqueued: &[TaskHandle]) -> Result<()> {
    // Every part is idempotent, so the whole pipeline can be retried.
    let mut pipe = redis::pipe();
    let mut cmd = evalsha(
        &SCRIPTS.abort,
        &q.keys.and_counters(q.keys.job_keys(&job.id)),
    );
    cmd.arg(ABORTED_EVENTS_TTL_MS).arg(&job.id);
    pipe.add_command(cmd).ignore();
    pipe.zrem(q.keys.jobs(), &job.id).ignore();
    pipe.zrem(q.keys.callbacks(), &job.id).ignore();
    if let Some(key) = &job.spec.idempotency_key {
        let mut cmd = evalsha(&SCRIPTS.idem, &[q.keys.idem(key)]);
        cmd.arg("release").arg(&job.id);
        pipe.add_command(cmd).ignore();
    }
    for handle in enqueued {
        pipe.add_command(super::tasks::release_cmd(q, handle, None))
            .ignore();
    }
    q.conn.pipe::<()>("abort job", &pipe).await
}

pub(super) async fn list(q: &RedisQueue, query: ListQuery) -> Result<Vec<JobRecord>> {
    let limit = if query.limit == 0 { 100 } else { query.limit };
    let mut jobs = Vec::new();
    // Jobs created while listing shift the ranks down; never list one twice.
    let mut seen = HashSet::new();
    let mut start: isize = 0;
    loop {
        let mut cmd = redis::cmd("ZREVRANGE");
        cmd.arg(q.keys.jobs()).arg(start).arg(start + LIST_PAGE - 1);
        let ids: Vec<String> = q.conn.query("list jobs", &cmd).await?;
        if ids.is_empty() {
            return Ok(jobs);
        }
        let mut pipe = redis::pipe();
        for id in &ids {
            pipe.hgetall(q.keys.job(id));
        }
        let hashes: Vec<HashMap<String, Vec<u8>>> = q.conn.pipe("list jobs", &pipe).await?;
        let mut expired = Vec::new();
        for (id, hash) in ids.iter().zip(&hashes) {
            if !seen.insert(id.clone()) {
                continue;
            }
            match job_record(id, hash)? {
                None => expired.push(id.clone()),
                Some(job) if query.matches(&job) => jobs.push(job),
                Some(_) => {}
            }
        }
        if !expired.is_empty() {
            let mut cmd = redis::cmd("ZREM");
            cmd.arg(q.keys.jobs()).arg(&expired);
            q.conn.query::<()>("prune jobs", &cmd).await?;
            // The pruned ids no longer take up ranks of the index.
            start -= expired.len() as isize;
        }
        if jobs.len() >= limit || (ids.len() as isize) < LIST_PAGE || start >= LIST_SCAN {
            jobs.truncate(limit);
            return Ok(jobs);
        }
        start += LIST_PAGE;
    }
}
