//! `dfscan-coordinator`: the coordinator alone, in a binary that does not
//! link libtorch (about a tenth of `dfscan`'s memory; the small container
//! image). Same flags and configuration as `dfscan coordinator`.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;
use dfscan_process::coordinator::{self, CoordinatorArgs, CoordinatorConfig};

#[derive(Parser)]
#[command(
    name = "dfscan-coordinator",
    version,
    about = "dfscan's gRPC coordinator: accepts scoring jobs and queues them in Redis"
)]
struct Cli {
    /// Config file (TOML or JSON); keys as in the README's configuration table.
    #[arg(long, env = "DFSCAN_CONFIG")]
    config: Option<PathBuf>,
    #[command(flatten)]
    args: CoordinatorArgs,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    dfscan_process::init_logging(cli.config.as_deref());
    let result = CoordinatorConfig::load(cli.config.as_deref(), &cli.args).and_then(|cfg| {
        dfscan_process::runtime()?
            .block_on(async { coordinator::run(cfg, dfscan_process::shutdown_on_signals()).await })
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {}", dfscan_core::error::with_causes(&e));
            ExitCode::FAILURE
        }
    }
}
