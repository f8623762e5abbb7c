//! What only the Redis backend has: its key layout, its Lua scripts'
//! exactly-once accounting, blocking reads on their own connections, and
//! surviving a Redis restart. Behaviour shared with the in-memory backend
//! is `conformance.rs`'s; these tests look inside Redis as well.

use std::time::{Duration, Instant};

use ::redis::AsyncCommands;
use dfscan_proto::v1::{item::Source, Item, ItemResult};
use dfscan_queue::*;
use dfscan_testkit::RedisServer;
use support::{spec, tasks, MODEL};

mod support;

const PREFIX: &str = "rb";

fn settings() -> QueueSettings {
    QueueSettings {
        key_prefix: PREFIX.into(),
        ..QueueSettings::default()
    }
}

async fn open(server: &RedisServer, settings: QueueSettings) -> RedisQueue {
    RedisQueue::connect(&server.url(), settings)
        .await
        .expect("connect to the test redis-server")
}

/// A plain connection for looking at the keys directly.
async fn raw(server: &RedisServer) -> ::redis::aio::MultiplexedConnection {
    ::redis::Client::open(server.url())
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap()
}

fn scores(task: &ClaimedTask) -> Vec<ItemResult> {
    let items = task.items.as_ref().expect("readable payload");
    items
        .iter()
        .enumerate()
        .map(|(i, item)| ItemResult {
            id: item.id.clone(),
            index: task.handle.first_index + i as u64,
            label: "Real".into(),
            fake_score: Some(0.1),
            ..Default::default()
        })
        .collect()
}

async fn new_job(q: &RedisQueue, key: Option<&str>) -> JobRecord {
    match q.create_job(spec(key)).await.unwrap() {
        Created::New(job) => job,
        Created::Existing(job) => panic!("unexpected existing job {}", job.id),
    }
}

async fn submit(q: &RedisQueue, sizes: &[usize]) -> (JobRecord, Vec<TaskHandle>) {
    let job = new_job(q, None).await;
    let handles = q.enqueue(&job, tasks(sizes)).await.unwrap();
    (q.seal_job(&job.id).await.unwrap(), handles)
}

async fn claim(q: &RedisQueue, consumer: &str) -> Vec<ClaimedTask> {
    q.claim(MODEL, consumer, 100, Duration::from_millis(20))
        .await
        .unwrap()
}

/// Every result after `after`, in pages of `page`, until `finished`.
async fn read_all(q: &RedisQueue, job: &str, mut after: u64, page: usize) -> Vec<ItemResult> {
    let mut out = Vec::new();
    for _ in 0..1000 {
        let p = q
            .read_results(job, after, page, Duration::from_millis(20))
            .await
            .unwrap();
        assert!(p.results.len() <= page, "page over its limit");
        if let Some(last) = p.results.last() {
            after = last.cursor;
        }
        out.extend(p.results);
        if p.finished {
            return out;
        }
    }
    panic!("job {job} never finished");
}

async fn keys_of(c: &mut ::redis::aio::MultiplexedConnection, pattern: &str) -> Vec<String> {
    let mut keys: Vec<String> = c.keys(pattern).await.unwrap();
    keys.sort();
    keys
}

