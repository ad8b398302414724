//! EVS replication consistency groups: check, wait, and the five group
//! actions (through the exactly-once path).

use serde_json::{Value, json};

use super::{Watched, field};
use crate::cloud::evs::EvsAction;
use crate::cloud::resource::EvsGroup;
use crate::engine::Cloud;
use crate::engine::context::{StepError, StepRun, evs_summary, read_evs};
use crate::engine::reconcile::{self, Mutation, Sent};
use crate::runbook::model::{EvsExpect, IdField};
use crate::runbook::value::FieldCheck;

impl Watched for EvsGroup {
    type Expect = EvsExpect;
    const ID: IdField = IdField::EvsGroup;

    fn named(id: &str) -> String {
        format!("group {id}")
    }

    fn request(id: &str) -> String {
        format!("GET consistency group {id}")
    }

    async fn read<C: Cloud>(s: &StepRun<'_, C>, id: &str) -> Result<Self, StepError> {
        read_evs(s, id).await
    }

    fn summary(&self) -> String {
        evs_summary(self)
    }

    fn expected(e: &EvsExpect) -> Vec<(&'static str, Option<&dyn FieldCheck>)> {
        vec![
            ("status", field(&e.status)),
            ("replication_status", field(&e.replication_status)),
            ("fault_level", field(&e.fault_level)),
            ("priority_station", field(&e.priority_station)),
        ]
    }

    fn value(&self, field: &str) -> Option<&str> {
        match field {
            "status" => Some(&self.status),
            "replication_status" => self.replication_status.as_deref(),
            "fault_level" => self.fault_level.as_deref(),
            "priority_station" => self.priority_station.as_deref(),
            _ => None,
        }
    }
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
        Sent::HeldBack => {
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
