//! The protocol fuzzer's long run (the bounded one is
//! `tests/protocol_fuzz.rs`): the named cases, then seeded random
//! requests against real processes (redis-server, `dfscan-coordinator`,
//! one `dfscan worker` of the tiny test model), with the counts per RPC
//! and per status. Fails if any call got INTERNAL, UNKNOWN, a transport
//! error or no answer, if the coordinator exited, or if a good request no
//! longer scores.
//!
//! `cargo bench --bench protocol_fuzz -- [--requests N] [--seed S]
//!  [--concurrency C] [--model DIR]` (default model: `target/bench/tiny-a`,
//! generated on first use).

use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{bail, ensure, Context as _};
use clap::Parser;
use dfscan_testkit::{free_port, RedisServer};

mod common;
#[path = "../tests/fuzz/mod.rs"]
mod fuzz;

use common::{coordinator, dfscan, spawn};
use fuzz::gen::Context;
use fuzz::run;

/// Flags after `cargo bench --bench protocol_fuzz --`.
#[derive(Parser)]
struct Args {
    /// Requests in all, the named cases first.
    #[arg(long, default_value_t = 100_000)]
    requests: u64,
    /// Seed of the random requests.
    #[arg(long, default_value_t = 13)]
    seed: u64,
    /// Requests in flight at once.
    #[arg(long, default_value_t = 16)]
    concurrency: usize,
    /// The checkpoint the worker serves (generated on first use).
    #[arg(long, default_value_os_t = common::bench_model("tiny-a"))]
    model: PathBuf,
    /// Passed by `cargo bench` itself.
    #[arg(long, hide = true)]
    bench: bool,
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    common::ensure_tiny_model(&args.model)?;
    let model_name = args
        .model
        .file_name()
        .context("--model names no directory")?
        .to_string_lossy()
        .into_owned();
    let redis = RedisServer::start();
    let port = free_port();
    let mut coordinator = coordinator(&redis, port, &model_name)?;
    let url = redis.url();
    let model_dir = args.model.to_string_lossy().into_owned();
    let worker_args = [
        "worker",
        "--redis",
        &url,
        "--model",
        &model_dir,
        "--threads",
        "1",
    ];
    let _worker = spawn(dfscan(&worker_args))?;
    let runtime = tokio::runtime::Runtime::new()?;
    runtime.block_on(async {
        let deadline = Instant::now() + Duration::from_secs(120);
        let endpoint = format!("http://127.0.0.1:{port}");
        let channel = loop {
            match run::connect(&endpoint).await {
                Ok(channel) => break channel,
                Err(_) if Instant::now() < deadline => {
                    tokio::time::sleep(Duration::from_millis(100)).await
                }
                Err(e) => bail!("connecting to the coordinator: {e}"),
            }
        };
        let mut ctx = Context {
            model: model_name.clone(),
            job_id: String::new(),
            job_total: 2,
            image: fuzz::image(),
        };
        let before = loop {
            match run::good_infer(&channel, &ctx).await {
                Ok(scores) => break scores,
                Err(_) if Instant::now() < deadline => {
                    tokio::time::sleep(Duration::from_millis(200)).await
                }
                Err(e) => bail!("a good request does not score: {e}"),
            }
        };
        ctx.job_id = run::good_job(&channel, &ctx, ctx.job_total)
            .await
            .map_err(anyhow::Error::msg)?;
        let started = Instant::now();
        let tally = run::fuzz(&channel, &ctx, args.seed, args.requests, args.concurrency).await;
        let took = started.elapsed().as_secs_f64();
        println!("{}", tally.report(args.seed));
        println!(
            "{} requests in {took:.1} s ({:.0}/s), concurrency {}",
            tally.requests,
            tally.requests as f64 / took,
            args.concurrency
        );
        let after = run::good_infer(&channel, &ctx)
            .await
            .map_err(|e| anyhow::anyhow!("a good request no longer scores: {e}"))?;
        ensure!(after.len() == before.len(), "{after:?} vs {before:?}");
        ensure!(tally.failed == 0, "{} calls failed", tally.failed);
        Ok(())
    })?;
    ensure!(
        coordinator.0.try_wait()?.is_none(),
        "the coordinator exited"
    );
    Ok(())
}
