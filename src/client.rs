//! `drover runs`: the command-line client of a running daemon, for on-call
//! engineers. The token comes from `DROVER_TOKEN` and is never printed.

use std::io::Write;
use std::path::PathBuf;

use anyhow::{Context, anyhow};
use clap::Subcommand;
use serde_json::{Value, json};

use crate::api::{RunCreated, RunDetail};
use crate::app;
use crate::app::Outcome;
use crate::engine::RunEvent;
use crate::store::{RunRecord, RunStatus};

/// `drover runs` commands.
#[derive(Debug, Subcommand)]
pub enum RunsCommand {
    /// Recent runs.
    List {
        /// How many.
        #[arg(long, default_value_t = 20)]
        limit: u32,
        /// Machine output.
        #[arg(long)]
        json: bool,
    },
    /// One run; `--follow` streams its events until it ends.
    Show {
        /// Run id.
        id: String,
        /// Follow live.
        #[arg(long)]
        follow: bool,
        /// Machine output.
        #[arg(long)]
        json: bool,
    },
    /// Start a run.
    Trigger {
        /// Runbook name.
        runbook: String,
        /// Parameter `KEY=VALUE` (repeatable).
        #[arg(short = 'p', long = "param")]
        params: Vec<String>,
        /// Send no change.
        #[arg(long)]
        dry_run: bool,
        /// Repeat-safe key: the same key returns the same run.
        #[arg(long)]
        idempotency_key: Option<String>,
        /// Follow the run until it ends.
        #[arg(long)]
        follow: bool,
    },
    /// Ask a run to stop at its next step boundary.
    Cancel {
        /// Run id.
        id: String,
    },
    /// Approve (or with --reject, reject) the approval a run waits for.
    Approve {
        /// Run id.
        id: String,
        /// Reject instead of approving.
        #[arg(long)]
        reject: bool,
        /// A note for the audit trail.
        #[arg(long)]
        comment: Option<String>,
    },
}

/// The daemon refused the request (its answer is the message).
#[derive(Debug, thiserror::Error)]
#[error("the daemon answered {status}: {message} ({code})")]
struct Refused {
    status: reqwest::StatusCode,
    message: String,
    code: String,
}

struct Client {
    http: reqwest::Client,
    base: String,
    token: String,
}

impl Client {
    fn request(&self, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        self.http
            .request(method, format!("{}{path}", self.base))
            .bearer_auth(&self.token)
    }

    /// Sends, and turns an error answer into its `{code, message}`.
    async fn send(&self, builder: reqwest::RequestBuilder) -> anyhow::Result<reqwest::Response> {
        let response = builder
            .send()
            .await
            .with_context(|| format!("cannot reach the daemon at {}", self.base))?;
        if response.status().is_success() {
            return Ok(response);
        }
        let status = response.status();
        let body: Value = response.json().await.unwrap_or(Value::Null);
        Err(Refused {
            status,
            message: body["message"].as_str().unwrap_or("no message").to_string(),
            code: body["code"].as_str().unwrap_or("no code").to_string(),
        }
        .into())
    }
}

/// Runs a `drover runs` command. A refusal by the daemon is a failure (exit 1),
/// with the daemon's message on stderr; bad input stays an error (exit 2).
pub async fn runs(
    server: Option<String>,
    config: Option<PathBuf>,
    command: RunsCommand,
    out: &mut dyn Write,
) -> anyhow::Result<Outcome> {
    match run_command(server, config, command, out).await {
        Err(e) if e.is::<Refused>() => {
            eprintln!("error: {e}");
            Ok(Outcome::Failure)
        }
        other => other,
    }
}

