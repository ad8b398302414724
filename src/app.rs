//! Wiring for the commands that execute runs: config -> store, cloud client,
//! engine; runbook lookup by name or path; live progress output; the demo.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, anyhow};
use secrecy::SecretString;
use tokio_util::sync::CancellationToken;

mod progress;

pub use progress::{PLAN_VIEW_ITEMS, PlanView, progress_printer};

use crate::cloud::CloudClient;
use crate::config::{CloudAuth, CloudConfig, Config};
use crate::engine::{Approvals, Engine, Prompted, RunRequest, RunSummary};
use crate::runbook::{self, Runbook};
use crate::sim::faults::{FaultRule, Faults};
use crate::sim::{SimConfig, Simulator};
use crate::store::{RunStatus, StepStatus, Store, Trigger};

/// What a command wants the process to exit with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Everything succeeded.
    Success,
    /// The command ran and found a failure (invalid runbook, failed run).
    Failure,
    /// The run stopped unfinished and is resumable (interrupted, or waiting
    /// for an approval nobody could give).
    Stopped,
}

/// Loads config, reporting every problem.
pub fn load_config(path: Option<&Path>) -> anyhow::Result<Config> {
    Config::load(path).map_err(|errors| {
        anyhow!(
            "invalid configuration:\n{}",
            errors
                .iter()
                .map(|e| format!("  {e}"))
                .collect::<Vec<_>>()
                .join("\n")
        )
    })
}

/// Opens the configured store.
pub async fn open_store(config: &Config) -> anyhow::Result<Store> {
    let node = crate::store::Node::this_process(config.node.name.as_deref());
    Ok(Store::open(&config.database_url)
        .await?
        .with_node(node, config.node.claim_ttl))
}

/// A runbook by path, or by name (file stem or `name:`) from the runbooks folder.
pub fn find_runbook(dir: &Path, name_or_path: &str) -> anyhow::Result<Runbook> {
    let load = |path: &Path| {
        runbook::load(path).map_err(|errors| {
            let lines: Vec<String> = errors.iter().map(|e| format!("  {e}")).collect();
            anyhow!("{} is invalid:\n{}", path.display(), lines.join("\n"))
        })
    };
    let as_path = Path::new(name_or_path);
    if as_path.is_file() {
        return load(as_path);
    }
    let candidates = runbook::find_files(&[dir.to_path_buf()]).map_err(|d| anyhow!("{d}"))?;
    if let Some(path) = candidates
        .iter()
        .find(|p| p.file_stem().and_then(|s| s.to_str()) == Some(name_or_path))
    {
        return load(path);
    }
    candidates
        .iter()
        .filter_map(|p| runbook::load(p).ok())
        .find(|r| r.name == name_or_path)
        .ok_or_else(|| {
            anyhow!(
                "no runbook `{name_or_path}`: not a file, and not a runbook name in {}",
                dir.display()
            )
        })
}

/// Parses `-p key=value` pairs.
pub fn parse_params(pairs: &[String]) -> anyhow::Result<BTreeMap<String, String>> {
    pairs
        .iter()
        .map(|p| {
            p.split_once('=')
                .map(|(k, v)| (k.trim().to_string(), v.to_string()))
                .ok_or_else(|| anyhow!("-p {p}: expected KEY=VALUE"))
        })
        .collect()
}

