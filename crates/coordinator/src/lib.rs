//! dfscan's coordinator: the gRPC front door of a scoring cluster. It
//! validates uploads and cuts them into queue tasks, answers questions about
//! jobs, models and workers, and streams results back, all through a
//! [`dfscan_queue::JobQueue`]: it keeps no state of its own, so several
//! coordinators can share one queue and any of them can be restarted.
//!
//! It serves two APIs on one port: dfscan's own `dfscan.v1.Scoring` (jobs
//! of any size) and the KServe v2 / Open Inference Protocol (online calls
//! of a few images, [`KserveService`]), both over the same queue.
//!
//! `dfscan-process` binds the listener, picks the queue backend and calls
//! [`serve`].

mod auth;
mod callbacks;
mod cancel;
mod error;
mod health;
mod kserve;
mod metrics;
mod server;
mod service;
mod settings;

pub use auth::check_auth_settings;
pub use error::CoordinatorError;
pub use kserve::KserveService;
pub use metrics::CoordinatorMetrics;
pub use server::serve;
pub use service::ScoringService;
pub use settings::{AuthSettings, CoordinatorSettings, TlsSettings, MAX_TASK_SIZE};
