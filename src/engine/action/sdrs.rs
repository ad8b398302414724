//! SDRS protection groups and DR drills: check, wait, the group actions and
//! the drill lifecycle, each action followed through its job.

use std::time::Duration;

use serde_json::{Value, json};

use super::{Seen, Watch, Watched, field, poll};
use crate::cloud::resource::{Job, JobStatus, ProtectionGroup};
use crate::cloud::sdrs::SdrsAction;
use crate::engine::Cloud;
use crate::engine::context::{StepError, StepRun, read_sdrs, sdrs_summary, to_json};
use crate::engine::reconcile::{self, Mutation, Sent, is_drill_not_found};
use crate::runbook::model::{
    IdField, SdrsCreateDrillInput, SdrsDeleteDrillInput, SdrsExpect, SdrsSwitchoverInput,
};
use crate::runbook::value::FieldCheck;
use crate::runbook::{DEFAULT_JOB_INTERVAL, DurationSpec};
use crate::yaml::Located;

impl Watched for ProtectionGroup {
    type Expect = SdrsExpect;
    const ID: IdField = IdField::SdrsGroup;

    fn named(id: &str) -> String {
        format!("protection group {id}")
    }

    fn request(id: &str) -> String {
        format!("GET server-group {id}")
    }

    async fn read<C: Cloud>(s: &StepRun<'_, C>, id: &str) -> Result<Self, StepError> {
        read_sdrs(s, id).await
    }

    fn summary(&self) -> String {
        sdrs_summary(self)
    }

    fn expected(e: &SdrsExpect) -> Vec<(&'static str, Option<&dyn FieldCheck>)> {
        vec![
            ("status", field(&e.status)),
            ("priority_station", field(&e.priority_station)),
            ("replication_status", field(&e.replication_status)),
        ]
    }

    fn value(&self, field: &str) -> Option<&str> {
        match field {
            "status" => Some(&self.status),
            "priority_station" => self.priority_station.as_deref(),
            // Newer groups answer null here: a null never matches (the docs advise against relying on it).
            "replication_status" => self.replication_status.as_deref(),
            _ => None,
        }
    }
}

/// `sdrs.switchover`: `reverse-server-group` towards `priority_station`.
pub(crate) async fn switchover<C: Cloud>(
    s: &StepRun<'_, C>,
    i: &SdrsSwitchoverInput,
) -> Result<Value, StepError> {
    let to = i
        .priority_station
        .resolve(|t| s.render(t).map_err(|e| e.to_string()))
        .map_err(|e| StepError::Failed(format!("`priority_station`: {e}")))?;
    mutation(s, &i.group.value, SdrsAction::Switchover(to), &i.interval).await
}

/// `sdrs.create_drill`: exactly once, then until the drill is available.
pub(crate) async fn create_drill<C: Cloud>(
    s: &StepRun<'_, C>,
    i: &SdrsCreateDrillInput,
) -> Result<Value, StepError> {
    let group = s.render_id(IdField::SdrsGroup, "group", &i.group.value)?;
    let name = s.render_id(IdField::DrillName, "name", &i.name.value)?;
    let vpc = match &i.drill_vpc_id {
        Some(v) => Some(s.render(&v.value)?)
            .filter(|v| !v.trim().is_empty())
            .map(|_| s.render_id(IdField::Vpc, "drill_vpc_id", &v.value))
            .transpose()?,
        None => None,
    };
    let interval = s.interval(&i.interval, DEFAULT_JOB_INTERVAL)?;
    let m = Mutation::CreateDrill {
        group: group.clone(),
        name: name.clone(),
        vpc,
    };
    let sent = reconcile::mutate(s, &m).await?;
    let job = match &sent {
        Sent::HeldBack => return Ok(json!({ "dry_run": true, "held_back": true, "name": name })),
        Sent::Answered { job_id: Some(j) } => Some(wait_job(s, j, interval).await?),
        Sent::Answered { job_id: None } | Sent::Applied { .. } => None,
    };
    let drill = wait_drill_created(s, &group, &name, interval).await?;
    let mut out = to_json(&drill);
    out["job_id"] = json!(job.map(|j| j.job_id));
    Ok(out)
}

/// `sdrs.delete_drill`: exactly once, then until the drill is gone.
pub(crate) async fn delete_drill<C: Cloud>(
    s: &StepRun<'_, C>,
    i: &SdrsDeleteDrillInput,
) -> Result<Value, StepError> {
    let drill = s.render_id(IdField::Drill, "drill", &i.drill.value)?;
    let interval = s.interval(&i.interval, DEFAULT_JOB_INTERVAL)?;
    let sent = reconcile::mutate(
        s,
        &Mutation::DeleteDrill {
            drill: drill.clone(),
        },
    )
    .await?;
    match &sent {
        Sent::Answered { job_id: Some(j) } => {
            let job = wait_job(s, j, interval).await?;
            Ok(json!({ "drill": drill, "job_id": job.job_id }))
        }
        Sent::Answered { job_id: None } | Sent::Applied { .. } => {
            wait_drill_gone(s, &drill, interval).await?;
            Ok(json!({ "drill": drill }))
        }
        Sent::HeldBack => Ok(json!({ "drill": drill, "dry_run": true, "held_back": true })),
    }
}

