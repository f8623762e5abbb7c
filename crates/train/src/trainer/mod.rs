//! The training loop, on the calling thread (the only one that touches
//! libtorch): epochs of shuffled, augmented batches; AdamW steps after
//! `grad_accum` batches with warmup and decay; evaluation after each epoch
//! with `dfscan eval`'s metrics; the best weights kept as the output
//! checkpoint; early stopping; resumable state after every epoch, every
//! `save_steps` steps and on interruption.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Instant;

use dfscan_core::settings::ModelSettings;
use dfscan_core::{DType, DTypeRequest};
use dfscan_model::autocast::autocast;
use dfscan_model::engine::{device_name, resolve_device};
use dfscan_model::hub::{self, HubOptions};
use dfscan_model::labels::resolve_labels;
use rand::seq::SliceRandom;
use rand::SeedableRng;
use serde::Serialize;
use tch::{Device, Kind, Reduction, Tensor};

use crate::dataset::{discover, Sample};
use crate::error::{io_error, TrainError};
use crate::loader::{Batch, ImageSpec, Loader};
use crate::model::{Classifier, Head};
use crate::optim::{learning_rate, AdamW};
use crate::pixels::{mix, Augment, PixelPipeline};
use crate::state::{self, EpochRecord, TrainerState};
use crate::{BestMetric, ClassWeights, TrainSettings};

mod evaluation;

/// One training run.
#[derive(Debug, Clone)]
pub struct TrainJob {
    pub data: PathBuf,
    pub output: PathBuf,
    /// Continue the run saved in `output` instead of starting one.
    pub resume: bool,
    pub train: TrainSettings,
    /// Device, dtype, threads, decode threads, fake label, hub revision and
    /// image limits, shared with scoring.
    pub model: ModelSettings,
}

/// Progress after an optimizer step.
#[derive(Debug, Clone)]
pub struct StepStats {
    /// 0-based epoch and its batches done / in all.
    pub epoch: usize,
    pub batches_done: usize,
    pub batches: usize,
    pub optimizer_steps: u64,
    pub total_steps: u64,
    /// Mean loss of the epoch so far.
    pub loss: f64,
    pub lr: f64,
    pub images_per_second: f64,
}

/// What a front end shows while training runs.
pub trait Observer {
    /// Training starts or resumes: what is trained on what.
    fn started(&self, summary: &str);
    fn epoch_started(&self, epoch: usize, epochs: usize, batches: usize, first_batch: usize);
    fn step(&self, stats: &StepStats);
    fn epoch_finished(&self, record: &EpochRecord);
    fn image_skipped(&self, path: &Path, error: &str);
}

/// How a finished run went; also written to `OUTPUT/training_report.json`.
#[derive(Debug, Clone, Serialize)]
pub struct TrainSummary {
    pub output: PathBuf,
    pub labels: Vec<String>,
    pub device: String,
    pub train_images: usize,
    pub val_images: usize,
    /// The epoch (1-based) whose weights are in `output`.
    pub best_epoch: Option<usize>,
    pub best_metric: BestMetric,
    pub stopped_early: bool,
    pub skipped_images: Vec<PathBuf>,
    pub history: Vec<EpochRecord>,
}

/// Everything one run needs besides the model and its state.
struct Run<'a> {
    job: &'a TrainJob,
    s: &'a TrainSettings,
    train: Arc<Vec<Sample>>,
    val: Arc<Vec<Sample>>,
    spec: ImageSpec,
    pool: Arc<rayon::ThreadPool>,
    pipeline: PixelPipeline,
    device: Device,
    /// Autocast precision of forward passes (`F32`: none); the weights,
    /// gradients and optimizer stay float32.
    precision: DType,
    /// float16's dynamic loss scaling.
    loss_scaling: bool,
    class_weights: Option<Tensor>,
    fake_index: usize,
    batches: usize,
    total_steps: u64,
    observer: &'a dyn Observer,
    stop: &'a AtomicBool,
}

