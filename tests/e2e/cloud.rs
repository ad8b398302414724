//! The cloud client against the simulator: every operation, token caching,
//! expiry and refresh, AK/SK signing verified by the simulator, and each
//! fault kind classified correctly. Assertions read the simulator's journal.

use std::time::Duration;

use drover::cloud::evs::EvsAction;
use drover::cloud::resource::JobStatus;
use drover::cloud::sdrs::SdrsAction;
use drover::cloud::{CloudClient, CloudError, Reach};

/// The engine's retry decision under the default policy.
fn retryable(e: &CloudError) -> bool {
    drover::engine::retry::retryable(&drover::policy::RetryPolicy::default(), e)
}
use drover::config::CloudAuth;
use drover::runbook::model::{EvsStatus, FaultLevel, PriorityStation};
use drover::sim::SimConfig;
use drover::sim::faults::{Fault, Forced};
use secrecy::SecretString;

use crate::helpers::{calls, client, cloud_config, start_sim};

fn config() -> SimConfig {
    SimConfig {
        evs_groups: vec!["g1".into()],
        sdrs_groups: vec!["pg1".into()],
        transition: Duration::from_secs(10),
        ..SimConfig::default()
    }
}

fn force(sim: &crate::helpers::Sim, endpoint: &str, fault: Fault) {
    sim.sim.force(Forced {
        endpoint: endpoint.into(),
        fault,
        count: 1,
    });
}

#[tokio::test]
async fn evs_operations_with_a_cached_password_token() {
    let sim = start_sim(config()).await;
    let c = client(&sim);
    let groups = c.evs_list_groups(&Default::default()).await.unwrap();
    assert_eq!(groups.len(), 1);
    let g = c.evs_get_group("g1").await.unwrap();
    assert_eq!(
        (g.status.as_str(), g.priority_station.as_deref()),
        ("available", Some("eu-de-01"))
    );
    c.evs_action("g1", EvsAction::Switchover).await.unwrap();
    assert_eq!(c.evs_get_group("g1").await.unwrap().status, "reversing");
    sim.sim.advance_clock(Duration::from_secs(10));
    let g = c.evs_get_group("g1").await.unwrap();
    assert_eq!(
        (g.status.as_str(), g.priority_station.as_deref()),
        ("available", Some("eu-de-02"))
    );

    let journal = sim.sim.journal();
    assert_eq!(
        journal.iter().filter(|e| e.endpoint == "iam.token").count(),
        1,
        "one token for all calls"
    );
    assert!(journal.iter().skip(1).all(|e| e.auth == "token"));
    let action = journal.iter().find(|e| e.endpoint == "evs.action").unwrap();
    assert_eq!(
        action.body,
        serde_json::json!({"os-reverse-replication-consistency-group": null})
    );
    assert_eq!((action.status, action.changed), (Some(200), true));
    let token_request = &journal[0];
    assert_eq!(token_request.status, Some(201));
    assert_eq!(
        token_request.body["auth"]["identity"]["password"]["user"]["password"],
        "[REDACTED]"
    );
    assert_eq!(token_request.query.as_deref(), Some("nocatalog=true"));
}

#[tokio::test]
async fn every_evs_action_reaches_its_documented_state() {
    let sim = start_sim(config()).await;
    let c = client(&sim);
    c.evs_action("g1", EvsAction::Stop).await.unwrap();
    assert_eq!(
        c.evs_get_group("g1")
            .await
            .unwrap()
            .replication_status
            .as_deref(),
        Some("active-stopped")
    );
    c.evs_action("g1", EvsAction::Sync).await.unwrap();
    sim.sim.advance_clock(Duration::from_secs(10));
    assert_eq!(
        c.evs_get_group("g1")
            .await
            .unwrap()
            .replication_status
            .as_deref(),
        Some("active")
    );
    c.evs_action("g1", EvsAction::Failover).await.unwrap();
    sim.sim.advance_clock(Duration::from_secs(10));
    let g = c.evs_get_group("g1").await.unwrap();
    assert_eq!(
        (g.status.as_str(), g.replication_status.as_deref()),
        ("failovered", Some("active-stopped"))
    );
    c.evs_action("g1", EvsAction::Reprotect).await.unwrap();
    sim.sim.advance_clock(Duration::from_secs(10));
    let g = c.evs_get_group("g1").await.unwrap();
    assert_eq!(
        (g.status.as_str(), g.replication_status.as_deref()),
        ("available", Some("active"))
    );
}

