//! What an explanation costs: the time of `relevance` and `rollout` on a
//! batch against a plain forward pass of the same batch, same process,
//! same threads, and the memory an explained row takes (peak RSS after
//! explaining one row and after a full pass of `MAX_EXPLAIN_ROWS`, CPU).
//! `benches/explain_vs_reference.py` runs it beside the PyTorch reference.
//!
//! `cargo bench --bench explain -- MODEL_DIR [--batch N] [--dtype f32|bf16] [--device cpu|cuda] [--iters N]`

use std::time::{Duration, Instant};

use clap::Parser;
use dfscan_core::ExplainMethod;
use dfscan_model::engine::MAX_EXPLAIN_ROWS;

mod model_bench;
use model_bench::{median, ModelFlags};

/// Flags after `cargo bench --bench explain --`.
#[derive(Parser)]
struct Args {
    #[command(flatten)]
    flags: ModelFlags,
    #[arg(long, default_value_t = MAX_EXPLAIN_ROWS)]
    batch: usize,
    /// Passed by `cargo bench` itself.
    #[arg(long, hide = true)]
    bench: bool,
}

fn main() -> anyhow::Result<()> {
    let Args { flags, batch, .. } = Args::parse();
    let (model, iters) = (flags.model.clone(), flags.iters);
    let engine = flags.load(batch)?;
    let info = engine.info().clone();
    // Varied pixels, so that attention is not uniform.
    let per_image = info.pixels_per_image();
    let pixels: Vec<f32> = (0..batch * per_image)
        .map(|i| ((i * 7919) % 1000) as f32 / 500.0 - 1.0)
        .collect();
    let targets = vec![info.fake_index; batch];
    let forward = || engine.logits_blocking(pixels.clone(), batch).map(|_| ());
    let explain = |method, rows: usize| {
        engine
            .explain_blocking(
                pixels[..rows * per_image].to_vec(),
                rows,
                method,
                &targets[..rows],
            )
            .map(|_| ())
    };

    forward()?;
    let rss_loaded = peak_rss_mb();
    explain(ExplainMethod::Relevance, 1)?;
    let rss_one = peak_rss_mb();
    explain(ExplainMethod::Relevance, MAX_EXPLAIN_ROWS.min(batch))?;
    let rss_pass = peak_rss_mb();
    explain(ExplainMethod::Rollout, batch)?;

    let iters = iters as usize;
    let (mut plain, mut relevance, mut rollout) = (Vec::new(), Vec::new(), Vec::new());
    // Interleaved, so drift hits all three alike.
    for _ in 0..iters {
        plain.push(timed(forward)?);
        relevance.push(timed(|| explain(ExplainMethod::Relevance, batch))?);
        rollout.push(timed(|| explain(ExplainMethod::Rollout, batch))?);
    }
    let (plain, relevance, rollout) = (median(plain), median(relevance), median(rollout));
    let rows_per_pass = MAX_EXPLAIN_ROWS.min(batch).max(2) as f64;
    println!(
        "{{\"model\":{model:?},\"device\":\"{}\",\"dtype\":\"{}\",\"batch\":{batch},\"threads\":{},\"forward_s\":{:.4},\"relevance_s\":{:.4},\"rollout_s\":{:.4},\"relevance_over_forward\":{:.2},\"rollout_over_forward\":{:.2},\"peak_rss_loaded_mb\":{rss_loaded:.0},\"peak_rss_one_row_mb\":{rss_one:.0},\"peak_rss_pass_mb\":{rss_pass:.0},\"mb_per_explained_row\":{:.1}}}",
        info.device,
        info.dtype,
        tch::get_num_threads(),
        plain.as_secs_f64(),
        relevance.as_secs_f64(),
        rollout.as_secs_f64(),
        relevance.as_secs_f64() / plain.as_secs_f64(),
        rollout.as_secs_f64() / plain.as_secs_f64(),
        (rss_pass - rss_one) / (rows_per_pass - 1.0),
    );
    Ok(())
}

fn timed(f: impl Fn() -> Result<(), dfscan_model::ModelError>) -> anyhow::Result<Duration> {
    let start = Instant::now();
    f()?;
    Ok(start.elapsed())
}

/// This process's peak resident memory so far, MB (Linux: VmHWM).
fn peak_rss_mb() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("VmHWM:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        })
        .map_or(0.0, |kb| kb / 1024.0)
}
