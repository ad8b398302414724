//! The run lifecycle: start a run (check parameters, lease its targets, store
//! it), execute it step by step (every state change stored first), and resume
//! an interrupted run at its first unfinished step with the runbook version it
//! started with.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use serde::Serialize;
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

use super::context::{RunContext, StepError, StepState, decide_when};
use super::crash;
use super::step;
use super::{Cloud, Engine, RunEvent};
use crate::cloud::dry_run::DryRun;
use crate::runbook::model::IdField;
use crate::runbook::{self, Entry, OnFailure, Runbook, Step, template};
use crate::store::{NewRun, Phase, RunRecord, RunStatus, StepStatus, StoreError, Trigger};

/// A run to start.
#[derive(Debug, Clone)]
pub struct RunRequest {
    pub runbook: Runbook,
    /// Parameters as given (defaults are filled in).
    pub params: BTreeMap<String, String>,
    /// What started it.
    pub trigger: Trigger,
    /// Who asked.
    pub requested_by: String,
    /// `Idempotency-Key` of an API trigger: (key, sha256 of the request).
    pub idempotency: Option<(String, String)>,
    /// Execute against the dry-run cloud: reads go out, changes are held back.
    pub dry_run: bool,
    /// The schedule fire that starts it (taken in the run's creation).
    pub fire: Option<crate::store::FireKey>,
}

/// How a run ended (or stopped).
#[derive(Debug, Clone, Serialize)]
pub struct RunSummary {
    pub run_id: String,
    pub runbook: String,
    /// Succeeded, failed, cancelled, or still running when a shutdown interrupted it.
    pub status: RunStatus,
    /// Why it failed.
    pub error: Option<String>,
    /// Trigger to the end of the last main step, when they all succeeded.
    pub recovery_ms: Option<u64>,
    /// The runbook's recovery time objective (`rto`), if it sets one.
    pub rto_ms: Option<u64>,
    /// Steps and their final status, in run order.
    pub steps: Vec<(String, StepStatus)>,
    pub dry_run: bool,
    /// Where production is at the end, as the run's last read of a group saw it.
    pub production: Option<Production>,
}

/// Where production was and is, from the run's own reads of the group.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Production {
    /// `priority_station` at the run's last read: an AZ (EVS) or a side (SDRS).
    pub now: String,
    /// `priority_station` at the run's first read.
    pub was: String,
}

impl Production {
    /// From the outputs of the main steps, in run order: the first and last
    /// `priority_station` a group read reported.
    fn from_outputs<'a>(outputs: impl Iterator<Item = &'a Value>) -> Option<Production> {
        let stations: Vec<&str> = outputs
            .filter_map(|o| {
                o.get("priority_station")
                    .or_else(|| o.get("group").and_then(|g| g.get("priority_station")))
                    .and_then(Value::as_str)
            })
            .collect();
        Some(Production {
            was: stations.first()?.to_string(),
            now: stations.last()?.to_string(),
        })
    }
}

/// Why a run could not be started or executed.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    /// Parameters do not fit the runbook.
    #[error("parameters of runbook `{runbook}`: {}", problems.join("; "))]
    Params {
        runbook: String,
        /// Every problem.
        problems: Vec<String>,
    },
    /// The store failed; the run stays resumable.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// No such run.
    #[error("run {0} not found")]
    NotFound(String),
    /// The run is over.
    #[error("run {0} already finished ({1})")]
    Finished(String, String),
    /// The stored runbook version cannot be read any more.
    #[error("run {run}: the runbook it started with cannot be read: {reason}")]
    Runbook { run: String, reason: String },
}

impl<C: Cloud> Engine<C> {
    /// Checks parameters, leases the targets and stores the run. Returns its id.
    pub async fn start(&self, request: RunRequest) -> Result<String, EngineError> {
        let runbook = &request.runbook;
        let params = runbook
            .resolve_params(&request.params)
            .map_err(|problems| EngineError::Params {
                runbook: runbook.name.clone(),
                problems,
            })?;
        let ids = start_identifiers(runbook, &params, &self.env);
        let problems = identifier_problems(&ids, &params);
        if !problems.is_empty() {
            return Err(EngineError::Params {
                runbook: runbook.name.clone(),
                problems,
            });
        }
        let id = uuid::Uuid::now_v7().to_string();
        let steps = runbook
            .main_ids()
            .map(|id| (id.to_string(), Phase::Main))
            .chain(
                runbook
                    .finally
                    .iter()
                    .map(|s| (s.id.clone(), Phase::Finally)),
            )
            .collect();
        let new = NewRun {
            // A dry run changes nothing, so it holds nothing: it never blocks a real run.
            targets: if request.dry_run {
                Vec::new()
            } else {
                lease_targets(&ids)
            },
            id: id.clone(),
            runbook: runbook.name.clone(),
            digest: runbook.digest.clone(),
            source: runbook.source.clone(),
            path: runbook.path.display().to_string(),
            kind: runbook.kind,
            trigger: request.trigger,
            requested_by: request.requested_by.clone(),
            params,
            dry_run: request.dry_run,
            idempotency: request
                .idempotency
                .map(|(key, digest)| (request.requested_by.clone(), key, digest)),
            fire: request.fire,
            steps,
        };
        self.store.create_run(&new).await?;
        Ok(id)
    }

