//! `/v1/runs`: list, start (with `Idempotency-Key`), show, follow live,
//! cancel, and decide approvals.

use std::collections::BTreeMap;
use std::convert::Infallible;

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::ToSchema;

use super::AppState;
use super::auth::{Caller, Permission, allows};
use super::error::{ApiError, ErrorBody};
use super::{MAX_COMMENT_CHARS, MAX_IDEMPOTENCY_KEY};
use crate::daemon::{Daemon, DecideError, TriggerError};
use crate::engine::RunEvent;
use crate::engine::run::EngineError;
use crate::runbook::params::ValueError;
use crate::runbook::{self, Kind};
use crate::store::{self, ApprovalRecord, RunRecord, RunStatus, StepRecord, StoreError, Trigger};

/// A run id from a path, checked before it is looked up or echoed.
pub(super) fn checked_run_id(id: &str) -> Result<&str, ApiError> {
    let ok = !id.is_empty()
        && id.len() <= 64
        && id.chars().all(|c| c.is_ascii_alphanumeric() || c == '-');
    if ok {
        Ok(id)
    } else {
        Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "not_found",
            format!(
                "no run with that id: a run id is a UUID ({} characters given)",
                id.chars().count()
            ),
        ))
    }
}

/// One run in detail.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct RunDetail {
    pub run: RunRecord,
    /// Its steps in order.
    pub steps: Vec<StepRecord>,
    /// Approvals given.
    pub approvals: Vec<ApprovalRecord>,
    /// Each `for_each` block that was reached, with its items' status.
    #[serde(default)]
    pub blocks: Vec<BlockSummary>,
}

/// A `for_each` block of a run: how many items stand where, and each item.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct BlockSummary {
    /// The block's step id.
    pub id: String,
    pub status: store::StepStatus,
    /// Items in all.
    pub count: usize,
    pub pending: usize,
    pub running: usize,
    pub succeeded: usize,
    pub failed: usize,
    pub skipped: usize,
    /// In item order.
    pub items: Vec<ItemSummary>,
}

/// One item of a block.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct ItemSummary {
    pub index: usize,
    /// The item as people read it (a group id).
    pub item: String,
    pub status: store::StepStatus,
    /// Why it failed or was skipped.
    pub error: Option<String>,
}

/// The blocks among `steps` (a block's items are rows `block[i]`).
fn block_summaries(steps: &[StepRecord]) -> Vec<BlockSummary> {
    use crate::engine::plan::{split_item_id, stored_item_label};
    let mut out: Vec<BlockSummary> = Vec::new();
    for step in steps {
        let Some((block, index, None)) = split_item_id(&step.step_id) else {
            continue;
        };
        if out.last().is_none_or(|b| b.id != block) {
            let Some(row) = steps.iter().find(|s| s.step_id == block) else {
                continue;
            };
            out.push(BlockSummary {
                id: block.to_string(),
                status: row.status,
                count: 0,
                pending: 0,
                running: 0,
                succeeded: 0,
                failed: 0,
                skipped: 0,
                items: Vec::new(),
            });
        }
        let Some(summary) = out.last_mut() else {
            continue;
        };
        let label = stored_item_label(steps, block, index);
        summary.count += 1;
        *match step.status {
            store::StepStatus::Pending => &mut summary.pending,
            store::StepStatus::Running => &mut summary.running,
            store::StepStatus::Succeeded => &mut summary.succeeded,
            store::StepStatus::Failed => &mut summary.failed,
            store::StepStatus::Skipped => &mut summary.skipped,
        } += 1;
        summary.items.push(ItemSummary {
            index,
            item: label,
            status: step.status,
            error: step.error.clone(),
        });
    }
    out
}

/// The most runs one list answers.
pub const MAX_LIST: u32 = 1000;

#[derive(Debug, Deserialize, utoipa::IntoParams)]
pub(super) struct ListQuery {
    /// Newest first; at most this many (1 to 1000, default 50).
    #[param(minimum = 1, maximum = 1000)]
    limit: Option<u32>,
    /// Only runs with this status.
    status: Option<RunStatus>,
}

#[utoipa::path(get, path = "/runs", tag = "runs", params(ListQuery), security(("bearer" = [])),
    responses((status = 200, body = Vec<RunRecord>), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)))]
