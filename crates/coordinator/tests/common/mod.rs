//! A coordinator on a loopback port over a `MemoryQueue`, a client for it,
//! and a stand-in worker that scores through the queue API directly.

#![allow(dead_code)] // each test file uses its own subset

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use dfscan_coordinator::{serve, CoordinatorError, CoordinatorMetrics, CoordinatorSettings};
use dfscan_proto::v1::item::Source;
use dfscan_proto::v1::scoring_client::ScoringClient;
use dfscan_proto::v1::submit_job_request::Message;
use dfscan_proto::v1::{
    Item, ItemBatch, ItemResult, JobHeader, LabelScore, ModelIdentity, SubmitJobRequest,
};
use dfscan_queue::{JobQueue, MemoryQueue, QueueSettings, TaskHandle};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio_stream::wrappers::ReceiverStream;
use tokio_util::sync::CancellationToken;
use tonic::transport::Channel;

pub struct Cluster {
    pub addr: SocketAddr,
    pub queue: Arc<MemoryQueue>,
    pub shutdown: CancellationToken,
    pub server: JoinHandle<Result<(), CoordinatorError>>,
}

/// A coordinator that accepts model "tiny" with no worker, without
/// authentication.
pub async fn start() -> Cluster {
    start_with(QueueSettings::default(), without_auth()).await
}

pub fn without_auth() -> CoordinatorSettings {
    let mut settings = CoordinatorSettings::default();
    settings.auth.disabled = true;
    settings
}

pub async fn start_with(queue: QueueSettings, mut settings: CoordinatorSettings) -> Cluster {
    if settings.models.is_empty() {
        settings.models = vec!["tiny".into()];
    }
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let queue = Arc::new(MemoryQueue::new(queue));
    let shutdown = CancellationToken::new();
    let dyn_queue: Arc<dyn JobQueue> = queue.clone();
    let metrics = CoordinatorMetrics::new(dyn_queue.clone(), &settings);
    let server = tokio::spawn(serve(
        listener,
        dyn_queue,
        settings,
        metrics,
        shutdown.clone(),
    ));
    Cluster {
        addr,
        queue,
        shutdown,
        server,
    }
}

impl Cluster {
    pub async fn channel(&self) -> Channel {
        Channel::from_shared(format!("http://{}", self.addr))
            .unwrap()
            .connect()
            .await
            .unwrap()
    }

    pub async fn client(&self) -> ScoringClient<Channel> {
        ScoringClient::new(self.channel().await)
    }

    /// A client whose connection goes through a relay: aborting the
    /// returned task cuts the connection, as a client crash would (dropping
    /// a tonic call does not end its request stream).
    pub async fn severable_client(&self) -> (ScoringClient<Channel>, JoinHandle<()>) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let relay_addr = listener.local_addr().unwrap();
        let server_addr = self.addr;
        let relay = tokio::spawn(async move {
            let (mut client, _) = listener.accept().await.unwrap();
            let mut server = TcpStream::connect(server_addr).await.unwrap();
            let _ = tokio::io::copy_bidirectional(&mut client, &mut server).await;
        });
        let channel = Channel::from_shared(format!("http://{relay_addr}"))
            .unwrap()
            .connect()
            .await
            .unwrap();
        (ScoringClient::new(channel), relay)
    }

    /// Cancels the token and waits (bounded) for `serve` to return.
    pub async fn stop(self) {
        self.shutdown.cancel();
        tokio::time::timeout(Duration::from_secs(10), self.server)
            .await
            .expect("serve did not return after shutdown")
            .unwrap()
            .unwrap();
    }
}

pub fn header(model: &str, task_size: u32) -> SubmitJobRequest {
    SubmitJobRequest {
        message: Some(Message::Header(JobHeader {
            model: model.into(),
            task_size,
            ..Default::default()
        })),
    }
}

