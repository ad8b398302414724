//! The engine against the simulator: shipped runbooks under injected faults,
//! exactly-once mutating calls (ambiguous answers, crashes at the worst
//! moment, a killed process), dry runs, leases, the audit trail and secrets.
//! Polling and backoff run in paused tokio time.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use drover::cloud::CloudClient;
use drover::engine::{Approvals, Engine, RunEvent, RunRequest, RunSummary};
use drover::runbook::{self, Runbook};
use drover::sim::SimConfig;
use drover::sim::faults::{Fault, FaultRule, Faults, Forced};
use drover::store::Store;
use tokio_util::sync::CancellationToken;

use crate::helpers::{Sim, cloud_config, password_auth, repo, start_sim};

pub struct Harness {
    pub sim: Sim,
    pub store: Store,
    pub db: std::path::PathBuf,
    pub events: Arc<Mutex<Vec<RunEvent>>>,
    _dir: tempfile::TempDir,
}

pub async fn harness(config: SimConfig) -> Harness {
    let sim = start_sim(SimConfig {
        evs_groups: vec!["g1".into()],
        sdrs_groups: vec!["pg1".into()],
        ..config
    })
    .await;
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("audit.db");
    let store = Store::open(&format!("sqlite://{}", db.display()))
        .await
        .unwrap();
    Harness {
        sim,
        store,
        db,
        events: Arc::new(Mutex::new(Vec::new())),
        _dir: dir,
    }
}

impl Harness {
    pub fn engine(&self) -> Engine<CloudClient> {
        let client = CloudClient::new(&cloud_config(&self.sim, password_auth(&self.sim))).unwrap();
        let events = self.events.clone();
        Engine::new(
            Arc::new(client),
            self.store.clone(),
            Arc::new(move |e: &RunEvent| events.lock().unwrap().push(e.clone())),
            Approvals::Given(vec!["tester".into()]),
        )
        .with_env(BTreeMap::new())
    }

    pub async fn run(&self, runbook: &str, params: &[(&str, &str)]) -> RunSummary {
        self.engine()
            .run(request(runbook, params), &CancellationToken::new())
            .await
            .unwrap()
    }

    /// Journal entries of `endpoint` that changed simulator state.
    pub fn changes(&self, endpoint: &str) -> usize {
        self.sim
            .sim
            .journal()
            .iter()
            .filter(|e| e.endpoint == endpoint && e.changed)
            .count()
    }

    pub fn events(&self) -> Vec<RunEvent> {
        self.events.lock().unwrap().clone()
    }
}

pub fn shipped(name: &str) -> Runbook {
    runbook::load(&repo(&format!("runbooks/{name}.yaml"))).unwrap()
}

/// A CLI run of a shipped runbook by alice.
pub fn request(runbook: &str, params: &[(&str, &str)]) -> RunRequest {
    with_params(shipped(runbook), params)
}

/// A CLI run of `runbook` by alice.
pub fn with_params(runbook: runbook::Runbook, params: &[(&str, &str)]) -> RunRequest {
    RunRequest {
        runbook,
        params: params
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
        trigger: drover::store::Trigger::Cli,
        requested_by: "alice".into(),
        idempotency: None,
        dry_run: false,
        fire: None,
    }
}

fn thirty_percent_faults() -> Faults {
    let mut faults = Faults::default();
    faults.rules.insert(
        "*".into(),
        FaultRule {
            p408: 0.075,
            p502: 0.075,
            p503: 0.075,
            p504: 0.075,
            ..FaultRule::default()
        },
    );
    faults
}

