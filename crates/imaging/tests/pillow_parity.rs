//! Parity with the Python stack dfscan reproduces (transformers 5.24 on
//! Pillow 13), checked against reference outputs that `pillow_reference.py`
//! computes with the project's virtualenv: decode (exact, JPEG included,
//! except lossy WebP, which is bounded), every resize filter (exact), and the
//! full `ViTImageProcessorPil` output (exact for exactly decoded inputs).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use dfscan_imaging::{
    decode, pixel_values_into, preprocess, resize, DecodeLimits, PreprocessorConfig, Resample,
};
use image::RgbImage;
use serde_json::Value;

/// Largest per-sample difference accepted between image-webp and the libwebp
/// that Pillow uses for lossy WebP (the fixtures measure 0; the per-file
/// maxima are printed by `bounded_decodes_stay_close`). JPEG needs no bound:
/// it is decoded by libjpeg-turbo, as in Pillow, and compared exactly.
const DECODER_BOUND: u8 = 5;

struct Reference {
    dir: PathBuf,
    manifest: Value,
    // Keeps the directory alive for the whole test run.
    _tmp: tempfile::TempDir,
}

fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn reference() -> &'static Reference {
    static REF: OnceLock<Reference> = OnceLock::new();
    REF.get_or_init(|| {
        let python = workspace_root().join(".venv/bin/python");
        assert!(
            python.exists(),
            "{} is missing: run scripts/setup.sh to create the reference virtualenv \
             (transformers + Pillow) that these parity tests compare against",
            python.display()
        );
        let tmp = tempfile::tempdir().expect("temp dir");
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/pillow_reference.py");
        let out = Command::new(&python)
            .arg(&script)
            .arg(tmp.path())
            .output()
            .expect("run pillow_reference.py");
        assert!(
            out.status.success(),
            "pillow_reference.py failed:\n{}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        let manifest = std::fs::read_to_string(tmp.path().join("manifest.json")).unwrap();
        Reference {
            dir: tmp.path().to_path_buf(),
            manifest: serde_json::from_str(&manifest).unwrap(),
            _tmp: tmp,
        }
    })
}

impl Reference {
    fn read(&self, name: &str) -> Vec<u8> {
        std::fs::read(self.dir.join(name)).unwrap_or_else(|e| panic!("{name}: {e}"))
    }

    fn cases(&self, kind: &str) -> &Vec<Value> {
        self.manifest[kind].as_array().unwrap()
    }
}

fn str_of<'a>(v: &'a Value, key: &str) -> &'a str {
    v[key].as_str().unwrap_or_else(|| panic!("{key} in {v}"))
}

fn u32_of(v: &Value, key: &str) -> u32 {
    v[key].as_u64().unwrap_or_else(|| panic!("{key} in {v}")) as u32
}

fn max_abs_diff(a: &[u8], b: &[u8]) -> u8 {
    a.iter()
        .zip(b)
        .map(|(x, y)| x.abs_diff(*y))
        .max()
        .unwrap_or(0)
}

