//! One behavioural suite for every `JobQueue` backend: each test below runs
//! once against `MemoryQueue` and once against `RedisQueue` on its own
//! redis-server, so the two cannot drift apart.

use std::sync::Arc;
use std::time::Duration;

use dfscan_proto::v1::{ItemResult, Worker};
use dfscan_queue::policy::verdict;
use dfscan_queue::*;
use dfscan_testkit::RedisServer;
use support::{spec, tasks, MODEL};

mod support;

#[derive(Clone, Copy)]
enum Backend {
    Memory,
    Redis,
}

struct Open {
    queue: Arc<dyn JobQueue>,
    _server: Option<RedisServer>,
}

impl Backend {
    async fn open(self, settings: QueueSettings) -> Open {
        match self {
            Backend::Memory => Open {
                queue: Arc::new(MemoryQueue::new(settings)),
                _server: None,
            },
            Backend::Redis => {
                let server = RedisServer::start();
                let queue = RedisQueue::connect(&server.url(), settings)
                    .await
                    .expect("connect to the test redis-server");
                Open {
                    queue: Arc::new(queue),
                    _server: Some(server),
                }
            }
        }
    }
}

macro_rules! conformance {
    ($($name:ident),* $(,)?) => {
        mod memory {
            $(
                #[tokio::test(flavor = "multi_thread")]
                async fn $name() {
                    super::$name(super::Backend::Memory).await
                }
            )*
        }
        mod redis {
            $(
                #[tokio::test(flavor = "multi_thread")]
                async fn $name() {
                    super::$name(super::Backend::Redis).await
                }
            )*
        }
    };
}

conformance!(
    lifecycle_gives_every_item_one_result,
    duplicate_completion_records_nothing,
    results_resume_from_any_cursor,
    idle_tasks_go_to_another_worker_unless_refreshed,
    poison_tasks_are_dead_lettered,
    full_queue_refuses_and_abort_leaves_nothing,
    cancelled_jobs_finish_with_cancelled_items,
    idempotency_key_returns_the_first_job,
    readers_wake_when_results_arrive,
    workers_are_listed_while_they_heartbeat,
    jobs_are_listed_newest_first,
    finished_jobs_expire,
    online_tasks_go_first_and_keep_their_own_retention,
    verdicts_metadata_and_callbacks_are_kept,
    abandoned_uploads_free_their_key_and_go,
    counters_follow_every_change_of_a_job,
    counters_do_not_depend_on_how_many_jobs_exist,
);

fn settings() -> QueueSettings {
    QueueSettings {
        key_prefix: format!("test{}", std::process::id()),
        ..QueueSettings::default()
    }
}

/// What a worker would record: a score for even indexes, an error for odd.
fn results_for(task: &ClaimedTask) -> Vec<ItemResult> {
    let items = task.items.as_ref().expect("readable payload");
    items
        .iter()
        .enumerate()
        .map(|(i, item)| {
            let index = task.handle.first_index + i as u64;
            if index.is_multiple_of(2) {
                ItemResult {
                    id: item.id.clone(),
                    index,
                    label: "Real".into(),
                    fake_score: Some(0.25),
                    ..Default::default()
                }
            } else {
                error_result(&item.id, index, "cannot decode")
            }
        })
        .collect()
}

async fn submit(q: &dyn JobQueue, sizes: &[usize]) -> JobRecord {
    submit_spec(q, spec(None), sizes).await
}

async fn submit_spec(q: &dyn JobQueue, spec: JobSpec, sizes: &[usize]) -> JobRecord {
    let Created::New(job) = q.create_job(spec).await.unwrap() else {
        panic!("a job without a key is always new")
    };
    q.enqueue(&job, tasks(sizes)).await.unwrap();
    q.seal_job(&job.id).await.unwrap()
}

async fn claim_all(q: &dyn JobQueue, consumer: &str) -> Vec<ClaimedTask> {
    q.claim(MODEL, consumer, 100, Duration::from_millis(50))
        .await
        .unwrap()
}

async fn all_results(q: &dyn JobQueue, job: &str, after: u64, page: usize) -> Vec<ItemResult> {
    let mut out = Vec::new();
    let mut after = after;
    loop {
        let p = q
            .read_results(job, after, page, Duration::from_millis(50))
            .await
            .unwrap();
        if let Some(last) = p.results.last() {
            after = last.cursor;
        }
        out.extend(p.results);
        if p.finished {
            return out;
        }
    }
}

