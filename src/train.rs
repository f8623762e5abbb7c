//! `dfscan train`: flags and configuration for fine-tuning, a progress bar
//! (or periodic log lines when stderr is not a terminal), and Ctrl-C /
//! SIGTERM turned into "save the state and stop".

use std::cell::RefCell;
use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use clap::Args;
use dfscan_core::settings::ModelSettings;
use dfscan_process::settings::{self, FlagKeys};
use dfscan_train::{BestMetric, EpochRecord, Observer, StepStats, TrainJob, TrainSettings};
use indicatif::{ProgressBar, ProgressStyle};
use serde::{Deserialize, Serialize};

use crate::model_args::RuntimeArgs;

#[derive(Args, Serialize)]
#[command(mut_args(settings::show_defaults(Self::KEYS)))]
pub struct TrainArgs {
    /// Folder with train/ (and optionally val/) holding one subfolder per label, or train.csv|jsonl (and val.csv|jsonl) manifests of path,label
    #[arg(long)]
    data: PathBuf,
    /// Folder for the trained checkpoint (the best epoch's), its report and the resumable state
    #[arg(long)]
    output: PathBuf,
    /// Continue the run saved in --output after an interruption
    #[arg(long)]
    resume: bool,
    /// Hub id or checkpoint directory to start from, with or without a head
    #[arg(long)]
    base: Option<String>,
    #[command(flatten)]
    #[serde(skip)]
    runtime: RuntimeArgs,
    /// f32, or mixed precision: bf16 (CPU or CUDA) or f16 (CUDA, loss scaling)
    #[arg(long)]
    dtype: Option<String>,
    /// Passes over the training set
    #[arg(long)]
    epochs: Option<usize>,
    /// Images per batch
    #[arg(long)]
    batch_size: Option<usize>,
    /// Batches per optimizer step
    #[arg(long)]
    grad_accum: Option<usize>,
    /// Peak AdamW learning rate
    #[arg(long)]
    lr: Option<f64>,
    /// AdamW weight decay
    #[arg(long)]
    weight_decay: Option<f64>,
    /// Optimizer steps of linear learning-rate warmup
    #[arg(long)]
    warmup: Option<usize>,
    /// Learning-rate decay after warmup: linear, cosine or constant
    #[arg(long)]
    schedule: Option<String>,
    /// Clip gradients to this global norm, 0 = off
    #[arg(long)]
    max_grad_norm: Option<f64>,
    /// Largest random rotation in degrees, 0 = off
    #[arg(long)]
    rotation: Option<f64>,
    /// Probability of random sharpening
    #[arg(long)]
    sharpness_p: Option<f64>,
    /// Sharpness factor of random sharpening
    #[arg(long)]
    sharpness_factor: Option<f64>,
    /// Smallest area fraction of a random resized crop, 1 = off
    #[arg(long)]
    crop_scale: Option<f64>,
    /// Probability of a horizontal flip
    #[arg(long)]
    hflip: Option<f64>,
    /// Train without any augmentation
    #[arg(long)]
    no_augment: bool,
    /// none, or balanced to weight the loss against class imbalance
    #[arg(long)]
    class_weights: Option<String>,
    /// Cross-entropy label smoothing
    #[arg(long)]
    label_smoothing: Option<f64>,
    /// Fraction of train/ held out for validation when there is no val split (beside one, an error); none: no hold-out
    #[arg(long)]
    val_fraction: Option<f64>,
    /// accuracy, macro_f1, roc_auc or loss: picks the best epoch
    #[arg(long)]
    best_metric: Option<String>,
    /// Stop after this many epochs without improvement, 0 = never
    #[arg(long)]
    patience: Option<usize>,
    /// Seed of the head's initialisation, data order, augmentation and split
    #[arg(long)]
    seed: Option<u64>,
    /// Also save resumable state every N optimizer steps, 0 = at epoch ends only
    #[arg(long)]
    save_steps: Option<usize>,
    /// Log a progress line every N optimizer steps when stderr is not a terminal
    #[arg(long)]
    log_steps: Option<usize>,
}

/// The sections `dfscan train` reads.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct TrainConfig {
    /// The top-level keys, read on their own (see `ClusterConfig::model`).
    #[serde(skip)]
    model: ModelSettings,
    train: TrainSettings,
}

impl TrainArgs {
    const KEYS: FlagKeys = &[
        ("base", "train.base"),
        ("dtype", "dtype"),
        ("epochs", "train.epochs"),
        ("batch_size", "train.batch_size"),
        ("grad_accum", "train.grad_accum"),
        ("lr", "train.lr"),
        ("weight_decay", "train.weight_decay"),
        ("warmup", "train.warmup_steps"),
        ("schedule", "train.schedule"),
        ("max_grad_norm", "train.max_grad_norm"),
        ("rotation", "train.rotation"),
        ("sharpness_p", "train.sharpness_p"),
        ("sharpness_factor", "train.sharpness_factor"),
        ("crop_scale", "train.crop_scale"),
        ("hflip", "train.hflip_p"),
        ("no_augment", "train.no_augment"),
        ("class_weights", "train.class_weights"),
        ("label_smoothing", "train.label_smoothing"),
        ("val_fraction", "train.val_fraction"),
        ("best_metric", "train.best_metric"),
        ("patience", "train.patience"),
        ("seed", "train.seed"),
        ("save_steps", "train.save_steps"),
        ("log_steps", "train.log_steps"),
    ];

