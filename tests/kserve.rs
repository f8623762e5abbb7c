//! The KServe v2 / Open Inference Protocol endpoint as its users reach it:
//! Triton's own Python client library (tritonclient), unchanged, against
//! `dfscan serve`, must get the probabilities `dfscan score` gives, the
//! metadata Triton would give, and the protocol's status codes for bad
//! requests. `tests/tools/triton_client.py` also checks the proto against
//! tritonclient's own definitions, field by field.
//!
//! Faces: the worker finds them with the detector setup converts (under
//! `$HOME/.cache/dfscan`), as `dfscan score` does. A call naming `FACES`
//! gets, for scikit-image's astronaut, the one face `dfscan score` finds,
//! whose probabilities are the image's (aggregation `max`); the `faces`
//! parameter makes a faceless image `no_face` (NaN probabilities, empty
//! label) or turns faces off; a call naming no output gets only
//! PROBABILITIES and LABEL. A video sent as an IMAGE element is scored as
//! a video: its row is its verdict and its FACES document its timeline, as
//! `dfscan score`'s line gives them.

mod common;

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use common::cluster::{wait_for_port, write_images, Proc};
use common::{
    assert_json_close, dfscan, face_video, model_dir, repo, run_ok, score_jsonl, tools_python,
    FLOAT_TOLERANCE,
};
use dfscan_testkit::free_port;
use serde_json::{json, Value};

/// How far a face's box, landmarks and detector score from one process may
/// be from another's: the detector's batches differ between them.
const FACE_TOLERANCE: f64 = 1e-3;
/// A video's frames, boxes and verdict from the cluster against `dfscan
/// score`'s: other batchings and processes, as tests/video_score.rs allows.
const VIDEO_TOLERANCE: f64 = 1e-3;
/// A face's probabilities and the image's row come from the same result:
/// equal up to the float32 → float64 of the JSON and the tensor.
const SAME_RESULT: f64 = 1e-6;

/// `dfscan score`'s result lines by file name.
fn reference(model: &Path, images: &Path) -> HashMap<String, Value> {
    score_jsonl(model, images, &[])
        .into_iter()
        .map(|row| {
            let name = row["path"]
                .as_str()
                .unwrap()
                .rsplit('/')
                .next()
                .unwrap()
                .to_string();
            (name, row)
        })
        .collect()
}

/// scikit-image's astronaut (one face), from the tools virtualenv.
fn astronaut() -> PathBuf {
    let out = run_ok(
        std::process::Command::new(tools_python())
            .arg(repo().join("tests/tools/face_detector_reference.py"))
            .arg("paths"),
    );
    let paths: Value = serde_json::from_slice(&out.stdout).unwrap();
    PathBuf::from(paths["images"]["astronaut"].as_str().unwrap())
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
    let face_image = images.join("astronaut.png");
    std::fs::copy(astronaut(), &face_image).unwrap();
    // Flat grey: nothing a detector could take for a face.
    let faceless_image = images.join("flat.png");
    image::RgbImage::from_pixel(64, 64, image::Rgb([128, 128, 128]))
        .save(&faceless_image)
        .unwrap();
    let model = model_dir("tiny-a");
    let model_arg = model.to_str().unwrap();
    let port = free_port();
    let listen = format!("127.0.0.1:{port}");
    let mut serve = dfscan();
    serve.args(["serve", "--listen", &listen, "--model", model_arg]);
    serve.args(["--threads", "1", "--decode-threads", "1"]);
    serve.env("DFSCAN_VIDEO__FRAMES", "4");
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
        .arg("--face-image")
        .arg(&face_image)
        .arg("--faceless-image")
        .arg(&faceless_image)
        .arg("--video")
        .arg(face_video())
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
        let row = &expected[name];
        assert_eq!(result["label"], row["label"], "{name}");
        let scores: Vec<Value> = labels.iter().map(|l| row["scores"][l].clone()).collect();
        assert_json_close(
            &result["probabilities"],
            &Value::from(scores),
            FLOAT_TOLERANCE,
            name,
        );
    }
    assert_eq!(
        report["default_outputs"],
        json!(["PROBABILITIES", "LABEL"]),
        "a call naming no output gets what it got before faces"
    );

    check_faces(&report["faces"], &expected, &labels);
    check_video(&report["video"], &model, &labels);

    // Metadata as Triton reports it.
    assert_eq!(report["server"]["name"], "dfscan");
    let metadata = &report["metadata"];
    assert_eq!(metadata["versions"], serde_json::json!(["1"]));
    assert_eq!(metadata["inputs"][0]["name"], "IMAGE");
    assert_eq!(metadata["inputs"][0]["datatype"], "BYTES");
    let width = labels.len().to_string();
    assert_eq!(
        metadata["outputs"],
        json!([
            {"name": "PROBABILITIES", "datatype": "FP32", "shape": ["-1", width]},
            {"name": "LABEL", "datatype": "BYTES", "shape": ["-1"]},
            {"name": "FACES", "datatype": "BYTES", "shape": ["-1"]},
        ])
    );
    let config = &report["config"];
    assert_eq!(config["max_batch_size"], 64);
    assert_eq!(config["input"][0]["data_type"], "TYPE_STRING");
    assert_eq!(
        config["output"],
        json!([
            {"name": "PROBABILITIES", "data_type": "TYPE_FP32", "dims": [width]},
            {"name": "LABEL", "data_type": "TYPE_STRING", "dims": ["1"]},
            {"name": "FACES", "data_type": "TYPE_STRING", "dims": ["1"]},
        ])
    );
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
    status(
        "bad_faces",
        "StatusCode.INVALID_ARGUMENT",
        "unknown face mode \"sometimes\": expected one of auto, require, off",
    );
    status(
        "bad_max_faces",
        "StatusCode.INVALID_ARGUMENT",
        "faces.max_faces must be 1 to 64, got 0",
    );
    status(
        "unknown_face_parameter",
        "StatusCode.INVALID_ARGUMENT",
        "unknown parameter \"face_mode\"",
    );
    assert!(report["proto"]["rpcs"].as_array().unwrap().len() >= 8);
}

