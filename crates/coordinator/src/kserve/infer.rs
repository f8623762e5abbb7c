//! ModelInfer: one request is one small job on the model's online queue,
//! which workers drain before bulk tasks, so online and batch traffic
//! share the GPUs. The call waits for the job's results and answers with
//! the probabilities and labels in request order. A client that cancels or
//! times out cancels the job; online jobs expire soon after finishing
//! (`coordinator.infer_retention_s`).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use dfscan_proto::inference::model_infer_response::InferOutputTensor;
use dfscan_proto::inference::{ModelInferRequest, ModelInferResponse};
use dfscan_proto::v1::{item::Source, Item, ItemResult};
use dfscan_queue::{JobQueue, JobSpec, Priority};
use tonic::Status;

use super::tensors::{input_images, raw_bytes, raw_fp32};
use super::{KserveService, INPUT, OUTPUT_LABEL, OUTPUT_PROBABILITIES, VERSION};
use crate::auth::Tenant;
use crate::error::{shown, status};
use crate::service::submit_items;

/// Longest one results read waits before the loop looks again.
const READ_WAIT: Duration = Duration::from_secs(1);
/// The request id is kept with the job and sent back with the response:
/// as short as an idempotency key.
const MAX_REQUEST_ID_BYTES: usize = 256;

pub(super) async fn model_infer(
    svc: &KserveService,
    tenant: Tenant,
    request: ModelInferRequest,
) -> Result<ModelInferResponse, Status> {
    let model = svc
        .ready_model(&request.model_name, &request.model_version)
        .await?;
    let settings = svc.scoring.settings();
    if request.id.len() > MAX_REQUEST_ID_BYTES {
        return Err(invalid(format!(
            "id is {} bytes; the limit is {MAX_REQUEST_ID_BYTES}",
            request.id.len()
        )));
    }
    let outputs = requested_outputs(&request)?;
    let [input] = &request.inputs[..] else {
        return Err(invalid(format!(
            "expected one input, {INPUT:?}; the request has {}",
            request.inputs.len()
        )));
    };
    if input.name != INPUT {
        return Err(invalid(format!(
            "unknown input {}; the model's input is {INPUT:?}",
            shown(&input.name)
        )));
    }
    let raw = match &request.raw_input_contents[..] {
        [] => None,
        [raw] => Some(raw),
        more => {
            return Err(invalid(format!(
                "{} raw_input_contents for one input",
                more.len()
            )))
        }
    };
    let images = input_images(input, raw, settings.infer_max_batch).map_err(invalid)?;
    let items: Vec<Item> = images
        .into_iter()
        .enumerate()
        .map(|(i, data)| Item {
            id: i.to_string(),
            source: Some(Source::Data(data)),
            ..Default::default()
        })
        .collect();
    let count = items.len();
    let mut metadata = BTreeMap::from([("protocol".to_string(), "kserve-v2".to_string())]);
    if !request.id.is_empty() {
        metadata.insert("request_id".into(), request.id.clone());
    }
    let spec = JobSpec {
        model: model.clone(),
        metadata,
        idempotency_key: None,
        priority: Priority::Online,
        retention_s: Some(settings.infer_retention_s),
        tenant: tenant.0,
        ..Default::default()
    };
    let queue = svc.scoring.queue();
    let job = submit_items(svc.scoring.as_ref(), spec, items).await?;
    let guard = CancelOnDrop::new(Arc::clone(queue), job.id.clone());
    let timeout = Duration::from_millis(settings.infer_timeout_ms);
    let results = tokio::select! {
        biased;
        () = svc.scoring.shutdown().cancelled() => {
            return Err(Status::unavailable("the coordinator is shutting down: retry"));
        }
        read = tokio::time::timeout(timeout, all_results(queue.as_ref(), &job.id, count)) => {
            read.map_err(|_| Status::deadline_exceeded(format!(
                "no result within {} ms (coordinator.infer_timeout_ms): are the workers of {model} overloaded?",
                settings.infer_timeout_ms
            )))??
        }
    };
    guard.disarm();
    respond(request, model, &outputs, results)
}

fn invalid(message: impl Into<String>) -> Status {
    Status::invalid_argument(message)
}