#[tokio::test(flavor = "multi_thread")]
async fn a_job_runs_to_completion_and_expires_with_its_keys() {
    let server = RedisServer::start();
    let q = open(&server, settings()).await;
    let mut c = raw(&server).await;
    let (job, handles) = submit(&q, &[2, 3, 1]).await;
    assert_eq!(job.state, JobState::Running);
    assert_eq!(job.total, 6);
    assert_eq!(handles.len(), 3);
    let stats = q.queue_stats(MODEL).await.unwrap();
    assert_eq!(
        stats,
        QueueStats {
            items: 6,
            bytes: 21 + 6 * 6
        }
    );

    let claimed = claim(&q, "w1").await;
    assert_eq!(claimed.len(), 3);
    for task in &claimed {
        assert_eq!(task.deliveries, 1);
        assert!(!task.job_cancelled);
        assert!(handles.contains(&task.handle));
        let outcome = q.complete(&task.handle, scores(task)).await.unwrap();
        assert_eq!(outcome, Completion::Recorded);
    }
    let results = read_all(&q, &job.id, 0, 100).await;
    let cursors: Vec<u64> = results.iter().map(|r| r.cursor).collect();
    assert_eq!(cursors, (1..=6).collect::<Vec<_>>());
    let mut indexes: Vec<u64> = results.iter().map(|r| r.index).collect();
    indexes.sort();
    assert_eq!(indexes, (0..6).collect::<Vec<_>>());

    let done = q.get_job(&job.id).await.unwrap();
    assert_eq!(done.state, JobState::Completed);
    assert_eq!((done.completed, done.failed), (6, 0));
    assert!(done.finished_ms.is_some());
    assert_eq!(done.spec.metadata, spec(None).metadata);
    assert_eq!(q.queue_stats(MODEL).await.unwrap(), QueueStats::default());
    let tasks_key = format!("{PREFIX}:tasks:{{m:{MODEL}}}");
    let queued: usize = c.xlen(&tasks_key).await.unwrap();
    assert_eq!(queued, 0, "completed tasks leave the stream");
    for kind in ["job", "results", "done"] {
        let key = format!("{PREFIX}:{kind}:{{{}}}", job.id);
        let ttl: i64 = c.pttl(&key).await.unwrap();
        let retention = settings().retention_s as i64 * 1000;
        assert!(
            ttl > 0 && ttl <= retention,
            "{key} expires with the job: {ttl}"
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_second_completion_changes_nothing() {
    let server = RedisServer::start();
    let q = open(&server, settings()).await;
    let (job, _) = submit(&q, &[2, 2]).await;
    let claimed = claim(&q, "w1").await;
    let first = &claimed[0];
    assert_eq!(
        q.complete(&first.handle, scores(first)).await.unwrap(),
        Completion::Recorded
    );
    let stats = q.queue_stats(MODEL).await.unwrap();
    let record = q.get_job(&job.id).await.unwrap();
    // The same task again, and with different results: both ignored.
    for results in [scores(first), vec![error_result("x", 0, "late")]] {
        assert_eq!(
            q.complete(&first.handle, results).await.unwrap(),
            Completion::Duplicate
        );
    }
    assert_eq!(q.queue_stats(MODEL).await.unwrap(), stats);
    assert_eq!(q.get_job(&job.id).await.unwrap(), record);
    let page = q
        .read_results(&job.id, 0, 100, Duration::ZERO)
        .await
        .unwrap();
    assert_eq!(page.results.len(), 2);
    assert!(!page.finished);
}

#[tokio::test(flavor = "multi_thread")]
async fn idle_tasks_are_reclaimed_unless_refreshed() {
    let server = RedisServer::start();
    let q = open(
        &server,
        QueueSettings {
            visibility_timeout_ms: 400,
            ..settings()
        },
    )
    .await;
    submit(&q, &[1, 1]).await;
    let held = q.claim(MODEL, "a", 1, Duration::ZERO).await.unwrap();
    let abandoned = q.claim(MODEL, "a", 1, Duration::ZERO).await.unwrap();
    assert_eq!((held.len(), abandoned.len()), (1, 1));
    // `a` keeps refreshing the first task and forgets the second.
    for _ in 0..6 {
        tokio::time::sleep(Duration::from_millis(100)).await;
        q.refresh("a", &[held[0].handle.clone()]).await.unwrap();
    }
    let taken = q.claim(MODEL, "b", 10, Duration::ZERO).await.unwrap();
    assert_eq!(taken.len(), 1, "only the unrefreshed task moves");
    assert_eq!(taken[0].handle, abandoned[0].handle);
    assert_eq!(taken[0].deliveries, 2);
    // Refreshing does not count as a delivery.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let again = q.claim(MODEL, "c", 10, Duration::ZERO).await.unwrap();
    let deliveries: Vec<(String, u64)> = again
        .iter()
        .map(|t| (t.handle.entry_id.clone(), t.deliveries))
        .collect();
    assert!(deliveries.contains(&(held[0].handle.entry_id.clone(), 2)));
    assert!(deliveries.contains(&(abandoned[0].handle.entry_id.clone(), 3)));
}

#[tokio::test(flavor = "multi_thread")]
async fn tasks_delivered_too_often_are_dead_lettered() {
    let server = RedisServer::start();
    let q = open(
        &server,
        QueueSettings {
            visibility_timeout_ms: 100,
            max_deliveries: 2,
            ..settings()
        },
    )
    .await;
    let mut c = raw(&server).await;
    let (job, _) = submit(&q, &[3]).await;
    for delivery in 1..=2 {
        let got = q.claim(MODEL, "crashy", 1, Duration::ZERO).await.unwrap();
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].deliveries, delivery);
        tokio::time::sleep(Duration::from_millis(150)).await;
    }
    let got = q.claim(MODEL, "w", 1, Duration::ZERO).await.unwrap();
    assert!(got.is_empty(), "the poison task is not handed out again");

    let results = read_all(&q, &job.id, 0, 10).await;
    assert_eq!(results.len(), 3);
    for (k, r) in results.iter().enumerate() {
        assert_eq!(r.id, format!("item-{}", r.index));
        assert_eq!(r.cursor, k as u64 + 1);
        assert!(r.error.contains("dead-lettered"), "{}", r.error);
        assert!(r.error.contains("2 deliveries"), "{}", r.error);
    }
    let record = q.get_job(&job.id).await.unwrap();
    assert_eq!((record.state, record.failed), (JobState::Completed, 3));
    assert_eq!(q.queue_stats(MODEL).await.unwrap(), QueueStats::default());
    let dead = q.dead_letters(MODEL).await.unwrap();
    assert_eq!(dead.len(), 1);
    assert_eq!(
        (dead[0].0.job_id.as_str(), dead[0].0.count),
        (job.id.as_str(), 3)
    );
    assert_eq!(dead[0].1, 2);
    let dead_key = format!("{PREFIX}:dead:{{m:{MODEL}}}");
    let entries: ::redis::streams::StreamRangeReply = c.xrange_all(&dead_key).await.unwrap();
    let fields = &entries.ids[0].map;
    for field in ["job", "first", "n", "deliveries", "payload"] {
        assert!(fields.contains_key(field), "dead letter without {field}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_full_queue_refuses_without_side_effects() {
    let server = RedisServer::start();
    let q = open(
        &server,
        QueueSettings {
            max_queued_items: 15,
            max_queued_bytes: 1000,
            ..settings()
        },
    )
    .await;
    let mut c = raw(&server).await;
    let job = new_job(&q, None).await;
    q.enqueue(&job, tasks(&[6, 6])).await.unwrap();
    let before = q.queue_stats(MODEL).await.unwrap();
    assert_eq!(before.items, 12);
    match q.enqueue(&job, tasks(&[2, 3])).await {
        Err(QueueError::Full { model, detail }) => {
            assert_eq!(model, MODEL);
            assert_eq!(detail, "12 items queued + 5 new > limit 15");
        }
        other => panic!("expected Full, got {other:?}"),
    }
    // Bytes: the 12 queued items hold 152 (data and ids); 1000 more do not fit.
    let big = vec![NewTask {
        first_index: 12,
        items: vec![Item {
            id: "big".into(),
            source: Some(Source::Data(vec![0u8; 997].into())),
            metadata: Default::default(),
        }],
    }];
    match q.enqueue(&job, big).await {
        Err(QueueError::Full { detail, .. }) => {
            assert_eq!(detail, "152 bytes queued + 1000 new > limit 1000")
        }
        other => panic!("expected Full, got {other:?}"),
    }
    assert_eq!(q.queue_stats(MODEL).await.unwrap(), before);
    assert_eq!(q.get_job(&job.id).await.unwrap().total, 12);
    let queued: usize = c
        .xlen(format!("{PREFIX}:tasks:{{m:{MODEL}}}"))
        .await
        .unwrap();
    assert_eq!(queued, 2);
    // What still fits goes in.
    q.enqueue(&job, tasks(&[3])).await.unwrap();
    assert_eq!(q.queue_stats(MODEL).await.unwrap().items, 15);
}

#[tokio::test(flavor = "multi_thread")]
async fn abort_removes_the_job_its_tasks_and_its_key() {
    let server = RedisServer::start();
    let q = open(&server, settings()).await;
    let mut c = raw(&server).await;
    let job = new_job(&q, Some("upload-1")).await;
    let handles = q.enqueue(&job, tasks(&[2, 2, 2])).await.unwrap();
    // A worker already holds one task when the upload fails.
    let held = q.claim(MODEL, "w", 1, Duration::ZERO).await.unwrap();
    q.abort_job(&job, &handles).await.unwrap();

    assert!(matches!(
        q.get_job(&job.id).await,
        Err(QueueError::JobNotFound(_))
    ));
    assert!(q.list_jobs(ListQuery::default()).await.unwrap().is_empty());
    assert_eq!(q.queue_stats(MODEL).await.unwrap(), QueueStats::default());
    assert_eq!(
        q.complete(&held[0].handle, scores(&held[0])).await.unwrap(),
        Completion::JobGone
    );
    assert_eq!(q.queue_stats(MODEL).await.unwrap(), QueueStats::default());
    assert!(claim(&q, "w2").await.is_empty());
    let left = keys_of(&mut c, &format!("*{}*", job.id)).await;
    // Only the events stream lingers briefly, to wake waiting readers.
    assert_eq!(left, vec![format!("{PREFIX}:events:{{{}}}", job.id)]);
    let ttl: i64 = c.pttl(&left[0]).await.unwrap();
    assert!(ttl > 0);
    let idem: Option<String> = c.get(format!("{PREFIX}:idem:upload-1")).await.unwrap();
    assert_eq!(idem, None);
    // The key is free again.
    let again = new_job(&q, Some("upload-1")).await;
    assert_ne!(again.id, job.id);
}

#[tokio::test(flavor = "multi_thread")]
async fn results_resume_exactly_from_every_cursor() {
    let server = RedisServer::start();
    let q = open(&server, settings()).await;
    let (job, _) = submit(&q, &[3, 1, 4, 2, 5]).await;
    let mut claimed = claim(&q, "w").await;
    // Recorded out of upload order: cursors follow recording order.
    claimed.swap(0, 4);
    claimed.swap(1, 2);
    for task in &claimed {
        q.complete(&task.handle, scores(task)).await.unwrap();
    }
    let all = read_all(&q, &job.id, 0, 100).await;
    assert_eq!(all.len(), 15);
    for after in 0..=15u64 {
        for page in [1, 2, 4, 7, 100] {
            let got = read_all(&q, &job.id, after, page).await;
            let cursors: Vec<u64> = got.iter().map(|r| r.cursor).collect();
            assert_eq!(
                cursors,
                (after + 1..=15).collect::<Vec<_>>(),
                "after {after}, page {page}"
            );
            assert_eq!(got[..], all[after as usize..], "after {after}, page {page}");
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn blocking_waits_wake_promptly_and_block_nothing_else() {
    let server = RedisServer::start();
    let q = std::sync::Arc::new(open(&server, settings()).await);
    let job = new_job(&q, None).await;

    // A claim waiting for work does not hold up the shared connection.
    let waiting = tokio::spawn({
        let q = q.clone();
        async move { q.claim(MODEL, "w", 10, Duration::from_secs(10)).await }
    });
    tokio::time::sleep(Duration::from_millis(100)).await;
    let start = Instant::now();
    q.get_job(&job.id).await.unwrap();
    assert!(
        start.elapsed() < Duration::from_secs(3),
        "stuck behind the claim"
    );
    q.enqueue(&job, tasks(&[2])).await.unwrap();
    let got = tokio::time::timeout(Duration::from_secs(5), waiting)
        .await
        .expect("the waiting claim wakes on enqueue")
        .unwrap()
        .unwrap();
    assert_eq!(got.len(), 1);

    // A reader waiting for results wakes on a completion...
    let reader = tokio::spawn({
        let (q, id) = (q.clone(), job.id.clone());
        async move { q.read_results(&id, 0, 10, Duration::from_secs(10)).await }
    });
    tokio::time::sleep(Duration::from_millis(100)).await;
    q.complete(&got[0].handle, scores(&got[0])).await.unwrap();
    let page = tokio::time::timeout(Duration::from_secs(5), reader)
        .await
        .expect("the reader wakes on a result")
        .unwrap()
        .unwrap();
    assert_eq!((page.results.len(), page.finished), (2, false));

    // ...and on the seal that finishes the job without a new result.
    let reader = tokio::spawn({
        let (q, id) = (q.clone(), job.id.clone());
        async move { q.read_results(&id, 2, 10, Duration::from_secs(10)).await }
    });
    tokio::time::sleep(Duration::from_millis(100)).await;
    q.seal_job(&job.id).await.unwrap();
    let page = tokio::time::timeout(Duration::from_secs(5), reader)
        .await
        .expect("the reader wakes on the seal")
        .unwrap()
        .unwrap();
    assert!(page.results.is_empty() && page.finished);

    // A wait that times out comes back empty, after about its wait.
    let start = Instant::now();
    let idle = q
        .claim(MODEL, "w", 10, Duration::from_millis(300))
        .await
        .unwrap();
    assert!(idle.is_empty());
    assert!(start.elapsed() >= Duration::from_millis(250));
}

#[tokio::test(flavor = "multi_thread")]
async fn zero_retention_removes_a_job_as_it_finishes() {
    let server = RedisServer::start();
    let q = open(
        &server,
        QueueSettings {
            retention_s: 0,
            ..settings()
        },
    )
    .await;
    let job = new_job(&q, Some("once")).await;
    q.enqueue(&job, tasks(&[2])).await.unwrap();
    let task = claim(&q, "w").await.remove(0);
    q.complete(&task.handle, scores(&task)).await.unwrap();
    let sealed = q.seal_job(&job.id).await.unwrap();
    assert_eq!(sealed.state, JobState::Completed);
    assert!(sealed.finished_ms.is_some());
    assert!(matches!(
        q.get_job(&job.id).await,
        Err(QueueError::JobNotFound(_))
    ));
    assert!(matches!(
        q.read_results(&job.id, 0, 10, Duration::ZERO).await,
        Err(QueueError::JobNotFound(_))
    ));
    let again = new_job(&q, Some("once")).await;
    assert_ne!(again.id, job.id);
}

#[tokio::test(flavor = "multi_thread")]
async fn the_queue_rides_out_a_redis_restart() {
    let mut server = RedisServer::start_with_aof();
    let q = open(&server, settings()).await;
    let (job, _) = submit(&q, &[2, 2, 2]).await;
    let first = q.claim(MODEL, "w", 1, Duration::ZERO).await.unwrap();
    q.complete(&first[0].handle, scores(&first[0]))
        .await
        .unwrap();
    let held = q.claim(MODEL, "w", 1, Duration::ZERO).await.unwrap();

    server.kill();
    assert!(
        matches!(q.ping().await, Err(QueueError::Unavailable(_))),
        "a dead Redis is reported as unavailable"
    );
    server.restart();

    // The same queue object carries on: state, results and the held task
    // survived, and the calls reconnect by themselves.
    q.ping().await.unwrap();
    let record = q.get_job(&job.id).await.unwrap();
    assert_eq!((record.total, record.completed), (6, 2));
    q.complete(&held[0].handle, scores(&held[0])).await.unwrap();
    let rest = claim(&q, "w2").await;
    assert_eq!(rest.len(), 1);
    q.complete(&rest[0].handle, scores(&rest[0])).await.unwrap();
    let results = read_all(&q, &job.id, 0, 4).await;
    assert_eq!(
        results.iter().map(|r| r.cursor).collect::<Vec<_>>(),
        (1..=6).collect::<Vec<_>>()
    );
    assert_eq!(q.queue_stats(MODEL).await.unwrap(), QueueStats::default());

    // A blocking wait right after another restart recovers too.
    server.kill();
    server.restart();
    let job2 = new_job(&q, None).await;
    let waiting = q.claim(MODEL, "w", 1, Duration::from_millis(200)).await;
    assert!(waiting.unwrap().is_empty());
    q.enqueue(&job2, tasks(&[1])).await.unwrap();
    assert_eq!(claim(&q, "w").await.len(), 1);
}

/// `rediss://` with an ACL user and a client certificate: a Redis that
/// requires both (`tls-auth-clients yes`, user `worker`) accepts the queue
/// with the right password, CA and certificate, and refuses it without
/// any one of them.
#[tokio::test(flavor = "multi_thread")]
async fn rediss_with_an_acl_user_and_a_client_certificate() {
    use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, KeyPair};

    // Distinct subjects: OpenSSL (on Redis's side) takes a certificate
    // whose subject equals its issuer's for self-signed.
    let params = |sans: Vec<String>, name: &str| {
        let mut params = CertificateParams::new(sans).unwrap();
        params.distinguished_name.push(DnType::CommonName, name);
        params
    };
    let dir = tempfile::tempdir().unwrap();
    let path = |name: &str| dir.path().join(name);
    let ca_key = KeyPair::generate().unwrap();
    let mut ca_params = params(Vec::new(), "dfscan test CA");
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca = ca_params.self_signed(&ca_key).unwrap();
    std::fs::write(path("ca.pem"), ca.pem()).unwrap();
    for (name, san) in [("redis", "127.0.0.1"), ("worker", "worker")] {
        let key = KeyPair::generate().unwrap();
        let cert = params(vec![san.to_string()], name)
            .signed_by(&key, &ca, &ca_key)
            .unwrap();
        std::fs::write(path(&format!("{name}.pem")), cert.pem()).unwrap();
        std::fs::write(path(&format!("{name}.key")), key.serialize_pem()).unwrap();
    }
    let tls_port = dfscan_testkit::free_port().to_string();
    let file = |name: &str| path(name).to_str().unwrap().to_string();
    let (cert, key, ca_file) = (file("redis.pem"), file("redis.key"), file("ca.pem"));
    let _server = RedisServer::start_with_args(&[
        "--tls-port",
        &tls_port,
        "--tls-cert-file",
        &cert,
        "--tls-key-file",
        &key,
        "--tls-ca-cert-file",
        &ca_file,
        "--tls-auth-clients",
        "yes",
        "--user",
        "worker",
        "on",
        ">worker-password",
        "~*",
        "&*",
        "+@all",
    ]);
    let settings = QueueSettings {
        tls_ca_file: Some(path("ca.pem")),
        tls_cert_file: Some(path("worker.pem")),
        tls_key_file: Some(path("worker.key")),
        ..QueueSettings::default()
    };
    let url = |password: &str| format!("rediss://worker:{password}@127.0.0.1:{tls_port}");

    let q = RedisQueue::connect(&url("worker-password"), settings.clone())
        .await
        .unwrap();
    let Created::New(job) = q.create_job(spec(None)).await.unwrap() else {
        panic!("a new job was expected")
    };
    assert_eq!(q.get_job(&job.id).await.unwrap().id, job.id);

    let refused = [
        ("wrong password", url("guess"), settings.clone()),
        (
            "no client certificate",
            url("worker-password"),
            QueueSettings {
                tls_cert_file: None,
                tls_key_file: None,
                ..settings.clone()
            },
        ),
        (
            "untrusted server",
            url("worker-password"),
            QueueSettings {
                tls_ca_file: None,
                ..settings.clone()
            },
        ),
    ];
    for (case, url, settings) in refused {
        assert!(
            RedisQueue::connect(&url, settings).await.is_err(),
            "{case}: connected"
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn jobs_from_before_the_counters_are_left_out_of_them() {
    use JobState::*;

    let server = RedisServer::start();
    let q = open(&server, settings()).await;
    let mut c = raw(&server).await;
    // A job hash as the queue wrote it before it kept counters: it still
    // reads and runs.
    let legacy_id = "0123456789abcdef0123456789abcdef";
    let now = now_ms().to_string();
    let fields = [
        ("model", MODEL),
        ("state", "uploading"),
        ("total", "0"),
        ("completed", "0"),
        ("failed", "0"),
        ("cursor", "0"),
        ("created_ms", &now),
        ("updated_ms", &now),
        ("priority", "bulk"),
        ("tenant", "t"),
    ];
    let _: () = c
        .hset_multiple(format!("{PREFIX}:job:{{{legacy_id}}}"), &fields)
        .await
        .unwrap();
    let legacy = q.get_job(legacy_id).await.unwrap();
    assert_eq!(
        (legacy.state, legacy.spec.tenant.as_str()),
        (Uploading, "t")
    );
    let Created::New(counted) = q
        .create_job(JobSpec {
            tenant: "t".into(),
            ..spec(None)
        })
        .await
        .unwrap()
    else {
        panic!("a job without a key is always new")
    };
    q.enqueue(&counted, tasks(&[2])).await.unwrap();
    q.enqueue(&legacy, tasks(&[3])).await.unwrap();
    for id in [counted.id.as_str(), legacy_id] {
        q.seal_job(id).await.unwrap();
    }
    let only_the_counted_job = [(Uploading, 0), (Running, 1), (Completed, 0), (Cancelled, 0)];
    assert_eq!(q.tenant_queued_items("t").await.unwrap(), 2);
    assert_eq!(q.jobs_by_state().await.unwrap(), only_the_counted_job);
    for task in claim(&q, "w").await {
        if task.handle.job_id == legacy_id {
            q.complete(&task.handle, scores(&task)).await.unwrap();
        }
    }
    assert_eq!(q.get_job(legacy_id).await.unwrap().state, Completed);
    assert_eq!(q.tenant_queued_items("t").await.unwrap(), 2);
    assert_eq!(q.jobs_by_state().await.unwrap(), only_the_counted_job);
}
