//! Broken checkpoints fail loading with errors that name what is wrong:
//! the missing tensor, the tensor whose shape disagrees with config.json,
//! the missing file.

mod common;

use std::path::Path;

/// A copy of tiny-a whose weights and config the test may edit.
fn copy_of_tiny_a() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    for entry in std::fs::read_dir(common::model_dir("tiny-a")).unwrap() {
        let entry = entry.unwrap();
        std::fs::copy(entry.path(), dir.path().join(entry.file_name())).unwrap();
    }
    dir
}

/// Rewrites `model.safetensors` without the tensor `drop`.
fn drop_tensor(dir: &Path, drop: &str) {
    let path = dir.join("model.safetensors");
    let bytes = std::fs::read(&path).unwrap();
    let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    let kept: Vec<_> = st
        .tensors()
        .into_iter()
        .filter(|(name, _)| name != drop)
        .collect();
    assert_eq!(kept.len() + 1, st.len(), "{drop} was in the checkpoint");
    let out = safetensors::serialize(kept, &None).unwrap();
    std::fs::write(&path, out).unwrap();
}

fn score_error(model: &Path) -> String {
    let out = common::dfscan()
        .args(["score", "--model"])
        .arg(model)
        .arg(common::fixtures().join("images/rgb.jpg"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "loading should fail");
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn a_missing_tensor_is_named() {
    let dir = copy_of_tiny_a();
    drop_tensor(
        dir.path(),
        "vit.encoder.layer.1.attention.attention.value.weight",
    );
    let err = score_error(dir.path());
    assert!(
        err.contains("missing tensor `vit.encoder.layer.1.attention.attention.value.weight`"),
        "{err}"
    );
}

#[test]
fn a_shape_mismatch_is_named() {
    let dir = copy_of_tiny_a();
    let config = dir.path().join("config.json");
    let text = std::fs::read_to_string(&config).unwrap();
    let mut json: serde_json::Value = serde_json::from_str(&text).unwrap();
    json["intermediate_size"] = 64.into();
    std::fs::write(&config, json.to_string()).unwrap();
    let err = score_error(dir.path());
    assert!(err.contains("intermediate.dense"), "{err}");
    assert!(err.contains("[100]") && err.contains("[64]"), "{err}");
}

#[test]
fn missing_files_are_named() {
    for file in [
        "config.json",
        "preprocessor_config.json",
        "model.safetensors",
    ] {
        let dir = copy_of_tiny_a();
        std::fs::remove_file(dir.path().join(file)).unwrap();
        let err = score_error(dir.path());
        assert!(err.contains(file), "{file}: {err}");
    }
}