/// A protection-group action, exactly once, followed through its job.
pub(crate) async fn mutation<C: Cloud>(
    s: &StepRun<'_, C>,
    group: &str,
    action: SdrsAction,
    interval: &Option<Located<DurationSpec>>,
) -> Result<Value, StepError> {
    let group = s.render_id(IdField::SdrsGroup, "group", group)?;
    let interval = s.interval(interval, DEFAULT_JOB_INTERVAL)?;
    let sent = reconcile::mutate(
        s,
        &Mutation::Sdrs {
            group: group.clone(),
            action,
        },
    )
    .await?;
    match sent {
        Sent::HeldBack => {
            s.note("dry run: not waiting for the job");
            Ok(json!({ "group": group, "dry_run": true, "held_back": true }))
        }
        Sent::Answered { job_id: Some(j) } => {
            let job = wait_job(s, &j, interval).await?;
            let g = read_sdrs(s, &group).await?;
            Ok(json!({ "job_id": job.job_id, "group": to_json(&g) }))
        }
        Sent::Answered { job_id: None } | Sent::Applied { .. } => {
            // No job id (the answer was lost): follow the group instead.
            let g = wait_group_settled(s, &group, action, interval).await?;
            Ok(json!({ "job_id": null, "group": to_json(&g) }))
        }
    }
}

/// Polls a job until SUCCESS (its result) or FAIL (the step fails with the job's code and reason).
async fn wait_job<C: Cloud>(
    s: &StepRun<'_, C>,
    job_id: &str,
    interval: Duration,
) -> Result<Job, StepError> {
    let request = format!("GET job {job_id}");
    let watch = Watch {
        what: format!("job {job_id}"),
        request: request.clone(),
        interval,
        crash_point: "job.after_poll",
    };
    poll(s, &watch, || async {
        let job = s.read(&request, || s.cloud().sdrs_get_job(job_id)).await?;
        match job.status {
            JobStatus::Success => Ok(Seen::Done(job)),
            JobStatus::Fail => Err(StepError::Failed(format!(
                "job {job_id} ({}) failed: {}: {}",
                job.job_type.as_deref().unwrap_or("unknown type"),
                job.error_code.as_deref().unwrap_or("no error code"),
                job.fail_reason.as_deref().unwrap_or("no reason given")
            ))),
            other => Ok(Seen::Pending(format!("{other:?}").to_uppercase())),
        }
    })
    .await
}

/// After the create job: until the drill is available.
async fn wait_drill_created<C: Cloud>(
    s: &StepRun<'_, C>,
    group: &str,
    name: &str,
    interval: Duration,
) -> Result<crate::cloud::resource::Drill, StepError> {
    let request = format!("GET disaster-recovery-drills {name}");
    let watch = Watch {
        what: format!("drill {name}"),
        request: request.clone(),
        interval,
        crash_point: "job.after_poll",
    };
    poll(s, &watch, || async {
        let drills = s
            .read(&request, || {
                s.cloud().sdrs_list_drills(Some(group), Some(name))
            })
            .await?;
        match drills.into_iter().next() {
            Some(d) if d.status == "available" => Ok(Seen::Done(d)),
            Some(d) if d.status == "error" => Err(StepError::Failed(format!(
                "drill {} ({name}) ended in status error",
                d.id
            ))),
            Some(d) => Ok(Seen::Pending(format!("{} ({})", d.status, d.id))),
            None => Err(StepError::Failed(format!(
                "no drill named {name} in protection group {group} after its job succeeded"
            ))),
        }
    })
    .await
}

/// After an SDRS action whose job id is unknown (its answer was lost): follows
/// the group until it leaves the transient state; fails in an error state.
async fn wait_group_settled<C: Cloud>(
    s: &StepRun<'_, C>,
    group: &str,
    action: SdrsAction,
    interval: Duration,
) -> Result<ProtectionGroup, StepError> {
    let ok = match action {
        SdrsAction::Switchover(_) | SdrsAction::Enable => "protected",
        SdrsAction::Failover => "failed-over",
        SdrsAction::Disable => "available",
    };
    let watch = Watch {
        what: format!("protection group {group}"),
        request: format!("GET server-group {group}"),
        interval,
        crash_point: "job.after_poll",
    };
    poll(s, &watch, || async {
        let g = read_sdrs(s, group).await?;
        let seen = sdrs_summary(&g);
        if g.status == ok {
            if let SdrsAction::Switchover(to) = action
                && g.priority_station.as_deref() != Some(to.as_str())
            {
                return Err(StepError::Failed(format!(
                    "protection group {group} is protected but production is not on the {to} side ({seen})"
                )));
            }
            return Ok(Seen::Done(g));
        }
        if g.status.starts_with("error") {
            return Err(StepError::Failed(format!(
                "protection group {group} ended in {seen}"
            )));
        }
        Ok(Seen::Pending(seen))
    })
    .await
}

/// After a drill deletion whose job id is unknown: until the drill is gone.
async fn wait_drill_gone<C: Cloud>(
    s: &StepRun<'_, C>,
    drill: &str,
    interval: Duration,
) -> Result<(), StepError> {
    let request = format!("GET disaster-recovery-drill {drill}");
    let watch = Watch {
        what: format!("drill {drill}"),
        request: request.clone(),
        interval,
        crash_point: "job.after_poll",
    };
    poll(s, &watch, || async {
        match s.read(&request, || s.cloud().sdrs_get_drill(drill)).await {
            Err(StepError::Cloud(e)) if is_drill_not_found(&e) => Ok(Seen::Done(())),
            Err(e) => Err(e),
            Ok(d) if d.status == "error-deleting" => Err(StepError::Failed(format!(
                "drill {drill} ended in error-deleting"
            ))),
            Ok(d) => Ok(Seen::Pending(d.status)),
        }
    })
    .await
}
