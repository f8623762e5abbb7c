//! The `dfscan.v1.Scoring` service: a thin, validating layer over a
//! [`JobQueue`]. It keeps no state of its own (jobs, results and workers all
//! live in the queue), so any number of coordinators can serve one queue.
//! Each RPC lives in its own file; this one only dispatches.

mod callback;
mod jobs;
mod models;
mod results;
mod submit;

pub(crate) use models::{model_views, ModelView};
pub(crate) use submit::submit_items;

use std::sync::Arc;

use dfscan_proto::v1::scoring_server::Scoring;
use dfscan_proto::v1::{
    CancelJobRequest, GetJobRequest, Job, ListJobsRequest, ListJobsResponse, ListModelsRequest,
    ListModelsResponse, ListWorkersRequest, ListWorkersResponse, StreamResultsRequest,
    StreamResultsResponse, SubmitJobRequest, SubmitJobResponse,
};
use dfscan_queue::JobQueue;
use tokio_stream::wrappers::ReceiverStream;
use tokio_util::sync::CancellationToken;
use tonic::{Request, Response, Status, Streaming};

use crate::auth::Tenant;
use crate::{CoordinatorError, CoordinatorMetrics, CoordinatorSettings};

/// The Scoring service over a queue. Public so that tests (and embedders)
/// can mount it on any tonic transport; [`crate::serve`] is the usual way in.
pub struct ScoringService {
    queue: Arc<dyn JobQueue>,
    settings: CoordinatorSettings,
    metrics: Arc<CoordinatorMetrics>,
    /// Cancelled when the server shuts down: uploads are aborted and result
    /// streams ended so that graceful shutdown does not wait on clients.
    shutdown: CancellationToken,
}

impl ScoringService {
    /// Checks `settings` (see [`CoordinatorSettings::validate`]).
    pub fn new(
        queue: Arc<dyn JobQueue>,
        settings: CoordinatorSettings,
        metrics: Arc<CoordinatorMetrics>,
        shutdown: CancellationToken,
    ) -> Result<Self, CoordinatorError> {
        settings.validate()?;
        Ok(Self {
            queue,
            settings,
            metrics,
            shutdown,
        })
    }

    pub(crate) fn metrics(&self) -> &CoordinatorMetrics {
        &self.metrics
    }

    pub(crate) fn queue(&self) -> &Arc<dyn JobQueue> {
        &self.queue
    }

    pub(crate) fn settings(&self) -> &CoordinatorSettings {
        &self.settings
    }

    pub(crate) fn shutdown(&self) -> &CancellationToken {
        &self.shutdown
    }
}

/// The tenant the authentication layer found for the call ("" when it is
/// off, or when the service runs without it).
pub(crate) fn tenant_of<T>(request: &Request<T>) -> Tenant {
    request
        .extensions()
        .get::<Tenant>()
        .cloned()
        .unwrap_or_default()
}

/// The status for a request the caller must fix.
fn invalid(message: impl Into<String>) -> Status {
    Status::invalid_argument(message)
}

#[tonic::async_trait]
impl Scoring for ScoringService {
    async fn submit_job(
        &self,
        request: Request<Streaming<SubmitJobRequest>>,
    ) -> Result<Response<SubmitJobResponse>, Status> {
        let failed = request
            .extensions()
            .get::<crate::cancel::BodyFailed>()
            .cloned()
            .unwrap_or_default();
        let tenant = tenant_of(&request);
        submit::submit_job(self, tenant, request.into_inner(), failed)
            .await
            .map(Response::new)
    }

    async fn get_job(&self, request: Request<GetJobRequest>) -> Result<Response<Job>, Status> {
        jobs::get_job(self, &tenant_of(&request), request.into_inner())
            .await
            .map(Response::new)
    }

    async fn list_jobs(
        &self,
        request: Request<ListJobsRequest>,
    ) -> Result<Response<ListJobsResponse>, Status> {
        jobs::list_jobs(self, &tenant_of(&request), request.into_inner())
            .await
            .map(Response::new)
    }

    async fn cancel_job(
        &self,
        request: Request<CancelJobRequest>,
    ) -> Result<Response<Job>, Status> {
        jobs::cancel_job(self, &tenant_of(&request), request.into_inner())
            .await
            .map(Response::new)
    }

    type StreamResultsStream = ReceiverStream<Result<StreamResultsResponse, Status>>;

    async fn stream_results(
        &self,
        request: Request<StreamResultsRequest>,
    ) -> Result<Response<Self::StreamResultsStream>, Status> {
        results::stream_results(self, &tenant_of(&request), request.into_inner())
            .await
            .map(Response::new)
    }

    async fn list_models(
        &self,
        _request: Request<ListModelsRequest>,
    ) -> Result<Response<ListModelsResponse>, Status> {
        models::list_models(self).await.map(Response::new)
    }

    async fn list_workers(
        &self,
        _request: Request<ListWorkersRequest>,
    ) -> Result<Response<ListWorkersResponse>, Status> {
        models::list_workers(self).await.map(Response::new)
    }
}
