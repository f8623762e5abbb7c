//! `dfscan train` end to end, on a tiny headless ViT (random weights in the
//! layout of `google/vit-base-patch16-224-in21k`) and a generated
//! two-class set whose Fake images carry a synthetic face-swap blending
//! artifact:
//! - fine-tuning with every augmentation of the recipe reaches high
//!   validation accuracy in a few epochs, and the checkpoint it writes
//!   loads in transformers with the same outputs as `dfscan score`;
//! - a run stopped by SIGTERM, resumed, killed by SIGKILL and resumed
//!   again ends with the same weights and metrics as an uninterrupted one.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use serde_json::Value;
use sha2::{Digest, Sha256};

/// The headless base and the data set, generated once per tool version.
fn inputs() -> &'static (PathBuf, PathBuf) {
    static DIRS: OnceLock<(PathBuf, PathBuf)> = OnceLock::new();
    DIRS.get_or_init(|| {
        let mut hash = Sha256::new();
        for tool in ["make_checkpoint.py", "make_train_set.py"] {
            hash.update(std::fs::read(common::repo().join("tests/tools").join(tool)).unwrap());
        }
        let dir = common::generated_dir("train", hash, |tmp| {
            let base = tmp.join("base");
            common::run_tool(
                "make_checkpoint.py",
                &[base.to_str().unwrap(), "--preset", "tiny-a", "--headless"],
            );
            common::run_tool(
                "make_train_set.py",
                &[
                    tmp.join("data").to_str().unwrap(),
                    "--train-per-class",
                    "128",
                    "--val-per-class",
                    "32",
                ],
            );
        });
        (dir.join("base"), dir.join("data"))
    })
}

/// `dfscan train` on the generated set with the recipe's augmentations
/// (milder rotation and crop than the card's defaults, so a model trained
/// from random weights learns in a few epochs); `extra` flags replace the
/// defaults they name.
fn train_command(output: &Path, epochs: usize, extra: &[&str]) -> Command {
    let (base, data) = inputs();
    let epochs = epochs.to_string();
    let defaults = [
        ("--base", base.to_str().unwrap()),
        ("--data", data.to_str().unwrap()),
        ("--device", "cpu"),
        ("--threads", "1"),
        ("--decode-threads", "2"),
        ("--epochs", &epochs),
        ("--batch-size", "16"),
        ("--lr", "1e-3"),
        ("--warmup", "4"),
        ("--rotation", "15"),
        ("--crop-scale", "0.8"),
        ("--seed", "7"),
        ("--patience", "0"),
    ];
    let mut cmd = common::dfscan();
    cmd.arg("train").arg("--output").arg(output);
    for (flag, value) in defaults {
        if !extra.contains(&flag) {
            cmd.args([flag, value]);
        }
    }
    cmd.args(extra);
    cmd
}