pub fn keyed_header(key: &str) -> SubmitJobRequest {
    SubmitJobRequest {
        message: Some(Message::Header(JobHeader {
            model: "tiny".into(),
            idempotency_key: key.into(),
            ..Default::default()
        })),
    }
}

pub fn item(id: &str) -> Item {
    Item {
        id: id.into(),
        source: Some(Source::Data(format!("image of {id}").into_bytes().into())),
        ..Default::default()
    }
}

pub fn batch(items: Vec<Item>) -> SubmitJobRequest {
    SubmitJobRequest {
        message: Some(Message::Items(ItemBatch { items })),
    }
}

/// Items `item-{first}` .. `item-{first + count - 1}` in one message.
pub fn numbered(first: usize, count: usize) -> SubmitJobRequest {
    batch(
        (first..first + count)
            .map(|i| item(&format!("item-{i}")))
            .collect(),
    )
}

/// Claims and completes tasks of `model` until none is left, giving each
/// item a score; returns the tasks' handles in the order they were claimed.
pub async fn score_all(queue: &MemoryQueue, model: &str) -> Vec<TaskHandle> {
    let mut handled = Vec::new();
    loop {
        let tasks = queue
            .claim(model, "test-worker", 4, Duration::from_millis(20))
            .await
            .unwrap();
        if tasks.is_empty() {
            return handled;
        }
        for task in tasks {
            let items = task.items.unwrap();
            let results = items
                .iter()
                .zip(task.handle.first_index..)
                .map(|(item, index)| scored(&item.id, index))
                .collect();
            queue.complete(&task.handle, results).await.unwrap();
            handled.push(task.handle);
        }
    }
}

fn scored(id: &str, index: u64) -> ItemResult {
    ItemResult {
        id: id.into(),
        index,
        label: "fake".into(),
        scores: vec![
            LabelScore {
                label: "fake".into(),
                score: 0.9,
            },
            LabelScore {
                label: "real".into(),
                score: 0.1,
            },
        ],
        fake_score: Some(0.9),
        model: Some(ModelIdentity {
            name: "tiny".into(),
            sha256: "0".repeat(64),
        }),
        ..Default::default()
    }
}

/// Longest a test waits for something the server does asynchronously.
pub const WAIT: Duration = Duration::from_secs(10);

/// Polls until `check` holds (for effects of a dropped connection, which
/// the server sees a moment later).
pub async fn eventually<F: std::future::Future<Output = bool>>(mut check: impl FnMut() -> F) {
    let deadline = tokio::time::Instant::now() + WAIT;
    while !check().await {
        assert!(
            tokio::time::Instant::now() < deadline,
            "condition never held"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// An upload left open: a header with `task_size`, then `items` numbered
/// items, once `queued` items of "tiny" are in the queue. Dropping the
/// sender ends the upload normally.
pub async fn upload_in_progress(
    cluster: &Cluster,
    mut uploader: ScoringClient<Channel>,
    task_size: u32,
    items: usize,
    queued: u64,
) -> (
    mpsc::Sender<SubmitJobRequest>,
    JoinHandle<Result<tonic::Response<dfscan_proto::v1::SubmitJobResponse>, tonic::Status>>,
) {
    let (tx, rx) = mpsc::channel(4);
    let upload = tokio::spawn(async move { uploader.submit_job(ReceiverStream::new(rx)).await });
    tx.send(header("tiny", task_size)).await.unwrap();
    tx.send(numbered(0, items)).await.unwrap();
    let queue = cluster.queue.clone();
    eventually(|| async { queue.queue_stats("tiny").await.unwrap().items == queued }).await;
    (tx, upload)
}

/// Waits until the queue holds no job and no queued item (what an aborted
/// upload leaves, a moment after the call ends).
pub async fn nothing_left(cluster: &Cluster) {
    let queue = cluster.queue.clone();
    eventually(|| async {
        let stats = queue.queue_stats("tiny").await.unwrap();
        stats.items == 0
            && queue
                .list_jobs(Default::default())
                .await
                .unwrap()
                .is_empty()
    })
    .await;
}
