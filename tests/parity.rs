//! Numerical parity with Hugging Face transformers on two tiny random
//! checkpoints that differ from ViT-base in every dimension (and from each
//! other in label order, count, qkv bias, normalization and sharding):
//! - logits within 1e-4 of transformers' on identical pixel tensors,
//!   one image at a time and in one batch;
//! - end-to-end probabilities from the files within 1e-3 of
//!   `pipeline("image-classification")`, and the same label wherever the
//!   reference's top two probabilities are further apart than that.

mod common;

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;

use dfscan_core::settings::ModelSettings;
use dfscan_core::{DType, DTypeRequest, DeviceRequest, FaceMode, FaceSettings};
use dfscan_model::{load_engine, Engine, Scorer};
use serde::Deserialize;

const MODELS: [&str; 2] = ["tiny-a", "tiny-b"];

#[derive(Deserialize)]
struct Reference {
    probs: Vec<f32>,
    label: String,
}

/// The pipeline's own path, the whole image: these tests check the
/// classifier (tests/faces.rs checks face crops).
fn whole_images() -> FaceSettings {
    FaceSettings {
        mode: FaceMode::Off,
        ..FaceSettings::default()
    }
}

fn engine(model: &str) -> Engine {
    engine_in(model, DType::F32)
}

fn engine_in(model: &str, dtype: DType) -> Engine {
    let settings = ModelSettings {
        model: common::model_dir(model).to_string_lossy().into_owned(),
        device: DeviceRequest::Cpu,
        dtype: dtype.into(),
        ..Default::default()
    };
    load_engine(&settings, &whole_images(), 32).unwrap()
}

fn references(model: &str) -> BTreeMap<String, Reference> {
    let text = std::fs::read_to_string(common::fixtures().join("reference.json")).unwrap();
    let mut all: BTreeMap<String, BTreeMap<String, Reference>> =
        serde_json::from_str(&text).unwrap();
    all.remove(model).unwrap()
}

/// transformers' pixel values or logits for `model`, by image name.
fn reference_tensors(kind: &str, model: &str) -> HashMap<String, Vec<f32>> {
    common::read_f32_tensors(&common::fixtures().join(format!("{kind}-{model}.safetensors")))
}

fn max_abs_diff(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len());
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f32::max)
}

#[test]
fn logits_match_transformers_on_identical_pixels() {
    for model in MODELS {
        let engine = engine(model);
        let pixels = reference_tensors("pixels", model);
        let logits = reference_tensors("logits", model);
        assert!(
            pixels.len() >= 10,
            "{model}: only {} fixtures",
            pixels.len()
        );
        let mut names: Vec<&String> = pixels.keys().collect();
        names.sort();
        let mut batch = Vec::new();
        for name in &names {
            let got = engine.logits_blocking(pixels[*name].clone(), 1).unwrap();
            let diff = max_abs_diff(&got, &logits[*name]);
            assert!(
                diff < 1e-4,
                "{model}/{name}: logits differ by {diff}: {got:?} vs {:?}",
                logits[*name]
            );
            batch.extend_from_slice(&pixels[*name]);
        }
        let batched = engine.logits_blocking(batch, names.len()).unwrap();
        let expected: Vec<f32> = names.iter().flat_map(|n| logits[*n].clone()).collect();
        let diff = max_abs_diff(&batched, &expected);
        assert!(diff < 1e-4, "{model}: batched logits differ by {diff}");
    }
}

#[test]
fn probabilities_from_files_match_the_pipeline() {
    for model in MODELS {
        let refs = references(model);
        let engine = engine(model);
        let limits = dfscan_model::decode_limits(&ModelSettings::default());
        let scorer = Scorer::new(engine, 2, limits, 4, whole_images(), Default::default()).unwrap();
        let names: Vec<&String> = refs.keys().collect();
        let paths: Vec<PathBuf> = names
            .iter()
            .map(|n| common::fixtures().join("images").join(n))
            .collect();
        let mut seen = 0;
        scorer.score_files(&paths, |i, result| {
            let name = names[i];
            let reference = &refs[name];
            let got = result.unwrap_or_else(|e| panic!("{model}/{name}: {e}"));
            let got = got
                .prediction()
                .cloned()
                .expect("a whole image has a score");
            let probs: Vec<f32> = got.scores.iter().map(|(_, p)| *p).collect();
            let diff = max_abs_diff(&probs, &reference.probs);
            assert!(
                diff < 1e-3,
                "{model}/{name}: probabilities differ by {diff}: {probs:?} vs {:?}",
                reference.probs
            );
            let mut sorted = reference.probs.clone();
            sorted.sort_by(|a, b| b.total_cmp(a));
            if sorted[0] - sorted[1] > 1e-3 {
                assert_eq!(got.label, reference.label, "{model}/{name}");
            }
            seen += 1;
        });
        assert_eq!(seen, refs.len());
    }
}