    fn overrides(&self) -> Vec<(&'static str, Option<String>)> {
        let mut overrides = self.runtime.overrides();
        overrides.extend(settings::flag_overrides(self, Self::KEYS));
        overrides
    }
}

pub fn run(config: Option<&Path>, args: TrainArgs) -> anyhow::Result<bool> {
    let overrides = args.overrides();
    let mut cfg: TrainConfig = settings::load(config, &overrides)?;
    cfg.model = settings::load(config, &overrides)?;
    let job = TrainJob {
        data: args.data,
        output: args.output,
        resume: args.resume,
        train: cfg.train,
        model: cfg.model,
    };
    let stop = Arc::new(AtomicBool::new(false));
    let runtime = dfscan_process::runtime()?;
    let flag = stop.clone();
    runtime.spawn(async move {
        dfscan_process::shutdown_on_signals().cancelled().await;
        flag.store(true, Ordering::Relaxed);
    });
    let progress = Progress::new(job.train.log_steps);
    let summary = dfscan_train::train(&job, &progress, &stop)?;
    let best = summary
        .best_epoch
        .and_then(|e| summary.history.iter().find(|r| r.epoch == e));
    match best.and_then(|r| r.eval.as_ref()) {
        Some(report) => println!(
            "best epoch {} ({}):\n{report}",
            summary.best_epoch.unwrap_or_default(),
            metric_name(summary.best_metric)
        ),
        None => println!("no validation split: the output holds the last epoch's weights"),
    }
    if summary.stopped_early {
        println!(
            "stopped early: no improvement for {} epochs",
            job.train.patience
        );
    }
    println!(
        "checkpoint: {}  (dfscan score --model {} ...)",
        summary.output.display(),
        summary.output.display()
    );
    if !summary.skipped_images.is_empty() {
        println!(
            "{} images could not be read and were left out",
            summary.skipped_images.len()
        );
    }
    Ok(summary.skipped_images.is_empty())
}

fn metric_name(m: BestMetric) -> &'static str {
    match m {
        BestMetric::Accuracy => "accuracy",
        BestMetric::MacroF1 => "macro F1",
        BestMetric::RocAuc => "ROC AUC",
        BestMetric::Loss => "validation loss",
    }
}

/// The bar of the epoch in progress, or log lines without a terminal.
struct Progress {
    bar: RefCell<Option<ProgressBar>>,
    terminal: bool,
    log_steps: u64,
}

impl Progress {
    fn new(log_steps: usize) -> Self {
        Self {
            bar: RefCell::new(None),
            terminal: std::io::stderr().is_terminal(),
            log_steps: log_steps.max(1) as u64,
        }
    }
}

impl Observer for Progress {
    fn started(&self, summary: &str) {
        tracing::info!("{summary}");
    }

    fn epoch_started(&self, epoch: usize, epochs: usize, batches: usize, first_batch: usize) {
        if !self.terminal {
            return;
        }
        let bar = ProgressBar::new(batches as u64);
        bar.set_style(
            ProgressStyle::with_template(&format!(
                "epoch {}/{epochs} {{bar:30}} {{pos}}/{{len}} batches  {{msg}}  eta {{eta}}",
                epoch + 1
            ))
            .expect("valid template"),
        );
        bar.set_position(first_batch as u64);
        *self.bar.borrow_mut() = Some(bar);
    }

    fn step(&self, s: &StepStats) {
        let line = format!(
            "loss {:.4}  lr {:.2e}  {:.1} img/s",
            s.loss, s.lr, s.images_per_second
        );
        if let Some(bar) = self.bar.borrow().as_ref() {
            bar.set_position(s.batches_done as u64);
            bar.set_message(line);
        } else if s.optimizer_steps.is_multiple_of(self.log_steps) {
            tracing::info!(
                "epoch {} batch {}/{} step {}/{}: {line}",
                s.epoch + 1,
                s.batches_done,
                s.batches,
                s.optimizer_steps,
                s.total_steps
            );
        }
    }

    fn epoch_finished(&self, r: &EpochRecord) {
        if let Some(bar) = self.bar.borrow_mut().take() {
            bar.finish_and_clear();
        }
        let eval = match (&r.eval, r.val_loss) {
            (Some(e), Some(loss)) => format!(
                ", val loss {loss:.4}, accuracy {:.4}, macro F1 {:.4}, ROC AUC {}{}",
                e.accuracy,
                e.macro_avg.f1,
                e.roc_auc.map_or("n/a".into(), |a| format!("{a:.4}")),
                if r.best { " (best)" } else { "" }
            ),
            _ => String::new(),
        };
        tracing::info!(
            "epoch {}: train loss {:.4} ({:.1} img/s){eval}",
            r.epoch,
            r.train_loss,
            r.images_per_second
        );
    }

    fn image_skipped(&self, path: &Path, error: &str) {
        tracing::warn!("left out {}: {error}", path.display());
    }
}
