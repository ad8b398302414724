//! The command-line surface: argument parsing and the commands that do not need
//! a daemon. Output goes to stdout; `--json` gives machine output.

use std::io::Write;
use std::path::PathBuf;

use anyhow::Context;
use clap::{Parser, Subcommand};
use serde::Serialize;

use crate::app;

mod audit;
mod report;
use crate::runbook::{self, Runbook};
use crate::yaml::Diagnostic;

/// `drover --version`: the crate version and the commit it was built from.
pub const VERSION: &str = concat!(
    env!("CARGO_PKG_VERSION"),
    " (commit ",
    env!("DROVER_COMMIT"),
    ")"
);

/// drover: disaster-recovery runbooks for Open Telekom Cloud storage replication.
#[derive(Debug, Parser)]
#[command(name = "drover", version = VERSION, about, propagate_version = true)]
pub struct Cli {
    /// The command to run.
    #[command(subcommand)]
    pub command: Command,
    /// More log lines on stderr: `-v` info, `-vv` debug (`RUST_LOG` wins).
    /// Without it, commands log warnings and errors only; the daemon and
    /// the simulator, which are services, log at info.
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,
}

/// drover's commands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Check runbook files (or folders of them); exit 0 only if all are valid.
    Validate {
        /// Files or folders (`*.yaml`, `*.yml`).
        #[arg(required = true)]
        paths: Vec<PathBuf>,
        /// Machine-readable output.
        #[arg(long)]
        json: bool,
    },
    /// Print the JSON Schema of runbook files (for editors and linters).
    Schema,
    /// Serve the OTC simulator (IAM, EVS consistency groups, SDRS) for rehearsals and tests.
    Sim(SimArgs),
    /// Run a runbook in the foreground with live progress; exit 0 only on success.
    Run(RunArgs),
    /// Start the simulator in-process and run `evs-switchover` against it.
    Demo {
        /// Config file (default: config/drover.yaml if present).
        #[arg(long)]
        config: Option<PathBuf>,
        /// Machine output (JSON lines).
        #[arg(long)]
        json: bool,
    },
    /// Run the daemon: HTTP API, scheduled drills, approvals, resume of interrupted runs.
    Daemon {
        /// Config file (default: config/drover.yaml if present).
        #[arg(long)]
        config: Option<PathBuf>,
    },
    /// Talk to a running daemon (token from DROVER_TOKEN).
    Runs {
        /// Daemon base URL (default: api.server from the config).
        #[arg(long, env = "DROVER_SERVER")]
        server: Option<String>,
        /// Config file, for the default server.
        #[arg(long)]
        config: Option<PathBuf>,
        /// What to do.
        #[command(subcommand)]
        command: RunsCommand,
    },
    /// Evidence: one run as a self-contained HTML report, or the compliance
    /// summary of a period (`--since 90d`).
    Report(ReportArgs),
    /// Print a shell completion script: `drover completions bash >
    /// /etc/bash_completion.d/drover`, or for zsh or fish.
    Completions {
        /// The shell.
        shell: clap_complete::Shell,
    },
    /// Print the man page (roff), made from these commands:
    /// `drover man > /usr/local/share/man/man1/drover.1`.
    Man,
    /// Read and verify the audit trail.
    Audit {
        /// Config file (default: config/drover.yaml if present).
        #[arg(long, global = true)]
        config: Option<PathBuf>,
        /// What to do.
        #[command(subcommand)]
        command: AuditCommand,
    },
}

/// Options of `drover run`.
#[derive(Debug, clap::Args)]
pub struct RunArgs {
    /// Runbook file, or the name of a runbook in `runbooks.dir`.
    #[arg(required_unless_present = "resume")]
    pub runbook: Option<String>,
    /// Parameter `KEY=VALUE` (repeatable).
    #[arg(short = 'p', long = "param")]
    pub params: Vec<String>,
    /// Send no change: only GET/HEAD requests leave; the rest is printed and recorded.
    #[arg(long)]
    pub dry_run: bool,
    /// Approve `approval` steps as NAME without asking (repeat for several approvers).
    #[arg(long = "approve", value_name = "NAME")]
    pub approve: Vec<String>,
    /// Resume an interrupted run by its id (with the runbook version it started with).
    #[arg(long, value_name = "RUN_ID", conflicts_with_all = ["runbook", "params", "dry_run"])]
    pub resume: Option<String>,
    /// Config file (default: config/drover.yaml if present).
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// Machine output (JSON lines: events, then the summary).
    #[arg(long)]
    pub json: bool,
}

