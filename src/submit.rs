//! `dfscan submit`: upload files and folders as a job, then stream its
//! results into the output as workers produce them. `--attach JOB` (with
//! the same `--output`) finishes the output of an interrupted run; an
//! output that holds another job's results is refused (`results_file`).

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use clap::{Args, ValueEnum};
use dfscan_proto::v1::{
    item::Source, Callback, FaceOptions, Item, JobHeader, VerdictPolicy, VerdictThreshold,
};
use indicatif::ProgressBar;

use crate::output::Format;
use crate::remote::{self, CoordinatorFlag, ResultsSink};
use crate::results_file;

#[derive(Args)]
pub struct SubmitArgs {
    #[command(flatten)]
    remote: CoordinatorFlag,
    /// Model to score with, as `dfscan models` lists it [default: the coordinator's default]
    #[arg(long)]
    model: Option<String>,
    /// Write results here (resumable) instead of standard output
    #[arg(long, short)]
    output: Option<PathBuf>,
    /// Replace what --output holds (by default a file holding another job's
    /// results, or `dfscan score`'s, is refused)
    #[arg(long, requires = "output")]
    overwrite: bool,
    /// Output format
    #[arg(long, value_enum, default_value = "jsonl")]
    format: Format,
    /// Submitting again with the same key returns the first job
    #[arg(long)]
    idempotency_key: Option<String>,
    /// Items per queue task [default: the coordinator's]
    #[arg(long)]
    task_size: Option<u32>,
    /// KEY=VALUE metadata kept with the job (repeatable)
    #[arg(long = "metadata", value_parser = parse_key_value)]
    metadata: Vec<(String, String)>,
    /// Verdicts by fake_score, highest first wins, e.g. `flag=0.9,review=0.6,pass`
    /// (a bare name is the verdict below every threshold; default `pass`)
    #[arg(long, value_parser = parse_policy)]
    verdicts: Option<VerdictPolicy>,
    /// POST a signed JSON summary here when the job finishes (its host must
    /// be in the coordinator's `callback_hosts`)
    #[arg(long)]
    callback_url: Option<String>,
    /// Also POST each item whose verdict is one of these (comma-separated)
    #[arg(long, value_delimiter = ',', requires = "callback_url")]
    item_callbacks: Vec<String>,
    #[command(flatten)]
    faces: JobFaceArgs,
    /// Finish the output of an earlier submit of this job instead of uploading
    #[arg(long, conflicts_with = "paths")]
    attach: Option<String>,
    /// Image files and directories (searched recursively)
    #[arg(required_unless_present = "attach")]
    paths: Vec<PathBuf>,
}

/// The job's face options; each one left out takes the workers'
/// configuration (`faces.*`).
#[derive(Args)]
struct JobFaceArgs {
    /// auto, require or off (left out: the workers' faces.mode)
    #[arg(long = "faces", value_name = "MODE")]
    mode: Option<String>,
    /// Crop side as a multiple of the face box's longer side (left out: the workers')
    #[arg(long)]
    face_scale: Option<f32>,
    /// Five-point aligned crops instead of squares (left out: the workers')
    #[arg(long)]
    align: Option<bool>,
    /// Detector score a face must pass (left out: the workers')
    #[arg(long)]
    face_threshold: Option<f32>,
    /// Faces with a longer side under this many pixels are dropped (left out: the workers')
    #[arg(long)]
    min_face_size: Option<f32>,
    /// Most faces scored per image (left out: the workers')
    #[arg(long)]
    max_faces: Option<u32>,
    /// Longest side of the image as the detector sees it (left out: the workers')
    #[arg(long)]
    face_working_size: Option<u32>,
    /// max or mean (left out: the workers' faces.aggregation)
    #[arg(long)]
    face_aggregation: Option<String>,
}

impl JobFaceArgs {
    /// `None` when no face option was given, so the job says nothing.
    fn options(&self) -> Option<FaceOptions> {
        let options = FaceOptions {
            mode: self.mode.clone().unwrap_or_default(),
            scale: self.face_scale,
            align: self.align,
            threshold: self.face_threshold,
            min_size: self.min_face_size,
            max_faces: self.max_faces,
            working_size: self.face_working_size,
            aggregation: self.face_aggregation.clone().unwrap_or_default(),
        };
        (options != FaceOptions::default()).then_some(options)
    }
}

fn parse_policy(s: &str) -> Result<VerdictPolicy, String> {
    let mut policy = VerdictPolicy::default();
    for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        match part.split_once('=') {
            Some((verdict, min)) => policy.thresholds.push(VerdictThreshold {
                verdict: verdict.trim().to_string(),
                min_fake_score: min
                    .trim()
                    .parse()
                    .map_err(|_| format!("{min:?} is not a fake_score threshold"))?,
            }),
            None if policy.otherwise.is_empty() => policy.otherwise = part.to_string(),
            None => return Err(format!("two verdicts without a threshold in {s:?}")),
        }
    }
    if policy.thresholds.is_empty() {
        return Err(format!("no VERDICT=THRESHOLD in {s:?}"));
    }
    Ok(policy)
}

fn parse_key_value(s: &str) -> Result<(String, String), String> {
    s.split_once('=')
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .ok_or_else(|| format!("expected KEY=VALUE, got {s:?}"))
}

