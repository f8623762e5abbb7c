//! The standard gRPC health service (`grpc.health.v1.Health`), driven by
//! whether the queue answers: a coordinator that cannot reach its queue can
//! neither take jobs nor stream results, so load balancers should skip it.
//! Reported for the server as a whole ("") and for `dfscan.v1.Scoring`.

use std::sync::Arc;
use std::time::Duration;

use dfscan_proto::v1::scoring_server::SERVICE_NAME;
use dfscan_queue::JobQueue;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tonic_health::pb::health_server::{Health, HealthServer};
use tonic_health::server::HealthReporter;
use tonic_health::ServingStatus;

const SERVICES: [&str; 2] = ["", SERVICE_NAME];

/// The health service and the task that keeps it current. The first probe
/// is made before this returns, so the service never reports a guess. The
/// task ends once `shutdown` is cancelled, after reporting NOT_SERVING to
/// every checker and ending every `Watch` stream (which would otherwise
/// hold graceful shutdown open forever).
pub(crate) async fn start(
    queue: Arc<dyn JobQueue>,
    interval: Duration,
    shutdown: CancellationToken,
) -> (HealthServer<impl Health>, JoinHandle<()>) {
    let (mut reporter, server) = tonic_health::server::health_reporter();
    let mut serving = probe(queue.as_ref(), interval).await;
    if !serving {
        tracing::warn!("queue unreachable at start: health NOT_SERVING");
    }
    report(&reporter, serving).await;
    let task = tokio::spawn(async move {
        let mut ticks = tokio::time::interval(interval);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        ticks.tick().await; // the first tick is immediate: probed already
        loop {
            tokio::select! {
                () = shutdown.cancelled() => break,
                _ = ticks.tick() => {}
            }
            let now = tokio::select! {
                () = shutdown.cancelled() => break,
                now = probe(queue.as_ref(), interval) => now,
            };
            if now != serving {
                serving = now;
                if serving {
                    tracing::info!("queue reachable again: health SERVING");
                } else {
                    tracing::warn!("queue unreachable: health NOT_SERVING");
                }
                report(&reporter, serving).await;
            }
        }
        tracing::info!("shutting down: health NOT_SERVING");
        report(&reporter, false).await;
        for service in SERVICES {
            reporter.clear_service_status(service).await;
        }
    });
    (server, task)
}

/// Whether the queue answers a ping within `timeout` (a hung backend is as
/// unhealthy as a refusing one).
async fn probe(queue: &dyn JobQueue, timeout: Duration) -> bool {
    match tokio::time::timeout(timeout, queue.ping()).await {
        Ok(Ok(())) => true,
        Ok(Err(error)) => {
            tracing::debug!(%error, "queue ping failed");
            false
        }
        Err(_) => {
            tracing::debug!(?timeout, "queue ping timed out");
            false
        }
    }
}

async fn report(reporter: &HealthReporter, serving: bool) {
    let status = if serving {
        ServingStatus::Serving
    } else {
        ServingStatus::NotServing
    };
    for service in SERVICES {
        reporter.set_service_status(service, status).await;
    }
}
