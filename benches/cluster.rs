//! Cluster benchmarks, each run side by side in one process on this
//! machine, with real processes (redis-server, `dfscan-coordinator`,
//! `dfscan worker`) as a deployment runs them:
//!
//! 1. queue overhead: items/s from the first upload byte to the last result
//!    through coordinator → Redis → worker → client, with the benchmark-only
//!    no-op scorer, and the coordinator's peak RSS over that job;
//! 2. with `--model DIR --images DIR`: cluster images/s against
//!    `dfscan score` on the same images and model.
//!
//! `cargo bench --bench cluster -- [--items N] [--item-bytes B]
//!  [--model DIR --images DIR [--dtype f32|bf16] [--batch 32]]`

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use clap::Parser;
use dfscan_client::{Client, ClientSettings};
use dfscan_proto::v1::{item::Source, Item, JobHeader};
use dfscan_testkit::{free_port, RedisServer};

mod common;
use common::{coordinator, dfscan, spawn};

/// Flags after `cargo bench --bench cluster --`.
#[derive(Parser)]
struct Args {
    /// Items in the job.
    #[arg(long, default_value_t = 1_000_000)]
    items: u64,
    /// Bytes of each (no-op scored) item.
    #[arg(long, default_value_t = 64)]
    item_bytes: usize,
    /// A checkpoint for the real-model run (with --images).
    #[arg(long)]
    model: Option<PathBuf>,
    /// Images for the real-model run (with --model).
    #[arg(long)]
    images: Option<PathBuf>,
    #[arg(long, default_value = "f32")]
    dtype: String,
    #[arg(long, default_value_t = 32)]
    batch: usize,
    /// Passed by `cargo bench` itself.
    #[arg(long, hide = true)]
    bench: bool,
}

/// A memory figure of a live process from /proc (`VmHWM`: peak resident
/// set; `VmRSS`: current), in MB.
fn rss_mb(pid: u32, field: &str) -> anyhow::Result<f64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    let kb: f64 = status
        .lines()
        .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
        .with_context(|| format!("no {field}"))?
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()?;
    Ok(kb / 1024.0)
}

async fn connect(port: u16) -> anyhow::Result<Client> {
    let settings = ClientSettings {
        coordinator: format!("http://127.0.0.1:{port}"),
        ..ClientSettings::default()
    };
    let deadline = Instant::now() + Duration::from_secs(600);
    loop {
        match Client::connect(settings.clone()).await {
            Ok(client) => return Ok(client),
            Err(_) if Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(100)).await
            }
            Err(e) => return Err(e.into()),
        }
    }
}

/// Uploads `items` and streams all results; returns (items, seconds).
async fn run_job(
    client: &Client,
    model: &str,
    items: impl Iterator<Item = Item> + Send + 'static,
) -> anyhow::Result<(u64, f64)> {
    let started = Instant::now();
    let header = JobHeader {
        model: model.into(),
        ..JobHeader::default()
    };
    let response = client.submit(header, items, Arc::new(|_, _| {})).await?;
    let job = response.job.context("no job in the response")?;
    let mut failed = 0u64;
    let last = client
        .stream_results(&job.job_id, 0, |results| {
            failed += results.iter().filter(|r| !r.error.is_empty()).count() as u64;
            Ok(())
        })
        .await?;
    let seconds = started.elapsed().as_secs_f64();
    if last != job.total || failed > 0 {
        bail!("{last} results of {}, {failed} failed", job.total);
    }
    Ok((last, seconds))
}

async fn queue_overhead(args: &Args) -> anyhow::Result<()> {
    let redis = RedisServer::start();
    let port = free_port();
    let coordinator = coordinator(&redis, port, "noop")?;
    let _worker = spawn(dfscan(&[
        "worker",
        "--redis",
        &redis.url(),
        "--model",
        "noop",
        "--bench-noop-scorer",
    ]))?;
    let client = connect(port).await?;
    // Before any job: what the process costs idle.
    let idle = rss_mb(coordinator.0.id(), "VmRSS")?;
    let bytes = args.item_bytes;
    let items = (0..args.items).map(move |i| Item {
        id: format!("item-{i:08}"),
        source: Some(Source::Data(vec![(i % 251) as u8; bytes].into())),
        metadata: Default::default(),
    });
    let (n, seconds) = run_job(&client, "noop", items).await?;
    let peak = rss_mb(coordinator.0.id(), "VmHWM")?;
    println!(
        "queue overhead (no-op scorer, {bytes}-byte items): {n} items in {seconds:.2} s = {:.0} items/s (target >= 20000: {:.2}x)",
        n as f64 / seconds,
        n as f64 / seconds / 20_000.0
    );
    println!(
        "coordinator RSS: {idle:.1} MB idle before the job, {peak:.1} MB peak (target < 200 MB); the job added {:.1} MB",
        peak - idle
    );
    Ok(())
}

/// `dfscan score`'s own throughput line (model load excluded).
fn score_rate(model: &Path, images: &Path, args: &Args) -> anyhow::Result<f64> {
    let batch = args.batch.to_string();
    let out = Command::new(env!("CARGO_BIN_EXE_dfscan"))
        .args([
            "score",
            "--format",
            "jsonl",
            "--dtype",
            &args.dtype,
            "--batch-size",
            &batch,
            "--model",
        ])
        .arg(model)
        .arg(images)
        .env("DFSCAN_LOG", "info")
        .env("NO_COLOR", "1")
        .output()?;
    let log = String::from_utf8_lossy(&out.stderr);
    log.split("images_per_s=")
        .nth(1)
        .and_then(|rest| rest.split_whitespace().next())
        .map(|v| v.trim_matches('"').parse::<f64>())
        .transpose()?
        .with_context(|| format!("no throughput in dfscan score's log: {log}"))
}

async fn cluster_vs_score(args: &Args, model: &Path, images: &Path) -> anyhow::Result<()> {
    let redis = RedisServer::start();
    let port = free_port();
    let name = model.file_name().unwrap().to_string_lossy().into_owned();
    let _coordinator = coordinator(&redis, port, &name)?;
    let batch = args.batch.to_string();
    let _worker = spawn(dfscan(&[
        "worker",
        "--redis",
        &redis.url(),
        "--model",
        model.to_str().unwrap(),
        "--dtype",
        &args.dtype,
        "--max-batch",
        &batch,
    ]))?;
    let client = connect(port).await?;
    let files = image_files(images)?;
    let load = |files: Vec<PathBuf>| {
        files.into_iter().map(|path| Item {
            id: path.to_string_lossy().into_owned(),
            source: Some(Source::Data(
                std::fs::read(&path).unwrap_or_default().into(),
            )),
            metadata: Default::default(),
        })
    };
    // Warm-up job: the worker's first batches pay one-time costs.
    run_job(&client, &name, load(files.clone())).await?;
    let (n, seconds) = run_job(&client, &name, load(files)).await?;
    let cluster = n as f64 / seconds;
    let score = score_rate(model, images, args)?;
    println!(
        "{} {}: cluster {cluster:.2} images/s, dfscan score {score:.2} images/s: {:.3}x (target >= 0.95)",
        name,
        args.dtype,
        cluster / score
    );
    Ok(())
}

fn image_files(dir: &Path) -> anyhow::Result<Vec<PathBuf>> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.is_file())
        .collect();
    files.sort();
    Ok(files)
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async {
        queue_overhead(&args).await?;
        if let (Some(model), Some(images)) = (&args.model, &args.images) {
            cluster_vs_score(&args, model, images).await?;
        }
        Ok(())
    })
}