#[tokio::test]
async fn tokens_are_refreshed_before_they_expire() {
    let sim = start_sim(config()).await;
    // The simulator's token lives 24 h; the client's clock jumps to 4 minutes before that.
    let offset = std::sync::Arc::new(std::sync::Mutex::new(chrono::Duration::zero()));
    let shift = offset.clone();
    let c = client(&sim).with_clock(std::sync::Arc::new(move || {
        chrono::Utc::now() + *shift.lock().unwrap()
    }));
    c.evs_get_group("g1").await.unwrap();
    c.evs_get_group("g1").await.unwrap();
    *offset.lock().unwrap() = chrono::Duration::hours(24) - chrono::Duration::minutes(4);
    c.evs_get_group("g1").await.unwrap();
    let endpoints: Vec<String> = calls(&sim).into_iter().map(|c| c.0).collect();
    assert_eq!(
        endpoints,
        ["iam.token", "evs.get", "evs.get", "iam.token", "evs.get"],
        "refreshed before use, no 401"
    );
}

#[tokio::test]
async fn an_expired_token_is_refreshed_once_on_401() {
    let sim = start_sim(config()).await;
    let c = client(&sim);
    c.evs_get_group("g1").await.unwrap();
    sim.sim.advance_clock(Duration::from_secs(25 * 3600)); // the simulator's tokens expired
    c.evs_get_group("g1").await.unwrap();
    assert_eq!(
        calls(&sim),
        [
            ("iam.token".into(), Some(201)),
            ("evs.get".into(), Some(200)),
            ("evs.get".into(), Some(401)),
            ("iam.token".into(), Some(201)),
            ("evs.get".into(), Some(200)),
        ]
    );
}

#[tokio::test]
async fn a_401_is_resent_once_after_a_refresh_and_then_fails() {
    // Tokens expire the moment they are issued: the re-send is refused too.
    let sim = start_sim(SimConfig {
        token_lifetime: Duration::ZERO,
        ..config()
    })
    .await;
    let err = client(&sim).evs_get_group("g1").await.unwrap_err();
    assert_eq!(
        (err.status, err.code.as_deref(), err.reach, retryable(&err)),
        (Some(401), Some("APIG.1002"), Reach::Answered, false)
    );
    let gets: Vec<_> = calls(&sim)
        .into_iter()
        .filter(|c| c.0 == "evs.get")
        .collect();
    assert_eq!(
        gets,
        [("evs.get".into(), Some(401)), ("evs.get".into(), Some(401))],
        "one re-send, no loop"
    );
}

#[tokio::test]
async fn a_static_token_is_not_refreshed_and_never_shown() {
    let sim = start_sim(config()).await;
    let mut cfg = cloud_config(&sim, CloudAuth::Token(SecretString::from("MIIforged")));
    cfg.project_id = Some(sim.sim.credentials().project_id);
    let forged = CloudClient::new(&cfg).unwrap();
    let err = forged.evs_get_group("g1").await.unwrap_err();
    assert_eq!(
        (err.status, err.reach, retryable(&err)),
        (Some(401), Reach::Answered, false)
    );
    assert_eq!(
        calls(&sim),
        [("evs.get".into(), Some(401))],
        "no token request, no re-send"
    );
    assert!(
        !format!("{err}{err:?}{forged:?}").contains("MIIforged"),
        "the token never appears"
    );
}

#[tokio::test]
async fn wrong_password_is_a_fatal_401_that_does_not_show_the_password() {
    let sim = start_sim(config()).await;
    let auth = CloudAuth::Password {
        user: "drover".into(),
        domain: "drover-sim".into(),
        password: SecretString::from("not-the-password"),
    };
    let c = CloudClient::new(&cloud_config(&sim, auth)).unwrap();
    let err = c.evs_get_group("g1").await.unwrap_err();
    assert_eq!(
        (err.status, err.reach, retryable(&err)),
        (Some(401), Reach::Answered, false)
    );
    assert!(err.to_string().contains("requires authentication"), "{err}");
    assert!(!err.to_string().contains("not-the-password"));
    assert!(!format!("{err:?}{c:?}").contains("not-the-password"));
}

