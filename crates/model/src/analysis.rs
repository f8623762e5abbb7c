//! The one path from an item's bytes to its prediction, shared by
//! `dfscan score` and `eval` (through [`crate::Scorer`]) and the cluster
//! worker: what an item becomes before the model ([`Analysis::prepare`], on
//! a CPU thread), how prepared items travel to the model thread as one
//! batch ([`Analysis::batch`], [`Analysis::submit_blocking`]), and how the
//! batch's logits become each item's [`Prediction`]
//! ([`Analysis::predictions`]). The callers own only their scheduling
//! (files in order with two batches in flight; claimed tasks merged into
//! batches), so whatever an item's analysis grows (faces, frames,
//! explanations) is written here once.

use dfscan_core::prediction::softmax;
use dfscan_core::Prediction;
use dfscan_imaging::{preprocess, DecodeLimits};

use crate::engine::{Engine, LogitsReceiver, ModelInfo};
use crate::error::ModelError;

/// A model with the limits its inputs are decoded under.
pub struct Analysis {
    engine: Engine,
    limits: DecodeLimits,
}

/// An item ready for the model: one image's pixel values, checked against
/// the model's input size.
pub struct Prepared {
    pixels: Vec<f32>,
}

/// Prepared items copied into one block of model input.
pub struct Batch {
    pixels: Vec<f32>,
    rows: usize,
}

impl Batch {
    /// The items in the batch.
    pub fn rows(&self) -> usize {
        self.rows
    }
}

/// Per item of a batch, in batch order: its prediction or its error.
pub type Predictions = Vec<Result<Prediction, String>>;

/// What each of a batch's `rows` items gets when the model could not run it.
pub fn batch_failed(rows: usize, e: &ModelError) -> Predictions {
    vec![Err(format!("inference failed: {e}")); rows]
}

impl Analysis {
    pub fn new(engine: Engine, limits: DecodeLimits) -> Self {
        Self { engine, limits }
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

    /// Decodes and preprocesses one item's bytes; the error is the item's
    /// message.
    pub fn prepare(&self, bytes: &[u8]) -> Result<Prepared, String> {
        let info = self.engine.info();
        let pixels =
            preprocess(bytes, &info.preprocessor, &self.limits).map_err(|e| e.to_string())?;
        // A wrong size would fail the whole batch at the engine; fail only
        // this item.
        if pixels.len() != info.pixels_per_image() {
            return Err(format!(
                "preprocessing gave {} values, the model takes {}",
                pixels.len(),
                info.pixels_per_image()
            ));
        }
        Ok(Prepared { pixels })
    }

    /// A batch of blank images, as the model's first batch (warm-up).
    pub fn blank_batch(&self, rows: usize) -> Batch {
        Batch {
            pixels: vec![0.0; rows * self.engine.info().pixels_per_image()],
            rows,
        }
    }

    /// Copies prepared items into one batch; their own buffers are freed.
    pub fn batch(&self, items: impl IntoIterator<Item = Prepared>) -> Batch {
        let items = items.into_iter();
        let per_image = self.engine.info().pixels_per_image();
        let mut pixels = Vec::with_capacity(items.size_hint().0 * per_image);
        let mut rows = 0;
        for item in items {
            pixels.extend_from_slice(&item.pixels);
            rows += 1;
        }
        Batch { pixels, rows }
    }

    /// Hands a batch to the model thread, blocking while its queue is full.
    pub fn submit_blocking(&self, batch: Batch) -> Result<LogitsReceiver, ModelError> {
        self.engine.submit_blocking(batch.pixels, batch.rows)
    }

    /// Each item's prediction from what the model answered for a batch of
    /// `rows`: a failed batch gives each of its items the error, and only a
    /// stopped engine is an error of the caller's
    /// ([`ModelError::EngineStopped`]).
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
}
