//! `evs.list_groups` and `sdrs.list_groups`: which groups a plan acts on,
//! read under the step's retry policy, every page of them. The output names
//! each group with its status and the AZ its production runs in:
//! `{"count": n, "ids": [...], "groups": [{"id", "name", "status", "production_az"}]}`.

use serde_json::{Value, json};

use crate::cloud::resource::{EvsGroup, GroupFilter, ProtectionGroup};
use crate::engine::Cloud;
use crate::engine::context::{StepError, StepRun};
use crate::runbook::model::ListGroupsInput;
use crate::yaml::Located;

/// The filter, rendered.
fn filter<C: Cloud>(s: &StepRun<'_, C>, input: &ListGroupsInput) -> Result<GroupFilter, StepError> {
    let render = |field: &Option<Located<String>>| -> Result<Option<String>, StepError> {
        field
            .as_ref()
            .map(|f| s.render(&f.value).map(|v| v.trim().to_string()))
            .transpose()
    };
    Ok(GroupFilter {
        status: render(&input.status)?,
        production_az: render(&input.production_az)?,
        name: render(&input.name)?,
    })
}

fn output(groups: Vec<Value>) -> Value {
    let ids: Vec<Value> = groups.iter().map(|g| g["id"].clone()).collect();
    json!({ "count": groups.len(), "ids": ids, "groups": groups })
}

pub(crate) async fn evs_groups<C: Cloud>(
    s: &StepRun<'_, C>,
    input: &ListGroupsInput,
) -> Result<Value, StepError> {
    let filter = filter(s, input)?;
    let groups: Vec<EvsGroup> = s
        .read("GET consistency groups", || {
            s.cloud().evs_list_groups(&filter)
        })
        .await?;
    Ok(output(
        groups
            .into_iter()
            .map(|g| json!({ "id": g.id, "name": g.name, "status": g.status, "production_az": g.priority_station }))
            .collect(),
    ))
}

pub(crate) async fn sdrs_groups<C: Cloud>(
    s: &StepRun<'_, C>,
    input: &ListGroupsInput,
) -> Result<Value, StepError> {
    let filter = filter(s, input)?;
    let groups: Vec<ProtectionGroup> = s
        .read("GET server-groups", || s.cloud().sdrs_list_groups(&filter))
        .await?;
    Ok(output(
        groups
            .into_iter()
            .map(|g| {
                let production = match g.priority_station.as_deref() {
                    Some("target") => g.target_availability_zone,
                    _ => g.source_availability_zone,
                };
                json!({ "id": g.id, "name": g.name, "status": g.status, "production_az": production })
            })
            .collect(),
    ))
}