#[tokio::test]
async fn aksk_signed_requests_are_verified_by_the_simulator() {
    let sim = start_sim(config()).await;
    let creds = sim.sim.credentials();
    let mut cfg = cloud_config(
        &sim,
        CloudAuth::AkSk {
            access_key: SecretString::from(creds.access_key.clone()),
            secret_key: SecretString::from(creds.secret_key.clone()),
        },
    );
    cfg.project_id = Some(creds.project_id.clone());
    let c = CloudClient::new(&cfg).unwrap();
    c.evs_get_group("g1").await.unwrap();
    c.sdrs_action("pg1", SdrsAction::Switchover(PriorityStation::Target))
        .await
        .unwrap();
    let drills = c.sdrs_list_drills(Some("pg1"), Some("a b")).await.unwrap();
    assert!(drills.is_empty());
    let journal = sim.sim.journal();
    assert!(
        journal
            .iter()
            .all(|e| e.auth == "aksk" && e.status == Some(200)),
        "{journal:#?}"
    );

    cfg.auth = CloudAuth::AkSk {
        access_key: SecretString::from(creds.access_key),
        secret_key: SecretString::from("wrong-secret"),
    };
    let err = CloudClient::new(&cfg)
        .unwrap()
        .evs_get_group("g1")
        .await
        .unwrap_err();
    assert_eq!(
        (err.status, err.code.as_deref()),
        (Some(401), Some("APIG.0301"))
    );
    assert!(err.message.contains("signature does not match"), "{err}");
}

#[tokio::test]
async fn each_fault_kind_is_classified() {
    let sim = start_sim(config()).await;
    let c = client(&sim);
    c.evs_get_group("g1").await.unwrap();

    for (fault, status) in [
        (Fault::Status408, 408),
        (Fault::Status502, 502),
        (Fault::Status503, 503),
        (Fault::Status504, 504),
    ] {
        force(&sim, "evs.get", fault);
        let e = c.evs_get_group("g1").await.unwrap_err();
        assert_eq!(
            (e.status, e.reach, retryable(&e)),
            (Some(status), Reach::Answered, true),
            "{fault:?} on a read"
        );
        force(&sim, "evs.action", fault);
        let e = c.evs_action("g1", EvsAction::Switchover).await.unwrap_err();
        assert_eq!(
            (e.status, e.reach, retryable(&e)),
            (Some(status), Reach::Answered, true),
            "{fault:?} on a mutation"
        );
    }
    assert_eq!(
        c.evs_get_group("g1").await.unwrap().status,
        "available",
        "status faults did not act"
    );

    force(&sim, "evs.get", Fault::Reset);
    let e = c.evs_get_group("g1").await.unwrap_err();
    assert_eq!(
        (e.status, e.reach, retryable(&e)),
        (None, Reach::Unanswered, true),
        "reset on a read: {e}"
    );
    force(&sim, "evs.action", Fault::Reset);
    let e = c.evs_action("g1", EvsAction::Switchover).await.unwrap_err();
    assert_eq!(
        (e.status, e.reach, retryable(&e)),
        (None, Reach::Unanswered, true),
        "reset on a mutation: {e}"
    );

    force(&sim, "evs.action", Fault::Ambiguous);
    let e = c.evs_action("g1", EvsAction::Switchover).await.unwrap_err();
    assert_eq!(
        (e.status, e.reach, retryable(&e)),
        (Some(504), Reach::Answered, true)
    );
    assert_eq!(
        c.evs_get_group("g1").await.unwrap().status,
        "reversing",
        "the ambiguous fault acted"
    );
    let changed: Vec<_> = sim
        .sim
        .journal()
        .into_iter()
        .filter(|e| e.endpoint == "evs.action" && e.changed)
        .collect();
    assert_eq!(changed.len(), 1, "exactly one accepted switchover");
    assert_eq!(
        (changed[0].status, changed[0].fault),
        (Some(504), Some(Fault::Ambiguous))
    );

    // A refusal is fatal and carries the cloud's code.
    let e = c.evs_action("g1", EvsAction::Switchover).await.unwrap_err();
    assert_eq!(
        (e.status, e.code.as_deref(), e.reach, retryable(&e)),
        (Some(400), Some("EVS.5400"), Reach::Answered, false)
    );
    let e = c.evs_get_group("nope").await.unwrap_err();
    assert_eq!(
        (e.status, e.code.as_deref(), e.reach, retryable(&e)),
        (Some(404), Some("EVS.5404"), Reach::Answered, false)
    );
    let e = c.sdrs_get_group("nope").await.unwrap_err();
    assert_eq!(
        (e.status, e.code.as_deref(), e.reach, retryable(&e)),
        (Some(400), Some("SDRS.1013"), Reach::Answered, false)
    );
}