#[test]
fn exact_decodes_match_pillow_byte_for_byte() {
    let r = reference();
    let limits = DecodeLimits::default();
    let mut checked = 0;
    let mut failures = Vec::new();
    for case in r.cases("decode") {
        let name = str_of(case, "name");
        let bytes = r.read(name);
        let ours = decode(&bytes, &limits);
        if !case["ok"].as_bool().unwrap() {
            // Pillow (and so the Python pipeline) rejects this file.
            if let Ok(d) = ours {
                failures.push(format!(
                    "{name}: Pillow fails ({}) but we decoded {:?}",
                    case["error"],
                    d.rgb.dimensions()
                ));
            }
            continue;
        }
        if str_of(case, "compare") != "exact" {
            continue;
        }
        let ours = match ours {
            Ok(d) => d,
            Err(e) => {
                failures.push(format!("{name}: Pillow decodes it, we fail: {e}"));
                continue;
            }
        };
        let (w, h) = (u32_of(case, "width"), u32_of(case, "height"));
        if ours.rgb.dimensions() != (w, h) {
            failures.push(format!(
                "{name}: size {:?} vs Pillow {w}x{h}",
                ours.rgb.dimensions()
            ));
            continue;
        }
        let expected = r.read(&format!("{name}.rgb.bin"));
        if ours.rgb.as_raw() != &expected {
            let d = max_abs_diff(ours.rgb.as_raw(), &expected);
            failures.push(format!("{name}: pixels differ (max {d})"));
        }
        let proc = r.read(&format!("{name}.proc.bin"));
        let keyed = ours.into_processor_input(true);
        if keyed.as_raw() != &proc {
            failures.push(format!(
                "{name}: do_convert_rgb input differs from convert_to_rgb"
            ));
        }
        checked += 1;
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    assert!(checked >= 70, "only {checked} exact fixtures were compared");
}

#[test]
fn bounded_decodes_stay_close() {
    let r = reference();
    let limits = DecodeLimits::default();
    let mut report = Vec::new();
    let mut worst = 0;
    for case in r.cases("decode") {
        let name = str_of(case, "name");
        if str_of(case, "compare") != "bounded" || !case["ok"].as_bool().unwrap() {
            continue;
        }
        let d = decode(&r.read(name), &limits)
            .unwrap_or_else(|e| panic!("{name}: Pillow decodes it, we fail: {e}"));
        let (w, h) = (u32_of(case, "width"), u32_of(case, "height"));
        assert_eq!(d.rgb.dimensions(), (w, h), "{name}: size (orientation?)");
        let expected = r.read(&format!("{name}.rgb.bin"));
        let max = max_abs_diff(d.rgb.as_raw(), &expected);
        let mean = d
            .rgb
            .as_raw()
            .iter()
            .zip(&expected)
            .map(|(a, b)| f64::from(a.abs_diff(*b)))
            .sum::<f64>()
            / expected.len() as f64;
        report.push(format!("{name:28} max {max:2}  mean {mean:.3}"));
        worst = worst.max(max);
    }
    println!("decoder differences vs Pillow:\n{}", report.join("\n"));
    assert!(
        worst <= DECODER_BOUND,
        "max difference {worst} over {DECODER_BOUND}:\n{}",
        report.join("\n")
    );
}

#[test]
fn every_resize_matches_pillow_exactly() {
    let r = reference();
    let mut failures = Vec::new();
    let cases = r.cases("resize");
    assert!(cases.len() >= 100);
    for case in cases {
        let (sw, sh) = (u32_of(case, "src_w"), u32_of(case, "src_h"));
        let (tw, th) = (u32_of(case, "dst_w"), u32_of(case, "dst_h"));
        let filter = Resample::from_pil(case["filter"].as_i64().unwrap()).unwrap();
        let src = RgbImage::from_raw(sw, sh, r.read(str_of(case, "src"))).unwrap();
        let out = resize(&src, tw, th, filter);
        let expected = r.read(str_of(case, "out"));
        if out.as_raw() != &expected {
            failures.push(format!(
                "{sw}x{sh} -> {tw}x{th} {filter:?}: max diff {}",
                max_abs_diff(out.as_raw(), &expected)
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn processor_output_matches_transformers() {
    let r = reference();
    let limits = DecodeLimits::default();
    let mut failures = Vec::new();
    for case in r.cases("pipeline") {
        let name = str_of(case, "file");
        let cfg = PreprocessorConfig::from_json(&case["config"].to_string()).unwrap();
        let shape: Vec<u64> = case["shape"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_u64().unwrap())
            .collect();
        assert_eq!(
            shape,
            [3, u64::from(cfg.height), u64::from(cfg.width)],
            "{name}"
        );
        let ours = preprocess(&r.read(name), &cfg, &limits).unwrap();
        let expected: Vec<f32> = r
            .read(str_of(case, "pixel_values"))
            .chunks_exact(4)
            .map(|b| f32::from_ne_bytes([b[0], b[1], b[2], b[3]]))
            .collect();
        assert_eq!(ours.len(), expected.len(), "{name}");
        let max = ours
            .iter()
            .zip(&expected)
            .map(|(a, b)| (a - b).abs())
            .fold(0.0f32, f32::max);
        let tolerance = if str_of(case, "compare") == "exact" {
            0.0
        } else {
            // The decoder bound, grown by two resampling passes whose kernels
            // can amplify a difference (Lanczos lobes: gain under 2) and one
            // level of rounding each, expressed in the normalized unit.
            let levels = f64::from(DECODER_BOUND) * 2.0 + 2.0;
            let scale = if cfg.do_rescale {
                cfg.rescale_factor
            } else {
                1.0
            };
            let std = if cfg.do_normalize {
                cfg.image_std.iter().copied().fold(f64::INFINITY, f64::min)
            } else {
                1.0
            };
            (levels * scale / std) as f32 + 1e-5
        };
        if tolerance > 0.0 {
            println!("{name} {}: max |diff| {max}", case["config"]);
        }
        if max > tolerance {
            failures.push(format!(
                "{name} {}: max diff {max} > {tolerance}",
                case["config"]
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn pixel_values_into_fills_a_batch_slot() {
    let r = reference();
    let case = &r.cases("pipeline")[0];
    let cfg = PreprocessorConfig::from_json(&case["config"].to_string()).unwrap();
    let rgb = decode(&r.read(str_of(case, "file")), &DecodeLimits::default())
        .unwrap()
        .into_processor_input(cfg.do_convert_rgb);
    let mut batch = vec![f32::NAN; 2 * cfg.pixel_values_len()];
    let (first, second) = batch.split_at_mut(cfg.pixel_values_len());
    pixel_values_into(&rgb, &cfg, second);
    assert!(first.iter().all(|v| v.is_nan()));
    let expected: Vec<f32> = r
        .read(str_of(case, "pixel_values"))
        .chunks_exact(4)
        .map(|b| f32::from_ne_bytes([b[0], b[1], b[2], b[3]]))
        .collect();
    assert_eq!(second, &expected[..]);
}