/// Options of `drover report`.
#[derive(Debug, clap::Args)]
pub struct ReportArgs {
    /// The run to report on (its id).
    #[arg(required_unless_present = "since", conflicts_with = "since")]
    pub run: Option<String>,
    /// Summarise the runs of this period instead: `90d`, `12w`, `36h`, or a
    /// date or time (`2026-09-01`).
    #[arg(long, value_name = "WHEN")]
    pub since: Option<String>,
    /// Only this runbook (with `--since`).
    #[arg(long, requires = "since")]
    pub runbook: Option<String>,
    /// Flag a runbook and target whose last successful drill is older than this.
    #[arg(long, default_value = "8d", value_name = "AGE", requires = "since")]
    pub max_drill_age: String,
    /// `html` (a self-contained document) or `json`.
    #[arg(long, default_value = "html", value_parser = ["html", "json"])]
    pub format: String,
    /// Write here instead of stdout.
    #[arg(short = 'o', long = "out", value_name = "FILE")]
    pub out: Option<PathBuf>,
    /// Config file (default: config/drover.yaml if present).
    #[arg(long)]
    pub config: Option<PathBuf>,
}

/// `drover audit` commands.
#[derive(Debug, Subcommand)]
pub enum AuditCommand {
    /// The most recent runs.
    List {
        /// How many.
        #[arg(long, default_value_t = 20)]
        limit: u32,
        /// Machine output.
        #[arg(long)]
        json: bool,
    },
    /// One run: steps, attempts (with intents and reconciliations), approvals.
    Show {
        /// Run id.
        run: String,
        /// Machine output.
        #[arg(long)]
        json: bool,
    },
    /// The audit events, as JSON Lines or CSV.
    Export {
        /// `jsonl` or `csv`.
        #[arg(long, value_parser = ["jsonl", "csv"])]
        format: String,
        /// Only events at or after this time (RFC 3339, or a date such as 2026-11-01).
        #[arg(long)]
        since: Option<String>,
    },
    /// Recompute the hash chain; names the first broken link (exit 1). With
    /// `audit.public_key` configured, stored checkpoints are checked too.
    Verify {
        /// Also prove the chain up to this signed checkpoint was not rewritten
        /// (a file from `drover audit checkpoint`, kept away from the database).
        #[arg(long, value_name = "FILE")]
        checkpoint: Option<PathBuf>,
    },
    /// Sign the chain's current head with the key in DROVER_AUDIT__SIGNING_KEY,
    /// store the checkpoint and print it (or write it to a file).
    Checkpoint {
        /// Write the checkpoint here instead of stdout.
        #[arg(short = 'o', long = "out", value_name = "FILE")]
        out: Option<PathBuf>,
    },
    /// Make a new checkpoint signing key: the private key for the
    /// environment, the public key for the config.
    Keygen,
    /// Copy the whole audit store into an empty database (e.g. SQLite into
    /// PostgreSQL before running several daemons); stop the daemon first.
    Copy {
        /// The target's URL (`postgres://...` or `sqlite://...`); its schema
        /// is created, and it must hold no rows.
        #[arg(long, value_name = "URL")]
        to: String,
    },
}

/// Options of `drover sim`.
#[derive(Debug, clap::Args)]
pub struct SimArgs {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:8090")]
    pub listen: String,
    /// Seed of the random fault draws.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// How long EVS transitions and SDRS jobs take (e.g. `3s`).
    #[arg(long, default_value = "3s", value_parser = parse_duration_arg)]
    pub transition: std::time::Duration,
    /// Lifetime of issued tokens (e.g. `24h`).
    #[arg(long, default_value = "24h", value_parser = parse_duration_arg)]
    pub token_lifetime: std::time::Duration,
    /// Create a healthy EVS consistency group with this id (repeatable).
    #[arg(long = "evs-group")]
    pub evs_groups: Vec<String>,
    /// Create a protected SDRS protection group with this id (repeatable).
    #[arg(long = "sdrs-group")]
    pub sdrs_groups: Vec<String>,
    /// Also create this many healthy EVS groups, `g0001`, `g0002`, ...
    #[arg(long, default_value_t = 0, value_parser = clap::value_parser!(u32).range(0..=100_000))]
    pub evs_group_count: u32,
    /// Also create this many protected SDRS groups, `pg0001`, `pg0002`, ...
    #[arg(long, default_value_t = 0, value_parser = clap::value_parser!(u32).range(0..=100_000))]
    pub sdrs_group_count: u32,
    /// Fault configuration as JSON, or `@FILE` (see the README).
    #[arg(long)]
    pub faults: Option<String>,
}

/// `named`, then `count` more ids `{prefix}0001` and up.
fn numbered(mut named: Vec<String>, prefix: &str, count: u32) -> Vec<String> {
    named.extend((1..=count).map(|i| format!("{prefix}{i:04}")));
    named
}

fn parse_duration_arg(text: &str) -> Result<std::time::Duration, String> {
    crate::runbook::model::parse_duration(text)
}

