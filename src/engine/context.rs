//! What a step runs in: the run's context as templates see it (`RunContext`),
//! one step being executed with its deadline (`StepRun`: records, reads
//! under the retry policy, cancellable pauses, rendering), and how a step
//! fails ([`StepError`]). Actions (`step`) and the exactly-once path
//! (`reconcile`) both build on it; it imports neither.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::Serialize;
use serde_json::{Value, json};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::retry;
use super::{Cloud, Engine, RunEvent};
use crate::cloud::CloudError;
use crate::cloud::WouldSend;
use crate::cloud::resource::{EvsGroup, ProtectionGroup};
use crate::runbook::model::{self, IdField};
use crate::runbook::{DurationSpec, Runbook, Step, template};
use crate::store::{
    AttemptKind, NewAttempt, Outcome, RunRecord, RunStatus, StepStatus, StoreError,
};
use crate::yaml::Located;

/// State of one step within a run, as templates see it.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct StepState {
    pub status: StepStatus,
    pub output: Value,
    pub error: Option<String>,
}

/// Everything a step may read.
pub(crate) struct RunContext {
    pub run: RunRecord,
    pub runbook: std::sync::Arc<Runbook>,
    /// Step states by id; within an item, the item's steps by their local id.
    pub steps: BTreeMap<String, StepState>,
    pub outcome: RunStatus,
    pub env: BTreeMap<String, String>,
    /// The item of a `for_each` block this context runs.
    pub item: Option<ItemScope>,
}

/// One item of a block: its stored ids start with `prefix` (`block[3].`).
#[derive(Debug, Clone)]
pub(crate) struct ItemScope {
    pub prefix: String,
    pub value: Value,
    /// The run outside the block as templates see it, built once per block
    /// and shared by its items (a discovery output of thousands of groups is
    /// not copied per item or per render).
    pub outer: minijinja::Value,
    /// A change was held back (dry run) by a step before the block.
    pub held_back: bool,
}

impl RunContext {
    /// The key of a stored step id in [`Self::steps`]: an item's own steps
    /// are known by their local id.
    pub fn local<'s>(&self, step_id: &'s str) -> &'s str {
        match &self.item {
            Some(item) => step_id
                .strip_prefix(item.prefix.as_str())
                .unwrap_or(step_id),
            None => step_id,
        }
    }

    /// Parameters as templates see them: `list` parameters as lists.
    fn params(&self) -> Value {
        let kinds: BTreeMap<&str, crate::runbook::ParamType> = self
            .runbook
            .params
            .iter()
            .map(|p| (p.name.as_str(), p.kind))
            .collect();
        Value::Object(
            self.run
                .params
                .iter()
                .map(|(k, v)| {
                    let value = match kinds.get(k.as_str()) {
                        Some(crate::runbook::ParamType::List) => {
                            model::parse_list(v).map(|l| json!(l)).unwrap_or(json!([]))
                        }
                        _ => Value::String(v.clone()),
                    };
                    (k.clone(), value)
                })
                .collect(),
        )
    }

    /// What templates see: the run, its parameters and steps, and within a
    /// block the item and its own steps over the shared outer view.
    pub(crate) fn template_value(&self) -> minijinja::Value {
        use minijinja::value::{Value as Jinja, merge_maps};
        match &self.item {
            None => Jinja::from(minijinja::value::Serde(self.view())),
            Some(item) => {
                let outer_steps = item.outer.get_attr("steps").unwrap_or_default();
                let own = minijinja::context! {
                    item => Jinja::from(minijinja::value::Serde(&item.value)),
                    steps => merge_maps([outer_steps, Jinja::from(minijinja::value::Serde(&self.steps))]),
                };
                // The last map that has a key wins.
                merge_maps([item.outer.clone(), own])
            }
        }
    }

    /// The view of the run outside any item, for the items of a block: the
    /// main steps only.
    pub(crate) fn outer_view(&self) -> minijinja::Value {
        let mut view = self.view();
        if let Some(steps) = view.get_mut("steps").and_then(Value::as_object_mut) {
            steps.retain(|id, _| !id.contains('['));
        }
        minijinja::Value::from(minijinja::value::Serde(view))
    }

    fn view(&self) -> Value {
        json!({
            "item": Value::Null,
            "params": self.params(),
            "steps": self.steps,
            "run": {
                "id": self.run.id,
                "runbook": self.run.runbook,
                "kind": self.run.kind,
                "trigger": self.run.trigger,
                "requested_by": self.run.requested_by,
                "dry_run": self.run.dry_run,
                "started_at": self.run.created_at,
                "outcome": self.outcome,
            },
            "env": self.env,
        })
    }

    /// Renders a template with everything the run knows so far.
    pub fn render(&self, source: &str) -> Result<String, StepError> {
        if !template::is_template(source) {
            return Ok(source.to_string());
        }
        let env = template::environment();
        env.render_str(source, self.template_value()).map_err(|e| {
            StepError::Failed(format!(
                "cannot render `{source}`: {}",
                e.detail().unwrap_or(&e.to_string())
            ))
        })
    }

    /// Renders every string inside a JSON value.
    pub fn render_json(&self, value: &Value) -> Result<Value, StepError> {
        Ok(match value {
            Value::String(s) => Value::String(self.render(s)?),
            Value::Array(items) => Value::Array(
                items
                    .iter()
                    .map(|v| self.render_json(v))
                    .collect::<Result<_, _>>()?,
            ),
            Value::Object(map) => Value::Object(
                map.iter()
                    .map(|(k, v)| Ok((k.clone(), self.render_json(v)?)))
                    .collect::<Result<_, StepError>>()?,
            ),
            other => other.clone(),
        })
    }
}

