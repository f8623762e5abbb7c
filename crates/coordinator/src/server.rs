//! The gRPC server: the Scoring and KServe v2 services with their message
//! limits, the health service and server reflection (so `grpcurl` and
//! `grpc-health-probe` work with no .proto files at hand), on a listener
//! the caller bound, until the caller's token is cancelled.

use std::sync::Arc;
use std::time::Duration;

use dfscan_proto::inference::grpc_inference_service_server::GrpcInferenceServiceServer;
use dfscan_proto::v1::scoring_server::ScoringServer;
use dfscan_queue::JobQueue;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tokio_util::task::AbortOnDropHandle;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::server::TcpIncoming;
use tonic::transport::Server;
use tonic::transport::{Certificate, Identity, ServerTlsConfig};

use crate::auth::Auth;
use crate::{
    health, CoordinatorError, CoordinatorMetrics, CoordinatorSettings, KserveService,
    ScoringService, TlsSettings,
};

/// HTTP/2 pings on idle connections, so that a result stream to a client
/// that vanished without closing its connection is noticed and ended.
const KEEPALIVE_INTERVAL: Duration = Duration::from_secs(30);
/// How often abandoned uploads are looked for.
const REAP_EVERY: Duration = Duration::from_secs(30);
/// A ping unanswered for this long closes the connection.
const KEEPALIVE_TIMEOUT: Duration = Duration::from_secs(20);

/// Serves the coordinator on `listener` until `shutdown` is cancelled.
///
/// Messages larger than `settings.max_message_bytes` are refused in both
/// directions; an over-long upload message gets RESOURCE_EXHAUSTED (see
/// `submit::oversized_is_exhausted`) and the connection stays up.
///
/// On shutdown, health turns NOT_SERVING first, then the server stops
/// accepting connections and drains: uploads in progress are aborted with
/// UNAVAILABLE (nothing of them is left in the queue) and result streams
/// end with UNAVAILABLE (clients resume from their last cursor), so
/// draining does not wait on clients; unary calls finish normally.
pub async fn serve(
    listener: TcpListener,
    queue: Arc<dyn JobQueue>,
    settings: CoordinatorSettings,
    metrics: Arc<CoordinatorMetrics>,
    shutdown: CancellationToken,
) -> Result<(), CoordinatorError> {
    let limit = settings.max_message_bytes;
    let limits = settings.limits.clone();
    let tls = settings.tls.clone();
    let interval = Duration::from_millis(settings.health_interval_ms);
    let callback_settings = settings.clone();
    let auth = Auth::from_settings(&settings.auth)?;
    // Checks every call of the two APIs and tells the handlers its tenant.
    let authenticate = move |mut request: tonic::Request<()>| {
        let tenant = auth.check(request.metadata())?;
        request.extensions_mut().insert(tenant);
        Ok(request)
    };
    let scoring = Arc::new(ScoringService::new(
        Arc::clone(&queue),
        settings,
        Arc::clone(&metrics),
        shutdown.clone(),
    )?);
    // Started once the settings are known to be valid; stopped however
    // this function returns.
    let _callbacks = AbortOnDropHandle::new(tokio::spawn(crate::callbacks::run(
        Arc::clone(&queue),
        callback_settings,
        metrics,
        shutdown.clone(),
    )));
    let _reaper = AbortOnDropHandle::new(tokio::spawn(reap_abandoned_uploads(
        Arc::clone(&queue),
        shutdown.clone(),
    )));
    let kserve = GrpcInferenceServiceServer::new(KserveService::new(Arc::clone(&scoring)))
        .max_decoding_message_size(limit)
        .max_encoding_message_size(limit);
    let kserve = InterceptedService::new(kserve, authenticate.clone());
    let scoring = ScoringServer::from_arc(scoring)
        .max_decoding_message_size(limit)
        .max_encoding_message_size(limit);
    let scoring = InterceptedService::new(scoring, authenticate);
    let reflection_v1 = reflection().build_v1()?;
    let reflection_v1alpha = reflection().build_v1alpha()?;
    let (health, health_task) = health::start(queue, interval, shutdown.clone()).await;
    let health_abort = health_task.abort_handle();

    let incoming = TcpIncoming::from(listener).with_nodelay(Some(true));
    let signal = async move {
        shutdown.cancelled().await;
        // Wait for health to report NOT_SERVING before draining begins.
        if let Err(error) = health_task.await {
            tracing::warn!(%error, "health task failed");
        }
        tracing::info!("coordinator shutting down: draining connections");
    };
    let mut server = Server::builder();
    if let Some(tls) = tls_config(&tls)? {
        server = server.tls_config(tls)?;
    }
    let served = server
        .http2_keepalive_interval(Some(KEEPALIVE_INTERVAL))
        .http2_keepalive_timeout(Some(KEEPALIVE_TIMEOUT))
        .tcp_keepalive(Some(KEEPALIVE_INTERVAL))
        // One client cannot take the whole server: a bounded number of
        // streams per connection, and calls over the per-connection limit
        // are refused at once (load shedding) rather than queued.
        .max_concurrent_streams(Some(limits.max_concurrent_streams))
        .concurrency_limit_per_connection(limits.max_calls_per_connection)
        .load_shed(true)
        .layer(crate::cancel::WatchBodies)
        .add_service(health)
        .add_service(reflection_v1)
        .add_service(reflection_v1alpha)
        .add_service(scoring)
        .add_service(kserve)
        .serve_with_incoming_shutdown(incoming, signal)
        .await;
    // The server failed rather than shut down: the probe loop would run on
    // until the token is cancelled.
    health_abort.abort();
    served?;
    tracing::info!("coordinator stopped");
    Ok(())
}

/// Every coordinator looks for uploads whose coordinator died (there may
/// be several coordinators; the removal is idempotent).
async fn reap_abandoned_uploads(queue: Arc<dyn JobQueue>, shutdown: CancellationToken) {
    let mut tick = tokio::time::interval(REAP_EVERY);
    loop {
        tokio::select! {
            () = shutdown.cancelled() => return,
            _ = tick.tick() => {}
        }
        if let Err(error) = queue.reap_abandoned_uploads().await {
            tracing::warn!(%error, "looking for abandoned uploads failed");
        }
    }
}

/// The listener's TLS, if the settings turn it on.
fn tls_config(tls: &TlsSettings) -> Result<Option<ServerTlsConfig>, CoordinatorError> {
    let (Some(cert), Some(key)) = (&tls.cert_file, &tls.key_file) else {
        return Ok(None);
    };
    let read = |path: &std::path::Path| {
        std::fs::read(path)
            .map_err(|e| CoordinatorError::Settings(format!("tls: {}: {e}", path.display())))
    };
    let mut config = ServerTlsConfig::new().identity(Identity::from_pem(read(cert)?, read(key)?));
    if let Some(ca) = &tls.client_ca_file {
        config = config
            .client_ca_root(Certificate::from_pem(read(ca)?))
            .client_auth_optional(!tls.client_cert_required);
    }
    tracing::info!(
        client_certificates = if tls.client_cert_required {
            "required"
        } else if tls.client_ca_file.is_some() {
            "optional"
        } else {
            "off"
        },
        "TLS on"
    );
    Ok(Some(config))
}

/// Reflection over dfscan's API and the health service.
fn reflection() -> tonic_reflection::server::Builder<'static> {
    tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(dfscan_proto::FILE_DESCRIPTOR_SET)
        .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
}
