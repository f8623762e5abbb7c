//! The one path from an item's bytes to its score, shared by `dfscan
//! score` and `eval` (through [`crate::Scorer`]) and the cluster worker:
//! what an item becomes before the classifier ([`Analysis::prepare`], on a
//! CPU thread: decode, find the faces on the model thread, cut and
//! preprocess each face's crop), how prepared items travel to the model
//! thread as one batch ([`Analysis::batch`], [`Analysis::submit_blocking`]),
//! and how the batch's logits become each item's [`ItemScore`]
//! ([`Analysis::scores`]). The callers own only their scheduling (files in
//! order with two batches in flight; claimed tasks merged into batches),
//! so whatever an item's analysis grows (frames, explanations) is written
//! here once.
//!
//! An item is one or more classifier rows: the whole image (faces off, or
//! none found in mode `auto`), or one row per face; none in mode `require`
//! without a face. A video (recognised by content) is its sampled frames'
//! rows, each frame treated as an image ([`video`]). Its [`Plan`] says
//! which, and travels beside the batch so that each item's rows come back
//! to it. An image that asked for an explanation keeps its rows' pixels
//! in its plan, and is explained once scored ([`explain`]).

mod explain;
mod image;
mod video;

use std::path::Path;

use dfscan_core::prediction::softmax;
use dfscan_core::video::VideoSettings;
use dfscan_core::{ExplainRequest, FaceMode, FaceSettings, ItemScore, Prediction};
use dfscan_imaging::{read_limited, DecodeLimits};

use crate::engine::{Engine, LogitsReceiver, ModelInfo};
use crate::error::ModelError;
pub use explain::Explainable;
pub use image::ImagePlan;
pub use video::VideoPlan;

/// A model with the limits its inputs are decoded under and the face
/// settings items get unless they bring their own.
pub struct Analysis {
    engine: Engine,
    limits: DecodeLimits,
    faces: FaceSettings,
    video: VideoSettings,
}

