//! The geometry of a run's timeline chart: one lane per step (and per item
//! and item step of a plan), a bar for the time the step ran, a mark per
//! attempt (retried reads, intents, reconciliations, polls, requests) as
//! wide as it took, and a mark per approval. The template draws it as SVG;
//! here are only numbers and labels.

use serde::Serialize;

use super::{StepView, human, time};
use crate::store::{ApprovalRecord, RunRecord};

/// Width of the lane labels, of the drawing area, and height of a lane (px).
const LABEL: f64 = 230.0;
const AREA: f64 = 860.0;
const LANE: f64 = 22.0;
/// Lanes drawn at most; the step table lists every step.
pub const MAX_LANES: usize = 300;

/// A drawn interval or instant.
#[derive(Debug, Clone, Serialize)]
pub struct Mark {
    pub x: f64,
    pub width: f64,
    /// CSS classes: what it is and how it ended.
    pub class: String,
    /// Tooltip and accessible text.
    pub title: String,
}

/// One step's lane.
#[derive(Debug, Clone, Serialize)]
pub struct Lane {
    pub label: String,
    pub y: f64,
    pub bar: Option<Mark>,
    pub marks: Vec<Mark>,
}

/// A labelled position on the time axis.
#[derive(Debug, Clone, Serialize)]
pub struct Tick {
    pub x: f64,
    pub label: String,
}

/// The whole chart.
#[derive(Debug, Clone, Serialize)]
pub struct Timeline {
    pub width: f64,
    pub height: f64,
    pub label_width: f64,
    pub lanes: Vec<Lane>,
    pub ticks: Vec<Tick>,
    /// Lanes not drawn (beyond [`MAX_LANES`]).
    pub hidden: usize,
    /// Where the recovery ended (the last main step), if it did.
    pub recovered_x: Option<f64>,
}

impl Timeline {
    /// Lays out `steps` of `run` between its creation and its last known instant.
    pub fn of(run: &RunRecord, steps: &[StepView], approvals: &[ApprovalRecord]) -> Timeline {
        let start = time(&run.created_at).unwrap_or_default();
        let mut end = start;
        let mut see = |t: Option<&str>, extra_ms: i64| {
            if let Some(t) = t.and_then(time) {
                end = end.max(t + chrono::Duration::milliseconds(extra_ms));
            }
        };
        see(run.finished_at.as_deref(), 0);
        for s in steps {
            see(s.record.finished_at.as_deref(), 0);
            see(s.record.started_at.as_deref(), 0);
            for a in &s.attempts {
                see(Some(&a.started_at), a.duration_ms.unwrap_or(0));
            }
        }
        for a in approvals {
            see(Some(&a.at), 0);
        }
        let span_ms = ((end - start).num_milliseconds()).max(1) as f64;
        let x = |t: &str| -> f64 {
            let ms = time(t).map_or(0, |t| (t - start).num_milliseconds()) as f64;
            LABEL + (ms / span_ms).clamp(0.0, 1.0) * AREA
        };
        let width_of = |ms: f64| (ms / span_ms * AREA).max(2.0);
        let mut lanes = Vec::new();
        for (i, s) in steps.iter().take(MAX_LANES).enumerate() {
            let indent = "  ".repeat(usize::from(s.depth));
            let shown = match s.depth {
                2 => s.id.rsplit('.').next().unwrap_or(&s.id).to_string(),
                1 => format!("{} {}", s.id, s.label),
                _ => s.id.clone(),
            };
            let bar = s.record.started_at.as_deref().map(|from| {
                let x0 = x(from);
                let x1 = s.record.finished_at.as_deref().map_or(LABEL + AREA, x);
                let waited = if s.approvals.is_empty() {
                    ""
                } else {
                    " approval-wait"
                };
                Mark {
                    x: round(x0),
                    width: round((x1 - x0).max(2.0)),
                    class: format!("bar {}{waited}", s.record.status),
                    title: format!(
                        "{}: {}{}",
                        s.id,
                        s.record.status,
                        s.duration
                            .as_deref()
                            .map(|d| format!(" in {d}"))
                            .unwrap_or_default()
                    ),
                }
            });
            let mut marks: Vec<Mark> = s
                .attempts
                .iter()
                .map(|a| Mark {
                    x: round(x(&a.started_at)),
                    width: round(width_of(a.duration_ms.unwrap_or(0) as f64)),
                    class: format!(
                        "attempt {} {}",
                        a.kind,
                        a.outcome.as_deref().unwrap_or("unanswered")
                    ),
                    title: format!(
                        "#{} {} {} -> {}{}{}",
                        a.attempt,
                        a.kind,
                        a.request,
                        a.outcome.as_deref().unwrap_or("no answer recorded"),
                        a.http_status.map(|s| format!(" [{s}]")).unwrap_or_default(),
                        a.error_code
                            .as_deref()
                            .map(|c| format!(" {c}"))
                            .unwrap_or_default()
                    ),
                })
                .collect();
            marks.extend(s.approvals.iter().map(|a| Mark {
                x: round(x(&a.at)),
                width: 3.0,
                class: format!("approval {}", a.decision),
                title: format!("{} by {} at {}", a.decision, a.approver, a.at),
            }));
            lanes.push(Lane {
                label: format!("{indent}{shown}"),
                y: round(30.0 + i as f64 * LANE),
                bar,
                marks,
            });
        }
        let ticks = (0..=5)
            .map(|i| {
                let ms = span_ms * f64::from(i) / 5.0;
                Tick {
                    x: round(LABEL + AREA * f64::from(i) / 5.0),
                    label: format!(
                        "+{}",
                        human(std::time::Duration::from_millis(ms.round() as u64))
                    ),
                }
            })
            .collect();
        Timeline {
            width: LABEL + AREA + 20.0,
            height: 40.0 + lanes.len() as f64 * LANE,
            label_width: LABEL,
            hidden: steps.len().saturating_sub(MAX_LANES),
            lanes,
            ticks,
            recovered_x: run.recovered_at.as_deref().map(|t| round(x(t))),
        }
    }
}

fn round(v: f64) -> f64 {
    (v * 10.0).round() / 10.0
}