async fn lifecycle_gives_every_item_one_result(b: Backend) {
    let o = b.open(settings()).await;
    let q = &*o.queue;
    let job = submit(q, &[4, 4, 2]).await;
    assert_eq!((job.state, job.total), (JobState::Running, 10));
    assert_eq!(
        q.queue_stats(MODEL).await.unwrap(),
        QueueStats {
            items: 10,
            // Data of 1..=10 bytes plus ten 6-byte ids.
            bytes: 55 + 60
        }
    );
    let claimed = claim_all(q, "w1").await;
    assert_eq!(claimed.len(), 3);
    for task in &claimed {
        assert_eq!(task.deliveries, 1);
        assert!(!task.job_cancelled);
        let outcome = q.complete(&task.handle, results_for(task)).await.unwrap();
        assert_eq!(outcome, Completion::Recorded);
    }
    let results = all_results(q, &job.id, 0, 100).await;
    let cursors: Vec<u64> = results.iter().map(|r| r.cursor).collect();
    assert_eq!(cursors, (1..=10).collect::<Vec<_>>());
    let mut indexes: Vec<u64> = results.iter().map(|r| r.index).collect();
    indexes.sort();
    assert_eq!(indexes, (0..10).collect::<Vec<_>>());
    assert!(results.iter().all(|r| r.id == format!("item-{}", r.index)));
    let job = q.get_job(&job.id).await.unwrap();
    assert_eq!(job.state, JobState::Completed);
    assert_eq!((job.completed, job.failed), (5, 5));
    assert!(job.finished_ms.is_some() && job.is_finished());
    assert_eq!(job.spec.metadata["team"], "trust-and-safety");
    assert_eq!(q.queue_stats(MODEL).await.unwrap(), QueueStats::default());
    assert!(claim_all(q, "w1").await.is_empty(), "nothing left to claim");
}

async fn duplicate_completion_records_nothing(b: Backend) {
    let o = b.open(settings()).await;
    let q = &*o.queue;
    let job = submit(q, &[3, 3]).await;
    let claimed = claim_all(q, "w1").await;
    let first = &claimed[0];
    assert_eq!(
        q.complete(&first.handle, results_for(first)).await.unwrap(),
        Completion::Recorded
    );
    assert_eq!(
        q.complete(&first.handle, results_for(first)).await.unwrap(),
        Completion::Duplicate
    );
    let job = q.get_job(&job.id).await.unwrap();
    assert_eq!(job.completed + job.failed, 3);
    assert_eq!(q.queue_stats(MODEL).await.unwrap().items, 3);
    let page = q
        .read_results(&job.id, 0, 100, Duration::ZERO)
        .await
        .unwrap();
    assert_eq!(page.results.len(), 3);
    assert!(!page.finished);
}

async fn results_resume_from_any_cursor(b: Backend) {
    let o = b.open(settings()).await;
    let q = &*o.queue;
    let job = submit(q, &[5, 1, 7, 3]).await;
    for task in claim_all(q, "w1").await {
        q.complete(&task.handle, results_for(&task)).await.unwrap();
    }
    let everything = all_results(q, &job.id, 0, 1000).await;
    assert_eq!(everything.len(), 16);
    for after in 0..=16u64 {
        for page in [1, 3, 100] {
            let rest = all_results(q, &job.id, after, page).await;
            assert_eq!(
                rest,
                everything[after as usize..].to_vec(),
                "after {after}, pages of {page}"
            );
        }
    }
}

async fn idle_tasks_go_to_another_worker_unless_refreshed(b: Backend) {
    let o = b
        .open(QueueSettings {
            visibility_timeout_ms: 300,
            ..settings()
        })
        .await;
    let q = &*o.queue;
    let job = submit(q, &[2, 2]).await;
    let held = claim_all(q, "w1").await;
    assert_eq!(held.len(), 2);
    for _ in 0..4 {
        tokio::time::sleep(Duration::from_millis(120)).await;
        q.refresh("w1", &[held[0].handle.clone()]).await.unwrap();
    }
    // 480 ms later: the refreshed task stays with w1, the other moves.
    let moved = claim_all(q, "w2").await;
    assert_eq!(moved.len(), 1, "only the unrefreshed task is reclaimed");
    assert_eq!(moved[0].handle, held[1].handle);
    assert_eq!(moved[0].deliveries, 2);
    // Both workers finish the moved task; it counts once.
    for task in [&held[1], &moved[0]] {
        q.complete(&task.handle, results_for(task)).await.unwrap();
    }
    q.complete(&held[0].handle, results_for(&held[0]))
        .await
        .unwrap();
    let job = q.get_job(&job.id).await.unwrap();
    assert_eq!((job.completed + job.failed, job.total), (4, 4));
    assert_eq!(job.state, JobState::Completed);
    assert_eq!(q.queue_stats(MODEL).await.unwrap(), QueueStats::default());
}

