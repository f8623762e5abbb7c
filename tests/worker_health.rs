//! A real `dfscan worker`'s `/livez` and `/readyz` (`worker.health_listen`)
//! through its life, as the kubelet's probes see them: not ready while its
//! model loads (the checkpoint's preprocessor config is a FIFO that the
//! test fills when it chooses, so loading lasts exactly as long as the test
//! needs), ready once warmed up, no answer at all while the process is
//! stopped (SIGSTOP: the probe times out, which is what a kubelet sees of
//! a process that no longer runs), and not ready while draining after
//! SIGTERM (Redis is stopped then, so the drain cannot finish before the
//! test has looked). The watchdog that turns `/livez` 503 when the loop
//! stalls is tested with a model that stops answering in the worker
//! crate (`worker::tests`).

mod common;

use std::io::ErrorKind;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use common::cluster::{
    exclusive, http_get, wait_for_listener, wait_for_status, wait_until, Proc, FAST_QUEUE,
};
use common::{dfscan, model_dir};
use dfscan_testkit::{free_port, RedisServer};

/// A copy of the fixture checkpoint `tiny-a` whose preprocessor config is
/// a FIFO: the worker blocks reading it until `fill` is called.
fn checkpoint_loading_on_demand(root: &Path) -> (std::path::PathBuf, impl FnOnce()) {
    let source = model_dir("tiny-a");
    let dir = root.join("tiny-a");
    std::fs::create_dir(&dir).unwrap();
    let held = "preprocessor_config.json";
    for entry in std::fs::read_dir(&source).unwrap() {
        let entry = entry.unwrap();
        if entry.file_name() != held {
            std::fs::copy(entry.path(), dir.join(entry.file_name())).unwrap();
        }
    }
    let fifo = dir.join(held);
    let made = Command::new("mkfifo").arg(&fifo).status().unwrap();
    assert!(made.success(), "mkfifo {}", fifo.display());
    let text = std::fs::read(source.join(held)).unwrap();
    // Opening a FIFO for writing waits for its reader: on a thread.
    let fill = move || {
        std::thread::spawn(move || std::fs::write(fifo, text).unwrap())
            .join()
            .unwrap()
    };
    (dir, fill)
}

fn signal(pid: u32, signal: &str) {
    let sent = Command::new("kill")
        .args([&format!("-{signal}"), &pid.to_string()])
        .status()
        .unwrap();
    assert!(sent.success(), "kill -{signal} {pid}");
}

#[test]
fn probes_follow_loading_serving_a_stopped_process_and_draining() {
    let _one = exclusive();
    let tmp = tempfile::tempdir().unwrap();
    let redis = RedisServer::start();
    let (model, fill) = checkpoint_loading_on_demand(tmp.path());
    let port = free_port();
    let mut cmd = dfscan();
    cmd.args(["worker", "--redis", &redis.url(), "--model"])
        .arg(&model)
        .args([
            "--threads",
            "1",
            "--decode-threads",
            "1",
            "--max-batch",
            "4",
        ])
        .args(["--drain-grace-s", "120"])
        .envs(FAST_QUEUE.iter().copied())
        .env("DFSCAN_WORKER__HEALTH_LISTEN", format!("127.0.0.1:{port}"));
    let mut worker = Proc::spawn("worker", cmd);
    let probe = |path: &str| http_get(port, path, Duration::from_secs(10)).unwrap();

    // Served before the model is read: not ready, and live (the watchdog
    // is not armed while loading).
    wait_for_listener(worker.pid(), port);
    let (status, body) = probe("/readyz");
    assert_eq!((status, body.trim()), (503, "not ready: loading the model"));
    assert_eq!(probe("/livez"), (200, "live: starting\n".to_string()));

    fill();
    let ready = wait_for_status(port, "/readyz", 200, Duration::from_secs(120));
    assert_eq!(ready.trim(), "ready");
    let (status, body) = probe("/livez");
    assert_eq!(status, 200, "{body}");
    assert!(body.starts_with("live: last turn"), "{body}");

    // A process that stops running answers nothing: the probe's own
    // timeout fails it.
    worker.stop();
    let silent = http_get(port, "/livez", Duration::from_secs(2));
    worker.signal("CONT");
    match silent {
        Err(e) => assert!(
            matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut),
            "{e}"
        ),
        Ok(answer) => panic!("a stopped worker answered {answer:?}"),
    }
    wait_for_status(port, "/livez", 200, Duration::from_secs(60));

    // SIGTERM with Redis not answering: the worker cannot leave the queue,
    // so it stays draining until Redis is back, and says so.
    signal(redis.pid(), "STOP");
    worker.signal("TERM");
    wait_until("/readyz to say draining", Duration::from_secs(60), || {
        let (status, body) = probe("/readyz");
        assert!(status == 503 || body.trim() == "ready", "{status} {body}");
        body.contains("draining")
    });
    signal(redis.pid(), "CONT");
    let status = worker.wait_exit(Duration::from_secs(150));
    assert!(status.success(), "the worker exited with {status}");
}