#[tokio::test(start_paused = true)]
async fn every_shipped_runbook_succeeds_under_thirty_percent_faults() {
    // runbook, params, the endpoint of its mutation, how many it must accept
    type Case<'a> = (&'a str, &'a [(&'a str, &'a str)], &'a str, usize);
    let cases: [Case; 6] = [
        ("evs-switchover", &[("group_id", "g1")], "evs.action", 1),
        ("evs-failover", &[("group_id", "g1")], "evs.action", 1),
        (
            "evs-round-trip-drill",
            &[("group_id", "g1")],
            "evs.action",
            2,
        ),
        ("sdrs-switchover", &[("group_id", "pg1")], "sdrs.action", 1),
        ("sdrs-failover", &[("group_id", "pg1")], "sdrs.action", 1),
        (
            "sdrs-drill",
            &[("group_id", "pg1"), ("hold", "30s")],
            "sdrs.drill.create",
            1,
        ),
    ];
    let (mut requests, mut faults, mut retries) = (0, 0, 0);
    for (seed, (name, params, mutation, expected)) in cases.into_iter().enumerate() {
        let h = harness(SimConfig {
            faults: thirty_percent_faults(),
            seed: 100 + seed as u64,
            ..SimConfig::default()
        })
        .await;
        let summary = h.run(name, params).await;
        assert_eq!(summary.status, "succeeded", "{name}: {:?}", summary.error);
        assert_eq!(
            h.changes(mutation),
            expected,
            "{name}: each action accepted exactly once"
        );
        let journal = h.sim.sim.journal();
        requests += journal.len();
        faults += journal.iter().filter(|e| e.fault.is_some()).count();
        retries += h
            .events()
            .iter()
            .filter(|e| matches!(e, RunEvent::Retrying { .. }))
            .count();
    }
    // About 30% of all requests were faulted, and every one was retried.
    assert!(
        faults * 100 >= requests * 15 && faults * 100 <= requests * 45,
        "{faults} faults in {requests} requests"
    );
    assert!(retries >= faults, "{retries} retries for {faults} faults");
}

#[tokio::test(start_paused = true)]
async fn switchover_ends_active_and_failover_ends_active_stopped() {
    let h = harness(SimConfig::default()).await;
    assert_eq!(
        h.run("evs-switchover", &[("group_id", "g1")]).await.status,
        "succeeded"
    );
    let (status, repl, station) = h
        .sim
        .sim
        .with_evs_group("g1", |g| {
            (g.status, g.replication_status, g.priority_station.clone())
        })
        .unwrap();
    assert_eq!(
        (status.as_str(), repl.as_str(), station.as_str()),
        ("available", "active", "eu-de-02")
    );

    let h = harness(SimConfig::default()).await;
    assert_eq!(
        h.run("evs-failover", &[("group_id", "g1")]).await.status,
        "succeeded"
    );
    let (status, repl) = h
        .sim
        .sim
        .with_evs_group("g1", |g| (g.status, g.replication_status))
        .unwrap();
    assert_eq!(
        (status.as_str(), repl.as_str()),
        ("failovered", "active-stopped")
    );
}

#[tokio::test(start_paused = true)]
async fn failover_at_fault_level_5_sends_nothing() {
    let h = harness(SimConfig::default()).await;
    h.sim.sim.with_evs_group("g1", |g| {
        g.fault_level = drover::runbook::model::FaultLevel::LinkDown
    });
    let summary = h.run("evs-failover", &[("group_id", "g1")]).await;
    assert_eq!(summary.status, "failed");
    assert!(
        summary
            .error
            .as_deref()
            .unwrap()
            .contains("fault_level is 5, expected 0 or 2"),
        "{:?}",
        summary.error
    );
    let mutating = h
        .sim
        .sim
        .journal()
        .iter()
        .filter(|e| e.method != "GET" && e.endpoint != "iam.token")
        .count();
    assert_eq!(mutating, 0, "no mutating request");
}

#[tokio::test(start_paused = true)]
async fn an_ambiguous_switchover_is_reconciled_not_resent() {
    let h = harness(SimConfig::default()).await;
    h.sim.sim.force(Forced {
        endpoint: "evs.action".into(),
        fault: Fault::Ambiguous,
        count: 1,
    });
    let summary = h.run("evs-switchover", &[("group_id", "g1")]).await;
    assert_eq!(summary.status, "succeeded", "{:?}", summary.error);
    let actions: Vec<_> = h
        .sim
        .sim
        .journal()
        .into_iter()
        .filter(|e| e.endpoint == "evs.action")
        .collect();
    assert_eq!(actions.len(), 1, "one switchover request in all");
    assert_eq!(
        (actions[0].status, actions[0].changed),
        (Some(504), true),
        "it acted and answered 504"
    );
    assert!(
        h.events()
            .iter()
            .any(|e| matches!(e, RunEvent::Reconciled { outcome, .. } if *outcome == drover::store::IntentOutcome::Applied))
    );
    let attempts = h.store.attempts(&summary.run_id).await.unwrap();
    let intent = attempts
        .iter()
        .find(|a| a.kind == drover::store::AttemptKind::Intent)
        .unwrap();
    assert_eq!(
        intent.outcome.as_deref(),
        Some("applied"),
        "the intent is settled by the reconciliation"
    );
    assert!(intent.pre_image.as_ref().unwrap()["status"] == "available");
}