pub(super) async fn list_runs(
    State(d): State<AppState>,
    caller: Caller,
    Query(q): Query<ListQuery>,
) -> Result<Json<Vec<RunRecord>>, ApiError> {
    caller.require(Permission::Read)?;
    let limit = q.limit.unwrap_or(50);
    if !(1..=MAX_LIST).contains(&limit) {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "bad_limit",
            format!("limit must be 1 to {MAX_LIST}, not {limit}"),
        ));
    }
    let runs = d.store().runs(limit).await?;
    Ok(Json(
        runs.into_iter()
            .filter(|r| q.status.is_none_or(|s| r.status == s))
            .collect(),
    ))
}

/// `POST /runs` body.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TriggerBody {
    pub runbook: String,
    /// Parameters (strings, numbers or booleans).
    #[serde(default)]
    #[schema(value_type = Object)]
    pub params: serde_json::Map<String, Value>,
    /// Send no change (only GET/HEAD leave the daemon).
    #[serde(default)]
    pub dry_run: bool,
}

/// A started (or, for a repeated `Idempotency-Key`, the earlier) run.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct RunCreated {
    /// Run id.
    pub id: String,
    /// Where to follow it.
    pub events: String,
}

#[utoipa::path(post, path = "/runs", tag = "runs", request_body = TriggerBody, security(("bearer" = [])),
    params(("Idempotency-Key" = Option<String>, Header, min_length = 1, max_length = 255, pattern = "^[!-~]{1,255}$",
        description = "Repeat a request safely: the same key (and body) returns the same run; 1 to 255 visible ASCII characters, no spaces")),
    responses((status = 201, body = RunCreated), (status = 200, description = "The run of an earlier request with this Idempotency-Key", body = RunCreated),
        (status = 400, description = "Not a run request, a parameter of the wrong JSON type for its declared type (`malformed_json`, `bad_param_type`), or a bad Idempotency-Key (`bad_idempotency_key`)", body = ErrorBody),
        (status = 408, description = "The body did not arrive within `api.body_timeout` (`request_timeout`)", body = ErrorBody),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, description = "No such runbook (`unknown_runbook`)", body = ErrorBody),
        (status = 409, description = "A target of the run is in use by another run (`target_in_use`)", body = ErrorBody),
        (status = 413, description = "The body is larger than 64 KiB (`body_too_large`)", body = ErrorBody),
        (status = 415, description = "The body is not declared as JSON (`unsupported_media_type`)", body = ErrorBody),
        (status = 422, description = "Parameters the runbook does not accept, or a missing required one (`invalid_params`); an Idempotency-Key reused with another body (`idempotency_key_reused`)", body = ErrorBody)))]
