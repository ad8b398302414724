//! Untrusted input and the promises around it: identifiers checked wherever
//! they enter (parameters, rendered templates, the client), leases on the
//! canonical id, dry runs that hold nothing and wait for nothing, cancels
//! that end sleeps, and upper bounds on durations.

use std::time::Duration;

use drover::engine::RunRequest;
use drover::runbook;
use drover::sim::SimConfig;
use tokio_util::sync::CancellationToken;

use crate::engine::{Harness, harness, request, with_params};
use crate::helpers::client;

/// A runbook from YAML text, as if loaded from `name.yaml`.
pub fn runbook_from(name: &str, text: &str) -> runbook::Runbook {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(format!("{name}.yaml"));
    std::fs::write(&path, text).unwrap();
    runbook::load(&path).unwrap_or_else(|e| panic!("{name}: {e:?}"))
}

fn sent(h: &Harness, endpoint: &str) -> usize {
    h.sim
        .sim
        .journal()
        .iter()
        .filter(|e| e.endpoint == endpoint)
        .count()
}

#[tokio::test]
async fn ids_from_parameters_are_checked_before_the_run_starts() {
    let h = harness(SimConfig::default()).await;
    let engine = h.engine();
    let huge = "g".repeat(1_900_000);
    let cases: &[(&str, &str)] = &[
        ("g2/../g1", "parameter `group_id`"),
        ("g1?x=1", "parameter `group_id`"),
        ("g1/", "parameter `group_id`"),
        ("", "parameter `group_id`"),
        (&huge, "parameter `group_id` has 1900000 characters"),
    ];
    for (value, expected) in cases {
        let err = engine
            .start(request("evs-switchover", &[("group_id", value)]))
            .await
            .unwrap_err()
            .to_string();
        assert!(err.contains(expected), "{value:.20}: {err:.300}");
        assert!(err.len() < 1000, "the message does not echo a huge value");
    }
    assert!(h.store.runs(10).await.unwrap().is_empty(), "no run stored");
    assert!(h.sim.sim.journal().is_empty(), "nothing sent");
}

#[tokio::test]
async fn a_rendered_id_from_a_step_output_is_checked_before_it_is_used() {
    let h = harness(SimConfig::default()).await;
    h.sim.sim.add_sdrs_group("pg2");
    let rb = runbook_from(
        "bad-output",
        "name: bad-output\nkind: maintenance\nsteps:\n  - id: look\n    action: sdrs.check_group\n    with: { group: pg1 }\n  - id: act\n    action: sdrs.disable\n    with: { group: \"{{ steps.look.output.name }}/../pg2\" }\n",
    );
    let summary = h
        .engine()
        .run(with_params(rb, &[]), &CancellationToken::new())
        .await
        .unwrap();
    assert_eq!(summary.status, "failed");
    let error = summary.error.unwrap();
    assert!(
        error.contains("`group` rendered from") && error.contains("is not an id"),
        "{error}"
    );
    assert_eq!(sent(&h, "sdrs.action"), 0);
}

#[tokio::test]
async fn the_client_refuses_a_bad_id_without_sending_and_never_retries_it() {
    let h = harness(SimConfig::default()).await;
    let c = client(&h.sim);
    for bad in ["g1/../g2", "g1?x=1", "g1#", "g%31"] {
        let e = c.evs_get_group(bad).await.unwrap_err();
        assert_eq!(e.reach, drover::cloud::Reach::NotSent, "{bad}");
        assert!(e.message.contains("not sent"), "{e}");
        let e = c
            .evs_action(bad, drover::cloud::evs::EvsAction::Switchover)
            .await
            .unwrap_err();
        assert_eq!(e.reach, drover::cloud::Reach::NotSent);
        assert!(c.sdrs_get_drill(bad).await.is_err());
        assert!(c.sdrs_delete_drill(bad).await.is_err());
        assert!(c.sdrs_get_job(bad).await.is_err());
    }
    assert!(
        h.sim
            .sim
            .journal()
            .iter()
            .all(|e| e.endpoint == "iam.token"),
        "only the token request left: {:?}",
        h.sim.sim.journal()
    );
}

