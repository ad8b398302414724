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
pub fn run(cli: Cli, out: &mut dyn Write) -> anyhow::Result<Outcome> {
    match cli.command {
        Command::Validate { paths, json } => validate(&paths, json, out),
        Command::Schema => {
            let schema = runbook::schema::runbook_schema();
            writeln!(out, "{}", serde_json::to_string_pretty(&schema)?)?;
            Ok(Outcome::Success)
        }
    }
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
