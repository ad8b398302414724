//! The daemon's HTTP API under `/v1`, and `/healthz`, `/readyz`, `/metrics`.
//!
//! Every `/v1` route needs a bearer token from `api.tokens` (matched by its
//! sha256); its role decides what the caller may do (see [`allows`]). Errors
//! are JSON `{code, message}` with a stable `code`. The OpenAPI document at
//! `/v1/openapi.json` is generated from these handlers, so it cannot drift.

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{FromRequestParts, Path, Query, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use futures_util::Stream;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use utoipa::{OpenApi, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::config::Role;
use crate::daemon::{Daemon, TriggerError};
use crate::engine::RunEvent;
use crate::engine::run::EngineError;
use crate::runbook::{self, Action, Kind};
use crate::store::{StoreError, status};

type AppState = Arc<Daemon>;

/// An API error: a status, a stable code and a readable message.
#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    code: &'static str,
    message: String,
}

/// The JSON body of every error.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct ErrorBody {
    /// Stable machine-readable code, e.g. `forbidden`, `unknown_runbook`.
    pub code: String,
    /// What went wrong, for people.
    pub message: String,
}

impl ApiError {
    fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        ApiError {
            status,
            code,
            message: message.into(),
        }
    }
    fn not_found(what: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, "not_found", what)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (
            self.status,
            Json(ErrorBody {
                code: self.code.into(),
                message: self.message,
            }),
        )
            .into_response()
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        // Internal causes are logged, not returned.
        tracing::error!(error = %e, "Store error in the API.");
        ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            "the audit store failed; see the daemon log",
        )
    }
}

/// What a role may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Permission {
    /// Read runs and runbooks.
    Read,
    /// Read and verify the audit trail.
    Audit,
    /// Trigger a runbook of kind `drill`.
    TriggerDrill,
    /// Trigger any runbook.
    TriggerAny,
    /// Approve, reject and cancel.
    Operate,
}

/// The role table: viewer reads; auditor reads and audits; drill reads and
/// triggers drills; operator reads, triggers anything, approves and cancels;
/// admin does everything.
pub fn allows(role: Role, permission: Permission) -> bool {
    use Permission as P;
    match role {
        Role::Admin => true,
        Role::Operator => matches!(
            permission,
            P::Read | P::TriggerDrill | P::TriggerAny | P::Operate
        ),
        Role::Drill => matches!(permission, P::Read | P::TriggerDrill),
        Role::Auditor => matches!(permission, P::Read | P::Audit),
        Role::Viewer => matches!(permission, P::Read),
    }
}

/// The authenticated caller.
#[derive(Debug, Clone)]
pub struct Caller {
    /// Token name, recorded as the actor.
    pub name: String,
    /// Its role.
    pub role: Role,
}

impl Caller {
    fn require(&self, permission: Permission) -> Result<(), ApiError> {
        if allows(self.role, permission) {
            Ok(())
        } else {
            Err(ApiError::new(
                StatusCode::FORBIDDEN,
                "forbidden",
                format!("role {} may not do this ({permission:?})", self.role),
            ))
        }
    }
}

impl FromRequestParts<AppState> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let unauthorized = |m: &str| ApiError::new(StatusCode::UNAUTHORIZED, "unauthorized", m);
        let header = parts
            .headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .ok_or_else(|| unauthorized("missing `Authorization: Bearer <token>`"))?;
        let token = header
            .strip_prefix("Bearer ")
            .ok_or_else(|| unauthorized("the Authorization header must be `Bearer <token>`"))?;
        let (name, role) = state
            .find_token(token.trim())
            .ok_or_else(|| unauthorized("unknown token"))?;
        Ok(Caller { name, role })
    }
}

#[derive(OpenApi)]
#[openapi(
    info(title = "drover", description = "Disaster-recovery runbooks for Open Telekom Cloud storage replication."),
    modifiers(&BearerAuth),
    tags((name = "runs"), (name = "runbooks"), (name = "audit"))
)]
struct ApiDoc;