/// One readable paragraph about how a run ended.
pub fn describe_summary(summary: &RunSummary) -> String {
    // Items of blocks are counted in their block's line, not named one by one.
    let done: Vec<&str> = summary
        .steps
        .iter()
        .filter(|(id, s)| *s == StepStatus::Succeeded && !id.contains('['))
        .map(|(id, _)| id.as_str())
        .collect();
    let mut text = match summary.status {
        RunStatus::Succeeded => format!(
            "run {} ({}) succeeded{}",
            summary.run_id,
            summary.runbook,
            summary
                .recovery_ms
                .map(|ms| recovery_text(ms, summary.rto_ms))
                .unwrap_or_default()
        ),
        RunStatus::Running => match &summary.error {
            Some(why) => format!(
                "run {id} ({}) is waiting for approval: {why}. It is resumable: approve with `drover run --resume {id} --approve NAME`, or with `drover runs approve {id}` when a daemon owns the run",
                summary.runbook,
                id = summary.run_id
            ),
            None => format!(
                "run {} ({}) stopped at a step boundary; it is resumable: drover run --resume {}",
                summary.run_id, summary.runbook, summary.run_id
            ),
        },
        _ => format!(
            "run {} ({}) failed: {}. Steps that completed: {}",
            summary.run_id,
            summary.runbook,
            summary.error.as_deref().unwrap_or("unknown error"),
            if done.is_empty() {
                "none".to_string()
            } else {
                done.join(", ")
            }
        ),
    };
    if let Some(p) = &summary.production {
        // SDRS names sides, EVS names availability zones.
        let place = |x: &str| match x {
            "source" | "target" => format!("on the {x} side"),
            az => format!("in {az}"),
        };
        if p.now == p.was {
            text.push_str(&format!("; production is {}", place(&p.now)));
        } else {
            text.push_str(&format!(
                "; production is now {} (was {})",
                place(&p.now),
                place(&p.was)
            ));
        }
    }
    if summary.dry_run {
        text.push_str(" (dry run: no change was sent)");
    }
    text.push_str(&format!(
        ". Audit trail: drover audit show {}",
        summary.run_id
    ));
    text
}

/// `1m05s`, `12.3s`.
pub fn human(d: Duration) -> String {
    let secs = d.as_secs_f64();
    if secs < 60.0 {
        format!("{secs:.1}s")
    } else {
        format!("{}m{:02}s", d.as_secs() / 60, d.as_secs() % 60)
    }
}

/// "; recovery time 4m12s", against the runbook's objective when it sets one.
fn recovery_text(ms: u64, rto_ms: Option<u64>) -> String {
    let took = human(Duration::from_millis(ms));
    match rto_ms {
        Some(rto) => format!(
            "; recovery time {took}, {} the RTO of {}",
            if ms <= rto { "within" } else { "over" },
            crate::runbook::value::format_duration(Duration::from_millis(rto))
        ),
        None => format!("; recovery time {took}"),
    }
}

/// Everything `drover run` needs.
pub struct RunOptions {
    /// Runbook name or path (absent with `resume`).
    pub runbook: Option<String>,
    /// `-p` pairs.
    pub params: Vec<String>,
    pub dry_run: bool,
    /// Machine output.
    pub json: bool,
    /// `--approve` names; empty means ask on the terminal.
    pub approve: Vec<String>,
    /// Run to resume.
    pub resume: Option<String>,
    /// Who is running it.
    pub requested_by: String,
}

/// Executes `drover run` against the configured cloud.
pub async fn run(
    config: &Config,
    options: RunOptions,
    cancel: CancellationToken,
) -> anyhow::Result<RunSummary> {
    let store = open_store(config).await?;
    let client = CloudClient::new(&config.cloud)?;
    execute(
        store,
        client,
        &config.engine,
        &config.runbooks_dir,
        options,
        cancel,
    )
    .await
}

async fn execute(
    store: Store,
    client: CloudClient,
    settings: &crate::config::EngineConfig,
    dir: &Path,
    options: RunOptions,
    cancel: CancellationToken,
) -> anyhow::Result<RunSummary> {
    let approvals = if options.approve.is_empty() {
        Approvals::Ask(Arc::new(prompt_approvers))
    } else {
        Approvals::Given(options.approve.clone())
    };
    let engine = Engine::new(
        Arc::new(client),
        store,
        progress_printer(options.json),
        approvals,
    )
    .with_settings(settings);
    let summary = match &options.resume {
        Some(run_id) => engine.execute(run_id, &cancel).await?,
        None => {
            let name = options
                .runbook
                .as_deref()
                .ok_or_else(|| anyhow!("a runbook name or path is needed"))?;
            let runbook = find_runbook(dir, name)?;
            let request = RunRequest {
                runbook,
                params: parse_params(&options.params)?,
                trigger: Trigger::Cli,
                requested_by: options.requested_by.clone(),
                idempotency: None,
                dry_run: options.dry_run,
                fire: None,
            };
            engine.run(request, &cancel).await?
        }
    };
    Ok(summary)
}

