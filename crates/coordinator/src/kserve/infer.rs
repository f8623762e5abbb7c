//! ModelInfer: one request is one small job on the model's online queue,
//! which workers drain before bulk tasks, so online and batch traffic
//! share the GPUs; its face parameters become the job's face options. The
//! call waits for the job's results and answers with the probabilities,
//! labels and (when asked) faces in request order. A client that cancels
//! or times out cancels the job; online jobs expire soon after finishing
//! (`coordinator.infer_retention_s`).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use dfscan_core::ItemScore;
use dfscan_proto::inference::model_infer_response::InferOutputTensor;
use dfscan_proto::inference::{ModelInferRequest, ModelInferResponse};
use dfscan_proto::v1::{item::Source, Item, ItemResult};
use dfscan_queue::media::item_score;
use dfscan_queue::{JobQueue, JobSpec, Priority};
use tonic::Status;

use super::faces::{document, face_options};
use super::tensors::{input_images, raw_bytes, raw_fp32};
use super::{KserveService, INPUT, OUTPUT_FACES, OUTPUT_LABEL, OUTPUT_PROBABILITIES, VERSION};
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
    let (model, view) = svc
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
    let faces = face_options(&request.parameters).map_err(invalid)?;
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
        faces,
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
    respond(request, model, view.labels.len(), &outputs, results)
}

fn invalid(message: impl Into<String>) -> Status {
    Status::invalid_argument(message)
}

/// An output of the model.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Output {
    Probabilities,
    Label,
    Faces,
}

impl Output {
    const ALL: [Output; 3] = [Output::Probabilities, Output::Label, Output::Faces];

    fn name(self) -> &'static str {
        match self {
            Output::Probabilities => OUTPUT_PROBABILITIES,
            Output::Label => OUTPUT_LABEL,
            Output::Faces => OUTPUT_FACES,
        }
    }
}

