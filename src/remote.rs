//! What `dfscan submit` and `dfscan jobs` share: connecting to the
//! coordinator, and streaming a job's results into an output that can be
//! resumed. A results file holds one line per result in cursor order, so
//! the number of complete lines in it is the cursor to resume after: an
//! interrupted run is finished by running again with the same file, with no
//! duplicate and no missing line. That the file is the job's own is
//! checked before (`results_file`).

use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, BufWriter, Seek, Write};
use std::path::{Path, PathBuf};

use anyhow::Context;
use clap::Args;
use dfscan_client::{Client, ClientError};
use dfscan_core::ModelIdentity;
use dfscan_process::settings::{self, FlagKeys};
use dfscan_proto::v1::{ItemResult, Job, JobState};
use indicatif::{ProgressBar, ProgressStyle};
use serde::Serialize;

use crate::cluster::ClusterConfig;
use crate::output::{Format, ResultWriter, Row};

/// `--coordinator`, of every command that talks to a coordinator.
#[derive(Args, Serialize)]
#[command(mut_args(settings::show_defaults(Self::KEYS)))]
pub struct CoordinatorFlag {
    /// Coordinator address
    #[arg(long, global = true)]
    pub coordinator: Option<String>,
}

impl CoordinatorFlag {
    const KEYS: FlagKeys = &[("coordinator", "client.coordinator")];
}

/// Connects with the client settings (file ← env ← `--coordinator`).
pub async fn connect(config: Option<&Path>, flag: &CoordinatorFlag) -> anyhow::Result<Client> {
    let overrides = settings::flag_overrides(flag, CoordinatorFlag::KEYS);
    let cfg = ClusterConfig::load(config, &overrides)?;
    Ok(Client::connect(cfg.client).await?)
}

/// Where results go, and how many are there already.
pub struct ResultsSink {
    writer: ResultWriter<Box<dyn Write + Send>>,
    /// Results already in the file: the cursor to resume after.
    pub after: u64,
}

impl ResultsSink {
    /// Standard output, or `path` (created, or resumed after its complete
    /// lines: a partial last line from an interrupted write is dropped).
    pub fn open(path: Option<&PathBuf>, format: Format) -> anyhow::Result<Self> {
        let Some(path) = path else {
            let out: Box<dyn Write + Send> = Box::new(BufWriter::new(crate::output::stdout()));
            let writer = ResultWriter::new(out, format, None, true, false)?;
            return Ok(Self { writer, after: 0 });
        };
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(path)
            .with_context(|| format!("opening {}", path.display()))?;
        let (lines, complete_len, first_line) =
            complete_lines(&file).with_context(|| format!("reading {}", path.display()))?;
        file.set_len(complete_len)?;
        file.seek(std::io::SeekFrom::End(0))?;
        let has_header = format != Format::Jsonl;
        let header_written = has_header && lines > 0;
        let after = if header_written { lines - 1 } else { lines };
        let labels = first_line
            .filter(|_| format == Format::Csv)
            .map(|header| labels_in_csv_header(&header));
        let out: Box<dyn Write + Send> = Box::new(BufWriter::new(file));
        let writer = ResultWriter::new(out, format, labels.as_deref(), true, header_written)?;
        if after > 0 {
            eprintln!(
                "{}: {after} results already there; resuming after them",
                path.display()
            );
        }
        Ok(Self { writer, after })
    }

    /// Streams `job`'s results after `self.after` until the job is
    /// finished, showing progress against the job's total.
    pub async fn stream(&mut self, client: &Client, job: &Job) -> anyhow::Result<()> {
        let bar = ProgressBar::new(job.total);
        bar.set_style(
            ProgressStyle::with_template("{bar:40} {pos}/{len} scored  {per_sec}  eta {eta}")
                .expect("valid template"),
        );
        bar.set_position(self.after);
        bar.reset_eta();
        let writer = &mut self.writer;
        // Kept whole, not as the client's message: main tells a closed
        // standard output apart by the error itself.
        let mut write_error = None;
        let last = client
            .stream_results(&job.job_id, self.after, |results| {
                if let Err(e) = write_results(writer, &results, &job.model) {
                    let message = e.to_string();
                    write_error = Some(e);
                    return Err(ClientError::Sink(message));
                }
                if let Some(r) = results.last() {
                    bar.set_position(r.cursor);
                }
                Ok(())
            })
            .await;
        bar.finish_and_clear();
        if let Some(e) = write_error {
            return Err(anyhow::Error::new(e).context("writing results"));
        }
        self.after = last?;
        Ok(())
    }