/// Why a step is skipped by its `when`, or `None` when it runs.
pub(crate) fn decide_when(
    ctx: &RunContext,
    when: Option<&str>,
) -> Result<Option<String>, StepError> {
    let Some(when) = when else {
        return Ok(None);
    };
    match ctx.render(when)?.trim() {
        "true" | "True" => Ok(None),
        "false" | "False" | "" => Ok(Some(format!("`when` is false ({when})"))),
        other => Err(StepError::Failed(format!(
            "`when` rendered `{other}`, expected true or false"
        ))),
    }
}

/// How often a sleep, wait or poll looks for a cancel request.
pub const CANCEL_CHECK: Duration = Duration::from_secs(1);

/// Why a step failed.
#[derive(Debug, thiserror::Error)]
pub enum StepError {
    /// A check, precondition or the cloud said no; nothing more to try.
    #[error("{0}")]
    Failed(String),
    /// The step's timeout passed.
    #[error("timed out: {0}")]
    TimedOut(String),
    /// A cloud call failed after the retries its policy allows.
    #[error("{0}")]
    Cloud(#[from] CloudError),
    /// The store failed: the run stops, resumable.
    #[error("audit store: {0}")]
    Store(#[from] StoreError),
    /// An approval step has nobody to ask: the run stops there, resumable.
    #[error("{0}")]
    AwaitingApproval(String),
    /// The process is stopping (SIGTERM, Ctrl-C) during a wait: the step is
    /// left as a crash there would leave it, and the resume picks it up.
    #[error("stopped while {0}")]
    Stopped(String),
}

/// One step being executed: what it may read and until when.
pub(crate) struct StepRun<'a, C: Cloud> {
    pub engine: &'a Engine<C>,
    pub ctx: &'a RunContext,
    pub step: &'a Step,
    pub deadline: Option<Instant>,
    /// The process is stopping: waits end (see [`StepError::Stopped`]).
    pub stop: &'a CancellationToken,
}

impl<C: Cloud> StepRun<'_, C> {
    pub fn cloud(&self) -> &C {
        &self.engine.cloud
    }

    pub fn dry_run(&self) -> bool {
        self.ctx.run.dry_run
    }

    pub fn emit(&self, event: RunEvent) {
        self.engine.emit(event);
    }

    pub fn note(&self, message: impl Into<String>) {
        self.emit(RunEvent::Note {
            step_id: self.step.id.clone(),
            message: message.into(),
        });
    }

