//! Verdict policies and signed callbacks end to end: `dfscan serve` with
//! callbacks allowed to a webhook receiver the test runs, `dfscan submit
//! --verdicts ... --callback-url ... --item-callbacks flag`. The receiver
//! refuses every delivery twice; each must still arrive, correctly signed,
//! and the verdicts must be those the thresholds give `dfscan score`'s
//! fake scores. A video's item callback carries its timeline (media,
//! duration_s, frames, tracks) as `dfscan score`'s JSON line does.

mod common;

use std::collections::{BTreeMap, HashMap};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::cluster::{read_jsonl, wait_for_port, wait_until, write_images, Proc};
use common::{assert_json_close, dfscan, face_video, model_dir, score_jsonl};
use dfscan_testkit::free_port;
use hmac::{Hmac, Mac};
use serde_json::Value;
use sha2::Sha256;

const SECRET: &str = "webhook-test-secret";

/// One POST the receiver saw, and whether it accepted it.
#[derive(Clone, Debug)]
struct Delivery {
    headers: HashMap<String, String>,
    body: Vec<u8>,
    accepted: bool,
}

/// An HTTP receiver that answers 500 to the first two attempts of each
/// delivery (by `X-Dfscan-Delivery`) and 200 after.
fn start_receiver() -> (u16, Arc<Mutex<Vec<Delivery>>>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let log = Arc::clone(&seen);
    std::thread::spawn(move || {
        let mut attempts: HashMap<String, u32> = HashMap::new();
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            let mut line = String::new();
            reader.read_line(&mut line).unwrap();
            let mut headers = HashMap::new();
            loop {
                let mut header = String::new();
                reader.read_line(&mut header).unwrap();
                let header = header.trim_end();
                if header.is_empty() {
                    break;
                }
                let (name, value) = header.split_once(':').unwrap();
                headers.insert(name.trim().to_ascii_lowercase(), value.trim().to_string());
            }
            let length: usize = headers["content-length"].parse().unwrap();
            let mut body = vec![0; length];
            reader.read_exact(&mut body).unwrap();
            let tries = attempts
                .entry(headers["x-dfscan-delivery"].clone())
                .or_default();
            *tries += 1;
            let accepted = *tries > 2;
            let status = if accepted {
                "200 OK"
            } else {
                "500 Internal Server Error"
            };
            write!(
                stream,
                "HTTP/1.1 {status}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
            )
            .unwrap();
            log.lock().unwrap().push(Delivery {
                headers,
                body,
                accepted,
            });
        }
    });
    (port, seen)
}

fn signature(body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(SECRET.as_bytes()).unwrap();
    mac.update(body);
    let hex: String = mac
        .finalize()
        .into_bytes()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    format!("sha256={hex}")
}