#[tokio::test]
async fn retry_after_is_read_and_connect_failures_are_retryable_even_for_mutations() {
    let sim = start_sim(config()).await;
    let mut faults = drover::sim::faults::Faults::default();
    faults.rules.insert(
        "evs.get".into(),
        drover::sim::faults::FaultRule {
            p503: 1.0,
            retry_after: Some(7),
            ..Default::default()
        },
    );
    sim.sim.set_faults(faults).unwrap();
    let e = client(&sim).evs_get_group("g1").await.unwrap_err();
    assert_eq!(e.retry_after, Some(Duration::from_secs(7)));

    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = closed.local_addr().unwrap().port();
    drop(closed);
    let mut cfg = cloud_config(&sim, CloudAuth::Token(SecretString::from("t")));
    cfg.project_id = Some("p".into());
    cfg.evs_endpoint = Some(format!("http://127.0.0.1:{port}"));
    let e = CloudClient::new(&cfg)
        .unwrap()
        .evs_action("g1", EvsAction::Switchover)
        .await
        .unwrap_err();
    assert_eq!(
        (e.status, e.reach, retryable(&e)),
        (None, Reach::Unreached, true),
        "nothing was sent: {e}"
    );
}

#[tokio::test]
async fn a_timeout_after_sending_a_mutation_is_ambiguous() {
    let sim = start_sim(config()).await;
    let mut faults = drover::sim::faults::Faults::default();
    faults.rules.insert(
        "evs.action".into(),
        drover::sim::faults::FaultRule {
            latency_ms: 1_500,
            ..Default::default()
        },
    );
    sim.sim.set_faults(faults).unwrap();
    let mut cfg = cloud_config(&sim, crate::helpers::password_auth(&sim));
    cfg.timeout = Duration::from_millis(300);
    let e = CloudClient::new(&cfg)
        .unwrap()
        .evs_action("g1", EvsAction::Switchover)
        .await
        .unwrap_err();
    assert_eq!(
        (e.status, e.reach, retryable(&e)),
        (None, Reach::Unanswered, true),
        "{e}"
    );
    assert!(e.message.starts_with("timed out"), "{e}");
}

#[tokio::test]
async fn sdrs_actions_run_as_jobs() {
    let sim = start_sim(config()).await;
    let c = client(&sim);
    assert_eq!(
        c.sdrs_list_groups(&Default::default()).await.unwrap().len(),
        1
    );
    let job = c
        .sdrs_action("pg1", SdrsAction::Switchover(PriorityStation::Target))
        .await
        .unwrap();
    assert_eq!(
        c.sdrs_get_job(&job).await.unwrap().status,
        JobStatus::Running
    );
    assert_eq!(c.sdrs_get_group("pg1").await.unwrap().status, "reversing");
    sim.sim.advance_clock(Duration::from_secs(10));
    let done = c.sdrs_get_job(&job).await.unwrap();
    assert_eq!(
        (done.status, done.job_type.as_deref()),
        (JobStatus::Success, Some("reverseProtectionGroupNoCG"))
    );
    assert_eq!(done.entities.server_group_id.as_deref(), Some("pg1"));
    let pg = c.sdrs_get_group("pg1").await.unwrap();
    assert_eq!(
        (pg.status.as_str(), pg.priority_station.as_deref()),
        ("protected", Some("target"))
    );

    let job = c.sdrs_action("pg1", SdrsAction::Failover).await.unwrap();
    sim.sim.advance_clock(Duration::from_secs(10));
    assert_eq!(
        c.sdrs_get_job(&job).await.unwrap().status,
        JobStatus::Success
    );
    assert_eq!(c.sdrs_get_group("pg1").await.unwrap().status, "failed-over");
    let job = c.sdrs_action("pg1", SdrsAction::Enable).await.unwrap();
    sim.sim.advance_clock(Duration::from_secs(10));
    assert_eq!(
        c.sdrs_get_job(&job).await.unwrap().job_type.as_deref(),
        Some("reprotectProtectionGroupNoCG")
    );
    let job = c.sdrs_action("pg1", SdrsAction::Disable).await.unwrap();
    sim.sim.advance_clock(Duration::from_secs(10));
    assert_eq!(
        c.sdrs_get_job(&job).await.unwrap().status,
        JobStatus::Success
    );
    assert_eq!(c.sdrs_get_group("pg1").await.unwrap().status, "available");

    // A failed job carries its operation's code (enable: SDRS.1027) and reason.
    sim.sim
        .with_sdrs(|s| s.groups.get_mut("pg1").unwrap().fail_next = true);
    let job = c.sdrs_action("pg1", SdrsAction::Enable).await.unwrap();
    sim.sim.advance_clock(Duration::from_secs(10));
    let failed = c.sdrs_get_job(&job).await.unwrap();
    assert_eq!(
        (failed.status, failed.error_code.as_deref()),
        (JobStatus::Fail, Some("SDRS.1027"))
    );
    assert!(failed.fail_reason.is_some());
}

