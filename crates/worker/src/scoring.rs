//! What turns an item into a score, in the worker: the item's bytes (inline
//! or from a URI) through the model's one analysis path
//! ([`dfscan_model::Analysis`]) on a CPU pool, batches to the model thread,
//! predictions into the results the queue records. The no-op scorer goes
//! through the same pipeline (claims, batches, completions) with nothing
//! behind it, so a benchmark with it measures exactly the overhead the real
//! scorer adds to inference.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::Arc;
use std::time::{Duration, Instant};

use dfscan_core::video::VideoSettings;
use dfscan_core::{FaceSettings, ImageScore, ItemScore, Prediction};
use dfscan_imaging::DecodeLimits;
use dfscan_model::analysis::{batch_failed, Scores};
use dfscan_model::engine::LogitsReceiver;
use dfscan_model::{Analysis, Engine, Input, ModelError, Plan, Prepared};
use dfscan_proto::v1::item::Source;
use dfscan_proto::v1::{Item, ItemResult, ModelIdentity};
use dfscan_queue::error_result;
use dfscan_queue::media::fill_result;
use tokio::sync::{oneshot, OwnedSemaphorePermit};

use crate::error::WorkerError;
use crate::uri::UriRoots;

/// How a worker scores its items.
pub enum Inference {
    /// Decode on a CPU pool and run the model on its own thread.
    Model {
        engine: Engine,
        /// Decoding threads; 0 = one per core.
        decode_threads: usize,
        limits: DecodeLimits,
        /// How items' faces are found unless their job says otherwise.
        faces: FaceSettings,
        /// How videos are sampled and bounded.
        video: VideoSettings,
    },
    /// Benchmark-only: no decoding and no model. Every item gets label
    /// "Real" with probability 1 (identity `{name: model, sha256: "noop"}`),
    /// so a run measures the queue and the worker's own overhead.
    Noop { model: String },
    /// Tests only: the no-op scorer, except that while its gate is closed
    /// the model never answers a batch (a hung forward pass).
    #[cfg(test)]
    Stalling {
        model: String,
        gate: Arc<stall::Gate>,
    },
}

/// The scorer as the pipeline uses it.
pub(crate) struct Runner {
    backend: Backend,
    labels: Vec<String>,
    fake_index: usize,
    identity: ModelIdentity,
    face_detector: Option<ModelIdentity>,
    faces: FaceSettings,
    device: String,
    dtype: String,
}

enum Backend {
    // Shared with the decode jobs and the blocking tasks that feed the model.
    Model(Arc<ModelBackend>),
    Noop,
    #[cfg(test)]
    Stalling(Arc<stall::Gate>),
}

struct ModelBackend {
    analysis: Analysis,
    pool: rayon::ThreadPool,
    uris: UriRoots,
}

impl ModelBackend {
    fn prepare(&self, item: &Item, faces: &FaceSettings) -> Result<Prepared, String> {
        match &item.source {
            Some(Source::Data(data)) => self.analysis.prepare(Input::Bytes(data), faces, None),
            Some(Source::Uri(uri)) => {
                let path = self.uris.resolve(uri)?;
                // The item's errors name the URI the client sent, not the
                // worker's resolved path.
                let own = format!("{}: ", path.display());
                let named = |e: String| format!("{uri}: {}", e.strip_prefix(&own).unwrap_or(&e));
                self.analysis
                    .prepare(Input::File(&path), faces, None)
                    .map_err(named)
            }
            None => Err("the item has neither data nor a URI".into()),
        }
    }
}

/// An item ready for the model; the no-op scorers carry nothing.
pub(crate) type Ready = Option<Prepared>;

/// The decoded-rows budget: rows prepared for the model and not yet through
/// it, shared by the decoders (which wait on it) and the batcher (whose
/// batches hold it until their logits are back).
#[derive(Clone)]
pub(crate) struct RowBudget {
    rows: Arc<tokio::sync::Semaphore>,
    total: u32,
    runtime: tokio::runtime::Handle,
}