struct BearerAuth;

impl utoipa::Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
        );
    }
}

/// The whole HTTP surface.
pub fn router(daemon: AppState) -> Router {
    let (v1, openapi) = openapi_router().split_for_parts();
    let document = Arc::new(prefixed(openapi));
    Router::new()
        .nest("/v1", v1)
        .route(
            "/v1/openapi.json",
            get(move || {
                let document = document.clone();
                async move { Json((*document).clone()) }
            }),
        )
        .route("/healthz", get(|| async { "ok" }))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .layer(axum::extract::DefaultBodyLimit::max(MAX_BODY_BYTES))
        .layer(axum::middleware::map_response(body_too_large))
        .with_state(daemon)
}

/// The largest request body accepted (a run request, an approval).
pub const MAX_BODY_BYTES: usize = 64 * 1024;
/// The longest `Idempotency-Key` accepted.
pub const MAX_IDEMPOTENCY_KEY: usize = 255;
/// The longest approval comment accepted, in characters.
pub const MAX_COMMENT_CHARS: usize = 1000;

/// The body limit answers in plain text: every error here is `{code, message}`.
async fn body_too_large(response: Response) -> Response {
    if response.status() == StatusCode::PAYLOAD_TOO_LARGE {
        return ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "body_too_large",
            format!("the request body is larger than {MAX_BODY_BYTES} bytes"),
        )
        .into_response();
    }
    response
}

/// A run id from a path, checked before it is looked up or echoed.
fn checked_run_id(id: &str) -> Result<&str, ApiError> {
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

/// The `/v1` routes with their OpenAPI description.
pub fn openapi_router() -> OpenApiRouter<AppState> {
    OpenApiRouter::with_openapi(ApiDoc::openapi())
        .routes(routes!(list_runs, create_run))
        .routes(routes!(get_run))
        .routes(routes!(run_events))
        .routes(routes!(cancel_run))
        .routes(routes!(approve_run))
        .routes(routes!(list_runbooks))
        .routes(routes!(get_runbook))
        .routes(routes!(audit_events))
        .routes(routes!(audit_verify))
}

/// The OpenAPI document (as served at `/v1/openapi.json`).
pub fn openapi_document() -> Value {
    prefixed(openapi_router().split_for_parts().1)
}

/// The routes are served under `/v1`: the document says so in its paths.
fn prefixed(openapi: utoipa::openapi::OpenApi) -> Value {
    let mut doc = serde_json::to_value(openapi).unwrap_or_default();
    if let Some(paths) = doc.get_mut("paths").and_then(Value::as_object_mut) {
        let moved: serde_json::Map<String, Value> = std::mem::take(paths)
            .into_iter()
            .map(|(k, v)| (format!("/v1{k}"), v))
            .collect();
        *paths = moved;
    }
    doc
}

async fn readyz(State(d): State<AppState>) -> Response {
    if d.is_ready() {
        "ready".into_response()
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "starting").into_response()
    }
}

async fn metrics(State(d): State<AppState>) -> Response {
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        d.metrics().render(),
    )
        .into_response()
}

// ---- runs ------------------------------------------------------------------

/// A run as listed.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct RunView {
    /// Run id.
    pub id: String,
    /// Runbook.
    pub runbook: String,
    /// Runbook version (sha256 of the file the run started with).
    pub runbook_digest: String,
    /// Kind of runbook.
    pub kind: String,
    /// `cli`, `api` or `schedule`.
    pub trigger: String,
    /// Who started it.
    pub requested_by: String,
    /// Parameters.
    pub params: BTreeMap<String, String>,
    /// Dry run.
    pub dry_run: bool,
    /// `running`, `succeeded`, `failed`, `cancelled`.
    pub status: String,
    /// Why it failed.
    pub error: Option<String>,
    /// Created.
    pub created_at: String,
    /// Finished.
    pub finished_at: Option<String>,
    /// End of the last main step (recovery).
    pub recovered_at: Option<String>,
    /// Who asked to cancel it.
    pub cancel_requested_by: Option<String>,
}

