//! `dfscan score`: score files and folders, writing one result per input.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::Context;
use clap::Args;
use dfscan_core::{ExplainMethod, ExplainRequest, ExplainTarget, Explanation};
use dfscan_model::{ItemScore, Scorer};
use indicatif::{ProgressBar, ProgressStyle};

use crate::model_args::{LocalModelArgs, LocalSettings};
use crate::output::{Format, ResultWriter, Row};

#[derive(Args)]
pub struct ScoreArgs {
    #[command(flatten)]
    model: LocalModelArgs,
    /// Output format
    #[arg(long, value_enum, default_value = "table")]
    format: Format,
    /// Write results here instead of standard output
    #[arg(long, short)]
    output: Option<PathBuf>,
    /// Explain every image: write its overlay PNG (the maps over the
    /// image, face boxes drawn) into DIR and its maps into the result
    #[arg(long, value_name = "DIR")]
    explain: Option<PathBuf>,
    /// How the maps are computed
    #[arg(long, value_name = "METHOD", default_value_t)]
    explain_method: ExplainMethod,
    /// Whose logit relevance explains: the fake label's or the predicted one's
    #[arg(long, value_name = "TARGET", default_value_t)]
    explain_target: ExplainTarget,
    /// Image files and directories (searched recursively)
    #[arg(required = true)]
    paths: Vec<PathBuf>,
}

/// Scores every input; `Ok(false)` when some could not be scored.
pub fn run(config: Option<&Path>, args: ScoreArgs) -> anyhow::Result<bool> {
    let settings = args.model.settings(config)?;
    let inputs = crate::inputs::collect(&args.paths)?;
    anyhow::ensure!(
        !inputs.is_empty(),
        "{}",
        crate::inputs::none_found(&args.paths)
    );
    let mut scorer = load_scorer(&settings)?;
    let mut pictures = None;
    if let Some(dir) = &args.explain {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        pictures = Some(Pictures::new(dir, &inputs));
        scorer = scorer.explaining(ExplainRequest {
            method: args.explain_method,
            target: args.explain_target,
        });
    }
    let info = scorer.engine().info();
    let out: Box<dyn Write> = match &args.output {
        Some(path) => Box::new(BufWriter::new(
            File::create(path).with_context(|| format!("creating {}", path.display()))?,
        )),
        None => Box::new(BufWriter::new(crate::output::stdout())),
    };
    let mut writer = ResultWriter::new(out, args.format, Some(&info.labels), false, false)?;
    let mut progress = Progress::new(inputs.len() as u64);
    let mut failed = 0usize;
    let mut io_error = None;
    let started = Instant::now();
    let times = scorer.score_files(&inputs, |i, mut result| {
        progress.scored(&result);
        if let (Some(pictures), Ok(ItemScore::Image(score))) = (&pictures, &mut result) {
            if let Some(explanation) = &mut score.explanation {
                if let Err(e) = pictures.write(i, explanation) {
                    io_error.get_or_insert(e);
                }
            }
        }
        if result.is_err() {
            failed += 1;
        }
        let path = inputs[i].to_string_lossy();
        let row = Row {
            id: None,
            path: &path,
            result: result.as_ref().map_err(String::as_str),
            model: &info.identity,
            face_detector: info.face_detector.as_ref(),
            verdict: None,
            metadata: None,
        };
        if let Err(e) = writer.write(&row) {
            io_error.get_or_insert(e);
        }
    });
    progress.finish();
    let seconds = started.elapsed().as_secs_f64();
    tracing::info!(
        images = inputs.len(),
        failed,
        seconds = format!("{seconds:.3}"),
        images_per_s = format!("{:.2}", inputs.len() as f64 / seconds),
        // Which side bounds the rate (scripts/gpu-check.sh reports their shares).
        decode_s = format!("{:.3}", times.decoding.as_secs_f64()),
        model_wait_s = format!("{:.3}", times.waiting_for_model.as_secs_f64()),
        "scored"
    );
    if let Some(e) = io_error {
        return Err(e).context("writing results");
    }
    writer.finish()?;
    if failed > 0 {
        eprintln!(
            "{failed} of {} inputs could not be scored (see their error fields)",
            inputs.len()
        );
    }
    Ok(failed == 0)
}

