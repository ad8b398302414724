//! Evidence for auditors: one run as a self-contained HTML document
//! (`drover report RUN`), and the compliance summary of many runs
//! (`drover report --since 90d`, in [`summary`]).
//!
//! A report is built from the store alone (the run's own runbook text, its
//! steps, attempts and approvals, the audit chain and its latest
//! checkpoint), so it shows what was recorded, not what the runbook says
//! today. The HTML carries its styles and its SVG charts inline and a policy
//! that forbids loading anything: no request leaves it when it is opened,
//! archived or printed to PDF. Every recorded value is escaped by the
//! template engine (`minijinja`, auto-escaping `.html` templates).

pub mod summary;
mod timeline;

use std::path::Path;
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::engine::plan::{split_item_id, stored_item_label};
use crate::signing::PublicKey;
use crate::store::checkpoint::Checkpoint;
use crate::store::{ApprovalRecord, AttemptRecord, RunRecord, StepRecord, Store, StoreError};

/// Styles shared by both documents, screen and print.
pub const STYLE: &str = include_str!("report/report.css");

/// Why a report could not be made.
#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    /// No such run in the store.
    #[error("run {0} not found")]
    NotFound(String),
    #[error(transparent)]
    Store(#[from] StoreError),
    /// A template failed to render (a bug, not bad input).
    #[error("cannot render the report: {0}")]
    Render(String),
}

/// What the audit chain said when the report was made.
#[derive(Debug, Clone, Serialize)]
pub struct ChainCheck {
    /// Events verified, when the chain is intact.
    pub verified: Option<u64>,
    /// The first broken link, when it is not.
    pub broken: Option<String>,
    /// The last event's sequence number and hash.
    pub head_seq: i64,
    pub head_hash: String,
    /// The latest stored checkpoint.
    pub checkpoint: Option<Checkpoint>,
    /// Whether it holds for this chain with the configured public key:
    /// `None` when no key is configured (then it is shown, not checked).
    pub checkpoint_holds: Option<bool>,
    /// What was wrong with it.
    pub checkpoint_problem: Option<String>,
}

impl ChainCheck {
    /// Verifies the whole chain, and its latest checkpoint with `trusted`.
    pub async fn of(store: &Store, trusted: Option<&PublicKey>) -> Result<ChainCheck, StoreError> {
        let events = store.events(None).await?;
        let (verified, broken) = match crate::store::audit::verify(&events) {
            Ok(n) => (Some(n), None),
            Err(b) => (None, Some(b.to_string())),
        };
        let (head_seq, head_hash) = events
            .last()
            .map_or((0, crate::store::audit::GENESIS.to_string()), |e| {
                (e.seq, e.hash.clone())
            });
        let checkpoint = store.checkpoints(1).await?.into_iter().next();
        let verdict = match (&checkpoint, trusted) {
            (Some(c), Some(key)) => Some(c.verify(key, &events).map_err(|e| e.to_string())),
            _ => None,
        };
        Ok(ChainCheck {
            verified,
            broken,
            head_seq,
            head_hash,
            checkpoint,
            checkpoint_holds: verdict.as_ref().map(Result::is_ok),
            checkpoint_problem: verdict.and_then(Result::err),
        })
    }
}

/// One step (or item, or item step) of the report.
#[derive(Debug, Clone, Serialize)]
pub struct StepView {
    /// Stored id (`switchover`, `groups[3]`, `groups[3].switchover`).
    pub id: String,
    /// How deep it sits: 0 a runbook step, 1 an item, 2 an item's step.
    pub depth: u8,
    /// An item's label (its group).
    pub label: String,
    pub record: StepRecord,
    pub duration: Option<String>,
    pub attempts: Vec<AttemptRecord>,
    pub approvals: Vec<ApprovalRecord>,
}

/// A run as recorded, with its timeline: what the report and the console's
/// run page show.
#[derive(Debug, Clone, Serialize)]
pub struct RunView {
    pub run: RunRecord,
    /// The runbook text the run started with.
    pub runbook_source: String,
    /// The runbook's `rto`, if its text declares one.
    pub rto: Option<String>,
    /// Trigger to the end of the last main step.
    pub recovery: Option<String>,
    /// Whether the recovery time is within the `rto` (`None` without either).
    pub within_rto: Option<bool>,
    /// Trigger to the end of the run.
    pub duration: Option<String>,
    pub steps: Vec<StepView>,
    pub approvals: Vec<ApprovalRecord>,
    /// Attempts by kind: `(kind, count)`.
    pub attempt_counts: Vec<(String, usize)>,
    pub timeline: timeline::Timeline,
    /// Steps whose action is `approval` (in the runbook version the run started with).
    pub approval_steps: Vec<String>,
}

/// Everything `drover report RUN` shows: the run, and the audit chain's check.
#[derive(Debug, Clone, Serialize)]
pub struct RunReport {
    #[serde(flatten)]
    pub view: RunView,
    pub chain: ChainCheck,
    /// When the report was made.
    pub generated_at: String,
}

/// Reads an RFC 3339 time as stored.
pub(crate) fn time(text: &str) -> Option<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(text)
        .ok()
        .map(|t| t.with_timezone(&Utc))
}

/// The time from `start` to `end`, both as stored.
pub(crate) fn between(start: &str, end: &str) -> Option<Duration> {
    (time(end)? - time(start)?).to_std().ok()
}

