//! The coordinator process: its flags, its configuration sections
//! (`redis`, `queue`, `coordinator`) layered as everywhere else
//! (defaults ← file ← `DFSCAN_*` ← flags), and the run until shutdown.

use std::path::Path;
use std::sync::Arc;

use crate::settings::{self, FlagKeys};
use clap::Args;
use dfscan_coordinator::{CoordinatorMetrics, CoordinatorSettings};
use dfscan_queue::{JobQueue, QueueSettings};
use serde::{Deserialize, Serialize};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::metrics::{self, MetricsSettings, Scrape};
use crate::{connect_queue, ProcessError};

#[derive(Args, Serialize)]
#[command(mut_args(settings::show_defaults(Self::KEYS)))]
pub struct CoordinatorArgs {
    /// Address the gRPC API listens on
    #[arg(long)]
    pub listen: Option<String>,
    /// Redis URL of the queue, e.g. redis://127.0.0.1:6379
    #[arg(long)]
    pub redis: Option<String>,
    /// Comma-separated models accepted even while no worker serves them
    #[arg(long, value_delimiter = ',')]
    pub models: Option<Vec<String>>,
    /// Model for jobs that name none; none: the only model known
    #[arg(long)]
    pub default_model: Option<String>,
    #[command(flatten)]
    #[serde(skip)]
    pub auth: AuthArgs,
}

impl CoordinatorArgs {
    const KEYS: FlagKeys = &[
        ("listen", "coordinator.listen"),
        ("redis", "redis"),
        ("models", "coordinator.models"),
        ("default_model", "coordinator.default_model"),
    ];

    /// The flags given, as (settings key, value) overrides; the list
    /// (`--models`) is applied after loading.
    pub fn overrides(&self) -> Vec<(&'static str, Option<String>)> {
        let mut overrides = settings::flag_overrides(self, Self::KEYS);
        overrides.extend(self.auth.overrides());
        overrides
    }
}

/// Authentication flags of the processes that serve the API.
#[derive(Args, Serialize)]
#[command(mut_args(settings::show_defaults(Self::KEYS)))]
pub struct AuthArgs {
    /// API tokens, `TENANT TOKEN` per line (calls need `authorization: Bearer TOKEN`)
    #[arg(long)]
    pub tokens_file: Option<String>,
    /// Serve without authentication: every client sees every job
    #[arg(long, conflicts_with = "tokens_file")]
    pub no_auth: bool,
}

impl AuthArgs {
    const KEYS: FlagKeys = &[
        ("tokens_file", "coordinator.auth.tokens_file"),
        ("no_auth", "coordinator.auth.disabled"),
    ];

    pub fn overrides(&self) -> Vec<(&'static str, Option<String>)> {
        settings::flag_overrides(self, Self::KEYS)
    }
}

/// The part of the configuration file a coordinator reads; other sections
/// (model, worker, client) are ignored, so one file serves every process.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct CoordinatorConfig {
    /// Redis URL of the queue.
    pub redis: Option<String>,
    pub queue: QueueSettings,
    pub coordinator: CoordinatorSettings,
    pub metrics: MetricsSettings,
}

impl CoordinatorConfig {
    pub fn load(file: Option<&Path>, args: &CoordinatorArgs) -> Result<Self, ProcessError> {
        let mut cfg: Self = settings::load(file, &args.overrides())?;
        if let Some(models) = &args.models {
            cfg.coordinator.models = models.clone();
        }
        Ok(cfg)
    }
}

/// Runs the coordinator on its Redis queue until `shutdown`.
pub async fn run(cfg: CoordinatorConfig, shutdown: CancellationToken) -> Result<(), ProcessError> {
    let queue = connect_queue(cfg.redis.as_deref(), &cfg.queue, "coordinator").await?;
    let metrics = CoordinatorMetrics::new(Arc::clone(&queue), &cfg.coordinator);
    metrics::start(&cfg.metrics, vec![scrape(&metrics)], shutdown.clone()).await?;
    let listener = bind(&cfg.coordinator.listen).await?;
    serve_on(listener, queue, cfg.coordinator, metrics, shutdown).await
}

/// The coordinator's part of a `/metrics` scrape.
pub fn scrape(metrics: &Arc<CoordinatorMetrics>) -> Scrape {
    let metrics = Arc::clone(metrics);
    Arc::new(move || {
        let metrics = Arc::clone(&metrics);
        Box::pin(async move { metrics.render().await })
    })
}

/// Binds the gRPC API's listener on `listen`. `dfscan serve` binds it
/// before loading its model, so that an address in use fails at once
/// rather than after the load; clients connecting meanwhile wait in the
/// listen backlog until `serve_on` starts answering.
pub async fn bind(listen: &str) -> Result<TcpListener, ProcessError> {
    let listen_error = |source: std::io::Error| {
        if source.kind() == std::io::ErrorKind::AddrInUse {
            ProcessError::ApiAddressInUse {
                address: listen.to_string(),
            }
        } else {
            ProcessError::Listen {
                address: listen.to_string(),
                source,
            }
        }
    };
    let listener = TcpListener::bind(listen).await.map_err(listen_error)?;
    let address = listener.local_addr().map_err(listen_error)?;
    tracing::info!(%address, "coordinator listening");
    Ok(listener)
}

/// Serves the gRPC API on `listener` and `queue` until `shutdown` (also
/// what `dfscan serve` runs beside its worker).
pub async fn serve_on(
    listener: TcpListener,
    queue: Arc<dyn JobQueue>,
    settings: CoordinatorSettings,
    metrics: Arc<CoordinatorMetrics>,
    shutdown: CancellationToken,
) -> Result<(), ProcessError> {
    dfscan_coordinator::serve(listener, queue, settings, metrics, shutdown).await?;
    Ok(())
}