async fn poison_tasks_are_dead_lettered(b: Backend) {
    let o = b
        .open(QueueSettings {
            visibility_timeout_ms: 100,
            max_deliveries: 2,
            ..settings()
        })
        .await;
    let q = &*o.queue;
    let job = submit(q, &[2, 3]).await;
    let claimed = claim_all(q, "w1").await;
    let (good, poison) = (&claimed[0], &claimed[1]);
    q.complete(&good.handle, results_for(good)).await.unwrap();
    // The poison task's holder dies twice.
    tokio::time::sleep(Duration::from_millis(150)).await;
    let again = claim_all(q, "w2").await;
    assert_eq!(again.len(), 1);
    assert_eq!(again[0].deliveries, 2);
    tokio::time::sleep(Duration::from_millis(150)).await;
    assert!(
        claim_all(q, "w3").await.is_empty(),
        "a third delivery exceeds max_deliveries"
    );
    let results = all_results(q, &job.id, 0, 100).await;
    assert_eq!(results.len(), 5);
    let dead: Vec<&ItemResult> = results.iter().filter(|r| r.index >= 2).collect();
    assert_eq!(dead.len(), 3);
    for r in dead {
        assert!(r.error.contains("dead-lettered"), "{r:?}");
        assert_eq!(r.id, format!("item-{}", r.index));
    }
    let job = q.get_job(&job.id).await.unwrap();
    assert_eq!((job.completed, job.failed, job.total), (1, 4, 5));
    assert_eq!(job.state, JobState::Completed);
    assert_eq!(q.queue_stats(MODEL).await.unwrap(), QueueStats::default());
    // The late original holder finishing changes nothing.
    assert_eq!(
        q.complete(&poison.handle, results_for(poison))
            .await
            .unwrap(),
        Completion::Duplicate
    );
}

async fn full_queue_refuses_and_abort_leaves_nothing(b: Backend) {
    let o = b
        .open(QueueSettings {
            max_queued_items: 5,
            ..settings()
        })
        .await;
    let q = &*o.queue;
    let Created::New(job) = q.create_job(spec(Some("upload-1"))).await.unwrap() else {
        panic!("new key")
    };
    let handles = q.enqueue(&job, tasks(&[3])).await.unwrap();
    let err = q.enqueue(&job, tasks(&[2, 1])).await.unwrap_err();
    assert!(matches!(err, QueueError::Full { .. }), "{err}");
    assert!(err.to_string().contains("limit 5"), "{err}");
    assert_eq!(q.queue_stats(MODEL).await.unwrap().items, 3);
    q.abort_job(&job, &handles).await.unwrap();
    assert_eq!(q.queue_stats(MODEL).await.unwrap(), QueueStats::default());
    assert!(matches!(
        q.get_job(&job.id).await,
        Err(QueueError::JobNotFound(_))
    ));
    assert!(q.list_jobs(ListQuery::default()).await.unwrap().is_empty());
    assert!(claim_all(q, "w1").await.is_empty());
    // The key is free again, and a task a worker held completes as a no-op.
    assert!(matches!(
        q.create_job(spec(Some("upload-1"))).await.unwrap(),
        Created::New(_)
    ));
    assert_eq!(
        q.complete(&handles[0], Vec::new()).await.unwrap(),
        Completion::JobGone
    );
}

