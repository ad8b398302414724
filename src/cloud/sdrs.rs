//! SDRS operations: protection groups and their actions, jobs, DR drills
//! (`/v1/{project_id}/...`). Every write answers `{"job_id"}` (HTTP 200); the
//! job is followed with [`CloudClient::sdrs_get_job`].

use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};

use super::error::CloudError;
use super::http::{CloudClient, Request, Service};
use super::resource::{Drill, GroupFilter, Job, LIST_PAGE, ProtectionGroup, changed, entered};
use super::vocabulary::{PriorityStation, SdrsStatus};

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

impl SdrsAction {
    /// The protection-group states the action may be sent in.
    fn allowed(self) -> &'static [SdrsStatus] {
        use SdrsStatus as S;
        match self {
            SdrsAction::Switchover(_) => &[S::Protected, S::ErrorReversing],
            SdrsAction::Failover => &[S::Protected, S::ErrorFailingOver, S::ErrorReversing],
            SdrsAction::Enable => &[
                S::Available,
                S::ErrorStarting,
                S::FailedOver,
                S::ErrorReprotecting,
            ],
            SdrsAction::Disable => &[S::Protected, S::ErrorStopping],
        }
    }

    /// Whether the protection group, freshly read, allows the action; why not otherwise.
    pub fn precondition(self, pg: &ProtectionGroup) -> Result<(), String> {
        let (group, status) = (&pg.id, &pg.status);
        let allowed = self.allowed();
        if !SdrsStatus::parse(status).is_some_and(|st| allowed.contains(&st)) {
            let names: Vec<&str> = allowed.iter().map(|s| s.as_str()).collect();
            return Err(format!(
                "protection group {group} is {status}; this action needs {}",
                names.join(" or ")
            ));
        }
        if let SdrsAction::Switchover(to) = self
            && pg.station() == Some(to)
            && SdrsStatus::parse(status) == Some(SdrsStatus::Protected)
        {
            return Err(format!(
                "production of protection group {group} is already on the {to} side"
            ));
        }
        Ok(())
    }

    /// Whether the action visibly acted on the group between `pre` and `now`
    /// (in flight, done or failed); the evidence if so.
    pub fn took_effect(self, pre: &ProtectionGroup, now: &ProtectionGroup) -> Option<String> {
        use SdrsStatus as S;
        let status = |set: &[S]| entered(&pre.status, &now.status, set, SdrsStatus::parse);
        let (a, b) = (&pre.priority_station, &now.priority_station);
        let station = || changed("priority_station", a.as_deref(), b.as_deref());
        match self {
            SdrsAction::Switchover(to) => status(&[S::Reversing, S::ErrorReversing])
                .or_else(|| (now.station() == Some(to)).then(station).flatten()),
            SdrsAction::Failover => {
                status(&[S::FailingOver, S::FailedOver, S::ErrorFailingOver]).or_else(station)
            }
            SdrsAction::Enable => status(&[
                S::Starting,
                S::Reprotecting,
                S::Protected,
                S::ErrorStarting,
                S::ErrorReprotecting,
            ]),
            SdrsAction::Disable => status(&[S::Stopping, S::Available, S::ErrorStopping]),
        }
    }
}

/// Whether a drill named `name` may be created in `pg` now, given the drills
/// of that name it already has.
pub fn create_drill_precondition(
    pg: &ProtectionGroup,
    name: &str,
    existing: &[Drill],
) -> Result<(), String> {
    use SdrsStatus as S;
    let allowed = [
        S::Available,
        S::Protected,
        S::FailedOver,
        S::ErrorStarting,
        S::ErrorStopping,
        S::ErrorReversing,
        S::ErrorReprotecting,
        S::ErrorFailingOver,
    ];
    let group = &pg.id;
    if !SdrsStatus::parse(&pg.status).is_some_and(|st| allowed.contains(&st)) {
        return Err(format!(
            "protection group {group} is {}; a drill cannot be created now",
            pg.status
        ));
    }
    if !existing.is_empty() {
        return Err(format!(
            "a drill named {name} already exists in protection group {group}"
        ));
    }
    Ok(())
}

/// Whether a drill `id` in status `status` (`None`: it does not exist) may be deleted.
pub fn delete_drill_precondition(id: &str, status: Option<&str>) -> Result<(), String> {
    match status {
        None => Err(format!("drill {id} does not exist")),
        Some("available" | "error" | "error-deleting") => Ok(()),
        Some(other) => Err(format!(
            "drill {id} is {other}; it can be deleted when available, error or error-deleting"
        )),
    }
}

/// Whether a deletion visibly acted on the drill (`None`: it is gone).
pub fn delete_drill_took_effect(pre: Option<&str>, now: Option<&str>) -> Option<String> {
    match now {
        None => Some("the drill is gone".into()),
        Some(st @ ("deleting" | "error-deleting")) => changed("status", pre, Some(st)),
        Some(_) => None,
    }
}

#[derive(Deserialize)]
struct JobId {
    job_id: String,
}

impl CloudClient {
    /// Lists the protection groups that match `filter`, every page of them.
    pub async fn sdrs_list_groups(
        &self,
        filter: &GroupFilter,
    ) -> Result<Vec<ProtectionGroup>, CloudError> {
        let query: Vec<(&str, &str)> = [
            ("status", &filter.status),
            ("availability_zone", &filter.production_az),
            ("name", &filter.name),
        ]
        .into_iter()
        .filter_map(|(key, value)| value.as_deref().map(|v| (key, v)))
        .collect();
        self.sdrs_list("/server-groups", "server_groups", &query)
            .await
    }

    /// Reads every page of an SDRS list: pages of [`LIST_PAGE`] by offset,
    /// until `count` items are read or a page comes back short or empty
    /// (SDRS lists have no `links`; `count` counts every match).
    async fn sdrs_list<T: DeserializeOwned>(
        &self,
        path: &str,
        key: &str,
        query: &[(&str, &str)],
    ) -> Result<Vec<T>, CloudError> {
        let what = format!("GET {}", path.trim_start_matches('/'));
        let mut items: Vec<T> = Vec::new();
        loop {
            let mut request = Request::get(Service::Sdrs, path)
                .query("limit", &LIST_PAGE.to_string())
                .query("offset", &items.len().to_string());
            for (name, value) in query {
                request = request.query(name, value);
            }
            let answer = self.send(&request).await?;
            let mut page = answer.json::<serde_json::Map<String, Value>>(&what)?;
            let count = page.get("count").and_then(Value::as_u64);
            let list = page.remove(key).unwrap_or(Value::Array(Vec::new()));
            let read: Vec<T> = serde_json::from_value(list)
                .map_err(|e| answer.unexpected(&what, &format!("{key}: {e}")))?;
            let got = read.len();
            items.extend(read);
            let done = match count {
                Some(count) => items.len() as u64 >= count,
                None => got < LIST_PAGE,
            };
            if got == 0 || done {
                return Ok(items);
            }
        }
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

    /// Lists drills, optionally of one group and by name (SDRS matches names
    /// fuzzily), every page of them.
    pub async fn sdrs_list_drills(
        &self,
        group: Option<&str>,
        name: Option<&str>,
    ) -> Result<Vec<Drill>, CloudError> {
        let mut query = Vec::new();
        if let Some(g) = group {
            query.push(("server_group_id", g));
        }
        if let Some(n) = name {
            query.push(("name", n));
        }
        let drills: Vec<Drill> = self
            .sdrs_list(
                "/disaster-recovery-drills",
                "disaster_recovery_drills",
                &query,
            )
            .await?;
        // The name filter is fuzzy: keep exact matches only.
        Ok(drills
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
