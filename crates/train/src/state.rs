//! Resumable training state in `OUTPUT/checkpoint-last/`: the current
//! weights as a Hugging Face checkpoint, the optimizer's moments, and
//! where the run stands. It is written to a temporary folder and swapped
//! in, so an interruption at any moment leaves one complete state behind.

use std::path::{Path, PathBuf};

use dfscan_core::metrics::EvalReport;
use serde::{Deserialize, Serialize};

use crate::error::{io_error, TrainError};
use crate::model::{read_safetensors, write_safetensors, Classifier};
use crate::optim::AdamW;

pub const STATE_DIR: &str = "checkpoint-last";
const STATE_FILE: &str = "trainer_state.json";
const OPTIMIZER_FILE: &str = "optimizer.safetensors";
const FORMAT: u32 = 1;

/// One epoch's results.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EpochRecord {
    /// 1-based.
    pub epoch: usize,
    pub optimizer_steps: u64,
    /// Mean training loss over the epoch's batches.
    pub train_loss: f64,
    pub train_images: usize,
    /// Training throughput, images per second (of this process's share of
    /// the epoch when it was resumed).
    pub images_per_second: f64,
    pub val_loss: Option<f64>,
    pub eval: Option<EvalReport>,
    /// Whether this epoch's weights are the best so far (the output's).
    pub best: bool,
}

/// Where a run stands.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TrainerState {
    format: u32,
    /// The epoch in progress (0-based) and its next batch.
    pub epoch: usize,
    pub batch: usize,
    pub optimizer_steps: u64,
    /// Sum and count of the epoch-in-progress's batch losses.
    pub epoch_loss_sum: f64,
    pub epoch_batches: usize,
    pub epoch_images: usize,
    /// Dynamic loss scale of float16 mixed precision (1 otherwise).
    pub loss_scale: f64,
    pub good_steps: u64,
    /// Best validation value so far and the epoch (1-based) it came from.
    pub best: Option<(f64, usize)>,
    pub evals_without_improvement: usize,
    pub history: Vec<EpochRecord>,
    /// Images that could not be read or decoded.
    pub skipped: std::collections::BTreeSet<PathBuf>,
    pub labels: Vec<String>,
    pub train_images: usize,
    /// `TrainSettings::fingerprint` of the run.
    pub settings: serde_json::Value,
}

impl TrainerState {
    pub fn new(
        labels: Vec<String>,
        train_images: usize,
        settings: serde_json::Value,
        loss_scale: f64,
    ) -> Self {
        Self {
            format: FORMAT,
            epoch: 0,
            batch: 0,
            optimizer_steps: 0,
            epoch_loss_sum: 0.0,
            epoch_batches: 0,
            epoch_images: 0,
            loss_scale,
            good_steps: 0,
            best: None,
            evals_without_improvement: 0,
            history: Vec::new(),
            skipped: Default::default(),
            labels,
            train_images,
            settings,
        }
    }

    /// Closes the epoch in progress.
    pub fn next_epoch(&mut self) {
        self.epoch += 1;
        self.batch = 0;
        self.epoch_loss_sum = 0.0;
        self.epoch_batches = 0;
        self.epoch_images = 0;
    }

    /// Refuses to continue a run of other data or settings.
    pub fn check_compatible(&self, other: &TrainerState, dir: &Path) -> Result<(), TrainError> {
        let refuse = |reason: String| TrainError::Resume {
            path: dir.to_path_buf(),
            reason,
        };
        if self.labels != other.labels || self.train_images != other.train_images {
            return Err(refuse(format!(
                "it trained on {} images of {} and the data now has {} images of {}",
                self.train_images,
                self.labels.join(", "),
                other.train_images,
                other.labels.join(", ")
            )));
        }
        if self.settings != other.settings {
            let (a, b) = (self.settings.as_object(), other.settings.as_object());
            let changed: Vec<String> = a
                .zip(b)
                .map(|(a, b)| {
                    a.iter()
                        .filter(|(k, v)| b.get(*k) != Some(v))
                        .map(|(k, v)| {
                            format!("{k} was {v}, now {}", b.get(k).cloned().unwrap_or_default())
                        })
                        .collect()
                })
                .unwrap_or_default();
            return Err(refuse(format!(
                "the settings changed ({}); only epochs, patience, save_steps and log_steps may",
                changed.join("; ")
            )));
        }
        Ok(())
    }
}

/// `OUTPUT/checkpoint-last`.
pub fn state_dir(output: &Path) -> PathBuf {
    output.join(STATE_DIR)
}

/// Saves model, optimizer and state into `output`'s state folder.
pub fn save(
    output: &Path,
    model: &Classifier,
    optimizer: &AdamW,
    state: &TrainerState,
) -> Result<(), TrainError> {
    let dir = state_dir(output);
    let tmp = output.join(format!("{STATE_DIR}.tmp"));
    let old = output.join(format!("{STATE_DIR}.old"));
    for stale in [&tmp, &old] {
        if stale.exists() {
            std::fs::remove_dir_all(stale).map_err(io_error(stale))?;
        }
    }
    std::fs::create_dir_all(&tmp).map_err(io_error(&tmp))?;
    model.save(&tmp)?;
    write_safetensors(&tmp.join(OPTIMIZER_FILE), optimizer.state())?;
    let text = serde_json::to_string_pretty(state).expect("json");
    std::fs::write(tmp.join(STATE_FILE), text).map_err(io_error(tmp.join(STATE_FILE)))?;
    if dir.exists() {
        std::fs::rename(&dir, &old).map_err(io_error(&dir))?;
    }
    std::fs::rename(&tmp, &dir).map_err(io_error(&tmp))?;
    if old.exists() {
        std::fs::remove_dir_all(&old).map_err(io_error(&old))?;
    }
    Ok(())
}

/// The saved state folder of `output`, if a run left one (an interrupted
/// swap leaves the previous one as `.old`).
pub fn find(output: &Path) -> Option<PathBuf> {
    [state_dir(output), output.join(format!("{STATE_DIR}.old"))]
        .into_iter()
        .find(|d| d.join(STATE_FILE).is_file())
}

/// Reads the state of `dir` and restores the optimizer's moments.
pub fn load(dir: &Path, optimizer: &mut AdamW) -> Result<TrainerState, TrainError> {
    let refuse = |reason: String| TrainError::Resume {
        path: dir.to_path_buf(),
        reason,
    };
    let path = dir.join(STATE_FILE);
    let text = std::fs::read_to_string(&path).map_err(io_error(&path))?;
    let state: TrainerState =
        serde_json::from_str(&text).map_err(|e| refuse(format!("{STATE_FILE}: {e}")))?;
    if state.format != FORMAT {
        return Err(refuse(format!(
            "state format {} (this dfscan writes {FORMAT})",
            state.format
        )));
    }
    let moments = read_safetensors(&dir.join(OPTIMIZER_FILE))?;
    optimizer
        .restore(moments, state.optimizer_steps)
        .map_err(refuse)?;
    Ok(state)
}
