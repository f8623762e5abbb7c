//! The KServe v2 / Open Inference Protocol endpoint
//! (`inference.GRPCInferenceService`, wire-compatible with Triton's), for
//! moderation systems that already speak it: online scoring of a few
//! images per call through the same queue and workers as jobs.
//!
//! Each model `ListModels` shows is a protocol model of version "1" with
//! one input and three outputs:
//!
//! - `IMAGE`: BYTES, shape [N] or [N, 1], encoded images or videos (a
//!   worker tells them by content);
//! - `PROBABILITIES`: FP32, [N, labels], in the model's label order (a
//!   video's row is its verdict);
//! - `LABEL`: BYTES, the winning label per element, shaped like `IMAGE`;
//! - `FACES`: BYTES, shaped like `IMAGE`, one JSON document per element,
//!   `{"media": "image", "outcome", "face_detector", "faces"}` or a
//!   video's `{"media": "video", "outcome", "face_detector", "duration_s",
//!   "frames", "tracks"}` (and `partial`), as the result records say them.
//!   Sent only to a request that names it in `outputs`: a request naming
//!   none gets `PROBABILITIES` and `LABEL`, as before faces.
//!
//! Request `parameters` set the call's face options, named as `dfscan
//! submit`'s flags (`faces`, `face_scale`, `align`, `face_threshold`,
//! `min_face_size`, `max_faces`, `face_working_size`, `face_aggregation`)
//! and checked as a job's are (INVALID_ARGUMENT); others are the
//! protocol's and ignored. An image that fails fails the call
//! (INVALID_ARGUMENT naming `IMAGE[i]`); one with no face where a face is
//! required (outcome `no_face`) is an answer, not an error: its row of
//! `PROBABILITIES` is NaN, its `LABEL` empty, its `FACES` says `no_face`.

mod faces;
mod infer;
mod metadata;
mod tensors;

use std::sync::Arc;

use dfscan_proto::inference::grpc_inference_service_server::GrpcInferenceService;
use dfscan_proto::inference::*;
use tonic::{Request, Response, Status};

use crate::error::shown;
use crate::service::ModelView;
use crate::ScoringService;

const INPUT: &str = "IMAGE";
const OUTPUT_PROBABILITIES: &str = "PROBABILITIES";
const OUTPUT_LABEL: &str = "LABEL";
const OUTPUT_FACES: &str = "FACES";
/// Each model has this one version.
const VERSION: &str = "1";

/// The Open Inference Protocol service, sharing the Scoring service's
/// queue, settings and model view.
pub struct KserveService {
    scoring: Arc<ScoringService>,
}

impl KserveService {
    pub fn new(scoring: Arc<ScoringService>) -> Self {
        Self { scoring }
    }

    /// The model a call names, if it exists (NOT_FOUND) and a live worker
    /// serves it (UNAVAILABLE), and what the cluster knows of it.
    async fn ready_model(&self, name: &str, version: &str) -> Result<(String, ModelView), Status> {
        let (name, view) = self.model(name, version).await?;
        if view.workers == 0 {
            return Err(Status::unavailable(format!(
                "model {name:?} is not ready: no live worker serves it"
            )));
        }
        Ok((name, view))
    }

    /// The model a call names and what the cluster knows of it.
    async fn model(&self, name: &str, version: &str) -> Result<(String, ModelView), Status> {
        if name.is_empty() {
            return Err(Status::invalid_argument("the request names no model"));
        }
        if !version.is_empty() && version != VERSION {
            return Err(Status::not_found(format!(
                "model {} has no version {}; its only version is {VERSION:?}",
                shown(name),
                shown(version)
            )));
        }
        let mut views = self.scoring.model_views().await?;
        match views.remove(name) {
            Some(view) => Ok((name.to_string(), view)),
            None => {
                let known = Vec::from_iter(views.into_keys()).join(", ");
                Err(Status::not_found(format!(
                    "unknown model {}; known models: {known}",
                    shown(name)
                )))
            }
        }
    }
}

#[tonic::async_trait]
impl GrpcInferenceService for KserveService {
    async fn server_live(
        &self,
        _request: Request<ServerLiveRequest>,
    ) -> Result<Response<ServerLiveResponse>, Status> {
        Ok(Response::new(ServerLiveResponse { live: true }))
    }

    async fn server_ready(
        &self,
        _request: Request<ServerReadyRequest>,
    ) -> Result<Response<ServerReadyResponse>, Status> {
        let ready =
            !self.scoring.shutdown().is_cancelled() && self.scoring.queue().ping().await.is_ok();
        Ok(Response::new(ServerReadyResponse { ready }))
    }

    async fn model_ready(
        &self,
        request: Request<ModelReadyRequest>,
    ) -> Result<Response<ModelReadyResponse>, Status> {
        let request = request.into_inner();
        let (_, view) = self.model(&request.name, &request.version).await?;
        Ok(Response::new(ModelReadyResponse {
            ready: view.workers > 0,
        }))
    }

    async fn server_metadata(
        &self,
        _request: Request<ServerMetadataRequest>,
    ) -> Result<Response<ServerMetadataResponse>, Status> {
        Ok(Response::new(metadata::server()))
    }

    async fn model_metadata(
        &self,
        request: Request<ModelMetadataRequest>,
    ) -> Result<Response<ModelMetadataResponse>, Status> {
        let request = request.into_inner();
        let (name, view) = self.model(&request.name, &request.version).await?;
        Ok(Response::new(metadata::model(name, &view)))
    }

    async fn model_infer(
        &self,
        request: Request<ModelInferRequest>,
    ) -> Result<Response<ModelInferResponse>, Status> {
        let tenant = crate::service::tenant_of(&request);
        let request = request.into_inner();
        let model = request.model_name.clone();
        let started = std::time::Instant::now();
        let answer = infer::model_infer(self, tenant, request).await;
        let code = answer
            .as_ref()
            .map_or_else(|s| s.code(), |_| tonic::Code::Ok);
        self.scoring
            .metrics()
            .infer_done(&model, code, started.elapsed());
        answer.map(Response::new)
    }

    async fn model_config(
        &self,
        request: Request<ModelConfigRequest>,
    ) -> Result<Response<ModelConfigResponse>, Status> {
        let request = request.into_inner();
        let (name, view) = self.model(&request.name, &request.version).await?;
        let max_batch = self.scoring.settings().infer_max_batch;
        Ok(Response::new(ModelConfigResponse {
            config: Some(metadata::config(name, &view, max_batch)),
        }))
    }

    async fn repository_index(
        &self,
        request: Request<RepositoryIndexRequest>,
    ) -> Result<Response<RepositoryIndexResponse>, Status> {
        let request = request.into_inner();
        let views = self.scoring.model_views().await?;
        Ok(Response::new(metadata::index(views, request.ready)))
    }
}
