//! `dfscan train`: fine-tunes `ViTForImageClassification` checkpoints on
//! the same libtorch engine that scores, so a trained checkpoint goes
//! straight into the workers. Data loading decodes on a CPU pool; the
//! model, augmentation and optimizer run on the calling thread's device.

mod dataset;
mod error;
mod loader;
mod model;
mod optim;
mod pixels;
mod state;
mod trainer;

pub use dfscan_core::settings::train::{
    BestMetric, ClassWeights, Schedule, TrainSettings, DEFAULT_BASE,
};
pub use error::TrainError;
pub use state::EpochRecord;
pub use trainer::{train, Observer, StepStats, TrainJob, TrainSummary};