/// The demo: the simulator in-process with a seeded group and some injected
/// 503s, and `evs-switchover` run against it. Returns the summary and the
/// database URL.
pub async fn demo(
    config: &Config,
    json: bool,
    cancel: CancellationToken,
) -> anyhow::Result<(RunSummary, String)> {
    let mut faults = Faults::default();
    faults.rules.insert(
        "*".into(),
        FaultRule {
            p503: 0.2,
            ..FaultRule::default()
        },
    );
    let sim = Simulator::new(SimConfig {
        evs_groups: vec!["demo-group".into()],
        transition: Duration::from_secs(4),
        seed: 7,
        faults,
        ..SimConfig::default()
    })
    .map_err(|e| anyhow!(e))?;
    let creds = sim.credentials();
    let shutdown = CancellationToken::new();
    let addr = sim
        .clone()
        .spawn("127.0.0.1:0", shutdown.clone())
        .await
        .context("starting the simulator")?;
    let url = format!("http://{addr}");
    let cloud = CloudConfig {
        iam_endpoint: url.clone(),
        evs_endpoint: Some(url.clone()),
        sdrs_endpoint: Some(url),
        project_id: Some(creds.project_id.clone()),
        project_name: None,
        auth: CloudAuth::Password {
            user: creds.user,
            domain: creds.domain,
            password: SecretString::from(creds.password),
        },
        ..config.cloud.clone()
    };
    let store = open_store(config).await?;
    let client = CloudClient::new(&cloud)?;
    if !json {
        println!(
            "drover demo: simulator at http://{addr} with group demo-group; 20% of requests answer 503"
        );
    }
    let options = RunOptions {
        runbook: Some(
            config
                .runbooks_dir
                .join("evs-switchover.yaml")
                .display()
                .to_string(),
        ),
        params: vec!["group_id=demo-group".into()],
        dry_run: false,
        json,
        approve: vec!["demo-approver".into()],
        resume: None,
        requested_by: "demo".into(),
    };
    let summary = execute(
        store,
        client,
        &config.engine,
        &config.runbooks_dir,
        options,
        cancel,
    )
    .await;
    shutdown.cancel();
    Ok((summary?, crate::redact::url(&config.database_url)))
}

/// Asks on the terminal for `needed` distinct approvers.
pub fn prompt_approvers(prompt: &str, needed: usize) -> Result<Prompted, String> {
    use std::io::{BufRead, Write};
    let stdin = std::io::stdin();
    let mut lines = stdin.lock().lines();
    let mut err = std::io::stderr();
    let mut names: Vec<String> = Vec::new();
    let default_name = std::env::var("USER").unwrap_or_else(|_| "operator".into());
    while names.len() < needed {
        let _ = write!(
            err,
            "\n{prompt}\nApprove? Type your name to approve ({} of {needed}), or 'no' to refuse [{default_name}]: ",
            names.len() + 1
        );
        let _ = err.flush();
        let Some(line) = lines.next() else {
            let _ = writeln!(err);
            return Ok(Prompted::NoInput);
        };
        let line = line.map_err(|e| e.to_string())?;
        let answer = line.trim();
        let name = if answer.is_empty() {
            default_name.as_str()
        } else {
            answer
        };
        match name {
            "no" | "n" | "NO" => return Ok(Prompted::Refused(format!("`{prompt}` was refused"))),
            name if names.iter().any(|n| n == name) => {
                let _ = writeln!(
                    err,
                    "{name} has approved already; another approver is needed."
                );
            }
            name => names.push(name.to_string()),
        }
    }
    Ok(Prompted::Approved(names))
}

#[cfg(test)]
mod tests {
    #[test]
    fn recovery_time_is_read_against_the_rto() {
        assert_eq!(super::recovery_text(4_000, None), "; recovery time 4.0s");
        assert_eq!(
            super::recovery_text(4_000, Some(900_000)),
            "; recovery time 4.0s, within the RTO of 15m"
        );
        assert_eq!(
            super::recovery_text(960_000, Some(900_000)),
            "; recovery time 16m00s, over the RTO of 15m"
        );
    }
}