async fn cancelled_jobs_finish_with_cancelled_items(b: Backend) {
    let o = b.open(settings()).await;
    let q = &*o.queue;
    let job = submit(q, &[2, 2, 2]).await;
    let first = q
        .claim(MODEL, "w1", 1, Duration::from_millis(50))
        .await
        .unwrap();
    q.complete(&first[0].handle, results_for(&first[0]))
        .await
        .unwrap();
    let cancelled = q.cancel_job(&job.id).await.unwrap();
    assert_eq!(cancelled.state, JobState::Cancelled);
    assert!(!cancelled.is_finished());
    let rest = claim_all(q, "w1").await;
    assert_eq!(rest.len(), 2);
    for task in &rest {
        assert!(task.job_cancelled);
        let results = (0..task.handle.count)
            .map(|i| error_result("", task.handle.first_index + i, CANCELLED_ERROR))
            .collect();
        q.complete(&task.handle, results).await.unwrap();
    }
    let job = q.get_job(&job.id).await.unwrap();
    assert_eq!(job.state, JobState::Cancelled);
    assert_eq!((job.completed, job.failed, job.total), (1, 5, 6));
    assert!(job.is_finished() && job.finished_ms.is_some());
    assert!(matches!(
        q.cancel_job(&job.id).await,
        Err(QueueError::WrongState { .. })
    ));
    assert!(matches!(
        q.cancel_job("0123456789abcdef0123456789abcdef").await,
        Err(QueueError::JobNotFound(_))
    ));
    assert_eq!(q.queue_stats(MODEL).await.unwrap(), QueueStats::default());
}

async fn idempotency_key_returns_the_first_job(b: Backend) {
    let o = b.open(settings()).await;
    let q = &*o.queue;
    let Created::New(first) = q.create_job(spec(Some("batch-7"))).await.unwrap() else {
        panic!("new key")
    };
    q.enqueue(&first, tasks(&[2])).await.unwrap();
    q.seal_job(&first.id).await.unwrap();
    let Created::Existing(again) = q.create_job(spec(Some("batch-7"))).await.unwrap() else {
        panic!("the key is taken")
    };
    assert_eq!((again.id.as_str(), again.total), (first.id.as_str(), 2));
    assert!(matches!(
        q.create_job(spec(Some("batch-8"))).await.unwrap(),
        Created::New(_)
    ));
    assert_eq!(first.id.len(), 32);
    assert!(first.id.chars().all(|c| c.is_ascii_hexdigit()));
}

async fn readers_wake_when_results_arrive(b: Backend) {
    let o = b.open(settings()).await;
    let q = o.queue.clone();
    let job = submit(&*q, &[2]).await;
    let reader = {
        let q = q.clone();
        let id = job.id.clone();
        tokio::spawn(async move {
            let started = std::time::Instant::now();
            let page = q
                .read_results(&id, 0, 10, Duration::from_secs(20))
                .await
                .unwrap();
            (page, started.elapsed())
        })
    };
    tokio::time::sleep(Duration::from_millis(200)).await;
    let task = &claim_all(&*q, "w1").await[0];
    q.complete(&task.handle, results_for(task)).await.unwrap();
    let (page, waited) = reader.await.unwrap();
    assert_eq!(page.results.len(), 2);
    assert!(page.finished);
    assert!(waited < Duration::from_secs(10), "woke after {waited:?}");
    // Nothing more to come: a finished job does not wait.
    let page = q
        .read_results(&job.id, 2, 10, Duration::from_secs(20))
        .await
        .unwrap();
    assert!(page.results.is_empty() && page.finished);
}

async fn workers_are_listed_while_they_heartbeat(b: Backend) {
    let o = b
        .open(QueueSettings {
            worker_ttl_ms: 300,
            ..settings()
        })
        .await;
    let q = &*o.queue;
    let worker = |id: &str| Worker {
        worker_id: id.into(),
        model: MODEL.into(),
        items_scored: 42,
        ..Default::default()
    };
    q.heartbeat(&worker("a")).await.unwrap();
    q.heartbeat(&worker("b")).await.unwrap();
    let listed = q.list_workers().await.unwrap();
    let mut ids: Vec<&str> = listed.iter().map(|w| w.worker_id.as_str()).collect();
    ids.sort();
    assert_eq!(ids, ["a", "b"]);
    assert_eq!(listed[0].items_scored, 42);
    q.deregister("b").await.unwrap();
    assert_eq!(q.list_workers().await.unwrap().len(), 1);
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert!(
        q.list_workers().await.unwrap().is_empty(),
        "silent workers drop out"
    );
}

