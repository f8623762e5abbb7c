//! The dfscan worker: one process, one model on one device, pulling its
//! model's tasks from the job queue (Redis Streams or in memory) and
//! recording a result for every item.
//!
//! ```text
//! claim ──► dispatch ──► decode (rayon) ──► batch ──► model thread
//!   (prefetch bound)  (items, rows)    (≤ max_batch,   (≤ 2 batches)
//!                                        any tasks)        │
//! queue.complete ◄── task finished ◄── results per item ◄──┘
//! ```
//!
//! Every stage is bounded (tasks ahead, items at the decoders and rows
//! decoded ahead, batches at the model), so memory does not grow with the queue. Shutdown stops the
//! claimer; the stages behind it then run dry in order.

mod backoff;
mod batcher;
mod cancel;
mod claim;
mod complete;
mod dispatch;
mod error;
mod health;
mod keepalive;
mod metrics;
mod scoring;
mod settings;
mod task;
mod uri;
mod worker;

pub use error::WorkerError;
pub use health::Health;
pub use metrics::WorkerMetrics;
pub use scoring::Inference;
pub use settings::WorkerSettings;
pub use uri::URI_DISABLED;
pub use worker::{Worker, WorkerReport};
