//! EVS replication consistency groups: check, wait, and the five group
//! actions (through the exactly-once path).

use serde_json::{Value, json};

use super::{Watch, mismatch, poll_until};
use crate::cloud::evs::EvsAction;
use crate::cloud::resource::EvsGroup;
use crate::engine::Cloud;
use crate::engine::context::{StepError, StepRun, evs_summary, read_evs, to_json};
use crate::engine::reconcile::{self, Mutation, Sent};
use crate::runbook::DEFAULT_POLL_INTERVAL;
use crate::runbook::model::{EvsCheckInput, EvsExpect, EvsWaitInput, IdField};

/// `evs.check_group`: the group, or every field that does not match.
pub(crate) async fn check<C: Cloud>(
    s: &StepRun<'_, C>,
    i: &EvsCheckInput,
) -> Result<Value, StepError> {
    let id = s.render_id(IdField::EvsGroup, "group", &i.group.value)?;
    let g = read_evs(s, &id).await?;
    let mismatches = evs_mismatches(s, &i.expect, &g)?;
    if mismatches.is_empty() || s.unverifiable(&mismatches) {
        Ok(to_json(&g))
    } else {
        Err(StepError::Failed(format!(
            "group {id}: {}",
            mismatches.join("; ")
        )))
    }
}

/// `evs.wait_group`: polls until `until` holds, failing at once on `fail_if`.
pub(crate) async fn wait<C: Cloud>(
    s: &StepRun<'_, C>,
    i: &EvsWaitInput,
) -> Result<Value, StepError> {
    let id = s.render_id(IdField::EvsGroup, "group", &i.group.value)?;
    let interval = s.interval(&i.interval, DEFAULT_POLL_INTERVAL)?;
    let watch = Watch {
        what: format!("group {id}"),
        request: format!("GET consistency group {id}"),
        interval,
    };
    poll_until(
        s,
        &watch,
        || read_evs(s, &id),
        evs_summary,
        |g| {
            Ok(i.fail_if
                .as_ref()
                .filter(|f| !f.is_empty_expect())
                .map(|f| evs_mismatches(s, f, g))
                .transpose()?
                .is_some_and(|m| m.is_empty()))
        },
        |g| Ok(evs_mismatches(s, &i.until, g)?.is_empty()),
    )
    .await
}

trait EmptyExpect {
    fn is_empty_expect(&self) -> bool;
}

impl EmptyExpect for EvsExpect {
    fn is_empty_expect(&self) -> bool {
        self.status.is_none()
            && self.replication_status.is_none()
            && self.fault_level.is_none()
            && self.priority_station.is_none()
    }
}

/// Every field of `expect` that `g` does not match, as readable text.
fn evs_mismatches<C: Cloud>(
    s: &StepRun<'_, C>,
    expect: &EvsExpect,
    g: &EvsGroup,
) -> Result<Vec<String>, StepError> {
    let mut out = Vec::new();
    mismatch(s, "status", &expect.status, Some(&g.status), &mut out)?;
    mismatch(
        s,
        "replication_status",
        &expect.replication_status,
        g.replication_status.as_deref(),
        &mut out,
    )?;
    mismatch(
        s,
        "fault_level",
        &expect.fault_level,
        g.fault_level.as_deref(),
        &mut out,
    )?;
    mismatch(
        s,
        "priority_station",
        &expect.priority_station,
        g.priority_station.as_deref(),
        &mut out,
    )?;
    Ok(out)
}

/// A group action, exactly once.
pub(crate) async fn mutation<C: Cloud>(
    s: &StepRun<'_, C>,
    group: &str,
    action: EvsAction,
) -> Result<Value, StepError> {
    let group = s.render_id(IdField::EvsGroup, "group", group)?;
    let sent = reconcile::mutate(
        s,
        &Mutation::Evs {
            group: group.clone(),
            action,
        },
    )
    .await?;
    Ok(match sent {
        Sent::Answered { .. } if s.dry_run() => {
            json!({ "group": group, "action": action.body_key(), "result": "dry run", "held_back": true })
        }
        Sent::Answered { .. } => {
            json!({ "group": group, "action": action.body_key(), "result": "accepted" })
        }
        Sent::Applied { evidence } => {
            json!({ "group": group, "action": action.body_key(), "result": "applied", "evidence": evidence })
        }
    })
}