#[tokio::test(start_paused = true)]
async fn a_lost_answer_that_did_not_act_is_sent_again_once() {
    let h = harness(SimConfig::default()).await;
    h.sim.sim.force(Forced {
        endpoint: "evs.action".into(),
        fault: Fault::Status504,
        count: 1,
    });
    let summary = h.run("evs-switchover", &[("group_id", "g1")]).await;
    assert_eq!(summary.status, "succeeded");
    let actions: Vec<_> = h
        .sim
        .sim
        .journal()
        .into_iter()
        .filter(|e| e.endpoint == "evs.action")
        .map(|e| (e.status, e.changed))
        .collect();
    assert_eq!(actions, [(Some(504), false), (Some(200), true)]);
    assert!(
        h.events()
            .iter()
            .any(|e| matches!(e, RunEvent::Reconciled { outcome, .. } if *outcome == drover::store::IntentOutcome::NotApplied))
    );
    // The retry names the request it counts: the POST, not the re-read.
    let retries: Vec<(String, String, u32)> = h
        .events()
        .into_iter()
        .filter_map(|e| match e {
            RunEvent::Retrying {
                step_id,
                request,
                attempt,
                ..
            } => Some((step_id, request, attempt)),
            _ => None,
        })
        .collect();
    assert_eq!(
        retries,
        [(
            "switchover".to_string(),
            "POST os-vendor-replication-consistency-groups/g1/action".to_string(),
            1
        )]
    );
}

#[tokio::test(start_paused = true)]
async fn client_errors_are_never_retried() {
    for (fault, status) in [
        (Fault::Status400, 400),
        (Fault::Status403, 403),
        (Fault::Status404, 404),
        (Fault::Status409, 409),
    ] {
        let h = harness(SimConfig::default()).await;
        h.sim.sim.force(Forced {
            endpoint: "evs.get".into(),
            fault,
            count: 1,
        });
        let summary = h.run("evs-switchover", &[("group_id", "g1")]).await;
        assert_eq!(summary.status, "failed", "{status}");
        let gets: Vec<_> = h
            .sim
            .sim
            .journal()
            .into_iter()
            .filter(|e| e.endpoint == "evs.get")
            .map(|e| e.status)
            .collect();
        assert_eq!(
            gets,
            [Some(status)],
            "{status} is answered once and not retried"
        );
        assert!(
            summary
                .error
                .as_deref()
                .unwrap()
                .contains(&format!("answered {status}")),
            "{:?}",
            summary.error
        );
    }
    // A refusal of the mutating call itself is not retried either.
    let h = harness(SimConfig::default()).await;
    h.sim.sim.force(Forced {
        endpoint: "evs.action".into(),
        fault: Fault::Status409,
        count: 1,
    });
    let summary = h.run("evs-switchover", &[("group_id", "g1")]).await;
    assert_eq!(summary.status, "failed");
    assert_eq!(
        h.sim
            .sim
            .journal()
            .iter()
            .filter(|e| e.endpoint == "evs.action")
            .count(),
        1
    );
}

