//! EVS replication consistency group operations (`/v2/{project_id}/os-vendor-replication-consistency-groups`).
//!
//! Actions answer 200 with no body and carry no direction: completion and
//! effect are seen only by reading the group again.

use serde::Deserialize;
use serde_json::Value;

use super::error::CloudError;
use super::http::{CloudClient, Request, Service};
use super::resource::{EvsGroup, GroupFilter, LIST_PAGE, changed, entered};
use super::vocabulary::{EvsStatus, FaultLevel, ReplicationStatus};

const GROUPS: &str = "/os-vendor-replication-consistency-groups";

/// A group action and its request body key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EvsAction {
    /// Primary/secondary switchover.
    Switchover,
    /// Failover to the DR AZ.
    Failover,
    Sync,
    /// Pause replication.
    Stop,
    /// Reprotect after failover.
    Reprotect,
}

impl EvsAction {
    /// The body key, e.g. `os-reverse-replication-consistency-group`.
    pub fn body_key(self) -> &'static str {
        match self {
            EvsAction::Switchover => "os-reverse-replication-consistency-group",
            EvsAction::Failover => "os-failover-replication-consistency-group",
            EvsAction::Sync => "os-sync-replication-consistency-group",
            EvsAction::Stop => "os-stop-replication-consistency-group",
            EvsAction::Reprotect => "os-reprotect-replication-consistency-group",
        }
    }

    /// The request body: the key with a null value.
    pub fn body(self) -> Value {
        let mut map = serde_json::Map::new();
        map.insert(self.body_key().to_string(), Value::Null);
        Value::Object(map)
    }
}

impl EvsAction {
    /// Whether the group, freshly read, allows the action; why not otherwise.
    pub fn precondition(self, g: &EvsGroup) -> Result<(), String> {
        use EvsStatus as S;
        let (group, status) = (&g.id, &g.status);
        let repl = g.replication_status.as_deref().unwrap_or("null");
        let fault = g.fault_level.as_deref().unwrap_or("null");
        let st = EvsStatus::parse(status);
        let link_down = FaultLevel::parse(fault) == Some(FaultLevel::LinkDown);
        match self {
            EvsAction::Switchover
                if st != Some(S::Available)
                    || g.replication() != Some(ReplicationStatus::Active) =>
            {
                Err(format!(
                    "group {group} must be available and replicating (active) for a switchover, but is {status}/{repl}"
                ))
            }
            EvsAction::Switchover if FaultLevel::parse(fault) != Some(FaultLevel::None) => {
                Err(format!(
                    "group {group} reports fault_level {fault}; a switchover needs fault_level 0"
                ))
            }
            EvsAction::Failover if link_down => Err(format!(
                "group {group} reports fault_level 5: the replication link is down and failover is impossible"
            )),
            EvsAction::Failover if !matches!(st, Some(S::Available | S::ErrorFailovering)) => {
                Err(format!(
                    "group {group} is {status}; failover needs available (or error_failovering to retry)"
                ))
            }
            EvsAction::Sync | EvsAction::Stop if st != Some(S::Available) => {
                Err(format!("group {group} is {status}, not available"))
            }
            EvsAction::Reprotect if !matches!(st, Some(S::Failovered | S::Available)) => Err(
                format!("group {group} is {status}; reprotect needs failovered (or available)"),
            ),
            EvsAction::Reprotect if link_down => Err(format!(
                "group {group} reports fault_level 5: the replication link is down"
            )),
            _ => Ok(()),
        }
    }

