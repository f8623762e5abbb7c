//! Job callbacks: every coordinator runs this loop, which finds the jobs
//! that still owe a callback, takes a lease on each (so that one of several
//! coordinators delivers it, and another takes over if it dies), POSTs the
//! job's flagged items as their results arrive and its summary once it
//! finishes, and records its progress in the queue. Delivery runs beside
//! scoring and never holds it up; it is at least once (receivers dedupe on
//! `X-Dfscan-Delivery`).

mod http;
mod target;

pub(crate) use target::{AllowedHost, Target};

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use dfscan_core::ItemScore;
use dfscan_proto::v1::ItemResult;
use dfscan_queue::{JobQueue, JobRecord, QueueError};
use serde_json::json;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::{CoordinatorMetrics, CoordinatorSettings};

/// How often pending callbacks are looked for, and unfinished jobs looked at.
const POLL: Duration = Duration::from_secs(1);
/// A lease outlives a few polls, so a live holder always renews it in time.
const LEASE: Duration = Duration::from_secs(30);
/// Jobs looked at per poll.
const BATCH: usize = 64;
/// Results read per page for item callbacks.
const PAGE: usize = 256;

/// What the delivery loop shares with each delivery it starts.
struct CallbackCourier {
    queue: Arc<dyn JobQueue>,
    settings: CoordinatorSettings,
    metrics: Arc<CoordinatorMetrics>,
    holder: String,
    in_flight: Mutex<HashSet<String>>,
}

/// Delivers callbacks until `shutdown`; deliveries under way are dropped
/// then, and their leases let another coordinator finish them.
pub(crate) async fn run(
    queue: Arc<dyn JobQueue>,
    settings: CoordinatorSettings,
    metrics: Arc<CoordinatorMetrics>,
    shutdown: CancellationToken,
) {
    let courier = Arc::new(CallbackCourier {
        queue,
        settings,
        metrics,
        holder: format!(
            "coordinator-{}-{:08x}",
            std::process::id(),
            rand::random::<u32>()
        ),
        in_flight: Mutex::new(HashSet::new()),
    });
    let mut deliveries = JoinSet::new();
    let mut tick = tokio::time::interval(POLL);
    loop {
        tokio::select! {
            () = shutdown.cancelled() => break,
            _ = tick.tick() => {}
        }
        while deliveries.try_join_next().is_some() {}
        let pending = match courier.queue.pending_callbacks(BATCH).await {
            Ok(pending) => pending,
            Err(error) => {
                tracing::warn!(%error, "cannot list pending callbacks");
                continue;
            }
        };
        for job_id in pending {
            if !courier.lock().insert(job_id.clone()) {
                continue;
            }
            let courier = Arc::clone(&courier);
            deliveries.spawn(async move {
                courier.deliver(&job_id).await;
                courier.lock().remove(&job_id);
            });
        }
    }
    deliveries.abort_all();
}

impl CallbackCourier {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashSet<String>> {
        self.in_flight.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Delivers what the job owes while this coordinator holds its lease.
    async fn deliver(&self, job_id: &str) {
        loop {
            match self.queue.lease_callback(job_id, &self.holder, LEASE).await {
                Ok(true) => {}
                Ok(false) => return,
                Err(error) => {
                    tracing::warn!(job = job_id, %error, "cannot take the callback lease");
                    return;
                }
            }
            match self.step(job_id).await {
                Ok(Step::More) => {}
                Ok(Step::Later) => tokio::time::sleep(POLL).await,
                Ok(Step::Done) => return,
                Err(error) => {
                    tracing::warn!(job = job_id, %error, "callback bookkeeping failed; retrying");
                    tokio::time::sleep(POLL).await;
                }
            }
        }
    }

    /// One round: item callbacks for the next page of results, or the
    /// job's summary once every result is in.
    async fn step(&self, job_id: &str) -> Result<Step, QueueError> {
        let job = match self.queue.get_job(job_id).await {
            Ok(job) => job,
            Err(QueueError::JobNotFound(_)) => {
                // Expired or aborted: nothing left to tell.
                self.queue.callback_progress(job_id, 0, true).await?;
                return Ok(Step::Done);
            }
            Err(error) => return Err(error),
        };
        let Some(callback) = job.spec.callback.clone() else {
            self.queue.callback_progress(job_id, 0, true).await?;
            return Ok(Step::Done);
        };
        if callback.item_verdicts.is_empty() {
            if !job.is_finished() {
                return Ok(Step::Later);
            }
        } else {
            let page = self
                .queue
                .read_results(job_id, job.callback_cursor, PAGE, Duration::ZERO)
                .await?;
            if let Some(last) = page.results.last() {
                for result in &page.results {
                    if callback.item_verdicts.contains(&result.verdict) {
                        self.post(
                            &callback.url,
                            "item",
                            &item_body(&job, result),
                            &format!("{job_id}:{}", result.cursor),
                        )
                        .await;
                    }
                }
                self.queue
                    .callback_progress(job_id, last.cursor, false)
                    .await?;
                return Ok(Step::More);
            }
            if !page.finished {
                return Ok(Step::Later);
            }
        }
        let body = job_body(&job);
        self.post(&callback.url, "job", &body, &format!("{job_id}:job"))
            .await;
        self.queue
            .callback_progress(job_id, job.callback_cursor, true)
            .await?;
        Ok(Step::Done)
    }

