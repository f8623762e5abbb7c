//! The binaries of other workspace packages, for the tests that run them.
//!
//! Cargo builds a package's own binaries for its integration tests
//! (`CARGO_BIN_EXE_<name>`) but not another package's, and artifact
//! dependencies are unstable. `dfscan-coordinator` is a binary of
//! dfscan-process, so that its dependency tree holds no libtorch, and the
//! root package's tests run it: they ask cargo for it, rather than look in
//! `target/`, so that a test never runs a stale build or finds none.

use std::path::{Path, PathBuf};
use std::process::Command;

/// The binary `bin` of workspace package `package`, as cargo builds it in
/// the profile that `sibling` (a `CARGO_BIN_EXE_*` of the calling test's
/// own package) was built in: `cargo build --locked -p <package> --bin
/// <bin>`, with the cargo that runs the test (it sets `CARGO`). Nothing is
/// compiled when the binary is fresh, as after `cargo test --workspace`.
/// The build goes to the target directory cargo's configuration names,
/// where `--target-dir` on the test's command line does not reach.
pub fn workspace_binary(package: &str, bin: &str, sibling: &Path) -> PathBuf {
    let profile = match sibling.parent().and_then(Path::file_name) {
        Some(dir) if dir == "debug" => "dev".into(),
        Some(dir) => dir.to_string_lossy().into_owned(),
        None => panic!("{} is not in a cargo profile folder", sibling.display()),
    };
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let build = format!("cargo build --locked --profile {profile} -p {package} --bin {bin}");
    let out = Command::new(&cargo)
        .args(["build", "--locked", "--message-format=json", "--profile"])
        .args([profile.as_str(), "-p", package, "--bin", bin])
        .output()
        .unwrap_or_else(|e| panic!("cannot run {cargo:?} for `{build}`: {e}"));
    assert!(
        out.status.success(),
        "`{build}` failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|line| serde_json::from_str::<serde_json::Value>(line).ok())
        .find(|message| {
            message["reason"] == "compiler-artifact" && message["target"]["name"] == bin
        })
        .and_then(|artifact| artifact["executable"].as_str().map(PathBuf::from))
        .unwrap_or_else(|| panic!("`{build}` reported no executable {bin}"))
}
