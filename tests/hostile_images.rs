//! Hostile images (issue 6): the corpus `tests/tools/make_hostile_corpus.py`
//! writes (empty, random and text files, files cut at many points, headers
//! declaring gigapixels, a GIF bomb, CPU bombs (a JPEG of 5000 scans, PNG
//! text inflating past Pillow's limit), animated/interlaced/CMYK/YCCK/16-bit/
//! palette files, EXIF orientations 1-8, WebP, HEIC/SVG/PDF, and what the
//! fuzzer found) goes through every path that decodes uploads:
//!
//! - the imaging crate directly: the decoded size and RGB bytes are
//!   Pillow's (`load_image`), the pixel values the pipeline's, and each
//!   failure is the error kind the manifest names;
//! - `dfscan score`: one JSONL line per file, the pipeline's probabilities
//!   or an error saying why, exit status 3, and a peak RSS (the process's
//!   own, from `wait4`) far below what one declared image would need;
//! - `dfscan serve` + `dfscan submit` (the worker path): the same results,
//!   and the server is alive afterwards and scores a second job.

mod common;

use std::collections::BTreeMap;
use std::fs::File;
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{ExitStatus, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use common::cluster::{read_jsonl, wait_for_port, Proc};
use dfscan_imaging::{decode_rgb, preprocess, DecodeLimits, PreprocessorConfig};
use dfscan_testkit::free_port;
use serde_json::Value;
use sha2::{Digest, Sha256};

/// The probabilities of a file that decodes to Pillow's exact pixels are
/// the pipeline's up to float32 rounding; lossy WebP (image-webp, not
/// libwebp) gets the end-to-end parity bound.
const EXACT_TOLERANCE: f64 = 1e-4;
const LOSSY_TOLERANCE: f64 = 1e-3;

/// Peak RSS allowed for `dfscan score` over the corpus. libtorch alone is
/// about 350 MB; one 100000x100000 RGB image would be 30 GB, one
/// 65535x65535 GIF canvas 17 GB.
const MAX_PEAK_RSS: u64 = 1536 << 20;

/// The corpus, generated on first use and cached under the target
/// directory, keyed by the generator, the files it copies in and the
/// reference fixtures (whose directory name hashes their generator).
fn corpus() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let model = common::model_dir("tiny-a");
        let mut hash = Sha256::new();
        hash.update(
            std::fs::read(common::repo().join("tests/tools/make_hostile_corpus.py")).unwrap(),
        );
        hash.update(model.to_string_lossy().as_bytes());
        let checked_in = common::repo().join("tests/hostile");
        if let Ok(entries) = std::fs::read_dir(&checked_in) {
            let mut paths: Vec<PathBuf> = entries.map(|e| e.unwrap().path()).collect();
            paths.sort();
            for path in paths {
                hash.update(path.file_name().unwrap().to_string_lossy().as_bytes());
                hash.update(std::fs::read(&path).unwrap());
            }
        }
        common::generated_dir("hostile", hash, |tmp| {
            common::run_tool(
                "make_hostile_corpus.py",
                &[tmp.to_str().unwrap(), "--model", model.to_str().unwrap()],
            );
        })
    })
}

struct Manifest {
    labels: Vec<String>,
    files: BTreeMap<String, Value>,
}

fn manifest() -> Manifest {
    let text = std::fs::read_to_string(corpus().join("manifest.json")).unwrap();
    let json: Value = serde_json::from_str(&text).unwrap();
    let labels = json["labels"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l.as_str().unwrap().to_string())
        .collect();
    let files = json["files"]
        .as_object()
        .unwrap()
        .iter()
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    Manifest { labels, files }
}

/// Every corpus file, by absolute path (named one by one: a directory walk
/// would skip the .heic, .svg and .pdf files).
fn inputs(m: &Manifest) -> Vec<PathBuf> {
    assert!(
        m.files.len() >= 30,
        "the corpus has {} files",
        m.files.len()
    );
    m.files.keys().map(|name| corpus().join(name)).collect()
}