/// Where `--explain` writes each input's overlay: its file name's stem
/// with the input's place in the run, so that two inputs named alike in
/// different folders never share a file.
struct Pictures {
    names: Vec<PathBuf>,
}

impl Pictures {
    fn new(dir: &Path, inputs: &[PathBuf]) -> Self {
        let width = inputs.len().to_string().len();
        let names = inputs
            .iter()
            .enumerate()
            .map(|(i, input)| {
                let stem = input
                    .file_stem()
                    .map_or("input".into(), |s| s.to_string_lossy());
                dir.join(format!("{:0width$}-{stem}.png", i + 1))
            })
            .collect();
        Self { names }
    }

    /// Writes input `i`'s overlay and records its path in the explanation.
    fn write(&self, i: usize, explanation: &mut Explanation) -> std::io::Result<()> {
        if explanation.png_bytes.is_empty() {
            return Ok(());
        }
        let path = &self.names[i];
        std::fs::write(path, std::mem::take(&mut explanation.png_bytes))?;
        explanation.png = Some(path.to_string_lossy().into_owned());
        Ok(())
    }
}

pub fn load_scorer(settings: &LocalSettings) -> anyhow::Result<Scorer> {
    let LocalSettings {
        model,
        faces,
        video,
    } = settings;
    faces.validate().map_err(anyhow::Error::msg)?;
    video.validate().map_err(anyhow::Error::msg)?;
    let engine = dfscan_model::load_engine(model, faces, model.batch_size)?;
    Ok(Scorer::new(
        engine,
        model.decode_threads,
        dfscan_model::decode_limits(model),
        model.batch_size,
        faces.clone(),
        video.clone(),
    )?)
}

/// The bar of `score` and `eval` on stderr (drawn only when stderr is a
/// terminal): files scored of all, and once videos come, the sampled frames
/// they were scored on, which say more of the work done than a video's one
/// file does.
pub struct Progress {
    bar: ProgressBar,
    frames: usize,
}

impl Progress {
    pub fn new(files: u64) -> Self {
        let bar = ProgressBar::new(files);
        bar.set_style(
            ProgressStyle::with_template("{bar:40} {pos}/{len} files{msg}  {per_sec}  eta {eta}")
                .expect("valid template"),
        );
        Self { bar, frames: 0 }
    }

    /// One file's result is in.
    pub fn scored(&mut self, result: &Result<ItemScore, String>) {
        if let Ok(ItemScore::Video(video)) = result {
            self.frames += video.frames.len();
            self.bar.set_message(frames_message(self.frames));
        }
        self.bar.inc(1);
    }

    pub fn finish(&self) {
        self.bar.finish_and_clear();
    }
}

/// What follows the file count: nothing before any video's frames.
fn frames_message(frames: usize) -> String {
    match frames {
        0 => String::new(),
        1 => " · 1 frame".to_string(),
        n => format!(" · {n} frames"),
    }
}

#[cfg(test)]
mod tests {
    use dfscan_core::video::{FrameScore, TrackAggregation, VideoScore};
    use dfscan_core::{ImageScore, Outcome, Prediction};

    use super::*;

    #[test]
    fn the_bar_counts_files_and_the_videos_frames() {
        assert_eq!(frames_message(0), "");
        assert_eq!(frames_message(1), " · 1 frame");
        assert_eq!(frames_message(340), " · 340 frames");
        let labels = ["Real".to_string(), "Fake".to_string()];
        let p = Prediction::from_probabilities(&labels, &[0.5, 0.5], 1);
        let video = |frames: usize| {
            let frames = (0..frames)
                .map(|i| FrameScore {
                    t: i as f64,
                    prediction: Some(p.clone()),
                    faces: None,
                    outcome: Outcome::Scored,
                })
                .collect();
            Ok(ItemScore::Video(VideoScore::from_frames(
                10.0,
                frames,
                TrackAggregation::Mean,
                1,
                None,
            )))
        };
        let mut progress = Progress::new(4);
        progress.scored(&Ok(ItemScore::Image(ImageScore::whole(p.clone()))));
        assert_eq!(
            (progress.bar.position(), progress.bar.message()),
            (1, String::new())
        );
        progress.scored(&video(3));
        progress.scored(&Err("not an image".to_string()));
        progress.scored(&video(8));
        assert_eq!(progress.bar.position(), 4);
        assert_eq!(progress.bar.message(), " · 11 frames");
    }
}
