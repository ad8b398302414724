//! `/v1/audit`: the hash-chained event log and its verification.

use axum::Json;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::AppState;
use super::auth::{Caller, Permission};
use super::error::{ApiError, ErrorBody};
use crate::store::Event;

#[derive(Debug, Deserialize, utoipa::IntoParams)]
pub(super) struct EventsQuery {
    /// Only events at or after this time (RFC 3339, e.g.
    /// `2026-12-01T00:00:00Z`).
    #[param(format = DateTime)]
    since: Option<String>,
}

#[utoipa::path(get, path = "/audit/events", tag = "audit", params(EventsQuery), security(("bearer" = [])),
    responses((status = 200, body = Vec<Event>), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)))]
pub(super) async fn audit_events(
    State(d): State<AppState>,
    caller: Caller,
    Query(q): Query<EventsQuery>,
) -> Result<Json<Vec<Event>>, ApiError> {
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
    Ok(Json(events))
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
pub(super) async fn audit_verify(
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
