//! SDRS operations: protection groups and their actions, jobs, DR drills
//! (`/v1/{project_id}/...`). Every write answers `{"job_id"}` (HTTP 200); the
//! job is followed with [`CloudClient::sdrs_get_job`].

use serde::Deserialize;
use serde_json::{Value, json};

use super::error::CloudError;
use super::http::{CloudClient, Request, Service};
use super::resource::{Drill, Job, ProtectionGroup};
use crate::cloud::vocabulary::PriorityStation;

/// A protection-group action.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SdrsAction {
    /// `start-server-group`: enable, or re-enable after failover.
    Enable,
    /// `stop-server-group`.
    Disable,
    /// `reverse-server-group` with the side that becomes production.
    Switchover(PriorityStation),
    /// `failover-server-group`.
    Failover,
}

impl SdrsAction {
    /// The request body.
    pub fn body(self) -> Value {
        match self {
            SdrsAction::Enable => json!({ "start-server-group": {} }),
            SdrsAction::Disable => json!({ "stop-server-group": {} }),
            SdrsAction::Switchover(to) => {
                json!({ "reverse-server-group": { "priority_station": to.as_str() } })
            }
            SdrsAction::Failover => json!({ "failover-server-group": {} }),
        }
    }
}

#[derive(Deserialize)]
struct JobId {
    job_id: String,
}

impl CloudClient {
    /// Lists protection groups.
    pub async fn sdrs_list_groups(&self) -> Result<Vec<ProtectionGroup>, CloudError> {
        #[derive(Deserialize)]
        struct List {
            server_groups: Vec<ProtectionGroup>,
        }
        let answer = self
            .send(&Request::get(Service::Sdrs, "/server-groups"))
            .await?;
        Ok(answer.json::<List>("GET server-groups")?.server_groups)
    }

    /// Reads one protection group.
    pub async fn sdrs_get_group(&self, id: &str) -> Result<ProtectionGroup, CloudError> {
        #[derive(Deserialize)]
        struct One {
            server_group: ProtectionGroup,
        }
        let seg = super::id::in_path("GET server-group", id)?;
        let answer = self
            .send(&Request::get(
                Service::Sdrs,
                format!("/server-groups/{seg}"),
            ))
            .await?;
        Ok(answer
            .json::<One>(&format!("GET server-group {id}"))?
            .server_group)
    }

    /// Sends a protection-group action; returns the job id.
    pub async fn sdrs_action(&self, id: &str, action: SdrsAction) -> Result<String, CloudError> {
        Ok(self
            .send(&action_request(id, action)?)
            .await?
            .json::<JobId>("POST server-group action")?
            .job_id)
    }

    /// Reads a job.
    pub async fn sdrs_get_job(&self, job_id: &str) -> Result<Job, CloudError> {
        let seg = super::id::in_path("GET job", job_id)?;
        let answer = self
            .send(&Request::get(Service::Sdrs, format!("/jobs/{seg}")))
            .await?;
        answer.json(&format!("GET job {job_id}"))
    }

    /// Starts a DR drill of a group; returns the job id.
    pub async fn sdrs_create_drill(
        &self,
        group: &str,
        name: &str,
        drill_vpc_id: Option<&str>,
    ) -> Result<String, CloudError> {
        Ok(self
            .send(&create_drill_request(group, name, drill_vpc_id)?)
            .await?
            .json::<JobId>("POST disaster-recovery-drills")?
            .job_id)
    }

    /// Lists drills, optionally of one group and by name (SDRS matches names fuzzily).
    pub async fn sdrs_list_drills(
        &self,
        group: Option<&str>,
        name: Option<&str>,
    ) -> Result<Vec<Drill>, CloudError> {
        #[derive(Deserialize)]
        struct List {
            disaster_recovery_drills: Vec<Drill>,
        }
        let mut request = Request::get(Service::Sdrs, "/disaster-recovery-drills");
        if let Some(g) = group {
            request = request.query("server_group_id", g);
        }
        if let Some(n) = name {
            request = request.query("name", n);
        }
        let list = self
            .send(&request)
            .await?
            .json::<List>("GET disaster-recovery-drills")?;
        // The name filter is fuzzy: keep exact matches only.
        Ok(list
            .disaster_recovery_drills
            .into_iter()
            .filter(|d| name.is_none_or(|n| d.name.as_deref() == Some(n)))
            .collect())
    }

    /// Reads a drill.
    pub async fn sdrs_get_drill(&self, id: &str) -> Result<Drill, CloudError> {
        #[derive(Deserialize)]
        struct One {
            disaster_recovery_drill: Drill,
        }
        let seg = super::id::in_path("GET disaster-recovery-drill", id)?;
        let answer = self
            .send(&Request::get(
                Service::Sdrs,
                format!("/disaster-recovery-drills/{seg}"),
            ))
            .await?;
        Ok(answer
            .json::<One>(&format!("GET disaster-recovery-drill {id}"))?
            .disaster_recovery_drill)
    }

    /// Deletes a drill; returns the job id.
    pub async fn sdrs_delete_drill(&self, id: &str) -> Result<String, CloudError> {
        Ok(self
            .send(&delete_drill_request(id)?)
            .await?
            .json::<JobId>("DELETE disaster-recovery-drill")?
            .job_id)
    }
}

/// The request of a protection-group action (sent, or held back by a dry run).
pub fn action_request(id: &str, action: SdrsAction) -> Result<Request, CloudError> {
    let seg = super::id::in_path("POST server-group action", id)?;
    Ok(Request::post(
        Service::Sdrs,
        format!("/server-groups/{seg}/action"),
        action.body(),
    ))
}

/// The request that starts a drill of `group`.
pub fn create_drill_request(
    group: &str,
    name: &str,
    drill_vpc_id: Option<&str>,
) -> Result<Request, CloudError> {
    super::id::in_path("POST disaster-recovery-drills", group)?;
    let mut spec = json!({ "server_group_id": group, "name": name });
    if let Some(vpc) = drill_vpc_id.filter(|v| !v.is_empty()) {
        spec["drill_vpc_id"] = json!(vpc);
    }
    Ok(Request::post(
        Service::Sdrs,
        "/disaster-recovery-drills",
        json!({ "disaster_recovery_drill": spec }),
    ))
}

/// The request that deletes a drill.
pub fn delete_drill_request(id: &str) -> Result<Request, CloudError> {
    let seg = super::id::in_path("DELETE disaster-recovery-drill", id)?;
    Ok(Request::delete(
        Service::Sdrs,
        format!("/disaster-recovery-drills/{seg}"),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn action_bodies_match_the_reference() {
        assert_eq!(SdrsAction::Enable.body(), json!({"start-server-group": {}}));
        assert_eq!(SdrsAction::Disable.body(), json!({"stop-server-group": {}}));
        assert_eq!(
            SdrsAction::Failover.body(),
            json!({"failover-server-group": {}})
        );
        assert_eq!(
            SdrsAction::Switchover(PriorityStation::Target).body(),
            json!({"reverse-server-group": {"priority_station": "target"}})
        );
    }
}
