//! The KServe v2 endpoint's online serving, through a deployment's real
//! processes (redis-server, `dfscan-coordinator`, one `dfscan worker`):
//! ModelInfer latency for one image (p50/p99 over sequential calls) and
//! throughput at 16 concurrent callers, run side by side with the tiny
//! test model and with the no-op scorer, whose numbers are the serving
//! overhead (gRPC, queue, worker pipeline) alone.
//!
//! `cargo bench --bench kserve -- [--calls N] [--concurrency C] [--model DIR]`
//! (default model: `target/bench/tiny-a`, generated on first use).

use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::Context;
use clap::Parser;
use dfscan_proto::inference::grpc_inference_service_client::GrpcInferenceServiceClient;
use dfscan_proto::inference::model_infer_request::InferInputTensor;
use dfscan_proto::inference::{InferTensorContents, ModelInferRequest, ModelReadyRequest};
use dfscan_testkit::{free_port, RedisServer};
use tonic::transport::Channel;

mod common;
use common::{coordinator, dfscan, spawn, Proc};

/// Flags after `cargo bench --bench kserve --`.
#[derive(Parser)]
struct Args {
    /// ModelInfer calls per measurement.
    #[arg(long, default_value_t = 400)]
    calls: usize,
    /// Concurrent callers for the throughput figure.
    #[arg(long, default_value_t = 16)]
    concurrency: usize,
    /// The checkpoint served (generated on first use).
    #[arg(long, default_value_os_t = common::bench_model("tiny-a"))]
    model: PathBuf,
    /// Passed by `cargo bench` itself.
    #[arg(long, hide = true)]
    bench: bool,
}

/// One 224x224 PNG, the size the model takes.
fn image() -> Vec<u8> {
    let img = image::RgbImage::from_fn(224, 224, |x, y| {
        image::Rgb([(x * 3) as u8, (y * 5) as u8, ((x + y) * 7) as u8])
    });
    let mut png = std::io::Cursor::new(Vec::new());
    img.write_to(&mut png, image::ImageFormat::Png)
        .expect("encoding a PNG in memory");
    png.into_inner()
}

fn request(model: &str, image: &[u8]) -> ModelInferRequest {
    ModelInferRequest {
        model_name: model.into(),
        inputs: vec![InferInputTensor {
            name: "IMAGE".into(),
            datatype: "BYTES".into(),
            shape: vec![1],
            contents: Some(InferTensorContents {
                bytes_contents: vec![image.to_vec().into()],
                ..Default::default()
            }),
            ..Default::default()
        }],
        ..Default::default()
    }
}

/// A cluster of one worker, ready to answer for `model`.
async fn start(
    worker_args: &[&str],
    model: &str,
) -> anyhow::Result<(RedisServer, Proc, Proc, GrpcInferenceServiceClient<Channel>)> {
    let redis = RedisServer::start();
    let port = free_port();
    let coordinator = coordinator(&redis, port, model)?;
    let mut args = vec!["worker", "--redis"];
    let url = redis.url();
    args.push(&url);
    args.extend_from_slice(worker_args);
    let worker = spawn(dfscan(&args))?;
    let deadline = Instant::now() + Duration::from_secs(120);
    let mut client = loop {
        match GrpcInferenceServiceClient::connect(format!("http://127.0.0.1:{port}")).await {
            Ok(client) => break client,
            Err(_) if Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(100)).await
            }
            Err(e) => return Err(e.into()),
        }
    };
    loop {
        let ready = client
            .model_ready(ModelReadyRequest {
                name: model.into(),
                version: String::new(),
            })
            .await
            .map(|r| r.into_inner().ready)
            .unwrap_or(false);
        if ready {
            break;
        }
        anyhow::ensure!(Instant::now() < deadline, "{model} never became ready");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    Ok((redis, coordinator, worker, client))
}

struct Measured {
    p50_ms: f64,
    p99_ms: f64,
    calls_per_s: f64,
}

async fn measure(
    mut client: GrpcInferenceServiceClient<Channel>,
    request: ModelInferRequest,
    args: &Args,
) -> anyhow::Result<Measured> {
    for _ in 0..20 {
        client.model_infer(request.clone()).await?;
    }
    let mut latencies = Vec::with_capacity(args.calls);
    for _ in 0..args.calls {
        let started = Instant::now();
        client.model_infer(request.clone()).await?;
        latencies.push(started.elapsed().as_secs_f64() * 1000.0);
    }
    latencies.sort_by(f64::total_cmp);
    let at = |q: f64| latencies[((latencies.len() - 1) as f64 * q).round() as usize];
    let per_caller = args.calls.div_ceil(args.concurrency);
    let started = Instant::now();
    let mut callers = tokio::task::JoinSet::new();
    for _ in 0..args.concurrency {
        let mut client = client.clone();
        let request = request.clone();
        callers.spawn(async move {
            for _ in 0..per_caller {
                client.model_infer(request.clone()).await?;
            }
            Ok::<_, tonic::Status>(())
        });
    }
    while let Some(done) = callers.join_next().await {
        done??;
    }
    let calls = per_caller * args.concurrency;
    Ok(Measured {
        p50_ms: at(0.5),
        p99_ms: at(0.99),
        calls_per_s: calls as f64 / started.elapsed().as_secs_f64(),
    })
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    common::ensure_tiny_model(&args.model)?;
    let model_dir = args.model.to_str().context("model path is not UTF-8")?;
    let model_name = args
        .model
        .file_name()
        .and_then(|n| n.to_str())
        .context("model path has no name")?
        .to_string();
    let image = image();
    let runtime = tokio::runtime::Runtime::new()?;
    let noop = runtime.block_on(async {
        let (_redis, _coordinator, _worker, client) =
            start(&["--model", "noop", "--bench-noop-scorer"], "noop").await?;
        measure(client, request("noop", &image), &args).await
    })?;
    let tiny = runtime.block_on(async {
        let worker = [
            "--model",
            model_dir,
            "--threads",
            "1",
            "--decode-threads",
            "1",
        ];
        let (_redis, _coordinator, _worker, client) = start(&worker, &model_name).await?;
        measure(client, request(&model_name, &image), &args).await
    })?;
    println!(
        "ModelInfer, one 224x224 PNG per call, {} sequential calls, then {} calls from {} concurrent callers:",
        args.calls,
        args.calls.div_ceil(args.concurrency) * args.concurrency,
        args.concurrency
    );
    println!(
        "| scorer | p50 ms | p99 ms | calls/s at concurrency {} |",
        args.concurrency
    );
    println!("|---|---|---|---|");
    for (name, m) in [
        ("no-op (serving overhead)", &noop),
        (model_name.as_str(), &tiny),
    ] {
        println!(
            "| {name} | {:.2} | {:.2} | {:.0} |",
            m.p50_ms, m.p99_ms, m.calls_per_s
        );
    }
    println!(
        "tiny model / no-op: p50 {:.2}x, throughput {:.2}x",
        tiny.p50_ms / noop.p50_ms,
        tiny.calls_per_s / noop.calls_per_s
    );
    Ok(())
}
