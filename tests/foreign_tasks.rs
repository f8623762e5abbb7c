//! Entries in a task stream that no coordinator wrote (XADDed by someone
//! else, damaged, or declaring absurd counts) against a real
//! `redis-server` and a worker with the no-op scorer: each is
//! dead-lettered (acknowledged, recorded, error results for the items of a
//! job it names), the worker neither crashes nor loops on them, and a good
//! job queued among them is scored.

use std::sync::Arc;
use std::time::{Duration, Instant};

use dfscan_proto::v1::ItemResult;
use dfscan_queue::testing::{finished_results, sealed_job};
use dfscan_queue::{JobQueue, JobRecord, JobState, QueueSettings, QueueStats, RedisQueue};
use dfscan_testkit::RedisServer;
use dfscan_worker::{Inference, Worker, WorkerSettings};
use redis::AsyncCommands;
use tokio_util::sync::CancellationToken;

const MODEL: &str = "test/model";
const PREFIX: &str = "ft";

fn queue_settings() -> QueueSettings {
    QueueSettings {
        key_prefix: PREFIX.into(),
        // A damaged payload is redelivered before it is dead-lettered:
        // keep that quick.
        visibility_timeout_ms: 300,
        max_deliveries: 2,
        ..QueueSettings::default()
    }
}

async fn job(queue: &RedisQueue, sizes: &[u64]) -> JobRecord {
    sealed_job(queue, MODEL, sizes).await
}

/// Every result of a job once it is finished, in item order.
async fn results(queue: &RedisQueue, job_id: &str) -> Vec<ItemResult> {
    let mut all = finished_results(queue, job_id, Duration::from_secs(30)).await;
    all.sort_by_key(|r| r.index);
    all
}

#[tokio::test(flavor = "multi_thread")]
async fn foreign_task_entries_are_dead_lettered_and_good_jobs_still_score() {
    let server = RedisServer::start();
    let queue = Arc::new(
        RedisQueue::connect(&server.url(), queue_settings())
            .await
            .unwrap(),
    );
    let mut raw = redis::Client::open(server.url())
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap();
    let stream = format!("{PREFIX}:tasks:{{m:{MODEL}}}");

    // A real job whose one task entry is replaced by a damaged copy: same
    // counts, a payload that is not protobuf.
    let damaged = job(&queue, &[2]).await;
    let entries: redis::streams::StreamRangeReply = raw.xrange_all(&stream).await.unwrap();
    let original = &entries.ids[0];
    let _: () = raw.xdel(&stream, &[&original.id]).await.unwrap();
    let field =
        |name: &str| -> Vec<u8> { redis::from_redis_value_ref(&original.map[name]).unwrap() };
    let mut foreign: Vec<Vec<(Vec<u8>, Vec<u8>)>> = vec![vec![
        (b"job".to_vec(), field("job")),
        (b"first".to_vec(), field("first")),
        (b"n".to_vec(), field("n")),
        (b"b".to_vec(), field("b")),
        (b"p".to_vec(), vec![0xff, 0xff, 0xff, 0x0a, 0x7f]),
    ]];
    let unknown_job = "0123456789abcdef0123456789abcdef";
    // TaskPayload { items: [Item {}, Item {}, Item {}] }, encoded by hand.
    let valid_payload = [0x0a, 0x00].repeat(3);
    let entry = |fields: &[(&[u8], &[u8])]| -> Vec<(Vec<u8>, Vec<u8>)> {
        fields
            .iter()
            .map(|(k, v)| (k.to_vec(), v.to_vec()))
            .collect()
    };
    let j = unknown_job.as_bytes();
    foreign.extend([
        // Someone else's stream entry.
        entry(&[(b"x", b"y")]),
        entry(&[
            (b"job", b"../not-a-job"),
            (b"first", b"0"),
            (b"n", b"1"),
            (b"p", b""),
        ]),
        // Counts no task has.
        entry(&[
            (b"job", j),
            (b"first", b"0"),
            (b"n", b"1152921504606846976"),
            (b"p", b""),
        ]),
        entry(&[
            (b"job", j),
            (b"first", b"18446744073709551615"),
            (b"n", b"2"),
            (b"p", b""),
        ]),
        entry(&[
            (b"job", j),
            (b"first", b"abc"),
            (b"n", b"-1"),
            (b"b", b"1e999"),
        ]),
        // A field name that is not text, and nothing else.
        entry(&[(b"\xff\xfe", b"\x00")]),
        // A payload of 3 items in an entry that says 1.
        entry(&[
            (b"job", j),
            (b"first", b"0"),
            (b"n", b"1"),
            (b"p", &valid_payload),
        ]),
        entry(&[(b"job", j), (b"first", b"0"), (b"n", b"1")]),
    ]);
    let mut foreign_ids = Vec::new();
    for fields in &foreign {
        let id: String = raw.xadd(&stream, "*", &fields[..]).await.unwrap();
        foreign_ids.push(id);
    }
    // The good job's task comes after all of them.
    let good = job(&queue, &[3, 2]).await;

    let settings = WorkerSettings {
        max_batch: 4,
        max_wait_ms: 2,
        claim_wait_ms: 50,
        heartbeat_ms: 50,
        drain_grace_s: 10,
        ..Default::default()
    };
    let worker = Worker::new(
        queue.clone(),
        Inference::Noop {
            model: MODEL.into(),
        },
        MODEL.into(),
        settings,
        &queue_settings(),
    )
    .unwrap();
    let shutdown = CancellationToken::new();
    let running = tokio::spawn(worker.run(shutdown.clone()));

    let scored = results(&queue, &good.id).await;
    assert_eq!(scored.len(), 5);
    for (i, result) in scored.iter().enumerate() {
        assert_eq!((result.index, result.error.as_str()), (i as u64, ""));
        assert_eq!(result.id, format!("item-{i}"));
    }
    // The damaged task of a known job: error results for its items, after
    // its redeliveries.
    let dead = results(&queue, &damaged.id).await;
    assert_eq!(dead.len(), 2);
    for result in &dead {
        assert!(result.error.starts_with("dead-lettered"), "{result:?}");
    }
    let record = queue.get_job(&damaged.id).await.unwrap();
    assert_eq!((record.state, record.failed), (JobState::Completed, 2));

    // Every foreign entry is acknowledged, removed and recorded.
    let deadline = Instant::now() + Duration::from_secs(10);
    let dead_ids = loop {
        let letters = queue.dead_letters(MODEL).await.unwrap();
        let ids: Vec<String> = letters.into_iter().map(|(h, _)| h.entry_id).collect();
        if ids.len() >= foreign_ids.len() || Instant::now() > deadline {
            break ids;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let mut expected = foreign_ids.clone();
    expected.sort();
    let mut got = dead_ids;
    got.sort();
    assert_eq!(got, expected);
    let left: redis::streams::StreamRangeReply = raw.xrange_all(&stream).await.unwrap();
    assert!(left.ids.is_empty(), "entries left: {:?}", left.ids);
    let pending: redis::streams::StreamPendingReply =
        raw.xpending(&stream, "workers").await.unwrap();
    assert_eq!(pending.count(), 0);
    // No foreign count moved the backpressure counters.
    assert_eq!(
        queue.queue_stats(MODEL).await.unwrap(),
        QueueStats::default()
    );

    assert!(!running.is_finished(), "the worker stopped on its own");
    shutdown.cancel();
    let report = tokio::time::timeout(Duration::from_secs(10), running)
        .await
        .expect("the worker stops")
        .unwrap()
        .unwrap();
    assert_eq!(report.items, 5, "{report:?}");
}
