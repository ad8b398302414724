//! Crashes at the worst moments of a switchover, and the resume after them:
//! no second switchover, completed steps not executed again, and the runbook
//! version the run started with. These run in real time: the crash must land
//! while a request is really in flight.

use std::io::{BufRead, BufReader};
use std::process::Stdio;
use std::sync::Arc;
use std::time::Duration;

use drover::cloud::CloudClient;
use drover::engine::{Approvals, Engine, RunEvent, RunRequest};
use drover::runbook;
use drover::sim::SimConfig;
use drover::sim::faults::{Fault, FaultRule, Faults, Forced};
use drover::store::Store;
use tokio_util::sync::CancellationToken;

use crate::engine::{Harness, harness};
use crate::helpers::{cloud_config, drover_with, password_auth, repo, write_config};

fn slow(endpoint: &str, ms: u64) -> Faults {
    let mut faults = Faults::default();
    faults.rules.insert(
        endpoint.into(),
        FaultRule {
            latency_ms: ms,
            ..FaultRule::default()
        },
    );
    faults
}

/// Waits until step `switchover` has an intent whose outcome is `outcome`.
async fn wait_for_intent(store: &Store, run_id: &str, outcome: Option<&str>) {
    for _ in 0..500 {
        let attempts = store.attempts(run_id).await.unwrap();
        if attempts.iter().any(|a| {
            a.step_id == "switchover"
                && a.kind == drover::store::AttemptKind::Intent
                && a.outcome.as_deref() == outcome
        }) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("no intent with outcome {outcome:?} appeared");
}

fn engine(h: &Harness, events: Arc<std::sync::Mutex<Vec<RunEvent>>>) -> Engine<CloudClient> {
    let client = CloudClient::new(&cloud_config(&h.sim, password_auth(&h.sim))).unwrap();
    Engine::new(
        Arc::new(client),
        h.store.clone(),
        Arc::new(move |e: &RunEvent| events.lock().unwrap().push(e.clone())),
        Approvals::Given(vec!["tester".into()]),
    )
    .with_in_flight_grace(Duration::from_secs(3))
}

#[tokio::test]
async fn a_crash_right_after_the_intent_is_resumed_without_a_second_switchover() {
    let h = harness(SimConfig {
        transition: Duration::from_millis(200),
        faults: slow("evs.action", 1_500),
        ..SimConfig::default()
    })
    .await;
    // The run uses its own copy of the runbook, which is changed before the resume.
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("evs-switchover.yaml");
    std::fs::copy(repo("runbooks/evs-switchover.yaml"), &file).unwrap();
    let request = RunRequest {
        runbook: runbook::load(&file).unwrap(),
        params: [("group_id".to_string(), "g1".to_string())].into(),
        trigger: drover::store::Trigger::Cli,
        requested_by: "alice".into(),
        idempotency: None,
        dry_run: false,
        fire: None,
    };
    let first = engine(&h, Arc::default());
    let run_id = first.start(request).await.unwrap();
    let id = run_id.clone();
    let task = tokio::spawn(async move { first.execute(&id, &CancellationToken::new()).await });
    wait_for_intent(&h.store, &run_id, None).await;
    task.abort(); // the process dies with the request in flight
    let _ = task.await;

    std::fs::write(
        &file,
        std::fs::read_to_string(&file).unwrap().replace(
            "until: { status: available, replication_status: active }",
            "until: { status: failovered }",
        ),
    )
    .unwrap();
    let events = Arc::new(std::sync::Mutex::new(Vec::new()));
    let summary = engine(&h, events.clone())
        .execute(&run_id, &CancellationToken::new())
        .await
        .unwrap();
    assert_eq!(
        summary.status, "succeeded",
        "{:?} (the stored runbook version is used, not the edited file)",
        summary.error
    );
    assert_eq!(h.changes("evs.action"), 1, "exactly one switchover acted");
    let events = events.lock().unwrap().clone();
    for done in ["precheck", "approve"] {
        assert!(
            events
                .iter()
                .any(|e| matches!(e, RunEvent::StepAlreadyDone { step_id, .. } if step_id == done)),
            "{done} not run again"
        );
    }
    assert!(
        events
            .iter()
            .any(|e| matches!(e, RunEvent::Reconciled { .. })),
        "the open intent was reconciled"
    );
    assert!(
        events.iter().any(|e| matches!(e, RunEvent::Note { message, .. } if message.contains("may still have in flight"))),
        "it waited for the in-flight request first"
    );
    assert_eq!(
        h.store.approvals(&run_id).await.unwrap().len(),
        1,
        "approved once"
    );
    assert_eq!(
        h.sim
            .sim
            .with_evs_group("g1", |g| g.priority_station.clone())
            .unwrap(),
        "eu-de-02"
    );
}

#[tokio::test]
async fn a_crash_between_an_ambiguous_answer_and_its_reconciliation() {
    // Reads are slow, so the crash lands between the ambiguous answer and the re-read.
    let h = harness(SimConfig {
        transition: Duration::from_millis(200),
        faults: slow("evs.get", 1_000),
        ..SimConfig::default()
    })
    .await;
    h.sim.sim.force(Forced {
        endpoint: "evs.action".into(),
        fault: Fault::Ambiguous,
        count: 1,
    });
    let first = engine(&h, Arc::default());
    let run_id = first
        .start(crate::engine::request(
            "evs-switchover",
            &[("group_id", "g1")],
        ))
        .await
        .unwrap();
    let sim = h.sim.sim.clone();
    let id = run_id.clone();
    let task = tokio::spawn(async move { first.execute(&id, &CancellationToken::new()).await });
    wait_for_intent(&h.store, &run_id, Some("ambiguous")).await;
    task.abort();
    let _ = task.await;
    sim.set_faults(Faults::default()).unwrap();

    let summary = engine(&h, Arc::default())
        .execute(&run_id, &CancellationToken::new())
        .await
        .unwrap();
    assert_eq!(summary.status, "succeeded", "{:?}", summary.error);
    let actions = h
        .sim
        .sim
        .journal()
        .into_iter()
        .filter(|e| e.endpoint == "evs.action")
        .count();
    assert_eq!(actions, 1, "the ambiguous switchover was not sent again");
    let intent = h
        .store
        .attempts(&run_id)
        .await
        .unwrap()
        .into_iter()
        .find(|a| a.kind == drover::store::AttemptKind::Intent)
        .unwrap();
    assert_eq!(intent.outcome.as_deref(), Some("applied"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_drover_run_process_resumes_with_one_switchover() {
    let h = harness(SimConfig {
        transition: Duration::from_millis(200),
        faults: slow("evs.action", 2_000),
        ..SimConfig::default()
    })
    .await;
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(&h.sim, &h.db, dir.path());
    let drover = |args: &[&str]| drover_with(&config, &h.sim, args);
    let mut child = drover(&[
        "run",
        "evs-switchover",
        "-p",
        "group_id=g1",
        "--approve",
        "tester",
        "--json",
    ])
    .stdout(Stdio::piped())
    .stderr(Stdio::null())
    .spawn()
    .unwrap();
    let stdout = child.stdout.take().unwrap();
    let first_line = tokio::task::spawn_blocking(move || {
        let mut line = String::new();
        BufReader::new(stdout).read_line(&mut line).unwrap();
        line
    })
    .await
    .unwrap();
    let started: serde_json::Value = serde_json::from_str(&first_line).unwrap();
    let run_id = started["run_id"].as_str().unwrap().to_string();
    wait_for_intent(&h.store, &run_id, None).await;
    child.kill().unwrap(); // SIGKILL: no chance to record anything more
    child.wait().unwrap();

    let out = drover(&["run", "--resume", &run_id]).output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}");
    assert!(
        text.contains("precheck           already succeeded (not run again)"),
        "{text}"
    );
    assert!(text.contains("succeeded"), "{text}");
    assert_eq!(h.changes("evs.action"), 1, "exactly one switchover acted");
}
