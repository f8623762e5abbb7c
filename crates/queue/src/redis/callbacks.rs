//! Bookkeeping of job callbacks: which jobs still owe one (a sorted set by
//! creation time), who delivers it (a lease per job, so that of several
//! coordinators one delivers), and how far item callbacks have got (in the
//! job hash, so a new holder resumes there).

use std::time::Duration;

use super::scripts::{evalsha, SCRIPTS};
use super::RedisQueue;
use crate::Result;

pub(super) async fn pending(q: &RedisQueue, limit: usize) -> Result<Vec<String>> {
    let mut cmd = redis::cmd("ZRANGE");
    cmd.arg(q.keys.callbacks())
        .arg(0)
        .arg(limit.max(1) as i64 - 1);
    q.conn.query("pending callbacks", &cmd).await
}

pub(super) async fn lease(
    q: &RedisQueue,
    job_id: &str,
    holder: &str,
    ttl: Duration,
) -> Result<bool> {
    let keys = [q.keys.job(job_id), q.keys.callback_lease(job_id)];
    let mut cmd = evalsha(&SCRIPTS.callback, &keys);
    cmd.arg("lease")
        .arg(holder)
        .arg(ttl.as_millis().max(1) as u64);
    let held: i64 = q.conn.query("callback lease", &cmd).await?;
    Ok(held == 1)
}

pub(super) async fn progress(q: &RedisQueue, job_id: &str, cursor: u64, done: bool) -> Result<()> {
    let keys = [q.keys.job(job_id), q.keys.callback_lease(job_id)];
    let mut cmd = evalsha(&SCRIPTS.callback, &keys);
    cmd.arg("progress").arg(cursor).arg(u8::from(done));
    let mut pipe = redis::pipe();
    pipe.add_command(cmd).ignore();
    if done {
        pipe.zrem(q.keys.callbacks(), job_id).ignore();
    }
    q.conn.pipe::<()>("callback progress", &pipe).await
}
