//! Scoring many images: files are read and preprocessed on a CPU thread
//! pool while the model thread runs the previous batch, so decoding and
//! inference overlap; at most two batches of pixels exist at once, so
//! memory stays bounded however many inputs there are. Results come back in
//! input order, one per input, with a per-item error where an input failed.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use dfscan_core::prediction::softmax;
use dfscan_core::Prediction;
use dfscan_imaging::{preprocess, DecodeLimits};
use rayon::prelude::*;

use crate::engine::{Engine, LogitsReceiver};
use crate::error::ModelError;

pub struct Scorer {
    engine: Engine,
    pool: rayon::ThreadPool,
    limits: DecodeLimits,
    batch_size: usize,
}

/// Where the calling thread's time in [`Scorer::score_files`] went: reading
/// and preprocessing each chunk (while the model runs the previous one),
/// and waiting for the model beyond that. Their shares of the wall time
/// say which side bounds the rate: a run whose decoding share is small is
/// bound by the forward pass.
#[derive(Clone, Copy, Debug, Default)]
pub struct ScoreTimes {
    pub decoding: Duration,
    pub waiting_for_model: Duration,
}

/// One chunk of inputs on its way through the model.
struct InFlight {
    first: usize,
    /// Per input of the chunk: `Ok(row)` into the batch's logits, or the error.
    slots: Vec<Result<usize, String>>,
    logits: Option<LogitsReceiver>,
}

impl Scorer {
    /// `decode_threads` 0 means one per core.
    pub fn new(
        engine: Engine,
        decode_threads: usize,
        limits: DecodeLimits,
        batch_size: usize,
    ) -> Result<Self, ModelError> {
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(decode_threads)
            .thread_name(|i| format!("dfscan-decode-{i}"))
            .build()
            .map_err(|e| ModelError::Spawn(format!("decode threads: {e}")))?;
        Ok(Self {
            engine,
            pool,
            limits,
            batch_size: batch_size.max(1),
        })
    }

    pub fn engine(&self) -> &Engine {
        &self.engine
    }

    /// Scores `paths`, calling `emit(index, result)` once per path, in order.
    pub fn score_files(
        &self,
        paths: &[PathBuf],
        mut emit: impl FnMut(usize, Result<Prediction, String>),
    ) -> ScoreTimes {
        let mut times = ScoreTimes::default();
        let mut in_flight: Option<InFlight> = None;
        for (n, chunk) in paths.chunks(self.batch_size).enumerate() {
            let next = self.start(n * self.batch_size, chunk, &mut times);
            if let Some(done) = in_flight.replace(next) {
                self.finish(done, &mut emit, &mut times);
            }
        }
        if let Some(done) = in_flight {
            self.finish(done, &mut emit, &mut times);
        }
        times
    }

    /// Preprocesses a chunk in parallel and hands the good images to the model.
    fn start(&self, first: usize, chunk: &[PathBuf], times: &mut ScoreTimes) -> InFlight {
        let started = Instant::now();
        let cfg = &self.engine.info().preprocessor;
        let decoded: Vec<Result<Vec<f32>, String>> = self.pool.install(|| {
            chunk
                .par_iter()
                .map(|path| {
                    let bytes = read_limited(path, self.limits.max_bytes)?;
                    preprocess(&bytes, cfg, &self.limits).map_err(|e| e.to_string())
                })
                .collect()
        });
        let mut pixels = Vec::with_capacity(chunk.len() * self.engine.info().pixels_per_image());
        let mut rows = 0;
        let slots = decoded
            .into_iter()
            .map(|d| {
                d.map(|values| {
                    pixels.extend_from_slice(&values);
                    rows += 1;
                    rows - 1
                })
            })
            .collect();
        times.decoding += started.elapsed();
        // A full engine queue blocks here: that is waiting for the model.
        let submitted = Instant::now();
        let logits = (rows > 0).then(|| self.engine.submit_blocking(pixels, rows));
        times.waiting_for_model += submitted.elapsed();
        let logits = match logits.transpose() {
            Ok(l) => l,
            Err(e) => return failed(first, chunk.len(), &e),
        };
        InFlight {
            first,
            slots,
            logits,
        }
    }

    fn finish(
        &self,
        chunk: InFlight,
        emit: &mut impl FnMut(usize, Result<Prediction, String>),
        times: &mut ScoreTimes,
    ) {
        let info = self.engine.info();
        let labels = info.labels.len();
        let waiting = Instant::now();
        let logits = chunk
            .logits
            .map(|rx| rx.blocking_recv().unwrap_or(Err(ModelError::EngineStopped)))
            .transpose();
        times.waiting_for_model += waiting.elapsed();
        for (i, slot) in chunk.slots.into_iter().enumerate() {
            let result = match (&logits, slot) {
                (_, Err(e)) => Err(e),
                (Err(e), Ok(_)) => Err(format!("inference failed: {e}")),
                (Ok(l), Ok(row)) => {
                    let l = l.as_ref().expect("rows imply a batch");
                    let probs = softmax(&l[row * labels..(row + 1) * labels]);
                    Ok(Prediction::from_probabilities(
                        &info.labels,
                        &probs,
                        info.fake_index,
                    ))
                }
            };
            emit(chunk.first + i, result);
        }
    }
}

fn failed(first: usize, len: usize, e: &ModelError) -> InFlight {
    InFlight {
        first,
        slots: (0..len)
            .map(|_| Err(format!("inference failed: {e}")))
            .collect(),
        logits: None,
    }
}

/// Reads a file, refusing (without reading it all) one over `max` bytes.
pub fn read_limited(path: &Path, max: u64) -> Result<Vec<u8>, String> {
    let file = std::fs::File::open(path).map_err(|e| format!("cannot read: {e}"))?;
    let mut bytes = Vec::new();
    file.take(max.saturating_add(1))
        .read_to_end(&mut bytes)
        .map_err(|e| format!("cannot read: {e}"))?;
    if bytes.len() as u64 > max {
        return Err(format!("file is over the limit of {max} bytes"));
    }
    Ok(bytes)
}
