//! The daemon's HTTP API under `/v1`, and `/healthz`, `/readyz`, `/metrics`.
//!
//! Every `/v1` route needs a bearer token from `api.tokens` (matched by its
//! sha256); its role decides what the caller may do (see [`allows`]). Errors
//! are JSON `{code, message}` with a stable `code`. The OpenAPI document at
//! `/v1/openapi.json` is generated from these handlers, so it cannot drift.
//! The console (`/ui`, [`ui`]) is served beside them and uses them.

pub mod audit;
pub mod auth;
mod body;
pub mod error;
pub mod evidence;
pub mod health;
pub mod runbooks;
pub mod runs;
pub mod ui;

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::extract::State;
use axum::routing::get;
use axum::{Json, Router};
use serde_json::Value;
use utoipa::OpenApi;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::daemon::Daemon;
use crate::runbook::{Runbook, params};
pub use audit::VerifyView;
use auth::BearerAuth;
pub use auth::{Caller, Permission, allows};
pub use error::{ApiError, ErrorBody};
use health::{metrics, readyz};
pub use runbooks::{InvalidRunbook, RunbookList, RunbookView, ScheduleView};
pub use runs::{ApprovalBody, CancelAccepted, Decision, RunCreated, RunDetail, TriggerBody};

type AppState = Arc<Daemon>;

#[derive(OpenApi)]
#[openapi(
    info(title = "drover", description = "Disaster-recovery runbooks for Open Telekom Cloud storage replication."),
    modifiers(&BearerAuth),
    tags((name = "runs"), (name = "runbooks"), (name = "audit"))
)]
struct ApiDoc;

/// The whole HTTP surface.
pub fn router(daemon: AppState) -> Router {
    let (v1, openapi) = openapi_router().split_for_parts();
    let document = Arc::new(prefixed(openapi));
    // Server settings take effect at start, not on reload.
    let body_timeout = daemon.config().api_limits.body_timeout;
    Router::new()
        .nest("/v1", v1)
        .route(
            "/v1/openapi.json",
            get(move |State(d): State<AppState>| {
                let document = document.clone();
                async move { Json(with_runbooks(&document, &d.registry().runbooks)) }
            }),
        )
        .route("/healthz", get(|| async { "ok" }))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .merge(ui::router())
        .layer(axum::extract::DefaultBodyLimit::max(MAX_BODY_BYTES))
        .layer(axum::middleware::from_fn(move |request, next| {
            body::read_in_time(body_timeout, request, next)
        }))
        .layer(axum::middleware::map_response(error::json_errors))
        .with_state(daemon)
}

/// The largest request body accepted (a run request, an approval).
pub const MAX_BODY_BYTES: usize = 64 * 1024;
/// The longest `Idempotency-Key` accepted.
pub const MAX_IDEMPOTENCY_KEY: usize = 255;
/// The longest approval comment accepted, in characters.
pub const MAX_COMMENT_CHARS: usize = 1000;

/// The `/v1` routes with their OpenAPI description.
pub fn openapi_router() -> OpenApiRouter<AppState> {
    OpenApiRouter::with_openapi(ApiDoc::openapi())
        .routes(routes!(runs::list_runs, runs::create_run))
        .routes(routes!(runs::get_run))
        .routes(routes!(runs::run_events))
        .routes(routes!(runs::cancel_run))
        .routes(routes!(runs::approve_run))
        .routes(routes!(evidence::run_report))
        .routes(routes!(evidence::whoami))
        .routes(routes!(runbooks::list_runbooks))
        .routes(routes!(runbooks::get_runbook))
        .routes(routes!(audit::audit_events))
        .routes(routes!(audit::audit_verify))
}

/// The OpenAPI document (as served at `/v1/openapi.json`).
pub fn openapi_document() -> Value {
    prefixed(openapi_router().split_for_parts().1)
}

/// The document with the run request of each loaded runbook: `TriggerBody`
/// becomes one of them, each with the parameters it takes.
pub fn with_runbooks(document: &Value, runbooks: &BTreeMap<String, Runbook>) -> Value {
    let mut doc = document.clone();
    if runbooks.is_empty() {
        return doc;
    }
    let one_of: Vec<Value> = runbooks.values().map(params::request_schema).collect();
    if let Some(body) = doc.pointer_mut("/components/schemas/TriggerBody") {
        let description = body.get("description").cloned();
        *body = serde_json::json!({ "oneOf": one_of });
        if let Some(text) = description {
            body["description"] = text;
        }
    }
    doc
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Role;

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
            ("/v1/runs/{id}/report", "get"),
            ("/v1/whoami", "get"),
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

    #[test]
    fn the_schemas_say_what_goes_over_the_wire() {
        let doc = openapi_document();
        let schemas = &doc["components"]["schemas"];
        assert_eq!(
            schemas["RunStatus"]["enum"],
            serde_json::json!(["running", "succeeded", "failed", "cancelled"])
        );
        assert_eq!(
            schemas["Trigger"]["enum"],
            serde_json::json!(["cli", "api", "schedule"])
        );
        // The API's approve/reject and the store's approved/rejected are two
        // schemas, not one name that hides the other.
        assert_eq!(
            schemas["ApprovalDecision"]["enum"],
            serde_json::json!(["approve", "reject"])
        );
        let limit = doc["paths"]["/v1/runs"]["get"]["parameters"]
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["name"] == "limit")
            .unwrap();
        assert_eq!(
            (&limit["schema"]["minimum"], &limit["schema"]["maximum"]),
            (&serde_json::json!(1), &serde_json::json!(1000))
        );
    }
}