#[tokio::test]
async fn a_dry_run_holds_no_lease_skips_sleeps_and_never_blocks_a_real_run() {
    let h = harness(SimConfig::default()).await;
    let rb = runbook_from(
        "dry-hold",
        "name: dry-hold\nkind: drill\nparams:\n  group_id: { required: true }\nsteps:\n  - id: look\n    action: sdrs.check_group\n    with: { group: \"{{ params.group_id }}\" }\n  - id: hold\n    action: sleep\n    with: { duration: 20h }\n",
    );
    let dry = h.engine();
    let cancel = CancellationToken::new();
    let started = tokio::time::Instant::now();
    let summary = dry
        .run(
            RunRequest {
                dry_run: true,
                ..with_params(rb.clone(), &[("group_id", "pg1")])
            },
            &cancel,
        )
        .await
        .unwrap();
    assert_eq!(summary.status, "succeeded", "{:?}", summary.error);
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "the 20h sleep was skipped"
    );
    // While a dry run is stored and unfinished, a real run on the group starts.
    let parked = dry
        .start(RunRequest {
            dry_run: true,
            ..with_params(rb, &[("group_id", "pg1")])
        })
        .await
        .unwrap();
    let real = h
        .engine()
        .start(request("sdrs-failover", &[("group_id", "pg1")]))
        .await;
    assert!(real.is_ok(), "blocked by dry run {parked}: {real:?}");
}

#[tokio::test]
async fn a_cancel_ends_a_sleep_within_a_second() {
    tokio::time::pause();
    let h = harness(SimConfig::default()).await;
    let rb = runbook_from(
        "long-sleep",
        "name: long-sleep\nkind: maintenance\nsteps:\n  - id: hold\n    action: sleep\n    with: { duration: 10h }\n  - id: after\n    action: sleep\n    with: { duration: 1s }\nfinally:\n  - id: tidy\n    action: sleep\n    with: { duration: 2s }\n",
    );
    let engine = h.engine();
    let id = engine.start(with_params(rb, &[])).await.unwrap();
    let store = h.store.clone();
    let canceller = {
        let id = id.clone();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_secs(30)).await;
            store.request_cancel(&id, "bob").await.unwrap();
            tokio::time::Instant::now()
        })
    };
    let summary = engine
        .execute(&id, &CancellationToken::new())
        .await
        .unwrap();
    let ended = tokio::time::Instant::now();
    let asked = canceller.await.unwrap();
    assert_eq!(summary.status, "cancelled");
    // A check that reads the store just as the cancel commits sees it at the
    // next check: a second, plus the few milliseconds paused time moves on
    // while the store works.
    assert!(
        ended - asked
            <= Duration::from_secs(1) + Duration::from_secs(2) + Duration::from_millis(50),
        "the sleep ended within a second of the cancel (then the 2s finally ran): {:?}",
        ended - asked
    );
    let steps = summary.steps.clone();
    assert!(
        steps.contains(&("tidy".to_string(), drover::store::StepStatus::Succeeded)),
        "finally still ran in full: {steps:?}"
    );
    assert!(steps.contains(&("after".to_string(), drover::store::StepStatus::Skipped)));
}