    /// POSTs until the receiver accepts or the attempts run out (logged:
    /// a receiver that is down for good must not stall the job's other
    /// callbacks forever).
    async fn post(&self, url: &str, event: &str, body: &serde_json::Value, delivery: &str) {
        let body = body.to_string();
        let delivered = http::post_with_retries(&self.settings, url, event, body, delivery).await;
        match delivered {
            Ok(()) => self.metrics.callback("delivered"),
            Err(error) => {
                self.metrics.callback("given_up");
                tracing::warn!(%delivery, %event, %error, "callback given up");
            }
        }
    }
}

enum Step {
    /// Go on at once.
    More,
    /// Nothing to send yet: look again after a poll.
    Later,
    Done,
}

fn job_body(job: &JobRecord) -> serde_json::Value {
    json!({
        "event": "job",
        "job_id": job.id,
        "state": job.state.as_str(),
        "model": job.spec.model,
        "total": job.total,
        "completed": job.completed,
        "failed": job.failed,
        "verdicts": job.verdicts,
        "metadata": job.spec.metadata,
        "created_unix_ms": job.created_ms,
        "finished_unix_ms": job.finished_ms,
    })
}

/// A float32 score as the number its shortest decimal names, as the result
/// records write it (`0.1`, where widening to f64 would give
/// `0.10000000149011612`): docs/result-record.schema.json.
fn score_value(score: f32) -> serde_json::Value {
    json!(score.to_string().parse::<f64>().unwrap_or(f64::NAN))
}

fn item_body(job: &JobRecord, result: &ItemResult) -> serde_json::Value {
    let scores: serde_json::Map<String, serde_json::Value> = result
        .scores
        .iter()
        .map(|s| (s.label.clone(), score_value(s.score)))
        .collect();
    // The record schema's rule: an error result names the job's model.
    let model = match &result.model {
        Some(m) => json!({"name": m.name, "sha256": m.sha256}),
        None => json!({"name": job.spec.model, "sha256": ""}),
    };
    let score = dfscan_queue::media::item_score(result);
    let (faces, timeline) = match &score {
        Some(ItemScore::Image(image)) => (image.faces.as_deref().and_then(record_value), None),
        Some(ItemScore::Video(video)) => (None, record_value(&video.timeline())),
        None => (None, None),
    };
    let face_detector = result
        .face_detector
        .as_ref()
        .map(|d| json!({"name": d.name, "sha256": d.sha256}));
    let mut body = json!({
        "event": "item",
        "job_id": job.id,
        "job_metadata": job.spec.metadata,
        "id": result.id,
        "index": result.index,
        "cursor": result.cursor,
        "media": score.as_ref().map(ItemScore::media),
        "label": result.label,
        "scores": scores,
        "fake_score": result.fake_score.map(score_value),
        "verdict": result.verdict,
        "metadata": result.metadata,
        "model": model,
        "outcome": result.outcome,
        "face_detector": face_detector,
        "faces": faces,
    });
    // A video's duration_s, frames, tracks and partial, as its JSON line
    // has them.
    if let (Some(body), Some(serde_json::Value::Object(timeline))) =
        (body.as_object_mut(), timeline)
    {
        body.extend(timeline);
    }
    body
}

/// Part of a result record as JSON, through the text, as score_value does,
/// so that each f32 keeps its shortest decimal.
fn record_value<T: serde::Serialize + ?Sized>(part: &T) -> Option<serde_json::Value> {
    serde_json::from_str(&serde_json::to_string(part).ok()?).ok()
}

#[cfg(test)]
mod tests {
    use dfscan_core::video::{FrameScore, TrackAggregation, VideoScore};
    use dfscan_core::{FaceScore, Outcome, Prediction};
    use dfscan_proto::v1::{LabelScore, ModelIdentity};
    use dfscan_queue::JobSpec;

    use super::*;