async fn jobs_are_listed_newest_first(b: Backend) {
    let o = b.open(settings()).await;
    let q = &*o.queue;
    let older = submit(q, &[1]).await;
    tokio::time::sleep(Duration::from_millis(5)).await;
    let newer = submit(q, &[1]).await;
    q.cancel_job(&older.id).await.unwrap();
    let all = q.list_jobs(ListQuery::default()).await.unwrap();
    let ids: Vec<&str> = all.iter().map(|j| j.id.as_str()).collect();
    assert_eq!(ids, [newer.id.as_str(), older.id.as_str()]);
    let cancelled = q
        .list_jobs(ListQuery {
            limit: 10,
            state: Some(JobState::Cancelled),
            ..ListQuery::default()
        })
        .await
        .unwrap();
    assert_eq!(cancelled.len(), 1);
    assert_eq!(cancelled[0].id, older.id);
    let one = q
        .list_jobs(ListQuery {
            limit: 1,
            ..ListQuery::default()
        })
        .await
        .unwrap();
    assert_eq!(one.len(), 1);
    // A tenant's listing holds its own jobs only; the job keeps its tenant.
    let theirs = submit_spec(
        q,
        JobSpec {
            tenant: "team-b".into(),
            ..spec(None)
        },
        &[1],
    )
    .await;
    assert_eq!(q.get_job(&theirs.id).await.unwrap().spec.tenant, "team-b");
    let listed = q
        .list_jobs(ListQuery {
            tenant: Some("team-b".into()),
            ..ListQuery::default()
        })
        .await
        .unwrap();
    let ids: Vec<&str> = listed.iter().map(|j| j.id.as_str()).collect();
    assert_eq!(ids, [theirs.id.as_str()]);
}

async fn finished_jobs_expire(b: Backend) {
    let o = b
        .open(QueueSettings {
            retention_s: 1,
            ..settings()
        })
        .await;
    let q = &*o.queue;
    let job = submit(q, &[1]).await;
    let running = submit(q, &[1]).await;
    let task = claim_all(q, "w1")
        .await
        .into_iter()
        .find(|t| t.handle.job_id == job.id)
        .unwrap();
    q.complete(&task.handle, results_for(&task)).await.unwrap();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert!(matches!(
        q.get_job(&job.id).await,
        Err(QueueError::JobNotFound(_))
    ));
    assert!(matches!(
        q.read_results(&job.id, 0, 1, Duration::ZERO).await,
        Err(QueueError::JobNotFound(_))
    ));
    assert_eq!(
        q.get_job(&running.id).await.unwrap().state,
        JobState::Running,
        "unfinished jobs do not expire"
    );
    let listed = q.list_jobs(ListQuery::default()).await.unwrap();
    assert_eq!(listed.len(), 1);
}

async fn online_tasks_go_first_and_keep_their_own_retention(b: Backend) {
    let o = b.open(settings()).await;
    let q = &*o.queue;
    let online_spec = || JobSpec {
        priority: Priority::Online,
        retention_s: Some(1),
        ..spec(None)
    };
    let bulk = submit(q, &[2, 2]).await;
    let online = submit_spec(q, online_spec(), &[1]).await;
    assert_eq!(online.spec.priority, Priority::Online);
    let stored = q.get_job(&online.id).await.unwrap();
    assert_eq!(
        (stored.spec.priority, stored.spec.retention_s),
        (Priority::Online, Some(1))
    );
    assert_eq!(
        q.queue_stats(MODEL).await.unwrap().items,
        5,
        "one usage per model"
    );

    // Queued after the bulk tasks, claimed before them.
    let first = q.claim(MODEL, "w1", 1, Duration::ZERO).await.unwrap();
    assert_eq!(first.len(), 1);
    assert_eq!(first[0].handle.job_id, online.id);
    assert_eq!(first[0].handle.priority, Priority::Online);
    q.complete(&first[0].handle, results_for(&first[0]))
        .await
        .unwrap();
    for task in claim_all(q, "w1").await {
        assert_eq!(task.handle.job_id, bulk.id);
        q.complete(&task.handle, results_for(&task)).await.unwrap();
    }

    // A claim blocked on an empty queue wakes for an online task.
    let waiting = {
        let queue = Arc::clone(&o.queue);
        tokio::spawn(async move {
            queue
                .claim(MODEL, "w2", 10, Duration::from_secs(5))
                .await
                .unwrap()
        })
    };
    tokio::time::sleep(Duration::from_millis(200)).await;
    let late = submit_spec(q, online_spec(), &[2]).await;
    let woken = waiting.await.unwrap();
    assert_eq!(woken.len(), 1);
    assert_eq!(woken[0].handle.job_id, late.id);
    q.complete(&woken[0].handle, results_for(&woken[0]))
        .await
        .unwrap();

    // Online jobs go after their own retention, bulk ones after the queue's.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    for id in [&online.id, &late.id] {
        assert!(matches!(
            q.get_job(id).await,
            Err(QueueError::JobNotFound(_))
        ));
    }
    assert_eq!(
        q.get_job(&bulk.id).await.unwrap().state,
        JobState::Completed
    );
    assert_eq!(q.queue_stats(MODEL).await.unwrap(), QueueStats::default());
}