#[tokio::test(start_paused = true)]
async fn dry_run_sends_no_change_and_records_what_it_would_send() {
    let h = harness(SimConfig::default()).await;
    let summary = h
        .engine()
        .run(
            RunRequest {
                dry_run: true,
                ..request("evs-switchover", &[("group_id", "g1")])
            },
            &CancellationToken::new(),
        )
        .await
        .unwrap();
    assert_eq!(summary.status, "succeeded", "{:?}", summary.error);
    assert!(summary.dry_run);
    let journal = h.sim.sim.journal();
    let non_get: Vec<_> = journal
        .iter()
        .filter(|e| e.method != "GET" && e.endpoint != "iam.token")
        .collect();
    assert!(
        non_get.is_empty(),
        "only GETs (and the token request) left the process: {non_get:?}"
    );
    assert!(
        journal
            .iter()
            .all(|e| !e.changed || e.endpoint == "iam.token")
    );
    let attempts = h.store.attempts(&summary.run_id).await.unwrap();
    let would: Vec<_> = attempts
        .iter()
        .filter(|a| a.kind == drover::store::AttemptKind::WouldSend)
        .collect();
    assert_eq!(would.len(), 1);
    assert!(
        would[0]
            .request
            .contains("/os-vendor-replication-consistency-groups/g1/action"),
        "{}",
        would[0].request
    );
    assert!(
        h.events()
            .iter()
            .any(|e| matches!(e, RunEvent::WouldSend { .. }))
    );
    assert_eq!(
        h.sim.sim.with_evs_group("g1", |g| g.status.as_str()),
        Some("available")
    );
}

#[tokio::test(start_paused = true)]
async fn a_second_run_on_the_same_group_is_refused() {
    let h = harness(SimConfig::default()).await;
    let engine = h.engine();
    let first = engine
        .start(request("evs-switchover", &[("group_id", "g1")]))
        .await
        .unwrap();
    let err = engine
        .start(request("evs-round-trip-drill", &[("group_id", "g1")]))
        .await
        .unwrap_err()
        .to_string();
    assert!(
        err.contains(&format!("evs:g1 is in use by run {first}")),
        "{err}"
    );
    // Leases are on the canonical id: another spelling of g1 is g1.
    let err = engine
        .start(request("evs-failover", &[("group_id", "G1")]))
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains(&format!("in use by run {first}")), "{err}");
    // Another group is free.
    h.sim.sim.add_evs_group("g2", "eu-de-01", "eu-de-02");
    engine
        .start(request("evs-switchover", &[("group_id", "g2")]))
        .await
        .unwrap();
    // When the first run ends its lease is released.
    engine
        .execute(&first, &CancellationToken::new())
        .await
        .unwrap();
    engine
        .start(request("evs-round-trip-drill", &[("group_id", "g1")]))
        .await
        .unwrap();
}

#[tokio::test(start_paused = true)]
async fn sdrs_job_failure_fails_the_step_with_code_and_reason() {
    let h = harness(SimConfig::default()).await;
    h.sim
        .sim
        .with_sdrs(|s| s.groups.get_mut("pg1").unwrap().fail_next = true);
    let summary = h.run("sdrs-switchover", &[("group_id", "pg1")]).await;
    assert_eq!(summary.status, "failed");
    let error = summary.error.unwrap();
    assert!(
        error.contains("reverseProtectionGroupNoCG") && error.contains("SDRS.1029"),
        "{error}"
    );
}

#[tokio::test(start_paused = true)]
async fn the_drill_is_deleted_even_when_a_check_fails() {
    let h = harness(SimConfig::default()).await;
    // Production breaks during the drill, as soon as the drill exists: the
    // check fails, finally still deletes the drill.
    let sim = h.sim.sim.clone();
    let breaks_production = Arc::new(move |e: &RunEvent| {
        if matches!(e, RunEvent::StepFinished { step_id, .. } if step_id == "create_drill") {
            sim.with_sdrs(|s| {
                s.groups.get_mut("pg1").unwrap().status =
                    drover::runbook::model::SdrsStatus::ErrorReversing
            });
        }
    });
    let client = CloudClient::new(&cloud_config(&h.sim, password_auth(&h.sim))).unwrap();
    let summary = Engine::new(
        Arc::new(client),
        h.store.clone(),
        breaks_production,
        Approvals::Given(vec!["tester".into()]),
    )
    .run(
        request("sdrs-drill", &[("group_id", "pg1")]),
        &CancellationToken::new(),
    )
    .await
    .unwrap();
    assert_eq!(summary.status, "failed");
    let steps: BTreeMap<_, _> = summary.steps.into_iter().collect();
    assert_eq!(steps["check_production"], "failed");
    assert_eq!(steps["hold"], "skipped");
    assert_eq!(steps["delete_drill"], "succeeded");
    assert!(
        h.sim.sim.with_sdrs(|s| s.drills.is_empty()),
        "the drill was deleted"
    );
}