    /// Starts and executes a run.
    pub async fn run(
        &self,
        request: RunRequest,
        cancel: &CancellationToken,
    ) -> Result<RunSummary, EngineError> {
        let id = self.start(request).await?;
        self.execute(&id, cancel).await
    }

    /// Resumes every run left `running` that no live process holds (the
    /// daemon's takeover rule), oldest first.
    pub async fn resume_interrupted(
        &self,
        cancel: &CancellationToken,
    ) -> Result<Vec<RunSummary>, EngineError> {
        let mut out = Vec::new();
        for run_id in self.store.claimable_runs().await? {
            out.push(self.execute(&run_id, cancel).await?);
        }
        Ok(out)
    }

    /// Executes (or resumes) a stored run from its first unfinished step.
    /// Cancelling `cancel` stops at the next step boundary, leaving the run resumable.
    pub async fn execute(
        &self,
        run_id: &str,
        cancel: &CancellationToken,
    ) -> Result<RunSummary, EngineError> {
        let run = self
            .store
            .run(run_id)
            .await?
            .ok_or_else(|| EngineError::NotFound(run_id.to_string()))?;
        if run.status != RunStatus::Running {
            return Err(EngineError::Finished(run.id, run.status.to_string()));
        }
        // Only the process holding the run's claim executes it (a run it just
        // created it holds); renewed meanwhile, every write fenced by its epoch.
        if self.store.may_send(run_id).is_err() {
            self.store.claim(run_id).await?;
        }
        crash::point("run.after_claim");
        let renewing = self.store.keep_claimed(run_id);
        let summary = self.execute_claimed(run, cancel).await;
        drop(renewing);
        if !matches!(&summary, Ok(s) if s.status != RunStatus::Running) {
            // Stopped (shutdown, waiting for approval) or failed to record:
            // let another process take it over at once.
            self.store.release(run_id).await.ok();
        }
        summary
    }

    async fn execute_claimed(
        &self,
        run: RunRecord,
        cancel: &CancellationToken,
    ) -> Result<RunSummary, EngineError> {
        if run.dry_run {
            // The one place a dry run is decided: it executes against a cloud
            // that cannot send a change.
            let dry = Engine {
                cloud: Arc::new(DryRun::new(self.cloud.clone())),
                store: self.store.clone(),
                events: self.events.clone(),
                approvals: self.approvals.clone(),
                env: self.env.clone(),
                in_flight_grace: self.in_flight_grace,
                max_duration: self.max_duration,
            };
            return dry.execute_run(run, cancel).await;
        }
        self.execute_run(run, cancel).await
    }

