//! `dtype = "auto"`: the precision this host runs the classifier fastest in,
//! among those the parity tests cover.
//!
//! - CUDA: bf16 (tensor-core GEMMs on every GPU since Ampere; the CUDA
//!   parity bounds cover it), unless a bf16 GEMM fails on the device.
//! - CPU: f32 or bf16, by measuring. bf16 only pays where the CPU runs it
//!   natively (AVX512-BF16 or AMX): it was 3.9× f32 on an AMX Xeon, 1.9× on
//!   an AMD EPYC with AVX512-BF16, and 0.6× on a Xeon where oneDNN does not
//!   use AMX. CPU flags alone do not tell these apart (AMX also needs the
//!   kernel's permission, and oneDNN's dispatch changes between versions),
//!   so the classifier's own MLP GEMM is timed in both, at the intra-op
//!   thread count the model will run with. bf16 must beat f32 by
//!   [`BF16_MIN_GAIN`], since the rest of a forward pass (layer norms,
//!   softmax, conversions) gains less than the GEMMs.
//!
//! f16 is never picked on CPU (no CPU here runs it faster than bf16), and
//! int8 is not offered: its accuracy misses the bound (BENCHMARKS.md).

use std::time::{Duration, Instant};

use dfscan_core::{DType, DTypeRequest};
use tch::{Device, Kind, Tensor};

use crate::vit_config::VitConfig;

/// How much faster bf16's GEMM must be than f32's for `auto` to pick it.
pub const BF16_MIN_GAIN: f64 = 1.25;

/// Floating-point work per timed measurement: enough that a tiny model's
/// GEMM is timed over many calls instead of one noisy microsecond.
const FLOPS_PER_MEASUREMENT: f64 = 2e9;
/// Interleaved rounds per dtype; the fastest round counts.
const ROUNDS: usize = 3;

/// The resolved precision and why, for the load log.
#[derive(Debug, Clone, PartialEq)]
pub struct DTypeChoice {
    pub dtype: DType,
    pub reason: String,
}

/// Resolves `request` for a model of `config` on `device`.
pub fn choose(request: DTypeRequest, device: Device, config: &VitConfig) -> DTypeChoice {
    match request {
        DTypeRequest::Exact(dtype) => DTypeChoice {
            dtype,
            reason: "as configured".into(),
        },
        DTypeRequest::Auto if device.is_cuda() => cuda_choice(device),
        DTypeRequest::Auto => cpu_choice(&MlpGemm::of(config)),
    }
}

/// The rule, apart from the measurement: bf16 when its GEMM is at least
/// [`BF16_MIN_GAIN`] times as fast as f32's.
pub fn pick_cpu(f32_time: Duration, bf16_time: Duration) -> DType {
    if f32_time.as_secs_f64() >= BF16_MIN_GAIN * bf16_time.as_secs_f64() {
        DType::BF16
    } else {
        DType::F32
    }
}

fn cuda_choice(device: Device) -> DTypeChoice {
    let probe = std::panic::catch_unwind(|| {
        let a = Tensor::ones([64, 64], (Kind::BFloat16, device));
        f64::try_from(a.matmul(&a).sum(Kind::Float)).ok()
    });
    match probe {
        Ok(Some(sum)) if sum == 64.0 * 64.0 * 64.0 => DTypeChoice {
            dtype: DType::BF16,
            reason: "auto on CUDA: bf16".into(),
        },
        _ => DTypeChoice {
            dtype: DType::F32,
            reason: "auto on CUDA: f32, since a bf16 GEMM failed on this device".into(),
        },
    }
}