impl RowBudget {
    /// A budget of `total` rows; must be made on the worker's runtime.
    pub(crate) fn new(total: usize) -> Self {
        let total =
            u32::try_from(total.clamp(1, tokio::sync::Semaphore::MAX_PERMITS)).unwrap_or(u32::MAX);
        Self {
            rows: Arc::new(tokio::sync::Semaphore::new(total as usize)),
            total,
            runtime: tokio::runtime::Handle::current(),
        }
    }

    /// Blocks a decoding thread (never a runtime thread) until `rows` of
    /// the budget are free; an item larger than the whole budget takes all
    /// of it, so it runs alone.
    fn wait_for(&self, rows: usize) -> Result<OwnedSemaphorePermit, String> {
        let wanted = u32::try_from(rows).unwrap_or(u32::MAX).clamp(1, self.total);
        self.runtime
            .block_on(Arc::clone(&self.rows).acquire_many_owned(wanted))
            .map_err(|_| "the worker is stopping".to_string())
    }

    #[cfg(test)]
    async fn wait_for_off_runtime(&self, rows: usize) -> OwnedSemaphorePermit {
        let budget = self.clone();
        tokio::task::spawn_blocking(move || budget.wait_for(rows).unwrap())
            .await
            .unwrap()
    }

    /// For the no-op scorers, which decode nothing on no pool: waits for
    /// one row on the runtime, then hands the empty item to `done`.
    fn then_one(
        &self,
        done: impl FnOnce(Result<(Ready, OwnedSemaphorePermit), String>, Duration) + Send + 'static,
    ) {
        let rows = Arc::clone(&self.rows);
        self.runtime.spawn(async move {
            let held = rows.acquire_owned().await;
            let held = held.map(|held| (None, held));
            done(
                held.map_err(|_| "the worker is stopping".into()),
                Duration::ZERO,
            );
        });
    }
}

/// The classifier rows an item takes in a batch (the no-op scorers': one).
pub(crate) fn rows(item: &Ready) -> usize {
    item.as_ref().map_or(1, Prepared::rows)
}

/// How a batch's rows map back to its items; `None` for the no-op
/// scorers' items.
pub(crate) type Plans = Vec<Option<Plan>>;

impl Runner {
    pub(crate) fn new(scoring: Inference, uris: UriRoots) -> Result<Self, WorkerError> {
        match scoring {
            Inference::Model {
                engine,
                decode_threads,
                limits,
                faces,
                video,
            } => {
                let pool = rayon::ThreadPoolBuilder::new()
                    .num_threads(decode_threads)
                    .thread_name(|i| format!("dfscan-decode-{i}"))
                    .build()
                    .map_err(|e| WorkerError::DecodePool(e.to_string()))?;
                let info = engine.info();
                Ok(Self {
                    labels: info.labels.clone(),
                    fake_index: info.fake_index,
                    identity: ModelIdentity {
                        name: info.identity.name.clone(),
                        sha256: info.identity.sha256.clone(),
                    },
                    face_detector: info.face_detector.as_ref().map(|d| ModelIdentity {
                        name: d.name.clone(),
                        sha256: d.sha256.clone(),
                    }),
                    faces: faces.clone(),
                    device: info.device.clone(),
                    dtype: info.dtype.to_string(),
                    backend: Backend::Model(Arc::new(ModelBackend {
                        analysis: Analysis::new(engine, limits, faces, video)
                            .map_err(WorkerError::Engine)?,
                        pool,
                        uris,
                    })),
                })
            }
            Inference::Noop { model } => Ok(Self::scoring_nothing(model, Backend::Noop)),
            #[cfg(test)]
            Inference::Stalling { model, gate } => {
                Ok(Self::scoring_nothing(model, Backend::Stalling(gate)))
            }
        }
    }

