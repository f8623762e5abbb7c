//! `dfscan`: the single command-line entry point. It parses flags, layers
//! them over the config file and `DFSCAN_*` environment, and dispatches
//! into the crates; no scoring logic lives here.

mod cluster;
mod eval;
mod inputs;
mod jobs;
mod model_args;
mod output;
mod remote;
mod results_file;
mod score;
mod submit;
mod train;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Arg, CommandFactory, FromArgMatches, Parser, Subcommand};

/// Exit status when every input was processed.
const EXIT_OK: u8 = 0;
/// Exit status for a fatal error (bad configuration, model not loadable).
const EXIT_FATAL: u8 = 1;
/// Exit status when the run finished but some inputs could not be scored.
const EXIT_SOME_FAILED: u8 = 3;

#[derive(Parser)]
#[command(
    name = "dfscan",
    version,
    about = "Deepfake image scoring with Vision Transformer classifiers on libtorch"
)]
struct Cli {
    /// Config file (TOML or JSON); keys as in the README's configuration table.
    #[arg(long, global = true, env = "DFSCAN_CONFIG")]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Score image files and directories (recursively) for deepfakes.
    Score(score::ScoreArgs),
    /// Evaluate a model on a labelled folder (one subfolder per label).
    Eval(eval::EvalArgs),
    /// Fine-tune a ViT classifier on labelled images (a checkpoint `score` serves).
    Train(train::TrainArgs),
    /// Run the gRPC coordinator: accepts jobs and queues them in Redis.
    Coordinator(dfscan_process::coordinator::CoordinatorArgs),
    /// Run a worker: scores the queued tasks of one model.
    Worker(cluster::WorkerArgs),
    /// Run coordinator and worker in one process (queue in memory unless --redis).
    Serve(cluster::ServeArgs),
    /// Upload images as a job and stream its results.
    Submit(submit::SubmitArgs),
    /// List, inspect and cancel jobs, and fetch their results.
    Jobs(jobs::JobsArgs),
    /// List the models the cluster serves and its live workers.
    Models(jobs::ModelsArgs),
}

fn main() -> ExitCode {
    let cli = parse();
    dfscan_process::init_logging(cli.config.as_deref());
    let result = match cli.command {
        Command::Score(args) => score::run(cli.config.as_deref(), args),
        Command::Eval(args) => eval::run(cli.config.as_deref(), args),
        Command::Train(args) => train::run(cli.config.as_deref(), args),
        Command::Coordinator(args) => cluster::coordinator(cli.config.as_deref(), args),
        Command::Worker(args) => cluster::worker(cli.config.as_deref(), args),
        Command::Serve(args) => cluster::serve(cli.config.as_deref(), args),
        Command::Submit(args) => submit::run(cli.config.as_deref(), args),
        Command::Jobs(args) => jobs::run(cli.config.as_deref(), args),
        Command::Models(args) => jobs::models(cli.config.as_deref(), args),
    };
    match result {
        Ok(all_ok) => ExitCode::from(if all_ok { EXIT_OK } else { EXIT_SOME_FAILED }),
        // The reader of the results went away (`| head`): it has what it
        // wanted, which is no error to report.
        Err(e) if output::stdout_closed(&e) => ExitCode::from(EXIT_OK),
        Err(e) => {
            eprintln!("error: {}", dfscan_core::error::with_causes(e.as_ref()));
            ExitCode::from(EXIT_FATAL)
        }
    }
}

/// What a worker's batch is called, for those who try `score`'s flag.
const WORKER_BATCH_TIP: &str = "a worker's batch is --max-batch N (worker.max_batch): images per \
                                forward pass, merged across tasks and jobs";

/// `Cli::parse()`, except that `worker` and `serve` know a hidden
/// `--batch-size` that is always refused with [`WORKER_BATCH_TIP`]: clap's
/// "unexpected argument" alone does not point to `--max-batch`.
fn parse() -> Cli {
    let command = ["worker", "serve"]
        .into_iter()
        .fold(Cli::command(), |command, name| {
            command.mut_subcommand(name, |sub| {
                sub.arg(
                    Arg::new("batch_size_tip")
                        .long("batch-size")
                        .value_name("N")
                        .hide(true)
                        .value_parser(|_: &str| Err::<String, _>(WORKER_BATCH_TIP)),
                )
            })
        });
    let mut matches = command.get_matches();
    Cli::from_arg_matches_mut(&mut matches).unwrap_or_else(|e| e.format(&mut Cli::command()).exit())
}
