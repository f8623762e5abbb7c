//! The KServe v2 / Open Inference Protocol endpoint as its users reach it:
//! Triton's own Python client library (tritonclient), unchanged, against
//! `dfscan serve`, must get the probabilities `dfscan score` gives, the
//! metadata Triton would give, and the protocol's status codes for bad
//! requests. `tests/tools/triton_client.py` also checks the proto against
//! tritonclient's own definitions, field by field.

mod common;

use std::collections::HashMap;

use common::cluster::{wait_for_port, write_images, Proc};
use common::{dfscan, model_dir, repo, score_jsonl, tools_python};
use dfscan_testkit::free_port;
use serde_json::Value;

/// `dfscan score`'s scores per file name, by label.
fn reference(
    model: &std::path::Path,
    images: &std::path::Path,
) -> HashMap<String, (String, HashMap<String, f64>)> {
    score_jsonl(model, images)
        .into_iter()
        .map(|row| {
            let name = row["path"]
                .as_str()
                .unwrap()
                .rsplit('/')
                .next()
                .unwrap()
                .to_string();
            let scores = row["scores"]
                .as_object()
                .unwrap()
                .iter()
                .map(|(label, p)| (label.clone(), p.as_f64().unwrap()))
                .collect();
            (name, (row["label"].as_str().unwrap().to_string(), scores))
        })
        .collect()
}

/// The checkpoint's labels in class order.
fn labels(model: &std::path::Path) -> Vec<String> {
    let config: Value =
        serde_json::from_slice(&std::fs::read(model.join("config.json")).unwrap()).unwrap();
    let id2label = config["id2label"].as_object().unwrap();
    (0..id2label.len())
        .map(|i| id2label[&i.to_string()].as_str().unwrap().to_string())
        .collect()
}

#[test]
fn tritons_client_scores_as_dfscan_score_does() {
    let tmp = tempfile::tempdir().unwrap();
    let images = write_images(tmp.path(), 5);
    let model = model_dir("tiny-a");
    let model_arg = model.to_str().unwrap();
    let port = free_port();
    let listen = format!("127.0.0.1:{port}");
    let mut serve = dfscan();
    serve.args(["serve", "--listen", &listen, "--model", model_arg]);
    serve.args(["--threads", "1", "--decode-threads", "1"]);
    let _serve = Proc::spawn("serve", serve);
    wait_for_port(port);

    let descriptors = tmp.path().join("descriptors.bin");
    std::fs::write(&descriptors, dfscan_proto::FILE_DESCRIPTOR_SET).unwrap();
    let mut files: Vec<_> = std::fs::read_dir(&images)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    let out = std::process::Command::new(tools_python())
        .arg(repo().join("tests/tools/triton_client.py"))
        .args(["--url", &listen, "--model", "tiny-a", "--descriptors"])
        .arg(&descriptors)
        .args(&files)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "triton_client.py failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();

    // Probabilities and labels: as `dfscan score`'s, in class order.
    let expected = reference(&model, &images);
    let labels = labels(&model);
    let results = report["results"].as_array().unwrap();
    assert_eq!(results.len(), files.len());
    for result in results {
        let name = result["path"].as_str().unwrap().rsplit('/').next().unwrap();
        let (label, scores) = &expected[name];
        assert_eq!(result["label"], label.as_str(), "{name}");
        let row = result["probabilities"].as_array().unwrap();
        assert_eq!(row.len(), labels.len());
        for (p, label) in row.iter().zip(&labels) {
            let p = p.as_f64().unwrap();
            assert!(
                (p - scores[label]).abs() < 1e-5,
                "{name} {label}: {p} vs {}",
                scores[label]
            );
        }
    }

    // Metadata as Triton reports it.
    assert_eq!(report["server"]["name"], "dfscan");
    let metadata = &report["metadata"];
    assert_eq!(metadata["versions"], serde_json::json!(["1"]));
    assert_eq!(metadata["inputs"][0]["name"], "IMAGE");
    assert_eq!(metadata["inputs"][0]["datatype"], "BYTES");
    assert_eq!(metadata["outputs"][0]["name"], "PROBABILITIES");
    assert_eq!(
        metadata["outputs"][0]["shape"],
        serde_json::json!(["-1", labels.len().to_string()])
    );
    let config = &report["config"];
    assert_eq!(config["max_batch_size"], 64);
    assert_eq!(config["input"][0]["data_type"], "TYPE_STRING");
    let index = report["index"]["models"].as_array().unwrap();
    assert!(
        index
            .iter()
            .any(|m| m["name"] == "tiny-a" && m["state"] == "READY"),
        "{index:?}"
    );

    // Bad requests: the protocol's codes, with messages naming the problem.
    let status = |case: &str, code: &str, needle: &str| {
        let got = &report[case];
        assert_eq!(got["status"], code, "{case}: {got}");
        let message = got["message"].as_str().unwrap();
        assert!(message.contains(needle), "{case}: {message}");
    };
    status("bad_image", "StatusCode.INVALID_ARGUMENT", "IMAGE[1]");
    status(
        "wrong_datatype",
        "StatusCode.INVALID_ARGUMENT",
        "must be BYTES",
    );
    status("unknown_model", "StatusCode.NOT_FOUND", "no-such-model");
    status("unknown_output", "StatusCode.INVALID_ARGUMENT", "SCORES");
    assert!(report["proto"]["rpcs"].as_array().unwrap().len() >= 8);
}