pub use crate::app::Outcome;
pub use crate::client::RunsCommand;

/// Runs a parsed command, writing its output to `out`.
pub async fn run(cli: Cli, out: &mut dyn Write) -> anyhow::Result<Outcome> {
    match cli.command {
        Command::Sim(args) => sim(args, out).await,
        Command::Run(args) => run_command(args, out).await,
        Command::Demo { config, json } => demo(config, json, out).await,
        Command::Audit { config, command } => audit::audit(config, command, out).await,
        Command::Report(args) => report::report(args, out).await,
        Command::Daemon { config } => daemon(config).await,
        Command::Runs {
            server,
            config,
            command,
        } => crate::client::runs(server, config, command, out).await,
        Command::Validate { paths, json } => validate(&paths, json, out),
        Command::Completions { shell } => {
            let mut command = <Cli as clap::CommandFactory>::command();
            clap_complete::generate(shell, &mut command, "drover", out);
            Ok(Outcome::Success)
        }
        Command::Man => {
            let command = <Cli as clap::CommandFactory>::command();
            clap_mangen::Man::new(command).render(out)?;
            Ok(Outcome::Success)
        }
        Command::Schema => {
            let schema = runbook::schema::runbook_schema();
            writeln!(out, "{}", serde_json::to_string_pretty(&schema)?)?;
            Ok(Outcome::Success)
        }
    }
}

/// A token cancelled by the first Ctrl-C (stop at the next step boundary);
/// a second Ctrl-C exits at once.
fn interrupt_token() -> tokio_util::sync::CancellationToken {
    let token = tokio_util::sync::CancellationToken::new();
    let cancel = token.clone();
    tokio::spawn(async move {
        if tokio::signal::ctrl_c().await.is_ok() {
            eprintln!(
                "stopping at the next step boundary; press Ctrl-C again to exit now (the run stays resumable)"
            );
            cancel.cancel();
        }
        if tokio::signal::ctrl_c().await.is_ok() {
            std::process::exit(130);
        }
    });
    token
}

fn summary_outcome(summary: &crate::engine::RunSummary) -> Outcome {
    match summary.status.as_str() {
        "succeeded" => Outcome::Success,
        "running" => Outcome::Stopped,
        _ => Outcome::Failure,
    }
}

async fn daemon(config_path: Option<PathBuf>) -> anyhow::Result<Outcome> {
    let config = app::load_config(config_path.as_deref())?;
    let listener = tokio::net::TcpListener::bind(config.api_listen)
        .await
        .with_context(|| format!("cannot listen on {} (api.listen)", config.api_listen))?;
    let daemon = crate::daemon::Daemon::new(config, config_path).await?;
    let shutdown = tokio_util::sync::CancellationToken::new();
    crate::daemon::handle_signals(daemon.clone(), shutdown.clone())?;
    let router = crate::api::router(daemon.clone());
    crate::daemon::serve(daemon, router, listener, shutdown).await?;
    Ok(Outcome::Success)
}

impl Cli {
    /// The log format the command asks for (the daemon's comes from its config).
    pub fn log_format(&self) -> crate::config::LogFormat {
        match &self.command {
            Command::Daemon { config } => crate::config::Config::load(config.as_deref())
                .map(|c| c.log_format)
                .unwrap_or_default(),
            _ => crate::config::LogFormat::Text,
        }
    }

    /// The log level when `RUST_LOG` does not set one. A command's progress
    /// goes to stdout; its log lines would only repeat it.
    pub fn log_level(&self) -> &'static str {
        let service = matches!(self.command, Command::Daemon { .. } | Command::Sim(_));
        match (self.verbose, service) {
            (0, false) => "warn",
            (0, true) | (1, _) => "info",
            (2, _) => "debug",
            _ => "trace",
        }
    }
}

async fn run_command(args: RunArgs, out: &mut dyn Write) -> anyhow::Result<Outcome> {
    let config = app::load_config(args.config.as_deref())?;
    let options = app::RunOptions {
        runbook: args.runbook,
        params: args.params,
        dry_run: args.dry_run,
        json: args.json,
        approve: args.approve,
        resume: args.resume,
        requested_by: std::env::var("USER").unwrap_or_else(|_| "operator".into()),
    };
    let summary = app::run(&config, options, interrupt_token()).await?;
    if args.json {
        writeln!(out, "{}", serde_json::to_string(&summary)?)?;
    } else {
        writeln!(out, "{}", app::describe_summary(&summary))?;
    }
    Ok(summary_outcome(&summary))
}