/// Trains as `job` says; returns once the epochs ran or early stopping
/// ended them, or with [`TrainError::Interrupted`] when `stop` was set
/// (the state is saved first).
pub fn train(
    job: &TrainJob,
    observer: &dyn Observer,
    stop: &AtomicBool,
) -> Result<TrainSummary, TrainError> {
    let s = &job.train;
    s.validate().map_err(TrainError::Settings)?;
    let device = resolve_device(job.model.device)?;
    // Mixed precision is opted into: `auto` picks inference's precision
    // for this host, which says nothing of how training converges in it.
    let precision = match job.model.dtype {
        DTypeRequest::Exact(dtype) => dtype,
        DTypeRequest::Auto => DType::F32,
    };
    if precision == DType::F16 && !device.is_cuda() {
        return Err(TrainError::Settings(
            "f16 mixed precision needs a CUDA device; on CPU train in bf16 or f32".into(),
        ));
    }
    let loss_scaling = precision == DType::F16;
    if job.model.threads > 0 {
        tch::set_num_threads(job.model.threads as i32);
    }
    let mut splits = discover(&job.data, s.val_fraction, s.seed)?;
    let saved = state::find(&job.output);
    let resume_from = match (job.resume, saved) {
        (true, Some(dir)) => Some(dir),
        (true, None) => {
            return Err(TrainError::Resume {
                path: job.output.clone(),
                reason: "no saved training state there".into(),
            })
        }
        (false, Some(dir)) => {
            return Err(TrainError::Settings(format!(
                "{} holds a training run ({}): pass --resume to continue it, or choose another --output",
                job.output.display(),
                dir.display()
            )))
        }
        (false, None) => None,
    };
    let base = match &resume_from {
        Some(dir) => dir.clone(),
        None => {
            let hub = HubOptions {
                setting: hub::Setting {
                    flag: "--base",
                    env: "DFSCAN_TRAIN__BASE",
                },
                ..HubOptions::from_env(&job.model.revision)
            };
            hub::resolve(&s.base, &hub)?.0
        }
    };
    let mut classifier = Classifier::from_base(&base, &splits.labels, device, s.seed)?;
    splits.reorder_labels(&classifier.labels);
    let (_, fake_index) =
        resolve_labels(&classifier.labels, None, job.model.fake_label.as_deref())?;
    let mut optimizer = AdamW::new(&classifier.vars, s);
    let mut st = TrainerState::new(
        classifier.labels.clone(),
        splits.train.len(),
        s.fingerprint(),
        if loss_scaling { 65536.0 } else { 1.0 },
    );
    if let Some(dir) = &resume_from {
        let saved = state::load(dir, &mut optimizer)?;
        saved.check_compatible(&st, dir)?;
        st = saved;
    }
    std::fs::create_dir_all(&job.output).map_err(io_error(&job.output))?;

    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(job.model.decode_threads)
        .thread_name(|i| format!("dfscan-decode-{i}"))
        .build()
        .map_err(|e| TrainError::Spawn(format!("the decode pool: {e}")))?;
    let batches = splits.train.len().div_ceil(s.batch_size);
    let steps_per_epoch = batches.div_ceil(s.grad_accum) as u64;
    let mut run = Run {
        job,
        s,
        class_weights: class_weights(&s.class_weights, &splits.class_counts(), device),
        train: Arc::new(splits.train),
        val: Arc::new(splits.val),
        spec: ImageSpec {
            preprocessor: classifier.preprocessor.clone(),
            limits: dfscan_model::decode_limits(&job.model),
        },
        pool: Arc::new(pool),
        pipeline: PixelPipeline::new(
            &classifier.preprocessor,
            device,
            Augment::from_settings(s),
            s.seed,
        ),
        device,
        precision,
        loss_scaling,
        fake_index,
        batches,
        total_steps: steps_per_epoch * s.epochs as u64,
        observer,
        stop,
    };
    let head = match &classifier.head {
        Head::Kept => "its head kept".to_string(),
        Head::New { replaced: None } => "a new head".to_string(),
        Head::New {
            replaced: Some(old),
        } => format!("a new head (replacing one for {})", old.join(", ")),
    };
    observer.started(&format!(
        "{} from {} ({head}) on {}: {} training and {} validation images of {}{}",
        if resume_from.is_some() {
            "resuming"
        } else {
            "training"
        },
        s.base,
        device_name(device),
        run.train.len(),
        run.val.len(),
        classifier.labels.join(", "),
        if resume_from.is_some() {
            format!(", at epoch {} batch {}", st.epoch + 1, st.batch)
        } else {
            String::new()
        }
    ));
    let stopped_early = run.epochs(&mut classifier, &mut optimizer, &mut st)?;
    let summary = TrainSummary {
        output: job.output.clone(),
        labels: classifier.labels.clone(),
        device: device_name(device),
        train_images: run.train.len(),
        val_images: run.val.len(),
        best_epoch: st
            .best
            .map(|(_, e)| e)
            .or(st.history.last().map(|r| r.epoch)),
        best_metric: s.best_metric,
        stopped_early,
        skipped_images: st.skipped.iter().cloned().collect(),
        history: st.history.clone(),
    };
    let report = job.output.join("training_report.json");
    std::fs::write(
        &report,
        serde_json::to_string_pretty(&summary).expect("json"),
    )
    .map_err(io_error(&report))?;
    Ok(summary)
}

