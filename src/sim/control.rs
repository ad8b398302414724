//! The `/_sim/` control API: the journal, faults, groups, states, the clock
//! and reset. Tests and users rehearsing a runbook drive the simulator here.

use std::time::Duration;

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::json;

use super::faults::{Faults, Forced};
use super::sdrs::Sdrs;
use super::{JournalEntry, Simulator};
use crate::cloud::vocabulary::{
    EvsStatus, FaultLevel, PriorityStation, ReplicationStatus, SdrsStatus,
};

pub(super) async fn control_journal(State(sim): State<Simulator>) -> axum::Json<Vec<JournalEntry>> {
    axum::Json(sim.journal())
}

pub(super) async fn control_clear_journal(State(sim): State<Simulator>) -> StatusCode {
    sim.lock().journal.clear();
    StatusCode::NO_CONTENT
}

pub(super) async fn control_get_faults(State(sim): State<Simulator>) -> axum::Json<Faults> {
    axum::Json(sim.lock().faults.clone())
}

pub(super) fn control_error(message: String) -> Response {
    (
        StatusCode::BAD_REQUEST,
        axum::Json(json!({ "error": message })),
    )
        .into_response()
}

pub(super) fn parse_json<T: for<'de> Deserialize<'de>>(body: &[u8]) -> Result<T, String> {
    serde_json::from_slice(body).map_err(|e| format!("invalid body: {e}"))
}

pub(super) async fn control_put_faults(State(sim): State<Simulator>, body: Bytes) -> Response {
    let faults: Faults = match parse_json(&body) {
        Ok(f) => f,
        Err(e) => return control_error(e),
    };
    match sim.set_faults(faults) {
        Ok(()) => StatusCode::NO_CONTENT.into_response(),
        Err(e) => control_error(e),
    }
}

pub(super) async fn control_force(State(sim): State<Simulator>, body: Bytes) -> Response {
    let forced: Forced = match parse_json(&body) {
        Ok(f) => f,
        Err(e) => return control_error(e),
    };
    let check = Faults {
        forced: vec![forced.clone()],
        ..Faults::default()
    };
    if let Err(e) = check.validate() {
        return control_error(e);
    }
    sim.force(forced);
    StatusCode::NO_CONTENT.into_response()
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct NewEvsGroup {
    id: String,
    #[serde(default = "az1")]
    primary: String,
    #[serde(default = "az2")]
    secondary: String,
}

pub(super) fn az1() -> String {
    "eu-de-01".into()
}
pub(super) fn az2() -> String {
    "eu-de-02".into()
}

pub(super) async fn control_add_evs(State(sim): State<Simulator>, body: Bytes) -> Response {
    match parse_json::<NewEvsGroup>(&body) {
        Ok(g) => {
            sim.add_evs_group(&g.id, &g.primary, &g.secondary);
            let json = sim.with_evs_group(&g.id, |g| g.to_json());
            (StatusCode::CREATED, axum::Json(json)).into_response()
        }
        Err(e) => control_error(e),
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct EvsPatch {
    status: Option<EvsStatus>,
    replication_status: Option<ReplicationStatus>,
    fault_level: Option<FaultLevel>,
    fail_next: Option<bool>,
}

pub(super) async fn control_patch_evs(
    State(sim): State<Simulator>,
    Path(id): Path<String>,
    body: Bytes,
) -> Response {
    let p: EvsPatch = match parse_json(&body) {
        Ok(p) => p,
        Err(e) => return control_error(e),
    };
    let json = sim.with_evs_group(&id, |g| {
        if let Some(v) = p.status {
            g.status = v;
        }
        if let Some(v) = p.replication_status {
            g.replication_status = v;
        }
        if let Some(v) = p.fault_level {
            g.fault_level = v;
        }
        if let Some(v) = p.fail_next {
            g.fail_next = v;
        }
        g.to_json()
    });
    match json {
        Some(j) => axum::Json(j).into_response(),
        None => (
            StatusCode::NOT_FOUND,
            axum::Json(json!({ "error": format!("no EVS group {id}") })),
        )
            .into_response(),
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct NewSdrsGroup {
    id: String,
}

pub(super) async fn control_add_sdrs(State(sim): State<Simulator>, body: Bytes) -> Response {
    match parse_json::<NewSdrsGroup>(&body) {
        Ok(g) => {
            sim.add_sdrs_group(&g.id);
            let json = sim.with_sdrs(|s| s.groups.get(&g.id).map(|pg| s.group_json(pg)));
            (StatusCode::CREATED, axum::Json(json)).into_response()
        }
        Err(e) => control_error(e),
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct SdrsPatch {
    status: Option<SdrsStatus>,
    priority_station: Option<PriorityStation>,
    fail_next: Option<bool>,
    null_status_fields: Option<bool>,
    replication_num: Option<u32>,
}

pub(super) async fn control_patch_sdrs(
    State(sim): State<Simulator>,
    Path(id): Path<String>,
    body: Bytes,
) -> Response {
    let p: SdrsPatch = match parse_json(&body) {
        Ok(p) => p,
        Err(e) => return control_error(e),
    };
    let json = sim.with_sdrs(|s| {
        let g = s.groups.get_mut(&id)?;
        if let Some(v) = p.status {
            g.status = v;
        }
        if let Some(v) = p.priority_station {
            g.priority_station = v;
        }
        if let Some(v) = p.fail_next {
            g.fail_next = v;
        }
        if let Some(v) = p.null_status_fields {
            g.null_status_fields = v;
        }
        if let Some(v) = p.replication_num {
            g.replication_num = v;
        }
        let g = s.groups.get(&id)?;
        Some(s.group_json(g))
    });
    match json {
        Some(j) => axum::Json(j).into_response(),
        None => (
            StatusCode::NOT_FOUND,
            axum::Json(json!({ "error": format!("no protection group {id}") })),
        )
            .into_response(),
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct ClockAdvance {
    advance_ms: u64,
}

pub(super) async fn control_clock(State(sim): State<Simulator>, body: Bytes) -> Response {
    match parse_json::<ClockAdvance>(&body) {
        Ok(c) => {
            sim.advance_clock(Duration::from_millis(c.advance_ms));
            let now = sim.lock().now();
            axum::Json(json!({ "now_ms": now.as_millis() as u64 })).into_response()
        }
        Err(e) => control_error(e),
    }
}

pub(super) async fn control_reset(State(sim): State<Simulator>) -> StatusCode {
    let mut s = sim.lock();
    s.evs.clear();
    let epoch = s.epoch;
    let transition = s.transition;
    s.sdrs = Sdrs::new(epoch, transition);
    s.tokens.clear();
    s.journal.clear();
    s.faults = Faults::default();
    StatusCode::NO_CONTENT
}
