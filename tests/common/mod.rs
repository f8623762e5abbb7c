//! Shared by the end-to-end tests: the reference fixtures (tiny random
//! checkpoints, images, and transformers' outputs for them) made once per
//! version of the generator scripts by the setup's Python environment.

#![allow(dead_code)] // each test binary uses its own subset

pub mod cluster;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use sha2::{Digest, Sha256};

pub fn repo() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// The setup's virtualenv Python (torch, transformers); a missing one is a
/// setup error, not a skip.
pub fn python() -> PathBuf {
    setup_file(".venv/bin/python")
}

/// The Python of the setup's tools virtualenv (Helm SDK, tritonclient,
/// grpcio, pytest).
pub fn tools_python() -> PathBuf {
    setup_file(".venv-tools/bin/python")
}

/// A file `scripts/setup.sh` puts in the checkout.
pub fn setup_file(relative: &str) -> PathBuf {
    let path = repo().join(relative);
    assert!(
        path.exists(),
        "{} is missing: run scripts/setup.sh first",
        path.display()
    );
    path
}

/// Runs `cmd`, requires success (panicking with its stderr), returns its
/// output.
pub fn run_ok(cmd: &mut Command) -> std::process::Output {
    let out = cmd.output().expect("running a command");
    assert!(
        out.status.success(),
        "{cmd:?} failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// How far apart two runs' float32-derived numbers may be: scores from
/// different processes, batchings or thread schedules differ in their last
/// bits, so they are never compared exactly.
pub const FLOAT_TOLERANCE: f64 = 1e-5;

/// `a` equals `b` with every number within `tolerance` (strings, keys and
/// shapes exactly); `at` names the place in the message.
pub fn assert_json_close(a: &serde_json::Value, b: &serde_json::Value, tolerance: f64, at: &str) {
    use serde_json::Value;
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => {
            let (x, y) = (x.as_f64().unwrap(), y.as_f64().unwrap());
            assert!((x - y).abs() <= tolerance, "{at}: {x} vs {y}");
        }
        (Value::Array(x), Value::Array(y)) => {
            assert_eq!(x.len(), y.len(), "{at}: lengths differ");
            for (i, (x, y)) in x.iter().zip(y).enumerate() {
                assert_json_close(x, y, tolerance, &format!("{at}[{i}]"));
            }
        }
        (Value::Object(x), Value::Object(y)) => {
            let keys = |o: &serde_json::Map<String, Value>| o.keys().cloned().collect::<Vec<_>>();
            assert_eq!(keys(x), keys(y), "{at}: keys differ");
            for (key, x) in x {
                assert_json_close(x, &y[key], tolerance, &format!("{at}.{key}"));
            }
        }
        _ => assert_eq!(a, b, "{at}"),
    }
}

/// Runs `cmd` with its standard output closed from the start, as `| head`
/// leaves it once it has read enough: its output (stderr only).
pub fn output_with_closed_stdout(cmd: &mut Command) -> std::process::Output {
    let mut child = cmd
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    drop(child.stdout.take());
    child.wait_with_output().unwrap()
}

/// `dfscan score --format jsonl` of `inputs` with `model` and `extra`
/// flags: its lines.
pub fn score_jsonl(model: &Path, inputs: &Path, extra: &[&str]) -> Vec<serde_json::Value> {
    let out = run_ok(
        dfscan()
            .args(["score", "--format", "jsonl", "--model"])
            .arg(model)
            .args(extra)
            .arg(inputs),
    );
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

/// A directory made once by `generate` (into a temporary sibling, renamed
/// when done) and cached under the target directory as `PREFIX-<hash of
/// what went into it>`: a change to its inputs makes a new one.
pub fn generated_dir(prefix: &str, inputs: Sha256, generate: impl FnOnce(&Path)) -> PathBuf {
    let key: String = inputs
        .finalize()
        .iter()
        .take(6)
        .map(|b| format!("{b:02x}"))
        .collect();
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("{prefix}-{key}"));
    if !dir.join(".complete").exists() {
        let tmp = dir.with_extension(format!("tmp{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&tmp);
        generate(&tmp);
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::rename(&tmp, &dir).unwrap();
    }
    dir
}

/// One of scikit-image's sample photographs (`astronaut`, `camera`,
/// `chelsea`, `coffee`), as `tests/tools/face_detector_reference.py paths`
/// finds them in `.venv-tools`.
pub fn sample_photo(name: &str) -> PathBuf {
    static PATHS: OnceLock<serde_json::Value> = OnceLock::new();
    let paths = PATHS.get_or_init(|| {
        let out = Command::new(tools_python())
            .arg(repo().join("tests/tools/face_detector_reference.py"))
            .arg("paths")
            .output()
            .expect("face_detector_reference.py paths");
        assert!(out.status.success(), "{out:?}");
        serde_json::from_slice(&out.stdout).unwrap()
    });
    PathBuf::from(
        paths["images"][name]
            .as_str()
            .unwrap_or_else(|| panic!("no sample photo {name}")),
    )
}

/// A short video of scikit-image's astronaut, one face throughout (2 s at
/// 10 fps, 256×256, H.264), made once with the `ffmpeg` CLI and cached
/// under the target directory: for the tests that send a video through the
/// cluster's outputs (callbacks, KServe) beside the images.
pub fn face_video() -> &'static Path {
    static PATH: OnceLock<PathBuf> = OnceLock::new();
    PATH.get_or_init(|| {
        let astronaut = sample_photo("astronaut").to_string_lossy().into_owned();
        let args = [
            "-loop",
            "1",
            "-i",
            &astronaut,
            "-vf",
            "scale=256:256",
            "-t",
            "2",
            "-r",
            "10",
            "-c:v",
            "libx264",
            "-pix_fmt",
            "yuv420p",
        ];
        let mut hash = Sha256::new();
        hash.update(args.join(" "));
        let dir = generated_dir("face-video", hash, |dir| {
            std::fs::create_dir_all(dir).unwrap();
            let out = dir.join("face.mp4");
            let mut all = args.to_vec();
            all.push(out.to_str().unwrap());
            dfscan_testkit::ffmpeg(&all);
        });
        dir.join("face.mp4")
    })
}

/// Runs a Python tool from tests/tools and panics with its output on failure.
pub fn run_tool(script: &str, args: &[&str]) {
    let out = Command::new(python())
        .arg(repo().join("tests/tools").join(script))
        .args(args)
        .output()
        .expect("running python");
    assert!(
        out.status.success(),
        "{script} failed:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The fixture directory, generated on first use and cached under the
/// target directory, keyed by the generator scripts' contents, or the
/// prebuilt one `DFSCAN_TEST_FIXTURES` names (a GPU host running a carried
/// test binary has no setup to generate them: scripts/gpu-check.sh).
pub fn fixtures() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        if let Some(dir) = std::env::var_os("DFSCAN_TEST_FIXTURES") {
            return PathBuf::from(dir);
        }
        let mut hash = Sha256::new();
        for tool in ["make_fixtures.py", "make_checkpoint.py"] {
            hash.update(std::fs::read(repo().join("tests/tools").join(tool)).unwrap());
        }
        generated_dir("fixtures", hash, |tmp| {
            run_tool("make_fixtures.py", &[tmp.to_str().unwrap()]);
        })
    })
}

pub fn model_dir(name: &str) -> PathBuf {
    fixtures().join("models").join(name)
}

/// The `dfscan` binary built for these tests.
pub fn dfscan() -> Command {
    binary(env!("CARGO_BIN_EXE_dfscan"))
}

/// The libtorch-free `dfscan-coordinator` binary, the deployed one.
pub fn dfscan_coordinator() -> Command {
    binary(dfscan_coordinator_path())
}

/// Where `dfscan-coordinator` is: a binary of dfscan-process, which cargo
/// does not build for this package's tests, so the first call builds it
/// (or finds it fresh) in this build's profile.
pub fn dfscan_coordinator_path() -> &'static Path {
    static PATH: OnceLock<PathBuf> = OnceLock::new();
    PATH.get_or_init(|| {
        dfscan_testkit::workspace_binary(
            "dfscan-process",
            "dfscan-coordinator",
            Path::new(env!("CARGO_BIN_EXE_dfscan")),
        )
    })
}