#[tokio::test(start_paused = true)]
async fn the_audit_trail_verifies_names_a_tampered_event_and_holds_no_secret() {
    let h = harness(SimConfig {
        faults: thirty_percent_faults(),
        ..SimConfig::default()
    })
    .await;
    let summary = h.run("evs-switchover", &[("group_id", "g1")]).await;
    assert_eq!(summary.status, "succeeded");
    let count = h.store.verify().await.unwrap().unwrap();
    assert!(count > 10, "{count} events");

    // No secret in the database files: the simulator's password, and no token.
    let mut bytes = Vec::new();
    for suffix in ["", "-wal"] {
        let path = format!("{}{suffix}", h.db.display());
        bytes.extend(std::fs::read(&path).unwrap_or_default());
    }
    let text = String::from_utf8_lossy(&bytes);
    assert!(
        !text.contains("sim-password"),
        "the cloud password is not stored"
    );
    assert!(!text.contains("MIIsim"), "no token is stored");

    h.store
        .execute_unchecked("UPDATE audit_events SET actor = 'mallory' WHERE seq = 4")
        .await
        .unwrap();
    let broken = h.store.verify().await.unwrap().unwrap_err();
    assert_eq!(broken.seq, 4);
}

#[tokio::test(start_paused = true)]
async fn every_remaining_action_works_and_the_webhook_gets_the_outcome() {
    use axum::routing::post;
    let h = harness(SimConfig::default()).await;
    // A webhook receiver capturing what `finally` posts.
    let received: Arc<Mutex<Vec<(String, serde_json::Value)>>> = Arc::default();
    let sink = received.clone();
    let app = axum::Router::new().route(
        "/hook",
        post(
            move |headers: axum::http::HeaderMap, body: axum::Json<serde_json::Value>| {
                let sink = sink.clone();
                async move {
                    let drill = headers
                        .get("x-drill")
                        .and_then(|v| v.to_str().ok())
                        .unwrap_or_default()
                        .to_string();
                    sink.lock().unwrap().push((drill, body.0));
                    "ok"
                }
            },
        ),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let hook = format!("http://{}/hook", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });

    let engine = h
        .engine()
        .with_env([("DROVER_WEBHOOK_URL".to_string(), hook)].into());
    let runbook = runbook::load(&repo("tests/fixtures/runbooks/every-action.yaml")).unwrap();
    let status_url = format!("{}/_sim/faults", h.sim.url);
    let params = [
        ("group_id", "g1"),
        ("pg_id", "pg1"),
        ("status_url", status_url.as_str()),
    ];
    let start = tokio::time::Instant::now();
    let summary = engine
        .run(with_params(runbook, &params), &CancellationToken::new())
        .await
        .unwrap();
    assert_eq!(summary.status, "succeeded", "{:?}", summary.error);
    assert!(
        start.elapsed() >= Duration::from_secs(90),
        "the sleep step slept (in paused time)"
    );
    let bodies: Vec<_> = h
        .sim
        .sim
        .journal()
        .into_iter()
        .filter(|e| e.changed && e.endpoint != "iam.token")
        .map(|e| e.body.to_string())
        .collect();
    for key in [
        "os-stop-",
        "os-sync-",
        "os-failover-",
        "os-reprotect-",
        "stop-server-group",
        "start-server-group",
    ] {
        assert_eq!(
            bodies.iter().filter(|b| b.contains(key)).count(),
            1,
            "{key} sent once: {bodies:?}"
        );
    }
    let received = received.lock().unwrap().clone();
    assert_eq!(received.len(), 1, "the webhook was called once");
    assert_eq!(received[0].0, "every-action", "headers are rendered");
    assert_eq!(
        received[0].1,
        serde_json::json!({"run": summary.run_id, "outcome": "succeeded", "group": "failovered"})
    );
}