impl Run<'_> {
    /// Runs the remaining epochs; true when early stopping ended them.
    fn epochs(
        &mut self,
        classifier: &mut Classifier,
        optimizer: &mut AdamW,
        st: &mut TrainerState,
    ) -> Result<bool, TrainError> {
        while st.epoch < self.s.epochs {
            if self.s.patience > 0 && st.evals_without_improvement >= self.s.patience {
                return Ok(true);
            }
            self.observer
                .epoch_started(st.epoch, self.s.epochs, self.batches, st.batch);
            let started = Instant::now();
            let images_before = st.epoch_images;
            self.train_epoch(classifier, optimizer, st, started)?;
            let seconds = started.elapsed().as_secs_f64();
            let images_per_second = (st.epoch_images - images_before) as f64 / seconds.max(1e-9);
            let record = self.end_epoch(classifier, st, images_per_second)?;
            self.observer.epoch_finished(&record);
            st.history.push(record);
            st.next_epoch();
            state::save(&self.job.output, classifier, optimizer, st)?;
            if st.epoch < self.s.epochs && self.stop.load(Ordering::Relaxed) {
                return Err(self.interrupted());
            }
        }
        Ok(self.s.patience > 0 && st.evals_without_improvement >= self.s.patience)
    }

    fn train_epoch(
        &mut self,
        classifier: &mut Classifier,
        optimizer: &mut AdamW,
        st: &mut TrainerState,
        started: Instant,
    ) -> Result<(), TrainError> {
        let loader = Loader::start(
            self.train.clone(),
            epoch_order(self.train.len(), self.s.seed, st.epoch),
            self.s.batch_size,
            st.batch,
            self.spec.clone(),
            self.pool.clone(),
        )?;
        let images_before = st.epoch_images;
        for batch in loader {
            self.note_skipped(&batch, st);
            if !batch.is_empty() {
                let loss = self.forward_backward(classifier, &batch, st)?;
                st.epoch_loss_sum += loss;
                st.epoch_batches += 1;
                st.epoch_images += batch.len();
            }
            st.batch += 1;
            if !st.batch.is_multiple_of(self.s.grad_accum) && st.batch != self.batches {
                continue;
            }
            let lr = self.optimizer_step(optimizer, st);
            self.observer.step(&StepStats {
                epoch: st.epoch,
                batches_done: st.batch,
                batches: self.batches,
                optimizer_steps: st.optimizer_steps,
                total_steps: self.total_steps,
                loss: st.epoch_loss_sum / st.epoch_batches.max(1) as f64,
                lr,
                images_per_second: (st.epoch_images - images_before) as f64
                    / started.elapsed().as_secs_f64().max(1e-9),
            });
            if st.batch == self.batches {
                break;
            }
            let periodic = self.s.save_steps > 0
                && st.optimizer_steps.is_multiple_of(self.s.save_steps as u64);
            let stopping = self.stop.load(Ordering::Relaxed);
            if periodic || stopping {
                state::save(&self.job.output, classifier, optimizer, st)?;
            }
            if stopping {
                return Err(self.interrupted());
            }
        }
        Ok(())
    }

    /// The error of a run stopped by a signal, once its state is saved.
    fn interrupted(&self) -> TrainError {
        TrainError::Interrupted {
            state: state::state_dir(&self.job.output),
        }
    }

    fn note_skipped(&self, batch: &Batch, st: &mut TrainerState) {
        for (path, error) in &batch.failed {
            if st.skipped.insert(path.clone()) {
                self.observer.image_skipped(path, error);
            }
        }
    }

    /// Loss of one batch, its gradients added to the parameters'.
    fn forward_backward(
        &self,
        classifier: &Classifier,
        batch: &Batch,
        st: &TrainerState,
    ) -> Result<f64, TrainError> {
        let x = self
            .pipeline
            .train_input(&batch.pixels, &batch.positions, st.epoch);
        let y = Tensor::from_slice(&batch.labels).to_device(self.device);
        let logits = autocast(self.device, self.precision, || classifier.model.forward(&x))?;
        let loss = logits.to_kind(Kind::Float).cross_entropy_loss(
            &y,
            self.class_weights.as_ref(),
            Reduction::Mean,
            -100,
            self.s.label_smoothing,
        );
        let value = f64::try_from(&loss)?;
        if !value.is_finite() && !self.loss_scaling {
            return Err(TrainError::Diverged {
                step: st.optimizer_steps as usize,
            });
        }
        (loss * (st.loss_scale / self.s.grad_accum as f64)).backward();
        Ok(value)
    }

    /// Unscales, clips and applies the accumulated gradients; returns the
    /// learning rate used. With float16, a step whose gradients overflowed
    /// is skipped and the loss scale halved (doubled after 2000 good steps).
    fn optimizer_step(&self, optimizer: &mut AdamW, st: &mut TrainerState) -> f64 {
        if st.loss_scale != 1.0 {
            optimizer.scale_grads(1.0 / st.loss_scale);
        }
        let norm = optimizer.grad_norm();
        let lr = learning_rate(
            self.s.schedule,
            self.s.lr,
            self.s.warmup_steps,
            self.total_steps as usize,
            st.optimizer_steps as usize,
        );
        if self.loss_scaling && !norm.is_finite() {
            st.loss_scale /= 2.0;
            st.good_steps = 0;
            tracing::warn!(
                loss_scale = st.loss_scale,
                "float16 gradients overflowed; step skipped"
            );
            optimizer.zero_grad();
            return lr;
        }
        if self.s.max_grad_norm > 0.0 && norm > self.s.max_grad_norm {
            optimizer.scale_grads(self.s.max_grad_norm / (norm + 1e-6));
        }
        optimizer.step(lr);
        optimizer.zero_grad();
        st.optimizer_steps += 1;
        if self.loss_scaling {
            st.good_steps += 1;
            if st.good_steps.is_multiple_of(2000) {
                st.loss_scale *= 2.0;
            }
        }
        lr
    }
}

