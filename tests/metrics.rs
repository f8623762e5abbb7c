//! `/metrics` after a job: `dfscan serve` with `metrics.listen` set runs a
//! coordinator and a worker in one process, and one scrape must report
//! exactly what the job did (items scored and failed, tasks, batches,
//! decodes) and the queue's state after it, under the names README's
//! table lists.

mod common;

use std::collections::{BTreeSet, HashMap};
use std::io::{Read, Write};
use std::net::TcpStream;

use common::cluster::{wait_for_port, write_images, Proc};
use common::{dfscan, model_dir, repo};
use dfscan_testkit::free_port;

/// The body of a scrape, checked to be one OpenMetrics exposition.
fn scrape(port: u16) -> String {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).unwrap();
    write!(
        stream,
        "GET /metrics HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    let (head, body) = response.split_once("\r\n\r\n").unwrap();
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    assert!(
        head.to_ascii_lowercase()
            .contains("application/openmetrics-text"),
        "{head}"
    );
    assert!(body.trim_end().ends_with("# EOF"), "{body}");
    assert_eq!(body.matches("# EOF").count(), 1, "{body}");
    body.to_string()
}

/// The samples of an exposition: `name{labels}` → value.
fn samples(body: &str) -> HashMap<String, f64> {
    body.lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .map(|l| {
            let (name, value) = l.rsplit_once(' ').unwrap();
            (name.to_string(), value.parse().unwrap())
        })
        .collect()
}

/// The metrics an exposition declares (`# TYPE`), as `(name, type)` with
/// a counter's samples' `_total`: the names a query uses.
fn declared(body: &str) -> BTreeSet<(String, String)> {
    body.lines()
        .filter_map(|l| l.strip_prefix("# TYPE "))
        .map(|l| {
            let (name, kind) = l.split_once(' ').unwrap();
            let name = match kind {
                "counter" => format!("{name}_total"),
                _ => name.to_string(),
            };
            (name, kind.to_string())
        })
        .collect()
}

/// README's naming scheme: the prefix says where a value comes from, times
/// are `_duration_seconds`, and only counters end in `_total`.
fn follows_the_scheme(name: &str, kind: &str) -> bool {
    ["dfscan_coordinator_", "dfscan_queue_", "dfscan_worker_"]
        .iter()
        .any(|prefix| name.starts_with(prefix))
        && (kind == "counter") == name.ends_with("_total")
        && (!name.ends_with("_seconds") || name.ends_with("_duration_seconds"))
}

/// The metrics README's table lists, as `(name, type)`.
fn documented() -> BTreeSet<(String, String)> {
    let readme = std::fs::read_to_string(repo().join("README.md")).unwrap();
    readme
        .lines()
        .filter_map(|l| l.strip_prefix("| `dfscan_"))
        .map(|row| {
            let cells: Vec<&str> = row.split('|').map(str::trim).collect();
            let name = format!("dfscan_{}", cells[0].trim_end_matches('`'));
            (name, cells[1].to_string())
        })
        .collect()
}

/// The one sample whose name starts with `name` and carries every label.
fn sample(samples: &HashMap<String, f64>, name: &str, labels: &[&str]) -> f64 {
    let found: Vec<f64> = samples
        .iter()
        .filter(|(k, _)| k.split('{').next() == Some(name) && labels.iter().all(|l| k.contains(l)))
        .map(|(_, v)| *v)
        .collect();
    assert_eq!(found.len(), 1, "{name} {labels:?} in {samples:#?}");
    found[0]
}

#[test]
fn a_scrape_after_a_job_counts_what_the_job_did() {
    let tmp = tempfile::tempdir().unwrap();
    let images = write_images(tmp.path(), 28);
    std::fs::write(images.join("broken-1.png"), b"not a png").unwrap();
    std::fs::write(images.join("broken-2.jpg"), b"").unwrap();
    let model = model_dir("tiny-a");
    let (port, metrics_port) = (free_port(), free_port());
    let listen = format!("127.0.0.1:{port}");
    let mut serve = dfscan();
    serve
        .args([
            "serve",
            "--listen",
            &listen,
            "--model",
            model.to_str().unwrap(),
        ])
        .args([
            "--threads",
            "1",
            "--decode-threads",
            "1",
            "--max-batch",
            "8",
        ])
        .env(
            "DFSCAN_METRICS__LISTEN",
            format!("127.0.0.1:{metrics_port}"),
        );
    let _serve = Proc::spawn("serve", serve);
    wait_for_port(port);
    wait_for_port(metrics_port);

    let output = tmp.path().join("results.jsonl");
    let submit = dfscan()
        .args([
            "submit",
            "--coordinator",
            &format!("http://{listen}"),
            "--output",
        ])
        .arg(&output)
        .args(["--task-size", "4"])
        .arg(&images)
        .output()
        .unwrap();
    assert_eq!(submit.status.code(), Some(3), "two items fail");

    let body = scrape(metrics_port);
    // Families with no sample yet (callbacks, ModelInfer, GPU memory) are
    // not declared; the others must be under the documented names.
    let documented = documented();
    let undocumented: Vec<_> = declared(&body).difference(&documented).cloned().collect();
    assert!(undocumented.is_empty(), "not in README: {undocumented:?}");
    for (name, kind) in &documented {
        assert!(follows_the_scheme(name, kind), "{name} ({kind})");
    }
    let m = samples(&body);
    let model = "model=\"tiny-a\"";
    assert_eq!(
        sample(&m, "dfscan_coordinator_jobs_submitted_total", &[model]),
        1.0
    );
    assert_eq!(
        sample(&m, "dfscan_coordinator_items_submitted_total", &[model]),
        30.0
    );
    assert_eq!(
        sample(&m, "dfscan_queue_jobs", &["state=\"completed\""]),
        1.0
    );
    assert_eq!(sample(&m, "dfscan_queue_items", &[model]), 0.0);
    assert_eq!(sample(&m, "dfscan_queue_workers", &[model]), 1.0);
    let scored = sample(
        &m,
        "dfscan_worker_items_total",
        &[model, "outcome=\"scored\""],
    );
    let failed = sample(
        &m,
        "dfscan_worker_items_total",
        &[model, "outcome=\"failed\""],
    );
    assert_eq!((scored, failed), (28.0, 2.0));
    // 30 items in tasks of 4.
    assert_eq!(sample(&m, "dfscan_worker_tasks_total", &[model]), 8.0);
    assert_eq!(
        sample(
            &m,
            "dfscan_worker_queue_wait_duration_seconds_count",
            &[model]
        ),
        8.0
    );
    assert_eq!(
        sample(
            &m,
            "dfscan_worker_end_to_end_duration_seconds_count",
            &[model]
        ),
        8.0
    );
    assert_eq!(
        sample(&m, "dfscan_worker_decode_duration_seconds_count", &[model]),
        30.0
    );
    // Only decodable images reach the model.
    assert_eq!(sample(&m, "dfscan_worker_batch_size_sum", &[model]), 28.0);
    let batches = sample(&m, "dfscan_worker_batch_size_count", &[model]);
    assert!(
        (4.0..=28.0).contains(&batches),
        "{batches} batches of at most 8"
    );
    assert_eq!(
        sample(
            &m,
            "dfscan_worker_inference_duration_seconds_count",
            &[model]
        ),
        batches
    );
    assert_eq!(sample(&m, "dfscan_worker_tasks_in_hand", &[model]), 0.0);
    // A CPU worker asks no GPU driver and exports no GPU memory.
    assert!(!m.keys().any(|k| k.starts_with("dfscan_worker_gpu_memory")));
}