/// The outputs to send, in the order asked (PROBABILITIES and LABEL when
/// none are named: FACES only for a client that knows it). Each at most
/// once: a request naming one output many times would otherwise get a
/// response that many times the size of its results.
fn requested_outputs(request: &ModelInferRequest) -> Result<Vec<Output>, Status> {
    if request.outputs.is_empty() {
        return Ok(vec![Output::Probabilities, Output::Label]);
    }
    let mut outputs = Vec::with_capacity(Output::ALL.len());
    for requested in &request.outputs {
        let Some(output) = Output::ALL.into_iter().find(|o| o.name() == requested.name) else {
            return Err(invalid(format!(
                "unknown output {}; the model's outputs are {OUTPUT_PROBABILITIES:?}, {OUTPUT_LABEL:?} and {OUTPUT_FACES:?}",
                shown(&requested.name)
            )));
        };
        if outputs.contains(&output) {
            return Err(invalid(format!(
                "output {:?} is requested twice",
                output.name()
            )));
        }
        outputs.push(output);
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

/// The response: the tensors asked for, one row per item in request
/// order, an image's or a video's verdict (a worker tells them by
/// content). An item that failed fails the call; one left unscored for
/// want of a face (mode `require`) has NaN probabilities and an empty
/// label, its FACES document saying `no_face`. `labels` is the model's
/// label count as its workers report it, the row width when no item is
/// scored.
fn respond(
    request: ModelInferRequest,
    model: String,
    labels: usize,
    outputs: &[Output],
    results: Vec<ItemResult>,
) -> Result<ModelInferResponse, Status> {
    let mut scores: Vec<ItemScore> = Vec::with_capacity(results.len());
    for result in &results {
        match item_score(result) {
            Some(score) => scores.push(score),
            None => {
                let message = format!("{INPUT}[{}]: {}", result.index, result.error);
                // An image the worker could not read is the caller's to
                // fix; a task the queue gave up on is not.
                return Err(if result.error.starts_with("dead-lettered") {
                    Status::unavailable(message)
                } else {
                    Status::invalid_argument(message)
                });
            }
        }
    }
    let rows = scores.len() as i64;
    let labels = scores
        .iter()
        .find_map(ItemScore::prediction)
        .map_or(labels, |p| p.scores.len());
    let label_shape = match request.inputs[0].shape.len() {
        2 => vec![rows, 1],
        _ => vec![rows],
    };
    let mut tensors = Vec::new();
    let mut raw = Vec::new();
    for &output in outputs {
        let name = output.name();
        match output {
            Output::Probabilities => {
                let mut probabilities = Vec::with_capacity(scores.len() * labels);
                for score in &scores {
                    match score.prediction() {
                        Some(p) if p.scores.len() == labels => {
                            probabilities.extend(p.scores.iter().map(|(_, s)| s));
                        }
                        Some(_) => {
                            return Err(Status::internal(
                                "workers of this model disagree on its labels",
                            ))
                        }
                        None => probabilities.extend(std::iter::repeat_n(f32::NAN, labels)),
                    }
                }
                tensors.push(tensor(name, "FP32", vec![rows, labels as i64]));
                raw.push(raw_fp32(&probabilities));
            }
            Output::Label => {
                let names: Vec<&str> = scores
                    .iter()
                    .map(|s| s.prediction().map_or("", |p| p.label.as_str()))
                    .collect();
                tensors.push(tensor(name, "BYTES", label_shape.clone()));
                raw.push(raw_bytes(&names));
            }
            Output::Faces => {
                let documents: Vec<String> = scores
                    .iter()
                    .zip(&results)
                    .map(|(score, result)| document(score, result.face_detector.as_ref()))
                    .collect();
                let documents: Vec<&str> = documents.iter().map(String::as_str).collect();
                tensors.push(tensor(name, "BYTES", label_shape.clone()));
                raw.push(raw_bytes(&documents));
            }
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

#[cfg(test)]
mod tests {
    use dfscan_core::video::{FrameScore, TrackAggregation, VideoScore};
    use dfscan_core::{FaceAggregation, FaceScore, ImageScore, Outcome, Prediction};
    use dfscan_proto::inference::model_infer_request::InferInputTensor;
    use dfscan_proto::v1::ModelIdentity;
    use dfscan_queue::media::fill_result;

    use super::*;

    fn prediction(fake: f32) -> Prediction {
        let labels = ["Real".to_string(), "Fake".to_string()];
        Prediction::from_probabilities(&labels, &[1.0 - fake, fake], 1)
    }

    fn result(index: u64, score: ItemScore) -> ItemResult {
        let mut result = ItemResult {
            index,
            ..Default::default()
        };
        let detector = ModelIdentity {
            name: "centerface".into(),
            sha256: "ab".into(),
        };
        fill_result(&mut result, score, Some(&detector));
        result
    }

    fn request() -> ModelInferRequest {
        ModelInferRequest {
            inputs: vec![InferInputTensor {
                shape: vec![2],
                ..Default::default()
            }],
            ..Default::default()
        }
    }

    fn f32s(raw: &[u8]) -> Vec<f32> {
        raw.chunks_exact(4)
            .map(|c| f32::from_le_bytes(c.try_into().unwrap()))
            .collect()
    }

    fn strings(raw: &bytes::Bytes, count: usize) -> Vec<String> {
        super::super::tensors::split_raw_bytes(raw, count)
            .unwrap()
            .iter()
            .map(|s| String::from_utf8(s.to_vec()).unwrap())
            .collect()
    }

    #[test]
    fn an_image_without_the_face_it_required_is_a_row_of_nan() {
        let face = FaceScore {
            bbox: [1.0, 2.0, 30.0, 40.0],
            detector_score: 0.875,
            landmarks: [[5.0, 6.0]; 5],
            crop: [-3, -4, 35, 34],
            prediction: prediction(0.75),
        };
        let results = vec![
            result(
                0,
                ItemScore::Image(ImageScore::from_faces(
                    vec![face],
                    None,
                    FaceAggregation::Max,
                    1,
                )),
            ),
            result(
                1,
                ItemScore::Image(ImageScore::from_faces(
                    Vec::new(),
                    None,
                    FaceAggregation::Max,
                    1,
                )),
            ),
        ];
        let outputs = [Output::Faces, Output::Probabilities, Output::Label];
        let response = respond(request(), "m".into(), 2, &outputs, results.clone()).unwrap();
        let names: Vec<&str> = response.outputs.iter().map(|o| o.name.as_str()).collect();
        assert_eq!(names, ["FACES", "PROBABILITIES", "LABEL"]);
        let raw = &response.raw_output_contents;
        let probabilities = f32s(&raw[1]);
        assert_eq!(probabilities[..2], [0.25, 0.75]);
        assert!(
            probabilities[2..].iter().all(|p| p.is_nan()),
            "{probabilities:?}"
        );
        assert_eq!(strings(&raw[2], 2), ["Fake", ""]);
        let documents = strings(&raw[0], 2);
        assert!(documents[0].starts_with(r#"{"media":"image","outcome":"scored","face_detector":{"name":"centerface","sha256":"ab"},"faces":[{"box":[1.0,2.0,30.0,40.0]"#), "{}", documents[0]);
        assert!(
            documents[1].starts_with(r#"{"media":"image","outcome":"no_face""#),
            "{}",
            documents[1]
        );

        // No image scored: the row width is the model's label count.
        let response = respond(
            request(),
            "m".into(),
            2,
            &outputs,
            vec![results[1].clone(); 2],
        )
        .unwrap();
        assert_eq!(response.outputs[1].shape, [2, 2]);
        assert_eq!(f32s(&response.raw_output_contents[1]).len(), 4);
    }

    #[test]
    fn an_image_that_failed_fails_the_call() {
        let scored = result(0, ItemScore::Image(ImageScore::whole(prediction(0.5))));
        let failed = ItemResult {
            index: 1,
            error: "cannot decode: not an image".into(),
            outcome: "error".into(),
            ..Default::default()
        };
        let error = respond(
            request(),
            "m".into(),
            2,
            &[Output::Probabilities],
            vec![scored, failed],
        )
        .unwrap_err();
        assert_eq!(error.code(), tonic::Code::InvalidArgument);
        assert_eq!(error.message(), "IMAGE[1]: cannot decode: not an image");
    }

    #[test]
    fn a_videos_row_is_its_verdict_and_its_faces_its_timeline() {
        let frames = [(0.5, 0.25), (1.5, 0.75)]
            .map(|(t, fake)| FrameScore {
                t,
                prediction: Some(prediction(fake)),
                faces: None,
                outcome: Outcome::Scored,
            })
            .to_vec();
        let video = VideoScore::from_frames(2.0, frames, TrackAggregation::Max, 1, None);
        let results = vec![
            result(0, ItemScore::Video(video)),
            result(1, ItemScore::Image(ImageScore::whole(prediction(0.5)))),
        ];
        let outputs = [Output::Probabilities, Output::Label, Output::Faces];
        let response = respond(request(), "m".into(), 2, &outputs, results).unwrap();
        let raw = &response.raw_output_contents;
        // The most fake frame (faces off, aggregation max) is the video's.
        assert_eq!(f32s(&raw[0]), [0.25, 0.75, 0.5, 0.5]);
        assert_eq!(strings(&raw[1], 2), ["Fake", "Real"]);
        let documents = strings(&raw[2], 2);
        let video: serde_json::Value = serde_json::from_str(&documents[0]).unwrap();
        assert_eq!(video["media"], "video", "{video}");
        assert_eq!(video["duration_s"], 2.0);
        assert_eq!(video["frames"][1]["t"], 1.5);
        assert_eq!(video["frames"][1]["fake_score"], 0.75);
        assert_eq!(video["tracks"], serde_json::json!([]));
        assert!(
            documents[1].starts_with(r#"{"media":"image""#),
            "{}",
            documents[1]
        );
    }
}
