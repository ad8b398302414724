//! `drover audit`: reading, exporting, verifying, checkpointing and copying
//! the audit trail of the configured store.

use std::io::Write;
use std::path::PathBuf;

use anyhow::Context;

use super::AuditCommand;
use crate::app::{self, Outcome};
use crate::store::checkpoint::{Checkpoint, Mismatch};
use crate::store::{AttemptKind, AttemptRecord};

pub(super) async fn audit(
    config: Option<PathBuf>,
    command: AuditCommand,
    out: &mut dyn Write,
) -> anyhow::Result<Outcome> {
    let config = app::load_config(config.as_deref())?;
    let store = app::open_store(&config).await?;
    match command {
        AuditCommand::List { limit, json } => {
            let runs = store.runs(limit).await?;
            if json {
                writeln!(out, "{}", serde_json::to_string_pretty(&runs)?)?;
            } else if runs.is_empty() {
                writeln!(
                    out,
                    "no runs recorded in {}",
                    crate::redact::url(&config.database_url)
                )?;
            } else {
                writeln!(
                    out,
                    "{:<36}  {:<24}  {:<10}  {:<9}  {:<12}  created",
                    "run", "runbook", "status", "trigger", "by"
                )?;
                for r in runs {
                    let dry = if r.dry_run { " (dry run)" } else { "" };
                    writeln!(
                        out,
                        "{:<36}  {:<24}  {:<10}  {:<9}  {:<12}  {}{dry}",
                        r.id, r.runbook, r.status, r.trigger, r.requested_by, r.created_at
                    )?;
                }
            }
            Ok(Outcome::Success)
        }
        AuditCommand::Show { run, json } => {
            let Some(record) = store.run(&run).await? else {
                anyhow::bail!(
                    "run {run} not found in {}",
                    crate::redact::url(&config.database_url)
                );
            };
            let steps = store.steps(&run).await?;
            let attempts = store.attempts(&run).await?;
            let approvals = store.approvals(&run).await?;
            if json {
                let doc = serde_json::json!({ "run": record, "steps": steps, "attempts": attempts, "approvals": approvals });
                writeln!(out, "{}", serde_json::to_string_pretty(&doc)?)?;
                return Ok(Outcome::Success);
            }
            writeln!(
                out,
                "run {} ({}, {}): {}",
                record.id, record.runbook, record.kind, record.status
            )?;
            writeln!(
                out,
                "  (each request is shown at the time it was sent, with the cloud's answer)"
            )?;
            writeln!(
                out,
                "  runbook version {} from {}",
                record.runbook_digest, record.runbook_path
            )?;
            writeln!(
                out,
                "  {} by {} at {}; params {}",
                record.trigger,
                record.requested_by,
                record.created_at,
                serde_json::to_string(&record.params)?
            )?;
            if let Some(end) = &record.finished_at {
                writeln!(
                    out,
                    "  finished {end}{}",
                    record
                        .error
                        .as_deref()
                        .map(|e| format!(": {e}"))
                        .unwrap_or_default()
                )?;
            }
            if let Some(at) = &record.recovered_at {
                writeln!(out, "  recovered (all main steps done) at {at}")?;
            }
            for step in &steps {
                let error = step
                    .error
                    .as_deref()
                    .map(|e| format!(" {e}"))
                    .unwrap_or_default();
                // A block's items each head their own steps and attempts.
                let indent = match crate::engine::plan::split_item_id(&step.step_id) {
                    Some((block, index, None)) => {
                        let label = crate::engine::plan::stored_item_label(&steps, block, index);
                        writeln!(
                            out,
                            "  item {:<18} {:<9} {label}{error}",
                            step.step_id, step.status
                        )?;
                        "    "
                    }
                    Some((_, _, Some(local))) => {
                        writeln!(out, "    step {local:<16} {:<9}{error}", step.status)?;
                        "      "
                    }
                    None => {
                        writeln!(out, "  step {:<18} {:<9}{error}", step.step_id, step.status)?;
                        "    "
                    }
                };
                let of_step: Vec<&AttemptRecord> = attempts
                    .iter()
                    .filter(|a| a.step_id == step.step_id)
                    .collect();
                for a in &of_step {
                    // A re-read is shown with the intent it settled.
                    if a.kind == AttemptKind::Reconcile
                        && of_step
                            .iter()
                            .any(|i| i.kind == AttemptKind::Intent && i.attempt == a.attempt)
                    {
                        continue;
                    }
                    writeln!(out, "{indent}{}", attempt_line(a, &of_step))?;
                }
                for ap in approvals.iter().filter(|a| a.step_id == step.step_id) {
                    writeln!(out, "{indent}{} {} by {}", ap.at, ap.decision, ap.approver)?;
                }
            }
            Ok(Outcome::Success)
        }
        AuditCommand::Export { format, since } => {
            let since = since.as_deref().map(parse_since).transpose()?;
            let events = store.events(since).await?;
            if format == "jsonl" {
                for e in events {
                    writeln!(out, "{}", serde_json::to_string(&e)?)?;
                }
            } else {
                let mut w = csv::Writer::from_writer(Vec::new());
                w.write_record([
                    "seq",
                    "at",
                    "actor",
                    "kind",
                    "run_id",
                    "step_id",
                    "data",
                    "prev_hash",
                    "hash",
                ])?;
                for e in events {
                    w.write_record([
                        e.seq.to_string(),
                        e.at,
                        e.actor,
                        e.kind,
                        e.run_id.unwrap_or_default(),
                        e.step_id.unwrap_or_default(),
                        e.data.to_string(),
                        e.prev_hash,
                        e.hash,
                    ])?;
                }
                out.write_all(&w.into_inner()?)?;
            }
            Ok(Outcome::Success)
        }
        AuditCommand::Copy { to } => {
            let target = crate::store::Store::open(&to).await?;
            let counts = store.copy_into(&target).await?;
            let rows: Vec<String> = counts.iter().map(|(t, n)| format!("{t} {n}")).collect();
            writeln!(
                out,
                "copied into {}: {}",
                crate::redact::url(&to),
                rows.join(", ")
            )?;
            match target.verify().await? {
                Ok(count) => {
                    writeln!(
                        out,
                        "audit chain intact in the copy: {count} events verified"
                    )?;
                    Ok(Outcome::Success)
                }
                Err(broken) => {
                    writeln!(out, "the copy does not verify: {broken}")?;
                    Ok(Outcome::Failure)
                }
            }
        }
        AuditCommand::Verify { checkpoint: None } => {
            let events = store.events(None).await?;
            let count = match crate::store::audit::verify(&events) {
                Ok(count) => count,
                Err(broken) => {
                    writeln!(out, "{broken}")?;
                    return Ok(Outcome::Failure);
                }
            };
            writeln!(out, "audit chain intact: {count} events verified")?;
            let Some(trusted) = &config.audit.public_key else {
                return Ok(Outcome::Success);
            };
            let (mut checked, mut foreign) = (0, 0);
            for checkpoint in store.checkpoints(u32::MAX).await? {
                match checkpoint.verify(trusted, &events) {
                    Ok(_) => checked += 1,
                    Err(Mismatch::OtherKey { .. }) => foreign += 1,
                    Err(e) => {
                        writeln!(out, "stored checkpoint of event {}: {e}", checkpoint.seq)?;
                        return Ok(Outcome::Failure);
                    }
                }
            }
            writeln!(
                out,
                "{checked} stored checkpoint(s) signed by the configured key hold{}",
                if foreign > 0 {
                    format!("; {foreign} signed by another key not checked")
                } else {
                    String::new()
                }
            )?;
            Ok(Outcome::Success)
        }
        AuditCommand::Verify {
            checkpoint: Some(path),
        } => {
            let text = std::fs::read_to_string(&path)
                .with_context(|| format!("cannot read checkpoint file {}", path.display()))?;
            let checkpoint: Checkpoint = serde_json::from_str(&text)
                .with_context(|| format!("{}: not a drover audit checkpoint", path.display()))?;
            let trusted = config.audit.public_key.as_ref().context(
                "audit.public_key is not configured: a checkpoint is verified with the key from the config, never the one the file names",
            )?;
            let events = store.events(None).await?;
            match checkpoint.verify(trusted, &events) {
                Ok(count) => {
                    writeln!(
                        out,
                        "audit chain intact: {count} events verified; event {} still has the hash signed at {} ({})",
                        checkpoint.seq, checkpoint.at, checkpoint.head
                    )?;
                    Ok(Outcome::Success)
                }
                Err(e) => {
                    writeln!(out, "{}: {e}", path.display())?;
                    Ok(Outcome::Failure)
                }
            }
        }
        AuditCommand::Checkpoint { out: file } => {
            let key = config.audit.signing_key.as_ref().context(
                "no signing key: set DROVER_AUDIT__SIGNING_KEY (make one with `drover audit keygen`)",
            )?;
            let actor = std::env::var("USER").unwrap_or_else(|_| "operator".into());
            let Some(checkpoint) = store.checkpoint(key, &actor).await? else {
                anyhow::bail!("the audit trail is empty: nothing to sign yet");
            };
            let json = serde_json::to_string_pretty(&checkpoint)?;
            match file {
                Some(path) => {
                    std::fs::write(&path, format!("{json}\n"))
                        .with_context(|| format!("cannot write {}", path.display()))?;
                    writeln!(
                        out,
                        "checkpoint of event {} (head {}) written to {}; keep a copy where the database's owners cannot change it",
                        checkpoint.seq,
                        checkpoint.head,
                        path.display()
                    )?;
                }
                None => writeln!(out, "{json}")?,
            }
            Ok(Outcome::Success)
        }
        AuditCommand::Keygen => {
            let key = crate::signing::SigningKey::generate();
            writeln!(
                out,
                "# The private key: only in the environment of whoever signs (the daemon), never in a file under version control.\nDROVER_AUDIT__SIGNING_KEY={}\n# The public key, for config/drover.yaml (audit.public_key) and for auditors:\naudit:\n  public_key: {}",
                key.to_base64(),
                key.public_key()
            )?;
            Ok(Outcome::Success)
        }
    }
}

