//! The cluster (Redis, coordinator, worker) and `dfscan serve` find the
//! same faces and give them the same scores as `dfscan score`: one
//! analysis path, whatever runs it. Images: scikit-image's astronaut and
//! camera (one face each), coffee (none) and a crowd of faces; each run
//! batches them differently, so floats are compared with a tolerance. A
//! job's own face options (`submit --faces require --max-faces 2`) reach
//! the worker over its configuration, and a job asking for what no worker
//! can do is refused at submission.

mod common;

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use common::cluster::{by_id, read_jsonl, wait_for_port, Cluster, Proc};
use dfscan_testkit::free_port;
use serde_json::Value;

/// Floats from different batchings and processes (probabilities, and
/// boxes in pixels: the detector's batches differ too); crops are integers
/// and must be equal.
const TOLERANCE: f64 = 1e-3;

fn inputs(dir: &Path) -> PathBuf {
    let images = dir.join("images");
    std::fs::create_dir_all(&images).unwrap();
    for name in ["astronaut", "camera", "coffee"] {
        std::fs::copy(
            common::sample_photo(name),
            images.join(format!("{name}.png")),
        )
        .unwrap();
    }
    images
}

/// `dfscan score` of every image, by file name.
fn scored(images: &Path, extra: &[&str]) -> HashMap<String, Value> {
    let out = common::run_ok(
        common::dfscan()
            .args(["score", "--format", "jsonl", "--device", "cpu", "--model"])
            .arg(common::model_dir("tiny-a"))
            .args(extra)
            .arg(images),
    );
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| {
            let v: Value = serde_json::from_str(l).unwrap();
            (file_name(v["path"].as_str().unwrap()), v)
        })
        .collect()
}

fn file_name(path: &str) -> String {
    Path::new(path)
        .file_name()
        .unwrap()
        .to_string_lossy()
        .into_owned()
}

/// What must agree: outcome, label, scores, faces (boxes, landmarks,
/// crops, detector scores, each face's scores) and both identities.
fn facts(v: &Value) -> Value {
    serde_json::json!({
        "outcome": v["outcome"], "label": v["label"], "scores": v["scores"],
        "fake_score": v["fake_score"], "faces": v["faces"],
        "face_detector": v["face_detector"], "model": v["model"]["sha256"], "error": v["error"],
    })
}

fn assert_same(local: &HashMap<String, Value>, remote: &[Value], what: &str) {
    let remote = by_id(remote);
    assert_eq!(remote.len(), local.len(), "{what}: {remote:?}");
    for (name, want) in local {
        let got = remote
            .iter()
            .find(|(id, _)| file_name(id) == *name)
            .unwrap_or_else(|| panic!("{what}: no result for {name}"))
            .1;
        common::assert_json_close(
            &facts(got),
            &facts(want),
            TOLERANCE,
            &format!("{what} {name}"),
        );
    }
}

#[test]
fn the_cluster_and_serve_find_and_score_the_faces_that_score_does() {
    let _one = common::cluster::exclusive();
    let tmp = tempfile::tempdir().unwrap();
    let images = inputs(tmp.path());
    let local = scored(&images, &[]);
    assert_eq!(local["astronaut.png"]["outcome"], "scored");
    assert_eq!(local["astronaut.png"]["faces"].as_array().unwrap().len(), 1);
    assert_eq!(local["coffee.png"]["outcome"], "whole_image");

    let mut cluster = Cluster::start(false, &[]);
    cluster.start_worker(&["--max-batch", "2"]);
    let output = tmp.path().join("cluster.jsonl");
    let out = cluster.submit(&images, &output, &["--format", "jsonl"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_same(&local, &read_jsonl(&output), "cluster");

    // The job's options over the worker's: faces required, two at most.
    let required = scored(&images, &["--faces", "require", "--max-faces", "2"]);
    assert_eq!(required["coffee.png"]["outcome"], "no_face");
    let output = tmp.path().join("required.jsonl");
    let out = cluster.submit(
        &images,
        &output,
        &[
            "--format",
            "jsonl",
            "--faces",
            "require",
            "--max-faces",
            "2",
        ],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_same(&required, &read_jsonl(&output), "cluster, job options");

    let output = tmp.path().join("refused.jsonl");
    let out = cluster.submit(&images, &output, &["--max-faces", "65"]);
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("faces.max_faces must be 1 to 64"),
        "{stderr}"
    );
    drop(cluster);

    let port = free_port();
    let listen = format!("127.0.0.1:{port}");
    let mut serve = common::dfscan();
    serve
        .args(["serve", "--listen", &listen, "--device", "cpu", "--model"])
        .arg(common::model_dir("tiny-a"))
        .args(["--threads", "1", "--decode-threads", "1"]);
    let _serve = Proc::spawn("serve", serve);
    wait_for_port(port);
    let output = tmp.path().join("serve.jsonl");
    let url = format!("http://{listen}");
    let out = common::dfscan()
        .args([
            "submit",
            "--coordinator",
            &url,
            "--format",
            "jsonl",
            "--output",
        ])
        .arg(&output)
        .arg(&images)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_same(&local, &read_jsonl(&output), "serve");
}
