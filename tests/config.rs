//! Configuration keys end to end, through the binaries. A misspelt key, in
//! a config file or as a `DFSCAN_` variable, stops every command with exit
//! status 1, naming the key, where it was given and the key meant (ignored,
//! it would leave a default in force without a word). One file holding
//! every section, as the Helm chart writes one for all its processes, is
//! accepted by each of them, the libtorch-free coordinator included, and so
//! are the `DFSCAN_` variables that are not settings. Flags that would do
//! nothing are not accepted either.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

/// A file for every process: each section with some of its keys set (and
/// no Redis URL, so that the long-running processes stop right after
/// loading it).
const SHARED: &str = r#"
model = "/nonexistent/vit"
revision = "main"
device = "cpu"
dtype = "f32"
batch_size = 8
threads = 1
decode_threads = 1
fake_label = "Fake"
labels = ["Real", "Fake"]
max_image_bytes = 1048576
max_image_pixels = 1000000
max_jpeg_scans = 100
max_decode_ms = 1000
log_format = "text"

[metrics]

[queue]
key_prefix = "shared"
visibility_timeout_ms = 30000
max_deliveries = 3

[coordinator]
listen = "127.0.0.1:0"
models = ["vit"]
task_size = 16
callback_attempts = 3

[coordinator.auth]
disabled = true

[coordinator.limits]
max_concurrent_streams = 64

[coordinator.tls]
client_cert_required = false

[worker]
max_batch = 8
max_wait_ms = 5
drain_grace_s = 5
uri_roots = ["/data"]

[train]
epochs = 1
lr = 1e-5
val_fraction = 0.1

[client]
coordinator = "http://127.0.0.1:1"
resume_for_s = 1
"#;

fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path
}

/// Every kind of command, each reading its own sections of `config`.
fn commands(config: &Path, scratch: &Path) -> Vec<(&'static str, Command)> {
    let dfscan = |args: &[&str]| {
        let mut cmd = common::dfscan();
        cmd.arg("--config").arg(config).args(args);
        cmd
    };
    let empty = scratch.to_str().unwrap();
    let output = scratch.join("out");
    let output = output.to_str().unwrap();
    let mut coordinator = common::dfscan_coordinator();
    coordinator.arg("--config").arg(config);
    vec![
        ("score", dfscan(&["score", empty])),
        (
            "train",
            dfscan(&["train", "--data", empty, "--output", output]),
        ),
        ("worker", dfscan(&["worker"])),
        ("serve", dfscan(&["serve"])),
        ("coordinator", dfscan(&["coordinator"])),
        ("dfscan-coordinator", coordinator),
        ("models", dfscan(&["models"])),
    ]
}

/// Runs `cmd`, which must fail with exit status 1; its stderr.
fn fails(name: &str, cmd: &mut Command) -> String {
    let out = cmd.output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(out.status.code(), Some(1), "{name}: {stderr}");
    stderr
}

#[test]
fn a_misspelt_key_in_the_file_is_refused_by_every_command() {
    let dir = tempfile::tempdir().unwrap();
    // Misspelt in another process's section too: each refuses it.
    let config = write(
        dir.path(),
        "dfscan.toml",
        &SHARED
            .replace("model = ", "modle = ")
            .replace("max_batch = 8", "max_btach = 8"),
    );
    for (name, mut cmd) in commands(&config, dir.path()) {
        let stderr = fails(name, &mut cmd);
        for expected in [
            format!("`modle` in {} (did you mean `model`?)", config.display()),
            "`worker.max_btach`".into(),
            "(did you mean `worker.max_batch`?)".into(),
        ] {
            assert!(
                stderr.contains(&expected),
                "{name}: {expected} not in {stderr}"
            );
        }
        assert!(
            stderr.contains("unknown configuration keys"),
            "{name}: {stderr}"
        );
    }
}

#[test]
fn a_misspelt_variable_is_refused_by_every_command() {
    let dir = tempfile::tempdir().unwrap();
    let config = write(dir.path(), "dfscan.toml", SHARED);
    for (name, mut cmd) in commands(&config, dir.path()) {
        cmd.env("DFSCAN_WORKER__MAX_BTACH", "8");
        let stderr = fails(name, &mut cmd);
        assert!(
            stderr.contains(
                "unknown configuration key `worker.max_btach` from environment variable \
                 DFSCAN_WORKER__MAX_BTACH (did you mean DFSCAN_WORKER__MAX_BATCH?)"
            ),
            "{name}: {stderr}"
        );
    }
}

#[test]
fn a_file_with_every_section_is_accepted_by_every_process() {
    let dir = tempfile::tempdir().unwrap();
    let config = write(dir.path(), "dfscan.toml", SHARED);
    let no_redis = "needs the queue's Redis URL";
    for (name, mut cmd) in commands(&config, dir.path()) {
        // Variables of the scripts and tests, not settings.
        for variable in [
            "DFSCAN_CACHE_DIR",
            "DFSCAN_PYTHON",
            "DFSCAN_BIN_DIR",
            "DFSCAN_ADVISORY_DB",
            "DFSCAN_TEST_SOMETHING",
        ] {
            cmd.env(variable, dir.path());
        }
        let stderr = fails(name, &mut cmd);
        // Each got past its configuration, to the first thing it lacks.
        let expected = match name {
            "score" => "no images found",
            "train" => "expected a train/ folder",
            "worker" | "coordinator" | "dfscan-coordinator" => no_redis,
            "serve" => "/nonexistent/vit",
            "models" => "127.0.0.1:1",
            other => panic!("{other}"),
        };
        assert!(
            stderr.contains(expected),
            "{name}: {expected} not in {stderr}"
        );
        assert!(
            !stderr.contains("unknown configuration"),
            "{name}: {stderr}"
        );
    }
    // The docker-compose deployment's file, shared by its processes. Its
    // tokens file is the coordinator's: a worker, which has none, does not
    // look for it.
    let deploy = common::repo().join("deploy/config.toml");
    let mut worker = common::dfscan();
    worker
        .arg("worker")
        .env_remove("DFSCAN_COORDINATOR__AUTH__DISABLED");
    for mut cmd in [common::dfscan_coordinator(), worker] {
        let stderr = fails("deploy/config.toml", cmd.arg("--config").arg(&deploy));
        assert!(stderr.contains(no_redis), "{stderr}");
    }
}

#[test]
fn workers_take_no_batch_size_flag() {
    // A worker's batch is worker.max_batch (--max-batch); a --batch-size
    // would be accepted and do nothing, so it is refused, naming the flag
    // meant.
    for command in ["worker", "serve"] {
        let out = common::dfscan()
            .args([command, "--batch-size", "4"])
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{command}: {stderr}");
        assert!(stderr.contains("'--batch-size"), "{command}: {stderr}");
        assert!(stderr.contains("--max-batch N"), "{command}: {stderr}");
    }
}

#[test]
fn serve_on_an_address_in_use_fails_before_loading_its_model() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let listen = taken.local_addr().unwrap().to_string();
    // The model does not exist: failing on the address, not on it, shows
    // that the address is bound before the model loads.
    let stderr = fails(
        "serve",
        common::dfscan().args([
            "serve",
            "--no-auth",
            "--listen",
            &listen,
            "--model",
            "/nonexistent/vit",
        ]),
    );
    assert!(stderr.contains("address is in use"), "{stderr}");
    assert!(stderr.contains("--listen HOST:PORT"), "{stderr}");
    assert!(!stderr.contains("/nonexistent/vit"), "{stderr}");
}