fn file_name(path: &str) -> String {
    Path::new(path)
        .file_name()
        .unwrap()
        .to_string_lossy()
        .into_owned()
}

/// Whether `message` is the kind of error the manifest asks for.
fn error_matches(entry: &Value, message: &str) -> bool {
    let decode = message.starts_with("cannot decode image: ");
    match entry["kind"].as_str().unwrap() {
        "empty" => message == "image file is empty (0 bytes)",
        "unsupported" => {
            let detected = entry["detected"].as_str().unwrap();
            message == format!("unsupported image format (detected: {detected})")
        }
        "too_many_pixels" => message.ends_with("pixels, over the limit of 89478485"),
        "too_many_scans" => {
            message.starts_with("JPEG has ") && message.ends_with(" scans, over the limit of 500")
        }
        "truncated" => decode && message.contains("truncated"),
        "corrupt" => decode || message.starts_with("image has zero size"),
        other => panic!("unknown error kind {other}"),
    }
}

/// Checks one JSONL result against the manifest; the problem, if any.
fn check_result(m: &Manifest, name: &str, line: &Value) -> Result<(), String> {
    let entry = &m.files[name];
    let error = line["error"].as_str();
    if entry["expect"] == "score" {
        if let Some(error) = error {
            return Err(format!("must score, got error {error:?}"));
        }
        let scores = line["scores"]
            .as_object()
            .ok_or_else(|| format!("no scores: {line}"))?;
        let mut labels: Vec<&String> = scores.keys().collect();
        labels.sort();
        let mut expected: Vec<&String> = m.labels.iter().collect();
        expected.sort();
        if labels != expected {
            return Err(format!("labels {labels:?}, expected {expected:?}"));
        }
        let tolerance = if entry["exact_pixels"] == true {
            EXACT_TOLERANCE
        } else {
            LOSSY_TOLERANCE
        };
        for (label, want) in entry["probs"].as_object().unwrap() {
            let got = scores[label].as_f64().unwrap();
            let want = want.as_f64().unwrap();
            if (got - want).abs() > tolerance {
                return Err(format!("{label}: {got} vs the pipeline's {want}"));
            }
        }
        let top = m
            .labels
            .iter()
            .max_by(|a, b| {
                scores[*a]
                    .as_f64()
                    .partial_cmp(&scores[*b].as_f64())
                    .unwrap()
            })
            .unwrap();
        if line["label"] != top.as_str() || line["fake_score"] != scores["Fake"] {
            return Err(format!("label/fake_score inconsistent with scores: {line}"));
        }
        Ok(())
    } else {
        let error = error.ok_or_else(|| format!("must fail, got {line}"))?;
        if !line["scores"].is_null() || !line["label"].is_null() || !line["fake_score"].is_null() {
            return Err(format!("an error line with scores: {line}"));
        }
        if !error_matches(entry, error) {
            return Err(format!("error {error:?} is not of kind {}", entry["kind"]));
        }
        Ok(())
    }
}

