//! The Python client (`clients/python`) against a real `dfscan serve`: its
//! pytest suite (`clients/python/tests`) runs with the `.venv-tools`
//! interpreter, the package taken from the checkout through PYTHONPATH
//! (nothing is installed into the shared virtualenv).
//!
//! This test provides what the suite needs (see its `conftest.py`): a
//! folder of images (nested, with a hidden image and a non-image that must
//! be skipped), `dfscan score`'s JSON Lines for it as the reference the
//! client's scores must match within 1e-5, a server with a second model
//! that no worker serves and a small queue limit, for cancellation and
//! back-pressure cases, and the `dfscan` binary, whose `submit` and `jobs
//! results` lines the client's records must equal (one record shape,
//! `docs/result-record.schema.json`, checked in `test_server.py`).

mod common;

use std::process::Command;
use std::time::Instant;

use common::cluster::{wait_for_port, write_images, Proc};
use common::{dfscan, model_dir, repo, tools_python};
use dfscan_testkit::free_port;

/// A model the coordinator accepts but no worker serves: its jobs wait.
const PARKED_MODEL: &str = "parked";
/// `queue.max_queued_items`, per model.
const MAX_QUEUED_ITEMS: &str = "1000";

#[test]
fn python_client_suite_against_dfscan_serve() {
    let tmp = tempfile::tempdir().unwrap();
    let images = write_images(tmp.path(), 24);
    write_images(&images.join("sub"), 5);
    std::fs::copy(images.join("img-00000.png"), images.join(".hidden.png")).unwrap();
    std::fs::write(images.join("notes.txt"), "not an image").unwrap();
    let model = model_dir("tiny-a");

    // The reference: the same files scored in process.
    let reference = tmp.path().join("reference.jsonl");
    let out = dfscan()
        .args(["score", "--format", "jsonl", "--threads", "1"])
        .args(["--decode-threads", "1", "--model"])
        .arg(&model)
        .arg("--output")
        .arg(&reference)
        .arg(&images)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "dfscan score: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let lines = std::fs::read_to_string(&reference).unwrap().lines().count();
    assert_eq!(lines, 29, "dfscan score should find the 29 visible images");

    let port = free_port();
    let mut serve = dfscan();
    serve
        .args(["serve", "--listen", &format!("127.0.0.1:{port}"), "--model"])
        .arg(&model)
        .args(["--threads", "1", "--decode-threads", "1"])
        .env("DFSCAN_COORDINATOR__MODELS", PARKED_MODEL)
        .env("DFSCAN_QUEUE__MAX_QUEUED_ITEMS", MAX_QUEUED_ITEMS);
    let _serve = Proc::spawn("dfscan serve", serve);
    // serve loads the model before it listens.
    wait_for_port(port);

    let started = Instant::now();
    let out = Command::new(tools_python())
        .args(["-m", "pytest", "-q", "-rs", "-p", "no:cacheprovider"])
        .arg(repo().join("clients/python/tests"))
        .current_dir(repo())
        .env("PYTHONPATH", repo().join("clients/python"))
        .env("PYTHONDONTWRITEBYTECODE", "1")
        // Only pytest itself: plugins other packages of the virtualenv
        // register (cloudcoil's) are not for this suite.
        .env("PYTEST_DISABLE_PLUGIN_AUTOLOAD", "1")
        .env("DFSCAN_TEST_COORDINATOR", format!("127.0.0.1:{port}"))
        .env("DFSCAN_TEST_IMAGES", &images)
        .env("DFSCAN_TEST_REFERENCE", &reference)
        .env("DFSCAN_TEST_PARKED_MODEL", PARKED_MODEL)
        .env("DFSCAN_TEST_MAX_QUEUED_ITEMS", MAX_QUEUED_ITEMS)
        .env("DFSCAN_TEST_DFSCAN", env!("CARGO_BIN_EXE_dfscan"))
        // The `dfscan score` runs it compares with run in f32, as the
        // suite's workers do (common::dfscan).
        .env("DFSCAN_DTYPE", "f32")
        .output()
        .expect("running pytest");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    println!(
        "pytest ({:.1} s):\n{stdout}{stderr}",
        started.elapsed().as_secs_f64()
    );
    assert!(out.status.success(), "the Python client's tests failed");
    // Every test ran: none skipped for want of a server or of grpcio-tools.
    assert!(
        stdout.contains(" passed") && !stdout.contains("skipped"),
        "tests were skipped"
    );
}