async fn run_command(
    server: Option<String>,
    config: Option<PathBuf>,
    command: RunsCommand,
    out: &mut dyn Write,
) -> anyhow::Result<Outcome> {
    let base = match server {
        Some(s) => s.trim_end_matches('/').to_string(),
        None => app::load_config(config.as_deref())?.api_server,
    };
    let token =
        std::env::var("DROVER_TOKEN").map_err(|_| anyhow!("set DROVER_TOKEN to your API token"))?;
    let client = Client {
        http: reqwest::Client::new(),
        base,
        token,
    };
    match command {
        RunsCommand::List { limit, json } => {
            let runs: Vec<RunRecord> = client
                .send(client.request(reqwest::Method::GET, &format!("/v1/runs?limit={limit}")))
                .await?
                .json()
                .await?;
            if json {
                writeln!(out, "{}", serde_json::to_string_pretty(&runs)?)?;
            } else {
                for r in runs {
                    writeln!(
                        out,
                        "{:<36}  {:<24}  {:<10}  {:<9}  {:<16}  {}",
                        r.id, r.runbook, r.status, r.trigger, r.requested_by, r.created_at
                    )?;
                }
            }
            Ok(Outcome::Success)
        }
        RunsCommand::Show { id, follow, json } => {
            if follow {
                return follow_run(&client, &id, json, out).await;
            }
            let detail: RunDetail = client
                .send(client.request(reqwest::Method::GET, &format!("/v1/runs/{id}")))
                .await?
                .json()
                .await?;
            if json {
                writeln!(out, "{}", serde_json::to_string_pretty(&detail)?)?;
            } else {
                let r = &detail.run;
                writeln!(
                    out,
                    "run {} ({}): {} (by {}, {})",
                    r.id, r.runbook, r.status, r.requested_by, r.trigger
                )?;
                if let Some(e) = &r.error {
                    writeln!(out, "  {e}")?;
                }
                for s in &detail.steps {
                    writeln!(
                        out,
                        "  {:<18} {}{}",
                        s.step_id,
                        s.status,
                        s.error
                            .as_deref()
                            .map(|e| format!(": {e}"))
                            .unwrap_or_default()
                    )?;
                }
                for a in &detail.approvals {
                    writeln!(out, "  {} {} by {}", a.step_id, a.decision, a.approver)?;
                }
            }
            Ok(if detail.run.status == "failed" {
                Outcome::Failure
            } else {
                Outcome::Success
            })
        }
        RunsCommand::Trigger {
            runbook,
            params,
            dry_run,
            idempotency_key,
            follow,
        } => {
            let params = app::parse_params(&params)?;
            let mut request = client
                .request(reqwest::Method::POST, "/v1/runs")
                .json(&json!({ "runbook": runbook, "params": params, "dry_run": dry_run }));
            if let Some(key) = idempotency_key {
                request = request.header("Idempotency-Key", key);
            }
            let created: RunCreated = client.send(request).await?.json().await?;
            writeln!(out, "run {} started", created.id)?;
            if follow {
                return follow_run(&client, &created.id, false, out).await;
            }
            Ok(Outcome::Success)
        }
        RunsCommand::Cancel { id } => {
            let answer: Value = client
                .send(client.request(reqwest::Method::POST, &format!("/v1/runs/{id}/cancel")))
                .await?
                .json()
                .await?;
            writeln!(
                out,
                "run {id}: {}",
                answer["message"].as_str().unwrap_or("cancel requested")
            )?;
            Ok(Outcome::Success)
        }
        RunsCommand::Approve {
            id,
            reject,
            comment,
        } => {
            let decision = if reject { "reject" } else { "approve" };
            let answer: Value = client
                .send(
                    client
                        .request(reqwest::Method::POST, &format!("/v1/runs/{id}/approvals"))
                        .json(&json!({ "decision": decision, "comment": comment })),
                )
                .await?
                .json()
                .await?;
            writeln!(
                out,
                "run {id}: step `{}` {} by {}",
                answer["step_id"].as_str().unwrap_or("?"),
                answer["decision"].as_str().unwrap_or("?"),
                answer["approver"].as_str().unwrap_or("?")
            )?;
            Ok(Outcome::Success)
        }
    }
}

/// Streams a run's server-sent events until it ends; exit status follows the run.
async fn follow_run(
    client: &Client,
    id: &str,
    json: bool,
    out: &mut dyn Write,
) -> anyhow::Result<Outcome> {
    let mut response = client
        .send(client.request(reqwest::Method::GET, &format!("/v1/runs/{id}/events")))
        .await?;
    let printer = app::progress_printer(json);
    let mut buffer = String::new();
    let mut outcome = Outcome::Success;
    while let Some(chunk) = response.chunk().await? {
        buffer.push_str(&String::from_utf8_lossy(&chunk));
        while let Some(end) = buffer.find("\n\n") {
            let message: String = buffer.drain(..end + 2).collect();
            let (mut name, mut data) = ("", String::new());
            for line in message.lines() {
                if let Some(n) = line.strip_prefix("event:") {
                    name = n.trim();
                } else if let Some(d) = line.strip_prefix("data:") {
                    data.push_str(d.trim_start());
                }
            }
            if name == "snapshot" {
                let detail: RunDetail =
                    serde_json::from_str(&data).context("reading the run snapshot")?;
                if detail.run.status != "running" {
                    writeln!(out, "run {} already {}", detail.run.id, detail.run.status)?;
                    return Ok(if detail.run.status == "succeeded" {
                        Outcome::Success
                    } else {
                        Outcome::Failure
                    });
                }
                writeln!(
                    out,
                    "following run {} ({})",
                    detail.run.id, detail.run.runbook
                )?;
                continue;
            }
            let Ok(event) = serde_json::from_str::<RunEvent>(&data) else {
                continue;
            };
            printer(&event);
            if let RunEvent::RunFinished { status, error, .. } = &event {
                writeln!(
                    out,
                    "run {id} {status}{}",
                    error
                        .as_deref()
                        .map(|e| format!(": {e}"))
                        .unwrap_or_default()
                )?;
                outcome = if *status == RunStatus::Succeeded {
                    Outcome::Success
                } else {
                    Outcome::Failure
                };
            }
        }
    }
    Ok(outcome)
}