#[test]
fn verdicts_follow_the_thresholds_and_callbacks_survive_a_failing_receiver() {
    let tmp = tempfile::tempdir().unwrap();
    let images = write_images(tmp.path(), 40);
    let model = model_dir("tiny-a");
    let model_arg = model.to_str().unwrap();

    // Thresholds from the scores themselves, so every verdict occurs.
    let scores: BTreeMap<String, f32> = score_jsonl(&model, &images, &[])
        .into_iter()
        .map(|row| {
            let path = row["path"].as_str().unwrap().to_string();
            (path, row["fake_score"].as_f64().unwrap() as f32)
        })
        .collect();
    let mut sorted: Vec<f32> = scores.values().copied().collect();
    sorted.sort_by(f32::total_cmp);
    // Midway between neighbours: the served scores come from other batch
    // compositions and thread counts, so they may differ from these in the
    // last bits, which must not move an image across a threshold.
    let between = |i: usize| (sorted[i - 1] + sorted[i]) / 2.0;
    let (flag, review) = (between(36), between(20));
    assert!(
        sorted[35] + 1e-5 < sorted[36] && sorted[19] + 1e-5 < sorted[20] && flag > review,
        "the tiny model's scores are too alike: {sorted:?}"
    );
    let expected = |score: f32| match score {
        s if s >= flag => "flag",
        s if s >= review => "review",
        _ => "pass",
    };

    let (hook_port, log) = start_receiver();
    let port = free_port();
    let listen = format!("127.0.0.1:{port}");
    let mut serve = dfscan();
    serve
        .args(["serve", "--listen", &listen, "--model", model_arg])
        .args(["--threads", "1", "--decode-threads", "1"])
        .env(
            "DFSCAN_COORDINATOR__CALLBACK_HOSTS",
            format!("127.0.0.1:{hook_port}"),
        )
        .env("DFSCAN_COORDINATOR__CALLBACK_SECRET", SECRET)
        .env("DFSCAN_VIDEO__FRAMES", "4");
    let _serve = Proc::spawn("serve", serve);
    wait_for_port(port);
    let coordinator = format!("http://{listen}");

    // A callback to a host not allowed is refused before anything is queued.
    let refused = dfscan()
        .args(["submit", "--coordinator", &coordinator, "--callback-url"])
        .arg("http://169.254.169.254/latest")
        .arg(&images)
        .output()
        .unwrap();
    assert!(!refused.status.success());
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(stderr.contains("is not allowed"), "{stderr}");

    let output = tmp.path().join("results.jsonl");
    let hook = format!("http://127.0.0.1:{hook_port}/hook");
    let verdicts = format!("flag={flag},review={review},pass");
    let submit = dfscan()
        .args(["submit", "--coordinator", &coordinator, "--output"])
        .arg(&output)
        .args(["--verdicts", &verdicts, "--callback-url", &hook])
        .args([
            "--item-callbacks",
            "flag",
            "--metadata",
            "team=trust-and-safety",
        ])
        .arg(&images)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&submit.stderr).into_owned();
    assert!(submit.status.success(), "{stderr}");

    // Each result's verdict is the thresholds applied to its score.
    let mut counts: BTreeMap<&str, u64> = BTreeMap::new();
    let mut flagged = Vec::new();
    for line in read_jsonl(&output) {
        let id = line["id"].as_str().unwrap();
        let verdict = expected(scores[id]);
        assert_eq!(line["verdict"], verdict, "{id}: fake_score {}", scores[id]);
        *counts.entry(verdict).or_default() += 1;
        if verdict == "flag" {
            flagged.push(id.to_string());
        }
    }
    let summary = format!(
        "verdicts: flag {}, pass {}, review {}",
        counts["flag"], counts["pass"], counts["review"]
    );
    assert!(stderr.contains(&summary), "{stderr}\nexpected {summary}");

    // The job's summary arrives after two refusals, signed, with the counts.
    wait_until("the job callback", Duration::from_secs(60), || {
        log.lock()
            .unwrap()
            .iter()
            .any(|d| d.accepted && d.headers["x-dfscan-event"] == "job")
    });
    let deliveries = log.lock().unwrap().clone();
    for delivery in &deliveries {
        assert_eq!(
            delivery.headers["x-dfscan-signature"],
            signature(&delivery.body)
        );
        assert_eq!(delivery.headers["content-type"], "application/json");
    }
    let accepted: Vec<Value> = deliveries
        .iter()
        .filter(|d| d.accepted)
        .map(|d| serde_json::from_slice(&d.body).unwrap())
        .collect();
    let job = accepted.iter().find(|b| b["event"] == "job").unwrap();
    assert_eq!(job["state"], "completed");
    assert_eq!(job["total"], 40);
    assert_eq!(job["metadata"]["team"], "trust-and-safety");
    for (verdict, count) in &counts {
        assert_eq!(job["verdicts"][verdict], *count, "{verdict}");
    }
    let refusals = deliveries.iter().filter(|d| !d.accepted).count();
    assert_eq!(
        refusals,
        2 * (flagged.len() + 1),
        "two refusals per delivery"
    );

    // One item callback per flagged item, as its result arrived.
    let mut items: Vec<String> = accepted
        .iter()
        .filter(|b| b["event"] == "item")
        .map(|b| {
            assert_eq!(b["verdict"], "flag");
            assert_eq!(b["job_metadata"]["team"], "trust-and-safety");
            b["id"].as_str().unwrap().to_string()
        })
        .collect();
    items.sort();
    flagged.sort();
    assert_eq!(items, flagged);

    // A video, flagged whatever its score: its item callback carries what
    // its JSON line does, within what other batchings and processes change.
    let video = face_video();
    let submit = dfscan()
        .args(["submit", "--coordinator", &coordinator, "--output"])
        .arg(tmp.path().join("video.jsonl"))
        .args(["--verdicts", "flag=0,pass", "--callback-url", &hook])
        .args(["--item-callbacks", "flag"])
        .arg(video)
        .output()
        .unwrap();
    assert!(
        submit.status.success(),
        "{}",
        String::from_utf8_lossy(&submit.stderr)
    );
    let video_item = || {
        log.lock()
            .unwrap()
            .iter()
            .filter(|d| d.accepted && d.headers["x-dfscan-event"] == "item")
            .map(|d| serde_json::from_slice::<Value>(&d.body).unwrap())
            .find(|b| b["media"] == "video")
    };
    wait_until("the video's item callback", Duration::from_secs(60), || {
        video_item().is_some()
    });
    let item = video_item().unwrap();
    let line = &score_jsonl(&model, video, &["--frames", "4"])[0];
    assert_eq!(line["media"], "video", "{line}");
    let facts = |v: &Value| {
        serde_json::json!({
            "media": v["media"], "duration_s": v["duration_s"], "outcome": v["outcome"],
            "label": v["label"], "scores": v["scores"], "fake_score": v["fake_score"],
            "frames": v["frames"], "tracks": v["tracks"], "face_detector": v["face_detector"],
        })
    };
    assert_json_close(&facts(&item), &facts(line), 1e-3, "callback vs score");
    assert_eq!(item["frames"].as_array().unwrap().len(), 4, "{item}");
    assert!(
        item["faces"].is_null() && item.get("partial").is_none(),
        "{item}"
    );
}