/// Epoch `epoch`'s order of the `n` training images.
fn epoch_order(n: usize, seed: u64, epoch: usize) -> Vec<usize> {
    let mut order: Vec<usize> = (0..n).collect();
    let mut rng = rand::rngs::StdRng::seed_from_u64(mix(&[seed, 0x5_0ff1e, epoch as u64]));
    order.shuffle(&mut rng);
    order
}

fn class_weights(weights: &ClassWeights, counts: &[usize], device: Device) -> Option<Tensor> {
    match weights {
        ClassWeights::None => None,
        ClassWeights::Balanced => {
            let total: usize = counts.iter().sum();
            let w: Vec<f32> = counts
                .iter()
                .map(|&c| total as f32 / (counts.len() * c.max(1)) as f32)
                .collect();
            Some(Tensor::from_slice(&w).to_device(device))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn balanced_class_weights_as_scikit_learn() {
        let w = class_weights(&ClassWeights::Balanced, &[30, 10], Device::Cpu).unwrap();
        assert_eq!(Vec::<f32>::try_from(w).unwrap(), [40.0 / 60.0, 40.0 / 20.0]);
        assert!(class_weights(&ClassWeights::None, &[30, 10], Device::Cpu).is_none());
    }

    #[test]
    fn each_epoch_has_its_own_order_of_every_image() {
        let a = epoch_order(50, 1, 0);
        let mut sorted = a.clone();
        sorted.sort();
        assert_eq!(sorted, (0..50).collect::<Vec<_>>());
        assert_eq!(a, epoch_order(50, 1, 0));
        assert_ne!(a, epoch_order(50, 1, 1));
        assert_ne!(a, epoch_order(50, 2, 0));
    }
}
