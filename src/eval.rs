//! `dfscan eval`: the model card's classification report on a labelled
//! folder whose subfolders are named after the model's labels.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context};
use clap::Args;
use dfscan_core::metrics::EvalReport;
use dfscan_model::ItemScore;

use crate::model_args::LocalModelArgs;

#[derive(Args)]
pub struct EvalArgs {
    #[command(flatten)]
    model: LocalModelArgs,
    /// Print the report as JSON instead of text
    #[arg(long)]
    json: bool,
    /// Folder with one subfolder per label (e.g. Real/, Fake/)
    dir: PathBuf,
}

pub fn run(config: Option<&Path>, args: EvalArgs) -> anyhow::Result<bool> {
    let settings = args.model.settings(config)?;
    // The folder is checked before the model spends its time loading.
    let folders = label_folders(&args.dir)?;
    let scorer = crate::score::load_scorer(&settings)?;
    let info = scorer.engine().info();
    let (paths, truth) = labelled_images(&args.dir, folders, &info.labels)?;
    let mut progress = crate::score::Progress::new(paths.len() as u64);
    let (mut kept_truth, mut predicted, mut fake_scores, mut failed) =
        (Vec::new(), Vec::new(), Vec::new(), 0);
    scorer.score_files(&paths, |i, result| {
        progress.scored(&result);
        // An image without a face in mode `require` has no score to count.
        let result = result.and_then(|s| {
            let (prediction, outcome) = match s {
                ItemScore::Image(s) => (s.prediction, s.outcome),
                ItemScore::Video(s) => (s.prediction, s.outcome),
            };
            prediction.ok_or_else(|| format!("no face found (outcome {})", outcome.name()))
        });
        match result {
            Ok(p) => {
                kept_truth.push(truth[i]);
                predicted.push(
                    info.labels
                        .iter()
                        .position(|l| *l == p.label)
                        .expect("label of the model"),
                );
                fake_scores.push(p.fake_score);
            }
            Err(e) => {
                failed += 1;
                eprintln!("skipped {}: {e}", paths[i].display());
            }
        }
    });
    progress.finish();
    let report = EvalReport::compute(
        &info.labels,
        info.fake_index,
        &kept_truth,
        &predicted,
        &fake_scores,
    );
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        println!(
            "model: {} (sha256 {})\n{report}",
            info.identity.name, info.identity.sha256
        );
        if failed > 0 {
            println!("\n{failed} images could not be scored and are not counted");
        }
    }
    Ok(failed == 0)
}

/// The label folders of `dir` with their images; none with an image is an
/// error that says what `dir` should look like.
fn label_folders(dir: &Path) -> anyhow::Result<Vec<(String, Vec<PathBuf>)>> {
    let folders = dfscan_imaging::label_folders(dir, &crate::inputs::extensions())
        .with_context(|| format!("reading {}", dir.display()))?;
    anyhow::ensure!(
        folders.iter().any(|(_, images)| !images.is_empty()),
        "no images in label folders under {}: eval expects one subfolder per label of \
         the model, named after it, e.g. {}/Real/ and {}/Fake/",
        dir.display(),
        dir.display(),
        dir.display()
    );
    Ok(folders)
}

/// Images under each label's subfolder and their class indices. Folder
/// names match labels case-insensitively; a folder naming no label is an
/// error, so a typo cannot silently drop a class.
fn labelled_images(
    dir: &Path,
    folders: Vec<(String, Vec<PathBuf>)>,
    labels: &[String],
) -> anyhow::Result<(Vec<PathBuf>, Vec<usize>)> {
    let mut paths = Vec::new();
    let mut truth = Vec::new();
    for (name, images) in folders {
        let Some(class) = labels.iter().position(|l| l.eq_ignore_ascii_case(&name)) else {
            bail!(
                "folder {name:?} in {} names no label of the model ({})",
                dir.display(),
                labels.join(", ")
            );
        };
        truth.extend(std::iter::repeat_n(class, images.len()));
        paths.extend(images);
    }
    Ok((paths, truth))
}