impl From<crate::store::RunRecord> for RunView {
    fn from(r: crate::store::RunRecord) -> Self {
        RunView {
            id: r.id,
            runbook: r.runbook,
            runbook_digest: r.runbook_digest,
            kind: r.kind,
            trigger: r.trigger,
            requested_by: r.requested_by,
            params: r.params,
            dry_run: r.dry_run,
            status: r.status,
            error: r.error,
            created_at: r.created_at,
            finished_at: r.finished_at,
            recovered_at: r.recovered_at,
            cancel_requested_by: r.cancel_requested_by,
        }
    }
}

/// A step of a run.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct StepView {
    /// Step id.
    pub step_id: String,
    /// `main` or `finally`.
    pub phase: String,
    /// `pending`, `running`, `succeeded`, `failed`, `skipped`.
    pub status: String,
    /// Output.
    #[schema(value_type = Object)]
    pub output: Option<Value>,
    /// Failure.
    pub error: Option<String>,
    /// Started.
    pub started_at: Option<String>,
    /// Finished.
    pub finished_at: Option<String>,
}

/// An approval decision.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct ApprovalView {
    /// Step.
    pub step_id: String,
    /// Who.
    pub approver: String,
    /// `approved` or `rejected`.
    pub decision: String,
    /// Comment.
    pub comment: Option<String>,
    /// When.
    pub at: String,
}

/// One run in detail.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct RunDetail {
    /// The run.
    pub run: RunView,
    /// Its steps in order.
    pub steps: Vec<StepView>,
    /// Approvals given.
    pub approvals: Vec<ApprovalView>,
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
struct ListQuery {
    /// Newest first; at most this many (default 50).
    limit: Option<u32>,
    /// Only runs with this status.
    status: Option<String>,
}

#[utoipa::path(get, path = "/runs", tag = "runs", params(ListQuery), security(("bearer" = [])),
    responses((status = 200, body = Vec<RunView>), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)))]
async fn list_runs(
    State(d): State<AppState>,
    caller: Caller,
    Query(q): Query<ListQuery>,
) -> Result<Json<Vec<RunView>>, ApiError> {
    caller.require(Permission::Read)?;
    let runs = d.store().runs(q.limit.unwrap_or(50).min(1000)).await?;
    Ok(Json(
        runs.into_iter()
            .filter(|r| q.status.as_deref().is_none_or(|s| r.status == s))
            .map(RunView::from)
            .collect(),
    ))
}

/// `POST /runs` body.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TriggerBody {
    /// Runbook name.
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
    params(("Idempotency-Key" = Option<String>, Header, description = "Repeat a request safely: the same key (and body) returns the same run")),
    responses((status = 201, body = RunCreated), (status = 200, description = "The run of an earlier request with this Idempotency-Key", body = RunCreated),
        (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody),
        (status = 409, body = ErrorBody), (status = 422, body = ErrorBody)))]
