//! `/v1/runs/{id}/report`: a run's evidence report (the HTML of `drover
//! report RUN`), and `/v1/whoami`: the caller's name, role and what it may do.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::AppState;
use super::auth::{Caller, Permission, allows};
use super::error::{ApiError, ErrorBody};
use super::runs::checked_run_id;
use crate::report::{ReportError, RunReport};

#[utoipa::path(get, path = "/runs/{id}/report", tag = "runs", params(("id" = String, Path, description = "Run id")), security(("bearer" = [])),
    responses((status = 200, description = "The self-contained HTML evidence report", content_type = "text/html", body = String),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub(super) async fn run_report(
    State(d): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    caller.require(Permission::Read)?;
    checked_run_id(&id)?;
    let config = d.config();
    let report = RunReport::gather(d.store(), &id, config.audit.public_key.as_ref())
        .await
        .map_err(report_error)?;
    let html = report.to_html().map_err(report_error)?;
    let disposition = format!("attachment; filename=\"drover-report-{id}.html\"");
    Ok((
        [
            (header::CONTENT_TYPE, "text/html; charset=utf-8".to_string()),
            (header::CONTENT_DISPOSITION, disposition),
        ],
        html,
    )
        .into_response())
}

/// The caller as the daemon sees it.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct WhoAmI {
    /// The token's name (the actor in the audit trail).
    pub name: String,
    pub role: String,
    /// Start runbooks of any kind.
    pub trigger_any: bool,
    /// Start runbooks of kind `drill`.
    pub trigger_drill: bool,
    /// Approve, reject and cancel.
    pub operate: bool,
    /// Read and verify the audit trail.
    pub audit: bool,
}

#[utoipa::path(get, path = "/whoami", tag = "runs", security(("bearer" = [])),
    responses((status = 200, body = WhoAmI), (status = 401, body = ErrorBody)))]
pub(super) async fn whoami(caller: Caller) -> Json<WhoAmI> {
    Json(WhoAmI::of(&caller))
}

impl WhoAmI {
    /// What `caller` may do, from the role table.
    pub(super) fn of(caller: &Caller) -> WhoAmI {
        WhoAmI {
            name: caller.name.clone(),
            role: caller.role.to_string(),
            trigger_any: allows(caller.role, Permission::TriggerAny),
            trigger_drill: allows(caller.role, Permission::TriggerDrill),
            operate: allows(caller.role, Permission::Operate),
            audit: allows(caller.role, Permission::Audit),
        }
    }
}

/// A report's failure as the API answers it.
pub(super) fn report_error(e: ReportError) -> ApiError {
    match e {
        ReportError::NotFound(_) => ApiError::not_found("no run with that id"),
        ReportError::Store(e) => e.into(),
        ReportError::Render(e) => {
            tracing::error!(error = %e, "Cannot render a page.");
            ApiError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "internal",
                "the page could not be rendered; see the daemon log",
            )
        }
    }
}