pub(super) async fn create_run(
    State(d): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    body: Bytes,
) -> Result<(StatusCode, Json<RunCreated>), ApiError> {
    // Before reading the body: a viewer learns nothing about runbooks here.
    if !allows(caller.role, Permission::TriggerDrill) {
        caller.require(Permission::TriggerAny)?;
    }
    super::error::require_json(&headers)?;
    let request: TriggerBody = serde_json::from_slice(&body).map_err(|e| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            "malformed_json",
            format!("the body is not a valid run request: {e}"),
        )
    })?;
    let registry = d.registry();
    let runbook = registry.runbooks.get(&request.runbook).ok_or_else(|| {
        let hint = crate::yaml::suggestion(
            &request.runbook,
            registry.runbooks.keys().map(String::as_str),
        );
        ApiError::new(
            StatusCode::NOT_FOUND,
            "unknown_runbook",
            format!("no runbook named `{}`{hint}", request.runbook),
        )
    })?;
    if runbook.kind != Kind::Drill {
        caller.require(Permission::TriggerAny).map_err(|_| {
            ApiError::new(
                StatusCode::FORBIDDEN,
                "forbidden",
                format!(
                    "role {} may only trigger runbooks of kind drill; `{}` is {}",
                    caller.role, runbook.name, runbook.kind
                ),
            )
        })?;
    }
    let mut params = BTreeMap::new();
    for (name, value) in &request.params {
        let text = match runbook.params.iter().find(|p| &p.name == name) {
            Some(param) => {
                runbook::params::from_json(runbook, param, value).map_err(|e| match e {
                    ValueError::Type(m) => {
                        ApiError::new(StatusCode::BAD_REQUEST, "bad_param_type", m)
                    }
                    ValueError::Value(m) => {
                        ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "invalid_params", m)
                    }
                })?
            }
            // Not declared: the run's check names it (with a suggestion).
            None => value
                .as_str()
                .map_or_else(|| value.to_string(), str::to_string),
        };
        params.insert(name.clone(), text);
    }
    let key = match headers.get("idempotency-key") {
        None => None,
        Some(v) => {
            let text = v
                .to_str()
                .ok()
                .filter(|k| {
                    (1..=MAX_IDEMPOTENCY_KEY).contains(&k.len())
                        && k.bytes().all(|b| b.is_ascii_graphic())
                })
                .ok_or_else(|| {
                    ApiError::new(
                        StatusCode::BAD_REQUEST,
                        "bad_idempotency_key",
                        format!(
                            "Idempotency-Key must be 1 to {MAX_IDEMPOTENCY_KEY} visible ASCII characters without spaces"
                        ),
                    )
                })?;
            Some(text.to_string())
        }
    };
    let triggered = d
        .trigger(
            &request.runbook,
            params,
            Trigger::Api,
            &caller.name,
            request.dry_run,
            key,
        )
        .await
        .map_err(|e| match e {
            TriggerError::KeyReused { .. } => ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "idempotency_key_reused",
                e.to_string(),
            ),
            TriggerError::UnknownRunbook(name) => ApiError::new(
                StatusCode::NOT_FOUND,
                "unknown_runbook",
                format!("no runbook named `{name}`"),
            ),
            TriggerError::Engine(EngineError::Params { problems, .. }) => ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "invalid_params",
                problems.join("; "),
            ),
            TriggerError::Engine(EngineError::Store(StoreError::LeaseHeld {
                target,
                run_id,
                runbook,
                since,
            })) => ApiError::new(
                StatusCode::CONFLICT,
                "target_in_use",
                format!("{target} is in use by run {run_id} ({runbook}, started {since})"),
            ),
            other => {
                tracing::error!(error = %other, "Cannot trigger a run.");
                ApiError::new(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "internal",
                    "the run could not be started; see the daemon log",
                )
            }
        })?;
    let status = if triggered.repeated {
        StatusCode::OK
    } else {
        StatusCode::CREATED
    };
    Ok((status, Json(created(triggered.run_id))))
}

pub(super) fn created(id: String) -> RunCreated {
    RunCreated {
        events: format!("/v1/runs/{id}/events"),
        id,
    }
}

#[utoipa::path(get, path = "/runs/{id}", tag = "runs", params(("id" = String, Path, description = "Run id")), security(("bearer" = [])),
    responses((status = 200, body = RunDetail), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub(super) async fn get_run(
    State(d): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<RunDetail>, ApiError> {
    caller.require(Permission::Read)?;
    checked_run_id(&id)?;
    Ok(Json(run_detail(&d, &id).await?))
}

pub(super) async fn run_detail(d: &Daemon, id: &str) -> Result<RunDetail, ApiError> {
    let run = d
        .store()
        .run(id)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("no run {id}")))?;
    let steps = d.store().steps(id).await?;
    Ok(RunDetail {
        run,
        blocks: block_summaries(&steps),
        steps,
        approvals: d.store().approvals(id).await?,
    })
}