pub fn run(config: Option<&Path>, args: SubmitArgs) -> anyhow::Result<bool> {
    dfscan_process::runtime()?.block_on(async {
        let client = remote::connect(config, &args.remote).await?;
        let key = args.idempotency_key.as_deref().unwrap_or_default();
        if let (Some(output), None) = (&args.output, &args.attach) {
            results_file::check_new_job(output, key, args.overwrite)?;
        }
        let (job, unreadable) = match &args.attach {
            Some(job_id) => (client.get_job(job_id).await?, 0),
            None => upload(&client, &args).await?,
        };
        if let Some(output) = &args.output {
            results_file::claim(output, &job.job_id, key, args.overwrite)?;
        }
        let mut sink = ResultsSink::open(args.output.as_ref(), args.format)?;
        if let Some(output) = &args.output {
            eprintln!(
                "job {}: {} items; if interrupted, finish with: {}",
                job.job_id,
                job.total,
                attach_command(config, &job.job_id, output, &args)
            );
        }
        sink.stream(&client, &job).await?;
        sink.finish()?;
        let job = client.get_job(&job.job_id).await?;
        eprintln!("{}", remote::summary(&job));
        Ok(job.failed == 0 && unreadable == 0)
    })
}

/// The command that finishes `output` for `job_id`: with the flags of this
/// run it needs to reach the same coordinator and write the same format.
fn attach_command(config: Option<&Path>, job_id: &str, output: &Path, args: &SubmitArgs) -> String {
    let mut words = vec!["dfscan".to_string()];
    if let Some(config) = config {
        words.extend(["--config".into(), shell_word(&config.to_string_lossy())]);
    }
    words.push("submit".into());
    if let Some(coordinator) = &args.remote.coordinator {
        words.extend(["--coordinator".into(), shell_word(coordinator)]);
    }
    words.extend([
        "--attach".into(),
        shell_word(job_id),
        "--output".into(),
        shell_word(&output.to_string_lossy()),
    ]);
    if args.format != Format::Jsonl {
        let format = args.format.to_possible_value().expect("no skipped formats");
        words.extend(["--format".into(), format.get_name().to_string()]);
    }
    words.join(" ")
}

/// `word` as a POSIX shell reads it back: bare when it is plain, else in
/// single quotes.
fn shell_word(word: &str) -> String {
    let plain = !word.is_empty()
        && word
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_./:=@,+%".contains(c));
    if plain {
        word.to_string()
    } else {
        format!("'{}'", word.replace('\'', r"'\''"))
    }
}

/// Uploads the inputs; returns the job and how many inputs could not be read.
async fn upload(
    client: &dfscan_client::Client,
    args: &SubmitArgs,
) -> anyhow::Result<(dfscan_proto::v1::Job, u64)> {
    let inputs = crate::inputs::collect(&args.paths)?;
    anyhow::ensure!(
        !inputs.is_empty(),
        "{}",
        crate::inputs::none_found(&args.paths)
    );
    let header = JobHeader {
        model: args.model.clone().unwrap_or_default(),
        idempotency_key: args.idempotency_key.clone().unwrap_or_default(),
        metadata: args.metadata.iter().cloned().collect(),
        task_size: args.task_size.unwrap_or(0),
        policy: args.verdicts.clone(),
        callback: args.callback_url.as_ref().map(|url| Callback {
            url: url.clone(),
            item_verdicts: args.item_callbacks.clone(),
        }),
        faces: args.faces.options(),
    };
    // Room for the message framing around one image.
    let max_file = client.settings().max_message_bytes.saturating_sub(64 << 10) as u64;
    let unreadable = Arc::new(AtomicU64::new(0));
    let items = {
        let unreadable = unreadable.clone();
        inputs.into_iter().filter_map(move |path| {
            let id = path.to_string_lossy().into_owned();
            match dfscan_imaging::read_limited(&path, max_file) {
                Ok(data) => Some(Item {
                    id,
                    source: Some(Source::Data(data.into())),
                    metadata: Default::default(),
                }),
                Err(e) => {
                    eprintln!("{id}: not uploaded: {e}");
                    unreadable.fetch_add(1, Ordering::Relaxed);
                    None
                }
            }
        })
    };
    let bar = ProgressBar::new_spinner();
    let shown = bar.clone();
    let progress = Arc::new(move |items: u64, bytes: u64| {
        shown.set_message(format!("uploaded {items} items, {} MB", bytes >> 20));
        shown.tick();
    });
    let response = client.submit(header, items, progress).await;
    bar.finish_and_clear();
    let response = response?;
    let job = response.job.unwrap_or_default();
    if response.deduplicated {
        eprintln!(
            "the idempotency key matches job {}: not uploaded again",
            job.job_id
        );
    }
    Ok((job, unreadable.load(Ordering::Relaxed)))
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;

    #[derive(Parser)]
    struct Submit {
        #[command(flatten)]
        args: SubmitArgs,
    }

    fn hint(config: Option<&str>, argv: &[&str]) -> String {
        let args = Submit::parse_from(std::iter::once("submit").chain(argv.iter().copied())).args;
        let output = args.output.clone().unwrap();
        attach_command(config.map(Path::new), "J1", &output, &args)
    }

    #[test]
    fn the_attach_hint_reaches_the_same_coordinator_in_the_same_format() {
        assert_eq!(
            hint(None, &["--output", "r.jsonl", "photos"]),
            "dfscan submit --attach J1 --output r.jsonl"
        );
        assert_eq!(
            hint(
                Some("my dfscan.toml"),
                &[
                    "--coordinator",
                    "http://10.0.0.5:50051",
                    "--format",
                    "csv",
                    "--output",
                    "it's.csv",
                    "photos",
                ],
            ),
            "dfscan --config 'my dfscan.toml' submit --coordinator http://10.0.0.5:50051 \
             --attach J1 --output 'it'\\''s.csv' --format csv"
        );
    }
}