async fn verdicts_metadata_and_callbacks_are_kept(b: Backend) {
    use dfscan_proto::v1::{Callback, VerdictPolicy, VerdictThreshold};

    let o = b.open(settings()).await;
    let q = &*o.queue;
    let policy = VerdictPolicy {
        thresholds: vec![
            VerdictThreshold {
                verdict: "flag".into(),
                min_fake_score: 0.9,
            },
            VerdictThreshold {
                verdict: "review".into(),
                min_fake_score: 0.6,
            },
        ],
        otherwise: "pass".into(),
    };
    let callback = Callback {
        url: "https://hooks.example/dfscan".into(),
        item_verdicts: vec!["flag".into()],
    };
    let Created::New(job) = q
        .create_job(JobSpec {
            policy: Some(policy.clone()),
            callback: Some(callback.clone()),
            ..spec(None)
        })
        .await
        .unwrap()
    else {
        panic!("new job expected")
    };
    let mut new_tasks = tasks(&[3]);
    for item in &mut new_tasks[0].items {
        item.metadata = [("source".to_string(), item.id.clone())].into();
    }
    q.enqueue(&job, new_tasks).await.unwrap();
    q.seal_job(&job.id).await.unwrap();
    let stored = q.get_job(&job.id).await.unwrap();
    assert_eq!(stored.spec.policy.as_ref(), Some(&policy));
    assert_eq!(stored.spec.callback.as_ref(), Some(&callback));
    assert_eq!(
        q.pending_callbacks(10).await.unwrap(),
        std::slice::from_ref(&job.id)
    );

    // Workers get the policy with the task and the items' metadata.
    let [task] = &claim_all(q, "w1").await[..] else {
        panic!("one task expected")
    };
    assert_eq!(task.policy.as_ref(), Some(&policy));
    let items = task.items.as_ref().unwrap();
    assert_eq!(items[2].metadata["source"], items[2].id);
    let results: Vec<ItemResult> = items
        .iter()
        .enumerate()
        .map(|(i, item)| {
            let score = [0.95, 0.1, 0.2][i];
            ItemResult {
                id: item.id.clone(),
                index: i as u64,
                fake_score: Some(score),
                verdict: verdict(&policy, score),
                metadata: item.metadata.clone(),
                ..Default::default()
            }
        })
        .collect();
    assert_eq!(results[0].verdict, "flag");
    q.complete(&task.handle, results.clone()).await.unwrap();
    q.complete(&task.handle, results).await.unwrap();
    let done = q.get_job(&job.id).await.unwrap();
    let counts: Vec<(&str, u64)> = done
        .verdicts
        .iter()
        .map(|(v, n)| (v.as_str(), *n))
        .collect();
    assert_eq!(counts, [("flag", 1), ("pass", 2)], "counted once");
    let read = all_results(q, &job.id, 0, 10).await;
    assert_eq!(read[1].metadata["source"], read[1].id);

    // One holder at a time delivers; progress survives in the job.
    let ttl = Duration::from_secs(30);
    assert!(q.lease_callback(&job.id, "c1", ttl).await.unwrap());
    assert!(!q.lease_callback(&job.id, "c2", ttl).await.unwrap());
    assert!(
        q.lease_callback(&job.id, "c1", ttl).await.unwrap(),
        "renewed"
    );
    q.callback_progress(&job.id, 2, false).await.unwrap();
    let record = q.get_job(&job.id).await.unwrap();
    assert_eq!((record.callback_cursor, record.callback_done), (2, false));
    q.callback_progress(&job.id, 3, true).await.unwrap();
    let record = q.get_job(&job.id).await.unwrap();
    assert_eq!((record.callback_cursor, record.callback_done), (3, true));
    assert!(q.pending_callbacks(10).await.unwrap().is_empty());
    assert!(
        q.lease_callback(&job.id, "c2", ttl).await.unwrap(),
        "released"
    );

    // An aborted upload owes nothing; a vanished job can be marked done.
    let Created::New(aborted) = q
        .create_job(JobSpec {
            callback: Some(callback),
            ..spec(None)
        })
        .await
        .unwrap()
    else {
        panic!("new job expected")
    };
    q.abort_job(&aborted, &[]).await.unwrap();
    assert!(q.pending_callbacks(10).await.unwrap().is_empty());
    q.callback_progress("0123456789abcdef0123456789abcdef", 0, true)
        .await
        .unwrap();
}