#[tokio::test]
async fn durations_are_bounded_at_load_and_at_run_time() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("huge.yaml");
    std::fs::write(
        &path,
        "name: huge\nkind: maintenance\nsteps:\n  - id: hold\n    action: sleep\n    with: { duration: 99999999999h }\n",
    )
    .unwrap();
    let errors = runbook::load(&path).unwrap_err();
    assert!(
        errors
            .iter()
            .any(|e| e.to_string().contains("longer than the 168h")),
        "{errors:?}"
    );

    let h = harness(SimConfig::default()).await;
    let rb = runbook_from(
        "templated-sleep",
        "name: templated-sleep\nkind: maintenance\nparams:\n  how_long: { default: 30h }\nsteps:\n  - id: hold\n    action: sleep\n    with: { duration: \"{{ params.how_long }}\" }\n",
    );
    let summary = h
        .engine()
        .run(with_params(rb, &[]), &CancellationToken::new())
        .await
        .unwrap();
    assert_eq!(summary.status, "failed");
    assert!(
        summary
            .error
            .unwrap()
            .contains("longer than engine.max_duration (24h)")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_switchover_that_happened_twice_fails_verification_and_the_summary_says_where_production_is()
 {
    let h = harness(SimConfig {
        transition: Duration::from_millis(200),
        ..SimConfig::default()
    })
    .await;
    // Someone (or a duplicate request) switches the group back right after drover's switchover.
    let sim = h.sim.sim.clone();
    let c = client(&h.sim);
    let meddler = tokio::spawn(async move {
        while !sim.journal().iter().any(|e| e.endpoint == "evs.action") {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        loop {
            tokio::time::sleep(Duration::from_millis(50)).await;
            if c.evs_action("g1", drover::cloud::evs::EvsAction::Switchover)
                .await
                .is_ok()
            {
                return;
            }
        }
    });
    let summary = h.run("evs-switchover", &[("group_id", "g1")]).await;
    meddler.await.unwrap();
    assert_eq!(summary.status, "failed", "{summary:?}");
    let error = summary.error.clone().unwrap();
    assert!(
        error.contains("step `moved` failed")
            && error.contains("priority_station is eu-de-01, expected anything but eu-de-01"),
        "{error}"
    );

    // A clean run names where production went.
    h.sim.sim.add_evs_group("g2", "eu-de-01", "eu-de-02");
    let summary = h.run("evs-switchover", &[("group_id", "g2")]).await;
    assert_eq!(summary.status, "succeeded", "{:?}", summary.error);
    let production = summary.production.clone().unwrap();
    assert_eq!(
        (production.was.as_str(), production.now.as_str()),
        ("eu-de-01", "eu-de-02")
    );
    let text = drover::app::describe_summary(&summary);
    assert!(
        text.contains("production is now in eu-de-02 (was in eu-de-01)"),
        "{text}"
    );
}

#[tokio::test]
async fn templates_work_in_typed_fields_and_a_bad_rendered_value_names_the_field() {
    let h = harness(SimConfig {
        transition: Duration::from_millis(100),
        ..SimConfig::default()
    })
    .await;
    let text = "name: typed\nkind: switchover\nparams:\n  group_id: { required: true }\n  to: { default: target }\n  status: { default: protected }\n  n: { default: \"1\" }\nsteps:\n  - id: before\n    action: sdrs.check_group\n    with: { group: \"{{ params.group_id }}\", expect: { status: \"{{ params.status }}\", priority_station: { not: \"{{ params.to }}\" } } }\n  - id: approve\n    action: approval\n    with: { prompt: go, approvers: \"{{ params.n }}\" }\n  - id: move\n    action: sdrs.switchover\n    with: { group: \"{{ params.group_id }}\", priority_station: \"{{ params.to }}\", interval: 100ms }\n  - id: after\n    action: sdrs.check_group\n    with: { group: \"{{ params.group_id }}\", expect: { priority_station: \"{{ params.to }}\", status: [\"{{ params.status }}\", available] } }\n";
    let rb = runbook_from("typed", text);
    let summary = h
        .engine()
        .run(
            with_params(rb.clone(), &[("group_id", "pg1")]),
            &CancellationToken::new(),
        )
        .await
        .unwrap();
    assert_eq!(summary.status, "succeeded", "{:?}", summary.error);
    assert_eq!(
        h.sim
            .sim
            .with_sdrs(|s| s.groups["pg1"].priority_station.to_string()),
        "target"
    );

    h.sim.sim.add_sdrs_group("pg2");
    let summary = h
        .engine()
        .run(
            with_params(rb, &[("group_id", "pg2"), ("to", "targett")]),
            &CancellationToken::new(),
        )
        .await
        .unwrap();
    assert_eq!(summary.status, "failed");
    let error = summary.error.unwrap();
    assert!(
        error.contains("`priority_station`: `{{ params.to }}` rendered `targett`: unknown variant `targett`, expected `source` or `target`"),
        "{error}"
    );
    assert_eq!(
        h.sim
            .sim
            .journal()
            .iter()
            .filter(|e| e.endpoint == "sdrs.action")
            .count(),
        1,
        "only the first run's switchover was sent"
    );
}

#[tokio::test]
async fn the_engine_asks_through_the_ask_hook_and_waits_when_nobody_answers() {
    use drover::engine::{Approvals, Engine, Prompted};
    use std::sync::Arc;
    let h = harness(SimConfig {
        transition: Duration::from_millis(50),
        ..SimConfig::default()
    })
    .await;
    let engine = |answer: Prompted| {
        let client = client(&h.sim);
        Engine::new(
            Arc::new(client),
            h.store.clone(),
            Arc::new(|_: &drover::engine::RunEvent| {}),
            Approvals::Ask(Arc::new(move |prompt: &str, needed: usize| {
                assert!(prompt.contains("Switch g1"), "{prompt}");
                assert_eq!(needed, 1);
                Ok(answer.clone())
            })),
        )
    };
    let nobody = engine(Prompted::NoInput)
        .run(
            request("evs-switchover", &[("group_id", "g1")]),
            &CancellationToken::new(),
        )
        .await
        .unwrap();
    assert_eq!(nobody.status, "running", "waiting, resumable");
    assert!(nobody.error.unwrap().contains("nobody was there to answer"));
    let refused = engine(Prompted::Refused("`x` was refused".into()))
        .execute(&nobody.run_id, &CancellationToken::new())
        .await
        .unwrap();
    assert_eq!(refused.status, "failed");
    assert_eq!(
        sent(&h, "evs.action"),
        0,
        "nothing sent without an approval"
    );

    let ok = engine(Prompted::Approved(vec!["zoe".into()]))
        .run(
            request("evs-switchover", &[("group_id", "g1")]),
            &CancellationToken::new(),
        )
        .await
        .unwrap();
    assert_eq!(ok.status, "succeeded", "{:?}", ok.error);
    assert_eq!(
        h.store.approvals(&ok.run_id).await.unwrap()[0].approver,
        "zoe"
    );
}
