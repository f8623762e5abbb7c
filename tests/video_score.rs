//! `dfscan score` on videos, made here with the `ffmpeg` CLI: one result
//! per video with its timeline (each sampled frame's real presentation
//! time, its faces and score), its face tracks and its verdict; videos are
//! told from images by content (an image named `.mp4` is an image, a video
//! named `.jpg` a video); a faceless video is scored on whole frames
//! (`auto`) or has no face (`require`); a truncated video gives what could
//! be sampled or a clear error, and the run goes on. The cluster scores
//! videos as `score` does, also when a worker is killed in the middle of
//! one.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use std::time::Duration;

use common::cluster::{by_id, read_jsonl, wait_until, Cluster};
use dfscan_testkit::ffmpeg;
use serde_json::Value;
use sha2::{Digest, Sha256};

/// The videos, made once per test binary.
fn videos() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let astronaut = common::sample_photo("astronaut")
            .to_string_lossy()
            .into_owned();
        let mut hash = Sha256::new();
        hash.update(std::fs::read(file!()).unwrap_or_default());
        hash.update(astronaut.as_bytes());
        common::generated_dir("videos", hash, |dir| {
            std::fs::create_dir_all(dir).unwrap();
            let at = |name: &str| dir.join(name).to_str().unwrap().to_string();
            // The astronaut, slowly zooming: one face throughout, 4 s.
            ffmpeg(&[
                "-loop",
                "1",
                "-i",
                &astronaut,
                "-vf",
                "scale=512:512,zoompan=z='1+0.002*in':d=1:s=512x512",
                "-t",
                "4",
                "-r",
                "25",
                "-c:v",
                "libx264",
                "-pix_fmt",
                "yuv420p",
                "-g",
                "25",
                &at("face.mp4"),
            ]);
            // No face: a test pattern, VP9 in WebM.
            ffmpeg(&[
                "-f",
                "lavfi",
                "-i",
                "testsrc2=size=320x240:rate=25:duration=2",
                "-c:v",
                "libvpx-vp9",
                "-b:v",
                "200k",
                &at("pattern.webm"),
            ]);
            // Lossless RGB (FFV1 in Matroska) and H.264 4:2:0 of the same
            // moving pattern, for frame parity.
            ffmpeg(&[
                "-f",
                "lavfi",
                "-i",
                "testsrc2=size=256x192:rate=10:duration=3",
                "-c:v",
                "ffv1",
                "-pix_fmt",
                "bgr0",
                &at("lossless.mkv"),
            ]);
            ffmpeg(&[
                "-f",
                "lavfi",
                "-i",
                "testsrc2=size=256x192:rate=10:duration=3",
                "-c:v",
                "libx264",
                "-pix_fmt",
                "yuv420p",
                "-g",
                "7",
                &at("h264.mp4"),
            ]);
            std::fs::copy(&astronaut, at("image.mp4")).unwrap();
            std::fs::copy(at("face.mp4"), at("video.jpg")).unwrap();
            let whole = std::fs::read(at("face.mp4")).unwrap();
            std::fs::write(at("truncated.mp4"), &whole[..whole.len() / 2]).unwrap();
        })
    })
}