/// The FACES calls' answers, per `faces` parameter, for the astronaut
/// (first) and the flat image (second), against `dfscan score`'s lines.
fn check_faces(report: &Value, expected: &HashMap<String, Value>, labels: &[String]) {
    let fake = labels
        .iter()
        .position(|l| l.eq_ignore_ascii_case("fake"))
        .unwrap();
    let astronaut = &expected["astronaut.png"];
    let flat = &expected["flat.png"];
    assert_eq!(astronaut["outcome"], "scored", "{astronaut}");
    assert_eq!(
        astronaut["faces"].as_array().unwrap().len(),
        1,
        "{astronaut}"
    );
    assert_eq!(flat["outcome"], "whole_image", "{flat}");
    let detector = &astronaut["face_detector"];
    assert!(
        detector["sha256"].as_str().is_some_and(|s| !s.is_empty()),
        "{detector}"
    );

    // The workers' default (auto) and require: the astronaut's one face,
    // as `dfscan score` found it, is the image's score.
    for mode in ["default", "require"] {
        let [face_image, faceless] = &report[mode].as_array().unwrap()[..] else {
            panic!("{mode}: {}", report[mode]);
        };
        let document = &face_image["faces"];
        assert_eq!(document["outcome"], "scored", "{mode}: {document}");
        assert_eq!(&document["face_detector"], detector, "{mode}");
        let [face] = &document["faces"].as_array().unwrap()[..] else {
            panic!("{mode}: not one face: {document}");
        };
        assert_json_close(face, &astronaut["faces"][0], FACE_TOLERANCE, mode);
        let row = face_image["probabilities"].as_array().unwrap();
        let p = |v: &Value| v.as_f64().unwrap();
        assert!(
            (p(&face["fake_score"]) - p(&row[fake])).abs() <= SAME_RESULT,
            "{mode}: face {face} vs row {row:?}"
        );
        for (label, value) in labels.iter().zip(row) {
            assert!(
                (p(&face["scores"][label]) - p(value)).abs() <= SAME_RESULT,
                "{mode} {label}: face {face} vs row {row:?}"
            );
        }
        assert_eq!(face_image["label"], face["label"], "{mode}");

        let document = &faceless["faces"];
        assert_eq!(&document["face_detector"], detector, "{mode}");
        assert_eq!(document["faces"], json!([]), "{mode}");
        if mode == "require" {
            // No face, no score: NaN probabilities (None through JSON) and
            // no label, the call itself a success.
            assert_eq!(document["outcome"], "no_face");
            assert_eq!(
                faceless["probabilities"],
                json!(vec![Value::Null; labels.len()])
            );
            assert_eq!(faceless["label"], "");
        } else {
            assert_eq!(document["outcome"], "whole_image");
            let scores: Vec<Value> = labels.iter().map(|l| flat["scores"][l].clone()).collect();
            assert_json_close(
                &faceless["probabilities"],
                &Value::from(scores),
                FLOAT_TOLERANCE,
                "flat.png",
            );
        }
    }

    // Faces off: both images scored whole, no detector named.
    for image in report["off"].as_array().unwrap() {
        assert_eq!(
            image["faces"],
            json!({"media": "image", "outcome": "scored", "face_detector": null, "faces": []})
        );
        assert!(image["probabilities"][0].is_number(), "{image}");
    }
}

/// One call holding the video and the astronaut: the video's row is its
/// verdict and its FACES document its media, outcome, detector and
/// timeline as its `dfscan score` line has them; the image beside it is
/// answered as an image.
fn check_video(report: &Value, model: &Path, labels: &[String]) {
    let [video, image] = &report.as_array().unwrap()[..] else {
        panic!("not a video and an image: {report}");
    };
    let line = &score_jsonl(model, face_video(), &["--frames", "4"])[0];
    assert_eq!(line["media"], "video", "{line}");
    let scores: Vec<Value> = labels.iter().map(|l| line["scores"][l].clone()).collect();
    assert_json_close(
        &video["probabilities"],
        &Value::from(scores),
        VIDEO_TOLERANCE,
        "the video's row",
    );
    assert_eq!(video["label"], line["label"]);
    let document = &video["faces"];
    let facts = |v: &Value| {
        json!({
            "media": v["media"], "outcome": v["outcome"], "face_detector": v["face_detector"],
            "duration_s": v["duration_s"], "frames": v["frames"], "tracks": v["tracks"],
        })
    };
    assert_json_close(
        &facts(document),
        &facts(line),
        VIDEO_TOLERANCE,
        "the video's FACES",
    );
    assert_eq!(
        document["frames"].as_array().unwrap().len(),
        4,
        "{document}"
    );
    assert!(
        document.get("faces").is_none() && document.get("partial").is_none(),
        "{document}"
    );
    assert_eq!(image["faces"]["media"], "image", "{image}");
    assert_eq!(
        image["faces"]["faces"].as_array().unwrap().len(),
        1,
        "{image}"
    );
}
