//! `/v1/runbooks`: the loaded runbooks with their parameters, schedules and
//! next fires, and the files that did not validate.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::AppState;
use super::auth::{Caller, Permission};
use super::error::{ApiError, ErrorBody};
use crate::daemon::Daemon;
use crate::runbook::{self};

/// A schedule with its next fire time.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct ScheduleView {
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
    pub name: String,
    pub description: Option<String>,
    pub kind: String,
    /// File.
    pub path: String,
    /// Version (sha256 of the file).
    pub digest: String,
    #[schema(value_type = Vec<Object>)]
    pub params: Vec<runbook::Param>,
    /// Steps: id and action, in order (finally steps last).
    pub steps: Vec<(String, String)>,
    pub schedules: Vec<ScheduleView>,
}

/// A runbook file that does not validate (its previous version may still be loaded).
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct InvalidRunbook {
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

pub(super) fn runbook_view(r: &runbook::Runbook) -> RunbookView {
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
pub(super) async fn list_runbooks(
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
pub(super) async fn get_runbook(
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
