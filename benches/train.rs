//! Training throughput: `dfscan train` against the transformers `Trainer`
//! (benches/trainer_reference.py: the same recipe, AdamW, batch and base),
//! side by side in one run on this machine, for each preset from tiny to
//! ViT-base. dfscan's figure is its second epoch's training images/s
//! (decoding, augmentation, forward, backward and optimizer; evaluation
//! excluded); the Trainer's skips its first two steps.
//!
//! `cargo bench --bench train -- [--presets tiny-a,base] [--images 64] [--batch 16] [--device cpu|cuda]`

use std::path::Path;
use std::process::Command;

use anyhow::{ensure, Context};
use clap::Parser;
use serde_json::Value;

/// Flags after `cargo bench --bench train --`.
#[derive(Parser)]
struct Args {
    /// Presets of tests/tools/make_checkpoint.py, comma-separated.
    #[arg(long, default_value = "tiny-a,base")]
    presets: String,
    /// Training images (half per class).
    #[arg(long, default_value_t = 64)]
    images: usize,
    #[arg(long, default_value_t = 16)]
    batch: usize,
    #[arg(long, default_value = "cpu")]
    device: String,
    /// Passed by `cargo bench` itself.
    #[arg(long, hide = true)]
    bench: bool,
}

fn main() -> anyhow::Result<()> {
    let Args {
        presets,
        images,
        batch,
        device,
        ..
    } = Args::parse();
    let repo = Path::new(env!("CARGO_MANIFEST_DIR"));
    let python = repo.join(".venv/bin/python");
    let work = tempfile::tempdir()?;
    for preset in presets.split(',') {
        let base = work.path().join(format!("{preset}-base"));
        let data = work.path().join(format!("{preset}-data"));
        let size = if preset == "base" { "224" } else { "40" };
        run(Command::new(&python)
            .arg(repo.join("tests/tools/make_checkpoint.py"))
            .arg(&base)
            .args(["--preset", preset, "--headless"]))?;
        run(Command::new(&python)
            .arg(repo.join("tests/tools/make_train_set.py"))
            .arg(&data)
            .args(["--train-per-class", &(images / 2).to_string()])
            .args(["--val-per-class", "1", "--size", size]))?;

        let output = work.path().join(format!("{preset}-out"));
        run(Command::new(env!("CARGO_BIN_EXE_dfscan"))
            .env("DFSCAN_LOG", "warn")
            .arg("train")
            .arg("--base")
            .arg(&base)
            .arg("--data")
            .arg(&data)
            .arg("--output")
            .arg(&output)
            .args(["--epochs", "2", "--patience", "0", "--lr", "1e-5"])
            .args(["--batch-size", &batch.to_string(), "--device", &device]))?;
        let report: Value = serde_json::from_str(&std::fs::read_to_string(
            output.join("training_report.json"),
        )?)?;
        let ours = report["history"][1]["images_per_second"]
            .as_f64()
            .context("no second epoch in the report")?;

        let steps = 2 * images / batch;
        ensure!(
            steps > 2,
            "--images must give more than two batches of --batch"
        );
        let reference = run(Command::new(&python)
            .arg(repo.join("benches/trainer_reference.py"))
            .arg("--base")
            .arg(&base)
            .arg("--data")
            .arg(&data)
            .args([
                "--max-steps",
                &steps.to_string(),
                "--batch-size",
                &batch.to_string(),
            ])
            .args(["--lr", "1e-5", "--skip-steps", "2", "--device", &device]))?;
        let reference: Value = serde_json::from_slice(&reference)?;
        let theirs = reference["images_per_second"]
            .as_f64()
            .context("reference output")?;
        println!(
            "{{\"preset\":\"{preset}\",\"device\":\"{device}\",\"batch\":{batch},\"images\":{images},\"threads\":{},\"dfscan_images_per_s\":{ours:.2},\"trainer_images_per_s\":{theirs:.2},\"dfscan_over_trainer\":{:.3}}}",
            reference["threads"],
            ours / theirs
        );
    }
    Ok(())
}

fn run(cmd: &mut Command) -> anyhow::Result<Vec<u8>> {
    let out = cmd.output().with_context(|| format!("running {cmd:?}"))?;
    ensure!(
        out.status.success(),
        "{cmd:?} failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    Ok(out.stdout)
}