async fn create_run(
    State(d): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    body: Bytes,
) -> Result<(StatusCode, Json<RunCreated>), ApiError> {
    // Before reading the body: a viewer learns nothing about runbooks here.
    if !allows(caller.role, Permission::TriggerDrill) {
        caller.require(Permission::TriggerAny)?;
    }
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
    for (k, v) in &request.params {
        let text = match v {
            Value::String(s) => s.clone(),
            Value::Number(n) => n.to_string(),
            Value::Bool(b) => b.to_string(),
            other => {
                return Err(ApiError::new(
                    StatusCode::BAD_REQUEST,
                    "bad_param_type",
                    format!("parameter `{k}` must be a string, number or boolean, found {other}"),
                ));
            }
        };
        params.insert(k.clone(), text);
    }
    let key = match headers.get("idempotency-key") {
        None => None,
        Some(v) => {
            let text = v
                .to_str()
                .ok()
                .filter(|k| !k.is_empty() && k.len() <= MAX_IDEMPOTENCY_KEY)
                .ok_or_else(|| {
                    ApiError::new(
                        StatusCode::BAD_REQUEST,
                        "bad_idempotency_key",
                        format!(
                            "Idempotency-Key must be 1 to {MAX_IDEMPOTENCY_KEY} visible ASCII characters"
                        ),
                    )
                })?;
            Some(text.to_string())
        }
    };
    let digest = hex::encode(Sha256::digest(
        serde_json::to_vec(
            &json!({"runbook": request.runbook, "params": params, "dry_run": request.dry_run}),
        )
        .unwrap_or_default(),
    ));
    if let Some(key) = &key
        && let Some((previous, run_id)) = d.store().idempotent_run(&caller.name, key).await?
    {
        if previous != digest {
            return Err(ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "idempotency_key_reused",
                format!("Idempotency-Key `{key}` was used for a different request (run {run_id})"),
            ));
        }
        return Ok((StatusCode::OK, Json(created(run_id))));
    }
    let run_id = d
        .trigger(
            &request.runbook,
            params,
            "api",
            &caller.name,
            request.dry_run,
            key.map(|k| (k, digest)),
        )
        .await
        .map_err(|e| match e {
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
    Ok((StatusCode::CREATED, Json(created(run_id))))
}

fn created(id: String) -> RunCreated {
    RunCreated {
        events: format!("/v1/runs/{id}/events"),
        id,
    }
}

#[utoipa::path(get, path = "/runs/{id}", tag = "runs", params(("id" = String, Path, description = "Run id")), security(("bearer" = [])),
    responses((status = 200, body = RunDetail), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn get_run(
    State(d): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<RunDetail>, ApiError> {
    caller.require(Permission::Read)?;
    checked_run_id(&id)?;
    Ok(Json(run_detail(&d, &id).await?))
}

async fn run_detail(d: &Daemon, id: &str) -> Result<RunDetail, ApiError> {
    let run = d
        .store()
        .run(id)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("no run {id}")))?;
    let steps = d
        .store()
        .steps(id)
        .await?
        .into_iter()
        .map(|s| StepView {
            step_id: s.step_id,
            phase: s.phase,
            status: s.status,
            output: s.output,
            error: s.error,
            started_at: s.started_at,
            finished_at: s.finished_at,
        })
        .collect();
    let approvals = d
        .store()
        .approvals(id)
        .await?
        .into_iter()
        .map(|a| ApprovalView {
            step_id: a.step_id,
            approver: a.approver,
            decision: a.decision,
            comment: a.comment,
            at: a.at,
        })
        .collect();
    Ok(RunDetail {
        run: run.into(),
        steps,
        approvals,
    })
}

#[utoipa::path(get, path = "/runs/{id}/events", tag = "runs", params(("id" = String, Path, description = "Run id")), security(("bearer" = [])),
    responses((status = 200, description = "Server-sent events: `snapshot` (the run and its steps), then one event per step event, ending with `run_finished`", content_type = "text/event-stream"),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn run_events(
    State(d): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Sse<impl Stream<Item = Result<SseEvent, Infallible>>>, ApiError> {
    caller.require(Permission::Read)?;
    checked_run_id(&id)?;
    // Subscribe first, so nothing between the snapshot and the live events is lost.
    let live = d.subscribe(&id);
    let detail = run_detail(&d, &id).await?;
    let finished = detail.run.status != status::RUNNING;
    let snapshot = SseEvent::default()
        .event("snapshot")
        .json_data(&detail)
        .unwrap_or_default();
    let first = futures_util::stream::once(async move { Ok::<_, Infallible>(snapshot) });
    let rest = futures_util::stream::unfold((live, finished), |(rx, done)| async move {
        let mut rx = rx.filter(|_| !done)?;
        loop {
            match rx.recv().await {
                Ok(event) => {
                    let name = serde_json::to_value(&event)
                        .ok()
                        .and_then(|v| v["event"].as_str().map(str::to_string))
                        .unwrap_or_default();
                    let end = matches!(event, RunEvent::RunFinished { .. });
                    let sse = SseEvent::default()
                        .event(name)
                        .json_data(&event)
                        .unwrap_or_default();
                    return Some((Ok(sse), (Some(rx), end)));
                }
                Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => continue,
                Err(tokio::sync::broadcast::error::RecvError::Closed) => return None,
            }
        }
    });
    Ok(Sse::new(futures_util::StreamExt::chain(first, rest)).keep_alive(KeepAlive::default()))
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
    responses((status = 202, body = CancelAccepted), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
async fn cancel_run(
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
    /// Why.
    #[serde(default)]
    pub comment: Option<String>,
}

/// An approval decision.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, ToSchema, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum Decision {
    /// Let the run go on.
    Approve,
    /// Fail the approval step.
    Reject,
}

#[utoipa::path(post, path = "/runs/{id}/approvals", tag = "runs", request_body = ApprovalBody, params(("id" = String, Path, description = "Run id")), security(("bearer" = [])),
    responses((status = 201, body = ApprovalView), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
async fn approve_run(
    State(d): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    body: Bytes,
) -> Result<(StatusCode, Json<ApprovalView>), ApiError> {
    caller.require(Permission::Operate)?;
    checked_run_id(&id)?;
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
    let run = d
        .store()
        .run(&id)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("no run {id}")))?;
    if run.requested_by == caller.name {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "requester_cannot_approve",
            format!("{} started run {id} and cannot approve it", caller.name),
        ));
    }
    // The approval step the run is waiting in.
    let book = runbook::parse(&run.runbook_source, std::path::Path::new(&run.runbook_path))
        .map_err(|_| {
            ApiError::new(
                StatusCode::CONFLICT,
                "no_approval_pending",
                "the run's runbook cannot be read",
            )
        })?;
    let steps = d.store().steps(&id).await?;
    let waiting = steps
        .iter()
        .find(|s| {
            s.status == status::RUNNING
                && book
                    .all_steps()
                    .any(|b| b.id == s.step_id && matches!(b.action, Action::Approval(_)))
        })
        .ok_or_else(|| {
            ApiError::new(
                StatusCode::CONFLICT,
                "no_approval_pending",
                format!("run {id} is {} and not waiting for an approval", run.status),
            )
        })?;
    let already = d
        .store()
        .approvals(&id)
        .await?
        .into_iter()
        .any(|a| a.step_id == waiting.step_id && a.approver == caller.name);
    if already {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "already_decided",
            format!(
                "{} already decided on step `{}`",
                caller.name, waiting.step_id
            ),
        ));
    }
    let decision = if request.decision == Decision::Approve {
        "approved"
    } else {
        "rejected"
    };
    d.store()
        .record_approval(
            &id,
            &waiting.step_id,
            &caller.name,
            decision,
            request.comment.as_deref(),
        )
        .await?;
    let view = ApprovalView {
        step_id: waiting.step_id.clone(),
        approver: caller.name,
        decision: decision.into(),
        comment: request.comment,
        at: crate::store::now(),
    };
    Ok((StatusCode::CREATED, Json(view)))
}

