//! The dry run: a [`Cloud`] that reads through another one and holds back
//! every request that could change something, answering
//! [`Delivery::HeldBack`] with what would have been sent. A run marked dry
//! executes against it, so nothing in the engine can send a change by
//! forgetting to check a flag.

use std::sync::Arc;

use super::CloudError;
use super::evs::{self, EvsAction};
use super::http::{Answer, HttpCall, Request};
use super::interface::{Cloud, Delivery, WouldSend};
use super::resource::{Drill, EvsGroup, GroupFilter, Job, ProtectionGroup};
use super::sdrs::{self, SdrsAction};

/// Reads through `inner`; holds back changes.
pub struct DryRun<C> {
    inner: Arc<C>,
}

impl<C: Cloud> DryRun<C> {
    /// A dry run over `inner`, which only ever sees reads.
    pub fn new(inner: Arc<C>) -> Self {
        DryRun { inner }
    }

    async fn hold<T>(
        &self,
        request: Result<Request, CloudError>,
    ) -> Result<Delivery<T>, CloudError> {
        let request = request?;
        let line = self.inner.request_line(&request).await?;
        Ok(held_back(line, request.body))
    }
}

fn held_back<T>(request: String, body: Option<serde_json::Value>) -> Delivery<T> {
    tracing::info!(%request, "Dry run: not sending.");
    Delivery::HeldBack(WouldSend { request, body })
}

impl<C: Cloud> Cloud for DryRun<C> {
    async fn evs_list_groups(&self, filter: &GroupFilter) -> Result<Vec<EvsGroup>, CloudError> {
        self.inner.evs_list_groups(filter).await
    }
    async fn sdrs_list_groups(
        &self,
        filter: &GroupFilter,
    ) -> Result<Vec<ProtectionGroup>, CloudError> {
        self.inner.sdrs_list_groups(filter).await
    }
    async fn evs_get_group(&self, id: &str) -> Result<EvsGroup, CloudError> {
        self.inner.evs_get_group(id).await
    }
    async fn evs_action(&self, id: &str, action: EvsAction) -> Result<Delivery<()>, CloudError> {
        self.hold(evs::action_request(id, action)).await
    }
    async fn sdrs_get_group(&self, id: &str) -> Result<ProtectionGroup, CloudError> {
        self.inner.sdrs_get_group(id).await
    }
    async fn sdrs_action(
        &self,
        id: &str,
        action: SdrsAction,
    ) -> Result<Delivery<String>, CloudError> {
        self.hold(sdrs::action_request(id, action)).await
    }
    async fn sdrs_get_job(&self, id: &str) -> Result<Job, CloudError> {
        self.inner.sdrs_get_job(id).await
    }
    async fn sdrs_create_drill(
        &self,
        group: &str,
        name: &str,
        vpc: Option<&str>,
    ) -> Result<Delivery<String>, CloudError> {
        self.hold(sdrs::create_drill_request(group, name, vpc))
            .await
    }
    async fn sdrs_list_drills(
        &self,
        group: Option<&str>,
        name: Option<&str>,
    ) -> Result<Vec<Drill>, CloudError> {
        self.inner.sdrs_list_drills(group, name).await
    }
    async fn sdrs_get_drill(&self, id: &str) -> Result<Drill, CloudError> {
        self.inner.sdrs_get_drill(id).await
    }
    async fn sdrs_delete_drill(&self, id: &str) -> Result<Delivery<String>, CloudError> {
        self.hold(sdrs::delete_drill_request(id)).await
    }
    async fn http_request(&self, call: &HttpCall) -> Result<Delivery<Answer>, CloudError> {
        if !call.is_mutating() {
            return self.inner.http_request(call).await;
        }
        let body = call
            .json
            .clone()
            .or_else(|| call.body.clone().map(serde_json::Value::String));
        Ok(held_back(call.line(), body))
    }
    async fn request_line(&self, request: &Request) -> Result<String, CloudError> {
        self.inner.request_line(request).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cloud::CloudClient;
    use crate::cloud::vocabulary::PriorityStation;
    use crate::config::{CloudAuth, Config};
    use serde_json::json;

    /// A real client whose endpoints refuse every connection and that has no
    /// credentials: anything it were asked to send would fail.
    fn dry() -> DryRun<CloudClient> {
        let mut config = Config::parse("", std::path::Path::new("t.yaml"), &Default::default())
            .unwrap()
            .cloud;
        config.project_id = Some("p1".into());
        config.evs_endpoint = Some("http://127.0.0.1:9".into());
        config.sdrs_endpoint = Some("http://127.0.0.1:9".into());
        config.auth = CloudAuth::None;
        DryRun::new(Arc::new(CloudClient::new(&config).unwrap()))
    }

    fn held<T: std::fmt::Debug>(d: Result<Delivery<T>, CloudError>) -> WouldSend {
        match d {
            Ok(Delivery::HeldBack(w)) => w,
            other => panic!("not held back: {other:?}"),
        }
    }

    #[tokio::test]
    async fn every_change_is_held_back_with_the_request_it_would_have_been() {
        let d = dry();
        let w = held(d.evs_action("g1", EvsAction::Switchover).await);
        assert_eq!(
            w.request,
            "POST /v2/p1/os-vendor-replication-consistency-groups/g1/action"
        );
        assert_eq!(
            w.body,
            Some(json!({"os-reverse-replication-consistency-group": null}))
        );
        let w = held(
            d.sdrs_action("pg1", SdrsAction::Switchover(PriorityStation::Target))
                .await,
        );
        assert_eq!(w.request, "POST /v1/p1/server-groups/pg1/action");
        assert_eq!(
            w.body,
            Some(json!({"reverse-server-group": {"priority_station": "target"}}))
        );
        let w = held(d.sdrs_create_drill("pg1", "rehearsal", None).await);
        assert_eq!(w.request, "POST /v1/p1/disaster-recovery-drills");
        let w = held(d.sdrs_delete_drill("d1").await);
        assert_eq!(w.request, "DELETE /v1/p1/disaster-recovery-drills/d1");
        let call = |method| HttpCall {
            method,
            url: "http://127.0.0.1:9/hook?token=s3cret".into(),
            headers: Vec::new(),
            json: Some(json!({"x": 1})),
            body: None,
        };
        let w = held(d.http_request(&call(reqwest::Method::POST)).await);
        assert_eq!(w.request, "POST http://127.0.0.1:9/hook?token=[REDACTED]");
        // Reads go through to the real client (which cannot connect here).
        let read = d.http_request(&call(reqwest::Method::GET)).await;
        assert!(read.is_err(), "{read:?}");
        let read = d.evs_get_group("g1").await;
        assert!(read.is_err(), "{read:?}");
    }

    #[tokio::test]
    async fn a_bad_id_is_refused_as_the_real_request_would_be() {
        let err = match dry().evs_action("g1/../x", EvsAction::Sync).await {
            Err(e) => e.to_string(),
            Ok(d) => panic!("{d:?}"),
        };
        assert!(err.contains("consistency group action"), "{err}");
    }
}