    #[test]
    fn item_bodies_are_result_records() {
        let job = JobRecord::new(JobSpec {
            model: "tiny-a".into(),
            ..Default::default()
        });
        let scored = ItemResult {
            id: "a.png".into(),
            label: "Real".into(),
            scores: vec![
                LabelScore {
                    label: "Real".into(),
                    score: 0.9,
                },
                LabelScore {
                    label: "Fake".into(),
                    score: 0.1,
                },
            ],
            fake_score: Some(0.1),
            model: Some(ModelIdentity {
                name: "tiny-a".into(),
                sha256: "ab".into(),
            }),
            ..Default::default()
        };
        let body = item_body(&job, &scored).to_string();
        assert!(body.contains(r#""fake_score":0.1,"#), "{body}");
        assert!(body.contains(r#""Fake":0.1"#), "{body}");
        let failed = ItemResult {
            id: "b.png".into(),
            error: "not an image".into(),
            ..Default::default()
        };
        let body = item_body(&job, &failed);
        assert_eq!(body["model"], json!({"name": "tiny-a", "sha256": ""}));
        assert!(body["fake_score"].is_null());
        let mut with_faces = scored.clone();
        dfscan_queue::faces::fill_result(
            &mut with_faces,
            dfscan_core::ImageScore::from_faces(
                vec![dfscan_core::FaceScore {
                    bbox: [1.0, 2.0, 3.0, 4.0],
                    detector_score: 0.1,
                    landmarks: [[0.1, 0.2]; 5],
                    crop: [0, 1, 5, 6],
                    prediction: dfscan_core::Prediction {
                        label: "Real".into(),
                        scores: vec![("Real".into(), 0.9), ("Fake".into(), 0.1)],
                        fake_score: 0.1,
                    },
                }],
                None,
                dfscan_core::FaceAggregation::Max,
                1,
            ),
            Some(&ModelIdentity {
                name: "centerface".into(),
                sha256: "cd".into(),
            }),
        );
        let body = item_body(&job, &with_faces);
        let face = &body["faces"][0];
        // Each f32 as its shortest decimal, not widened (0.10000000149…).
        assert_eq!(face["detector_score"], json!(0.1), "{body}");
        assert_eq!(face["landmarks"][0], json!([0.1, 0.2]), "{body}");
        assert_eq!(face["crop"], json!([0, 1, 5, 6]), "{body}");
        assert_eq!(body["outcome"], "scored");
        assert_eq!(body["media"], "image");
        assert!(body.get("frames").is_none(), "{body}");
        let body = body.to_string();
        assert!(
            body.contains(r#""face_detector":{"name":"centerface""#),
            "{body}"
        );
    }

    #[test]
    fn a_videos_item_body_carries_its_timeline() {
        let job = JobRecord::new(JobSpec {
            model: "tiny-a".into(),
            ..Default::default()
        });
        let labels = ["Real".to_string(), "Fake".to_string()];
        let p = |fake: f32| Prediction::from_probabilities(&labels, &[1.0 - fake, fake], 1);
        let frames = [0.1, 0.7]
            .into_iter()
            .map(|t| FrameScore {
                t,
                prediction: Some(p(0.1)),
                faces: Some(vec![FaceScore {
                    bbox: [1.0, 2.0, 30.0, 41.0],
                    detector_score: 0.1,
                    landmarks: [[0.1, 0.2]; 5],
                    crop: [0, 1, 35, 36],
                    prediction: p(0.1),
                }]),
                outcome: Outcome::Scored,
            })
            .collect();
        let video = VideoScore::from_frames(
            1.5,
            frames,
            TrackAggregation::Mean,
            1,
            Some("2 of 3 frames".into()),
        );
        let mut result = ItemResult {
            id: "v.mp4".into(),
            ..Default::default()
        };
        let detector = ModelIdentity {
            name: "centerface".into(),
            sha256: "cd".into(),
        };
        dfscan_queue::media::fill_result(&mut result, ItemScore::Video(video), Some(&detector));
        let body = item_body(&job, &result);
        assert_eq!(body["media"], "video", "{body}");
        assert_eq!(body["duration_s"], json!(1.5));
        assert_eq!(body["partial"], "2 of 3 frames");
        assert!(body["faces"].is_null(), "{body}");
        assert_eq!(body["face_detector"]["name"], "centerface");
        let frames = body["frames"].as_array().unwrap();
        assert_eq!(frames.len(), 2);
        // Keys and f32s as the JSON line writes them (shortest decimals).
        assert_eq!(frames[1]["t"], json!(0.7));
        assert_eq!(frames[1]["fake_score"], json!(0.1), "{body}");
        assert_eq!(frames[1]["scores"], json!({"Real": 0.9, "Fake": 0.1}));
        assert_eq!(frames[1]["outcome"], "scored");
        assert_eq!(frames[1]["faces"][0]["detector_score"], json!(0.1));
        assert_eq!(
            body["tracks"],
            json!([{"id": 0, "frames": 2, "start_t": 0.1, "end_t": 0.7, "fake_score": 0.1}])
        );
        // Without a reason to give, no partial key, as in the JSON line.
        result.partial.clear();
        assert!(item_body(&job, &result).get("partial").is_none());
    }
}