    async fn execute_run(
        &self,
        run: RunRecord,
        cancel: &CancellationToken,
    ) -> Result<RunSummary, EngineError> {
        let run_id = run.id.clone();
        let run_id = run_id.as_str();
        // The version the run started with, not whatever the file says today.
        let runbook = runbook::parse(&run.runbook_source, Path::new(&run.runbook_path)).map_err(
            |errors| EngineError::Runbook {
                run: run.id.clone(),
                reason: errors
                    .iter()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>()
                    .join("; "),
            },
        )?;
        let records = self.store.steps(run_id).await?;
        let resumed = records.iter().any(|r| r.status != StepStatus::Pending);
        let mut ctx = RunContext {
            steps: records
                .iter()
                .map(|r| {
                    let state = StepState {
                        status: r.status,
                        output: r.output.clone().unwrap_or_else(|| json!({})),
                        error: r.error.clone(),
                    };
                    (r.step_id.clone(), state)
                })
                .collect(),
            run,
            runbook: Arc::new(runbook),
            outcome: RunStatus::Running,
            env: self.env.clone(),
            item: None,
        };
        self.emit(RunEvent::RunStarted {
            run_id: run_id.to_string(),
            runbook: ctx.run.runbook.clone(),
            resumed,
            dry_run: ctx.run.dry_run,
        });

        let mut failure: Option<String> = None;
        let mut cancelled: Option<String> = ctx.run.cancel_requested_by.clone();
        let main = ctx.runbook.clone();
        for (index, entry) in main.steps.iter().enumerate() {
            // A cancel request (API) is checked at every step boundary.
            if cancelled.is_none() {
                cancelled = self.store.cancel_requested_by(run_id).await?;
            }
            let skip = match (&cancelled, &failure) {
                (Some(by), _) => Some(format!("the run was cancelled by {by}")),
                (None, Some(_)) => Some("an earlier step failed".to_string()),
                (None, None) => None,
            };
            let flow = match entry {
                Entry::Step(step) => {
                    self.advance(&mut ctx, step, skip.as_deref(), cancel)
                        .await?
                }
                Entry::Block(block) => {
                    let position = index as i64 * crate::store::POSITION_STRIDE;
                    self.advance_block(&mut ctx, block, position, skip.as_deref(), cancel)
                        .await?
                }
            };
            match flow {
                Flow::Continue => {}
                Flow::Failed(error) if entry.on_failure() == OnFailure::Abort => {
                    failure.get_or_insert(format!("step `{}` failed: {error}", entry.id()));
                }
                Flow::Failed(_) => {}
                Flow::Interrupted => return self.summary(&ctx, RunStatus::Running, None).await,
                Flow::Waiting(why) => {
                    return self.summary(&ctx, RunStatus::Running, Some(why)).await;
                }
            }
            crash::point("run.after_step");
        }
        crash::point("run.before_finally");
        if failure.is_none() && cancelled.is_none() {
            self.store.mark_recovered(run_id).await?;
        }
        let (final_status, reason) = match (&cancelled, failure) {
            (Some(by), _) => (RunStatus::Cancelled, Some(format!("cancelled by {by}"))),
            (None, Some(f)) => (RunStatus::Failed, Some(f)),
            (None, None) => (RunStatus::Succeeded, None),
        };
        ctx.outcome = final_status;
        let mut failure = reason;
        let book = ctx.runbook.clone();
        for step in &book.finally {
            match self.advance(&mut ctx, step, None, cancel).await? {
                Flow::Failed(error) if step.on_failure == OnFailure::Abort => {
                    failure.get_or_insert(format!("step `{}` failed: {error}", step.id));
                }
                Flow::Interrupted => return self.summary(&ctx, RunStatus::Running, None).await,
                Flow::Waiting(why) => {
                    return self.summary(&ctx, RunStatus::Running, Some(why)).await;
                }
                _ => {}
            }
        }
        let final_status = match (final_status, &failure) {
            (RunStatus::Succeeded, Some(_)) => RunStatus::Failed,
            (s, _) => s,
        };
        self.store
            .finish_run(
                run_id,
                final_status,
                failure.as_deref(),
                &ctx.run.requested_by,
            )
            .await?;
        let summary = self.summary(&ctx, final_status, failure).await?;
        self.emit(RunEvent::RunFinished {
            run_id: run_id.to_string(),
            status: final_status,
            recovery_ms: summary.recovery_ms,
            error: summary.error.clone(),
        });
        Ok(summary)
    }

    /// Runs one step unless it is done already, skipped, or the run is stopping.
    pub(super) async fn advance(
        &self,
        ctx: &mut RunContext,
        step: &Step,
        skip: Option<&str>,
        cancel: &CancellationToken,
    ) -> Result<Flow, EngineError> {
        let state = ctx.steps.get(ctx.local(&step.id)).cloned();
        let stored = state
            .as_ref()
            .map(|s| s.status)
            .unwrap_or(StepStatus::Pending);
        match stored {
            StepStatus::Succeeded | StepStatus::Skipped => {
                self.emit(RunEvent::StepAlreadyDone {
                    step_id: step.id.clone(),
                    status: stored,
                });
                return Ok(Flow::Continue);
            }
            StepStatus::Failed => {
                self.emit(RunEvent::StepAlreadyDone {
                    step_id: step.id.clone(),
                    status: stored,
                });
                let error = state.and_then(|s| s.error).unwrap_or_default();
                return Ok(Flow::Failed(error));
            }
            _ => {}
        }
        if cancel.is_cancelled() {
            return Ok(Flow::Interrupted);
        }
        if let Some(reason) = skip {
            return self.skip(ctx, &step.id, reason).await;
        }
        match decide_when(ctx, step.when.as_deref()) {
            Ok(None) => {}
            Ok(Some(reason)) => return self.skip(ctx, &step.id, &reason).await,
            Err(e) => {
                return self
                    .conclude(ctx, &step.id, Err(e), tokio::time::Instant::now())
                    .await;
            }
        }
        self.store
            .set_step(&ctx.run.id, &step.id, StepStatus::Running, None, None)
            .await?;
        self.emit(RunEvent::StepStarted {
            step_id: step.id.clone(),
            action: step.action.name().to_string(),
        });
        crash::point("step.after_start");
        let started = tokio::time::Instant::now();
        let result = step::execute(self, ctx, step, cancel).await;
        self.conclude(ctx, &step.id, result, started).await
    }