    /// The no-op scorer's description, whatever is behind it.
    fn scoring_nothing(model: String, backend: Backend) -> Self {
        Self {
            labels: vec!["Real".into(), "Fake".into()],
            fake_index: 1,
            identity: ModelIdentity {
                name: model,
                sha256: "noop".into(),
            },
            face_detector: None,
            // The no-op scorers look for no faces.
            faces: FaceSettings {
                mode: dfscan_core::FaceMode::Off,
                ..FaceSettings::default()
            },
            device: "none".into(),
            dtype: "none".into(),
            backend,
        }
    }

    pub(crate) fn identity(&self) -> &ModelIdentity {
        &self.identity
    }

    pub(crate) fn labels(&self) -> &[String] {
        &self.labels
    }

    /// How items' faces are found unless their job says otherwise.
    pub(crate) fn faces(&self) -> &FaceSettings {
        &self.faces
    }

    pub(crate) fn device(&self) -> &str {
        &self.device
    }

    pub(crate) fn dtype(&self) -> &str {
        &self.dtype
    }

    /// Prepares an item for the model off the async threads and calls
    /// `done` with it (or the item's error), on a decode thread.
    /// Decodes `item` on the pool, then, still on the decoding thread,
    /// waits for its rows' share of `rows` (all at once, at most the whole
    /// budget) before handing it to `done`: a decoder stops while the
    /// prepared items ahead of it hold the budget, so what is decoded ahead
    /// of the model is bounded in rows (an image's faces, a video's frames'
    /// faces), not in items. Decoders wait in turn (the semaphore is
    /// first come, first served) and no item already holding rows waits for
    /// more: the holders are items on their way through the model, so the
    /// wait always ends.
    pub(crate) fn decode(
        &self,
        item: Item,
        faces: Arc<FaceSettings>,
        rows: RowBudget,
        done: impl FnOnce(Result<(Ready, OwnedSemaphorePermit), String>, Duration) + Send + 'static,
    ) {
        let handed = Instant::now();
        match &self.backend {
            Backend::Model(model) => {
                let job = Arc::clone(model);
                model.pool.spawn(move || {
                    // A panic here would abort the process (rayon's default)
                    // and leave the task without this item's result.
                    let prepared = catch_unwind(AssertUnwindSafe(|| job.prepare(&item, &faces)))
                        .unwrap_or_else(|_| Err("decoding failed unexpectedly".into()));
                    let took = handed.elapsed();
                    let admitted = prepared.and_then(|prepared| {
                        let held = rows.wait_for(prepared.rows())?;
                        Ok((Some(prepared), held))
                    });
                    done(admitted, took);
                });
            }
            Backend::Noop => rows.then_one(done),
            #[cfg(test)]
            Backend::Stalling(_) => rows.then_one(done),
        }
    }

    /// Runs one batch of `rows` blank images through the model before the
    /// worker takes work: CUDA's lazy initialisation, kernel selection and
    /// the activation memory of a full batch are paid here, so the first
    /// job does not wait for them, and a batch that cannot run (out of
    /// memory) stops the worker at start rather than failing every task.
    pub(crate) async fn warm_up(&self, rows: usize) -> Result<(), WorkerError> {
        let logits = match &self.backend {
            Backend::Model(model) => {
                let model = Arc::clone(model);
                self.submit_with(move || {
                    let analysis = &model.analysis;
                    (analysis.submit_blocking(analysis.blank_batch(rows)), ())
                })
                .await?
                .0
            }
            _ => ready(Ok(Vec::new())),
        };
        match logits.await {
            Ok(Ok(_)) => Ok(()),
            Ok(Err(ModelError::EngineStopped)) | Err(_) => {
                Err(WorkerError::Engine(ModelError::EngineStopped))
            }
            Ok(Err(e)) => Err(WorkerError::WarmUp { rows, source: e }),
        }
    }

