//! The worker's Prometheus metrics, labelled with its model and worker id:
//! what it scored, how it batched, and where the time went (waiting in the
//! queue, decoding, at the model, from enqueue to recorded result).

use std::borrow::Cow;
use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OutcomeLabel {
    outcome: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct GpuLabel {
    /// NVML's index of a GPU this process can see.
    gpu: u32,
}

pub struct WorkerMetrics {
    registry: Registry,
    items: Family<OutcomeLabel, Counter>,
    tasks: Counter,
    batch_size: Histogram,
    inference_duration: Histogram,
    decode_duration: Histogram,
    queue_wait_duration: Histogram,
    end_to_end_duration: Histogram,
    pub(crate) tasks_in_hand: Gauge,
    /// Memory in use on the GPUs the worker sees (read at each scrape;
    /// none on CPU workers or without an NVIDIA driver).
    gpu_memory_used: Family<GpuLabel, Gauge>,
    gpu_memory_total: Family<GpuLabel, Gauge>,
    on_cuda: bool,
}

impl WorkerMetrics {
    /// `device` is the worker's (`cpu`, `cuda:N`): only CUDA workers ask
    /// the NVIDIA driver (NVML) for GPU memory.
    pub(crate) fn new(model: &str, worker_id: &str, device: &str) -> Self {
        let labels = [
            (Cow::Borrowed("model"), Cow::Owned(model.to_string())),
            (Cow::Borrowed("worker"), Cow::Owned(worker_id.to_string())),
        ];
        let mut registry = Registry::with_prefix_and_labels("dfscan_worker", labels.into_iter());
        let metrics = Self {
            items: Family::default(),
            tasks: Counter::default(),
            batch_size: Histogram::new(exponential_buckets(1.0, 2.0, 11)),
            // 0.5 ms to about 16 s.
            inference_duration: Histogram::new(exponential_buckets(0.0005, 2.0, 16)),
            decode_duration: Histogram::new(exponential_buckets(0.0001, 2.0, 16)),
            // 1 ms to about 9 h: a task may wait long behind a big job.
            queue_wait_duration: Histogram::new(exponential_buckets(0.001, 2.0, 25)),
            end_to_end_duration: Histogram::new(exponential_buckets(0.001, 2.0, 25)),
            tasks_in_hand: Gauge::default(),
            gpu_memory_used: Family::default(),
            gpu_memory_total: Family::default(),
            on_cuda: device.starts_with("cuda"),
            registry: Registry::default(),
        };
        registry.register(
            "items",
            "Items whose results this worker recorded, by outcome (scored or failed)",
            metrics.items.clone(),
        );
        registry.register(
            "tasks",
            "Tasks this worker completed",
            metrics.tasks.clone(),
        );
        registry.register(
            "batch_size",
            "Images per forward pass",
            metrics.batch_size.clone(),
        );
        registry.register(
            "inference_duration_seconds",
            "Time of a batch at the model, from submission to logits",
            metrics.inference_duration.clone(),
        );
        registry.register(
            "decode_duration_seconds",
            "Time to decode and preprocess one image",
            metrics.decode_duration.clone(),
        );
        registry.register(
            "queue_wait_duration_seconds",
            "Time a task waited in the queue before this worker claimed it",
            metrics.queue_wait_duration.clone(),
        );
        registry.register(
            "end_to_end_duration_seconds",
            "Time from a task's enqueueing to its results being recorded",
            metrics.end_to_end_duration.clone(),
        );
        registry.register(
            "tasks_in_hand",
            "Tasks claimed and not yet completed",
            metrics.tasks_in_hand.clone(),
        );
        registry.register(
            "gpu_memory_used_bytes",
            "Memory in use on each GPU the worker sees (NVML; in a pod, the worker's GPU)",
            metrics.gpu_memory_used.clone(),
        );
        registry.register(
            "gpu_memory_total_bytes",
            "Memory of each GPU the worker sees (NVML)",
            metrics.gpu_memory_total.clone(),
        );
        Self {
            registry,
            ..metrics
        }
    }

    pub(crate) fn completed(&self, scored: u64, failed: u64, since_enqueued: Duration) {
        self.items
            .get_or_create(&OutcomeLabel { outcome: "scored" })
            .inc_by(scored);
        self.items
            .get_or_create(&OutcomeLabel { outcome: "failed" })
            .inc_by(failed);
        self.tasks.inc();
        self.end_to_end_duration
            .observe(since_enqueued.as_secs_f64());
    }

    pub(crate) fn batch(&self, size: usize, at_model: Duration) {
        self.batch_size.observe(size as f64);
        self.inference_duration.observe(at_model.as_secs_f64());
    }

    pub(crate) fn decoded(&self, took: Duration) {
        self.decode_duration.observe(took.as_secs_f64());
    }

    pub(crate) fn claimed(&self, waited: Duration) {
        self.queue_wait_duration.observe(waited.as_secs_f64());
    }

    /// The OpenMetrics text of a scrape.
    pub fn render(&self) -> String {
        if self.on_cuda {
            self.read_gpu_memory();
        }
        let mut text = String::new();
        // Writing to a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut text, &self.registry);
        text
    }
}

impl WorkerMetrics {
    fn read_gpu_memory(&self) {
        let Some(nvml) = nvml() else { return };
        let count = nvml.device_count().unwrap_or(0);
        for gpu in 0..count {
            let Ok(memory) = nvml.device_by_index(gpu).and_then(|d| d.memory_info()) else {
                continue;
            };
            let label = GpuLabel { gpu };
            let bytes = |b: u64| i64::try_from(b).unwrap_or(i64::MAX);
            self.gpu_memory_used
                .get_or_create(&label)
                .set(bytes(memory.used));
            self.gpu_memory_total
                .get_or_create(&label)
                .set(bytes(memory.total));
        }
    }
}

/// The NVIDIA driver's management library, loaded once at run time (no
/// link-time dependency: CPU hosts have none); `None` without a driver.
fn nvml() -> Option<&'static nvml_wrapper::Nvml> {
    static NVML: std::sync::OnceLock<Option<nvml_wrapper::Nvml>> = std::sync::OnceLock::new();
    NVML.get_or_init(|| match nvml_wrapper::Nvml::init() {
        Ok(nvml) => Some(nvml),
        Err(error) => {
            tracing::info!(%error, "no NVML: GPU memory is not exported");
            None
        }
    })
    .as_ref()
}

/// Time since `ms` (ms since the Unix epoch), zero if that is in the
/// future (clocks of different hosts).
pub(crate) fn since_ms(ms: i64) -> Duration {
    Duration::from_millis(dfscan_queue::now_ms().saturating_sub(ms).max(0) as u64)
}