async fn abandoned_uploads_free_their_key_and_go(b: Backend) {
    let o = b
        .open(QueueSettings {
            upload_timeout_s: 1,
            ..settings()
        })
        .await;
    let q = &*o.queue;
    // Two uploads whose coordinator died: one with an idempotency key.
    let Created::New(keyed) = q.create_job(spec(Some("k"))).await.unwrap() else {
        panic!("new job expected")
    };
    q.enqueue(&keyed, tasks(&[2])).await.unwrap();
    let Created::New(plain) = q.create_job(spec(None)).await.unwrap() else {
        panic!("new job expected")
    };
    q.enqueue(&plain, tasks(&[3])).await.unwrap();
    // While the upload may still be going on, the key finds it.
    let again = q.create_job(spec(Some("k"))).await.unwrap();
    assert_eq!(
        again,
        Created::Existing(q.get_job(&keyed.id).await.unwrap())
    );
    assert_eq!(q.reap_abandoned_uploads().await.unwrap(), 0);

    tokio::time::sleep(Duration::from_millis(1300)).await;
    // Abandoned now: the key makes a new job, the reaper takes the other.
    let Created::New(fresh) = q.create_job(spec(Some("k"))).await.unwrap() else {
        panic!("the abandoned upload should have freed its key")
    };
    assert_ne!(fresh.id, keyed.id);
    assert_eq!(q.reap_abandoned_uploads().await.unwrap(), 1);
    for gone in [&keyed.id, &plain.id] {
        assert!(matches!(
            q.get_job(gone).await,
            Err(QueueError::JobNotFound(_))
        ));
    }
    // Their queued tasks are released as workers come to them.
    for task in claim_all(q, "w1").await {
        let completion = q.complete(&task.handle, results_for(&task)).await.unwrap();
        assert_eq!(completion, Completion::JobGone);
    }
    assert_eq!(q.queue_stats(MODEL).await.unwrap(), QueueStats::default());
}

/// Every state once, with these counts (the others 0).
fn by_state(counts: &[(JobState, u64)]) -> Vec<(JobState, u64)> {
    JobState::ALL
        .map(|state| {
            let n = counts.iter().find(|(s, _)| *s == state).map_or(0, |c| c.1);
            (state, n)
        })
        .to_vec()
}

fn of_tenant(tenant: &str) -> JobSpec {
    JobSpec {
        tenant: tenant.into(),
        ..spec(None)
    }
}

async fn new_job(q: &dyn JobQueue, spec: JobSpec) -> JobRecord {
    let Created::New(job) = q.create_job(spec).await.unwrap() else {
        panic!("a job without a key is always new")
    };
    job
}