// ---- runbooks --------------------------------------------------------------

/// A schedule with its next fire time.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct ScheduleView {
    /// Name.
    pub name: String,
    /// Cron expression.
    pub cron: String,
    /// IANA time zone.
    pub timezone: String,
    /// Disabled schedules never fire.
    pub enabled: bool,
    /// Next fire (RFC 3339, UTC).
    pub next_fire: Option<String>,
}

/// A loaded runbook.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct RunbookView {
    /// Name.
    pub name: String,
    /// Description.
    pub description: Option<String>,
    /// Kind.
    pub kind: String,
    /// File.
    pub path: String,
    /// Version (sha256 of the file).
    pub digest: String,
    /// Parameters.
    #[schema(value_type = Vec<Object>)]
    pub params: Vec<runbook::Param>,
    /// Steps: id and action, in order (finally steps last).
    pub steps: Vec<(String, String)>,
    /// Schedules.
    pub schedules: Vec<ScheduleView>,
}

/// A runbook file that does not validate (its previous version may still be loaded).
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct InvalidRunbook {
    /// File.
    pub file: String,
    /// Every problem, `file:line:column: message`.
    pub errors: Vec<String>,
}

/// All runbooks.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct RunbookList {
    /// Loaded runbooks.
    pub runbooks: Vec<RunbookView>,
    /// Files that did not load.
    pub invalid: Vec<InvalidRunbook>,
}

