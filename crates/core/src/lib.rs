//! Types every dfscan crate shares: what a score is, which device and
//! precision run the model, the layered configuration, evaluation metrics,
//! and retry pacing. Deliberately free of tokio, tonic and tch so the
//! queue, coordinator and clients can use it without linking libtorch.

pub mod device;
pub mod error;
pub mod explain;
pub mod faces;
pub mod item;
pub mod metrics;
mod names;
pub mod prediction;
pub mod retry;
pub mod settings;
pub mod video;

pub use device::{DType, DTypeRequest, DeviceRequest};
pub use error::CoreError;
pub use explain::{ExplainMethod, ExplainRequest, ExplainTarget, Explanation};
pub use faces::{FaceAggregation, FaceMode, FaceScore, FaceSettings, ImageScore, Outcome};
pub use item::ItemScore;
pub use prediction::{ModelIdentity, Prediction};
pub use retry::Backoff;