#[test]
fn preprocessing_matches_the_pil_image_processor() {
    // Every format, JPEG included (libjpeg-turbo, as in Pillow), must give
    // the processor's pixel values up to float32 rounding.
    let model = "tiny-b";
    let engine = engine(model);
    let cfg = &engine.info().preprocessor;
    let limits = dfscan_model::decode_limits(&ModelSettings::default());
    let pixels = reference_tensors("pixels", model);
    for (name, expected) in &pixels {
        let bytes = std::fs::read(common::fixtures().join("images").join(name)).unwrap();
        let got = dfscan_imaging::preprocess(&bytes, cfg, &limits).unwrap();
        let diff = max_abs_diff(&got, expected);
        assert!(diff < 1e-5, "{name}: pixel values differ by {diff}");
    }
}

#[test]
fn half_precisions_stay_close_to_f32() {
    // bf16 keeps 8 mantissa bits, f16 11: logits drift, decisions should not.
    let model = "tiny-a";
    let pixels = reference_tensors("pixels", model);
    let logits = reference_tensors("logits", model);
    for (dtype, tolerance) in [(DType::BF16, 0.15), (DType::F16, 0.02)] {
        let engine = engine_in(model, dtype);
        assert_eq!(engine.info().dtype, dtype);
        for (name, values) in &pixels {
            let got = engine.logits_blocking(values.clone(), 1).unwrap();
            let diff = max_abs_diff(&got, &logits[name]);
            assert!(diff < tolerance, "{dtype} {name}: logits differ by {diff}");
        }
    }
}

/// `dtype = "auto"` on this CPU picks f32 or bf16, whichever its GEMMs
/// favour, and that choice holds to the chosen dtype's parity bound; the
/// load log says what was measured.
#[test]
fn auto_picks_a_dtype_that_passes_parity_and_says_why() {
    let model = "tiny-a";
    let settings = ModelSettings {
        model: common::model_dir(model).to_string_lossy().into_owned(),
        device: DeviceRequest::Cpu,
        dtype: DTypeRequest::Auto,
        ..Default::default()
    };
    let engine = load_engine(&settings, &whole_images(), 32).unwrap();
    let chosen = engine.info().dtype;
    assert!(
        matches!(chosen, DType::F32 | DType::BF16),
        "auto chose {chosen}"
    );
    let bound = DTYPE_BOUNDS
        .iter()
        .find(|(dtype, _)| *dtype == chosen)
        .map(|(_, bound)| *bound)
        .unwrap();
    let logits = reference_tensors("logits", model);
    for (name, values) in reference_tensors("pixels", model) {
        let got = engine.logits_blocking(values, 1).unwrap();
        let diff = max_abs_diff(&got, &logits[&name]);
        assert!(
            diff < bound,
            "auto ({chosen}) {name}: logits differ by {diff}"
        );
    }

    let image = common::fixtures()
        .join("images")
        .join(references(model).keys().next().unwrap());
    let out = common::run_ok(
        common::dfscan()
            .args(["score", "--faces", "off", "--dtype", "auto", "--model"])
            .arg(common::model_dir(model))
            .arg(&image)
            .env("DFSCAN_LOG", "info"),
    );
    let log = String::from_utf8_lossy(&out.stderr);
    let line = log
        .lines()
        .find(|l| l.contains("auto on CPU: "))
        .unwrap_or_else(|| panic!("no dtype choice in the log:\n{log}"));
    for needed in ["GFLOP/s in f32", "GFLOP/s in bf16", "requested=auto"] {
        assert!(line.contains(needed), "{needed:?} missing from {line}");
    }
}

/// The device of the CUDA cases: `cuda:0`, or `DFSCAN_TEST_DEVICE`
/// (`scripts/gpu-check.sh --dry-run` points them at `cpu` to exercise
/// them where there is no GPU).
fn device_under_test() -> DeviceRequest {
    let device =
        std::env::var("DFSCAN_TEST_DEVICE").map_or(DeviceRequest::Cuda(0), |d| d.parse().unwrap());
    assert_ne!(
        device,
        DeviceRequest::Auto,
        "DFSCAN_TEST_DEVICE names a device"
    );
    device
}

/// Each dtype's logit bound against transformers' float32 logits: the CPU
/// bound for f32; for the half precisions, the drift of
/// `half_precisions_stay_close_to_f32` (bf16 keeps 8 mantissa bits, f16 11).
const DTYPE_BOUNDS: [(DType, f32); 3] =
    [(DType::F32, 1e-4), (DType::BF16, 0.15), (DType::F16, 0.02)];

