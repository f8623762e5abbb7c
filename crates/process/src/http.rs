//! Serving a process's small HTTP endpoints (`/metrics`, the worker's
//! `/livez` and `/readyz`): one way to bind, log and run them, so that
//! every endpoint fails the start the same way when its address is taken.

use std::future::Future;
use std::net::SocketAddr;

use crate::ProcessError;

/// Binds `address` (failing the process's start when it cannot) and serves
/// `app` on it until `until` completes; returns the bound address.
pub(crate) async fn serve(
    address: &str,
    app: axum::Router,
    what: &'static str,
    until: impl Future<Output = ()> + Send + 'static,
) -> Result<SocketAddr, ProcessError> {
    let listen_error = |source| ProcessError::Listen {
        address: address.to_string(),
        source,
    };
    let listener = tokio::net::TcpListener::bind(address)
        .await
        .map_err(listen_error)?;
    let bound = listener.local_addr().map_err(listen_error)?;
    tracing::info!(address = %bound, "{what} listening");
    tokio::spawn(async move {
        let served = axum::serve(listener, app)
            .with_graceful_shutdown(until)
            .await;
        if let Err(error) = served {
            tracing::error!(%error, "the {what} endpoint failed");
        }
    });
    Ok(bound)
}
