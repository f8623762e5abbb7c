//! Types every dfscan crate shares: what a score is, which device and
//! precision run the model, the layered configuration, and evaluation
//! metrics. Deliberately free of tokio, tonic and tch so the queue,
//! coordinator and clients can use it without linking libtorch.

pub mod device;
pub mod error;
pub mod metrics;
pub mod prediction;
pub mod settings;

pub use device::{DType, DeviceRequest};
pub use error::CoreError;
pub use prediction::{ModelIdentity, Prediction};