fn binary(path: impl AsRef<std::ffi::OsStr>) -> Command {
    let mut cmd = Command::new(path);
    // Keep a developer's own settings and hub cache out of the tests.
    for (key, _) in std::env::vars() {
        if key.starts_with("DFSCAN_") || key.starts_with("HF_") {
            cmd.env_remove(key);
        }
    }
    cmd.env("HF_HUB_OFFLINE", "1").env("DFSCAN_LOG", "warn");
    // The suite compares against float32 references with float32's
    // tolerances, so its processes run in f32 whatever `auto` would pick on
    // this host; tests/parity.rs checks `auto` itself.
    cmd.env("DFSCAN_DTYPE", "f32");
    // Authentication is tested on its own (crates/coordinator/tests); the
    // rest of the suite runs without it, which takes saying so.
    cmd.env("DFSCAN_COORDINATOR__AUTH__DISABLED", "true");
    cmd
}

/// Every float32 tensor of a safetensors file, by name.
pub fn read_f32_tensors(path: &Path) -> std::collections::HashMap<String, Vec<f32>> {
    let bytes = std::fs::read(path).unwrap();
    let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    st.tensors()
        .into_iter()
        .map(|(name, view)| {
            assert_eq!(view.dtype(), safetensors::Dtype::F32, "{name}");
            let values = view
                .data()
                .chunks_exact(4)
                .map(|c| f32::from_le_bytes(c.try_into().unwrap()))
                .collect();
            (name, values)
        })
        .collect()
}