fn engine_on(model: &str, device: DeviceRequest, dtype: DType) -> Engine {
    let settings = ModelSettings {
        model: common::model_dir(model).to_string_lossy().into_owned(),
        device,
        dtype: dtype.into(),
        ..Default::default()
    };
    let engine = load_engine(&settings, &whole_images(), 32).unwrap();
    // Never `auto`: the device asked for is the device used.
    assert_eq!(engine.info().device, device.to_string());
    assert_eq!(engine.info().dtype, dtype);
    engine
}

/// One measured difference, printed for the GPU check's report (run with
/// `--nocapture`), then held to its bound.
fn check(device: &str, dtype: DType, what: &str, diff: f32, bound: f32) {
    println!("parity: device={device} dtype={dtype} check={what} max_abs_diff={diff:.3e} bound={bound:e}");
    assert!(
        diff < bound,
        "{device} {dtype} {what}: differs by {diff} (bound {bound})"
    );
}

/// Run on a GPU host with `cargo test --test parity -- --ignored`
/// (scripts/gpu-check.sh runs them with the rest of the GPU check).
#[test]
#[ignore = "needs a CUDA device"]
fn cuda_matches_the_reference_in_every_dtype() {
    let device = device_under_test();
    for model in MODELS {
        let pixels = reference_tensors("pixels", model);
        let logits = reference_tensors("logits", model);
        let mut names: Vec<&String> = pixels.keys().collect();
        names.sort();
        for (dtype, bound) in DTYPE_BOUNDS {
            let engine = engine_on(model, device, dtype);
            let on = engine.info().device.clone();
            let mut worst = 0f32;
            let mut batch = Vec::new();
            for name in &names {
                let got = engine.logits_blocking(pixels[*name].clone(), 1).unwrap();
                worst = worst.max(max_abs_diff(&got, &logits[*name]));
                batch.extend_from_slice(&pixels[*name]);
            }
            check(&on, dtype, &format!("{model}/logits"), worst, bound);
            let batched = engine.logits_blocking(batch, names.len()).unwrap();
            let expected: Vec<f32> = names.iter().flat_map(|n| logits[*n].clone()).collect();
            let diff = max_abs_diff(&batched, &expected);
            check(&on, dtype, &format!("{model}/batched-logits"), diff, bound);
        }
    }
}

/// The files through the scorer on the device against the pipeline's
/// probabilities: f32 within the CPU bound (1e-3), the half precisions
/// within half their logit bound (softmax moves no probability by more
/// than half the largest logit change); labels agree wherever the
/// reference's top two are further apart than twice the bound.
#[test]
#[ignore = "needs a CUDA device"]
fn cuda_probabilities_from_files_match_the_pipeline() {
    let device = device_under_test();
    for model in MODELS {
        let refs = references(model);
        let names: Vec<&String> = refs.keys().collect();
        let paths: Vec<PathBuf> = names
            .iter()
            .map(|n| common::fixtures().join("images").join(n))
            .collect();
        for (dtype, logit_bound) in DTYPE_BOUNDS {
            let bound = if dtype == DType::F32 {
                1e-3
            } else {
                logit_bound / 2.0
            };
            let engine = engine_on(model, device, dtype);
            let on = engine.info().device.clone();
            let limits = dfscan_model::decode_limits(&ModelSettings::default());
            let scorer =
                Scorer::new(engine, 2, limits, 4, whole_images(), Default::default()).unwrap();
            let (mut worst, mut seen) = (0f32, 0);
            scorer.score_files(&paths, |i, result| {
                let reference = &refs[names[i]];
                let got = result.unwrap_or_else(|e| panic!("{model}/{}: {e}", names[i]));
                let got = got
                    .prediction()
                    .cloned()
                    .expect("a whole image has a score");
                let probs: Vec<f32> = got.scores.iter().map(|(_, p)| *p).collect();
                worst = worst.max(max_abs_diff(&probs, &reference.probs));
                let mut sorted = reference.probs.clone();
                sorted.sort_by(|a, b| b.total_cmp(a));
                if sorted[0] - sorted[1] > 2.0 * bound {
                    assert_eq!(
                        got.label, reference.label,
                        "{on} {dtype} {model}/{}",
                        names[i]
                    );
                }
                seen += 1;
            });
            assert_eq!(seen, refs.len());
            check(
                &on,
                dtype,
                &format!("{model}/file-probabilities"),
                worst,
                bound,
            );
        }
    }
}
