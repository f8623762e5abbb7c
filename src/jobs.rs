//! `dfscan jobs`: list, inspect, cancel jobs and fetch their results;
//! `dfscan models`: what the cluster can score and who is scoring it.

use std::io::Write;
use std::path::{Path, PathBuf};

use clap::{Args, Subcommand, ValueEnum};
use dfscan_proto::v1::{Job, JobState};

use crate::output::Format;
use crate::remote::{self, CoordinatorFlag, ResultsSink};
use crate::results_file;

#[derive(Args)]
pub struct JobsArgs {
    #[command(flatten)]
    remote: CoordinatorFlag,
    #[command(subcommand)]
    command: JobsCommand,
}

#[derive(Subcommand)]
enum JobsCommand {
    /// Jobs, newest first
    List {
        /// Only the jobs in this state [default: every state]
        #[arg(long, value_enum)]
        state: Option<StateArg>,
        /// Most jobs listed
        #[arg(long, default_value_t = 20)]
        limit: u32,
    },
    /// One job's state and counts, as JSON
    Status {
        /// The job id (`submit` prints it; `jobs list` lists them)
        job: String,
    },
    /// Cancel a job: its items not yet scored get the error "job cancelled"
    Cancel {
        /// The job id (`submit` prints it; `jobs list` lists them)
        job: String,
    },
    /// Stream a job's results (resuming an --output file of this job's)
    Results {
        /// The job id (`submit` prints it; `jobs list` lists them)
        job: String,
        /// Write the results here instead of standard output; a file of
        /// this job's results is resumed after its complete lines
        #[arg(long, short)]
        output: Option<PathBuf>,
        /// Replace what --output holds (by default a file holding another
        /// job's results is refused)
        #[arg(long, requires = "output")]
        overwrite: bool,
        /// Output format
        #[arg(long, value_enum, default_value = "jsonl")]
        format: Format,
    },
}

#[derive(Clone, Copy, ValueEnum)]
enum StateArg {
    Uploading,
    Running,
    Completed,
    Cancelled,
}

impl From<StateArg> for JobState {
    fn from(s: StateArg) -> Self {
        match s {
            StateArg::Uploading => JobState::Uploading,
            StateArg::Running => JobState::Running,
            StateArg::Completed => JobState::Completed,
            StateArg::Cancelled => JobState::Cancelled,
        }
    }
}

pub fn run(config: Option<&Path>, args: JobsArgs) -> anyhow::Result<bool> {
    dfscan_process::runtime()?.block_on(async {
        let client = remote::connect(config, &args.remote).await?;
        // Written, not println!ed: a reader that went away (`| head`) is
        // then an error main ends quietly on, not a panic.
        let mut out = crate::output::stdout();
        match args.command {
            JobsCommand::List { state, limit } => {
                let state = state.map_or(JobState::Unspecified, JobState::from);
                for job in client.list_jobs(limit, state).await? {
                    writeln!(out, "{}", remote::summary(&job))?;
                }
            }
            JobsCommand::Status { job } => {
                writeln!(out, "{}", job_json(&client.get_job(&job).await?))?;
            }
            JobsCommand::Cancel { job } => {
                eprintln!("{}", remote::summary(&client.cancel_job(&job).await?));
            }
            JobsCommand::Results {
                job,
                output,
                overwrite,
                format,
            } => {
                let job = client.get_job(&job).await?;
                if let Some(output) = &output {
                    results_file::claim(output, &job.job_id, "", overwrite)?;
                }
                let mut sink = ResultsSink::open(output.as_ref(), format)?;
                sink.stream(&client, &job).await?;
                sink.finish()?;
                let job = client.get_job(&job.job_id).await?;
                eprintln!("{}", remote::summary(&job));
                return Ok(job.failed == 0);
            }
        }
        Ok(true)
    })
}

fn job_json(job: &Job) -> serde_json::Value {
    let state = JobState::try_from(job.state).unwrap_or(JobState::Unspecified);
    serde_json::json!({
        "job_id": job.job_id,
        "state": state.as_str_name().trim_start_matches("JOB_STATE_").to_lowercase(),
        "model": job.model,
        "total": job.total,
        "completed": job.completed,
        "failed": job.failed,
        "finished": job.finished,
        "created_unix_ms": job.created_unix_ms,
        "finished_unix_ms": job.finished_unix_ms,
        "metadata": job.metadata,
        "idempotency_key": job.idempotency_key,
        "verdicts": job.verdicts,
    })
}

#[derive(Args)]
pub struct ModelsArgs {
    #[command(flatten)]
    remote: CoordinatorFlag,
}

/// Lists models and live workers.
pub fn models(config: Option<&Path>, args: ModelsArgs) -> anyhow::Result<bool> {
    dfscan_process::runtime()?.block_on(async {
        let client = remote::connect(config, &args.remote).await?;
        let models = client.list_models().await?;
        let mut out = crate::output::stdout();
        if models.is_empty() {
            writeln!(
                out,
                "no models: the coordinator serves none (coordinator.models) and no worker has \
                 registered one (a worker registers once its model is loaded and warmed up)"
            )?;
        }
        for model in models {
            writeln!(
                out,
                "model {}: {}, {} queued",
                model.name,
                count(model.workers, "worker", "workers"),
                count(model.queued_items, "item", "items")
            )?;
        }
        let workers = client.list_workers().await?;
        if workers.is_empty() {
            writeln!(out, "no live workers")?;
        }
        for w in workers {
            writeln!(
                out,
                "worker {} ({}): model {} on {} {}, {} in {}{}",
                w.worker_id,
                w.host,
                w.model,
                w.device,
                w.dtype,
                count(w.items_scored, "item", "items"),
                count(w.batches, "batch", "batches"),
                if w.draining { ", draining" } else { "" }
            )?;
        }
        Ok(true)
    })
}

/// `n` with the noun it takes: "1 worker", "2 workers".
fn count(n: impl Into<u64>, one: &str, many: &str) -> String {
    let n = n.into();
    format!("{n} {}", if n == 1 { one } else { many })
}
