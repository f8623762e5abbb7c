//! The coordinator end to end over gRPC on loopback, with a `MemoryQueue`
//! behind it and a worker simulated through the queue API.

mod common;

use common::*;
use dfscan_coordinator::CoordinatorSettings;
use dfscan_proto::v1::item::Source;
use dfscan_proto::v1::scoring_client::ScoringClient;
use dfscan_proto::v1::{
    CancelJobRequest, GetJobRequest, Item, ItemResult, JobState, ListJobsRequest,
    ListModelsRequest, ListWorkersRequest, ModelIdentity, StreamResultsRequest, SubmitJobRequest,
    SubmitJobResponse, Worker,
};
use dfscan_queue::{JobQueue, QueueSettings};
use tonic::transport::Channel;
use tonic::{Code, Status};

async fn submit(
    client: &mut ScoringClient<Channel>,
    messages: Vec<SubmitJobRequest>,
) -> Result<SubmitJobResponse, Status> {
    client
        .submit_job(tokio_stream::iter(messages))
        .await
        .map(tonic::Response::into_inner)
}

/// Every result of `job_id` after `after`, until the stream ends.
async fn read_results(
    client: &mut ScoringClient<Channel>,
    job_id: &str,
    after: u64,
) -> Vec<ItemResult> {
    let request = StreamResultsRequest {
        job_id: job_id.into(),
        after_cursor: after,
    };
    let mut stream = client.stream_results(request).await.unwrap().into_inner();
    let mut results = Vec::new();
    while let Some(page) = tokio::time::timeout(WAIT, stream.message())
        .await
        .expect("result stream stalled")
        .unwrap()
    {
        assert!(!page.results.is_empty(), "empty page sent");
        results.extend(page.results);
    }
    results
}

async fn job_count(client: &mut ScoringClient<Channel>) -> usize {
    client
        .list_jobs(ListJobsRequest::default())
        .await
        .unwrap()
        .into_inner()
        .jobs
        .len()
}