#[tokio::test]
async fn drill_lifecycle_through_the_api() {
    let sim = start_sim(config()).await;
    let c = client(&sim);
    let job = c
        .sdrs_create_drill("pg1", "drover-drill-1", None)
        .await
        .unwrap();
    sim.sim.advance_clock(Duration::from_secs(10));
    assert_eq!(
        c.sdrs_get_job(&job).await.unwrap().status,
        JobStatus::Success
    );
    let found = c
        .sdrs_list_drills(Some("pg1"), Some("drover-drill-1"))
        .await
        .unwrap();
    assert_eq!(found.len(), 1, "the drill is found by group and exact name");
    let drill = c.sdrs_get_drill(&found[0].id).await.unwrap();
    assert_eq!(drill.status, "available");
    let job = c.sdrs_delete_drill(&drill.id).await.unwrap();
    sim.sim.advance_clock(Duration::from_secs(10));
    assert_eq!(
        c.sdrs_get_job(&job).await.unwrap().status,
        JobStatus::Success
    );
    let e = c.sdrs_get_drill(&drill.id).await.unwrap_err();
    assert_eq!(
        (e.status, e.code.as_deref()),
        (Some(400), Some("SDRS.1902"))
    );
}

#[tokio::test]
async fn failover_is_refused_at_fault_level_5() {
    let sim = start_sim(config()).await;
    sim.sim
        .with_evs_group("g1", |g| g.fault_level = FaultLevel::LinkDown);
    let c = client(&sim);
    let e = c.evs_action("g1", EvsAction::Failover).await.unwrap_err();
    assert_eq!(
        (e.status, e.reach, retryable(&e)),
        (Some(400), Reach::Answered, false)
    );
    assert!(e.message.contains("fault_level 5"), "{e}");
    assert_eq!(
        sim.sim.with_evs_group("g1", |g| g.status),
        Some(EvsStatus::Available)
    );
}

#[tokio::test]
async fn the_project_in_the_path_must_be_the_token_project() {
    let sim = start_sim(config()).await;
    let mut cfg = cloud_config(&sim, crate::helpers::password_auth(&sim));
    cfg.project_id = Some("another-project".into());
    // The token request scopes by id: an unknown project is refused by IAM.
    let e = CloudClient::new(&cfg)
        .unwrap()
        .evs_get_group("g1")
        .await
        .unwrap_err();
    assert_eq!(e.status, Some(401));
}

/// The API gateway throttles a switchover twice: the client waits what
/// `Retry-After` says and sends it again (the gateway never passed it on),
/// outside the step's retries; the group reverses exactly once.
#[tokio::test]
async fn a_throttled_change_is_sent_again_after_the_wait_the_gateway_asks() {
    let sim = start_sim(config()).await;
    sim.sim.force(Forced {
        endpoint: "evs.action".into(),
        fault: Fault::Status429,
        count: 2,
    });
    let heard = std::sync::Arc::new(std::sync::atomic::AtomicU32::new(0));
    let counter = heard.clone();
    let client = client(&sim).on_throttle(std::sync::Arc::new(move |service| {
        assert_eq!(service.name(), "evs");
        counter.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    }));
    let started = std::time::Instant::now();
    client
        .evs_action("g1", EvsAction::Switchover)
        .await
        .unwrap();
    assert!(
        started.elapsed() >= Duration::from_secs(2),
        "waited the gateway's Retry-After (1 s) twice"
    );
    assert_eq!(heard.load(std::sync::atomic::Ordering::Relaxed), 2);
    let actions: Vec<_> = sim
        .sim
        .journal()
        .into_iter()
        .filter(|e| e.endpoint == "evs.action")
        .map(|e| (e.status, e.changed))
        .collect();
    assert_eq!(
        actions,
        [(Some(429), false), (Some(429), false), (Some(200), true)]
    );
}

/// Past `cloud.rate.throttle_retries` the 429 is the answer: the error names
/// the gateway's code and is not retried by the step's policy.
#[tokio::test]
async fn throttling_that_does_not_end_fails_the_call_with_the_gateway_code() {
    let sim = start_sim(config()).await;
    sim.sim.force(Forced {
        endpoint: "evs.get".into(),
        fault: Fault::Status429,
        count: 5,
    });
    let mut cfg = cloud_config(&sim, crate::helpers::password_auth(&sim));
    cfg.rate.throttle_retries = 1;
    let e = CloudClient::new(&cfg)
        .unwrap()
        .evs_get_group("g1")
        .await
        .unwrap_err();
    assert_eq!(
        (e.status, e.code.as_deref()),
        (Some(429), Some("APIG.0308"))
    );
    assert!(!retryable(&e), "{e}");
    let gets = calls(&sim)
        .into_iter()
        .filter(|(endpoint, _)| endpoint == "evs.get")
        .count();
    assert_eq!(gets, 2, "sent once, and once more after the first 429");
}