    /// Records an attempt (an intent when `outcome` is `None`).
    pub async fn record(
        &self,
        attempt: u32,
        kind: AttemptKind,
        request: &str,
        body: Option<Value>,
        pre_image: Option<Value>,
        outcome: Option<Outcome>,
    ) -> Result<i64, StepError> {
        let a = NewAttempt {
            run_id: self.ctx.run.id.clone(),
            step_id: self.step.id.clone(),
            attempt,
            kind,
            request: request.to_string(),
            request_body: body,
            pre_image,
        };
        Ok(self
            .engine
            .store
            .record_attempt(&a, outcome.as_ref())
            .await?)
    }

    /// Records and reports a request the dry run held back.
    pub async fn record_held_back(&self, attempt: u32, w: WouldSend) -> Result<(), StepError> {
        self.record(
            attempt,
            AttemptKind::WouldSend,
            &w.request,
            w.body.clone(),
            None,
            Some(Outcome {
                outcome: "would_send".into(),
                ..Outcome::default()
            }),
        )
        .await?;
        self.emit(RunEvent::WouldSend {
            step_id: self.step.id.clone(),
            request: w.request,
        });
        Ok(())
    }

    /// A read under the step's retry policy; failed attempts are recorded and reported.
    pub async fn read<T, F, Fut>(&self, request: &str, op: F) -> Result<T, StepError>
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = Result<T, CloudError>>,
    {
        let policy = &self.step.retry;
        let mut failures: Vec<(u32, String, CloudError)> = Vec::new();
        let result = retry::run(policy, self.deadline, op, |attempt, sent, delay, error| {
            self.emit(RunEvent::Retrying {
                step_id: self.step.id.clone(),
                request: request.to_string(),
                attempt,
                max_attempts: policy.max_attempts,
                delay_ms: u64::try_from(delay.as_millis()).unwrap_or(u64::MAX),
                status: error.status,
                reason: error.to_string(),
            });
            failures.push((attempt, sent.to_string(), error.clone()));
        })
        .await;
        for (attempt, sent, e) in failures {
            self.record(
                attempt,
                AttemptKind::Read,
                request,
                None,
                None,
                Some(Outcome {
                    sent_at: Some(sent),
                    ..failed_outcome("retried", &e)
                }),
            )
            .await?;
        }
        result.map_err(StepError::from)
    }

    /// Sleeps `d`, or fails with `timed out` if the deadline comes first. A
    /// cancel request ends the sleep within [`CANCEL_CHECK`] (not in a
    /// `finally` step, which runs whatever happened).
    pub async fn pause(
        &self,
        d: Duration,
        still: impl FnOnce() -> String,
    ) -> Result<(), StepError> {
        self.sleep(d, still, !self.is_finally()).await
    }

    /// Like [`Self::pause`], but a cancel request does not cut it short: the
    /// wait before reconciling an unanswered mutating call must run out, or a
    /// late request could land after the run said it did nothing.
    pub async fn hold(&self, d: Duration, still: impl FnOnce() -> String) -> Result<(), StepError> {
        self.sleep(d, still, false).await
    }

    async fn sleep(
        &self,
        d: Duration,
        still: impl FnOnce() -> String,
        cancellable: bool,
    ) -> Result<(), StepError> {
        let end = Instant::now() + d;
        let (until, timed_out) = match self.deadline {
            Some(deadline) if end > deadline => (deadline, true),
            _ => (end, false),
        };
        if cancellable {
            loop {
                let now = Instant::now();
                if now >= until {
                    break;
                }
                tokio::select! {
                    _ = tokio::time::sleep((until - now).min(CANCEL_CHECK)) => {}
                    _ = self.stop.cancelled() => return Err(StepError::Stopped(still())),
                }
                if let Some(by) = self.cancel_requested().await? {
                    return Err(StepError::Failed(format!(
                        "cancelled by {by} while {}",
                        still()
                    )));
                }
            }
        } else {
            tokio::time::sleep_until(until).await;
        }
        if timed_out {
            Err(StepError::TimedOut(still()))
        } else {
            Ok(())
        }
    }