fn cpu_choice(gemm: &MlpGemm) -> DTypeChoice {
    let f32_inputs = gemm.inputs(Kind::Float);
    let bf16_inputs = gemm.inputs(Kind::BFloat16);
    let calls = gemm.calls_per_measurement();
    // Warm both (oneDNN builds its kernels on the first call), then
    // interleave, so a burst of load elsewhere hits both dtypes alike.
    MlpGemm::time(&f32_inputs, 1);
    MlpGemm::time(&bf16_inputs, 1);
    let (mut f32_best, mut bf16_best) = (Duration::MAX, Duration::MAX);
    for _ in 0..ROUNDS {
        f32_best = f32_best.min(MlpGemm::time(&f32_inputs, calls));
        bf16_best = bf16_best.min(MlpGemm::time(&bf16_inputs, calls));
    }
    let dtype = pick_cpu(f32_best, bf16_best);
    let rate = |t: Duration| gemm.flops() * calls as f64 / t.as_secs_f64() / 1e9;
    let reason = format!(
        "auto on CPU: {dtype}; the MLP GEMM ({}×{}×{}, {} threads) ran at {:.0} GFLOP/s in f32 \
         and {:.0} GFLOP/s in bf16 ({:.2}×; bf16 needs {BF16_MIN_GAIN}×)",
        gemm.rows,
        gemm.inner,
        gemm.outer,
        tch::get_num_threads(),
        rate(f32_best),
        rate(bf16_best),
        f32_best.as_secs_f64() / bf16_best.as_secs_f64(),
    );
    DTypeChoice { dtype, reason }
}

/// The classifier's first MLP layer as one GEMM: a batch's tokens
/// (`rows`) times `inner` (hidden size) into `outer` (intermediate size).
struct MlpGemm {
    rows: i64,
    inner: i64,
    outer: i64,
}

impl MlpGemm {
    /// Eight images' tokens: the smallest batch that keeps a base-sized
    /// model's GEMM compute-bound, and small enough to time in well under
    /// a second on a slow CPU.
    fn of(config: &VitConfig) -> Self {
        let side = config.grid();
        Self {
            rows: 8 * (side * side + 1),
            inner: config.hidden_size,
            outer: config.intermediate_size,
        }
    }

    fn flops(&self) -> f64 {
        2.0 * (self.rows * self.inner * self.outer) as f64
    }

    fn calls_per_measurement(&self) -> usize {
        (FLOPS_PER_MEASUREMENT / self.flops())
            .ceil()
            .clamp(1.0, 10_000.0) as usize
    }

    fn inputs(&self, kind: Kind) -> (Tensor, Tensor) {
        let options = (Kind::Float, Device::Cpu);
        (
            Tensor::randn([self.rows, self.inner], options).to_kind(kind),
            Tensor::randn([self.outer, self.inner], options).to_kind(kind),
        )
    }

    fn time((x, w): &(Tensor, Tensor), calls: usize) -> Duration {
        let start = Instant::now();
        for _ in 0..calls {
            let _ = x.linear::<Tensor>(w, None);
        }
        start.elapsed()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tiny() -> VitConfig {
        VitConfig::from_json(
            r#"{"model_type":"vit","hidden_size":48,"num_hidden_layers":1,
            "num_attention_heads":3,"intermediate_size":100,"image_size":40,"patch_size":8,
            "id2label":{"0":"Real","1":"Fake"}}"#,
        )
        .unwrap()
    }

    #[test]
    fn bf16_only_when_clearly_faster() {
        let ms = Duration::from_millis;
        assert_eq!(pick_cpu(ms(100), ms(26)), DType::BF16);
        assert_eq!(pick_cpu(ms(125), ms(100)), DType::BF16);
        assert_eq!(pick_cpu(ms(120), ms(100)), DType::F32);
        assert_eq!(pick_cpu(ms(60), ms(100)), DType::F32);
    }

    #[test]
    fn an_exact_request_is_kept() {
        let config = tiny();
        let choice = choose(DType::F16.into(), Device::Cpu, &config);
        assert_eq!(choice.dtype, DType::F16);
    }

    #[test]
    fn auto_on_cpu_picks_f32_or_bf16_and_says_why() {
        let config = tiny();
        let choice = choose(DTypeRequest::Auto, Device::Cpu, &config);
        assert!(matches!(choice.dtype, DType::F32 | DType::BF16));
        assert!(
            choice.reason.contains("GFLOP/s in f32"),
            "{}",
            choice.reason
        );
        assert!(
            choice.reason.contains("GFLOP/s in bf16"),
            "{}",
            choice.reason
        );
    }
}
