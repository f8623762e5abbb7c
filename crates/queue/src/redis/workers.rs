//! The worker registry: a sorted set of ids by last heartbeat, plus each
//! worker's last report under a key that expires with it.

use dfscan_proto::v1::Worker;
use prost::Message;

use super::RedisQueue;
use crate::{now_ms, Result};

pub(super) async fn heartbeat(q: &RedisQueue, worker: &Worker) -> Result<()> {
    let id = &worker.worker_id;
    let mut pipe = redis::pipe();
    pipe.zadd(q.keys.workers(), id, now_ms()).ignore();
    pipe.cmd("SET")
        .arg(q.keys.worker(id))
        .arg(worker.encode_to_vec())
        .arg("PX")
        .arg(q.settings.worker_ttl_ms.max(1))
        .ignore();
    q.conn.pipe::<()>("heartbeat", &pipe).await
}

pub(super) async fn deregister(q: &RedisQueue, worker_id: &str) -> Result<()> {
    let mut pipe = redis::pipe();
    pipe.zrem(q.keys.workers(), worker_id).ignore();
    pipe.del(q.keys.worker(worker_id)).ignore();
    q.conn.pipe::<()>("deregister", &pipe).await
}

pub(super) async fn list(q: &RedisQueue) -> Result<Vec<Worker>> {
    // Listed while the last heartbeat is younger than the TTL.
    let stale_up_to = now_ms() - q.settings.worker_ttl_ms as i64;
    let mut pipe = redis::pipe();
    pipe.zrembyscore(q.keys.workers(), "-inf", stale_up_to)
        .ignore();
    pipe.zrange(q.keys.workers(), 0, -1);
    let (ids,): (Vec<String>,) = q.conn.pipe("list workers", &pipe).await?;
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    let mut pipe = redis::pipe();
    for id in &ids {
        pipe.get(q.keys.worker(id));
    }
    let reports: Vec<Option<Vec<u8>>> = q.conn.pipe("list workers", &pipe).await?;
    let mut workers = Vec::new();
    for (id, report) in ids.iter().zip(reports) {
        // The report expired a moment before the index noticed.
        let Some(bytes) = report else { continue };
        match Worker::decode(bytes.as_slice()) {
            Ok(worker) => workers.push(worker),
            Err(e) => tracing::warn!(worker = %id, error = %e, "unreadable worker report skipped"),
        }
    }
    workers.sort_by(|a, b| a.worker_id.cmp(&b.worker_id));
    Ok(workers)
}
