//! dfscan-process, and with it `dfscan-coordinator`, builds without
//! libtorch: neither torch-sys nor tch is among the packages it compiles
//! (normal and build dependencies, for this host). That keeps the
//! coordinator's memory small and lets deploy/coordinator.Dockerfile build
//! it with no torch wheel; tests/cluster.rs checks that the running process
//! maps no libtorch.

use std::collections::BTreeSet;
use std::process::Command;

const LIBTORCH: [&str; 2] = ["torch-sys", "tch"];

/// The names of the packages `package` compiles, as `cargo tree` resolves
/// them (features as a build of that package alone would have them).
fn built_packages(package: &str) -> BTreeSet<String> {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let out = Command::new(cargo)
        .args(["tree", "--locked", "--offline", "-p", package])
        .args(["-e", "normal,build", "--prefix", "none", "--format", "{p}"])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("running cargo tree");
    assert!(
        out.status.success(),
        "cargo tree -p {package} failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // Each line is `name vX.Y.Z`, then the path of a path dependency.
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|line| line.split_whitespace().next())
        .map(str::to_owned)
        .collect()
}

#[test]
fn the_coordinators_package_compiles_no_libtorch() {
    let packages = built_packages(env!("CARGO_PKG_NAME"));
    // The tree was read: the coordinator's own crates are in it.
    for expected in ["dfscan-coordinator", "dfscan-queue", "dfscan-proto"] {
        assert!(
            packages.contains(expected),
            "{expected} not in {packages:?}"
        );
    }
    for torch in LIBTORCH {
        assert!(!packages.contains(torch), "{torch} in {packages:?}");
    }
}

/// The same question about the worker, which does link libtorch, shows
/// that the check can fail.
#[test]
fn the_workers_package_compiles_libtorch() {
    let packages = built_packages("dfscan-worker");
    for torch in LIBTORCH {
        assert!(packages.contains(torch), "{torch} not in {packages:?}");
    }
}
