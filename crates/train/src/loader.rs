//! The input pipeline: a producer thread decodes and resizes the images of
//! upcoming batches on a decode pool (a few batches ahead, so memory stays
//! bounded) while the training thread runs the model. Images arrive as
//! 8-bit RGB at the model's input size; augmentation and normalisation
//! happen on the device, in batches. An image that cannot be read or
//! decoded is left out of its batch and reported, and training goes on.

use std::path::PathBuf;
use std::sync::mpsc::{sync_channel, Receiver};
use std::sync::Arc;
use std::thread::JoinHandle;

use dfscan_imaging::{DecodeLimits, PreprocessorConfig};
use rayon::prelude::*;

use crate::dataset::Sample;
use crate::error::TrainError;

/// Batches decoded ahead of the one training.
const PREFETCH: usize = 2;

/// Decoded images of one batch, back to back as `[n, height, width, 3]`.
pub struct Batch {
    pub pixels: Vec<u8>,
    pub labels: Vec<i64>,
    /// Each image's position in the epoch's order (seeds its augmentation).
    pub positions: Vec<usize>,
    /// Images left out: path and why.
    pub failed: Vec<(PathBuf, String)>,
}

impl Batch {
    pub fn len(&self) -> usize {
        self.labels.len()
    }

    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }
}

/// How images become model-sized RGB.
#[derive(Clone)]
pub struct ImageSpec {
    pub preprocessor: PreprocessorConfig,
    pub limits: DecodeLimits,
}

impl ImageSpec {
    fn load(&self, sample: &Sample) -> Result<Vec<u8>, String> {
        let bytes = dfscan_imaging::read_limited(&sample.path, self.limits.max_bytes)
            .map_err(|e| e.to_string())?;
        let rgb = dfscan_imaging::decode(&bytes, &self.limits)
            .map_err(|e| e.to_string())?
            .into_processor_input(self.preprocessor.do_convert_rgb);
        let (height, width) = self.preprocessor.output_size();
        Ok(dfscan_imaging::resize(&rgb, width, height, self.preprocessor.resample).into_raw())
    }
}

/// An iterator over the batches of one pass, decoded in the background.
pub struct Loader {
    batches: Option<Receiver<Batch>>,
    thread: Option<JoinHandle<()>>,
}

impl Loader {
    /// Starts decoding `order` (indices into `samples`) in batches of
    /// `batch_size`, from batch `first_batch` on.
    pub fn start(
        samples: Arc<Vec<Sample>>,
        order: Vec<usize>,
        batch_size: usize,
        first_batch: usize,
        spec: ImageSpec,
        pool: Arc<rayon::ThreadPool>,
    ) -> Result<Self, TrainError> {
        let (tx, rx) = sync_channel(PREFETCH);
        let thread = std::thread::Builder::new()
            .name("dfscan-loader".into())
            .spawn(move || {
                let starts = (first_batch * batch_size..order.len()).step_by(batch_size);
                for start in starts {
                    let end = (start + batch_size).min(order.len());
                    let loaded: Vec<(usize, Result<Vec<u8>, String>)> = pool.install(|| {
                        (start..end)
                            .into_par_iter()
                            .map(|pos| (pos, spec.load(&samples[order[pos]])))
                            .collect()
                    });
                    let mut batch = Batch {
                        pixels: Vec::new(),
                        labels: Vec::new(),
                        positions: Vec::new(),
                        failed: Vec::new(),
                    };
                    for (pos, result) in loaded {
                        let sample = &samples[order[pos]];
                        match result {
                            Ok(pixels) => {
                                batch.pixels.extend_from_slice(&pixels);
                                batch.labels.push(sample.label as i64);
                                batch.positions.push(pos);
                            }
                            Err(e) => batch.failed.push((sample.path.clone(), e)),
                        }
                    }
                    if tx.send(batch).is_err() {
                        return; // the consumer stopped early
                    }
                }
            })
            .map_err(|e| TrainError::Spawn(format!("the data loader: {e}")))?;
        Ok(Self {
            batches: Some(rx),
            thread: Some(thread),
        })
    }
}

impl Iterator for Loader {
    type Item = Batch;

    fn next(&mut self) -> Option<Batch> {
        self.batches.as_ref()?.recv().ok()
    }
}

impl Drop for Loader {
    fn drop(&mut self) {
        // Closing the channel first makes a blocked producer give up.
        self.batches.take();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}