fn read_json(path: &Path) -> Value {
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

#[test]
fn fine_tunes_a_headless_base_into_a_checkpoint_transformers_loads() {
    let out = tempfile::tempdir().unwrap();
    let output = out.path().join("model");
    common::run_ok(&mut train_command(&output, 5, &[]));

    let report = read_json(&output.join("training_report.json"));
    let best = report["best_epoch"].as_u64().unwrap();
    let history = report["history"].as_array().unwrap();
    assert_eq!(history.len(), 5);
    let best_eval = &history[best as usize - 1]["eval"];
    let accuracy = best_eval["accuracy"].as_f64().unwrap();
    assert!(
        accuracy >= 0.9,
        "best validation accuracy {accuracy}: {report:#}"
    );
    assert!(best_eval["roc_auc"].as_f64().unwrap() >= 0.9);
    assert_eq!(report["labels"], serde_json::json!(["Fake", "Real"]));
    // The first epoch starts from a random head: well below the best.
    assert!(
        history[0]["train_loss"].as_f64().unwrap() > history[4]["train_loss"].as_f64().unwrap()
    );

    let config = read_json(&output.join("config.json"));
    assert_eq!(
        config["id2label"],
        serde_json::json!({"0": "Fake", "1": "Real"})
    );
    assert_eq!(
        config["architectures"],
        serde_json::json!(["ViTForImageClassification"])
    );

    // transformers (which fails on missing or unexpected weights) against
    // `dfscan score`, image by image.
    let val = inputs().1.join("val");
    let hf = common::run_ok(
        Command::new(common::python())
            .arg(common::repo().join("tests/tools/hf_predict.py"))
            .arg(&output)
            .arg(&val),
    );
    let hf: Value = serde_json::from_slice(&hf.stdout).unwrap();
    // The whole image, as transformers scores it.
    let ours = common::score_jsonl(&output, &val, &["--faces", "off"]);
    assert_eq!(ours.len(), 64);
    let mut correct = 0;
    for line in &ours {
        let path = Path::new(line["path"].as_str().unwrap());
        let key = path.strip_prefix(&val).unwrap().to_str().unwrap();
        let reference = &hf[key];
        let logits: Vec<f64> = serde_json::from_value(reference["logits"].clone()).unwrap();
        let probs = [
            line["scores"]["Fake"].as_f64().unwrap(),
            line["scores"]["Real"].as_f64().unwrap(),
        ];
        for (i, p) in probs.iter().enumerate() {
            let want = reference["probs"][i].as_f64().unwrap();
            assert!(
                (p - want).abs() < 1e-5,
                "{key}: {probs:?} vs {}",
                reference["probs"]
            );
        }
        // Same logits up to the constant softmax removes.
        let ours_margin = (probs[0] / probs[1]).ln();
        assert!(
            (ours_margin - (logits[0] - logits[1])).abs() < 1e-3,
            "{key}: logit margin {ours_margin} vs {logits:?}"
        );
        assert_eq!(line["label"], reference["label"], "{key}");
        let truth = if key.starts_with("Fake/") {
            "Fake"
        } else {
            "Real"
        };
        correct += usize::from(line["label"] == truth);
    }
    assert_eq!(
        correct as f64 / 64.0,
        accuracy,
        "the report's accuracy is the served model's"
    );
}

/// Waits until `child` saved a state that satisfies `ready`, then signals it.
fn interrupt_when(child: &mut Child, output: &Path, signal: i32, ready: impl Fn(&Value) -> bool) {
    let state = output.join("checkpoint-last/trainer_state.json");
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        assert!(Instant::now() < deadline, "no saved state in time");
        assert!(
            child.try_wait().unwrap().is_none(),
            "training ended before it was interrupted"
        );
        if let Some(s) = std::fs::read_to_string(&state)
            .ok()
            .and_then(|t| serde_json::from_str(&t).ok())
        {
            if ready(&s) {
                break;
            }
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    unsafe { libc::kill(child.id() as i32, signal) };
}

fn weights(dir: &Path) -> std::collections::HashMap<String, Vec<f32>> {
    common::read_f32_tensors(&dir.join("model.safetensors"))
}

/// The history without wall-clock figures.
fn metrics(output: &Path) -> Vec<Value> {
    let report = read_json(&output.join("training_report.json"));
    report["history"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            let mut r = r.clone();
            r.as_object_mut().unwrap().remove("images_per_second");
            r
        })
        .collect()
}

#[test]
fn an_interrupted_run_resumes_to_the_uninterrupted_result() {
    const EPOCHS: usize = 8;
    let dir = tempfile::tempdir().unwrap();
    let straight = dir.path().join("straight");
    common::run_ok(&mut train_command(
        &straight,
        EPOCHS,
        &["--save-steps", "3"],
    ));

    let resumed = dir.path().join("resumed");
    let quiet = |mut cmd: Command| {
        cmd.stdout(Stdio::null()).stderr(Stdio::piped());
        cmd.spawn().unwrap()
    };
    // SIGTERM mid-epoch: the state is saved at the next step and the
    // process says how to go on.
    let mut child = quiet(train_command(&resumed, EPOCHS, &["--save-steps", "3"]));
    interrupt_when(&mut child, &resumed, libc::SIGTERM, |s| {
        s["optimizer_steps"].as_u64() >= Some(5)
    });
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("interrupted") && stderr.contains("--resume"),
        "{stderr}"
    );
    let state = read_json(&resumed.join("checkpoint-last/trainer_state.json"));
    assert!((state["epoch"].as_u64().unwrap() as usize) < EPOCHS);

    // Starting over in the same folder is refused; resuming is not.
    let refused = train_command(&resumed, EPOCHS, &[]).output().unwrap();
    assert!(String::from_utf8_lossy(&refused.stderr).contains("--resume"));
    let changed = train_command(&resumed, EPOCHS, &["--resume", "--weight-decay", "0.1"])
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&changed.stderr).contains("weight_decay was"));

    // SIGKILL (a crash) after a later save: resumed from that save.
    let mut child = quiet(train_command(
        &resumed,
        EPOCHS,
        &["--save-steps", "3", "--resume"],
    ));
    interrupt_when(&mut child, &resumed, libc::SIGKILL, |s| {
        s["epoch"].as_u64() >= Some(4)
    });
    child.wait().unwrap();
    common::run_ok(&mut train_command(
        &resumed,
        EPOCHS,
        &["--save-steps", "3", "--resume"],
    ));

    // Separate processes: equal up to float rounding, never compared bit
    // for bit. A resume that lost or repeated a step, or restored the
    // wrong optimizer state, moves weights by ~1e-2 (the genuinely
    // different run of accumulating_two_half_batches_equals_one_full_batch).
    common::assert_json_close(
        &Value::from(metrics(&resumed)),
        &Value::from(metrics(&straight)),
        common::FLOAT_TOLERANCE,
        "history",
    );
    for sub in ["", "checkpoint-last"] {
        let (a, b) = (straight.join(sub), resumed.join(sub));
        assert_eq!(weights(&a).len(), weights(&b).len());
        let diff = weight_distance(&a, &b);
        assert!(diff <= 1e-6, "{sub}: weights differ by {diff}");
    }
}

