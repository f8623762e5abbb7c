//! `scripts/gpu-check.sh --dry-run`: the GPU check's every step on the CPU
//! at small sizes, with the binaries cargo built for the tests, so the
//! script a borrowed GPU host runs once is known to work before it gets
//! there. Checks that the report has each section with sane figures;
//! never how fast anything was.

mod common;

use std::path::PathBuf;
use std::process::Command;

use serde_json::Value;

/// The parity test binary cargo built beside this one (`cargo test` builds
/// every test target before running any).
fn parity_binary() -> PathBuf {
    let deps = std::env::current_exe()
        .unwrap()
        .parent()
        .unwrap()
        .to_path_buf();
    let newest = std::fs::read_dir(&deps)
        .unwrap()
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            let name = p.file_name().unwrap().to_string_lossy();
            name.starts_with("parity-") && p.extension().is_none()
        })
        .max_by_key(|p| p.metadata().and_then(|m| m.modified()).ok());
    newest.unwrap_or_else(|| {
        panic!(
            "no parity test binary in {}: cargo test --test parity --no-run",
            deps.display()
        )
    })
}

fn number(v: &Value, at: &str) -> f64 {
    v.as_f64()
        .unwrap_or_else(|| panic!("{at}: not a number: {v}"))
}

fn positive(v: &Value, at: &str) -> f64 {
    let x = number(v, at);
    assert!(x.is_finite() && x > 0.0, "{at}: {x}");
    x
}

fn share(v: &Value, at: &str) -> f64 {
    let x = number(v, at);
    assert!((0.0..=1.0).contains(&x), "{at}: {x}");
    x
}

fn step<'a>(report: &'a Value, name: &str) -> &'a Value {
    let step = &report["steps"][name];
    assert_eq!(step["status"], "ok", "{name}: {step:#}");
    &step["result"]
}

#[test]
fn dry_run_exercises_every_step_and_reports_them() {
    let out = tempfile::tempdir().unwrap();
    let mut cmd = Command::new(common::repo().join("scripts/gpu-check.sh"));
    for (key, _) in std::env::vars() {
        if key.starts_with("DFSCAN_") || key.starts_with("GPU_CHECK_") || key == "OUT" {
            cmd.env_remove(key);
        }
    }
    cmd.args(["--dry-run", "--out"])
        .arg(out.path())
        .env("GPU_CHECK_DFSCAN", env!("CARGO_BIN_EXE_dfscan"))
        .env("GPU_CHECK_PARITY", parity_binary())
        .env("GPU_CHECK_FIXTURES", common::fixtures())
        .env("GPU_CHECK_PYTHON", common::python());
    let run = cmd.output().unwrap();
    let report_file = out.path().join("report.json");
    assert!(
        run.status.success(),
        "gpu-check.sh --dry-run failed ({}):\n{}\n{}",
        run.status,
        String::from_utf8_lossy(&run.stderr),
        std::fs::read_to_string(&report_file).unwrap_or_default()
    );
    let report: Value =
        serde_json::from_str(&std::fs::read_to_string(&report_file).unwrap()).unwrap();
    check_report(&report);
    let markdown = std::fs::read_to_string(out.path().join("report.md")).unwrap();
    for heading in [
        "dry run",
        "| dtype | check |",
        "| dtype | batch | pipeline img/s |",
        "Batch-size histogram",
        "`dfscan train`",
        "| target | result | met |",
    ] {
        assert!(markdown.contains(heading), "{heading}:\n{markdown}");
    }
}

fn check_report(report: &Value) {
    assert_eq!(report["mode"], "dry");
    assert_eq!(report["ok"], true);
    assert_eq!(report["facts"]["status"], "ok");
    let facts = &report["facts"]["result"];
    assert!(facts["torch"].as_str().unwrap().starts_with("2.11"));
    assert!(facts["dfscan"].as_str().unwrap().starts_with("dfscan"));

    // 1. The CUDA cases, on the CPU: every dtype of each check, within bounds.
    let parity = step(report, "parity");
    let checks = parity["checks"].as_array().unwrap();
    for dtype in ["f32", "bf16", "f16"] {
        let of: Vec<&Value> = checks.iter().filter(|c| c["dtype"] == dtype).collect();
        assert!(of.len() >= 6, "{dtype}: {of:?}"); // 2 models x 3 checks
        for c in of {
            assert_eq!(c["device"], "cpu");
            assert_eq!(c["ok"], true, "{c}");
            assert!(number(&c["max_abs_diff"], "diff") < number(&c["bound"], "bound"));
        }
    }
    assert_eq!(parity["tests"].as_array().unwrap().len(), 2, "{parity}");
    assert_eq!(parity["passed"], 2, "{parity}");

    // 2. Every dtype and batch size on both sides, each with its figures.
    let score = step(report, "score");
    let runs = score["runs"].as_array().unwrap();
    assert_eq!(runs.len(), 6, "{score:#}");
    for run in runs {
        let at = format!("{} batch {}", run["dtype"], run["batch"]);
        positive(&run["images_per_s"], &at);
        positive(&run["pipeline"]["images_per_s"], &at);
        positive(&run["over_pipeline"], &at);
        let decode = share(&run["decode_share"], &at);
        let wait = share(&run["model_wait_share"], &at);
        assert!(decode + wait <= 1.0 + 1e-3, "{at}: {decode} + {wait}");
        // No GPU here: the sampler says so instead of inventing figures.
        assert_eq!(run["gpu_source"], "none", "{at}");
    }

    // 3. Every item through the queue; the histogram holds every batch.
    let cluster = step(report, "cluster");
    let items = number(&cluster["items"], "items");
    assert_eq!(cluster["results"], cluster["items"]);
    assert_eq!(cluster["errors"], 0);
    assert_eq!(number(&cluster["scored"], "scored"), items);
    positive(&cluster["items_per_s"], "items/s");
    let histogram = cluster["batch_size_histogram"].as_array().unwrap();
    let batches: f64 = histogram.iter().map(|b| number(&b["batches"], "le")).sum();
    assert_eq!(batches, number(&cluster["batches"], "batches"));
    let mean = positive(&cluster["mean_batch"], "mean batch");
    assert!(mean <= number(&cluster["max_batch"], "max batch"));

    // 5. A CPU worker exports no GPU memory.
    let metrics = step(report, "metrics");
    assert_eq!(metrics["http_status"], 200);
    assert_eq!(metrics["gpu_memory_used_bytes"], serde_json::json!({}));

    // 4. bf16 trained and reloaded; f16 skipped on the CPU, saying why.
    let train = step(report, "train");
    let trained = train["runs"].as_array().unwrap();
    assert_eq!(trained.len(), 1);
    assert_eq!(trained[0]["dtype"], "bf16");
    assert_eq!(trained[0]["losses_fell"], true);
    assert_eq!(trained[0]["reload_scored"], trained[0]["val_images"]);
    let skipped = train["skipped"].as_array().unwrap();
    assert!(
        skipped[0].as_str().unwrap().contains("f16 on CPU"),
        "{skipped:?}"
    );

    // 6. The targets are judged only where they mean something: not here.
    let targets = report["targets"].as_array().unwrap();
    assert_eq!(targets.len(), 4);
    assert_eq!(targets[0]["met"], true, "f32 parity: {:?}", targets[0]);
    for rate in &targets[1..] {
        assert!(rate["met"].is_null(), "{rate}");
    }
}
