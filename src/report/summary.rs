//! The compliance summary (`drover report --since 90d`): per runbook and
//! target, drills and real runs with their outcomes, recovery times against
//! the runbook's `rto` with a trend chart, the age of the last successful
//! drill (flagged past a threshold), and every failure with its cause.
//!
//! A run counts as a **drill** when it rehearses rather than recovers: a
//! runbook of kind `drill`, a scheduled run, or a dry run. Everything else
//! is a real run. The **target** is the run's parameters (`group_id=g1`),
//! which is what tells two uses of one runbook apart.

use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::Serialize;

use super::{ReportError, between, human, render, rto_of, time};
use crate::runbook::Kind;
use crate::store::{RunRecord, RunStatus, Store, Trigger};

/// Outcomes counted.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Counts {
    pub total: usize,
    pub succeeded: usize,
    pub failed: usize,
    pub cancelled: usize,
    pub running: usize,
}

impl Counts {
    fn add(&mut self, status: RunStatus) {
        self.total += 1;
        match status {
            RunStatus::Succeeded => self.succeeded += 1,
            RunStatus::Failed => self.failed += 1,
            RunStatus::Cancelled => self.cancelled += 1,
            RunStatus::Running => self.running += 1,
        }
    }
}

/// One recovery time of a succeeded run.
#[derive(Debug, Clone, Serialize)]
pub struct Recovery {
    pub run_id: String,
    pub at: String,
    pub ms: u64,
    pub text: String,
    pub drill: bool,
    /// Against the `rto` the run's runbook version declared.
    pub within_rto: Option<bool>,
}

/// A run that did not succeed.
#[derive(Debug, Clone, Serialize)]
pub struct Failure {
    pub run_id: String,
    pub at: String,
    pub status: RunStatus,
    pub drill: bool,
    pub cause: String,
}

/// The trend chart's geometry: recovery times left to right in run order.
#[derive(Debug, Clone, Serialize)]
pub struct Trend {
    pub width: f64,
    pub height: f64,
    /// SVG polyline points.
    pub points: String,
    pub dots: Vec<(f64, f64, String)>,
    /// Where the RTO line is drawn, if there is one.
    pub rto_y: Option<f64>,
    pub max_label: String,
}

/// One runbook and target.
#[derive(Debug, Clone, Serialize)]
pub struct Group {
    pub runbook: String,
    pub target: String,
    pub kind: Kind,
    pub drills: Counts,
    pub real: Counts,
    /// The `rto` of the newest run's runbook version.
    pub rto: Option<String>,
    #[serde(skip)]
    rto_limit: Option<Duration>,
    pub recoveries: Vec<Recovery>,
    pub within_rto: usize,
    pub over_rto: usize,
    pub last_successful_drill: Option<String>,
    /// Its age when the summary was made.
    pub drill_age: Option<String>,
    /// No successful drill within the threshold (or none at all).
    pub stale: bool,
    pub failures: Vec<Failure>,
    pub trend: Option<Trend>,
}

/// The whole summary.
#[derive(Debug, Clone, Serialize)]
pub struct Summary {
    pub since: String,
    pub runbook: Option<String>,
    pub generated_at: String,
    pub max_drill_age: String,
    pub runs: usize,
    pub groups: Vec<Group>,
    /// Groups flagged for an old or missing successful drill.
    pub stale: usize,
}

/// Whether `run` rehearses rather than recovers.
pub fn is_drill(run: &RunRecord) -> bool {
    run.kind == Kind::Drill || run.trigger == Trigger::Schedule || run.dry_run
}

/// The run's target: its parameters as `key=value`, sorted.
pub fn target(run: &RunRecord) -> String {
    let pairs: Vec<String> = run.params.iter().map(|(k, v)| format!("{k}={v}")).collect();
    if pairs.is_empty() {
        "(no parameters)".into()
    } else {
        pairs.join(", ")
    }
}

