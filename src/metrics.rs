//! Prometheus metrics of the daemon, fed by run events: runs started and
//! finished by runbook and outcome, step durations, retries by HTTP status,
//! recovery time, and the time of the last successful run of each drill
//! runbook (alert when drills stop happening).

use std::sync::atomic::AtomicU64;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

use crate::engine::RunEvent;
use crate::runbook::Kind;
use crate::store::RunStatus;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RunbookLabels {
    runbook: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OutcomeLabels {
    runbook: String,
    outcome: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StepLabels {
    runbook: String,
    step: String,
    status: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StatusLabels {
    status: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ServiceLabels {
    service: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ItemLabels {
    runbook: String,
    block: String,
    outcome: String,
}

type HistogramFamily<L> = Family<L, Histogram, fn() -> Histogram>;

/// The daemon's metrics.
pub struct Metrics {
    registry: Registry,
    runs_started: Family<RunbookLabels, Counter>,
    runs_finished: Family<OutcomeLabels, Counter>,
    step_duration: HistogramFamily<StepLabels>,
    retries: Family<StatusLabels, Counter>,
    throttled: Family<ServiceLabels, Counter>,
    recovery: HistogramFamily<RunbookLabels>,
    items: Family<ItemLabels, Counter>,
    last_drill_success: Family<RunbookLabels, Gauge<f64, AtomicU64>>,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    /// Registers every metric.
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("drover");
        let runs_started = Family::<RunbookLabels, Counter>::default();
        let runs_finished = Family::<OutcomeLabels, Counter>::default();
        let step_duration: HistogramFamily<StepLabels> =
            Family::new_with_constructor(|| Histogram::new(exponential_buckets(0.05, 2.0, 16)));
        let retries = Family::<StatusLabels, Counter>::default();
        let throttled = Family::<ServiceLabels, Counter>::default();
        let recovery: HistogramFamily<RunbookLabels> =
            Family::new_with_constructor(|| Histogram::new(exponential_buckets(1.0, 2.0, 14)));
        let last_drill_success = Family::<RunbookLabels, Gauge<f64, AtomicU64>>::default();
        let items = Family::<ItemLabels, Counter>::default();
        registry.register(
            "plan_items",
            "Items of for_each blocks that ended, by runbook, block and outcome",
            items.clone(),
        );
        registry.register(
            "runs_started",
            "Runs started, by runbook",
            runs_started.clone(),
        );
        registry.register(
            "runs_finished",
            "Runs finished, by runbook and outcome",
            runs_finished.clone(),
        );
        registry.register(
            "step_duration_seconds",
            "Step durations, by runbook, step and status",
            step_duration.clone(),
        );
        registry.register(
            "retries",
            "Retried cloud calls, by HTTP status (none: transport error)",
            retries.clone(),
        );
        registry.register(
            "cloud_throttled",
            "Cloud requests the API gateway throttled (429) and the client sent again, by service; not counted in retries",
            throttled.clone(),
        );
        registry.register(
            "recovery_seconds",
            "Trigger to the end of the last main step of successful runs",
            recovery.clone(),
        );
        registry.register(
            "last_successful_drill_timestamp_seconds",
            "Unix time of the last successful run of each drill runbook",
            last_drill_success.clone(),
        );
        Metrics {
            registry,
            runs_started,
            runs_finished,
            step_duration,
            retries,
            throttled,
            recovery,
            items,
            last_drill_success,
        }
    }

    /// What the cloud client calls for each throttled request it sends again.
    pub fn throttle_hook(&self) -> crate::cloud::http::ThrottleHook {
        let throttled = self.throttled.clone();
        std::sync::Arc::new(move |service: crate::cloud::http::Service| {
            throttled
                .get_or_create(&ServiceLabels {
                    service: service.name().into(),
                })
                .inc();
        })
    }

    /// Counts a started run.
    pub fn run_started(&self, runbook: &str) {
        self.runs_started
            .get_or_create(&RunbookLabels {
                runbook: runbook.into(),
            })
            .inc();
    }

    /// Updates metrics from one event of a run of `runbook`.
    pub fn observe(&self, runbook: &str, kind: Kind, event: &RunEvent) {
        match event {
            RunEvent::StepFinished {
                step_id,
                status,
                duration_ms,
                ..
            } => {
                // One series per step of a block, not per item.
                let step = match crate::engine::plan::split_item_id(step_id) {
                    Some((block, _, Some(local))) => format!("{block}[].{local}"),
                    Some((block, _, None)) => format!("{block}[]"),
                    None => step_id.clone(),
                };
                let labels = StepLabels {
                    runbook: runbook.into(),
                    step,
                    status: status.to_string(),
                };
                self.step_duration
                    .get_or_create(&labels)
                    .observe(*duration_ms as f64 / 1e3);
            }
            RunEvent::ItemFinished {
                step_id, status, ..
            } => {
                self.items
                    .get_or_create(&ItemLabels {
                        runbook: runbook.into(),
                        block: step_id.clone(),
                        outcome: status.to_string(),
                    })
                    .inc();
            }
            RunEvent::Retrying { status, .. } => {
                let status = status.map_or_else(|| "none".to_string(), |s| s.to_string());
                self.retries.get_or_create(&StatusLabels { status }).inc();
            }
            RunEvent::RunFinished {
                status,
                recovery_ms,
                ..
            } => {
                let labels = RunbookLabels {
                    runbook: runbook.into(),
                };
                self.runs_finished
                    .get_or_create(&OutcomeLabels {
                        runbook: runbook.into(),
                        outcome: status.to_string(),
                    })
                    .inc();
                if let Some(ms) = recovery_ms {
                    self.recovery
                        .get_or_create(&labels)
                        .observe(*ms as f64 / 1e3);
                }
                if kind == Kind::Drill && *status == RunStatus::Succeeded {
                    self.last_drill_success
                        .get_or_create(&labels)
                        .set(chrono::Utc::now().timestamp_millis() as f64 / 1e3);
                }
            }
            _ => {}
        }
    }

    /// The Prometheus text exposition.
    pub fn render(&self) -> String {
        let mut out = String::new();
        let _ = encode(&mut out, &self.registry);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_become_metrics() {
        let m = Metrics::new();
        m.run_started("weekly-drill");
        let throttled = m.throttle_hook();
        throttled(crate::cloud::http::Service::Sdrs);
        throttled(crate::cloud::http::Service::Sdrs);
        m.observe(
            "weekly-drill",
            Kind::Drill,
            &RunEvent::Retrying {
                step_id: "a".into(),
                request: "GET consistency group g1".into(),
                attempt: 1,
                max_attempts: 3,
                delay_ms: 5,
                status: Some(503),
                reason: "x".into(),
            },
        );
        m.observe(
            "weekly-drill",
            Kind::Drill,
            &RunEvent::StepFinished {
                step_id: "a".into(),
                status: crate::store::StepStatus::Succeeded,
                duration_ms: 1500,
                error: None,
            },
        );
        m.observe(
            "weekly-drill",
            Kind::Drill,
            &RunEvent::RunFinished {
                run_id: "r".into(),
                status: RunStatus::Succeeded,
                recovery_ms: Some(60_000),
                error: None,
            },
        );
        let text = m.render();
        for want in [
            "drover_runs_started_total{runbook=\"weekly-drill\"} 1",
            "drover_runs_finished_total{runbook=\"weekly-drill\",outcome=\"succeeded\"} 1",
            "drover_retries_total{status=\"503\"} 1",
            "drover_cloud_throttled_total{service=\"sdrs\"} 2",
            "drover_step_duration_seconds_count{runbook=\"weekly-drill\",step=\"a\",status=\"succeeded\"} 1",
            "drover_recovery_seconds_sum{runbook=\"weekly-drill\"} 60.0",
            "drover_last_successful_drill_timestamp_seconds{runbook=\"weekly-drill\"}",
        ] {
            assert!(text.contains(want), "missing {want} in:\n{text}");
        }
    }
}