    pub(super) async fn skip(
        &self,
        ctx: &mut RunContext,
        step_id: &str,
        reason: &str,
    ) -> Result<Flow, EngineError> {
        self.store
            .set_step(
                &ctx.run.id,
                step_id,
                StepStatus::Skipped,
                None,
                Some(reason),
            )
            .await?;
        ctx.steps.insert(
            ctx.local(step_id).to_string(),
            StepState {
                status: StepStatus::Skipped,
                output: json!({}),
                error: None,
            },
        );
        self.emit(RunEvent::StepSkipped {
            step_id: step_id.to_string(),
            reason: reason.to_string(),
        });
        Ok(Flow::Continue)
    }

    pub(super) async fn conclude(
        &self,
        ctx: &mut RunContext,
        step_id: &str,
        result: Result<Value, StepError>,
        started: tokio::time::Instant,
    ) -> Result<Flow, EngineError> {
        let duration_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
        match result {
            Ok(output) => {
                self.store
                    .set_step(
                        &ctx.run.id,
                        step_id,
                        StepStatus::Succeeded,
                        Some(&output),
                        None,
                    )
                    .await?;
                ctx.steps.insert(
                    ctx.local(step_id).to_string(),
                    StepState {
                        status: StepStatus::Succeeded,
                        output,
                        error: None,
                    },
                );
                self.emit(RunEvent::StepFinished {
                    step_id: step_id.to_string(),
                    status: StepStatus::Succeeded,
                    duration_ms,
                    error: None,
                });
                Ok(Flow::Continue)
            }
            // Without the store the engine cannot promise anything: stop, resumable.
            Err(StepError::Store(e)) => Err(EngineError::Store(e)),
            // Left as a crash there would leave it: the resume picks it up.
            Err(StepError::Stopped(_)) => Ok(Flow::Interrupted),
            // Back to pending: a resume asks again.
            Err(StepError::AwaitingApproval(why)) => {
                self.store
                    .set_step(&ctx.run.id, step_id, StepStatus::Pending, None, None)
                    .await?;
                self.emit(RunEvent::Note {
                    step_id: step_id.to_string(),
                    message: why.clone(),
                });
                Ok(Flow::Waiting(why))
            }
            Err(e) => {
                let error = e.to_string();
                self.store
                    .set_step(&ctx.run.id, step_id, StepStatus::Failed, None, Some(&error))
                    .await?;
                ctx.steps.insert(
                    ctx.local(step_id).to_string(),
                    StepState {
                        status: StepStatus::Failed,
                        output: json!({}),
                        error: Some(error.clone()),
                    },
                );
                self.emit(RunEvent::StepFinished {
                    step_id: step_id.to_string(),
                    status: StepStatus::Failed,
                    duration_ms,
                    error: Some(error.clone()),
                });
                Ok(Flow::Failed(error))
            }
        }
    }

    async fn summary(
        &self,
        ctx: &RunContext,
        final_status: RunStatus,
        error: Option<String>,
    ) -> Result<RunSummary, EngineError> {
        let run = self
            .store
            .run(&ctx.run.id)
            .await?
            .ok_or_else(|| EngineError::NotFound(ctx.run.id.clone()))?;
        let recovery_ms = run.recovered_at.as_deref().and_then(|end| {
            let start = chrono::DateTime::parse_from_rfc3339(&run.created_at).ok()?;
            let end = chrono::DateTime::parse_from_rfc3339(end).ok()?;
            u64::try_from((end - start).num_milliseconds()).ok()
        });
        let steps = self
            .store
            .steps(&ctx.run.id)
            .await?
            .into_iter()
            .map(|s| (s.step_id, s.status))
            .collect();
        Ok(RunSummary {
            run_id: ctx.run.id.clone(),
            runbook: ctx.run.runbook.clone(),
            status: final_status,
            error,
            recovery_ms: if final_status == RunStatus::Succeeded {
                recovery_ms
            } else {
                None
            },
            rto_ms: ctx
                .runbook
                .rto
                .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX)),
            steps,
            dry_run: ctx.run.dry_run,
            production: Production::from_outputs(
                ctx.runbook
                    .steps
                    .iter()
                    .filter_map(|e| match e {
                        Entry::Step(s) => ctx.steps.get(&s.id),
                        Entry::Block(_) => None,
                    })
                    .filter(|s| s.status == StepStatus::Succeeded)
                    .map(|s| &s.output),
            ),
        })
    }
}

