//! The console at `/ui`: one page for on-call engineers and auditors, served
//! by the daemon, with no separate front-end build.
//!
//! The page itself (`/ui`) is a static shell; its script keeps the bearer
//! token in the tab's session storage (never in a URL or a cookie) and loads
//! each view as an HTML fragment rendered here (`/ui/f/...`), sending the
//! token as `Authorization` like any API client. Fragments are read-only and
//! checked with the same roles as the API; every change (trigger, approve,
//! reject, cancel) goes through the `/v1` routes, so access control lives in
//! one place. Every value is escaped by the template engine, and every
//! response carries a policy that allows only this origin's script and
//! styles, forbids framing and sniffing.

use axum::Router;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;
use serde::{Deserialize, Serialize};

use super::AppState;
use super::auth::{Caller, Permission};
use super::error::ApiError;
use super::evidence::{WhoAmI, report_error};
use super::runs::checked_run_id;
use crate::report::summary::is_drill;
use crate::report::{ChainCheck, RunView, human, render, time};
use crate::store::RunStatus;

/// The policy of every console response: this origin's script and styles
/// only, no inline script, no framing, no form posts, no plugins.
pub const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; form-action 'none'; frame-ancestors 'none'; base-uri 'none'";

/// Rows a fragment lists at most (the API pages further).
const MAX_ROWS: usize = 200;

/// The `/ui` routes.
pub(super) fn router() -> Router<AppState> {
    Router::new()
        .route("/ui", get(shell))
        .route("/ui/", get(shell))
        .route("/ui/app.js", get(script))
        .route("/ui/app.css", get(styles))
        .route("/ui/f/runs", get(runs_fragment))
        .route("/ui/f/runs/{id}", get(run_fragment))
        .route("/ui/f/runbooks", get(runbooks_fragment))
        .route("/ui/f/audit", get(audit_fragment))
        .layer(axum::middleware::map_response(secure))
}

/// Security headers on every console response; fragments are never cached.
pub(super) async fn secure(mut response: Response) -> Response {
    let h = response.headers_mut();
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CSP),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

async fn shell() -> Html<&'static str> {
    Html(include_str!("ui/shell.html"))
}

async fn script() -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "text/javascript; charset=utf-8")],
        include_str!("ui/app.js"),
    )
}

async fn styles() -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "text/css; charset=utf-8")],
        format!("{}\n{}", crate::report::STYLE, include_str!("ui/app.css")),
    )
}

fn fragment(name: &str, source: &str, value: &impl Serialize) -> Result<Response, ApiError> {
    render(name, source, value)
        .map(|html| Html(html).into_response())
        .map_err(report_error)
}

#[derive(Debug, Deserialize)]
struct RunsFilter {
    status: Option<String>,
    runbook: Option<String>,
}

async fn runs_fragment(
    State(d): State<AppState>,
    caller: Caller,
    Query(q): Query<RunsFilter>,
) -> Result<Response, ApiError> {
    caller.require(Permission::Read)?;
    let status = q.status.filter(|s| !s.is_empty());
    let runbook = q.runbook.filter(|s| !s.is_empty());
    if let Some(s) = &status
        && RunStatus::parse(s).is_none()
    {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "bad_status",
            "status must be running, succeeded, failed or cancelled",
        ));
    }
    let runs: Vec<_> = d
        .store()
        .runs(1000)
        .await?
        .into_iter()
        .filter(|r| status.as_deref().is_none_or(|s| r.status == s))
        .filter(|r| runbook.as_deref().is_none_or(|n| r.runbook == n))
        .take(MAX_ROWS)
        .collect();
    let names: Vec<String> = d.registry().runbooks.keys().cloned().collect();
    fragment(
        "runs.html",
        include_str!("ui/runs.html"),
        &serde_json::json!({ "runs": runs, "status": status, "runbook": runbook, "runbooks": names }),
    )
}

async fn run_fragment(
    State(d): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    caller.require(Permission::Read)?;
    checked_run_id(&id)?;
    let view = RunView::gather(d.store(), &id)
        .await
        .map_err(report_error)?;
    let running = view.run.status == RunStatus::Running;
    // The approval step the run waits in, if any.
    let waiting = view
        .steps
        .iter()
        .find(|s| {
            s.record.status == crate::store::StepStatus::Running
                && view.approval_steps.contains(&s.id)
        })
        .map(|s| s.id.clone());
    let me = WhoAmI::of(&caller);
    let is_requester = view.run.requested_by == caller.name;
    let context = serde_json::json!({
        "v": view,
        "me": me,
        "running": running,
        "waiting": waiting,
        "can_decide": running && waiting.is_some() && me.operate && !is_requester,
        "is_requester": is_requester,
        "can_cancel": running && me.operate && view.run.cancel_requested_by.is_none(),
        "hidden_steps": view.steps.len().saturating_sub(MAX_ROWS),
        "steps": view.steps.iter().take(MAX_ROWS).collect::<Vec<_>>(),
    });
    fragment("run.html", include_str!("ui/run.html"), &context)
}

async fn runbooks_fragment(
    State(d): State<AppState>,
    caller: Caller,
) -> Result<Response, ApiError> {
    caller.require(Permission::Read)?;
    let me = WhoAmI::of(&caller);
    let registry = d.registry();
    let recent = d.store().runs(1000).await?;
    let now = chrono::Utc::now();
    let books: Vec<serde_json::Value> = registry
        .runbooks
        .values()
        .map(|r| {
            let view = super::runbooks::runbook_view(r);
            let last_drill = recent
                .iter()
                .find(|run| {
                    run.runbook == r.name && run.status == RunStatus::Succeeded && is_drill(run)
                })
                .map(|run| run.created_at.clone());
            let age = last_drill
                .as_deref()
                .and_then(time)
                .and_then(|t| (now - t).to_std().ok())
                .map(human);
            let can_trigger = me.trigger_any
                || (me.trigger_drill && r.kind == crate::runbook::Kind::Drill);
            serde_json::json!({ "view": view, "last_drill": last_drill, "drill_age": age, "can_trigger": can_trigger })
        })
        .collect();
    let invalid: Vec<String> = registry
        .errors
        .keys()
        .map(|file| file.display().to_string())
        .collect();
    fragment(
        "runbooks.html",
        include_str!("ui/runbooks.html"),
        &serde_json::json!({ "runbooks": books, "invalid": invalid, "me": me }),
    )
}

async fn audit_fragment(State(d): State<AppState>, caller: Caller) -> Result<Response, ApiError> {
    caller.require(Permission::Audit)?;
    let config = d.config();
    let chain = ChainCheck::of(d.store(), config.audit.public_key.as_ref()).await?;
    let mut events = d.store().events(None).await?;
    let total = events.len();
    events.reverse();
    events.truncate(MAX_ROWS);
    fragment(
        "audit.html",
        include_str!("ui/audit.html"),
        &serde_json::json!({ "chain": chain, "events": events, "total": total }),
    )
}
