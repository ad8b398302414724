//! EVS replication consistency group operations (`/v2/{project_id}/os-vendor-replication-consistency-groups`).
//!
//! Actions answer 200 with no body and carry no direction: completion and
//! effect are seen only by reading the group again.

use serde::Deserialize;
use serde_json::Value;

use super::error::CloudError;
use super::http::{CloudClient, Request, Service};
use super::resource::EvsGroup;

const GROUPS: &str = "/os-vendor-replication-consistency-groups";

/// A group action and its request body key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EvsAction {
    /// Primary/secondary switchover.
    Switchover,
    /// Failover to the DR AZ.
    Failover,
    /// Synchronise.
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

impl CloudClient {
    /// Lists the project's groups.
    pub async fn evs_list_groups(&self) -> Result<Vec<EvsGroup>, CloudError> {
        #[derive(Deserialize)]
        struct List {
            replication_consistency_groups: Vec<EvsGroup>,
        }
        let answer = self.send(&Request::get(Service::Evs, GROUPS)).await?;
        Ok(answer
            .json::<List>("GET consistency groups")?
            .replication_consistency_groups)
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