/// A gateway that lets 5 requests a second through: a client without a
/// budget is throttled (and still gets every answer); a client whose budget
/// stays under the gateway's is never throttled.
#[tokio::test]
async fn a_request_budget_keeps_the_client_under_the_gateway_s_limit() {
    let sim = start_sim(config()).await;
    let mut faults = drover::sim::faults::Faults::default();
    faults.rules.insert(
        "*".into(),
        drover::sim::faults::FaultRule {
            per_second: Some(5),
            ..Default::default()
        },
    );
    sim.sim.set_faults(faults).unwrap();
    let throttled = |sim: &crate::helpers::Sim| {
        sim.sim
            .journal()
            .iter()
            .filter(|e| e.status == Some(429))
            .count()
    };
    let burst = async |client: &CloudClient| {
        let gets = (0..12).map(|_| client.evs_get_group("g1"));
        for got in futures_util::future::join_all(gets).await {
            got.unwrap();
        }
    };
    let unbudgeted = client(&sim);
    burst(&unbudgeted).await;
    let before = throttled(&sim);
    assert!(
        before > 0,
        "the gateway throttled a client without a budget"
    );
    let mut cfg = cloud_config(&sim, crate::helpers::password_auth(&sim));
    cfg.rate.evs = Some(4.0);
    cfg.rate.burst = Some(1);
    let budgeted = CloudClient::new(&cfg).unwrap();
    // A second for the gateway's window to pass (the first client's last
    // requests are in it), then 12 requests at 4 a second.
    tokio::time::sleep(Duration::from_secs(1)).await;
    burst(&budgeted).await;
    assert_eq!(
        throttled(&sim),
        before,
        "the budgeted client was never throttled"
    );
}

/// Listing follows every page (the services answer at most 1,000 groups a
/// request) and passes the filters: status, production AZ, name.
#[tokio::test]
async fn group_lists_follow_every_page_and_filter() {
    let evs: Vec<String> = (1..=2_100).map(|i| format!("g{i:04}")).collect();
    let sdrs: Vec<String> = (1..=1_500).map(|i| format!("pg{i:04}")).collect();
    let sim = start_sim(SimConfig {
        evs_groups: evs.clone(),
        sdrs_groups: sdrs.clone(),
        ..config()
    })
    .await;
    sim.sim.add_evs_group("other-az", "eu-de-02", "eu-de-01");
    let c = client(&sim);
    let all = c.evs_list_groups(&Default::default()).await.unwrap();
    assert_eq!(all.len(), 2_101);
    let in_az1 = drover::cloud::resource::GroupFilter {
        production_az: Some("eu-de-01".into()),
        ..Default::default()
    };
    let ids: Vec<String> = c
        .evs_list_groups(&in_az1)
        .await
        .unwrap()
        .into_iter()
        .map(|g| g.id)
        .collect();
    assert!(!ids.contains(&"other-az".to_string()));
    assert!(evs.iter().all(|g| ids.contains(g)), "every page was read");
    let pages = calls(&sim)
        .iter()
        .filter(|(endpoint, _)| endpoint == "evs.list")
        .count();
    assert_eq!(pages, 3 + 3, "three pages for each listing");
    let queries: Vec<String> = sim
        .sim
        .journal()
        .into_iter()
        .filter(|e| e.endpoint == "evs.list")
        .filter_map(|e| e.query)
        .collect();
    assert!(
        queries
            .iter()
            .any(|q| q.contains("priority_station=eu-de-01") && q.contains("marker=")),
        "{queries:?}"
    );

    let protected = c.sdrs_list_groups(&Default::default()).await.unwrap();
    assert_eq!(protected.len(), 1_500);
    let named = drover::cloud::resource::GroupFilter {
        name: Some("pg14".into()),
        status: Some("protected".into()),
        ..Default::default()
    };
    let found = c.sdrs_list_groups(&named).await.unwrap();
    assert!(
        !found.is_empty()
            && found
                .iter()
                .all(|g| g.name.as_deref().is_some_and(|n| n.contains("pg14")))
    );
}