fn runbook_view(r: &runbook::Runbook) -> RunbookView {
    let now = chrono::Utc::now();
    RunbookView {
        name: r.name.clone(),
        description: r.description.clone(),
        kind: r.kind.to_string(),
        path: r.path.display().to_string(),
        digest: r.digest.clone(),
        params: r.params.clone(),
        steps: r
            .all_steps()
            .map(|s| (s.id.clone(), s.action.name().to_string()))
            .collect(),
        schedules: r
            .schedules
            .iter()
            .zip(Daemon::next_fires(r, now))
            .map(|(s, (_, next))| ScheduleView {
                name: s.name.clone(),
                cron: s.cron_text.clone(),
                timezone: s.timezone.name().to_string(),
                enabled: s.enabled,
                next_fire: next.map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)),
            })
            .collect(),
    }
}

#[utoipa::path(get, path = "/runbooks", tag = "runbooks", security(("bearer" = [])),
    responses((status = 200, body = RunbookList), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)))]
async fn list_runbooks(
    State(d): State<AppState>,
    caller: Caller,
) -> Result<Json<RunbookList>, ApiError> {
    caller.require(Permission::Read)?;
    let registry = d.registry();
    Ok(Json(RunbookList {
        runbooks: registry.runbooks.values().map(runbook_view).collect(),
        invalid: registry
            .errors
            .iter()
            .map(|(file, errors)| InvalidRunbook {
                file: file.display().to_string(),
                errors: errors.iter().map(ToString::to_string).collect(),
            })
            .collect(),
    }))
}

#[utoipa::path(get, path = "/runbooks/{name}", tag = "runbooks", params(("name" = String, Path, description = "Runbook name")), security(("bearer" = [])),
    responses((status = 200, body = RunbookView), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn get_runbook(
    State(d): State<AppState>,
    caller: Caller,
    Path(name): Path<String>,
) -> Result<Json<RunbookView>, ApiError> {
    caller.require(Permission::Read)?;
    let registry = d.registry();
    let r = registry.runbooks.get(&name).ok_or_else(|| {
        ApiError::new(
            StatusCode::NOT_FOUND,
            "unknown_runbook",
            format!("no runbook named `{name}`"),
        )
    })?;
    Ok(Json(runbook_view(r)))
}

// ---- audit -----------------------------------------------------------------

#[derive(Debug, Deserialize, utoipa::IntoParams)]
struct EventsQuery {
    /// Only events at or after this time (RFC 3339).
    since: Option<String>,
}

/// One audit event.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct EventView {
    /// Position in the chain.
    pub seq: i64,
    /// When.
    pub at: String,
    /// Who.
    pub actor: String,
    /// What.
    pub kind: String,
    /// Run.
    pub run_id: Option<String>,
    /// Step.
    pub step_id: Option<String>,
    /// Details.
    #[schema(value_type = Object)]
    pub data: Value,
    /// Hash of the previous event.
    pub prev_hash: String,
    /// This event's hash.
    pub hash: String,
}