async fn counters_follow_every_change_of_a_job(b: Backend) {
    use JobState::*;

    let o = b
        .open(QueueSettings {
            max_queued_items: 20,
            visibility_timeout_ms: 100,
            max_deliveries: 1,
            retention_s: 1,
            upload_timeout_s: 1,
            ..settings()
        })
        .await;
    let q = &*o.queue;
    let queued = |tenant: &'static str| async move { q.tenant_queued_items(tenant).await.unwrap() };
    let states = || async { q.jobs_by_state().await.unwrap() };
    assert_eq!(states().await, by_state(&[]));
    assert_eq!(queued("a").await, 0);

    // Uploading: every enqueued item counts; a refused enqueue does not.
    let first = new_job(q, of_tenant("a")).await;
    assert_eq!(states().await, by_state(&[(Uploading, 1)]));
    q.enqueue(&first, tasks(&[3, 2])).await.unwrap();
    assert_eq!(queued("a").await, 5);
    let full = q.enqueue(&first, tasks(&[16])).await.unwrap_err();
    assert!(matches!(full, QueueError::Full { .. }), "{full}");
    assert_eq!(queued("a").await, 5);
    q.seal_job(&first.id).await.unwrap();
    assert_eq!(states().await, by_state(&[(Running, 1)]));

    // A completed task's items leave the count.
    let claimed = claim_all(q, "w1").await;
    let (done, idle) = (&claimed[0], &claimed[1]);
    q.complete(&done.handle, results_for(done)).await.unwrap();
    q.complete(&done.handle, results_for(done)).await.unwrap();
    assert_eq!(queued("a").await, 2, "a duplicate completion counts once");

    // A cancelled job's items count until they get their results.
    let second = new_job(q, of_tenant("a")).await;
    q.enqueue(&second, tasks(&[4])).await.unwrap();
    assert_eq!(queued("a").await, 6);
    q.cancel_job(&second.id).await.unwrap();
    assert_eq!(states().await, by_state(&[(Running, 1), (Cancelled, 1)]));
    assert_eq!(queued("a").await, 6);
    let [cancelled] = &claim_all(q, "w1").await[..] else {
        panic!("the cancelled job's task")
    };
    let results = (0..4)
        .map(|i| error_result("", i, CANCELLED_ERROR))
        .collect();
    q.complete(&cancelled.handle, results).await.unwrap();
    assert_eq!(queued("a").await, 2);

    // A dead-lettered task's items get their results too.
    tokio::time::sleep(Duration::from_millis(150)).await;
    assert!(claim_all(q, "w2").await.is_empty(), "dead-lettered");
    assert_eq!(
        q.get_job(&idle.handle.job_id).await.unwrap().state,
        Completed
    );
    assert_eq!(queued("a").await, 0);
    assert_eq!(states().await, by_state(&[(Completed, 1), (Cancelled, 1)]));

    // Another tenant's aborted upload and abandoned upload leave nothing.
    let aborted = new_job(q, of_tenant("b")).await;
    let handles = q.enqueue(&aborted, tasks(&[2])).await.unwrap();
    let abandoned = new_job(q, of_tenant("b")).await;
    q.enqueue(&abandoned, tasks(&[1])).await.unwrap();
    assert_eq!((queued("a").await, queued("b").await), (0, 3));
    q.abort_job(&aborted, &handles).await.unwrap();
    assert_eq!(queued("b").await, 1);
    assert_eq!(
        states().await,
        by_state(&[(Uploading, 1), (Completed, 1), (Cancelled, 1)])
    );

    // Past the retention the finished jobs expire, and with them their
    // count; past the upload timeout the abandoned upload goes.
    tokio::time::sleep(Duration::from_millis(1300)).await;
    assert_eq!(q.reap_abandoned_uploads().await.unwrap(), 1);
    assert_eq!(queued("b").await, 0);
    assert_eq!(states().await, by_state(&[]));
    for job in [&first, &second] {
        assert!(matches!(
            q.get_job(&job.id).await,
            Err(QueueError::JobNotFound(_))
        ));
    }
}

async fn counters_do_not_depend_on_how_many_jobs_exist(b: Backend) {
    use JobState::*;

    let o = b.open(settings()).await;
    let q = &*o.queue;
    let mine = submit_spec(q, of_tenant("mine"), &[2, 1]).await;
    // Newer jobs of another tenant than a scan of the newest 2,000 would
    // reach past: none of them hides this tenant's items.
    for _ in 0..3000 {
        new_job(q, of_tenant("other")).await;
    }
    let theirs = new_job(q, of_tenant("other")).await;
    q.enqueue(&theirs, tasks(&[4])).await.unwrap();
    assert_eq!(q.tenant_queued_items("mine").await.unwrap(), 3);
    assert_eq!(q.tenant_queued_items("other").await.unwrap(), 4);
    assert_eq!(q.tenant_queued_items("nobody").await.unwrap(), 0);
    assert_eq!(
        q.jobs_by_state().await.unwrap(),
        by_state(&[(Uploading, 3001), (Running, 1)])
    );
    let claimed = claim_all(q, "w1").await;
    for task in claimed.iter().filter(|t| t.handle.job_id == mine.id) {
        q.complete(&task.handle, results_for(task)).await.unwrap();
    }
    assert_eq!(q.tenant_queued_items("mine").await.unwrap(), 0);
    assert_eq!(
        q.jobs_by_state().await.unwrap(),
        by_state(&[(Uploading, 3001), (Completed, 1)])
    );
}
