//! The Prometheus endpoint of a process (`GET /metrics` on
//! `metrics.listen`), serving what its parts (coordinator, worker) render,
//! joined into one OpenMetrics exposition.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use axum::http::header::CONTENT_TYPE;
use serde::{Deserialize, Serialize};
use tokio_util::sync::CancellationToken;

use crate::ProcessError;

/// Config section `metrics`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct MetricsSettings {
    /// `host:port` of the `/metrics` endpoint; none: no endpoint.
    pub listen: Option<String>,
}

/// One part's exposition, rendered at each scrape.
pub type Scrape = Arc<dyn Fn() -> Pin<Box<dyn Future<Output = String> + Send>> + Send + Sync>;

const OPENMETRICS: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// Binds `settings.listen` (failing the process's start when it cannot)
/// and serves the scrapes until `shutdown`.
pub async fn start(
    settings: &MetricsSettings,
    scrapes: Vec<Scrape>,
    shutdown: CancellationToken,
) -> Result<(), ProcessError> {
    let Some(address) = &settings.listen else {
        return Ok(());
    };
    let app = axum::Router::new().route(
        "/metrics",
        axum::routing::get(move || {
            let scrapes = scrapes.clone();
            async move {
                let mut parts = Vec::with_capacity(scrapes.len());
                for scrape in &scrapes {
                    parts.push(scrape().await);
                }
                ([(CONTENT_TYPE, OPENMETRICS)], join(parts))
            }
        }),
    );
    crate::http::serve(
        address,
        app,
        "metrics (/metrics)",
        shutdown.cancelled_owned(),
    )
    .await?;
    Ok(())
}

/// OpenMetrics expositions as one: each ends with `# EOF`, which only the
/// last may keep.
fn join(parts: Vec<String>) -> String {
    let mut text = String::new();
    for part in parts {
        text.push_str(part.trim_end().trim_end_matches("# EOF"));
    }
    text.push_str("# EOF\n");
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn joined_expositions_end_once() {
        let a = "# TYPE a counter\na_total 1\n# EOF\n".to_string();
        let b = "# TYPE b gauge\nb 2\n# EOF\n".to_string();
        assert_eq!(
            join(vec![a, b]),
            "# TYPE a counter\na_total 1\n# TYPE b gauge\nb 2\n# EOF\n"
        );
    }
}