/// The drill list follows every page too (by offset until `count` are
/// read), with the group filter on each page.
#[tokio::test]
async fn drill_lists_follow_every_page() {
    let sim = start_sim(config()).await;
    sim.sim.with_sdrs(|s| {
        for i in 0..1_100 {
            let id = format!("d{i:05}");
            s.drills.insert(
                id.clone(),
                drover::sim::sdrs::Drill {
                    id,
                    name: format!("drill-{i}"),
                    status: "available",
                    server_group_id: if i % 20 == 0 { "pg2" } else { "pg1" }.into(),
                    drill_vpc_id: "vpc".into(),
                    created: Duration::ZERO,
                    updated: Duration::ZERO,
                },
            );
        }
    });
    let c = client(&sim);
    let drills = c.sdrs_list_drills(Some("pg1"), None).await.unwrap();
    assert_eq!(drills.len(), 1_045, "1,100 drills less every twentieth");
    let all = c.sdrs_list_drills(None, None).await.unwrap();
    assert_eq!(all.len(), 1_100);
    let one = c.sdrs_list_drills(None, Some("drill-1")).await.unwrap();
    assert_eq!(one.len(), 1, "fuzzy matches are dropped");
    let offsets: Vec<String> = sim
        .sim
        .journal()
        .into_iter()
        .filter(|e| e.endpoint == "sdrs.drill.list")
        .filter_map(|e| e.query)
        .collect();
    assert!(
        offsets
            .iter()
            .any(|q| q.contains("offset=1000") && q.contains("server_group_id=pg1")),
        "{offsets:?}"
    );
}

/// Only IAM configured, in the form copied from `clouds.yaml` (`.../v3`):
/// the EVS and SDRS endpoints come from the token's catalog for the region;
/// with every endpoint configured the token is asked for without a catalog.
#[tokio::test]
async fn endpoints_come_from_the_catalog_when_only_iam_is_configured() {
    let sim = start_sim(config()).await;
    let creds = sim.sim.credentials();
    let text = format!(
        "cloud:\n  region: eu-de\n  iam_endpoint: {}/v3/\n  auth: {{ method: password, user: {}, domain: {} }}\n",
        sim.url, creds.user, creds.domain
    );
    let env = [(
        "DROVER_CLOUD__AUTH__PASSWORD".to_string(),
        creds.password.clone(),
    )]
    .into();
    let config =
        drover::config::Config::parse(&text, std::path::Path::new("drover.yaml"), &env).unwrap();
    assert_eq!(config.cloud.iam_endpoint, sim.url, "`/v3/` is taken off");
    assert_eq!(config.cloud.evs_endpoint, None);
    let c = CloudClient::new(&config.cloud).unwrap();
    // Without the catalog these would go to the public OTC hosts, which this
    // machine cannot reach: answers prove the catalog was used.
    assert_eq!(c.evs_get_group("g1").await.unwrap().status, "available");
    assert_eq!(c.sdrs_get_group("pg1").await.unwrap().id, "pg1");
    let journal = sim.sim.journal();
    let token = journal.iter().find(|e| e.endpoint == "iam.token").unwrap();
    assert!(token.query.is_none(), "{:?}", token.query);
    assert_eq!(
        journal.iter().filter(|e| e.endpoint == "iam.token").count(),
        1,
        "one token serves both"
    );

    // Every endpoint configured (in pasted forms): no catalog asked for.
    let before = journal.len();
    let text = format!(
        "cloud:\n  iam_endpoint: {url}/v3\n  evs_endpoint: {url}/v2/{p}\n  sdrs_endpoint: {url}/v1/{{project_id}}/\n  auth: {{ method: password, user: {}, domain: {} }}\n",
        creds.user,
        creds.domain,
        url = sim.url,
        p = creds.project_id
    );
    let config =
        drover::config::Config::parse(&text, std::path::Path::new("drover.yaml"), &env).unwrap();
    assert_eq!(config.cloud.evs_endpoint.as_deref(), Some(sim.url.as_str()));
    let c = CloudClient::new(&config.cloud).unwrap();
    c.evs_get_group("g1").await.unwrap();
    let journal = sim.sim.journal();
    let token = journal[before..]
        .iter()
        .find(|e| e.endpoint == "iam.token")
        .unwrap();
    assert!(
        token
            .query
            .as_deref()
            .is_some_and(|q| q.contains("nocatalog")),
        "{:?}",
        token.query
    );

    // A path that is no service root is refused, showing the form expected.
    let bad = drover::config::Config::parse(
        "cloud:\n  evs_endpoint: https://evs.eu-de.otc.t-systems.com/v2/p/os-vendor-replication-consistency-groups\n",
        std::path::Path::new("drover.yaml"),
        &Default::default(),
    )
    .unwrap_err();
    let text = bad[0].to_string();
    assert!(
        text.contains("drover.yaml:2:17")
            && text.contains("cloud.evs_endpoint")
            && text
                .contains("expected a service root such as `https://evs.eu-de.otc.t-systems.com`"),
        "{text}"
    );
}

