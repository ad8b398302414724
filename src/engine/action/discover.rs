//! `evs.list_groups` and `sdrs.list_groups`: which groups a plan acts on,
//! read under the step's retry policy, every page of them. The output names
//! each group with its status and the AZ its production runs in:
//! `{"count": n, "ids": [...], "groups": [{"id", "name", "status", "production_az"}]}`.

use serde_json::{Value, json};

use crate::cloud::id::check_word;
use crate::cloud::resource::{EvsGroup, GroupFilter, ProtectionGroup};
use crate::cloud::vocabulary::{EvsStatus, SdrsStatus};
use crate::engine::Cloud;
use crate::engine::context::{StepError, StepRun};
use crate::runbook::model::ListGroupsInput;
use crate::yaml::Located;

/// The filter, rendered and checked before it reaches a URL: a status of
/// these groups (`statuses`), an AZ and a name of the cloud's plain form.
fn filter<C: Cloud>(
    s: &StepRun<'_, C>,
    input: &ListGroupsInput,
    statuses: &[&str],
) -> Result<GroupFilter, StepError> {
    let render = |field: &Option<Located<String>>,
                  key: &str,
                  check: &dyn Fn(&str) -> Result<(), String>|
     -> Result<Option<String>, StepError> {
        let Some(field) = field else {
            return Ok(None);
        };
        let value = s.render(&field.value)?.trim().to_string();
        check(&value).map_err(|why| {
            StepError::Failed(format!("`{key}` rendered from `{}`: {why}", field.value))
        })?;
        Ok(Some(value))
    };
    let status = |v: &str| {
        if statuses.contains(&v) {
            Ok(())
        } else {
            Err(format!(
                "`{v}` is not a status of these groups; one of: {}",
                statuses.join(", ")
            ))
        }
    };
    Ok(GroupFilter {
        status: render(&input.status, "status", &status)?,
        production_az: render(&input.production_az, "production_az", &|v| {
            check_word("zone name", v)
        })?,
        name: render(&input.name, "name", &|v| check_word("group name", v))?,
    })
}

/// The groups that match `filter`, whatever the cloud filtered: a plan acts
/// on what it lists, so a filter the service ignored must not widen it.
/// `name_part`: the name filter matches a part of the name (SDRS).
fn output(mut groups: Vec<Value>, filter: &GroupFilter, name_part: bool) -> Value {
    groups.retain(|g| {
        let is = |key: &str, want: &Option<String>| {
            want.as_ref()
                .is_none_or(|w| g[key].as_str() == Some(w.as_str()))
        };
        let name = filter.name.as_ref().is_none_or(|w| {
            let have = g["name"].as_str().unwrap_or("");
            if name_part {
                have.contains(w.as_str())
            } else {
                have == w
            }
        });
        is("status", &filter.status) && is("production_az", &filter.production_az) && name
    });
    let ids: Vec<Value> = groups.iter().map(|g| g["id"].clone()).collect();
    json!({ "count": groups.len(), "ids": ids, "groups": groups })
}

pub(crate) async fn evs_groups<C: Cloud>(
    s: &StepRun<'_, C>,
    input: &ListGroupsInput,
) -> Result<Value, StepError> {
    let statuses: Vec<&str> = EvsStatus::ALL.iter().map(|s| s.as_str()).collect();
    let filter = filter(s, input, &statuses)?;
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
        &filter,
        false,
    ))
}

pub(crate) async fn sdrs_groups<C: Cloud>(
    s: &StepRun<'_, C>,
    input: &ListGroupsInput,
) -> Result<Value, StepError> {
    let statuses: Vec<&str> = SdrsStatus::ALL.iter().map(|s| s.as_str()).collect();
    let filter = filter(s, input, &statuses)?;
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
        &filter,
        true,
    ))
}