#[tokio::test(start_paused = true)]
async fn a_cancelled_run_stops_at_a_step_boundary_and_resumes_later() {
    let h = harness(SimConfig::default()).await;
    let cancel = CancellationToken::new();
    let trigger = cancel.clone();
    let client = CloudClient::new(&cloud_config(&h.sim, password_auth(&h.sim))).unwrap();
    let engine = Engine::new(
        Arc::new(client),
        h.store.clone(),
        Arc::new(move |e: &RunEvent| {
            // The signal arrives while `precheck` runs.
            if matches!(e, RunEvent::StepStarted { step_id, .. } if step_id == "precheck") {
                trigger.cancel();
            }
        }),
        Approvals::Given(vec!["tester".into()]),
    );
    let stopped = engine
        .run(request("evs-switchover", &[("group_id", "g1")]), &cancel)
        .await
        .unwrap();
    assert_eq!(stopped.status, "running", "resumable, not failed");
    let steps: BTreeMap<_, _> = stopped.steps.iter().cloned().collect();
    assert_eq!(
        (steps["precheck"].as_str(), steps["approve"].as_str()),
        ("succeeded", "pending"),
        "the step in progress finished"
    );
    assert_eq!(h.changes("evs.action"), 0);
    assert_eq!(h.store.interrupted_runs().await.unwrap().len(), 1);

    let resumed = h
        .engine()
        .resume_interrupted(&CancellationToken::new())
        .await
        .unwrap();
    assert_eq!(resumed.len(), 1);
    assert_eq!(resumed[0].status, "succeeded");
    assert_eq!(h.changes("evs.action"), 1);
}

#[tokio::test(start_paused = true)]
async fn an_approval_needs_enough_distinct_approvers() {
    let h = harness(SimConfig::default()).await;
    let text = std::fs::read_to_string(repo("runbooks/evs-switchover.yaml"))
        .unwrap()
        .replace("approvers: 1", "approvers: 2");
    let runbook = runbook::parse(&text, std::path::Path::new("two-approvers.yaml")).unwrap();
    let client = CloudClient::new(&cloud_config(&h.sim, password_auth(&h.sim))).unwrap();
    let engine = Engine::new(
        Arc::new(client),
        h.store.clone(),
        Arc::new(|_: &RunEvent| {}),
        Approvals::Given(vec!["tester".into(), "tester".into()]),
    );
    let summary = engine
        .run(
            with_params(runbook, &[("group_id", "g1")]),
            &CancellationToken::new(),
        )
        .await
        .unwrap();
    assert_eq!(summary.status, "failed");
    assert!(
        summary
            .error
            .unwrap()
            .contains("needs 2 distinct approvers, 1 given")
    );
    assert_eq!(h.changes("evs.action"), 0);
}

/// `evs.list_groups` in a run: the groups whose production is in the AZ the
/// parameter names, every page, read through throttling and 503s under the
/// step's retries; `sdrs.list_groups` likewise; the output is stored.
#[tokio::test]
async fn discovery_lists_the_groups_of_an_az_through_faults() {
    let mut config = SimConfig::default();
    config.faults.forced = vec![
        drover::sim::faults::Forced {
            endpoint: "evs.list".into(),
            fault: drover::sim::faults::Fault::Status503,
            count: 1,
        },
        drover::sim::faults::Forced {
            endpoint: "evs.list".into(),
            fault: drover::sim::faults::Fault::Status429,
            count: 1,
        },
    ];
    let h = harness(config).await;
    for i in 1..=1_050 {
        h.sim
            .sim
            .add_evs_group(&format!("g{i:04}"), "eu-de-01", "eu-de-02");
    }
    h.sim.sim.add_evs_group("elsewhere", "eu-de-02", "eu-de-01");
    let rb = crate::safety::runbook_from(
        "discover",
        "name: discover\nkind: maintenance\nparams:\n  az: { required: true }\nretry: { backoff: { initial: 10ms, jitter: none } }\nsteps:\n  - id: evs\n    action: evs.list_groups\n    with: { production_az: \"{{ params.az }}\", status: available }\n  - id: sdrs\n    action: sdrs.list_groups\n    with: { production_az: \"{{ params.az }}\" }\n",
    );
    let summary = h
        .engine()
        .run(
            with_params(rb, &[("az", "eu-de-01")]),
            &CancellationToken::new(),
        )
        .await
        .unwrap();
    assert_eq!(summary.status, "succeeded", "{:?}", summary.error);
    let steps = h.store.steps(&summary.run_id).await.unwrap();
    let evs = steps[0].output.clone().unwrap();
    assert_eq!(
        evs["count"], 1_051,
        "1,050 and the harness's g1 (two pages)"
    );
    let ids = evs["ids"].as_array().unwrap();
    assert!(!ids.iter().any(|id| id == "elsewhere"));
    assert_eq!(evs["groups"][0]["production_az"], "eu-de-01");
    let sdrs = steps[1].output.clone().unwrap();
    assert_eq!(sdrs["ids"], serde_json::json!(["pg1"]));
    assert_eq!(sdrs["groups"][0]["production_az"], "eu-de-01");
    // The 503 was a retry of the step; the 429 was sent again by the client.
    let retried: Vec<_> = h
        .events()
        .into_iter()
        .filter_map(|e| match e {
            RunEvent::Retrying { status, .. } => Some(status),
            _ => None,
        })
        .collect();
    assert_eq!(retried, [Some(503)]);
}