async fn demo(config: Option<PathBuf>, json: bool, out: &mut dyn Write) -> anyhow::Result<Outcome> {
    let config = app::load_config(config.as_deref())?;
    let (summary, database) = app::demo(&config, json, interrupt_token()).await?;
    if json {
        writeln!(out, "{}", serde_json::to_string(&summary)?)?;
    } else {
        writeln!(out, "{}", app::describe_summary(&summary))?;
        writeln!(
            out,
            "audit database: {database} (drover audit list, drover audit verify)"
        )?;
    }
    Ok(summary_outcome(&summary))
}

async fn sim(args: SimArgs, out: &mut dyn Write) -> anyhow::Result<Outcome> {
    use crate::sim::{SimConfig, Simulator, faults::Faults};
    let faults: Faults = match &args.faults {
        None => Faults::default(),
        Some(text) => {
            let json = match text.strip_prefix('@') {
                Some(path) => std::fs::read_to_string(path)
                    .with_context(|| format!("reading faults file {path}"))?,
                None => text.clone(),
            };
            serde_json::from_str(&json).context("--faults: invalid fault configuration")?
        }
    };
    let config = SimConfig {
        seed: args.seed,
        transition: args.transition,
        token_lifetime: args.token_lifetime,
        evs_groups: numbered(args.evs_groups, "g", args.evs_group_count),
        sdrs_groups: numbered(args.sdrs_groups, "pg", args.sdrs_group_count),
        faults,
        ..SimConfig::default()
    };
    let simulator = Simulator::new(config).map_err(|e| anyhow::anyhow!("--faults: {e}"))?;
    let project = simulator.credentials().project_id;
    let listener = tokio::net::TcpListener::bind(&args.listen)
        .await
        .with_context(|| format!("cannot listen on {}", args.listen))?;
    let addr = listener.local_addr()?;
    let shutdown = tokio_util::sync::CancellationToken::new();
    let stop = shutdown.clone();
    tokio::spawn(async move {
        let _ = tokio::signal::ctrl_c().await;
        stop.cancel();
    });
    writeln!(
        out,
        "drover sim serving http://{addr} (project {project}); control under /_sim/"
    )?;
    out.flush()?;
    tracing::info!(%addr, "Simulator ready.");
    simulator.serve(listener, shutdown).await?;
    Ok(Outcome::Success)
}

#[derive(Serialize)]
struct FileReport {
    file: PathBuf,
    valid: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    runbook: Option<RunbookSummary>,
    errors: Vec<Diagnostic>,
}

#[derive(Serialize)]
struct RunbookSummary {
    name: String,
    kind: String,
    steps: usize,
    finally: usize,
    schedules: usize,
    digest: String,
}

impl From<&Runbook> for RunbookSummary {
    fn from(r: &Runbook) -> Self {
        RunbookSummary {
            name: r.name.clone(),
            kind: r.kind.to_string(),
            steps: r.steps.len(),
            finally: r.finally.len(),
            schedules: r.schedules.len(),
            digest: r.digest.clone(),
        }
    }
}

fn validate(paths: &[PathBuf], json: bool, out: &mut dyn Write) -> anyhow::Result<Outcome> {
    let files = match runbook::find_files(paths) {
        Ok(files) => files,
        Err(d) => {
            writeln!(out, "{d}")?;
            return Ok(Outcome::Failure);
        }
    };
    let reports: Vec<FileReport> = runbook::load_all(&files)
        .into_iter()
        .map(|(file, result)| match result {
            Ok(r) => FileReport {
                file,
                valid: true,
                runbook: Some((&r).into()),
                errors: Vec::new(),
            },
            Err(errors) => FileReport {
                file,
                valid: false,
                runbook: None,
                errors,
            },
        })
        .collect();
    let invalid = reports.iter().filter(|r| !r.valid).count();
    if json {
        serde_json::to_writer_pretty(&mut *out, &reports).context("writing JSON")?;
        writeln!(out)?;
    } else {
        for r in &reports {
            match &r.runbook {
                Some(s) if r.valid => writeln!(
                    out,
                    "ok    {} ({}, {}, {} steps)",
                    r.file.display(),
                    s.name,
                    s.kind,
                    s.steps + s.finally
                )?,
                _ => {
                    for e in &r.errors {
                        writeln!(out, "error {e}")?;
                    }
                }
            }
        }
        let errors: usize = reports.iter().map(|r| r.errors.len()).sum();
        if files.is_empty() {
            writeln!(out, "no runbook files found")?;
        } else if invalid == 0 {
            writeln!(out, "{} runbook(s) valid", files.len())?;
        } else {
            writeln!(
                out,
                "{invalid} of {} runbook file(s) invalid, {errors} error(s)",
                files.len()
            )?;
        }
    }
    Ok(if invalid == 0 && !files.is_empty() {
        Outcome::Success
    } else {
        Outcome::Failure
    })
}