#[utoipa::path(get, path = "/runs/{id}/events", tag = "runs", params(("id" = String, Path, description = "Run id")), security(("bearer" = [])),
    responses((status = 200, description = "Server-sent events: `snapshot` (the run and its steps), then one event per step event, ending with `run_finished`", content_type = "text/event-stream"),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub(super) async fn run_events(
    State(d): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Sse<impl futures_util::Stream<Item = Result<SseEvent, Infallible>>>, ApiError> {
    caller.require(Permission::Read)?;
    checked_run_id(&id)?;
    // Subscribe first, so nothing between the snapshot and the live events is lost.
    let live = d.subscribe(&id);
    let detail = run_detail(&d, &id).await?;
    let finished = detail.run.status != RunStatus::Running.as_str();
    let snapshot = SseEvent::default()
        .event("snapshot")
        .json_data(&detail)
        .unwrap_or_default();
    let first = futures_util::stream::once(async move { Ok::<_, Infallible>(snapshot) });
    if live.is_none() && !finished {
        // Executed by another daemon sharing the database: follow the store.
        let followed = futures_util::StreamExt::map(
            crate::daemon::follow::from_store(d.store().clone(), &detail.run, detail.steps.clone()),
            |event| Ok::<_, Infallible>(sse_event(&event)),
        );
        let stream: futures_util::stream::BoxStream<'static, Result<SseEvent, Infallible>> =
            Box::pin(futures_util::StreamExt::chain(first, followed));
        return Ok(Sse::new(stream).keep_alive(KeepAlive::default()));
    }
    let rest = futures_util::stream::unfold((live, finished), |(rx, done)| async move {
        let mut rx = rx.filter(|_| !done)?;
        loop {
            match rx.recv().await {
                Ok(event) => {
                    let end = matches!(event, RunEvent::RunFinished { .. });
                    return Some((Ok(sse_event(&event)), (Some(rx), end)));
                }
                Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => continue,
                Err(tokio::sync::broadcast::error::RecvError::Closed) => return None,
            }
        }
    });
    let stream: futures_util::stream::BoxStream<'static, Result<SseEvent, Infallible>> =
        Box::pin(futures_util::StreamExt::chain(first, rest));
    Ok(Sse::new(stream).keep_alive(KeepAlive::default()))
}

/// A run event as a server-sent event named by its kind.
fn sse_event(event: &RunEvent) -> SseEvent {
    let name = serde_json::to_value(event)
        .ok()
        .and_then(|v| v["event"].as_str().map(str::to_string))
        .unwrap_or_default();
    SseEvent::default()
        .event(name)
        .json_data(event)
        .unwrap_or_default()
}

/// Result of a cancel request.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct CancelAccepted {
    /// Run id.
    pub id: String,
    /// What happens next.
    pub message: String,
}

#[utoipa::path(post, path = "/runs/{id}/cancel", tag = "runs", params(("id" = String, Path, description = "Run id")), security(("bearer" = [])),
    responses((status = 202, body = CancelAccepted), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody),
        (status = 408, description = "A body was sent and did not arrive within `api.body_timeout` (`request_timeout`)", body = ErrorBody),
        (status = 409, body = ErrorBody)))]
pub(super) async fn cancel_run(
    State(d): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<(StatusCode, Json<CancelAccepted>), ApiError> {
    caller.require(Permission::Operate)?;
    checked_run_id(&id)?;
    let run = d
        .store()
        .run(&id)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("no run {id}")))?;
    if !d.store().request_cancel(&id, &caller.name).await? {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "run_not_running",
            format!("run {id} is {}, not running", run.status),
        ));
    }
    let message = "the run stops at its next step boundary (a cloud call in flight finishes first); finally steps still run".to_string();
    Ok((StatusCode::ACCEPTED, Json(CancelAccepted { id, message })))
}

/// `POST /runs/{id}/approvals` body.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ApprovalBody {
    /// `approve` or `reject`.
    pub decision: Decision,
    #[serde(default)]
    pub comment: Option<String>,
}

/// An approval decision.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, ToSchema, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
#[schema(as = ApprovalDecision)]
pub enum Decision {
    /// Let the run go on.
    Approve,
    /// Fail the approval step.
    Reject,
}

#[utoipa::path(post, path = "/runs/{id}/approvals", tag = "runs", request_body = ApprovalBody, params(("id" = String, Path, description = "Run id")), security(("bearer" = [])),
    responses((status = 201, body = ApprovalRecord), (status = 400, description = "Not a decision (`malformed_json`, `comment_too_long`)", body = ErrorBody),
        (status = 401, body = ErrorBody), (status = 403, description = "Not allowed, or the run's requester (`requester_cannot_approve`)", body = ErrorBody),
        (status = 404, body = ErrorBody),
        (status = 408, description = "The body did not arrive within `api.body_timeout` (`request_timeout`)", body = ErrorBody),
        (status = 409, description = "The run is not waiting for an approval (`no_approval_pending`), the step has its approvals already (`approval_settled`), or this approver decided already (`already_decided`)", body = ErrorBody),
        (status = 413, description = "The body is larger than 64 KiB (`body_too_large`)", body = ErrorBody),
        (status = 415, description = "The body is not declared as JSON (`unsupported_media_type`)", body = ErrorBody)))]