/// A filter rendered from a parameter is checked before it reaches a URL:
/// an AZ with query syntax in it, or a status the groups do not have, fails
/// the step naming the field, and nothing is listed.
#[tokio::test]
async fn discovery_filters_from_parameters_are_checked_before_they_are_sent() {
    let h = harness(SimConfig::default()).await;
    let rb = crate::safety::runbook_from(
        "discover",
        "name: discover\nkind: maintenance\nparams:\n  az: { required: true }\n  status: { default: available }\nsteps:\n  - id: evs\n    action: evs.list_groups\n    with: { production_az: \"{{ params.az }}\", status: \"{{ params.status }}\" }\n",
    );
    for (params, field) in [
        (vec![("az", "eu-de-01&status=error")], "production_az"),
        (vec![("az", "eu-de-01"), ("status", "avialable")], "status"),
    ] {
        let summary = h
            .engine()
            .run(with_params(rb.clone(), &params), &CancellationToken::new())
            .await
            .unwrap();
        assert_eq!(summary.status, "failed");
        let error = summary.error.unwrap_or_default();
        assert!(
            error.contains(&format!("`{field}` rendered from")),
            "{error}"
        );
    }
    let listed = h
        .sim
        .sim
        .journal()
        .iter()
        .filter(|e| e.endpoint == "evs.list")
        .count();
    assert_eq!(listed, 0);
}

/// A wait looks again soon after the call, then less and less often up to
/// its `interval`: a 300 ms switchover is seen ended about half a second
/// after the call, not at the next full interval (10 s here). Real time:
/// paused time jumps ahead while the store writes, which would blur it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_short_transition_is_seen_soon_after_it_ends() {
    let h = harness(SimConfig {
        transition: Duration::from_millis(300),
        ..SimConfig::default()
    })
    .await;
    let text = "name: quick\nkind: switchover\nparams: { group_id: { required: true } }\nsteps:\n  - { id: switch, action: evs.switchover, with: { group: \"{{ params.group_id }}\" } }\n  - id: verify\n    action: evs.wait_group\n    with: { group: \"{{ params.group_id }}\", until: { status: available }, interval: 10s }\n";
    let runbook = runbook::parse(text, std::path::Path::new("quick.yaml")).unwrap();
    let start = std::time::Instant::now();
    let summary = h
        .engine()
        .run(
            with_params(runbook, &[("group_id", "g1")]),
            &CancellationToken::new(),
        )
        .await
        .unwrap();
    assert_eq!(summary.status, "succeeded", "{:?}", summary.error);
    let took = start.elapsed();
    assert!(
        took < Duration::from_secs(5),
        "{took:?}: the wait slept a whole interval"
    );
    let polls = h
        .store
        .attempts(&summary.run_id)
        .await
        .unwrap()
        .into_iter()
        .filter(|a| a.step_id == "verify" && a.kind == drover::store::AttemptKind::Poll)
        .count();
    assert!(
        (1..=2).contains(&polls),
        "pending right after the call, then seen ended: {polls}"
    );
}
