//! API tokens and tenants over real gRPC calls: no token or a wrong one is
//! UNAUTHENTICATED on both APIs (health stays open), another tenant's job
//! is NOT_FOUND exactly like a job that does not exist, idempotency keys
//! are per tenant, and a tenant's quota of queued items refuses an upload
//! with RESOURCE_EXHAUSTED and leaves nothing behind.

mod common;

use common::*;
use dfscan_coordinator::CoordinatorSettings;
use dfscan_proto::inference::grpc_inference_service_client::GrpcInferenceServiceClient;
use dfscan_proto::inference::ModelInferRequest;
use dfscan_proto::v1::scoring_client::ScoringClient;
use dfscan_proto::v1::{
    CancelJobRequest, GetJobRequest, ListJobsRequest, StreamResultsRequest, SubmitJobRequest,
};
use dfscan_queue::{JobQueue, QueueSettings};
use tonic::transport::Channel;
use tonic::{Code, Request};

const TOKEN_A: &str = "token-of-team-a-0123456789";
const TOKEN_B: &str = "token-of-team-b-0123456789";

fn with_token<T>(message: T, token: Option<&str>) -> Request<T> {
    let mut request = Request::new(message);
    if let Some(token) = token {
        request
            .metadata_mut()
            .insert("authorization", format!("Bearer {token}").parse().unwrap());
    }
    request
}

async fn submit_as(
    client: &mut ScoringClient<Channel>,
    token: Option<&str>,
    messages: Vec<SubmitJobRequest>,
) -> Result<dfscan_proto::v1::Job, tonic::Status> {
    let stream = tokio_stream::iter(messages);
    let response = client.submit_job(with_token(stream, token)).await?;
    Ok(response.into_inner().job.unwrap())
}

async fn get_as(
    client: &mut ScoringClient<Channel>,
    token: &str,
    job_id: &str,
) -> Result<dfscan_proto::v1::Job, tonic::Status> {
    let request = GetJobRequest {
        job_id: job_id.into(),
    };
    Ok(client
        .get_job(with_token(request, Some(token)))
        .await?
        .into_inner())
}

async fn listed_as(client: &mut ScoringClient<Channel>, token: &str) -> Vec<String> {
    let request = with_token(ListJobsRequest::default(), Some(token));
    let jobs = client.list_jobs(request).await.unwrap().into_inner().jobs;
    jobs.into_iter().map(|j| j.job_id).collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn tokens_tenants_and_quotas() {
    let dir = tempfile::tempdir().unwrap();
    let tokens = dir.path().join("tokens");
    std::fs::write(&tokens, format!("team-a {TOKEN_A}\nteam-b {TOKEN_B}\n")).unwrap();
    let mut settings = CoordinatorSettings::default();
    settings.auth.tokens_file = Some(tokens);
    settings.auth.tenant_max_queued_items = 10;
    let cluster = start_with(QueueSettings::default(), settings).await;
    let mut client = cluster.client().await;

    // No token, a wrong one: refused before anything happens.
    for token in [None, Some("not-a-token-at-all-000000")] {
        let request = with_token(ListJobsRequest::default(), token);
        let error = client.list_jobs(request).await.unwrap_err();
        assert_eq!(error.code(), Code::Unauthenticated, "{token:?}");
        let error = submit_as(&mut client, token, vec![header("tiny", 0), numbered(0, 2)])
            .await
            .unwrap_err();
        assert_eq!(error.code(), Code::Unauthenticated);
    }
    let mut kserve = GrpcInferenceServiceClient::new(cluster.channel().await);
    let error = kserve
        .model_infer(ModelInferRequest::default())
        .await
        .unwrap_err();
    assert_eq!(error.code(), Code::Unauthenticated);
    // Health stays open for probes.
    let mut health = tonic_health::pb::health_client::HealthClient::new(cluster.channel().await);
    health
        .check(tonic_health::pb::HealthCheckRequest::default())
        .await
        .unwrap();

    // Team a's job is team a's only.
    let job = submit_as(
        &mut client,
        Some(TOKEN_A),
        vec![header("tiny", 0), numbered(0, 5)],
    )
    .await
    .unwrap();
    assert_eq!(
        get_as(&mut client, TOKEN_A, &job.job_id)
            .await
            .unwrap()
            .total,
        5
    );
    let theirs = get_as(&mut client, TOKEN_B, &job.job_id).await.unwrap_err();
    let unknown = "0123456789abcdef0123456789abcdef";
    let missing = get_as(&mut client, TOKEN_B, unknown).await.unwrap_err();
    assert_eq!(theirs.code(), Code::NotFound);
    assert_eq!(
        theirs.message().replace(&job.job_id, "ID"),
        missing.message().replace(unknown, "ID"),
        "another tenant's job looks like no job"
    );
    let cancel = with_token(
        CancelJobRequest {
            job_id: job.job_id.clone(),
        },
        Some(TOKEN_B),
    );
    assert_eq!(
        client.cancel_job(cancel).await.unwrap_err().code(),
        Code::NotFound
    );
    let stream = with_token(
        StreamResultsRequest {
            job_id: job.job_id.clone(),
            after_cursor: 0,
        },
        Some(TOKEN_B),
    );
    assert_eq!(
        client.stream_results(stream).await.unwrap_err().code(),
        Code::NotFound
    );
    assert_eq!(
        listed_as(&mut client, TOKEN_A).await,
        std::slice::from_ref(&job.job_id)
    );
    assert!(listed_as(&mut client, TOKEN_B).await.is_empty());

    // The same idempotency key in two tenants: two jobs.
    let a = submit_as(
        &mut client,
        Some(TOKEN_A),
        vec![keyed_header("k"), numbered(0, 1)],
    )
    .await
    .unwrap();
    let b = submit_as(
        &mut client,
        Some(TOKEN_B),
        vec![keyed_header("k"), numbered(0, 1)],
    )
    .await
    .unwrap();
    assert_ne!(a.job_id, b.job_id);

    // Team a has 6 items queued (no worker runs): 5 more go over its 10.
    let error = submit_as(
        &mut client,
        Some(TOKEN_A),
        vec![header("tiny", 0), numbered(0, 5)],
    )
    .await
    .unwrap_err();
    assert_eq!(error.code(), Code::ResourceExhausted);
    assert!(
        error.message().contains("quota of 10"),
        "{}",
        error.message()
    );
    let queue = cluster.queue.clone();
    eventually(|| async { queue.queue_stats("tiny").await.unwrap().items == 7 }).await;
    assert_eq!(listed_as(&mut client, TOKEN_A).await.len(), 2);
    // Within the quota it goes through, and team b has its own.
    submit_as(
        &mut client,
        Some(TOKEN_A),
        vec![header("tiny", 0), numbered(0, 4)],
    )
    .await
    .unwrap();
    submit_as(
        &mut client,
        Some(TOKEN_B),
        vec![header("tiny", 0), numbered(0, 9)],
    )
    .await
    .unwrap();
    cluster.stop().await;
}