    /// Hands a batch to the model; `hold` (the images' memory budget) is
    /// released once their pixels are copied into the batch. Returns where
    /// the logits arrive and how its rows map back to the items.
    pub(crate) async fn submit(
        &self,
        items: Vec<Ready>,
        hold: Vec<OwnedSemaphorePermit>,
    ) -> Result<(LogitsReceiver, Plans), WorkerError> {
        let model = match &self.backend {
            Backend::Model(model) => Arc::clone(model),
            #[cfg(test)]
            Backend::Stalling(gate) => return Ok((gate.submit(), vec![None; items.len()])),
            Backend::Noop => {
                drop(hold);
                // The no-op scorer's batches carry no logits.
                return Ok((ready(Ok(Vec::new())), vec![None; items.len()]));
            }
        };
        self.submit_with(move || {
            let (batch, plans) = model.analysis.batch(items.into_iter().flatten());
            drop(hold);
            let plans = plans.into_iter().map(Some).collect();
            (model.analysis.submit_blocking(batch), plans)
        })
        .await
    }

    /// Runs `submit` off the async threads: copying a batch and waiting for
    /// a place in the engine's channel both block.
    async fn submit_with<T: Default + Send + 'static>(
        &self,
        submit: impl FnOnce() -> (Result<LogitsReceiver, ModelError>, T) + Send + 'static,
    ) -> Result<(LogitsReceiver, T), WorkerError> {
        let (submitted, rest) = tokio::task::spawn_blocking(submit)
            .await
            .map_err(|e| WorkerError::Panicked(format!("batch submission: {e}")))?;
        match submitted {
            Ok(logits) => Ok((logits, rest)),
            Err(ModelError::EngineStopped) => Err(WorkerError::Engine(ModelError::EngineStopped)),
            // Anything else fails this batch only; its items get the error.
            Err(e) => Ok((ready(Err(e)), rest)),
        }
    }

    /// Each item's score in a batch made of `plans`, from what the model
    /// returned.
    pub(crate) fn scores(
        &self,
        plans: Plans,
        outcome: Result<Result<Vec<f32>, ModelError>, oneshot::error::RecvError>,
    ) -> Result<Scores, WorkerError> {
        let answer = outcome.unwrap_or(Err(ModelError::EngineStopped));
        match &self.backend {
            Backend::Model(model) => model
                .analysis
                .scores(plans.into_iter().flatten().collect(), answer)
                .map_err(WorkerError::Engine),
            // The no-op scorers: a failed batch still fails its items.
            _ => match answer {
                Err(ModelError::EngineStopped) => {
                    Err(WorkerError::Engine(ModelError::EngineStopped))
                }
                Err(e) => Ok(batch_failed(plans.len(), &e)
                    .into_iter()
                    .map(|p| p.map(|p| ItemScore::Image(ImageScore::whole(p))))
                    .collect()),
                Ok(_) => {
                    let certain =
                        Prediction::from_probabilities(&self.labels, &[1.0, 0.0], self.fake_index);
                    Ok(vec![
                        Ok(ItemScore::Image(ImageScore::whole(certain)));
                        plans.len()
                    ])
                }
            },
        }
    }

    /// The result the queue records for one item.
    pub(crate) fn result(
        &self,
        id: String,
        index: u64,
        score: Result<ItemScore, String>,
    ) -> ItemResult {
        match score {
            Ok(score) => {
                let mut result = ItemResult {
                    id,
                    index,
                    model: Some(self.identity.clone()),
                    ..Default::default()
                };
                fill_result(&mut result, score, self.face_detector.as_ref());
                result
            }
            Err(e) => error_result(&id, index, &e),
        }
    }
}

#[cfg(test)]
pub mod stall {
    use std::sync::Mutex;

    use dfscan_model::engine::LogitsReceiver;
    use tokio::sync::oneshot;

    type Reply = oneshot::Sender<Result<Vec<f32>, dfscan_model::ModelError>>;

    /// While closed, batches get no answer: their replies are held, as a
    /// model thread stuck in a forward pass holds them.
    #[derive(Default)]
    pub struct Gate {
        /// `Some` while closed: the replies held back.
        held: Mutex<Option<Vec<Reply>>>,
    }

