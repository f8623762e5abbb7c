//! `dfscan coordinator`, `dfscan worker` and `dfscan serve`: the
//! long-running processes of the scoring cluster, wired from one layered
//! configuration (defaults ← file ← `DFSCAN_*` ← flags) and stopped by one
//! cancellation token that SIGTERM and Ctrl-C cancel.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::Context;
use clap::Args;
use dfscan_client::ClientSettings;
use dfscan_coordinator::CoordinatorMetrics;
use dfscan_coordinator::CoordinatorSettings;
use dfscan_core::settings::ModelSettings;
use dfscan_core::video::VideoSettings;
use dfscan_core::FaceSettings;
use dfscan_process::coordinator::{
    bind, run as run_coordinator, scrape, serve_on, AuthArgs, CoordinatorArgs, CoordinatorConfig,
};
use dfscan_process::health::{self, Probes};
use dfscan_process::metrics::{self, MetricsSettings, Scrape};
use dfscan_process::settings::{self, FlagKeys};
use dfscan_process::{connect_queue, runtime, shutdown_on_signals};
use dfscan_queue::{JobQueue, MemoryQueue, QueueSettings};
use dfscan_worker::{Health, Inference, Worker, WorkerSettings};
use serde::{Deserialize, Serialize};

use crate::model_args::ModelArgs;

/// Everything a dfscan process can be configured with; each section is
/// owned by the crate that reads it.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct ClusterConfig {
    /// The top-level keys, read on their own: `#[serde(flatten)]` would
    /// lose the config crate's parsing of numbers given as strings (env
    /// values, flags).
    #[serde(skip)]
    pub model: ModelSettings,
    /// Redis URL of the queue; `serve` without it keeps the queue in memory.
    pub redis: Option<String>,
    pub queue: QueueSettings,
    pub faces: FaceSettings,
    pub video: VideoSettings,
    pub worker: WorkerSettings,
    pub coordinator: CoordinatorSettings,
    pub client: ClientSettings,
    pub metrics: MetricsSettings,
}

