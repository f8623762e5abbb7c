//! The flags every model-running subcommand shares, and `--batch-size` of
//! those that score in their own process (a worker's batch is
//! `worker.max_batch`). Each one is optional so that an absent flag leaves
//! the config file or environment value in force.

use std::path::Path;

use clap::Args;
use dfscan_core::settings::ModelSettings;
use dfscan_process::settings;

#[derive(Args, Debug, Default)]
pub struct ModelArgs {
    /// Hugging Face hub id or local checkpoint directory [default: prithivMLmods/Deep-Fake-Detector-Model]
    #[arg(long)]
    model: Option<String>,
    #[command(flatten)]
    runtime: RuntimeArgs,
    /// f32, bf16 or f16 [default: f32]
    #[arg(long)]
    dtype: Option<String>,
    /// Comma-separated label names in class order, replacing the checkpoint's id2label
    #[arg(long)]
    labels: Option<String>,
    /// Largest image file accepted, in bytes [default: 67108864]
    #[arg(long)]
    max_image_bytes: Option<u64>,
    /// Largest decoded image accepted, in pixels [default: 89478485]
    #[arg(long)]
    max_image_pixels: Option<u64>,
}

impl ModelArgs {
    /// The flags given, as (settings key, value) overrides.
    pub fn overrides(&self) -> Vec<(&'static str, Option<String>)> {
        let mut overrides = vec![
            ("model", self.model.clone()),
            ("dtype", self.dtype.clone()),
            (
                "max_image_bytes",
                self.max_image_bytes.map(|v| v.to_string()),
            ),
            (
                "max_image_pixels",
                self.max_image_pixels.map(|v| v.to_string()),
            ),
        ];
        overrides.extend(self.runtime.overrides());
        overrides
    }

    /// List-valued flags, which the key/value overrides cannot carry.
    pub fn apply_lists(&self, settings: &mut ModelSettings) {
        if let Some(labels) = &self.labels {
            settings.labels = Some(labels.split(',').map(|l| l.trim().to_string()).collect());
        }
    }
}

/// The flags of `score` and `eval`, which batch the images themselves.
#[derive(Args, Debug, Default)]
pub struct ScoringArgs {
    #[command(flatten)]
    model: ModelArgs,
    /// Images per forward pass [default: 32]
    #[arg(long)]
    batch_size: Option<usize>,
}

impl ScoringArgs {
    /// Settings from defaults ← `config` file ← `DFSCAN_*` ← these flags.
    pub fn settings(&self, config: Option<&Path>) -> anyhow::Result<ModelSettings> {
        let mut overrides = self.model.overrides();
        overrides.push(("batch_size", self.batch_size.map(|v| v.to_string())));
        let mut settings: ModelSettings = settings::load(config, &overrides)?;
        self.model.apply_lists(&mut settings);
        Ok(settings)
    }
}

/// Where a model comes from and runs, shared by scoring and training.
#[derive(Args, Debug, Default)]
pub struct RuntimeArgs {
    /// Hub revision (branch, tag or commit) [default: main]
    #[arg(long)]
    revision: Option<String>,
    /// cpu, cuda, cuda:N or auto (CUDA when present) [default: auto]
    #[arg(long)]
    device: Option<String>,
    /// libtorch threads, 0 = one per core [default: 0]
    #[arg(long)]
    threads: Option<usize>,
    /// Image decoding threads, 0 = one per core [default: 0]
    #[arg(long)]
    decode_threads: Option<usize>,
    /// Label whose probability is fake_score [default: the label named fake or deepfake]
    #[arg(long)]
    fake_label: Option<String>,
}

impl RuntimeArgs {
    /// The flags given, as (settings key, value) overrides.
    pub fn overrides(&self) -> Vec<(&'static str, Option<String>)> {
        vec![
            ("revision", self.revision.clone()),
            ("device", self.device.clone()),
            ("threads", self.threads.map(|v| v.to_string())),
            ("decode_threads", self.decode_threads.map(|v| v.to_string())),
            ("fake_label", self.fake_label.clone()),
        ]
    }
}
