//! The one path from an item's bytes to its score, shared by `dfscan
//! score` and `eval` (through [`crate::Scorer`]) and the cluster worker:
//! what an item becomes before the classifier ([`Analysis::prepare`], on a
//! CPU thread: decode, find the faces on the model thread, cut and
//! preprocess each face's crop), how prepared items travel to the model
//! thread as one batch ([`Analysis::batch`], [`Analysis::submit_blocking`]),
//! and how the batch's logits become each item's [`ImageScore`]
//! ([`Analysis::scores`]). The callers own only their scheduling (files in
//! order with two batches in flight; claimed tasks merged into batches),
//! so whatever an item's analysis grows (frames, explanations) is written
//! here once.
//!
//! An item is one or more classifier rows: the whole image (faces off, or
//! none found in mode `auto`), or one row per face; none in mode `require`
//! without a face. Its [`Plan`] says which, and travels beside the batch so
//! that each item's rows come back to it.

use dfscan_core::prediction::softmax;
use dfscan_core::{FaceMode, FaceScore, FaceSettings, ImageScore, Prediction};
use dfscan_imaging::{
    align_face, aligned_region, crop, decode, face_square, pixel_values_into, CropRegion,
    DecodeLimits, RgbImage,
};

use crate::engine::{Engine, LogitsReceiver, ModelInfo};
use crate::error::ModelError;
use crate::faces::{self, Face};

/// A model with the limits its inputs are decoded under and the face
/// settings items get unless they bring their own.
pub struct Analysis {
    engine: Engine,
    limits: DecodeLimits,
    faces: FaceSettings,
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

/// What an item's rows are, kept while its pixels are at the model.
#[derive(Debug, Clone)]
pub enum Plan {
    /// One row: the whole image, faces not looked for.
    Whole,
    /// One row per face, then, with `whole`, one for the whole image (no
    /// face found in mode `auto`).
    Faces {
        faces: Vec<(Face, CropRegion)>,
        whole: bool,
        settings: FaceSettings,
    },
}

impl Plan {
    pub fn rows(&self) -> usize {
        match self {
            Self::Whole => 1,
            Self::Faces { faces, whole, .. } => faces.len() + usize::from(*whole),
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
pub type Scores = Vec<Result<ImageScore, String>>;

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
    ) -> Result<Self, ModelError> {
        faces.validate().map_err(ModelError::FaceSettings)?;
        if faces.mode != FaceMode::Off && engine.info().face_detector.is_none() {
            return Err(ModelError::NoFaceDetector);
        }
        Ok(Self {
            engine,
            limits,
            faces,
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

    /// Decodes one item's bytes, finds its faces as `faces` says (blocking
    /// on the model thread for the detector) and preprocesses its rows; the
    /// error is the item's message.
    pub fn prepare(&self, bytes: &[u8], faces: &FaceSettings) -> Result<Prepared, String> {
        let info = self.engine.info();
        let cfg = &info.preprocessor;
        let image = decode(bytes, &self.limits)
            .map_err(|e| e.to_string())?
            .into_processor_input(cfg.do_convert_rgb);
        let per_image = info.pixels_per_image();
        // A wrong size would fail the whole batch at the engine; fail only
        // this item.
        if cfg.pixel_values_len() != per_image {
            return Err(format!(
                "preprocessing gives {} values, the model takes {per_image}",
                cfg.pixel_values_len()
            ));
        }
        let mut prepared = Prepared {
            pixels: Vec::new(),
            plan: Plan::Whole,
        };
        if faces.mode == FaceMode::Off {
            prepared.push_row(&image, cfg, per_image);
            return Ok(prepared);
        }
        let found = self.find_faces(&image, faces)?;
        let mut rows = Vec::with_capacity(found.len());
        for face in found {
            let (region, cut) = self.cut(&image, &face, faces);
            prepared.push_row(&cut, cfg, per_image);
            rows.push((face, region));
        }
        let whole = rows.is_empty() && faces.mode == FaceMode::Auto;
        if whole {
            prepared.push_row(&image, cfg, per_image);
        }
        prepared.plan = Plan::Faces {
            faces: rows,
            whole,
            settings: faces.clone(),
        };
        Ok(prepared)
    }

    fn find_faces(&self, image: &RgbImage, settings: &FaceSettings) -> Result<Vec<Face>, String> {
        settings.validate()?;
        let input = faces::prepare(image, settings);
        let geometry = faces::Geometry::of(&input);
        let maps = self
            .engine
            .detect_blocking(input)
            .map_err(|e| format!("face detection failed: {e}"))?;
        Ok(faces::faces(&geometry, &maps, settings))
    }

    /// The face's crop as the classifier sees it, and the region reported
    /// for it.
    fn cut(
        &self,
        image: &RgbImage,
        face: &Face,
        settings: &FaceSettings,
    ) -> (CropRegion, RgbImage) {
        if settings.align {
            let size = self.engine.info().input_shape[1] as u32;
            let aligned = align_face(image, &face.landmarks, size, settings.scale);
            if let (Some(cut), Some(region)) = (
                aligned,
                aligned_region(&face.landmarks, size, settings.scale),
            ) {
                return (region, cut);
            }
            // Landmarks that define no transform: the square crop instead.
        }
        let region = face_square(face.bbox, settings.scale);
        (region, crop(image, region))
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
    /// `plans`.
    pub fn scores(
        &self,
        plans: Vec<Plan>,
        answer: Result<Vec<f32>, ModelError>,
    ) -> Result<Scores, ModelError> {
        let rows = plans.iter().map(Plan::rows).sum();
        let mut predictions = self.predictions(rows, answer)?.into_iter();
        let fake_index = self.engine.info().fake_index;
        Ok(plans
            .into_iter()
            .map(|plan| {
                let own: Vec<_> = predictions.by_ref().take(plan.rows()).collect();
                score(plan, own, fake_index)
            })
            .collect())
    }
}

impl Prepared {
    fn push_row(
        &mut self,
        image: &RgbImage,
        cfg: &dfscan_imaging::PreprocessorConfig,
        per_image: usize,
    ) {
        let at = self.pixels.len();
        self.pixels.resize(at + per_image, 0.0);
        pixel_values_into(image, cfg, &mut self.pixels[at..]);
    }
}

/// One item's score from its plan and its rows' predictions.
fn score(plan: Plan, rows: Predictions, fake_index: usize) -> Result<ImageScore, String> {
    let rows: Vec<Prediction> = rows.into_iter().collect::<Result<_, _>>()?;
    let mut rows = rows.into_iter();
    match plan {
        Plan::Whole => rows
            .next()
            .map(ImageScore::whole)
            .ok_or_else(|| "inference failed: no prediction for the item".to_string()),
        Plan::Faces {
            faces,
            whole,
            settings,
        } => {
            let scored: Vec<FaceScore> = faces
                .into_iter()
                .zip(rows.by_ref())
                .map(|((face, crop), prediction)| FaceScore {
                    bbox: face.bbox,
                    detector_score: face.score,
                    landmarks: face.landmarks,
                    crop,
                    prediction,
                })
                .collect();
            let whole = if whole { rows.next() } else { None };
            Ok(ImageScore::from_faces(
                scored,
                whole,
                settings.aggregation,
                fake_index,
            ))
        }
    }
}