impl ClusterConfig {
    pub fn load(
        file: Option<&Path>,
        overrides: &[(&'static str, Option<String>)],
    ) -> anyhow::Result<Self> {
        let mut cfg: Self = settings::load(file, overrides)?;
        cfg.model = settings::load(file, overrides)?;
        Ok(cfg)
    }
}

/// Worker flags shared by `worker` and `serve`.
#[derive(Args, Serialize)]
#[command(mut_args(settings::show_defaults(Self::KEYS)))]
pub struct WorkerFlags {
    #[command(flatten)]
    #[serde(skip)]
    model: ModelArgs,
    /// Most images per forward pass, merged across tasks and jobs
    #[arg(long)]
    max_batch: Option<usize>,
    /// Longest wait for a batch to fill, in milliseconds
    #[arg(long)]
    max_wait_ms: Option<u64>,
    /// Seconds to finish in-flight tasks after SIGTERM
    #[arg(long)]
    drain_grace_s: Option<u64>,
    /// Name of this worker in the registry; none: host-pid-random
    #[arg(long)]
    worker_id: Option<String>,
    /// Directory whose files items may name by URI (repeatable)
    #[arg(long)]
    uri_root: Vec<PathBuf>,
    /// Benchmark only: score nothing, answer every item at once (measures
    /// the queue's own overhead)
    #[arg(long, hide = true)]
    bench_noop_scorer: bool,
}

impl WorkerFlags {
    const KEYS: FlagKeys = &[
        ("max_batch", "worker.max_batch"),
        ("max_wait_ms", "worker.max_wait_ms"),
        ("drain_grace_s", "worker.drain_grace_s"),
        ("worker_id", "worker.worker_id"),
        ("uri_root", "worker.uri_roots"),
    ];

    fn overrides(&self) -> Vec<(&'static str, Option<String>)> {
        let mut overrides = self.model.overrides();
        overrides.extend(settings::flag_overrides(self, Self::KEYS));
        overrides
    }

    fn apply_lists(&self, cfg: &mut ClusterConfig) {
        self.model.apply_lists(&mut cfg.model);
        if !self.uri_root.is_empty() {
            cfg.worker.uri_roots = self.uri_root.clone();
        }
    }
}

#[derive(Args, Serialize)]
#[command(mut_args(settings::show_defaults(Self::KEYS)))]
pub struct WorkerArgs {
    /// Redis URL of the queue, e.g. redis://127.0.0.1:6379
    #[arg(long)]
    redis: Option<String>,
    #[command(flatten)]
    #[serde(skip)]
    worker: WorkerFlags,
}

impl WorkerArgs {
    const KEYS: FlagKeys = &[("redis", "redis")];
}

#[derive(Args, Serialize)]
#[command(mut_args(settings::show_defaults(Self::KEYS)))]
pub struct ServeArgs {
    /// Address the gRPC API listens on
    #[arg(long)]
    listen: Option<String>,
    #[command(flatten)]
    #[serde(skip)]
    auth: AuthArgs,
    /// Redis URL of the queue; none: the queue is kept in memory
    #[arg(long)]
    redis: Option<String>,
    #[command(flatten)]
    #[serde(skip)]
    worker: WorkerFlags,
}

impl ServeArgs {
    const KEYS: FlagKeys = &[("listen", "coordinator.listen"), ("redis", "redis")];
}

/// `dfscan coordinator`: the same process as `dfscan-coordinator`.
pub fn coordinator(config: Option<&Path>, args: CoordinatorArgs) -> anyhow::Result<bool> {
    let cfg = CoordinatorConfig::load(config, &args)?;
    runtime()?.block_on(async { run_coordinator(cfg, shutdown_on_signals()).await })?;
    Ok(true)
}

pub fn worker(config: Option<&Path>, args: WorkerArgs) -> anyhow::Result<bool> {
    let mut overrides = args.worker.overrides();
    overrides.extend(settings::flag_overrides(&args, WorkerArgs::KEYS));
    let mut cfg = ClusterConfig::load(config, &overrides)?;
    args.worker.apply_lists(&mut cfg);
    // The coordinator's section (its tokens file, say) is not checked: a
    // worker serves no API, and reads a shared file's worker part only.
    let noop = args.worker.bench_noop_scorer;
    runtime()?.block_on(async {
        let shutdown = shutdown_on_signals();
        let health = serve_health(&cfg.worker).await?;
        let queue = connect_queue(cfg.redis.as_deref(), &cfg.queue, "worker").await?;
        let (worker, _) = start_worker(&cfg, queue, noop, health).await?;
        metrics::start(&cfg.metrics, vec![worker_scrape(&worker)], shutdown.clone()).await?;
        let report = worker.run(shutdown).await?;
        tracing::info!(
            tasks = report.tasks,
            items = report.items,
            batches = report.batches,
            "worker stopped"
        );
        Ok(true)
    })
}

pub fn serve(config: Option<&Path>, args: ServeArgs) -> anyhow::Result<bool> {
    let mut overrides = args.worker.overrides();
    overrides.extend(settings::flag_overrides(&args, ServeArgs::KEYS));
    overrides.extend(args.auth.overrides());
    let mut cfg = ClusterConfig::load(config, &overrides)?;
    args.worker.apply_lists(&mut cfg);
    // Before the model loads: a missing tokens file is found in a second,
    // not after minutes of loading.
    dfscan_coordinator::check_auth_settings(&cfg.coordinator.auth)?;
    let noop = args.worker.bench_noop_scorer;
    runtime()?.block_on(async {
        let shutdown = shutdown_on_signals();
        // Bound before the model loads, like the health endpoint: an
        // address in use fails in a second, not after the load.
        let listener = bind(&cfg.coordinator.listen).await?;
        let health = serve_health(&cfg.worker).await?;
        let queue: Arc<dyn JobQueue> = match &cfg.redis {
            Some(url) => connect_queue(Some(url), &cfg.queue, "serve").await?,
            None => Arc::new(MemoryQueue::new(cfg.queue.clone())),
        };
        let (worker, model) = start_worker(&cfg, queue.clone(), noop, health).await?;
        let mut coordinator = cfg.coordinator.clone();
        if !coordinator.models.contains(&model) {
            coordinator.models.push(model.clone());
        }
        coordinator.default_model.get_or_insert(model);
        let coordinator_metrics = CoordinatorMetrics::new(Arc::clone(&queue), &coordinator);
        let scrapes = vec![scrape(&coordinator_metrics), worker_scrape(&worker)];
        metrics::start(&cfg.metrics, scrapes, shutdown.clone()).await?;
        // Either half failing stops the other.
        let stop_all = shutdown.clone();
        let worker = tokio::spawn(async move {
            let report = worker.run(stop_all.clone()).await;
            stop_all.cancel();
            report
        });
        let served = serve_on(
            listener,
            queue,
            coordinator,
            coordinator_metrics,
            shutdown.clone(),
        )
        .await;
        shutdown.cancel();
        let report = worker.await.context("the worker task")??;
        served?;
        tracing::info!(tasks = report.tasks, items = report.items, "stopped");
        Ok(true)
    })
}

/// The worker's part of a `/metrics` scrape.
fn worker_scrape(worker: &Worker) -> Scrape {
    let metrics = worker.metrics();
    Arc::new(move || {
        let text = metrics.render();
        Box::pin(async move { text })
    })
}

/// The worker's health, served on `worker.health_listen` (when set) from
/// now on: before the model loads, so that the probes say it is not ready
/// yet rather than finding nothing there.
async fn serve_health(settings: &WorkerSettings) -> anyhow::Result<Health> {
    let worker_health = Health::new(settings)?;
    if let Some(listen) = &settings.health_listen {
        let (live, ready) = (worker_health.clone(), worker_health.clone());
        let probes = Probes {
            live: Arc::new(move || live.live()),
            ready: Arc::new(move || ready.ready()),
        };
        health::start(listen, probes).await?;
    }
    Ok(worker_health)
}

/// Loads the model (or, for benchmarks, the no-op scorer) and builds the
/// worker reporting to `health`; returns it with the model name jobs use
/// to reach it.
async fn start_worker(
    cfg: &ClusterConfig,
    queue: Arc<dyn JobQueue>,
    noop: bool,
    health: Health,
) -> anyhow::Result<(Worker, String)> {
    let (scoring, model) = if noop {
        tracing::warn!("benchmark mode: the no-op scorer answers without scoring");
        let model = cfg.model.model.clone();
        (
            Inference::Noop {
                model: model.clone(),
            },
            model,
        )
    } else {
        let (settings, faces) = (cfg.model.clone(), cfg.faces.clone());
        faces.validate().map_err(anyhow::Error::msg)?;
        cfg.video.validate().map_err(anyhow::Error::msg)?;
        let max_rows = cfg.worker.max_batch;
        let engine = tokio::task::spawn_blocking(move || {
            dfscan_model::load_engine(&settings, &faces, max_rows)
        })
        .await
        .context("loading the model")??;
        let model = engine.info().identity.name.clone();
        let scoring = Inference::Model {
            engine,
            decode_threads: cfg.model.decode_threads,
            limits: dfscan_model::decode_limits(&cfg.model),
            faces: cfg.faces.clone(),
            video: cfg.video.clone(),
        };
        (scoring, model)
    };
    let worker = Worker::new(
        queue,
        scoring,
        model.clone(),
        cfg.worker.clone(),
        &cfg.queue,
    )?
    .with_health(health);
    Ok((worker, model))
}