/// The outputs to send, in the order asked (both when none are named).
/// Each at most once: a request naming one output many times would
/// otherwise get a response that many times the size of its results.
fn requested_outputs(request: &ModelInferRequest) -> Result<Vec<&'static str>, Status> {
    if request.outputs.is_empty() {
        return Ok(vec![OUTPUT_PROBABILITIES, OUTPUT_LABEL]);
    }
    let mut outputs = Vec::with_capacity(2);
    for output in &request.outputs {
        let name = match output.name.as_str() {
            OUTPUT_PROBABILITIES => OUTPUT_PROBABILITIES,
            OUTPUT_LABEL => OUTPUT_LABEL,
            other => {
                return Err(invalid(format!(
                "unknown output {}; the model's outputs are {OUTPUT_PROBABILITIES:?} and {OUTPUT_LABEL:?}",
                shown(other)
            )))
            }
        };
        if outputs.contains(&name) {
            return Err(invalid(format!("output {name:?} is requested twice")));
        }
        outputs.push(name);
    }
    Ok(outputs)
}

/// Every result of the job, in upload order.
async fn all_results(
    queue: &dyn JobQueue,
    job_id: &str,
    count: usize,
) -> Result<Vec<ItemResult>, Status> {
    let mut results = Vec::with_capacity(count);
    let mut after = 0;
    loop {
        let page = queue
            .read_results(job_id, after, count, READ_WAIT)
            .await
            .map_err(status)?;
        if let Some(last) = page.results.last() {
            after = last.cursor;
        }
        results.extend(page.results);
        if page.finished {
            break;
        }
    }
    results.sort_by_key(|r| r.index);
    Ok(results)
}

fn respond(
    request: ModelInferRequest,
    model: String,
    outputs: &[&str],
    results: Vec<ItemResult>,
) -> Result<ModelInferResponse, Status> {
    if let Some(failed) = results.iter().find(|r| !r.error.is_empty()) {
        let message = format!("{INPUT}[{}]: {}", failed.index, failed.error);
        // An image the worker could not read is the caller's to fix; a
        // task the queue gave up on is not.
        return Err(if failed.error.starts_with("dead-lettered") {
            Status::unavailable(message)
        } else {
            Status::invalid_argument(message)
        });
    }
    let rows = results.len() as i64;
    let labels = results.first().map_or(0, |r| r.scores.len());
    let label_shape = match request.inputs[0].shape.len() {
        2 => vec![rows, 1],
        _ => vec![rows],
    };
    let mut tensors = Vec::new();
    let mut raw = Vec::new();
    for &name in outputs {
        if name == OUTPUT_PROBABILITIES {
            let mut probabilities = Vec::with_capacity(results.len() * labels);
            for result in &results {
                if result.scores.len() != labels {
                    return Err(Status::internal(
                        "workers of this model disagree on its labels",
                    ));
                }
                probabilities.extend(result.scores.iter().map(|s| s.score));
            }
            tensors.push(tensor(name, "FP32", vec![rows, labels as i64]));
            raw.push(raw_fp32(&probabilities));
        } else {
            let names: Vec<&str> = results.iter().map(|r| r.label.as_str()).collect();
            tensors.push(tensor(name, "BYTES", label_shape.clone()));
            raw.push(raw_bytes(&names));
        }
    }
    Ok(ModelInferResponse {
        model_name: model,
        model_version: VERSION.into(),
        id: request.id,
        outputs: tensors,
        raw_output_contents: raw,
        ..Default::default()
    })
}

fn tensor(name: &str, datatype: &str, shape: Vec<i64>) -> InferOutputTensor {
    InferOutputTensor {
        name: name.into(),
        datatype: datatype.into(),
        shape,
        ..Default::default()
    }
}

/// Cancels the job when the call ends before its results are in (the
/// client cancelled or its deadline passed, and tonic dropped the call):
/// workers then skip what is left of it.
struct CancelOnDrop {
    queue: Arc<dyn JobQueue>,
    job_id: Option<String>,
}

impl CancelOnDrop {
    fn new(queue: Arc<dyn JobQueue>, job_id: String) -> Self {
        Self {
            queue,
            job_id: Some(job_id),
        }
    }

    fn disarm(mut self) {
        self.job_id = None;
    }
}

impl Drop for CancelOnDrop {
    fn drop(&mut self) {
        if let Some(job_id) = self.job_id.take() {
            let queue = Arc::clone(&self.queue);
            tokio::spawn(async move {
                // WrongState: it finished meanwhile; nothing to do.
                if let Err(error) = queue.cancel_job(&job_id).await {
                    tracing::debug!(job = %job_id, %error, "cancelling an abandoned online job");
                }
            });
        }
    }
}