fn score(names: &[&str], extra: &[&str]) -> Vec<Value> {
    let out = common::dfscan()
        .args([
            "score", "--format", "jsonl", "--device", "cpu", "--frames", "8", "--model",
        ])
        .arg(common::model_dir("tiny-a"))
        .args(extra)
        .args(names.iter().map(|n| videos().join(n)))
        .output()
        .unwrap();
    let lines: Vec<Value> = String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(
        lines.len(),
        names.len(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    lines
}

fn frames(line: &Value) -> &Vec<Value> {
    line["frames"]
        .as_array()
        .unwrap_or_else(|| panic!("no frames in {line}"))
}

#[test]
fn a_video_has_one_result_with_its_timeline_and_tracks() {
    let line = &score(&["face.mp4"], &[])[0];
    assert_eq!(line["media"], "video", "{line}");
    assert_eq!(line["outcome"], "scored");
    assert!(
        (line["duration_s"].as_f64().unwrap() - 4.0).abs() < 0.05,
        "{line}"
    );
    let frames = frames(line);
    assert_eq!(frames.len(), 8);
    let times: Vec<f64> = frames.iter().map(|f| f["t"].as_f64().unwrap()).collect();
    assert!(times.windows(2).all(|w| w[1] > w[0]), "{times:?}");
    // Each frame is the first at or after the middle of its eighth of the
    // timeline, at 25 frames per second.
    for (i, t) in times.iter().enumerate() {
        let target = 4.0 * (i as f64 + 0.5) / 8.0;
        assert!(
            *t >= target - 1e-6 && *t < target + 0.04 + 1e-6,
            "frame {i} at {t}, target {target}"
        );
    }
    assert!(
        frames
            .iter()
            .all(|f| f["faces"].as_array().unwrap().len() == 1),
        "{line}"
    );
    let tracks = line["tracks"].as_array().unwrap();
    assert_eq!(tracks.len(), 1, "one face, one track: {tracks:?}");
    assert_eq!(tracks[0]["frames"], 8);
    assert_eq!(tracks[0]["fake_score"], line["fake_score"]);
    assert!(line["face_detector"]["sha256"].is_string());
}

#[test]
fn videos_and_images_are_told_apart_by_content() {
    let lines = score(&["image.mp4", "video.jpg"], &[]);
    assert_eq!(lines[0]["media"], "image", "{}", lines[0]);
    assert!(lines[0]["faces"].is_array());
    assert_eq!(lines[1]["media"], "video", "{}", lines[1]);
    assert_eq!(frames(&lines[1]).len(), 8);
}

#[test]
fn a_faceless_video_is_scored_on_whole_frames_or_has_no_face() {
    let auto = &score(&["pattern.webm"], &[])[0];
    assert_eq!(auto["outcome"], "whole_image", "{auto}");
    assert!(auto["fake_score"].is_number());
    assert!(frames(auto)
        .iter()
        .all(|f| f["outcome"] == "whole_image" && f["fake_score"].is_number()));
    assert_eq!(auto["tracks"], serde_json::json!([]));
    let require = &score(&["pattern.webm"], &["--faces", "require"])[0];
    assert_eq!(require["outcome"], "no_face", "{require}");
    assert!(require["fake_score"].is_null() && require["error"].is_null());
    let off = &score(&["pattern.webm"], &["--faces", "off"])[0];
    assert_eq!(off["outcome"], "scored", "{off}");
    assert!(off.get("face_detector").is_none());
}

#[test]
fn a_truncated_video_gives_what_it_has_and_the_run_goes_on() {
    let lines = score(&["truncated.mp4", "face.mp4"], &[]);
    let cut = &lines[0];
    match cut["outcome"].as_str().unwrap() {
        // The second half of the frames is gone: a partial result says so.
        "scored" => {
            assert!(cut["partial"].is_string(), "{cut}");
            assert!(frames(cut).len() < 8, "{cut}");
        }
        "error" => assert!(cut["error"].as_str().unwrap().contains("video"), "{cut}"),
        other => panic!("{other}: {cut}"),
    }
    assert_eq!(lines[1]["outcome"], "scored");
}

#[test]
fn the_cluster_scores_a_video_as_score_does() {
    let _one = common::cluster::exclusive();
    let local = &score(&["face.mp4"], &[])[0];
    let tmp = tempfile::tempdir().unwrap();
    let inputs = tmp.path().join("in");
    std::fs::create_dir(&inputs).unwrap();
    std::fs::copy(videos().join("face.mp4"), inputs.join("face.mp4")).unwrap();
    let mut cluster = Cluster::start(false, &[("DFSCAN_VIDEO__FRAMES", "8")]);
    cluster.start_worker(&[]);
    let output = tmp.path().join("out.jsonl");
    let out = cluster.submit(&inputs, &output, &["--format", "jsonl"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let remote = &read_jsonl(&output)[0];
    // Other batchings, other processes: probabilities and boxes within 1e-3.
    common::assert_json_close(&facts(remote), &facts(local), 1e-3, "cluster vs score");
}

/// What a video's result from the cluster must share with `score`'s.
fn facts(v: &Value) -> Value {
    serde_json::json!({
        "media": v["media"], "duration_s": v["duration_s"], "outcome": v["outcome"],
        "label": v["label"], "scores": v["scores"], "frames": v["frames"], "tracks": v["tracks"],
        "face_detector": v["face_detector"],
    })
}

/// A worker killed (SIGKILL) in the middle of a job of videos, one video
/// per task: frozen (SIGSTOP) once it has recorded one video and holds
/// another unfinished, so the kill lands mid-video whatever the machine's
/// load, then killed; a second worker takes the held tasks over after the
/// visibility timeout. Every video has exactly one result, as `score`
/// gives it, and the queue is left empty.
#[test]
fn a_worker_killed_mid_video_loses_nothing_and_repeats_nothing() {
    let _one = common::cluster::exclusive();
    let tmp = tempfile::tempdir().unwrap();
    let inputs = tmp.path().join("in");
    std::fs::create_dir(&inputs).unwrap();
    let sources = [
        "face.mp4",
        "face.mp4",
        "face.mp4",
        "face.mp4",
        "pattern.webm",
        "h264.mp4",
    ];
    for (i, source) in sources.iter().enumerate() {
        std::fs::copy(videos().join(source), inputs.join(format!("{i}-{source}"))).unwrap();
    }
    let name = |v: &Value| {
        let path = Path::new(v["path"].as_str().or(v["id"].as_str()).unwrap());
        path.file_name().unwrap().to_string_lossy().into_owned()
    };
    let local: std::collections::HashMap<String, Value> = common::score_jsonl(
        &common::model_dir("tiny-a"),
        &inputs,
        &["--device", "cpu", "--frames", "8"],
    )
    .into_iter()
    .map(|v| (name(&v), v))
    .collect();
    assert_eq!(local.len(), sources.len());

    let mut cluster = Cluster::start(false, &[("DFSCAN_VIDEO__FRAMES", "8")]);
    cluster.start_worker(&[]);
    let output = tmp.path().join("out.jsonl");
    let mut submit = cluster
        .submit_command(&inputs, &output, &["--format", "jsonl", "--task-size", "1"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let recorded = || {
        std::fs::read_to_string(&output)
            .map(|s| s.lines().count())
            .unwrap_or(0)
    };
    wait_until(
        "w0 to hold an unfinished video",
        Duration::from_secs(300),
        || {
            let done = recorded();
            assert!(
                done < sources.len(),
                "w0 finished every video before it was caught in one"
            );
            if done == 0 || cluster.tasks_held("w0") == 0 {
                return false;
            }
            // Stopped, it can neither finish what it holds nor claim more.
            cluster.workers[0].stop();
            let holds = cluster.tasks_held("w0") > 0;
            if !holds {
                cluster.workers[0].signal("CONT");
            }
            holds
        },
    );
    cluster.workers[0].kill9();
    // A dead consumer's claims stay until another worker takes them over.
    assert!(cluster.tasks_held("w0") > 0, "w0 died holding no task");
    cluster.start_worker(&[]);

    wait_until("the job to finish", Duration::from_secs(300), || {
        submit.try_wait().unwrap().is_some()
    });
    let out = submit.wait_with_output().unwrap();
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{said}");
    // Each video once (by_id panics on a repeated id), none missing.
    let remote = by_id(&read_jsonl(&output));
    assert_eq!(remote.len(), sources.len(), "{remote:?}");
    for (id, got) in &remote {
        common::assert_json_close(&facts(got), &facts(&local[&name(got)]), 1e-3, id);
    }
    // The job's counts took each video once too.
    let job = said
        .lines()
        .find_map(|l| l.strip_prefix("job ")?.split([' ', ':']).next())
        .unwrap_or_else(|| panic!("no job line in: {said}"));
    let status: Value = serde_json::from_slice(&cluster.jobs(&["status", job]).stdout).unwrap();
    assert_eq!(status["total"], sources.len(), "{status}");
    assert_eq!(status["completed"], sources.len(), "{status}");
    assert_eq!(status["failed"], 0, "{status}");
    cluster.assert_drained();
}

/// Each sampled frame's probabilities against the transformers pipeline on
/// the same frame cut by the `ffmpeg` CLI at the reported time (to PNG):
/// within 1e-3 for a lossless video, 1e-2 for H.264 in 4:2:0 (the colour
/// conversion may round differently).
#[test]
fn each_frame_scores_as_the_pipeline_scores_the_cli_s_frame() {
    for (name, tolerance) in [("lossless.mkv", 1e-3), ("h264.mp4", 1e-2)] {
        let line = &score(&[name], &["--faces", "off"])[0];
        let frames = frames(line);
        assert_eq!(frames.len(), 8, "{line}");
        let tmp = tempfile::tempdir().unwrap();
        for (i, frame) in frames.iter().enumerate() {
            let t = frame["t"].as_f64().unwrap();
            let png = tmp.path().join(format!("{i:02}.png"));
            ffmpeg(&[
                "-ss",
                &format!("{t:.6}"),
                "-i",
                videos().join(name).to_str().unwrap(),
                "-frames:v",
                "1",
                png.to_str().unwrap(),
            ]);
        }
        let reference = common::run_ok(
            Command::new(common::python())
                .arg(common::repo().join("tests/tools/hf_predict.py"))
                .arg(common::model_dir("tiny-a"))
                .arg(tmp.path()),
        );
        let reference: Value = serde_json::from_slice(&reference.stdout).unwrap();
        for (i, frame) in frames.iter().enumerate() {
            let want = &reference[format!("{i:02}.png")]["probs"];
            let got = [
                frame["scores"]["Real"].as_f64().unwrap(),
                frame["scores"]["Fake"].as_f64().unwrap(),
            ];
            for (g, w) in got.iter().zip(want.as_array().unwrap()) {
                let w = w.as_f64().unwrap();
                assert!(
                    (g - w).abs() <= tolerance,
                    "{name} frame {i} at {}: {got:?} vs {want}",
                    frame["t"]
                );
            }
        }
    }
}

#[test]
fn eval_takes_videos_in_label_folders() {
    let tmp = tempfile::tempdir().unwrap();
    for (label, name) in [("Real", "pattern.webm"), ("Fake", "face.mp4")] {
        std::fs::create_dir(tmp.path().join(label)).unwrap();
        std::fs::copy(videos().join(name), tmp.path().join(label).join(name)).unwrap();
    }
    let out = common::run_ok(
        common::dfscan()
            .args([
                "eval", "--json", "--device", "cpu", "--frames", "4", "--model",
            ])
            .arg(common::model_dir("tiny-a"))
            .arg(tmp.path()),
    );
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["total"], 2, "both videos are scored: {report}");
    assert_eq!(report["macro_avg"]["support"], 2, "{report}");
}

/// An item naming a video by URI (under the worker's `uri_roots`) is
/// opened by the decoder from its path, not read whole under the image
/// byte limit: with that limit at 1 KB, the video still scores, and an
/// image by URI is still held to it.
#[test]
fn a_worker_opens_a_video_named_by_uri_from_its_path() {
    let _one = common::cluster::exclusive();
    let root = videos().canonicalize().unwrap();
    let mut cluster = Cluster::start(
        false,
        &[
            ("DFSCAN_VIDEO__FRAMES", "4"),
            ("DFSCAN_MAX_IMAGE_BYTES", "1024"),
        ],
    );
    cluster.start_worker(&["--uri-root", root.to_str().unwrap()]);
    let script = r#"
import json, sys
sys.path.insert(0, sys.argv[1])
import dfscan_client
from dfscan_client.sources import item
client = dfscan_client.Client(sys.argv[2])
job = client.submit([item("v", uri=sys.argv[3]), item("i", uri=sys.argv[4])])
print(json.dumps({r.id: json.loads(r.to_json()) for r in client.results(job.job_id)}))
"#;
    let out = common::run_ok(
        Command::new(common::tools_python())
            .arg("-c")
            .arg(script)
            .arg(common::repo().join("clients/python"))
            .arg(format!("127.0.0.1:{}", cluster.port))
            .arg(root.join("face.mp4"))
            .arg(root.join("image.mp4")),
    );
    let results: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(results["v"]["media"], "video", "{results}");
    assert_eq!(results["v"]["outcome"], "scored", "{results}");
    assert_eq!(results["v"]["frames"].as_array().unwrap().len(), 4);
    let image = results["i"]["error"].as_str().unwrap_or_default();
    assert!(image.contains("over the limit of 1024"), "{results}");
    assert!(
        image.starts_with(root.join("image.mp4").to_str().unwrap()),
        "{results}"
    );
}
