//! Explanations against PyTorch (tests/tools/explain_reference.py:
//! transformers' ViT with eager attention, autograd for the gradients):
//! - the normalised maps of both methods equal the reference's within
//!   1e-4, on the very same pixel values, for the parity fixtures and for
//!   scikit-image's photographs, on both tiny checkpoints, with either
//!   target;
//! - `dfscan score --explain DIR` gives each image its maps and an overlay
//!   PNG of the image's size with the map visible where it is high, and
//!   leaves every score as it is without `--explain`.

mod common;

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use dfscan_core::explain::Grid;
use dfscan_core::settings::ModelSettings;
use dfscan_core::{DeviceRequest, ExplainMethod, FaceMode, FaceSettings};
use dfscan_model::{load_engine, Engine};

const MODELS: [&str; 2] = ["tiny-a", "tiny-b"];
const PHOTOS: [&str; 4] = ["astronaut", "camera", "chelsea", "coffee"];

fn engine(model: &str) -> Engine {
    let settings = ModelSettings {
        model: common::model_dir(model).to_string_lossy().into_owned(),
        device: DeviceRequest::Cpu,
        dtype: dfscan_core::DType::F32.into(),
        ..Default::default()
    };
    let faces = FaceSettings {
        mode: FaceMode::Off,
        ..FaceSettings::default()
    };
    load_engine(&settings, &faces, 8).unwrap()
}

/// The reference's tensors (`<key>.grid`, `.pixels`, `.logits`) for
/// `model`, the fixtures' pixels and the photographs.
fn reference(model: &str, method: &str, target: &str) -> HashMap<String, Vec<f32>> {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("maps.safetensors");
    let pixels = common::fixtures().join(format!("pixels-{model}.safetensors"));
    let photos: Vec<PathBuf> = PHOTOS.iter().map(|p| common::sample_photo(p)).collect();
    let mut args = vec![
        common::model_dir(model).to_string_lossy().into_owned(),
        out.to_string_lossy().into_owned(),
        "--method".into(),
        method.into(),
        "--target".into(),
        target.into(),
        "--pixels".into(),
        pixels.to_string_lossy().into_owned(),
    ];
    args.extend(photos.iter().map(|p| p.to_string_lossy().into_owned()));
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    common::run_tool("explain_reference.py", &args);
    common::read_f32_tensors(&out)
}

fn argmax(row: &[f32]) -> usize {
    (0..row.len()).fold(0, |best, i| if row[i] > row[best] { i } else { best })
}

fn check_parity(method: ExplainMethod, target: &str) {
    for model in MODELS {
        let engine = engine(model);
        let info = engine.info().clone();
        let reference = reference(model, method.name(), target);
        let mut keys: Vec<&str> = reference
            .keys()
            .filter_map(|k| k.strip_suffix(".grid"))
            .collect();
        keys.sort();
        assert!(
            keys.len() >= 10 + PHOTOS.len(),
            "{model}: {} maps",
            keys.len()
        );
        let pixels: Vec<f32> = keys
            .iter()
            .flat_map(|k| reference[&format!("{k}.pixels")].clone())
            .collect();
        let logits = engine.logits_blocking(pixels.clone(), keys.len()).unwrap();
        let targets: Vec<usize> = match target {
            "fake" => vec![info.fake_index; keys.len()],
            _ => logits.chunks(info.labels.len()).map(argmax).collect(),
        };
        // In passes, as a batch: rows must not leak into each other.
        let raw = engine
            .explain_blocking(pixels, keys.len(), method, &targets)
            .unwrap();
        let side = info.patch_grid;
        for (key, raw) in keys.iter().zip(raw.chunks(side * side)) {
            let got = Grid::normalised(side, raw).unwrap().values;
            let want = &reference[&format!("{key}.grid")];
            let diff = got
                .iter()
                .zip(want)
                .map(|(a, b)| (a - b).abs())
                .fold(0.0, f32::max);
            assert!(
                diff <= 1e-4,
                "{model} {method} {target} {key}: maps differ by {diff}\n got {got:?}\nwant {want:?}"
            );
        }
    }
}