/// One request of a step: when it was sent, what it was, what the cloud
/// answered and, for an intent, what settled it.
fn attempt_line(a: &AttemptRecord, of_step: &[&AttemptRecord]) -> String {
    let answer = match (a.http_status, a.error_code.as_deref()) {
        (Some(status), Some(code)) => format!("answered {status} {code}"),
        (Some(status), None) => format!("answered {status}"),
        (None, _) if a.kind == AttemptKind::Intent && a.outcome.is_none() => {
            "answer never recorded".to_string()
        }
        (None, _) => match (&a.error_message, a.kind) {
            (Some(why), AttemptKind::Read | AttemptKind::Intent) => format!("no answer ({why})"),
            _ => String::new(),
        },
    };
    let outcome = a
        .outcome
        .as_deref()
        .unwrap_or("NOT SETTLED: reconciled at resume");
    let mut line = format!(
        "{} #{} {:<10} {} -> {}",
        a.started_at,
        a.attempt,
        a.kind,
        a.request,
        if answer.is_empty() {
            outcome.to_string()
        } else {
            format!("{answer}; {outcome}")
        }
    );
    if a.kind == AttemptKind::Intent
        && let Some(re) = of_step
            .iter()
            .find(|r| r.kind == AttemptKind::Reconcile && r.attempt == a.attempt)
    {
        line.push_str(&format!(
            " (settled by the re-read at {}: {})",
            re.started_at,
            re.error_message
                .as_deref()
                .unwrap_or("no evidence recorded")
        ));
    } else if a.kind == AttemptKind::Reconcile
        && let Some(evidence) = &a.error_message
    {
        line.push_str(&format!(" ({evidence})"));
    }
    line
}

pub(super) fn parse_since(text: &str) -> anyhow::Result<chrono::DateTime<chrono::Utc>> {
    if let Ok(t) = chrono::DateTime::parse_from_rfc3339(text) {
        return Ok(t.with_timezone(&chrono::Utc));
    }
    chrono::NaiveDate::parse_from_str(text, "%Y-%m-%d")
        .map(|d| d.and_hms_opt(0, 0, 0).unwrap_or_default().and_utc())
        .map_err(|_| {
            anyhow::anyhow!(
                "--since {text}: expected an RFC 3339 time or a date such as 2026-11-01"
            )
        })
}
