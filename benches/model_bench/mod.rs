//! What the single-model benchmarks (`forward`, `explain`) share: the flags
//! that say which checkpoint runs how, loading it as the classifier alone
//! (faces off: the model's own passes are what is measured), and the
//! median they report.

use std::time::Duration;

use dfscan_core::settings::ModelSettings;
use dfscan_core::{DType, DeviceRequest};
use dfscan_model::Engine;

#[derive(clap::Args)]
pub struct ModelFlags {
    /// The checkpoint measured.
    pub model: String,
    #[arg(long, default_value = "f32")]
    pub dtype: DType,
    #[arg(long, default_value = "cpu")]
    pub device: DeviceRequest,
    /// Timed runs (the median is reported).
    #[arg(long, default_value_t = 5, value_parser = clap::value_parser!(u64).range(1..))]
    pub iters: u64,
}

impl ModelFlags {
    /// The classifier on its model thread, for batches of `batch`.
    pub fn load(&self, batch: usize) -> anyhow::Result<Engine> {
        let settings = ModelSettings {
            model: self.model.clone(),
            device: self.device,
            dtype: self.dtype.into(),
            ..Default::default()
        };
        let classifier_only = dfscan_core::FaceSettings {
            mode: dfscan_core::FaceMode::Off,
            ..Default::default()
        };
        Ok(dfscan_model::load_engine(
            &settings,
            &classifier_only,
            batch,
        )?)
    }
}

pub fn median(mut times: Vec<Duration>) -> Duration {
    times.sort();
    times[times.len() / 2]
}