#[test]
fn relevance_of_the_fake_logit_matches_pytorch() {
    check_parity(ExplainMethod::Relevance, "fake");
}

#[test]
fn relevance_of_the_predicted_logit_matches_pytorch() {
    check_parity(ExplainMethod::Relevance, "predicted");
}

#[test]
fn rollout_matches_pytorch() {
    check_parity(ExplainMethod::Rollout, "fake");
}

fn score(photo: &Path, extra: &[&str]) -> serde_json::Value {
    let lines = common::score_jsonl(&common::model_dir("tiny-a"), photo, extra);
    assert_eq!(lines.len(), 1, "{lines:?}");
    lines.into_iter().next().unwrap()
}

#[test]
fn score_explain_writes_maps_and_an_overlay_and_changes_no_score() {
    let astronaut = common::sample_photo("astronaut");
    let dir = tempfile::tempdir().unwrap();
    let pictures = dir.path().join("explained");
    let pictures_arg = pictures.to_str().unwrap();
    for faces in ["auto", "off"] {
        let plain = score(&astronaut, &["--faces", faces]);
        let explained = score(&astronaut, &["--faces", faces, "--explain", pictures_arg]);
        let e = explained["explanation"].clone();
        let mut without = explained.clone();
        without.as_object_mut().unwrap().remove("explanation");
        assert_eq!(without, plain, "--explain changed the result");

        assert_eq!(e["method"], "relevance", "{e}");
        assert_eq!(e["target"], "Fake", "{e}");
        let grid = e["grid"].as_array().unwrap();
        assert_eq!(grid.len(), 5, "tiny-a: 40/8 patches a side");
        let values: Vec<f64> = grid
            .iter()
            .flat_map(|r| r.as_array().unwrap().iter().map(|v| v.as_f64().unwrap()))
            .collect();
        assert_eq!(values.len(), 25);
        assert!(values.iter().all(|v| (0.0..=1.0).contains(v)), "{values:?}");
        assert!(values.contains(&1.0) && values.contains(&0.0), "{values:?}");
        let faces_found = plain["faces"].as_array().map_or(0, Vec::len);
        assert_eq!(
            e["faces"].as_array().map_or(0, Vec::len),
            faces_found,
            "{e}"
        );
        if faces == "auto" {
            assert!(faces_found >= 1, "the astronaut has a face: {plain}");
        }

        let png = PathBuf::from(e["png"].as_str().unwrap());
        assert!(png.starts_with(&pictures), "{png:?}");
        let overlay = image::open(&png).unwrap();
        assert_eq!(overlay.color(), image::ColorType::Rgb8);
        let source = image::open(&astronaut).unwrap().to_rgb8();
        let overlay = overlay.to_rgb8();
        assert_eq!(
            overlay.dimensions(),
            source.dimensions(),
            "512x512 needs no scaling"
        );
        // The hottest patch of the decisive map, in the region it covers.
        let hottest = values.iter().position(|v| *v == 1.0).unwrap();
        let (col, row) = ((hottest % 5) as f64 + 0.5, (hottest / 5) as f64 + 0.5);
        let region: Vec<f64> = match faces_found {
            0 => vec![0.0, 0.0, 512.0, 512.0],
            _ => {
                let decisive = most_fake_face(&plain);
                plain["faces"][decisive]["crop"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|v| v.as_f64().unwrap())
                    .collect()
            }
        };
        let x = region[0] + (region[2] - region[0]) * col / 5.0;
        let y = region[1] + (region[3] - region[1]) * row / 5.0;
        let (x, y) = (x.clamp(0.0, 511.0) as u32, y.clamp(0.0, 511.0) as u32);
        assert_ne!(
            overlay.get_pixel(x, y),
            source.get_pixel(x, y),
            "{faces}: the overlay shows nothing at the hottest patch ({x}, {y})"
        );
    }
}

fn most_fake_face(result: &serde_json::Value) -> usize {
    let faces = result["faces"].as_array().unwrap();
    (0..faces.len()).fold(0, |best, i| {
        if faces[i]["fake_score"].as_f64() > faces[best]["fake_score"].as_f64() {
            i
        } else {
            best
        }
    })
}
