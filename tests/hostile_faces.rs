//! Faces on hostile images: a crowd of 300 faces is scored on at most
//! `max_faces` of them (the largest, in order), a 1×1 image is scored whole
//! (mode `auto`) or has no face (mode `require`), and a PNG header claiming
//! 20000×20000 pixels gets its per-item error while the other images in the
//! same run are scored. Each run completes, so time and memory stay bounded
//! by the limits rather than by what an image claims.

mod common;

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use serde_json::Value;
use sha2::{Digest, Sha256};

/// Generated once per test binary (its tests share it).
fn images() -> PathBuf {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(generate).clone()
}

fn generate() -> PathBuf {
    let astronaut = common::sample_photo("astronaut")
        .to_string_lossy()
        .into_owned();
    let mut hash = Sha256::new();
    hash.update(std::fs::read(common::repo().join("tests/tools/make_hostile_faces.py")).unwrap());
    common::generated_dir("hostile-faces", hash, |dir| {
        common::run_tool(
            "make_hostile_faces.py",
            &[dir.to_str().unwrap(), &astronaut],
        );
    })
}

/// `dfscan score --format jsonl` with `args`; every input has its line.
fn score(inputs: &[&Path], args: &[&str]) -> Vec<Value> {
    let out = common::dfscan()
        .args(["score", "--format", "jsonl", "--device", "cpu", "--model"])
        .arg(common::model_dir("tiny-a"))
        .args(args)
        .args(inputs)
        .output()
        .unwrap();
    let lines: Vec<Value> = String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(
        lines.len(),
        inputs.len(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    lines
}

fn faces(line: &Value) -> &Vec<Value> {
    line["faces"]
        .as_array()
        .unwrap_or_else(|| panic!("no faces in {line}"))
}

fn area(face: &Value) -> f64 {
    let b: Vec<f64> = face["box"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_f64().unwrap())
        .collect();
    (b[2] - b[0]) * (b[3] - b[1])
}

#[test]
fn a_crowd_is_scored_on_its_largest_faces_up_to_the_limit() {
    let crowd = images().join("crowd.png");
    // At its own size (960 px), every 48 px face is in reach of the detector.
    let full = ["--face-working-size", "960"];
    let default = &score(&[&crowd], &full)[0];
    assert_eq!(default["outcome"], "scored", "{default}");
    assert_eq!(faces(default).len(), 16, "faces.max_faces' default");
    let more = &score(&[&crowd], &[&full[..], &["--max-faces", "64"]].concat())[0];
    let found = faces(more);
    assert_eq!(found.len(), 64, "300 faces, 64 scored");
    for pair in found.windows(2) {
        // Equal faces' areas may differ in their last bits.
        assert!(
            area(&pair[0]) >= area(&pair[1]) * (1.0 - 1e-5),
            "largest first: {pair:?}"
        );
    }
    // The image is as fake as its most fake face.
    let most = found
        .iter()
        .map(|f| f["fake_score"].as_f64().unwrap())
        .fold(0.0, f64::max);
    assert_eq!(more["fake_score"].as_f64().unwrap(), most);
    let refused = common::dfscan()
        .args(["score", "--device", "cpu", "--max-faces", "1000", "--model"])
        .arg(common::model_dir("tiny-a"))
        .arg(&crowd)
        .output()
        .unwrap();
    assert!(!refused.status.success());
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(
        stderr.contains("faces.max_faces must be 1 to 64"),
        "{stderr}"
    );
}

#[test]
fn a_single_pixel_is_scored_whole_or_has_no_face() {
    let dot = images().join("dot.png");
    let auto = &score(&[&dot], &[])[0];
    assert_eq!(auto["outcome"], "whole_image", "{auto}");
    assert!(auto["fake_score"].is_number() && faces(auto).is_empty());
    let require = &score(&[&dot], &["--faces", "require"])[0];
    assert_eq!(require["outcome"], "no_face", "{require}");
    assert!(require["fake_score"].is_null() && require["error"].is_null());
    let off = &score(&[&dot], &["--faces", "off"])[0];
    assert_eq!(off["outcome"], "scored", "{off}");
    assert!(off.get("faces").is_none() && off.get("face_detector").is_none());
}

#[test]
fn a_giant_header_fails_alone() {
    let dir = images();
    let (giant, dot) = (dir.join("giant_header.png"), dir.join("dot.png"));
    let lines = score(&[&giant, &dot], &[]);
    assert_eq!(lines[0]["outcome"], "error");
    let error = lines[0]["error"].as_str().unwrap();
    assert!(
        error.contains("20000x20000") && error.contains("over the limit"),
        "{error}"
    );
    assert_eq!(lines[1]["outcome"], "whole_image");
}