#[tokio::test(flavor = "multi_thread")]
async fn every_result_streams_exactly_once_and_resumes_from_a_cursor() {
    let cluster = start().await;
    let mut client = cluster.client().await;
    let response = submit(
        &mut client,
        vec![header("tiny", 8), numbered(0, 30), numbered(30, 70)],
    )
    .await
    .unwrap();
    assert!(!response.deduplicated);
    let job = response.job.unwrap();
    assert_eq!((job.total, job.state), (100, JobState::Running as i32));
    assert_eq!(job.model, "tiny");

    // Read while the worker scores: the stream waits for results.
    let mut reader = cluster.client().await;
    let job_id = job.job_id.clone();
    let reading = tokio::spawn(async move { read_results(&mut reader, &job_id, 0).await });
    let tasks = score_all(&cluster.queue, "tiny").await;
    let results = reading.await.unwrap();

    // Tasks fill across message boundaries: 12 of 8, then the last 4.
    let cut: Vec<(u64, u64)> = tasks.iter().map(|t| (t.first_index, t.count)).collect();
    let mut expected: Vec<(u64, u64)> = (0..12).map(|k| (8 * k, 8)).collect();
    expected.push((96, 4));
    assert_eq!(cut, expected);

    assert_eq!(results.len(), 100);
    let cursors: Vec<u64> = results.iter().map(|r| r.cursor).collect();
    assert_eq!(cursors, (1..=100).collect::<Vec<_>>());
    let mut indexes: Vec<u64> = results.iter().map(|r| r.index).collect();
    indexes.sort_unstable();
    assert_eq!(indexes, (0..100).collect::<Vec<_>>());
    for result in &results {
        assert_eq!(result.id, format!("item-{}", result.index));
    }

    let done = client
        .get_job(GetJobRequest {
            job_id: job.job_id.clone(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(done.state, JobState::Completed as i32);
    assert!(done.finished);
    assert_eq!((done.completed, done.failed), (100, 0));

    let rest = read_results(&mut client, &job.job_id, 40).await;
    assert_eq!(rest, results[40..]);
    assert!(read_results(&mut client, &job.job_id, 100).await.is_empty());
    cluster.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn tasks_are_cut_early_at_max_task_bytes() {
    let settings = CoordinatorSettings {
        // Each test item is 21 bytes (id + data): two fill a task.
        max_task_bytes: 40,
        ..without_auth()
    };
    let cluster = start_with(QueueSettings::default(), settings).await;
    let mut client = cluster.client().await;
    submit(&mut client, vec![header("tiny", 0), numbered(0, 5)])
        .await
        .unwrap();
    let tasks = score_all(&cluster.queue, "tiny").await;
    let counts: Vec<u64> = tasks.iter().map(|t| t.count).collect();
    assert_eq!(counts, [2, 2, 1]);
    cluster.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn bad_uploads_are_refused_and_leave_nothing_behind() {
    let cluster = start().await;
    let mut client = cluster.client().await;
    let no_source = Item {
        id: "x".into(),
        source: None,
        ..Default::default()
    };
    let empty_uri = Item {
        id: "x".into(),
        source: Some(Source::Uri(String::new())),
        ..Default::default()
    };
    let cases = [
        (vec![], "no JobHeader"),
        (vec![numbered(0, 2)], "first message must be a JobHeader"),
        (
            vec![header("huge", 0)],
            "unknown model \"huge\"; known models: tiny",
        ),
        (
            vec![header("tiny", 0), numbered(0, 3), batch(vec![item("")])],
            "item 3: id is empty",
        ),
        (
            vec![header("tiny", 2), numbered(0, 5), batch(vec![no_source])],
            "item 5: no image",
        ),
        (
            vec![header("tiny", 0), batch(vec![empty_uri])],
            "item 0: uri is empty",
        ),
        (
            vec![header("tiny", 0), numbered(0, 1), header("tiny", 0)],
            "a second JobHeader",
        ),
    ];
    for (messages, message) in cases {
        let status = submit(&mut client, messages).await.unwrap_err();
        assert_eq!(status.code(), Code::InvalidArgument, "{status:?}");
        assert!(status.message().contains(message), "{status:?}");
    }
    assert_eq!(job_count(&mut client).await, 0);
    assert_eq!(cluster.queue.queue_stats("tiny").await.unwrap().items, 0);
    cluster.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn job_ids_are_checked_and_unknown_jobs_not_found() {
    let cluster = start().await;
    let mut client = cluster.client().await;
    let unknown = "0123456789abcdef0123456789abcdef".to_string();
    let code = client
        .get_job(GetJobRequest {
            job_id: unknown.clone(),
        })
        .await
        .unwrap_err()
        .code();
    assert_eq!(code, Code::NotFound);
    let code = client
        .cancel_job(CancelJobRequest {
            job_id: unknown.clone(),
        })
        .await
        .unwrap_err()
        .code();
    assert_eq!(code, Code::NotFound);
    let stream = client
        .stream_results(StreamResultsRequest {
            job_id: unknown,
            after_cursor: 0,
        })
        .await;
    assert_eq!(stream.unwrap_err().code(), Code::NotFound);
    let code = client
        .get_job(GetJobRequest {
            job_id: "../etc/passwd".into(),
        })
        .await
        .unwrap_err()
        .code();
    assert_eq!(code, Code::InvalidArgument);
    let code = client
        .list_jobs(ListJobsRequest {
            limit: 0,
            state: 99,
        })
        .await
        .unwrap_err()
        .code();
    assert_eq!(code, Code::InvalidArgument);
    cluster.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn cancelling_twice_is_a_failed_precondition() {
    let cluster = start().await;
    let mut client = cluster.client().await;
    let job = submit(&mut client, vec![header("tiny", 0), numbered(0, 4)])
        .await
        .unwrap()
        .job
        .unwrap();
    let cancel = CancelJobRequest {
        job_id: job.job_id.clone(),
    };
    let cancelled = client
        .cancel_job(cancel.clone())
        .await
        .unwrap()
        .into_inner();
    assert_eq!(cancelled.state, JobState::Cancelled as i32);
    let status = client.cancel_job(cancel).await.unwrap_err();
    assert_eq!(status.code(), Code::FailedPrecondition, "{status:?}");

    let listed = client
        .list_jobs(ListJobsRequest {
            limit: 0,
            state: JobState::Cancelled as i32,
        })
        .await
        .unwrap()
        .into_inner()
        .jobs;
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].job_id, job.job_id);
    cluster.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_full_queue_refuses_the_upload_and_removes_what_it_queued() {
    let queue = QueueSettings {
        max_queued_items: 10,
        ..Default::default()
    };
    let cluster = start_with(queue, without_auth()).await;
    let mut client = cluster.client().await;
    // The first message queues 8 items; the second would make 16.
    let messages = vec![header("tiny", 4), numbered(0, 8), numbered(8, 8)];
    let status = submit(&mut client, messages).await.unwrap_err();
    assert_eq!(status.code(), Code::ResourceExhausted, "{status:?}");
    assert!(status.message().contains("full"), "{status:?}");
    assert_eq!(job_count(&mut client).await, 0);
    assert_eq!(
        cluster.queue.queue_stats("tiny").await.unwrap(),
        Default::default()
    );
    cluster.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_client_that_goes_away_mid_upload_leaves_nothing_behind() {
    let cluster = start().await;
    let (uploader, connection) = cluster.severable_client().await;
    let (_tx, upload) = upload_in_progress(&cluster, uploader, 4, 16, 16).await;

    connection.abort();
    assert!(upload.await.unwrap().is_err());
    let mut client = cluster.client().await;
    nothing_left(&cluster).await;
    assert_eq!(job_count(&mut client).await, 0);
    cluster.stop().await;
}

/// A client that cancels its call (RST_STREAM CANCEL, the connection
/// stays up) must not have its partial upload taken for a complete one.
#[tokio::test(flavor = "multi_thread")]
async fn a_client_that_cancels_mid_upload_leaves_nothing_behind() {
    let cluster = start().await;
    let uploader = cluster.client().await;
    let (tx, upload) = upload_in_progress(&cluster, uploader, 4, 16, 16).await;

    upload.abort();
    assert!(upload.await.unwrap_err().is_cancelled());
    nothing_left(&cluster).await;
    drop(tx);
    cluster.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_repeated_idempotency_key_returns_the_first_job() {
    let cluster = start().await;
    let mut client = cluster.client().await;
    let first = submit(&mut client, vec![keyed_header("k-1"), numbered(0, 5)])
        .await
        .unwrap();
    let again = submit(&mut client, vec![keyed_header("k-1"), numbered(0, 5)])
        .await
        .unwrap();
    assert!(!first.deduplicated);
    assert!(again.deduplicated);
    let (first, again) = (first.job.unwrap(), again.job.unwrap());
    assert_eq!(first.job_id, again.job_id);
    assert_eq!(again.idempotency_key, "k-1");
    assert_eq!(job_count(&mut client).await, 1);
    assert_eq!(cluster.queue.queue_stats("tiny").await.unwrap().items, 5);
    cluster.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn an_oversized_message_gets_a_status_and_the_connection_lives_on() {
    let settings = CoordinatorSettings {
        max_message_bytes: 64 << 10,
        ..without_auth()
    };
    let cluster = start_with(QueueSettings::default(), settings).await;
    let mut client = cluster.client().await;
    let big = Item {
        id: "big".into(),
        source: Some(Source::Data(vec![0u8; 128 << 10].into())),
        ..Default::default()
    };
    let status = submit(&mut client, vec![header("tiny", 0), batch(vec![big])])
        .await
        .unwrap_err();
    // gRPC's convention for a message over the receive limit (tonic itself
    // says OUT_OF_RANGE; the coordinator translates).
    assert_eq!(status.code(), Code::ResourceExhausted, "{status:?}");
    assert!(status.message().contains("too large"), "{status:?}");

    // Same connection: the refused upload left no job, and the next works.
    assert_eq!(job_count(&mut client).await, 0);
    submit(&mut client, vec![header("tiny", 0), numbered(0, 2)])
        .await
        .unwrap();
    cluster.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn models_come_from_settings_and_live_workers() {
    let cluster = start().await;
    let mut client = cluster.client().await;
    // One known model: a header naming none gets it.
    let job = submit(&mut client, vec![header("", 0), numbered(0, 3)])
        .await
        .unwrap()
        .job
        .unwrap();
    assert_eq!(job.model, "tiny");

    let identity = ModelIdentity {
        name: "big".into(),
        sha256: "ab".repeat(32),
    };
    let worker = Worker {
        worker_id: "w-1".into(),
        model: "big".into(),
        identity: Some(identity.clone()),
        host: "gpu-1".into(),
        ..Default::default()
    };
    cluster.queue.heartbeat(&worker).await.unwrap();

    let models = client
        .list_models(ListModelsRequest {})
        .await
        .unwrap()
        .into_inner()
        .models;
    let summary: Vec<(&str, u32, u64)> = models
        .iter()
        .map(|m| (m.name.as_str(), m.workers, m.queued_items))
        .collect();
    assert_eq!(summary, [("big", 1, 0), ("tiny", 0, 3)]);
    assert_eq!(models[0].identities, [identity]);

    let workers = client
        .list_workers(ListWorkersRequest {})
        .await
        .unwrap()
        .into_inner()
        .workers;
    assert_eq!(workers, [worker]);

    // Served by a live worker: accepted.
    let job = submit(&mut client, vec![header("big", 0), numbered(0, 1)])
        .await
        .unwrap()
        .job
        .unwrap();
    assert_eq!(job.model, "big");
    // Two known models and no default: the header must name one.
    let status = submit(&mut client, vec![header("", 0)]).await.unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument);
    assert!(status.message().contains("big, tiny"), "{status:?}");
    cluster.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn health_and_reflection_are_served() {
    use tonic_health::pb::health_check_response::ServingStatus;
    use tonic_health::pb::health_client::HealthClient;
    use tonic_health::pb::HealthCheckRequest;
    use tonic_reflection::pb::v1::server_reflection_client::ServerReflectionClient;
    use tonic_reflection::pb::v1::server_reflection_request::MessageRequest;
    use tonic_reflection::pb::v1::server_reflection_response::MessageResponse;
    use tonic_reflection::pb::v1::ServerReflectionRequest;

    let cluster = start().await;
    let channel = cluster.channel().await;
    let mut health = HealthClient::new(channel.clone());
    for service in ["", "dfscan.v1.Scoring"] {
        let status = health
            .check(HealthCheckRequest {
                service: service.into(),
            })
            .await
            .unwrap()
            .into_inner()
            .status;
        assert_eq!(status, ServingStatus::Serving as i32, "{service:?}");
    }

    let mut reflection = ServerReflectionClient::new(channel);
    let request = ServerReflectionRequest {
        host: String::new(),
        message_request: Some(MessageRequest::ListServices(String::new())),
    };
    let mut responses = reflection
        .server_reflection_info(tokio_stream::iter([request]))
        .await
        .unwrap()
        .into_inner();
    let response = responses.message().await.unwrap().unwrap();
    let Some(MessageResponse::ListServicesResponse(list)) = response.message_response else {
        panic!("not a service list: {response:?}");
    };
    let services: Vec<&str> = list.service.iter().map(|s| s.name.as_str()).collect();
    for expected in ["dfscan.v1.Scoring", "grpc.health.v1.Health"] {
        assert!(services.contains(&expected), "{services:?}");
    }
    cluster.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn shutdown_reports_not_serving_and_ends_long_calls() {
    use tonic_health::pb::health_check_response::ServingStatus;
    use tonic_health::pb::health_client::HealthClient;
    use tonic_health::pb::HealthCheckRequest;

    let cluster = start().await;
    let mut client = cluster.client().await;
    let mut health = HealthClient::new(cluster.channel().await);
    let mut watch = health
        .watch(HealthCheckRequest {
            service: String::new(),
        })
        .await
        .unwrap()
        .into_inner();
    let first = watch.message().await.unwrap().unwrap();
    assert_eq!(first.status, ServingStatus::Serving as i32);

    // A job nobody scores: its result stream waits.
    let job = submit(&mut client, vec![header("tiny", 0), numbered(0, 2)])
        .await
        .unwrap()
        .job
        .unwrap();
    let mut results = client
        .stream_results(StreamResultsRequest {
            job_id: job.job_id,
            after_cursor: 0,
        })
        .await
        .unwrap()
        .into_inner();
    // An upload in progress.
    let uploader = cluster.client().await;
    let (tx, upload) = upload_in_progress(&cluster, uploader, 0, 40, 2 + 32).await;
    let queue = cluster.queue.clone();

    cluster.shutdown.cancel();
    let next = watch.message().await.unwrap().unwrap();
    assert_eq!(next.status, ServingStatus::NotServing as i32);
    let status = results.message().await.unwrap_err();
    assert_eq!(status.code(), Code::Unavailable, "{status:?}");
    let status = upload.await.unwrap().unwrap_err();
    assert_eq!(status.code(), Code::Unavailable, "{status:?}");
    // The interrupted upload was removed; only the first job remains.
    assert_eq!(queue.queue_stats("tiny").await.unwrap().items, 2);
    assert_eq!(queue.list_jobs(Default::default()).await.unwrap().len(), 1);
    drop(tx);
    cluster.stop().await;
}

/// A connection over its limit of calls in progress gets RESOURCE_EXHAUSTED at
/// once (load shedding) and keeps the calls it has; another connection is
/// not held up by it.
#[tokio::test(flavor = "multi_thread")]
async fn calls_over_a_connections_limit_are_shed() {
    let mut settings = without_auth();
    settings.limits.max_calls_per_connection = 1;
    let cluster = start_with(QueueSettings::default(), settings).await;
    let client = cluster.client().await;
    // An upload in progress holds the connection's one call (tasks of one
    // item: they are queued as they arrive).
    let (tx, upload) = upload_in_progress(&cluster, client.clone(), 1, 3, 3).await;

    let list = || ListJobsRequest::default();
    let shed = client.clone().list_jobs(list()).await.unwrap_err();
    assert_eq!(shed.code(), Code::ResourceExhausted, "{shed:?}");
    let mut other = cluster.client().await;
    assert!(other.list_jobs(list()).await.is_ok());

    drop(tx);
    let job = upload.await.unwrap().unwrap().into_inner().job.unwrap();
    assert_eq!(job.total, 3);
    // The call is over: the connection serves again.
    assert!(client.clone().list_jobs(list()).await.is_ok());
    cluster.stop().await;
}
