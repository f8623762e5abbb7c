//! The coordinator's Prometheus metrics. Its own counters
//! (`dfscan_coordinator_*`) are kept as requests go by; the queue's state
//! (`dfscan_queue_*`: items queued, live workers, jobs by state) is read
//! from the queue at each scrape, so every coordinator of a cluster reports
//! the same values for it (aggregate it with `max`, not `sum`).

use std::sync::Arc;
use std::time::Duration;

use dfscan_queue::JobQueue;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;

use crate::service::model_views;
use crate::CoordinatorSettings;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct ModelLabel {
    pub model: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct InferLabels {
    pub model: String,
    /// The gRPC status code's name (`Ok`, `InvalidArgument`, ...).
    pub code: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct OutcomeLabel {
    pub outcome: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StateLabel {
    state: String,
}

pub struct CoordinatorMetrics {
    registry: Registry,
    queue: Arc<dyn JobQueue>,
    settings: CoordinatorSettings,
    pub(crate) jobs_submitted: Family<ModelLabel, Counter>,
    pub(crate) items_submitted: Family<ModelLabel, Counter>,
    pub(crate) infer_requests: Family<InferLabels, Counter>,
    infer_duration: Histogram,
    pub(crate) callbacks: Family<OutcomeLabel, Counter>,
    queued_items: Family<ModelLabel, Gauge>,
    workers: Family<ModelLabel, Gauge>,
    jobs: Family<StateLabel, Gauge>,
}

impl CoordinatorMetrics {
    pub fn new(queue: Arc<dyn JobQueue>, settings: &CoordinatorSettings) -> Arc<Self> {
        let mut registry = Registry::with_prefix("dfscan");
        let jobs_submitted = Family::<ModelLabel, Counter>::default();
        let items_submitted = Family::<ModelLabel, Counter>::default();
        let infer_requests = Family::<InferLabels, Counter>::default();
        // 1 ms to about 33 s.
        let infer_duration = Histogram::new(exponential_buckets(0.001, 2.0, 16));
        let callbacks = Family::<OutcomeLabel, Counter>::default();
        let queued_items = Family::<ModelLabel, Gauge>::default();
        let workers = Family::<ModelLabel, Gauge>::default();
        let jobs = Family::<StateLabel, Gauge>::default();
        let coordinator = registry.sub_registry_with_prefix("coordinator");
        coordinator.register(
            "jobs_submitted",
            "Jobs accepted by this coordinator",
            jobs_submitted.clone(),
        );
        coordinator.register(
            "items_submitted",
            "Items uploaded in jobs accepted by this coordinator",
            items_submitted.clone(),
        );
        coordinator.register(
            "infer_requests",
            "KServe ModelInfer calls answered by this coordinator, by gRPC status",
            infer_requests.clone(),
        );
        coordinator.register(
            "infer_duration_seconds",
            "End-to-end time of KServe ModelInfer calls",
            infer_duration.clone(),
        );
        coordinator.register(
            "callbacks",
            "Callback deliveries by outcome (delivered or given_up)",
            callbacks.clone(),
        );
        let queue_state = registry.sub_registry_with_prefix("queue");
        queue_state.register(
            "items",
            "Items waiting or in progress per model",
            queued_items.clone(),
        );
        queue_state.register("workers", "Live workers per model", workers.clone());
        queue_state.register(
            "jobs",
            "Jobs by state (finished ones until their retention ends)",
            jobs.clone(),
        );
        Arc::new(Self {
            registry,
            queue,
            settings: settings.clone(),
            jobs_submitted,
            items_submitted,
            infer_requests,
            infer_duration,
            callbacks,
            queued_items,
            workers,
            jobs,
        })
    }

    pub(crate) fn infer_done(&self, model: &str, code: tonic::Code, took: Duration) {
        self.infer_requests
            .get_or_create(&InferLabels {
                model: model.to_string(),
                code: format!("{code:?}"),
            })
            .inc();
        self.infer_duration.observe(took.as_secs_f64());
    }

    pub(crate) fn callback(&self, outcome: &str) {
        self.callbacks
            .get_or_create(&OutcomeLabel {
                outcome: outcome.to_string(),
            })
            .inc();
    }

    /// The OpenMetrics text of a scrape, the queue's gauges read now (left
    /// as they were if the queue cannot be reached).
    pub async fn render(&self) -> String {
        self.refresh().await;
        let mut text = String::new();
        // Writing to a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut text, &self.registry);
        text
    }

    async fn refresh(&self) {
        match model_views(self.queue.as_ref(), &self.settings).await {
            Ok(views) => {
                self.workers.clear();
                for (model, view) in &views {
                    let label = ModelLabel {
                        model: model.clone(),
                    };
                    self.workers
                        .get_or_create(&label)
                        .set(i64::from(view.workers));
                    if let Ok(stats) = self.queue.queue_stats(model).await {
                        let items = i64::try_from(stats.items).unwrap_or(i64::MAX);
                        self.queued_items.get_or_create(&label).set(items);
                    }
                }
            }
            Err(error) => tracing::debug!(%error, "metrics: cannot read the models"),
        }
        match self.queue.jobs_by_state().await {
            Ok(counts) => {
                for (state, count) in counts {
                    self.jobs
                        .get_or_create(&StateLabel {
                            state: state.as_str().to_string(),
                        })
                        .set(i64::try_from(count).unwrap_or(i64::MAX));
                }
            }
            Err(error) => tracing::debug!(%error, "metrics: cannot read the jobs by state"),
        }
    }
}