#[utoipa::path(get, path = "/audit/events", tag = "audit", params(EventsQuery), security(("bearer" = [])),
    responses((status = 200, body = Vec<EventView>), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)))]
async fn audit_events(
    State(d): State<AppState>,
    caller: Caller,
    Query(q): Query<EventsQuery>,
) -> Result<Json<Vec<EventView>>, ApiError> {
    caller.require(Permission::Audit)?;
    let since = q
        .since
        .map(|s| {
            chrono::DateTime::parse_from_rfc3339(&s)
                .map(|t| t.with_timezone(&chrono::Utc))
                .map_err(|_| {
                    ApiError::new(
                        StatusCode::BAD_REQUEST,
                        "bad_since",
                        format!("since `{s}` is not an RFC 3339 time"),
                    )
                })
        })
        .transpose()?;
    let events = d.store().events(since).await?;
    Ok(Json(
        events
            .into_iter()
            .map(|e| EventView {
                seq: e.seq,
                at: e.at,
                actor: e.actor,
                kind: e.kind,
                run_id: e.run_id,
                step_id: e.step_id,
                data: e.data,
                prev_hash: e.prev_hash,
                hash: e.hash,
            })
            .collect(),
    ))
}

/// The chain check.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct VerifyView {
    /// True when every link verifies.
    pub intact: bool,
    /// Events verified (up to the break).
    pub events: u64,
    /// The first broken event.
    pub broken_seq: Option<i64>,
    /// Why it is broken.
    pub reason: Option<String>,
}

#[utoipa::path(get, path = "/audit/verify", tag = "audit", security(("bearer" = [])),
    responses((status = 200, body = VerifyView), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)))]
async fn audit_verify(
    State(d): State<AppState>,
    caller: Caller,
) -> Result<Json<VerifyView>, ApiError> {
    caller.require(Permission::Audit)?;
    Ok(Json(match d.store().verify().await? {
        Ok(events) => VerifyView {
            intact: true,
            events,
            broken_seq: None,
            reason: None,
        },
        Err(b) => VerifyView {
            intact: false,
            events: (b.seq - 1).max(0) as u64,
            broken_seq: Some(b.seq),
            reason: Some(b.reason),
        },
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_role_table() {
        use Permission as P;
        let all = [
            P::Read,
            P::Audit,
            P::TriggerDrill,
            P::TriggerAny,
            P::Operate,
        ];
        let table = [
            (Role::Viewer, vec![P::Read]),
            (Role::Auditor, vec![P::Read, P::Audit]),
            (Role::Drill, vec![P::Read, P::TriggerDrill]),
            (
                Role::Operator,
                vec![P::Read, P::TriggerDrill, P::TriggerAny, P::Operate],
            ),
            (Role::Admin, all.to_vec()),
        ];
        for (role, granted) in table {
            for p in all {
                assert_eq!(allows(role, p), granted.contains(&p), "{role} {p:?}");
            }
        }
    }

    #[test]
    fn the_openapi_document_lists_every_route() {
        let doc = openapi_document();
        for (path, method) in [
            ("/v1/runs", "get"),
            ("/v1/runs", "post"),
            ("/v1/runs/{id}", "get"),
            ("/v1/runs/{id}/events", "get"),
            ("/v1/runs/{id}/cancel", "post"),
            ("/v1/runs/{id}/approvals", "post"),
            ("/v1/runbooks", "get"),
            ("/v1/runbooks/{name}", "get"),
            ("/v1/audit/events", "get"),
            ("/v1/audit/verify", "get"),
        ] {
            assert!(
                doc["paths"][path][method].is_object(),
                "{method} {path} missing"
            );
        }
        assert_eq!(
            doc["components"]["securitySchemes"]["bearer"]["scheme"],
            "bearer"
        );
    }
}