/// Checks a whole results file: one line per input, each as the manifest
/// says. `key` is the field holding the input's path.
fn check_results(m: &Manifest, lines: &[Value], key: &str) {
    let mut seen = BTreeMap::new();
    let mut problems = Vec::new();
    for line in lines {
        let name = file_name(
            line[key]
                .as_str()
                .unwrap_or_else(|| panic!("no {key}: {line}")),
        );
        *seen.entry(name.clone()).or_insert(0) += 1;
        if !m.files.contains_key(&name) {
            problems.push(format!("{name}: not in the corpus"));
        } else if let Err(problem) = check_result(m, &name, line) {
            problems.push(format!("{name}: {problem}"));
        }
    }
    for name in m.files.keys() {
        match seen.get(name) {
            Some(1) => {}
            Some(n) => problems.push(format!("{name}: {n} result lines")),
            None => problems.push(format!("{name}: no result line")),
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

/// Waits for `child` with `wait4`, so that the kernel's accounting of its
/// own peak resident set comes back with its status; kills it after
/// `timeout`. Returns the status and the peak RSS in bytes.
fn wait_with_peak_rss(child: std::process::Child, timeout: Duration) -> (ExitStatus, u64) {
    let pid = child.id() as libc::pid_t;
    let deadline = Instant::now() + timeout;
    let mut status = 0;
    // SAFETY: rusage is plain data; zeroes are a valid value.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    loop {
        // SAFETY: `pid` is our unreaped child; the pointers are valid.
        let got = unsafe { libc::wait4(pid, &mut status, libc::WNOHANG, &mut usage) };
        assert!(got >= 0, "wait4: {}", std::io::Error::last_os_error());
        if got == pid {
            break;
        }
        if Instant::now() > deadline {
            // SAFETY: signalling our own unreaped child.
            unsafe { libc::kill(pid, libc::SIGKILL) };
            panic!("dfscan score did not finish within {timeout:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    // `child` is reaped: dropping it neither waits nor kills.
    drop(child);
    // ru_maxrss is in KiB on Linux.
    (ExitStatus::from_raw(status), usage.ru_maxrss as u64 * 1024)
}

/// The process's peak resident set so far, from /proc (for a server that
/// keeps running).
fn vm_hwm(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let kib: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap();
    kib * 1024
}

#[test]
fn imaging_decodes_like_pillow_or_names_the_problem() {
    let m = manifest();
    let limits = DecodeLimits::default();
    let model = common::model_dir("tiny-a");
    let cfg = PreprocessorConfig::from_json(
        &std::fs::read_to_string(model.join("preprocessor_config.json")).unwrap(),
    )
    .unwrap();
    let pixels = std::fs::read(corpus().join("pixels.safetensors")).unwrap();
    let pixels = safetensors::SafeTensors::deserialize(&pixels).unwrap();
    let mut problems = Vec::new();
    for (name, entry) in &m.files {
        let bytes = std::fs::read(corpus().join(name)).unwrap();
        let decoded = decode_rgb(&bytes, &limits);
        let problem = match (entry["expect"].as_str().unwrap(), decoded) {
            ("score", Err(e)) => Some(format!("must decode, got {e}")),
            ("score", Ok(rgb)) => {
                let size = [u64::from(rgb.width()), u64::from(rgb.height())];
                let want: Vec<u64> = entry["loaded_size"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|v| v.as_u64().unwrap())
                    .collect();
                let hash: String = Sha256::digest(rgb.as_raw())
                    .iter()
                    .map(|b| format!("{b:02x}"))
                    .collect();
                let values = preprocess(&bytes, &cfg, &limits).unwrap();
                let reference: Vec<f32> = pixels
                    .tensor(name)
                    .unwrap()
                    .data()
                    .chunks_exact(4)
                    .map(|c| f32::from_le_bytes(c.try_into().unwrap()))
                    .collect();
                let diff = values
                    .iter()
                    .zip(&reference)
                    .map(|(a, b)| (a - b).abs())
                    .fold(0f32, f32::max);
                let exact = entry["exact_pixels"] == true;
                if size[..] != want[..] {
                    Some(format!("size {size:?}, Pillow's {want:?}"))
                } else if exact && entry["rgb_sha256"] != hash.as_str() {
                    Some("RGB bytes differ from Pillow's".to_string())
                } else if values.len() != reference.len() || (exact && diff > 1e-5) {
                    Some(format!("pixel values differ by {diff}"))
                } else {
                    None
                }
            }
            (_, Ok(rgb)) => Some(format!(
                "must fail, decoded {}x{}",
                rgb.width(),
                rgb.height()
            )),
            (_, Err(e)) => (!error_matches(entry, &e.to_string()))
                .then(|| format!("error {e:?} is not of kind {}", entry["kind"])),
        };
        if let Some(problem) = problem {
            problems.push(format!("{name}: {problem}"));
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

#[test]
fn score_gives_each_file_its_score_or_error_in_bounded_memory() {
    let m = manifest();
    let tmp = tempfile::tempdir().unwrap();
    let output = tmp.path().join("results.jsonl");
    let stderr = tmp.path().join("stderr.txt");
    let child = common::dfscan()
        .args(["score", "--format", "jsonl", "--batch-size", "4", "--model"])
        .arg(common::model_dir("tiny-a"))
        .arg("--output")
        .arg(&output)
        .args(inputs(&m))
        .stdout(Stdio::null())
        .stderr(File::create(&stderr).unwrap())
        .spawn()
        .unwrap();
    let (status, peak) = wait_with_peak_rss(child, Duration::from_secs(120));
    let stderr = std::fs::read_to_string(&stderr).unwrap();
    // 3: the run finished and some inputs have errors (not 1, a fatal
    // error, nor a signal).
    assert_eq!(status.code(), Some(3), "{status:?}\n{stderr}");
    check_results(&m, &read_jsonl(&output), "path");
    eprintln!("dfscan score peak RSS over the corpus: {} MiB", peak >> 20);
    assert!(
        peak < MAX_PEAK_RSS,
        "dfscan score peaked at {} MiB (bound {} MiB)",
        peak >> 20,
        MAX_PEAK_RSS >> 20
    );
}

#[test]
fn the_worker_survives_the_corpus_and_scores_the_next_job() {
    let m = manifest();
    let _exclusive = common::cluster::exclusive();
    let tmp = tempfile::tempdir().unwrap();
    let port = free_port();
    let listen = format!("127.0.0.1:{port}");
    let mut serve = common::dfscan();
    serve
        .args(["serve", "--listen", &listen, "--model"])
        .arg(common::model_dir("tiny-a"))
        .args(["--threads", "1", "--decode-threads", "2"]);
    let mut server = Proc::spawn("serve", serve);
    wait_for_port(port);
    let coordinator = format!("http://{listen}");
    let submit = |output: &Path, files: &[PathBuf]| -> ExitStatus {
        let out = common::dfscan()
            .args(["submit", "--coordinator", &coordinator, "--output"])
            .arg(output)
            .args(files)
            .stdout(Stdio::null())
            .output()
            .unwrap();
        assert!(
            matches!(out.status.code(), Some(0 | 3)),
            "dfscan submit: {:?}\n{}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
        out.status
    };

    let first = tmp.path().join("first.jsonl");
    let status = submit(&first, &inputs(&m));
    assert_eq!(status.code(), Some(3), "some items failed");
    check_results(&m, &read_jsonl(&first), "id");
    assert!(server.is_running(), "dfscan serve died on the corpus");

    // A second job on the same server: every file that must score.
    let good: Vec<PathBuf> = m
        .files
        .iter()
        .filter(|(_, e)| e["expect"] == "score")
        .map(|(name, _)| corpus().join(name))
        .collect();
    let second = tmp.path().join("second.jsonl");
    assert!(submit(&second, &good).success());
    let lines = read_jsonl(&second);
    assert_eq!(lines.len(), good.len());
    check_results(
        &Manifest {
            labels: m.labels.clone(),
            files: m
                .files
                .iter()
                .filter(|(_, e)| e["expect"] == "score")
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
        },
        &lines,
        "id",
    );
    assert!(server.is_running(), "dfscan serve died");
    let peak = vm_hwm(server.pid());
    eprintln!("dfscan serve peak RSS after two jobs: {} MiB", peak >> 20);
    assert!(
        peak < MAX_PEAK_RSS,
        "dfscan serve peaked at {} MiB",
        peak >> 20
    );
}
