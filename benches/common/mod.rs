//! What the cluster benchmarks share: the real processes of a deployment
//! (redis-server, `dfscan-coordinator`, `dfscan worker`), killed on drop.

#![allow(dead_code)] // each benchmark uses its own subset

use std::process::{Child, Command, Stdio};

use dfscan_testkit::RedisServer;

/// A child process killed on drop.
pub struct Proc(pub Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

pub fn dfscan(args: &[&str]) -> Command {
    binary(env!("CARGO_BIN_EXE_dfscan"), args)
}

pub fn binary(path: impl AsRef<std::ffi::OsStr>, args: &[&str]) -> Command {
    let mut cmd = Command::new(path);
    cmd.args(args)
        .env("DFSCAN_LOG", "warn")
        // Benchmarks measure the serving path without authentication.
        .env("DFSCAN_COORDINATOR__AUTH__DISABLED", "true")
        .stdout(Stdio::null());
    cmd
}

pub fn spawn(mut cmd: Command) -> anyhow::Result<Proc> {
    Ok(Proc(cmd.spawn()?))
}

/// `dfscan-coordinator` on `port`, accepting jobs for `models`.
pub fn coordinator(redis: &RedisServer, port: u16, models: &str) -> anyhow::Result<Proc> {
    let listen = format!("127.0.0.1:{port}");
    // A binary of dfscan-process, which cargo does not build for this
    // package's benchmarks.
    let coordinator = dfscan_testkit::workspace_binary(
        "dfscan-process",
        "dfscan-coordinator",
        std::path::Path::new(env!("CARGO_BIN_EXE_dfscan")),
    );
    spawn(binary(
        coordinator,
        &[
            "--listen",
            &listen,
            "--redis",
            &redis.url(),
            "--models",
            models,
        ],
    ))
}

/// Where the benchmarks keep a generated checkpoint of `preset`.
pub fn bench_model(preset: &str) -> std::path::PathBuf {
    std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("target/bench")
        .join(preset)
}

/// The tiny test checkpoint in `dir`, generated with the test tools if
/// missing.
pub fn ensure_tiny_model(dir: &std::path::Path) -> anyhow::Result<()> {
    if dir.join("config.json").exists() {
        return Ok(());
    }
    let repo = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let status = Command::new(repo.join(".venv/bin/python"))
        .arg(repo.join("tests/tools/make_checkpoint.py"))
        .arg(dir)
        .args(["--preset", "tiny-a"])
        .status()?;
    anyhow::ensure!(status.success(), "make_checkpoint.py failed");
    Ok(())
}
