//! The `drover` binary: parse arguments, start tracing, dispatch, exit code.

use std::process::ExitCode;

use clap::Parser;
use drover::cli::{self, Cli, Outcome};

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    let _crash_points = drover::engine::crash::arm();
    drover::telemetry::init(cli.log_format(), cli.log_level());
    // Not locked for the whole command: the live progress view draws from
    // its own thread.
    let mut stdout = std::io::stdout();
    match cli::run(cli, &mut stdout).await {
        Ok(Outcome::Success) => ExitCode::SUCCESS,
        Ok(Outcome::Failure) => ExitCode::from(1),
        Ok(Outcome::Stopped) => ExitCode::from(3),
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(2)
        }
    }
}