    pub fn finish(self) -> anyhow::Result<()> {
        Ok(self.writer.finish()?)
    }
}

/// Writes `results`, of a job for `job_model`. A result without a model
/// identity (an error the worker or queue recorded before any weights saw
/// the item) is written with the job's model and an empty sha256, as the
/// result record's schema says and the Python client does.
fn write_results(
    writer: &mut ResultWriter<Box<dyn Write + Send>>,
    results: &[ItemResult],
    job_model: &str,
) -> std::io::Result<()> {
    for r in results {
        let model = match r.model.clone() {
            Some(m) => ModelIdentity {
                name: m.name,
                sha256: m.sha256,
            },
            None => ModelIdentity {
                name: job_model.to_string(),
                sha256: String::new(),
            },
        };
        let score = dfscan_queue::media::item_score(r);
        let detector = r.face_detector.as_ref().map(|d| ModelIdentity {
            name: d.name.clone(),
            sha256: d.sha256.clone(),
        });
        writer.write(&Row {
            id: Some(&r.id),
            path: &r.id,
            result: score.as_ref().ok_or(r.error.as_str()),
            model: &model,
            face_detector: detector.as_ref(),
            verdict: Some(&r.verdict),
            metadata: Some(&r.metadata),
        })?;
    }
    // Whole results reach the file before the cursor moves on.
    writer.flush()
}

/// Counts the complete lines of `file`; returns them, the byte length they
/// span and the first line.
fn complete_lines(file: &File) -> std::io::Result<(u64, u64, Option<String>)> {
    let mut reader = BufReader::new(file);
    let (mut lines, mut len, mut first) = (0u64, 0u64, None);
    let mut line = String::new();
    loop {
        line.clear();
        let n = reader.read_line(&mut line)?;
        if n == 0 || !line.ends_with('\n') {
            return Ok((lines, len, first));
        }
        if first.is_none() {
            first = Some(line.trim_end().to_string());
        }
        lines += 1;
        len += n as u64;
    }
}

fn labels_in_csv_header(header: &str) -> Vec<String> {
    header
        .split(',')
        .filter_map(|column| column.trim_matches('"').strip_prefix("score_"))
        .map(str::to_string)
        .collect()
}

/// The line printed when a job's results are all in.
pub fn summary(job: &Job) -> String {
    let state = JobState::try_from(job.state)
        .map(|s| {
            s.as_str_name()
                .trim_start_matches("JOB_STATE_")
                .to_lowercase()
        })
        .unwrap_or_else(|_| "unknown".into());
    let mut line = format!(
        "job {} {state}: {} items, {} scored, {} failed",
        job.job_id, job.total, job.completed, job.failed
    );
    let left = job.total.saturating_sub(job.completed + job.failed);
    if !job.finished && left > 0 {
        // Cancelling returns at once: workers then give what is left the
        // error "job cancelled", so it is counted as failed later.
        if JobState::try_from(job.state) == Ok(JobState::Cancelled) {
            line.push_str(&format!(", {left} still to fail with \"job cancelled\""));
        } else {
            line.push_str(&format!(", {left} to go"));
        }
    }
    if !job.verdicts.is_empty() {
        let mut verdicts: Vec<_> = job.verdicts.iter().collect();
        verdicts.sort();
        let counts: Vec<String> = verdicts.iter().map(|(v, n)| format!("{v} {n}")).collect();
        line.push_str(&format!("; verdicts: {}", counts.join(", ")));
    }
    line
}