/// A duration as people read it: `850ms`, `12.4s`, `3m 05s`, `1h 02m`.
pub fn human(d: Duration) -> String {
    let ms = d.as_millis();
    match ms {
        0..1_000 => format!("{ms}ms"),
        1_000..60_000 => format!("{:.1}s", d.as_secs_f64()),
        60_000..3_600_000 => format!("{}m {:02}s", ms / 60_000, (ms / 1_000) % 60),
        _ => format!("{}h {:02}m", ms / 3_600_000, (ms / 60_000) % 60),
    }
}

/// The runbook's `rto` from the text the run started with.
pub(crate) fn rto_of(run: &RunRecord) -> Option<Duration> {
    crate::runbook::parse(&run.runbook_source, Path::new(&run.runbook_path))
        .ok()?
        .rto
}

impl RunReport {
    /// Gathers the report of `run_id`; the latest checkpoint is checked
    /// with `trusted` when given.
    pub async fn gather(
        store: &Store,
        run_id: &str,
        trusted: Option<&PublicKey>,
    ) -> Result<RunReport, ReportError> {
        Ok(RunReport {
            view: RunView::gather(store, run_id).await?,
            chain: ChainCheck::of(store, trusted).await?,
            generated_at: crate::store::now(),
        })
    }

    /// The self-contained HTML document.
    pub fn to_html(&self) -> Result<String, ReportError> {
        render("run.html", include_str!("report/run.html"), self)
    }
}

impl RunView {
    /// Reads `run_id` with its steps, attempts and approvals.
    pub async fn gather(store: &Store, run_id: &str) -> Result<RunView, ReportError> {
        let run = store
            .run(run_id)
            .await?
            .ok_or_else(|| ReportError::NotFound(run_id.to_string()))?;
        let records = store.steps(run_id).await?;
        let attempts = store.attempts(run_id).await?;
        let approvals = store.approvals(run_id).await?;

        let steps: Vec<StepView> = records
            .iter()
            .map(|s| {
                let (depth, label) = match split_item_id(&s.step_id) {
                    Some((block, index, None)) => (1, stored_item_label(&records, block, index)),
                    Some((_, _, Some(_))) => (2, String::new()),
                    None => (0, String::new()),
                };
                StepView {
                    id: s.step_id.clone(),
                    depth,
                    label,
                    duration: s
                        .started_at
                        .as_deref()
                        .zip(s.finished_at.as_deref())
                        .and_then(|(a, b)| between(a, b))
                        .map(human),
                    record: s.clone(),
                    attempts: attempts
                        .iter()
                        .filter(|a| a.step_id == s.step_id)
                        .cloned()
                        .collect(),
                    approvals: approvals
                        .iter()
                        .filter(|a| a.step_id == s.step_id)
                        .cloned()
                        .collect(),
                }
            })
            .collect();
        let mut attempt_counts: Vec<(String, usize)> = Vec::new();
        for a in &attempts {
            match attempt_counts
                .iter_mut()
                .find(|(k, _)| k == a.kind.as_str())
            {
                Some((_, n)) => *n += 1,
                None => attempt_counts.push((a.kind.as_str().to_string(), 1)),
            }
        }
        let runbook = crate::runbook::parse(&run.runbook_source, Path::new(&run.runbook_path)).ok();
        let rto = runbook.as_ref().and_then(|r| r.rto);
        let approval_steps = runbook
            .iter()
            .flat_map(|r| r.all_steps())
            .filter(|s| s.action.name() == "approval")
            .map(|s| s.id.clone())
            .collect();
        let recovery = run
            .recovered_at
            .as_deref()
            .and_then(|end| between(&run.created_at, end));
        let timeline = timeline::Timeline::of(&run, &steps, &approvals);
        Ok(RunView {
            approval_steps,
            runbook_source: run.runbook_source.clone(),
            rto: rto.map(crate::runbook::value::format_duration),
            within_rto: rto.zip(recovery).map(|(rto, rec)| rec <= rto),
            recovery: recovery.map(human),
            duration: run
                .finished_at
                .as_deref()
                .and_then(|end| between(&run.created_at, end))
                .map(human),
            steps,
            approvals,
            attempt_counts,
            timeline,
            run,
        })
    }
}

/// Renders `source` (an `.html` template, so every value is escaped) with `value`.
pub(crate) fn render(
    name: &str,
    source: &str,
    value: &impl Serialize,
) -> Result<String, ReportError> {
    let mut env = minijinja::Environment::new();
    env.set_undefined_behavior(minijinja::UndefinedBehavior::Strict);
    env.add_template(name, source)
        .and_then(|()| env.add_template("timeline.html", include_str!("report/timeline.html")))
        .map_err(|e| ReportError::Render(e.to_string()))?;
    let template = env
        .get_template(name)
        .map_err(|e| ReportError::Render(e.to_string()))?;
    template
        .render(minijinja::context! { r => minijinja::Value::from(minijinja::value::Serde(value)), style => minijinja::Value::from_safe_string(STYLE.to_string()) })
        .map_err(|e| ReportError::Render(format!("{e:#}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_read_as_people_say_them() {
        for (ms, text) in [
            (850, "850ms"),
            (12_400, "12.4s"),
            (185_000, "3m 05s"),
            (3_720_000, "1h 02m"),
        ] {
            assert_eq!(human(Duration::from_millis(ms)), text, "{ms} ms");
        }
    }
}
