//! Forward-pass efficiency: GFLOP/s of dfscan's ViT forward against this
//! machine's measured GEMM GFLOP/s (libtorch matmul at the shapes the ViT's
//! MLP uses), same process, same threads.
//!
//! `cargo bench --bench forward -- MODEL_DIR [--batch N] [--dtype f32|bf16] [--device cpu|cuda] [--iters N]`

use std::time::{Duration, Instant};

use clap::Parser;
use dfscan_core::DType;
use dfscan_model::vit_config::VitConfig;
use tch::{Kind, Tensor};

mod model_bench;
use model_bench::{median, ModelFlags};

/// Flags after `cargo bench --bench forward --`.
#[derive(Parser)]
struct Args {
    #[command(flatten)]
    flags: ModelFlags,
    #[arg(long, default_value_t = 32)]
    batch: usize,
    /// Passed by `cargo bench` itself.
    #[arg(long, hide = true)]
    bench: bool,
}

fn main() -> anyhow::Result<()> {
    let Args { flags, batch, .. } = Args::parse();
    let (model, dtype, iters) = (flags.model.clone(), flags.dtype, flags.iters);
    let config = VitConfig::from_file(&std::path::Path::new(&model).join("config.json"))?;
    let engine = flags.load(batch)?;
    let pixels = vec![0.1f32; batch * engine.info().pixels_per_image()];
    engine.logits_blocking(pixels.clone(), batch)?; // warm-up
    let iters = iters as usize;
    let mut times = Vec::with_capacity(iters);
    for _ in 0..iters {
        let start = Instant::now();
        engine.logits_blocking(pixels.clone(), batch)?;
        times.push(start.elapsed());
    }
    let forward = median(times);
    let forward_gflops = forward_flops(&config) * batch as f64 / forward.as_secs_f64() / 1e9;

    let kind = match dtype {
        DType::F32 => Kind::Float,
        DType::BF16 => Kind::BFloat16,
        DType::F16 => Kind::Half,
    };
    let tokens = batch as i64 * (config.grid() * config.grid() + 1);
    let on = match engine.info().device.strip_prefix("cuda:") {
        Some(n) => tch::Device::Cuda(n.parse()?),
        None => tch::Device::Cpu,
    };
    let gemm_gflops = gemm_peak(
        on,
        kind,
        tokens,
        config.hidden_size,
        config.intermediate_size,
    );
    println!(
        "{{\"model\":{model:?},\"device\":\"{}\",\"dtype\":\"{dtype}\",\"batch\":{batch},\"threads\":{},\"forward_s\":{:.4},\"images_per_s\":{:.2},\"forward_gflops\":{forward_gflops:.1},\"gemm_gflops\":{gemm_gflops:.1},\"fraction_of_gemm\":{:.3}}}",
        engine.info().device,
        tch::get_num_threads(),
        forward.as_secs_f64(),
        batch as f64 / forward.as_secs_f64(),
        forward_gflops / gemm_gflops
    );
    Ok(())
}

/// Multiply-adds ×2 of one image's forward pass (GEMMs, convolution and
/// attention products; elementwise work is not counted).
fn forward_flops(c: &VitConfig) -> f64 {
    let (h, i) = (c.hidden_size as f64, c.intermediate_size as f64);
    let patches = (c.grid() * c.grid()) as f64;
    let t = patches + 1.0;
    let embed = 2.0 * patches * h * (c.num_channels * c.patch_size * c.patch_size) as f64;
    let layer = 2.0 * t * h * h * 4.0 + 2.0 * 2.0 * t * t * h + 2.0 * 2.0 * t * h * i;
    embed + layer * c.num_layers as f64 + 2.0 * h * c.labels.len() as f64
}

/// Median GFLOP/s of `[tokens, hidden] × [hidden, inter]` over ≥ 2 s (the
/// median, like the forward's, so one lucky run sets neither number).
fn gemm_peak(device: tch::Device, kind: Kind, tokens: i64, hidden: i64, inter: i64) -> f64 {
    let _guard = tch::no_grad_guard();
    let a = Tensor::randn([tokens, hidden], (kind, device));
    let b = Tensor::randn([hidden, inter], (kind, device));
    // CUDA kernels are asynchronous: time them to completion.
    let sync = || {
        if let tch::Device::Cuda(n) = device {
            tch::Cuda::synchronize(n as i64);
        }
    };
    let flops = 2.0 * (tokens * hidden * inter) as f64;
    let _ = a.matmul(&b);
    sync();
    let (mut times, deadline) = (Vec::new(), Instant::now() + Duration::from_secs(2));
    while Instant::now() < deadline || times.len() < 5 {
        let start = Instant::now();
        let _ = a.matmul(&b);
        sync();
        times.push(start.elapsed());
    }
    flops / median(times).as_secs_f64() / 1e9
}