#[test]
fn refuses_what_it_cannot_do_before_training() {
    let dir = tempfile::tempdir().unwrap();
    let output = dir.path().join("out");
    let cases: [(&[&str], &str); 4] = [
        (&["--dtype", "f16"], "needs a CUDA device"),
        (&["--resume"], "no saved training state"),
        (&["--val-fraction", "1.5"], "val_fraction"),
        // The set has a val split: a share to hold out would go unused.
        (&["--val-fraction", "0.2"], "has a validation split"),
    ];
    for (flags, message) in cases {
        let out = train_command(&output, 1, flags).output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{flags:?}: {stderr}");
        assert!(stderr.contains(message), "{flags:?}: {stderr}");
    }
    // Given in the environment, the same.
    let out = train_command(&output, 1, &[])
        .env("DFSCAN_TRAIN__VAL_FRACTION", "0.1")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("has a validation split") && stderr.contains("0.1"),
        "{stderr}"
    );
    // The default base from the hub, offline with an empty cache: the
    // error names the ways out in training's own terms.
    let out = train_command(&output, 1, &["--base", dfscan_train::DEFAULT_BASE])
        .env("HF_HUB_CACHE", dir.path())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("--base DIR") && stderr.contains("DFSCAN_TRAIN__BASE=DIR"),
        "{stderr}"
    );
    assert!(!output.join("checkpoint-last").exists());
}

#[test]
fn bf16_mixed_precision_trains_float32_weights() {
    let dir = tempfile::tempdir().unwrap();
    let output = dir.path().join("out");
    common::run_ok(&mut train_command(&output, 2, &["--dtype", "bf16"]));
    let report = read_json(&output.join("training_report.json"));
    let loss = |e: usize| report["history"][e]["train_loss"].as_f64().unwrap();
    assert!(loss(1) < loss(0), "{report:#}");
    let tensors = common::read_f32_tensors(&output.join("model.safetensors"));
    assert!(tensors.contains_key("classifier.weight"));
    assert_eq!(
        common::score_jsonl(&output, &inputs().1.join("val"), &["--faces", "off"]).len(),
        64
    );
}

/// The largest difference between two outputs' weights.
fn weight_distance(a: &Path, b: &Path) -> f32 {
    let (a, b) = (weights(a), weights(b));
    a.iter()
        .flat_map(|(name, values)| values.iter().zip(&b[name]).map(|(x, y)| (x - y).abs()))
        .fold(0f32, f32::max)
}

#[test]
fn accumulating_two_half_batches_equals_one_full_batch() {
    let dir = tempfile::tempdir().unwrap();
    let run = |name: &str, extra: &[&str]| {
        let output = dir.path().join(name);
        common::run_ok(&mut train_command(&output, 1, extra));
        output
    };
    let full = run("full", &[]);
    let halves = run("halves", &["--batch-size", "8", "--grad-accum", "2"]);
    let small = run("small", &["--batch-size", "8"]);
    let steps = |o: &Path| {
        read_json(&o.join("training_report.json"))["history"][0]["optimizer_steps"].clone()
    };
    assert_eq!(steps(&full), 16);
    assert_eq!(steps(&halves), 16);
    // The same images, draws and steps: only the summation order differs,
    // which Adam's normalisation amplifies a little; a different trajectory
    // (half the batch, twice the steps) lands far further away.
    let same = weight_distance(&full, &halves);
    let different = weight_distance(&full, &small);
    assert!(
        same < 5e-4,
        "accumulated weights {same} from the full batch's"
    );
    assert!(different > 20.0 * same, "{different} vs {same}");
}

#[test]
fn unreadable_images_are_left_out_and_listed() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    for label in ["Real", "Fake"] {
        let (from, to) = (
            inputs().1.join("val").join(label),
            data.join("train").join(label),
        );
        std::fs::create_dir_all(&to).unwrap();
        for entry in std::fs::read_dir(from).unwrap().take(6) {
            let entry = entry.unwrap();
            std::fs::copy(entry.path(), to.join(entry.file_name())).unwrap();
        }
    }
    let broken = data.join("train/Fake/broken.png");
    std::fs::write(&broken, b"\x89PNG but not really").unwrap();
    let output = dir.path().join("out");
    let out = train_command(
        &output,
        2,
        &["--data", data.to_str().unwrap(), "--batch-size", "4"],
    )
    .output()
    .unwrap();
    assert_eq!(
        out.status.code(),
        Some(3),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("1 images could not be read"));
    let report = read_json(&output.join("training_report.json"));
    assert_eq!(report["skipped_images"], serde_json::json!([broken]));
    assert_eq!(report["history"][1]["train_images"], 12);
    assert!(output.join("model.safetensors").is_file());
}
