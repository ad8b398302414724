//! The interface the engine reaches the cloud through, and its real
//! implementation, [`CloudClient`]. The other implementation is the dry run
//! (`cloud::dry_run`): it reads through a real client and holds back every
//! change. Tests fake the cloud at this seam too.

use std::future::Future;

use super::evs::EvsAction;
use super::http::{Answer, HttpCall, Request};
use super::resource::{Drill, EvsGroup, GroupFilter, Job, ProtectionGroup};
use super::sdrs::SdrsAction;
use super::{CloudClient, CloudError};

/// What became of a request that may change something.
#[derive(Debug, Clone, PartialEq)]
pub enum Delivery<T> {
    /// It was sent and answered with this.
    Sent(T),
    /// A dry run held it back: this is what would have been sent.
    HeldBack(WouldSend),
}

/// A change a dry run did not send.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct WouldSend {
    /// `METHOD path-or-url`.
    pub request: String,
    /// The body it would have carried.
    pub body: Option<serde_json::Value>,
}

/// The operations a runbook's actions use. Reads return what the cloud
/// answered; changes return a [`Delivery`], so a caller cannot mistake a
/// held-back request for an accepted one.
pub trait Cloud: Send + Sync + 'static {
    /// Lists the EVS groups that match (every page).
    fn evs_list_groups(
        &self,
        filter: &GroupFilter,
    ) -> impl Future<Output = Result<Vec<EvsGroup>, CloudError>> + Send;
    /// Lists the SDRS protection groups that match (every page).
    fn sdrs_list_groups(
        &self,
        filter: &GroupFilter,
    ) -> impl Future<Output = Result<Vec<ProtectionGroup>, CloudError>> + Send;
    /// Reads an EVS group.
    fn evs_get_group(&self, id: &str) -> impl Future<Output = Result<EvsGroup, CloudError>> + Send;
    /// Sends an EVS group action.
    fn evs_action(
        &self,
        id: &str,
        action: EvsAction,
    ) -> impl Future<Output = Result<Delivery<()>, CloudError>> + Send;
    /// Reads an SDRS protection group.
    fn sdrs_get_group(
        &self,
        id: &str,
    ) -> impl Future<Output = Result<ProtectionGroup, CloudError>> + Send;
    /// Sends an SDRS protection-group action; the job id.
    fn sdrs_action(
        &self,
        id: &str,
        action: SdrsAction,
    ) -> impl Future<Output = Result<Delivery<String>, CloudError>> + Send;
    /// Reads an SDRS job.
    fn sdrs_get_job(&self, id: &str) -> impl Future<Output = Result<Job, CloudError>> + Send;
    /// Starts an SDRS drill; the job id.
    fn sdrs_create_drill(
        &self,
        group: &str,
        name: &str,
        vpc: Option<&str>,
    ) -> impl Future<Output = Result<Delivery<String>, CloudError>> + Send;
    /// Lists the drills of a group with an exact name.
    fn sdrs_list_drills(
        &self,
        group: Option<&str>,
        name: Option<&str>,
    ) -> impl Future<Output = Result<Vec<Drill>, CloudError>> + Send;
    /// Reads a drill.
    fn sdrs_get_drill(&self, id: &str) -> impl Future<Output = Result<Drill, CloudError>> + Send;
    /// Deletes a drill; the job id.
    fn sdrs_delete_drill(
        &self,
        id: &str,
    ) -> impl Future<Output = Result<Delivery<String>, CloudError>> + Send;
    /// Any HTTP call; every status is an answer. GET and HEAD are reads.
    fn http_request(
        &self,
        call: &HttpCall,
    ) -> impl Future<Output = Result<Delivery<Answer>, CloudError>> + Send;
    /// `METHOD path` of an EVS or SDRS request, as it would be sent.
    fn request_line(
        &self,
        request: &Request,
    ) -> impl Future<Output = Result<String, CloudError>> + Send;
}

impl Cloud for CloudClient {
    async fn evs_list_groups(&self, filter: &GroupFilter) -> Result<Vec<EvsGroup>, CloudError> {
        CloudClient::evs_list_groups(self, filter).await
    }
    async fn sdrs_list_groups(
        &self,
        filter: &GroupFilter,
    ) -> Result<Vec<ProtectionGroup>, CloudError> {
        CloudClient::sdrs_list_groups(self, filter).await
    }
    async fn evs_get_group(&self, id: &str) -> Result<EvsGroup, CloudError> {
        CloudClient::evs_get_group(self, id).await
    }
    async fn evs_action(&self, id: &str, action: EvsAction) -> Result<Delivery<()>, CloudError> {
        CloudClient::evs_action(self, id, action)
            .await
            .map(Delivery::Sent)
    }
    async fn sdrs_get_group(&self, id: &str) -> Result<ProtectionGroup, CloudError> {
        CloudClient::sdrs_get_group(self, id).await
    }
    async fn sdrs_action(
        &self,
        id: &str,
        action: SdrsAction,
    ) -> Result<Delivery<String>, CloudError> {
        CloudClient::sdrs_action(self, id, action)
            .await
            .map(Delivery::Sent)
    }
    async fn sdrs_get_job(&self, id: &str) -> Result<Job, CloudError> {
        CloudClient::sdrs_get_job(self, id).await
    }
    async fn sdrs_create_drill(
        &self,
        group: &str,
        name: &str,
        vpc: Option<&str>,
    ) -> Result<Delivery<String>, CloudError> {
        CloudClient::sdrs_create_drill(self, group, name, vpc)
            .await
            .map(Delivery::Sent)
    }
    async fn sdrs_list_drills(
        &self,
        group: Option<&str>,
        name: Option<&str>,
    ) -> Result<Vec<Drill>, CloudError> {
        CloudClient::sdrs_list_drills(self, group, name).await
    }
    async fn sdrs_get_drill(&self, id: &str) -> Result<Drill, CloudError> {
        CloudClient::sdrs_get_drill(self, id).await
    }
    async fn sdrs_delete_drill(&self, id: &str) -> Result<Delivery<String>, CloudError> {
        CloudClient::sdrs_delete_drill(self, id)
            .await
            .map(Delivery::Sent)
    }
    async fn http_request(&self, call: &HttpCall) -> Result<Delivery<Answer>, CloudError> {
        CloudClient::http_request(self, call)
            .await
            .map(Delivery::Sent)
    }
    async fn request_line(&self, request: &Request) -> Result<String, CloudError> {
        CloudClient::request_line(self, request).await
    }
}