    impl Gate {
        pub(crate) fn close(&self) {
            self.held.lock().unwrap().get_or_insert_with(Vec::new);
        }

        /// Answers every batch held back, and the later ones at once.
        pub(crate) fn open(&self) {
            for reply in self.held.lock().unwrap().take().unwrap_or_default() {
                let _ = reply.send(Ok(Vec::new()));
            }
        }

        /// Batches waiting for an answer.
        pub(crate) fn held(&self) -> usize {
            self.held.lock().unwrap().as_ref().map_or(0, Vec::len)
        }

        pub(crate) fn submit(&self) -> LogitsReceiver {
            let (reply, logits) = oneshot::channel();
            match self.held.lock().unwrap().as_mut() {
                Some(held) => held.push(reply),
                None => {
                    let _ = reply.send(Ok(Vec::new()));
                }
            }
            logits
        }
    }
}

/// A receiver that already holds its value.
fn ready(value: Result<Vec<f32>, ModelError>) -> LogitsReceiver {
    let (tx, rx) = oneshot::channel();
    // The receiver is alive: the send cannot fail.
    let _ = tx.send(value);
    rx
}

#[cfg(test)]
mod tests {
    use super::*;

    fn noop() -> Runner {
        Runner::new(
            Inference::Noop { model: "m".into() },
            UriRoots::new(&[]).unwrap(),
        )
        .unwrap()
    }

    #[test]
    fn noop_scores_real_with_certainty() {
        let runner = noop();
        let preds = runner.scores(vec![None; 2], Ok(Ok(Vec::new()))).unwrap();
        assert_eq!(preds.len(), 2);
        let r = runner.result("a".into(), 7, preds[0].clone());
        assert_eq!((r.id.as_str(), r.index, r.label.as_str()), ("a", 7, "Real"));
        let scores: Vec<(&str, f32)> = r
            .scores
            .iter()
            .map(|s| (s.label.as_str(), s.score))
            .collect();
        assert_eq!(scores, [("Real", 1.0), ("Fake", 0.0)]);
        assert_eq!(r.fake_score, Some(0.0));
        let model = r.model.unwrap();
        assert_eq!((model.name.as_str(), model.sha256.as_str()), ("m", "noop"));
        assert!(r.error.is_empty() && r.cursor == 0);
    }

    #[test]
    fn a_failed_batch_fails_its_items_and_a_stopped_engine_stops_the_worker() {
        let runner = noop();
        let preds = runner
            .scores(
                vec![None; 3],
                Ok(Err(ModelError::Torch("out of memory".into()))),
            )
            .unwrap();
        assert_eq!(preds.len(), 3);
        assert!(preds
            .iter()
            .all(|p| p.as_ref().unwrap_err().contains("out of memory")));
        let r = runner.result("b".into(), 1, preds[0].clone());
        assert!(r.error.contains("out of memory") && r.fake_score.is_none());
        assert!(matches!(
            runner.scores(vec![None], Ok(Err(ModelError::EngineStopped))),
            Err(WorkerError::Engine(_))
        ));
    }

    /// A decoder takes its rows all at once (an item larger than the budget
    /// takes the whole budget) and goes on as soon as the rows ahead of it
    /// are released.
    #[tokio::test(flavor = "multi_thread")]
    async fn the_rows_budget_admits_an_oversized_item_alone() {
        let budget = RowBudget::new(4);
        let ahead = budget.wait_for_off_runtime(3).await;
        assert_eq!(ahead.num_permits(), 3);
        let waiting = {
            let budget = budget.clone();
            std::thread::spawn(move || budget.wait_for(512).unwrap())
        };
        // It cannot have all four rows while three are held.
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert!(!waiting.is_finished());
        drop(ahead);
        let alone = tokio::task::spawn_blocking(move || waiting.join().unwrap())
            .await
            .unwrap();
        assert_eq!(alone.num_permits(), 4);
        assert_eq!(budget.rows.available_permits(), 0);
    }
}