pub(super) enum Flow {
    Continue,
    Failed(String),
    Interrupted,
    /// Stopped at an approval nobody could give; resumable.
    Waiting(String),
}

/// The cloud resources a run touches, from its steps rendered with what is
/// known at start (parameters, run, env), in canonical form (`evs:<id>`).
/// Templates that need step outputs cannot be resolved then and lease
/// nothing; invalid ids were refused by [`check_identifiers`] before.
pub fn targets(
    runbook: &Runbook,
    params: &BTreeMap<String, String>,
    env: &BTreeMap<String, String>,
) -> Vec<String> {
    lease_targets(&start_identifiers(runbook, params, env))
}

/// Checks every identifier the parameters decide before anything starts;
/// each problem names the parameter it came from.
pub fn check_identifiers(
    runbook: &Runbook,
    params: &BTreeMap<String, String>,
    env: &BTreeMap<String, String>,
) -> Vec<String> {
    identifier_problems(&start_identifiers(runbook, params, env), params)
}

/// An identifier field rendered with what is known at start.
struct StartId<'r> {
    step: &'r str,
    key: &'static str,
    field: IdField,
    /// The text as written (a template).
    source: &'r str,
    value: String,
}

/// Every identifier field that can be rendered from what is known at start.
/// A template reading a step output is undefined now (templates are strict):
/// it is skipped here and checked when its step renders it.
fn start_identifiers<'r>(
    runbook: &'r Runbook,
    params: &BTreeMap<String, String>,
    env: &BTreeMap<String, String>,
) -> Vec<StartId<'r>> {
    let context = json!({ "params": params, "env": env, "run": {}, "steps": {} });
    let jinja = template::environment();
    let mut out = Vec::new();
    for step in runbook.all_steps() {
        for (key, field, value) in step.action.identifiers() {
            let Ok(rendered) = jinja.render_str(&value.value, minijinja::value::Serde(&context))
            else {
                continue;
            };
            let rendered = rendered.trim().to_string();
            // An empty VPC means "let SDRS create one"; any other empty id is wrong.
            if !(rendered.is_empty() && field == IdField::Vpc) {
                out.push(StartId {
                    step: &step.id,
                    key,
                    field,
                    source: &value.value,
                    value: rendered,
                });
            }
        }
    }
    out
}

fn lease_targets(ids: &[StartId<'_>]) -> Vec<String> {
    let mut out: Vec<String> = ids
        .iter()
        .filter_map(|id| {
            let prefix = id.field.lease_prefix()?;
            id.field.check(&id.value).ok()?;
            Some(format!(
                "{prefix}:{}",
                crate::cloud::id::canonical(&id.value)
            ))
        })
        .collect();
    out.sort();
    out.dedup();
    out
}

fn identifier_problems(ids: &[StartId<'_>], params: &BTreeMap<String, String>) -> Vec<String> {
    let mut problems: Vec<(String, Vec<&str>)> = Vec::new();
    for id in ids {
        let Err(why) = id.field.check(&id.value) else {
            continue;
        };
        let named: Vec<String> = params
            .keys()
            .filter(|p| {
                id.source.contains(&format!("params.{p}"))
                    || id.source.contains(&format!("params['{p}']"))
                    || id.source.contains(&format!("params[\"{p}\"]"))
            })
            .map(|p| format!("parameter `{p}`"))
            .collect();
        let origin = if named.is_empty() {
            format!("`{}` of step `{}`", id.key, id.step)
        } else {
            named.join(", ")
        };
        // One problem per bad value, naming every step that uses it.
        let head = format!("{origin}: {why}");
        match problems.iter_mut().find(|(h, _)| *h == head) {
            Some((_, steps)) => steps.push(id.step),
            None => problems.push((head, vec![id.step])),
        }
    }
    problems
        .into_iter()
        .map(|(head, steps)| format!("{head} (used by step {})", steps.join(", ")))
        .collect()
}