/// An OpenStack user's setup and nothing else: a `clouds.yaml` (password,
/// project by name; or AK/SK with endpoint overrides) picked by `OS_CLOUD`,
/// or the `OS_*` variables, and a config naming only the database and the
/// runbooks. `drover run` switches a group over with each.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn runbooks_run_with_openstack_credentials_alone() {
    let sim = start_sim(SimConfig {
        evs_groups: vec!["g1".into(), "g2".into(), "g3".into()],
        transition: Duration::from_millis(100),
        ..SimConfig::default()
    })
    .await;
    let creds = sim.sim.credentials();
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("drover.yaml");
    std::fs::write(
        &config,
        format!(
            "database: {{ url: \"sqlite://{}\" }}\nrunbooks: {{ dir: \"{}\" }}\n",
            dir.path().join("audit.db").display(),
            crate::helpers::repo("runbooks").display()
        ),
    )
    .unwrap();
    let clouds = dir.path().join("clouds.yaml");
    std::fs::write(
        &clouds,
        format!(
            "clouds:\n  sim:\n    region_name: eu-de\n    auth:\n      auth_url: {url}/v3\n      username: {}\n      password: {}\n      user_domain_name: {}\n      project_name: {}\n  sim-keys:\n    region_name: eu-de\n    volumev2_endpoint_override: {url}/v2/$(project_id)s\n    sdrs_endpoint_override: {url}/v1/$(project_id)s\n    auth:\n      auth_url: {url}/v3\n      ak: {}\n      sk: {}\n      project_id: {}\n",
            creds.user,
            creds.password,
            creds.domain,
            creds.project_name,
            creds.access_key,
            creds.secret_key,
            creds.project_id,
            url = sim.url
        ),
    )
    .unwrap();
    let run = |group: &str, env: &[(&str, &str)]| {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_drover"))
            .args([
                "run",
                "evs-switchover",
                "-p",
                &format!("group_id={group}"),
                "--approve",
                "alice",
                "--config",
            ])
            .arg(&config)
            .envs(env.iter().copied())
            .current_dir(dir.path())
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout).to_string();
        assert!(
            out.status.success(),
            "{env:?}: {text}{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(text.contains("production is now in eu-de-02"), "{text}");
        let stderr = String::from_utf8_lossy(&out.stderr);
        for secret in [&creds.password, &creds.secret_key] {
            assert!(
                !text.contains(secret.as_str()) && !stderr.contains(secret.as_str()),
                "a secret in the output"
            );
        }
    };
    let file = clouds.display().to_string();
    let journal = |from: usize| sim.sim.journal()[from..].to_vec();

    run(
        "g1",
        &[("OS_CLOUD", "sim"), ("OS_CLIENT_CONFIG_FILE", &file)],
    );
    let seen = journal(0);
    let token = seen.iter().find(|e| e.endpoint == "iam.token").unwrap();
    assert_eq!(
        token.body["auth"]["scope"]["project"]["name"], creds.project_name,
        "the project by name"
    );
    assert!(
        seen.iter()
            .filter(|e| e.endpoint == "evs.action")
            .all(|e| e.auth == "token")
    );

    let from = sim.sim.journal().len();
    run(
        "g2",
        &[("OS_CLOUD", "sim-keys"), ("OS_CLIENT_CONFIG_FILE", &file)],
    );
    let seen = journal(from);
    assert!(
        seen.iter().all(|e| e.endpoint != "iam.token"),
        "no token with AK/SK"
    );
    assert!(
        seen.iter()
            .filter(|e| e.endpoint == "evs.action")
            .all(|e| e.auth == "aksk")
    );

    let from = sim.sim.journal().len();
    let auth_url = format!("{}/v3", sim.url);
    run(
        "g3",
        &[
            ("OS_AUTH_URL", &auth_url),
            ("OS_USERNAME", &creds.user),
            ("OS_PASSWORD", &creds.password),
            ("OS_USER_DOMAIN_NAME", &creds.domain),
            ("OS_PROJECT_NAME", &creds.project_name),
            ("OS_REGION_NAME", "eu-de"),
        ],
    );
    assert!(
        journal(from)
            .iter()
            .any(|e| e.endpoint == "evs.action" && e.auth == "token")
    );
    for e in sim.sim.journal() {
        assert!(!e.body.to_string().contains(&creds.secret_key));
    }
    // Nor in the audit database (its files, write-ahead log included).
    for entry in std::fs::read_dir(dir.path()).unwrap() {
        let path = entry.unwrap().path();
        if path
            .file_name()
            .unwrap()
            .to_string_lossy()
            .starts_with("audit.db")
        {
            let bytes = std::fs::read(&path).unwrap();
            for secret in [&creds.password, &creds.secret_key] {
                assert!(
                    !bytes.windows(secret.len()).any(|w| w == secret.as_bytes()),
                    "{} holds a secret",
                    path.display()
                );
            }
        }
    }
}