impl Summary {
    /// Summarises the runs created at or after `since` (of `runbook` only,
    /// when given), flagging drills older than `max_drill_age` at `now`.
    pub async fn gather(
        store: &Store,
        since: DateTime<Utc>,
        runbook: Option<&str>,
        max_drill_age: Duration,
        now: DateTime<Utc>,
    ) -> Result<Summary, ReportError> {
        let since_text = crate::store::timestamp(since);
        let runs = store.runs_since(&since_text, runbook).await?;
        let mut groups: Vec<Group> = Vec::new();
        for run in &runs {
            let key = (run.runbook.clone(), target(run));
            let index = match groups
                .iter()
                .position(|g| (&g.runbook, &g.target) == (&key.0, &key.1))
            {
                Some(i) => i,
                None => {
                    groups.push(Group {
                        runbook: key.0,
                        target: key.1,
                        kind: run.kind,
                        drills: Counts::default(),
                        real: Counts::default(),
                        rto: None,
                        rto_limit: None,
                        recoveries: Vec::new(),
                        within_rto: 0,
                        over_rto: 0,
                        last_successful_drill: None,
                        drill_age: None,
                        stale: false,
                        failures: Vec::new(),
                        trend: None,
                    });
                    groups.len() - 1
                }
            };
            let group = &mut groups[index];
            let drill = is_drill(run);
            if drill {
                group.drills.add(run.status);
            } else {
                group.real.add(run.status);
            }
            let rto = rto_of(run);
            group.rto = rto.map(crate::runbook::value::format_duration);
            group.rto_limit = rto;
            group.kind = run.kind;
            match run.status {
                RunStatus::Succeeded => {
                    if drill {
                        group.last_successful_drill = Some(run.created_at.clone());
                    }
                    let recovery = run
                        .recovered_at
                        .as_deref()
                        .and_then(|end| between(&run.created_at, end));
                    if let Some(d) = recovery {
                        let within = rto.map(|rto| d <= rto);
                        match within {
                            Some(true) => group.within_rto += 1,
                            Some(false) => group.over_rto += 1,
                            None => {}
                        }
                        group.recoveries.push(Recovery {
                            run_id: run.id.clone(),
                            at: run.created_at.clone(),
                            ms: u64::try_from(d.as_millis()).unwrap_or(u64::MAX),
                            text: human(d),
                            drill,
                            within_rto: within,
                        });
                    }
                }
                RunStatus::Running => {}
                status => group.failures.push(Failure {
                    run_id: run.id.clone(),
                    at: run.created_at.clone(),
                    status,
                    drill,
                    cause: run.error.clone().unwrap_or_else(|| {
                        match run.cancel_requested_by.as_deref() {
                            Some(who) => format!("cancelled by {who}"),
                            None => "no cause recorded".into(),
                        }
                    }),
                }),
            }
        }
        for group in &mut groups {
            let age = group
                .last_successful_drill
                .as_deref()
                .and_then(time)
                .and_then(|t| (now - t).to_std().ok());
            group.drill_age = age.map(human);
            group.stale = age.is_none_or(|a| a > max_drill_age);
            let rto_ms = group
                .rto_limit
                .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX));
            group.trend = trend(&group.recoveries, rto_ms);
        }
        Ok(Summary {
            since: since_text,
            runbook: runbook.map(str::to_string),
            generated_at: crate::store::now(),
            max_drill_age: human(max_drill_age),
            runs: runs.len(),
            stale: groups.iter().filter(|g| g.stale).count(),
            groups,
        })
    }

    /// The self-contained HTML document.
    pub fn to_html(&self) -> Result<String, ReportError> {
        render("summary.html", include_str!("summary.html"), self)
    }
}

/// The trend chart of `recoveries`, with the RTO line at `rto_ms`.
fn trend(recoveries: &[Recovery], rto_ms: Option<u64>) -> Option<Trend> {
    if recoveries.is_empty() {
        return None;
    }
    let (width, height, pad) = (560.0, 140.0, 24.0);
    let max = recoveries
        .iter()
        .map(|r| r.ms)
        .chain(rto_ms)
        .max()
        .unwrap_or(1)
        .max(1) as f64
        * 1.1;
    let step = if recoveries.len() > 1 {
        (width - 2.0 * pad) / (recoveries.len() - 1) as f64
    } else {
        0.0
    };
    let y = |ms: u64| {
        let v = (height - pad) - (ms as f64 / max) * (height - 2.0 * pad);
        (v * 10.0).round() / 10.0
    };
    let dots: Vec<(f64, f64, String)> = recoveries
        .iter()
        .enumerate()
        .map(|(i, r)| {
            (
                ((pad + step * i as f64) * 10.0).round() / 10.0,
                y(r.ms),
                format!("{} at {}: {}", r.run_id, r.at, r.text),
            )
        })
        .collect();
    Some(Trend {
        width,
        height,
        points: dots
            .iter()
            .map(|(x, y, _)| format!("{x},{y}"))
            .collect::<Vec<_>>()
            .join(" "),
        dots,
        rto_y: rto_ms.map(y),
        max_label: human(Duration::from_millis(max as u64)),
    })
}
