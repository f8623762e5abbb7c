//! The scoring cluster end to end, as separate processes: redis-server on a
//! free port, `dfscan-coordinator`, `dfscan worker`s and `dfscan submit`,
//! with real faults (SIGKILL, SIGSTOP, SIGTERM, Redis restarts). After each
//! scenario every item has exactly one result, completed + failed equals
//! the total, and the queue holds nothing more.

mod common;

use std::path::Path;
use std::process::{Child, Stdio};
use std::time::Duration;

use common::cluster::*;
use common::{dfscan, model_dir};

const LONG: Duration = Duration::from_secs(180);

fn stderr(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// Lines in the results file so far.
fn lines_in(path: &Path) -> usize {
    std::fs::read_to_string(path)
        .map(|s| s.lines().count())
        .unwrap_or(0)
}

/// Runs `submit` in the background.
fn spawn_submit(c: &Cluster, dir: &Path, output: &Path, extra: &[&str]) -> Child {
    c.submit_command(dir, output, extra)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

/// Waits for a background submit (killing it past `LONG`).
fn wait_submit(mut child: Child) -> std::process::Output {
    let deadline = std::time::Instant::now() + LONG;
    while child.try_wait().unwrap().is_none() {
        if std::time::Instant::now() > deadline {
            let _ = child.kill();
            let out = child.wait_with_output().unwrap();
            panic!("submit did not finish: {}", stderr(&out));
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    child.wait_with_output().unwrap()
}

fn finish_submit(child: Child) -> std::process::Output {
    let out = wait_submit(child);
    assert!(out.status.success(), "submit failed: {}", stderr(&out));
    out
}

/// The job id `submit` announced on stderr.
fn job_id(submit_stderr: &str) -> String {
    submit_stderr
        .lines()
        .find_map(|l| l.strip_prefix("job ")?.split([' ', ':']).next())
        .unwrap_or_else(|| panic!("no job line in: {submit_stderr}"))
        .to_string()
}

fn job_status(c: &Cluster, job: &str) -> serde_json::Value {
    let out = c.jobs(&["status", job]);
    assert!(out.status.success(), "{}", stderr(&out));
    serde_json::from_slice(&out.stdout).unwrap()
}

/// The job is finished with every item accounted for, and the results
/// file holds each of `n` images exactly once.
fn assert_complete(
    c: &Cluster,
    output: &Path,
    submit_stderr: &str,
    n: usize,
) -> Vec<serde_json::Value> {
    let lines = read_jsonl(output);
    assert_eq!(lines.len(), n, "one line per item");
    let ids = by_id(&lines);
    assert_eq!(ids.len(), n);
    let status = job_status(c, &job_id(submit_stderr));
    assert_eq!(status["total"], n as u64);
    assert_eq!(
        status["completed"].as_u64().unwrap() + status["failed"].as_u64().unwrap(),
        n as u64,
        "{status}"
    );
    assert_eq!(status["finished"], true);
    c.assert_drained();
    lines
}

fn errors(lines: &[serde_json::Value]) -> Vec<String> {
    lines
        .iter()
        .filter_map(|l| l["error"].as_str().map(str::to_string))
        .collect()
}

#[test]
fn three_workers_score_every_item_once_as_score_does() {
    let _one = exclusive();
    let tmp = tempfile::tempdir().unwrap();
    let images = write_images(tmp.path(), 2000);
    let mut c = Cluster::start(false, &[]);
    for _ in 0..3 {
        c.start_worker(&[]);
    }
    let output = tmp.path().join("results.jsonl");
    let out = c.submit(&images, &output, &[]);
    assert!(out.status.success(), "{}", stderr(&out));
    let lines = assert_complete(&c, &output, &stderr(&out), 2000);
    assert!(errors(&lines).is_empty());

    let reference = dfscan()
        .args(["score", "--format", "jsonl", "--threads", "1", "--model"])
        .arg(model_dir("tiny-a"))
        .arg(&images)
        .output()
        .unwrap();
    assert!(reference.status.success(), "{}", stderr(&reference));
    let cluster = by_id(&lines);
    let reference: Vec<serde_json::Value> = String::from_utf8(reference.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(reference.len(), 2000);
    for want in &reference {
        let path = want["path"].as_str().unwrap();
        let got = &cluster[path];
        assert_eq!(got["label"], want["label"], "{path}");
        assert_eq!(got["model"], want["model"], "{path}");
        for (label, p) in want["scores"].as_object().unwrap() {
            let q = got["scores"][label].as_f64().unwrap();
            assert!((q - p.as_f64().unwrap()).abs() < 1e-5, "{path} {label}");
        }
    }

    let models = c.command_output(&["models", "--coordinator", &c.url()]);
    for w in ["w0", "w1", "w2"] {
        let line = models
            .lines()
            .find(|l| l.starts_with(&format!("worker {w} ")))
            .unwrap_or_else(|| panic!("{w} not listed: {models}"));
        assert!(!line.contains(" 0 items"), "{w} scored nothing: {line}");
    }
}

#[test]
fn an_interrupted_submit_is_finished_by_attaching() {
    let _one = exclusive();
    let tmp = tempfile::tempdir().unwrap();
    let images = write_images(tmp.path(), 600);
    let mut c = Cluster::start(false, &[]);
    c.start_worker(&[]);
    let output = tmp.path().join("results.csv");
    let mut submit = spawn_submit(&c, &images, &output, &["--format", "csv"]);
    wait_until("first results", LONG, || lines_in(&output) >= 50);
    submit.kill().unwrap();
    let out = submit.wait_with_output().unwrap();
    let job = job_id(&stderr(&out));
    // A torn last line, as a crash mid-write leaves it.
    let mut partial = std::fs::OpenOptions::new()
        .append(true)
        .open(&output)
        .unwrap();
    std::io::Write::write_all(&mut partial, b"images/img-99999.png,Fa").unwrap();
    let url = c.url();
    let attach = c.command_status(&[
        "submit",
        "--coordinator",
        &url,
        "--attach",
        &job,
        "--format",
        "csv",
        "--output",
        output.to_str().unwrap(),
    ]);
    assert!(attach.success());
    let text = std::fs::read_to_string(&output).unwrap();
    let mut rows = text.lines();
    let header = rows.next().unwrap();
    assert!(
        header.starts_with("id,path,label,fake_score,score_"),
        "{header}"
    );
    let mut ids: Vec<&str> = rows.map(|r| r.split(',').next().unwrap()).collect();
    assert_eq!(ids.len(), 600, "one row per item");
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), 600, "no row twice");
    c.assert_drained();
}

#[test]
fn a_poison_task_is_dead_lettered_and_the_rest_completes() {
    let _one = exclusive();
    let tmp = tempfile::tempdir().unwrap();
    let images = write_images(tmp.path(), 100);
    let mut c = Cluster::start(false, &[]);
    let output = tmp.path().join("results.jsonl");
    let submit = spawn_submit(&c, &images, &output, &["--task-size", "10"]);
    let stream = c.task_stream();
    let mut r = c.redis();
    wait_until("the upload", LONG, || {
        redis::cmd("XLEN")
            .arg(&stream)
            .query::<u64>(&mut r)
            .unwrap()
            == 10
    });
    // Replace one task with a copy whose payload no worker can read.
    let entries: redis::streams::StreamRangeReply = redis::cmd("XRANGE")
        .arg(&stream)
        .arg("-")
        .arg("+")
        .arg("COUNT")
        .arg(1)
        .query(&mut r)
        .unwrap();
    let entry = &entries.ids[0];
    let field = |k: &str| -> Vec<u8> { redis::from_redis_value(entry.map[k].clone()).unwrap() };
    let _: u64 = redis::cmd("XDEL")
        .arg(&stream)
        .arg(&entry.id)
        .query(&mut r)
        .unwrap();
    let _: String = redis::cmd("XADD")
        .arg(&stream)
        .arg("*")
        .arg("job")
        .arg(field("job"))
        .arg("first")
        .arg(field("first"))
        .arg("n")
        .arg(field("n"))
        .arg("b")
        .arg(field("b"))
        .arg("p")
        .arg(&[0xffu8, 0xff, 0xff][..])
        .query(&mut r)
        .unwrap();
    c.start_worker(&[]);
    c.start_worker(&[]);
    let out = wait_submit(submit);
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
    // The dead-lettered items have no ids (their payload is unreadable):
    // check the others are unique and the counts add up.
    let lines = read_jsonl(&output);
    assert_eq!(lines.len(), 100);
    let named: Vec<serde_json::Value> = lines.iter().filter(|l| l["id"] != "").cloned().collect();
    assert_eq!(by_id(&named).len(), 90);
    let status = job_status(&c, &job_id(&stderr(&out)));
    assert_eq!(
        (status["completed"].as_u64(), status["failed"].as_u64()),
        (Some(90), Some(10))
    );
    c.assert_drained();
    let errors = errors(&lines);
    assert_eq!(errors.len(), 10, "the poison task's items fail");
    assert!(
        errors.iter().all(|e| e.contains("dead-lettered")),
        "{errors:?}"
    );
    let dead: u64 = redis::cmd("XLEN")
        .arg(format!("dfscan:dead:{{m:{}}}", c.model_name()))
        .query(&mut r)
        .unwrap();
    assert_eq!(dead, 1);
}

#[test]
fn cancelling_mid_job_fails_the_remaining_items() {
    let _one = exclusive();
    let tmp = tempfile::tempdir().unwrap();
    let images = write_images(tmp.path(), 3000);
    let mut c = Cluster::start(false, &[]);
    // One image per batch: slow enough to cancel mid-job.
    c.start_worker(&["--max-batch", "1"]);
    let output = tmp.path().join("results.jsonl");
    let submit = spawn_submit(&c, &images, &output, &[]);
    wait_until("first results", LONG, || lines_in(&output) >= 20);
    let job = c.jobs(&["list"]).stdout.clone();
    let job = job_id(&String::from_utf8(job).unwrap());
    let cancel = c.jobs(&["cancel", &job]);
    assert!(cancel.status.success(), "{}", stderr(&cancel));
    let out = wait_submit(submit);
    assert_eq!(
        out.status.code(),
        Some(3),
        "some items failed: {}",
        stderr(&out)
    );
    let lines = assert_complete(&c, &output, &stderr(&out), 3000);
    let errors = errors(&lines);
    assert!(
        !errors.is_empty() && errors.len() < 3000,
        "{}",
        errors.len()
    );
    assert!(errors.iter().all(|e| e == "job cancelled"));
    assert_eq!(job_status(&c, &job)["state"], "cancelled");
    let again = c.jobs(&["cancel", &job]);
    assert!(!again.status.success());
    assert!(
        stderr(&again).contains("FailedPrecondition") || stderr(&again).contains("precondition"),
        "{}",
        stderr(&again)
    );
}

/// ModelInfer calls go through the same Redis queue and workers as a bulk
/// job that is running, ahead of its remaining tasks: while a call waits,
/// the worker finishes only the bulk tasks it already held (its pipeline
/// depth), not the thousands still queued before the call's task.
#[test]
fn online_calls_overtake_a_running_job() {
    use dfscan_proto::inference::grpc_inference_service_client::GrpcInferenceServiceClient;
    use dfscan_proto::inference::{model_infer_request::InferInputTensor, ModelInferRequest};

    let _one = exclusive();
    let tmp = tempfile::tempdir().unwrap();
    let n = 3000;
    let images = write_images(tmp.path(), n);
    let mut c = Cluster::start(false, &[]);
    c.start_worker(&["--max-batch", "1"]);
    let output = tmp.path().join("results.jsonl");
    let submit = spawn_submit(&c, &images, &output, &[]);
    wait_until("first results", LONG, || lines_in(&output) >= 20);
    let job = job_id(&String::from_utf8(c.jobs(&["list"]).stdout).unwrap());
    let mut redis = c.redis();
    let mut done = || -> u64 {
        let counts: Vec<u64> = redis::cmd("HMGET")
            .arg(format!("dfscan:job:{{{job}}}"))
            .arg("completed")
            .arg("failed")
            .query(&mut redis)
            .unwrap();
        counts.iter().sum()
    };
    // Tasks a worker can hold when the call's task arrives: its in-hand
    // bound (prefetch 4 + 1 + 4 x max_batch 1), plus one claim of 5 under
    // way; tasks of 32 items.
    let pipeline_depth = (4 + 1 + 4 + 5) * 32;

    let image = std::fs::read(images.join("img-00000.png")).unwrap();
    let request = ModelInferRequest {
        model_name: c.model_name(),
        inputs: vec![InferInputTensor {
            name: "IMAGE".into(),
            datatype: "BYTES".into(),
            shape: vec![1],
            contents: Some(dfscan_proto::inference::InferTensorContents {
                bytes_contents: vec![image.into()],
                ..Default::default()
            }),
            ..Default::default()
        }],
        ..Default::default()
    };
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let mut client = runtime
        .block_on(GrpcInferenceServiceClient::connect(c.url()))
        .unwrap();
    for _ in 0..3 {
        let before = done();
        let response = runtime
            .block_on(client.model_infer(request.clone()))
            .unwrap()
            .into_inner();
        let during = done() - before;
        assert_eq!(response.outputs.len(), 2);
        assert_eq!(response.outputs[0].shape, [1, 2]);
        assert!(
            during <= pipeline_depth && before + during < n as u64,
            "the call waited behind queued bulk tasks: {during} bulk items were scored meanwhile"
        );
    }
    let cancel = c.jobs(&["cancel", &job]);
    assert!(cancel.status.success(), "{}", stderr(&cancel));
    wait_submit(submit);
    c.assert_drained();
}

#[test]
fn a_full_queue_refuses_the_job_and_keeps_nothing() {
    let _one = exclusive();
    let tmp = tempfile::tempdir().unwrap();
    let images = write_images(tmp.path(), 150);
    let mut c = Cluster::start(false, &[("DFSCAN_QUEUE__MAX_QUEUED_ITEMS", "100")]);
    let output = tmp.path().join("results.jsonl");
    let out = c.submit(&images, &output, &[]);
    assert_eq!(out.status.code(), Some(1));
    let message = stderr(&out);
    assert!(
        message.contains("ResourceExhausted") && message.contains("full"),
        "{message}"
    );
    let listed = c.jobs(&["list"]);
    assert!(listed.stdout.is_empty(), "no job left behind");
    c.assert_drained();
    // Backpressure, not a failure: a job that fits goes through.
    let small = write_images(&tmp.path().join("small"), 50);
    c.start_worker(&[]);
    let out = c.submit(&small, &tmp.path().join("small.jsonl"), &[]);
    assert!(out.status.success(), "{}", stderr(&out));
}

/// Submits `n` images to a cluster of `workers` workers (Redis with AOF when
/// `aof`), applies `fault` once results are flowing, and checks that the
/// job completes with every image scored exactly once.
fn survives(n: usize, workers: usize, aof: bool, fault: impl FnOnce(&mut Cluster)) {
    let _one = exclusive();
    let tmp = tempfile::tempdir().unwrap();
    let images = write_images(tmp.path(), n);
    let mut c = Cluster::start(aof, &[]);
    for _ in 0..workers {
        c.start_worker(&[]);
    }
    let output = tmp.path().join("results.jsonl");
    let submit = spawn_submit(&c, &images, &output, &[]);
    wait_until("first results", LONG, || lines_in(&output) >= n / 10);
    fault(&mut c);
    let out = finish_submit(submit);
    let lines = assert_complete(&c, &output, &stderr(&out), n);
    assert!(errors(&lines).is_empty(), "{:?}", errors(&lines));
}

#[test]
fn a_worker_killed_mid_batch_loses_nothing() {
    survives(1000, 2, false, |c| c.workers[0].kill9());
}

#[test]
fn a_worker_paused_past_the_visibility_timeout_counts_once() {
    survives(1000, 2, false, |c| {
        c.workers[0].signal("STOP");
        // Twice the visibility timeout: its tasks move to the other worker,
        // and what it completes after waking up counts for nothing.
        std::thread::sleep(Duration::from_secs(4));
        c.workers[0].signal("CONT");
    });
}

/// The deployed coordinator never maps libtorch, which keeps its memory
/// and container image small (measured in benches/cluster.rs); the
/// all-in-one `dfscan coordinator` does, which shows the check can fail.
#[test]
fn the_coordinator_binary_does_not_load_libtorch() {
    let _one = exclusive();
    let mut c = Cluster::start(false, &[]);
    let maps = |c: &Cluster| {
        let pid = c.coordinator.as_ref().unwrap().pid();
        std::fs::read_to_string(format!("/proc/{pid}/maps")).unwrap()
    };
    let standalone = maps(&c);
    assert!(standalone.contains("/dfscan-coordinator"), "{standalone}");
    assert!(!standalone.contains("libtorch"), "{standalone}");
    c.coordinator.as_mut().unwrap().kill9();
    c.start_coordinator(true);
    assert!(maps(&c).contains("libtorch_cpu"));
}

#[test]
fn results_resume_across_a_coordinator_restart() {
    survives(1000, 1, false, |c| {
        c.coordinator.as_mut().unwrap().kill9();
        std::thread::sleep(Duration::from_millis(500));
        // Back as `dfscan coordinator`: the all-in-one binary's subcommand
        // is the same process, on the same queue, with the same config.
        c.start_coordinator(true);
    });
}

#[test]
fn a_redis_restart_mid_job_loses_nothing() {
    survives(1000, 2, true, |c| {
        c.redis.kill();
        std::thread::sleep(Duration::from_secs(1));
        c.redis.restart();
    });
}

#[test]
fn sigterm_drains_a_worker_within_its_grace_period() {
    survives(600, 1, false, |c| {
        c.workers[0].signal("TERM");
        // The default grace is 30 s; draining a few tasks takes far less.
        let status = c.workers[0].wait_exit(Duration::from_secs(35));
        assert!(status.success(), "{status}");
        // It left nothing claimed: its tasks were completed, not dropped.
        assert_eq!(c.tasks_held("w0"), 0, "w0 still holds tasks");
        c.start_worker(&[]);
    });
}