pub(super) async fn approve_run(
    State(d): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<(StatusCode, Json<ApprovalRecord>), ApiError> {
    caller.require(Permission::Operate)?;
    checked_run_id(&id)?;
    super::error::require_json(&headers)?;
    let request: ApprovalBody = serde_json::from_slice(&body).map_err(|e| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            "malformed_json",
            format!(
                "the body must be {{\"decision\": \"approve\"|\"reject\", \"comment\": ...}}: {e}"
            ),
        )
    })?;
    if let Some(comment) = &request.comment
        && comment.chars().count() > MAX_COMMENT_CHARS
    {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "comment_too_long",
            format!(
                "an approval comment has at most {MAX_COMMENT_CHARS} characters, this one has {}",
                comment.chars().count()
            ),
        ));
    }
    let decided = d
        .decide(
            &id,
            &caller.name,
            match request.decision {
                Decision::Approve => store::Decision::Approved,
                Decision::Reject => store::Decision::Rejected,
            },
            request.comment.as_deref(),
        )
        .await
        .map_err(|e| match e {
            DecideError::NotFound(_) => ApiError::not_found(e.to_string()),
            DecideError::Requester { .. } => ApiError::new(
                StatusCode::FORBIDDEN,
                "requester_cannot_approve",
                e.to_string(),
            ),
            DecideError::NoApprovalPending(_) => {
                ApiError::new(StatusCode::CONFLICT, "no_approval_pending", e.to_string())
            }
            DecideError::AlreadyDecided { .. } => {
                ApiError::new(StatusCode::CONFLICT, "already_decided", e.to_string())
            }
            DecideError::Settled { .. } => {
                ApiError::new(StatusCode::CONFLICT, "approval_settled", e.to_string())
            }
            DecideError::Store(e) => ApiError::from(e),
        })?;
    let view = ApprovalRecord {
        step_id: decided.step_id,
        approver: caller.name,
        decision: decided.decision,
        comment: request.comment,
        at: crate::store::now(),
    };
    Ok((StatusCode::CREATED, Json(view)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{Phase, StepStatus};
    use serde_json::json;

    fn row(id: &str, status: StepStatus, output: Option<Value>, error: Option<&str>) -> StepRecord {
        StepRecord {
            step_id: id.into(),
            position: 0,
            phase: Phase::Main,
            status,
            output,
            error: error.map(str::to_string),
            started_at: None,
            finished_at: None,
        }
    }

    #[test]
    fn a_run_view_counts_each_blocks_items_by_status_and_names_them() {
        use StepStatus::*;
        let steps = vec![
            row("discover", Succeeded, Some(json!({"count": 3})), None),
            row(
                "groups",
                Running,
                Some(json!({"items": ["g1", "g2", "g3"]})),
                None,
            ),
            row("groups[0]", Succeeded, None, None),
            row("groups[0].switchover", Succeeded, None, None),
            row("groups[1]", Failed, None, Some("step `precheck` failed: x")),
            row("groups[1].switchover", Skipped, None, None),
            row("groups[2]", Running, None, None),
            row("groups[2].switchover", Running, None, None),
            row("after", Pending, None, None),
        ];
        let blocks = block_summaries(&steps);
        assert_eq!(blocks.len(), 1);
        let b = &blocks[0];
        assert_eq!((b.id.as_str(), b.status, b.count), ("groups", Running, 3));
        assert_eq!(
            (b.succeeded, b.failed, b.running, b.pending, b.skipped),
            (1, 1, 1, 0, 0)
        );
        let items: Vec<(&str, StepStatus)> = b
            .items
            .iter()
            .map(|i| (i.item.as_str(), i.status))
            .collect();
        assert_eq!(items, [("g1", Succeeded), ("g2", Failed), ("g3", Running)]);
        assert_eq!(
            b.items[1].error.as_deref(),
            Some("step `precheck` failed: x")
        );
    }
}