/// Where an item's bytes are: a file is opened by the video decoder itself
/// when it is a video (which may be far larger than any image), read whole
/// when it is an image.
#[derive(Debug, Clone, Copy)]
pub enum Input<'a> {
    Bytes(&'a [u8]),
    File(&'a Path),
}

/// An item ready for the classifier: its rows' pixel values and what they
/// are.
pub struct Prepared {
    pixels: Vec<f32>,
    plan: Plan,
}

impl Prepared {
    /// The classifier rows the item takes in a batch.
    pub fn rows(&self) -> usize {
        self.plan.rows()
    }
}

/// What an item's rows are, kept while its pixels are at the model, and
/// what it keeps to be explained.
#[derive(Debug, Clone)]
pub struct Plan {
    rows: Rows,
    explain: Option<Explainable>,
}

#[derive(Debug, Clone)]
enum Rows {
    Image(ImagePlan),
    Video(VideoPlan),
}

impl Plan {
    pub fn rows(&self) -> usize {
        match &self.rows {
            Rows::Image(plan) => plan.rows(),
            Rows::Video(plan) => plan.rows(),
        }
    }
}

/// Prepared items copied into one block of classifier input.
pub struct Batch {
    pixels: Vec<f32>,
    rows: usize,
}

impl Batch {
    /// The classifier rows in the batch.
    pub fn rows(&self) -> usize {
        self.rows
    }
}

/// Per row of a batch, in batch order: its prediction or its error.
pub type Predictions = Vec<Result<Prediction, String>>;

/// Per item, in batch order: its score or its error.
pub type Scores = Vec<Result<ItemScore, String>>;

/// What each of a batch's `rows` rows gets when the model could not run it.
pub fn batch_failed(rows: usize, e: &ModelError) -> Predictions {
    vec![Err(format!("inference failed: {e}")); rows]
}

impl Analysis {
    /// Fails on face settings no detection can honour.
    pub fn new(
        engine: Engine,
        limits: DecodeLimits,
        faces: FaceSettings,
        video: VideoSettings,
    ) -> Result<Self, ModelError> {
        faces.validate().map_err(ModelError::FaceSettings)?;
        video.validate().map_err(ModelError::VideoSettings)?;
        if faces.mode != FaceMode::Off && engine.info().face_detector.is_none() {
            return Err(ModelError::NoFaceDetector);
        }
        Ok(Self {
            engine,
            limits,
            faces,
            video,
        })
    }

    pub fn engine(&self) -> &Engine {
        &self.engine
    }

    pub fn info(&self) -> &ModelInfo {
        self.engine.info()
    }

    pub fn limits(&self) -> &DecodeLimits {
        &self.limits
    }

    /// The face settings items get by default.
    pub fn faces(&self) -> &FaceSettings {
        &self.faces
    }

    /// How videos are sampled and bounded.
    pub fn video(&self) -> &VideoSettings {
        &self.video
    }

    /// Prepares one item: a video (by content) through [`video`], an
    /// image through [`image`]; with faces as `faces` says (blocking on the
    /// model thread for the detector), keeping what `explain` needs once
    /// it is scored (images only: videos are not explained yet). The error
    /// is the item's message.
    pub fn prepare(
        &self,
        input: Input<'_>,
        faces: &FaceSettings,
        explain: Option<ExplainRequest>,
    ) -> Result<Prepared, String> {
        let info = self.engine.info();
        // A wrong size would fail the whole batch at the engine; fail only
        // this item.
        if info.preprocessor.pixel_values_len() != info.pixels_per_image() {
            return Err(format!(
                "preprocessing gives {} values, the model takes {}",
                info.preprocessor.pixel_values_len(),
                info.pixels_per_image()
            ));
        }
        if video::is_video(input)? {
            return video::prepare(self, input, faces);
        }
        let read;
        let bytes = match input {
            Input::Bytes(bytes) => bytes,
            Input::File(path) => {
                read = read_limited(path, self.limits.max_bytes).map_err(|e| e.to_string())?;
                &read
            }
        };
        let image = dfscan_imaging::decode(bytes, &self.limits)
            .map_err(|e| e.to_string())?
            .into_processor_input(info.preprocessor.do_convert_rgb);
        let mut pixels = Vec::new();
        let plan = image::prepare(self, &image, faces, &mut pixels)?;
        let explain = explain.map(|request| Explainable::keep(request, &pixels, &image));
        Ok(Prepared {
            pixels,
            plan: Plan {
                rows: Rows::Image(plan),
                explain,
            },
        })
    }

    /// A batch of blank images, as the model's first batch (warm-up).
    pub fn blank_batch(&self, rows: usize) -> Batch {
        Batch {
            pixels: vec![0.0; rows * self.engine.info().pixels_per_image()],
            rows,
        }
    }

    /// Copies prepared items into one batch, their own buffers freed; the
    /// plans, in item order, map the batch's rows back to the items.
    pub fn batch(&self, items: impl IntoIterator<Item = Prepared>) -> (Batch, Vec<Plan>) {
        let items: Vec<Prepared> = items.into_iter().collect();
        let rows: usize = items.iter().map(Prepared::rows).sum();
        let mut pixels = Vec::with_capacity(rows * self.engine.info().pixels_per_image());
        let mut plans = Vec::with_capacity(items.len());
        for item in items {
            pixels.extend_from_slice(&item.pixels);
            plans.push(item.plan);
        }
        (Batch { pixels, rows }, plans)
    }

    /// Hands a batch to the model thread, blocking while its queue is full.
    /// A batch of no rows (only faceless items in mode `require`) is
    /// answered at once.
    pub fn submit_blocking(&self, batch: Batch) -> Result<LogitsReceiver, ModelError> {
        if batch.rows == 0 {
            let (tx, rx) = tokio::sync::oneshot::channel();
            let _ = tx.send(Ok(Vec::new()));
            return Ok(rx);
        }
        self.engine.submit_blocking(batch.pixels, batch.rows)
    }

    /// Each row's prediction from what the model answered for a batch of
    /// `rows`: a failed batch gives each row the error, and only a stopped
    /// engine is an error of the caller's ([`ModelError::EngineStopped`]).
    pub fn predictions(
        &self,
        rows: usize,
        answer: Result<Vec<f32>, ModelError>,
    ) -> Result<Predictions, ModelError> {
        let logits = match answer {
            Err(ModelError::EngineStopped) => return Err(ModelError::EngineStopped),
            Err(e) => return Ok(batch_failed(rows, &e)),
            Ok(logits) => logits,
        };
        let info = self.engine.info();
        let labels = info.labels.len();
        if labels == 0 || logits.len() != rows * labels {
            let e = format!(
                "inference failed: the model returned {} logits for {rows} images of {labels} labels",
                logits.len()
            );
            return Ok(vec![Err(e); rows]);
        }
        Ok(logits
            .chunks_exact(labels)
            .map(|row| {
                Ok(Prediction::from_probabilities(
                    &info.labels,
                    &softmax(row),
                    info.fake_index,
                ))
            })
            .collect())
    }

    /// Each item's score from the model's answer for a batch made of
    /// `plans`; the images that asked for an explanation are explained
    /// (blocking on the model thread) and carry it.
    pub fn scores(
        &self,
        plans: Vec<Plan>,
        answer: Result<Vec<f32>, ModelError>,
    ) -> Result<Scores, ModelError> {
        let rows = plans.iter().map(Plan::rows).sum();
        let mut predictions = self.predictions(rows, answer)?.into_iter();
        let fake_index = self.engine.info().fake_index;
        let mut kept = Vec::with_capacity(plans.len());
        let mut scores: Scores = plans
            .into_iter()
            .map(|plan| {
                let own: Vec<_> = predictions.by_ref().take(plan.rows()).collect();
                kept.push(plan.explain);
                let own: Vec<Prediction> = own.into_iter().collect::<Result<_, _>>()?;
                Ok(match plan.rows {
                    Rows::Image(plan) => ItemScore::Image(plan.score(own, fake_index)?),
                    Rows::Video(plan) => ItemScore::Video(plan.score(own, fake_index)?),
                })
            })
            .collect();
        let explainable: Vec<_> = scores
            .iter_mut()
            .zip(kept)
            .filter_map(|(score, kept)| match (score, kept) {
                (Ok(ItemScore::Image(score)), Some(kept)) => Some((score, kept)),
                _ => None,
            })
            .collect();
        if !explainable.is_empty() {
            self.explain_scored(explainable);
        }
        Ok(scores)
    }
}