    /// In a dry run after a change was held back, a check cannot say
    /// anything about that change: its mismatches are reported, not failed.
    pub fn unverifiable(&self, mismatches: &[String]) -> bool {
        let held_back = self.ctx.item.as_ref().is_some_and(|i| i.held_back)
            || self
                .ctx
                .steps
                .values()
                .any(|st| st.output.get("held_back") == Some(&Value::Bool(true)));
        if held_back {
            self.note(format!(
                "dry run: not checked, a change before this step was held back ({})",
                mismatches.join("; ")
            ));
        }
        held_back
    }

    /// Who asked to cancel the run, if anyone has.
    pub async fn cancel_requested(&self) -> Result<Option<String>, StepError> {
        Ok(self
            .engine
            .store
            .cancel_requested_by(&self.ctx.run.id)
            .await?)
    }

    fn is_finally(&self) -> bool {
        self.ctx
            .runbook
            .finally
            .iter()
            .any(|f| f.id == self.step.id)
    }

    pub fn render(&self, source: &str) -> Result<String, StepError> {
        self.ctx.render(source)
    }

    /// Renders an identifier field and checks it against the cloud's syntax
    /// before it can reach a URL, a lease or a row.
    pub fn render_id(&self, field: IdField, key: &str, source: &str) -> Result<String, StepError> {
        let value = self.render(source)?;
        let value = value.trim();
        field
            .check(value)
            .map_err(|why| StepError::Failed(format!("`{key}` rendered from `{source}`: {why}")))?;
        Ok(value.to_string())
    }

    pub fn interval(
        &self,
        spec: &Option<Located<DurationSpec>>,
        default: Duration,
    ) -> Result<Duration, StepError> {
        match spec {
            None => Ok(default),
            Some(d) => self.duration(&d.value),
        }
    }

    /// A duration of the runbook, rendered, and at most `engine.max_duration`.
    pub fn duration(&self, spec: &DurationSpec) -> Result<Duration, StepError> {
        let d = match spec {
            DurationSpec::Fixed(d) => *d,
            DurationSpec::Template(t) => {
                let text = self.render(t)?;
                model::parse_duration(&text).map_err(StepError::Failed)?
            }
        };
        let max = self.engine.max_duration;
        if d > max {
            return Err(StepError::Failed(format!(
                "duration {} is longer than engine.max_duration ({})",
                model::format_duration(d),
                model::format_duration(max)
            )));
        }
        Ok(d)
    }
}

pub(crate) fn failed_outcome(word: &str, e: &CloudError) -> Outcome {
    Outcome {
        outcome: word.into(),
        http_status: e.status,
        error_code: e.code.clone(),
        error_message: Some(e.message.clone()),
        duration: Duration::ZERO,
        job_id: None,
        request_id: e.request_id.clone(),
        sent_at: None,
    }
}

pub(crate) fn to_json<T: serde::Serialize>(v: &T) -> Value {
    serde_json::to_value(v).unwrap_or(Value::Null)
}

pub(crate) async fn read_evs<C: Cloud>(
    s: &StepRun<'_, C>,
    id: &str,
) -> Result<EvsGroup, StepError> {
    s.read(&format!("GET consistency group {id}"), || {
        s.cloud().evs_get_group(id)
    })
    .await
}

pub(crate) async fn read_sdrs<C: Cloud>(
    s: &StepRun<'_, C>,
    id: &str,
) -> Result<ProtectionGroup, StepError> {
    s.read(&format!("GET server-group {id}"), || {
        s.cloud().sdrs_get_group(id)
    })
    .await
}

/// `status available, replication_status active, fault_level 0, priority_station az1`.
pub(crate) fn evs_summary(g: &EvsGroup) -> String {
    format!(
        "status {}, replication_status {}, fault_level {}, priority_station {}",
        g.status,
        g.replication_status.as_deref().unwrap_or("null"),
        g.fault_level.as_deref().unwrap_or("null"),
        g.priority_station.as_deref().unwrap_or("null")
    )
}

pub(crate) fn sdrs_summary(g: &ProtectionGroup) -> String {
    format!(
        "status {}, priority_station {}",
        g.status,
        g.priority_station.as_deref().unwrap_or("null")
    )
}

/// Waits at most `d`, or forever.
pub(crate) fn deadline_after(d: Option<Duration>) -> Option<tokio::time::Instant> {
    d.map(|d| tokio::time::Instant::now() + d)
}
