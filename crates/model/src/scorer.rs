//! Scoring many images: files are read, their faces found and their rows
//! preprocessed on a CPU thread pool while the model thread runs the
//! previous batch, so decoding and inference overlap (the detector's
//! batches run on the model thread between the classifier's); at most two
//! batches of pixels exist at once, so memory stays bounded however many
//! inputs there are. Results come back in input order, one per input, with
//! a per-item error where an input failed.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use dfscan_core::video::VideoSettings;
use dfscan_core::{ExplainRequest, FaceSettings};
use dfscan_imaging::DecodeLimits;
use rayon::prelude::*;

use dfscan_core::ItemScore;

use crate::analysis::{Analysis, Input, Plan};
use crate::engine::{Engine, LogitsReceiver};
use crate::error::ModelError;

pub struct Scorer {
    analysis: Analysis,
    pool: rayon::ThreadPool,
    batch_size: usize,
    /// Every image's explanation, when asked for.
    explain: Option<ExplainRequest>,
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
    /// Per input of the chunk: `Ok(n)`, its place among the batch's items,
    /// or the error.
    slots: Vec<Result<usize, String>>,
    /// The batch's items and where their logits arrive (or why the batch
    /// could not be handed over); `None` when no input of the chunk
    /// reached the model.
    logits: Option<(Vec<Plan>, Result<LogitsReceiver, ModelError>)>,
}

impl Scorer {
    /// `decode_threads` 0 means one per core; `faces` is how every input's
    /// faces are found, cut and combined.
    pub fn new(
        engine: Engine,
        decode_threads: usize,
        limits: DecodeLimits,
        batch_size: usize,
        faces: FaceSettings,
        video: VideoSettings,
    ) -> Result<Self, ModelError> {
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(decode_threads)
            .thread_name(|i| format!("dfscan-decode-{i}"))
            .build()
            .map_err(|e| ModelError::Spawn(format!("decode threads: {e}")))?;
        Ok(Self {
            analysis: Analysis::new(engine, limits, faces, video)?,
            pool,
            batch_size: batch_size.max(1),
            explain: None,
        })
    }

    /// Explains every image scored, after its score (see
    /// [`crate::analysis`]).
    pub fn explaining(mut self, request: ExplainRequest) -> Self {
        self.explain = Some(request);
        self
    }

    pub fn engine(&self) -> &Engine {
        self.analysis.engine()
    }

    /// Scores `paths`, calling `emit(index, result)` once per path, in order.
    pub fn score_files(
        &self,
        paths: &[PathBuf],
        mut emit: impl FnMut(usize, Result<ItemScore, String>),
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
        let (analysis, explain) = (&self.analysis, self.explain);
        let prepared: Vec<_> = self.pool.install(|| {
            chunk
                .par_iter()
                .map(|path| analysis.prepare(Input::File(path), analysis.faces(), explain))
                .collect()
        });
        let mut good = Vec::with_capacity(chunk.len());
        let slots = prepared
            .into_iter()
            .map(|p| {
                p.map(|item| {
                    good.push(item);
                    good.len() - 1
                })
            })
            .collect();
        let batch = (!good.is_empty()).then(|| analysis.batch(good));
        times.decoding += started.elapsed();
        // A full engine queue blocks here: that is waiting for the model.
        let submitted = Instant::now();
        let logits = batch.map(|(batch, plans)| (plans, analysis.submit_blocking(batch)));
        times.waiting_for_model += submitted.elapsed();
        InFlight {
            first,
            slots,
            logits,
        }
    }

    fn finish(
        &self,
        chunk: InFlight,
        emit: &mut impl FnMut(usize, Result<ItemScore, String>),
        times: &mut ScoreTimes,
    ) {
        let waiting = Instant::now();
        let scores = match chunk.logits {
            Some((plans, submitted)) => {
                let items = plans.len();
                let answer = submitted
                    .and_then(|rx| rx.blocking_recv().unwrap_or(Err(ModelError::EngineStopped)));
                self.analysis
                    .scores(plans, answer)
                    .unwrap_or_else(|e| vec![Err(format!("inference failed: {e}")); items])
            }
            None => Vec::new(),
        };
        times.waiting_for_model += waiting.elapsed();
        let mut scores: Vec<Option<Result<ItemScore, String>>> =
            scores.into_iter().map(Some).collect();
        for (i, slot) in chunk.slots.into_iter().enumerate() {
            let result = slot.and_then(|n| {
                scores[n]
                    .take()
                    .unwrap_or_else(|| Err("inference failed: no score for the item".into()))
            });
            emit(chunk.first + i, result);
        }
    }
}