    /// Whether the action visibly acted on the group between `pre` and `now`
    /// (in flight, done or failed); the evidence if so.
    pub fn took_effect(self, pre: &EvsGroup, now: &EvsGroup) -> Option<String> {
        use EvsStatus as S;
        use ReplicationStatus as R;
        let status = |set: &[S]| entered(&pre.status, &now.status, set, EvsStatus::parse);
        let (a, b) = (&pre.priority_station, &now.priority_station);
        let station = || changed("priority_station", a.as_deref(), b.as_deref());
        let repl = || {
            changed(
                "replication_status",
                pre.replication_status.as_deref(),
                now.replication_status.as_deref(),
            )
        };
        // A finished sync or reprotect of a replicating group leaves it as it
        // was except for its update time.
        let updated = || {
            let at = |g: &EvsGroup| g.updated_at.map(|t| t.to_rfc3339());
            changed("updated_at", at(pre).as_deref(), at(now).as_deref())
        };
        let resumed = now.replication() == Some(R::Copying)
            || (pre.replication() != Some(R::Active) && now.replication() == Some(R::Active));
        match self {
            EvsAction::Switchover => status(&[S::Reversing, S::ErrorReversing]).or_else(station),
            EvsAction::Failover => {
                status(&[S::Failovering, S::Failovered, S::ErrorFailovering]).or_else(station)
            }
            EvsAction::Sync => resumed
                .then(|| repl().unwrap_or_else(|| "replication_status copying".into()))
                .or_else(updated),
            EvsAction::Stop => matches!(now.replication(), Some(R::ActiveStopped | R::Inactive))
                .then(repl)
                .flatten(),
            EvsAction::Reprotect => (resumed
                || (EvsStatus::parse(&pre.status) == Some(S::Failovered)
                    && EvsStatus::parse(&now.status) == Some(S::Available)))
            .then(|| {
                changed("status", Some(&pre.status), Some(&now.status))
                    .or_else(repl)
                    .unwrap_or_else(|| "replication_status copying".into())
            })
            .or_else(updated),
        }
    }
}

impl CloudClient {
    /// Lists the project's groups that match `filter`, every page of them
    /// (pages of [`LIST_PAGE`], each after the last id of the one before).
    pub async fn evs_list_groups(&self, filter: &GroupFilter) -> Result<Vec<EvsGroup>, CloudError> {
        #[derive(Deserialize)]
        struct List {
            replication_consistency_groups: Vec<EvsGroup>,
        }
        let mut groups: Vec<EvsGroup> = Vec::new();
        loop {
            let mut request =
                Request::get(Service::Evs, GROUPS).query("limit", &LIST_PAGE.to_string());
            for (key, value) in [
                ("status", &filter.status),
                ("priority_station", &filter.production_az),
                ("name", &filter.name),
            ] {
                if let Some(value) = value {
                    request = request.query(key, value);
                }
            }
            if let Some(last) = groups.last() {
                request = request.query("marker", &last.id);
            }
            let page = self
                .send(&request)
                .await?
                .json::<List>("GET consistency groups")?
                .replication_consistency_groups;
            let full = page.len() >= LIST_PAGE;
            groups.extend(page);
            if !full {
                return Ok(groups);
            }
        }
    }

    /// Reads one group.
    pub async fn evs_get_group(&self, id: &str) -> Result<EvsGroup, CloudError> {
        #[derive(Deserialize)]
        struct One {
            replication_consistency_group: EvsGroup,
        }
        let seg = super::id::in_path("GET consistency group", id)?;
        let answer = self
            .send(&Request::get(Service::Evs, format!("{GROUPS}/{seg}")))
            .await?;
        Ok(answer
            .json::<One>(&format!("GET consistency group {id}"))?
            .replication_consistency_group)
    }

    /// Sends a group action (200, no body).
    pub async fn evs_action(&self, id: &str, action: EvsAction) -> Result<(), CloudError> {
        self.send(&action_request(id, action)?).await.map(|_| ())
    }
}

/// The request of a group action (what is sent, or what a dry run holds back).
pub fn action_request(id: &str, action: EvsAction) -> Result<Request, CloudError> {
    let seg = super::id::in_path("POST consistency group action", id)?;
    Ok(Request::post(
        Service::Evs,
        format!("{GROUPS}/{seg}/action"),
        action.body(),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn action_bodies_are_a_single_key_with_null() {
        assert_eq!(
            EvsAction::Switchover.body(),
            json!({"os-reverse-replication-consistency-group": null})
        );
        assert_eq!(
            EvsAction::Failover.body(),
            json!({"os-failover-replication-consistency-group": null})
        );
        assert_eq!(
            EvsAction::Sync.body(),
            json!({"os-sync-replication-consistency-group": null})
        );
        assert_eq!(
            EvsAction::Stop.body(),
            json!({"os-stop-replication-consistency-group": null})
        );
        assert_eq!(
            EvsAction::Reprotect.body(),
            json!({"os-reprotect-replication-consistency-group": null})
        );
    }
}
