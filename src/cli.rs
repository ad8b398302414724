//! The command-line surface: argument parsing and the commands that do not need
//! a daemon. Output goes to stdout; `--json` gives machine output.

use std::io::Write;
use std::path::PathBuf;

use anyhow::Context;
use clap::{Parser, Subcommand};
use serde::Serialize;

use crate::runbook::{self, Runbook};
use crate::yaml::Diagnostic;

/// drover: disaster-recovery runbooks for Open Telekom Cloud storage replication.
#[derive(Debug, Parser)]
#[command(name = "drover", version, about, propagate_version = true)]
pub struct Cli {
    /// The command to run.
    #[command(subcommand)]
    pub command: Command,
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
    /// Fault configuration as JSON, or `@FILE` (see the README).
    #[arg(long)]
    pub faults: Option<String>,
}

fn parse_duration_arg(text: &str) -> Result<std::time::Duration, String> {
    crate::runbook::model::parse_duration(text)
}

/// What a command wants the process to exit with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Everything succeeded.
    Success,
    /// The command ran and found a failure (invalid runbook, failed run).
    Failure,
}

/// Runs a parsed command, writing its output to `out`.
pub async fn run(cli: Cli, out: &mut dyn Write) -> anyhow::Result<Outcome> {
    match cli.command {
        Command::Sim(args) => sim(args, out).await,
        Command::Validate { paths, json } => validate(&paths, json, out),
        Command::Schema => {
            let schema = runbook::schema::runbook_schema();
            writeln!(out, "{}", serde_json::to_string_pretty(&schema)?)?;
            Ok(Outcome::Success)
        }
    }
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
        evs_groups: args.evs_groups,
        sdrs_groups: args.sdrs_groups,
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
    let mut reports: Vec<FileReport> = files
        .iter()
        .map(|file| match runbook::load(file) {
            Ok(r) => FileReport {
                file: file.clone(),
                valid: true,
                runbook: Some((&r).into()),
                errors: Vec::new(),
            },
            Err(errors) => FileReport {
                file: file.clone(),
                valid: false,
                runbook: None,
                errors,
            },
        })
        .collect();
    check_unique_names(&mut reports);
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

/// Two files with one runbook name would make runs ambiguous.
fn check_unique_names(reports: &mut [FileReport]) {
    let mut seen: std::collections::HashMap<String, PathBuf> = std::collections::HashMap::new();
    for r in reports.iter_mut() {
        let Some(s) = &r.runbook else { continue };
        if let Some(first) = seen.get(&s.name) {
            r.valid = false;
            r.errors.push(Diagnostic {
                file: r.file.clone(),
                loc: crate::yaml::Loc::Unknown,
                step: None,
                message: format!(
                    "runbook name `{}` is already used by {}",
                    s.name,
                    first.display()
                ),
            });
        } else {
            seen.insert(s.name.clone(), r.file.clone());
        }
    }
}
