//! `dfscan score` and `dfscan eval` as a user runs them: output formats,
//! per-item errors for bad files with the good ones still scored, exit
//! statuses, and the offline hub behaviour.

mod common;

use std::path::Path;
use std::process::Command;

use serde_json::Value;

fn jsonl(stdout: &[u8]) -> Vec<Value> {
    String::from_utf8_lossy(stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

/// Runs `cmd`, requires success, and returns its JSON Lines.
fn jsonl_of(cmd: &mut Command) -> Vec<Value> {
    let out = cmd.output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    jsonl(&out.stdout)
}

#[test]
fn bad_inputs_get_error_lines_and_good_ones_are_scored() {
    let dir = tempfile::tempdir().unwrap();
    let images = common::fixtures().join("images");
    for good in ["rgb.jpg", "rgba.png", "gray16.png"] {
        std::fs::copy(images.join(good), dir.path().join(good)).unwrap();
    }
    let bad_dir = common::fixtures().join("bad");
    // Named one by one: a directory walk would skip the .svg and .pdf.
    let bad: Vec<_> = std::fs::read_dir(&bad_dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert!(bad.len() >= 8, "{bad:?}");
    let out = common::dfscan()
        .args(["score", "--format", "jsonl", "--batch-size", "2", "--model"])
        .arg(common::model_dir("tiny-a"))
        .arg(dir.path())
        .args(&bad)
        .arg(dir.path().join("missing.png"))
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(3),
        "stderr: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let lines = jsonl(&out.stdout);
    assert_eq!(lines.len(), 3 + bad.len() + 1);
    for line in &lines {
        let path = line["path"].as_str().unwrap();
        let is_good = ["rgb.jpg", "rgba.png", "gray16.png"]
            .iter()
            .any(|g| path.ends_with(g));
        if is_good {
            assert!(line["error"].is_null(), "{line}");
            let scores = line["scores"].as_object().unwrap();
            let mut labels: Vec<_> = scores.keys().collect();
            labels.sort();
            assert_eq!(labels, ["Fake", "Real"]);
            let sum: f64 = scores.values().map(|v| v.as_f64().unwrap()).sum();
            assert!((sum - 1.0).abs() < 1e-5);
            assert_eq!(line["fake_score"], line["scores"]["Fake"]);
            assert_eq!(line["model"]["name"], "tiny-a");
            assert_eq!(line["model"]["sha256"].as_str().unwrap().len(), 64);
        } else {
            let error = line["error"]
                .as_str()
                .unwrap_or_else(|| panic!("no error for {line}"));
            assert!(!error.is_empty());
            assert!(
                line["label"].is_null() && line["fake_score"].is_null(),
                "{line}"
            );
        }
    }
    let huge = lines
        .iter()
        .find(|l| l["path"].as_str().unwrap().ends_with("huge_dims.png"))
        .unwrap();
    assert!(huge["error"].as_str().unwrap().contains("pixels"), "{huge}");
}

#[test]
fn all_good_inputs_exit_zero_and_csv_has_every_label() {
    let out_file = tempfile::NamedTempFile::new().unwrap();
    let status = common::dfscan()
        .args(["score", "--format", "csv", "--model"])
        .arg(common::model_dir("tiny-b"))
        .arg("--output")
        .arg(out_file.path())
        .arg(common::fixtures().join("images"))
        .status()
        .unwrap();
    assert!(status.success());
    let mut reader = csv::Reader::from_path(out_file.path()).unwrap();
    let header: Vec<String> = reader.headers().unwrap().iter().map(String::from).collect();
    assert_eq!(
        header[..6],
        [
            "path",
            "label",
            "fake_score",
            "score_Fake",
            "score_Real",
            "score_Unsure"
        ]
    );
    let rows: Vec<_> = reader.records().map(|r| r.unwrap()).collect();
    let n_images = std::fs::read_dir(common::fixtures().join("images"))
        .unwrap()
        .count();
    assert_eq!(rows.len(), n_images);
    for row in rows {
        assert_eq!(&row[2], &row[3], "fake_score is the Fake column");
        assert!(row[8].is_empty(), "error column: {:?}", &row[8]);
    }
}

#[test]
fn label_override_and_fake_label_change_fake_score() {
    let image = common::fixtures().join("images/rgb.jpg");
    let run = |extra: &[&str]| {
        jsonl_of(
            common::dfscan()
                .args(["score", "--format", "jsonl", "--model"])
                .arg(common::model_dir("tiny-a"))
                .args(extra)
                .arg(&image),
        )
        .remove(0)
    };
    // Each run is its own process: the same score up to float rounding.
    let close = |a: &serde_json::Value, b: &serde_json::Value, at: &str| {
        common::assert_json_close(a, b, common::FLOAT_TOLERANCE, at)
    };
    let plain = run(&[]);
    let swapped = run(&["--labels", "Fake,Real"]);
    close(&swapped["fake_score"], &plain["scores"]["Real"], "--labels");
    let explicit = run(&["--fake-label", "real"]);
    close(
        &explicit["fake_score"],
        &plain["scores"]["Real"],
        "--fake-label",
    );
}

#[test]
fn cuda_requested_without_cuda_is_an_error() {
    if Path::new("/dev/nvidia0").exists() {
        return; // a GPU host: covered by the CUDA runs in BENCHMARKS.md
    }
    let out = common::dfscan()
        .args(["score", "--device", "cuda", "--model"])
        .arg(common::model_dir("tiny-a"))
        .arg(common::fixtures().join("images/rgb.jpg"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("no CUDA device"), "{stderr}");
}

#[test]
fn offline_hub_without_cache_names_the_ways_out() {
    let home = tempfile::tempdir().unwrap();
    for offline in [true, false] {
        let mut cmd = common::dfscan();
        cmd.env("HF_HOME", home.path())
            .arg("score")
            .arg(common::fixtures().join("images/rgb.jpg"));
        if !offline {
            // Online but unreachable: a closed local port stands in for no network.
            cmd.env_remove("HF_HUB_OFFLINE")
                .env("HF_ENDPOINT", "http://127.0.0.1:9");
        }
        let out = cmd.output().unwrap();
        assert_eq!(out.status.code(), Some(1));
        let stderr = String::from_utf8_lossy(&out.stderr);
        for needle in [
            "prithivMLmods/Deep-Fake-Detector-Model",
            "--model DIR",
            "DFSCAN_MODEL",
            "cached",
        ] {
            assert!(stderr.contains(needle), "missing {needle:?} in: {stderr}");
        }
    }
}

#[test]
fn hub_ids_resolve_through_the_standard_cache_offline() {
    let home = tempfile::tempdir().unwrap();
    let commit = "0123456789abcdef0123456789abcdef01234567";
    let repo = home.path().join("hub/models--acme--tiny-vit");
    let snapshot = repo.join("snapshots").join(commit);
    std::fs::create_dir_all(&snapshot).unwrap();
    std::fs::create_dir_all(repo.join("refs")).unwrap();
    std::fs::write(repo.join("refs/main"), commit).unwrap();
    for entry in std::fs::read_dir(common::model_dir("tiny-a")).unwrap() {
        let entry = entry.unwrap();
        std::fs::copy(entry.path(), snapshot.join(entry.file_name())).unwrap();
    }
    let image = common::fixtures().join("images/rgb.jpg");
    let by_flag = jsonl_of(
        common::dfscan()
            .env("HF_HOME", home.path())
            .args(["score", "--format", "jsonl", "--model", "acme/tiny-vit"])
            .arg(&image),
    );
    assert_eq!(by_flag[0]["model"]["name"], "acme/tiny-vit");
    let by_env = jsonl_of(
        common::dfscan()
            .env("HF_HOME", home.path())
            .env("DFSCAN_MODEL", "acme/tiny-vit")
            .args(["score", "--format", "jsonl"])
            .arg(&image),
    );
    common::assert_json_close(
        &serde_json::Value::from(by_env),
        &serde_json::Value::from(by_flag),
        common::FLOAT_TOLERANCE,
        "DFSCAN_MODEL vs --model",
    );
}

#[test]
fn eval_report_agrees_with_score() {
    let data = tempfile::tempdir().unwrap();
    common::run_tool(
        "make_eval_set.py",
        &[data.path().to_str().unwrap(), "--n-per-class", "6"],
    );
    let model = common::model_dir("tiny-a");
    let out = common::dfscan()
        .args(["eval", "--json", "--model"])
        .arg(&model)
        .arg(data.path())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["total"], 12);
    assert_eq!(report["labels"], serde_json::json!(["Real", "Fake"]));
    // Rebuild the confusion matrix from `dfscan score` on the same files.
    let mut expected = [[0u64; 2]; 2];
    for (truth, folder) in ["Real", "Fake"].iter().enumerate() {
        let lines = jsonl_of(
            common::dfscan()
                .args(["score", "--format", "jsonl", "--model"])
                .arg(&model)
                .arg(data.path().join(folder)),
        );
        for line in lines {
            let predicted = if line["label"] == "Real" { 0 } else { 1 };
            expected[truth][predicted] += 1;
        }
    }
    assert_eq!(report["confusion_matrix"], serde_json::json!(expected));
    let text = common::dfscan()
        .args(["eval", "--model"])
        .arg(&model)
        .arg(data.path())
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&text.stdout);
    for needle in [
        "precision",
        "recall",
        "f1-score",
        "support",
        "macro avg",
        "weighted avg",
        "ROC AUC",
    ] {
        assert!(text.contains(needle), "{needle} missing from:\n{text}");
    }
}

/// `log_format = "json"` in the config file: every log line on stderr is
/// one JSON object with its fields.
#[test]
fn logs_are_json_when_configured() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("dfscan.toml");
    std::fs::write(&config, "log_format = \"json\"\n").unwrap();
    let out = common::run_ok(
        common::dfscan()
            .env("DFSCAN_LOG", "info")
            .arg("--config")
            .arg(&config)
            .args(["score", "--format", "jsonl", "--model"])
            .arg(common::model_dir("tiny-a"))
            .arg(common::fixtures().join("images").join("rgb.jpg")),
    );
    let logs: Vec<Value> = jsonl(&out.stderr);
    let loaded = logs
        .iter()
        .find(|l| l["fields"]["message"] == "model loaded")
        .expect("the model-loaded line");
    assert_eq!(loaded["level"], "INFO");
    assert_eq!(loaded["fields"]["model"], "tiny-a");
}

#[test]
fn fatal_errors_say_what_to_do_and_say_it_once() {
    let dir = tempfile::tempdir().unwrap();
    let not_a_checkpoint = dir.path().join("notes");
    let empty = dir.path().join("empty");
    std::fs::create_dir_all(&not_a_checkpoint).unwrap();
    std::fs::create_dir_all(&empty).unwrap();
    std::fs::write(not_a_checkpoint.join("readme.txt"), "x").unwrap();
    let images = common::fixtures().join("images");
    let fatal = |cmd: &mut Command| {
        let out = cmd.output().unwrap();
        assert_eq!(out.status.code(), Some(1), "{cmd:?}");
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        let line = stderr.lines().last().unwrap_or_default().to_string();
        assert!(line.starts_with("error: "), "{stderr}");
        line
    };
    let model = common::model_dir("tiny-a");

    let line = fatal(
        common::dfscan()
            .args(["score", "--model"])
            .arg(&not_a_checkpoint)
            .arg(&images),
    );
    assert!(
        line.contains("not a checkpoint: it has no config.json"),
        "{line}"
    );

    let line = fatal(
        common::dfscan()
            .args(["score", "--model"])
            .arg(&model)
            .arg(&empty),
    );
    assert!(
        line.contains(&format!(
            "no images or videos found under {}",
            empty.display()
        )),
        "{line}"
    );
    assert!(!line.contains("[\""), "a debug list: {line}");

    // A --model that is a path names the path's problem, not the hub's.
    let line = fatal(
        common::dfscan()
            .args(["score", "--model"])
            .arg(dir.path().join("no-such-checkpoint"))
            .arg(&images),
    );
    assert!(line.contains(": no such directory"), "{line}");
    assert!(!line.contains("hub at"), "{line}");

    let missing = dir.path().join("missing.toml");
    let line = fatal(
        common::dfscan()
            .arg("--config")
            .arg(&missing)
            .args(["score", "--model"])
            .arg(&model)
            .arg(&images),
    );
    assert_eq!(line.matches("not found").count(), 1, "said twice: {line}");

    // eval checks the folder before loading the model: a model that does
    // not exist is not what it reports.
    let line = fatal(
        common::dfscan()
            .args(["eval", "--model"])
            .arg(&not_a_checkpoint)
            .arg(&empty),
    );
    assert!(line.contains("Real/") && line.contains("Fake/"), "{line}");
}

#[test]
fn a_closed_stdout_ends_score_quietly() {
    // `dfscan score DIR | head -1`: the reader has what it wanted.
    let out = common::output_with_closed_stdout(
        common::dfscan()
            .args(["score", "--format", "jsonl", "--model"])
            .arg(common::model_dir("tiny-a"))
            .arg(common::fixtures().join("images/rgb.jpg")),
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    assert!(!stderr.contains("error"), "{stderr}");
}
