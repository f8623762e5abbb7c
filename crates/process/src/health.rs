//! The health endpoint of a worker process: `GET /livez` and `GET /readyz`
//! for Kubernetes' liveness, readiness and startup probes. A worker serves
//! no other port (metrics are optional), so without this the kubelet could
//! neither restart a hung worker nor tell a rolling update when a new one
//! has its model loaded.
//!
//! What the answers mean is the worker's (`dfscan_worker::Health`); this
//! module only serves them, since the worker crate links libtorch and this
//! one must not.

use std::future::pending;
use std::net::SocketAddr;
use std::sync::Arc;

use axum::http::StatusCode;

use crate::ProcessError;

/// One probe's check: `Ok(body)` answers 200, `Err(reason)` 503.
pub type Check = Arc<dyn Fn() -> Result<String, String> + Send + Sync>;

/// The checks behind `/livez` and `/readyz`.
pub struct Probes {
    pub live: Check,
    pub ready: Check,
}

/// Binds `address` (failing the process's start when it cannot) and answers
/// probes for as long as the runtime runs. Not stopped by the shutdown
/// token: a draining worker must go on answering (503 on `/readyz`, and
/// `/livez` as long as the drain progresses) until it exits.
pub async fn start(address: &str, probes: Probes) -> Result<SocketAddr, ProcessError> {
    let app = axum::Router::new()
        .route(
            "/livez",
            axum::routing::get(move || answer(probes.live.clone())),
        )
        .route(
            "/readyz",
            axum::routing::get(move || answer(probes.ready.clone())),
        );
    crate::http::serve(address, app, "health (/livez, /readyz)", pending()).await
}

async fn answer(check: Check) -> (StatusCode, String) {
    match check() {
        Ok(body) => (StatusCode::OK, body + "\n"),
        Err(reason) => (StatusCode::SERVICE_UNAVAILABLE, reason + "\n"),
    }
}
