//! Recovery plans: `for_each` blocks over many groups, against the
//! simulator. What is proven is read from the simulator's journal and state,
//! not from drover's own records: every group switched exactly once and
//! moved, stages in order, never more groups in flight than `max_parallel`.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use drover::cloud::CloudClient;
use drover::engine::{Approvals, Engine, RunEvent};
use drover::runbook;
use drover::sim::faults::{FaultRule, Faults};
use drover::sim::{JournalEntry, SimConfig};
use drover::store::{RunStatus, Store};
use tokio_util::sync::CancellationToken;

use crate::engine::with_params;
use crate::helpers::{Sim, cloud_config, password_auth, repo, start_sim};

fn groups(from: usize, to: usize) -> Vec<String> {
    (from..=to).map(|i| format!("g{i:04}")).collect()
}

async fn plan_sim(count: usize, faults: Faults) -> Sim {
    start_sim(SimConfig {
        evs_groups: groups(1, count),
        transition: Duration::from_millis(200),
        faults,
        ..SimConfig::default()
    })
    .await
}

async fn store() -> (Store, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("audit.db");
    (
        Store::open(&format!("sqlite://{}", db.display()))
            .await
            .unwrap(),
        dir,
    )
}

fn engine(
    sim: &Sim,
    store: &Store,
    events: Arc<std::sync::Mutex<Vec<RunEvent>>>,
) -> Engine<CloudClient> {
    let client = CloudClient::new(&cloud_config(sim, password_auth(sim))).unwrap();
    Engine::new(
        Arc::new(client),
        store.clone(),
        Arc::new(move |e: &RunEvent| events.lock().unwrap().push(e.clone())),
        Approvals::Given(vec!["tester".into()]),
    )
    .with_env(BTreeMap::new())
    .with_in_flight_grace(Duration::from_secs(2))
}

/// The group a journal entry is about, from its path.
fn group_of(e: &JournalEntry) -> Option<String> {
    let tail = e.path.split("consistency-groups/").nth(1)?;
    Some(tail.split('/').next()?.to_string())
}

/// Switchovers the simulator acted on, per group.
fn switched(sim: &Sim) -> BTreeMap<String, usize> {
    let mut out = BTreeMap::new();
    for e in sim.sim.journal() {
        if e.endpoint == "evs.action" && e.changed {
            *out.entry(group_of(&e).unwrap()).or_default() += 1;
        }
    }
    out
}

/// The most groups of `among` that were in flight at once: a group is in
/// flight from its first request to its last, in the journal's order.
fn most_in_flight(sim: &Sim, among: &[String]) -> usize {
    let mut spans: BTreeMap<String, (u64, u64)> = BTreeMap::new();
    for e in sim.sim.journal() {
        if let Some(g) = group_of(&e).filter(|g| among.contains(g)) {
            let span = spans.entry(g).or_insert((e.seq, e.seq));
            span.1 = e.seq;
        }
    }
    let mut most = 0;
    for (start, _) in spans.values() {
        let at = *start;
        most = most.max(spans.values().filter(|(a, b)| *a <= at && at <= *b).count());
    }
    most
}

fn production(sim: &Sim, id: &str) -> String {
    sim.sim
        .with_evs_group(id, |g| g.priority_station.clone())
        .unwrap()
}

/// `book` with `params`, to its end.
async fn run_book(
    sim: &Sim,
    store: &Store,
    book: runbook::Runbook,
    params: &[(&str, &str)],
) -> drover::engine::RunSummary {
    engine(sim, store, Arc::default())
        .run(with_params(book, params), &CancellationToken::new())
        .await
        .unwrap()
}

/// The shipped AZ plan with `params`, to its end.
async fn az_plan(sim: &Sim, store: &Store, params: &[(&str, &str)]) -> drover::engine::RunSummary {
    let book = runbook::load(&repo("runbooks/evs-az-switchover.yaml")).unwrap();
    run_book(sim, store, book, params).await
}

fn two_stages() -> runbook::Runbook {
    runbook::load(&repo("tests/fixtures/runbooks/two-stage-plan.yaml")).unwrap()
}

#[tokio::test]
async fn fifty_groups_through_faults_and_a_crash_are_each_switched_once_in_stage_order() {
    let mut faults = Faults::default();
    for (endpoint, rule) in [
        (
            "evs.action",
            FaultRule {
                p503: 0.1,
                ambiguous: 0.1,
                ..FaultRule::default()
            },
        ),
        (
            "evs.get",
            FaultRule {
                p503: 0.05,
                p502: 0.05,
                ..FaultRule::default()
            },
        ),
    ] {
        faults.rules.insert(endpoint.into(), rule);
    }
    let sim = plan_sim(50, faults).await;
    let (store, _dir) = store().await;
    let (db, apps) = (groups(1, 20), groups(21, 50));
    let request = with_params(
        two_stages(),
        &[
            ("db_groups", &db.join(",")),
            ("app_groups", &apps.join(", ")),
        ],
    );
    let first = engine(&sim, &store, Arc::default());
    let run_id = first.start(request).await.unwrap();
    let id = run_id.clone();
    let task = tokio::spawn(async move { first.execute(&id, &CancellationToken::new()).await });
    // The process dies in the middle of the first stage, requests in flight.
    while switched(&sim).len() < 10 {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    task.abort();
    let _ = task.await;
    assert!(switched(&sim).len() < 50, "the crash came before the end");

    let events = Arc::new(std::sync::Mutex::new(Vec::new()));
    let summary = engine(&sim, &store, events.clone())
        .execute(&run_id, &CancellationToken::new())
        .await
        .unwrap();
    assert_eq!(summary.status, RunStatus::Succeeded, "{:?}", summary.error);

    let acted = switched(&sim);
    for g in db.iter().chain(&apps) {
        assert_eq!(acted.get(g), Some(&1), "{g} switched exactly once");
        assert_eq!(production(&sim, g), "eu-de-02", "{g} moved");
    }
    // Stage order: no application group was touched before every database group moved.
    let journal = sim.sim.journal();
    let last_db = journal
        .iter()
        .filter(|e| e.endpoint == "evs.action" && group_of(e).is_some_and(|g| db.contains(&g)))
        .map(|e| e.seq)
        .max()
        .unwrap();
    let first_app = journal
        .iter()
        .filter(|e| group_of(e).is_some_and(|g| apps.contains(&g)))
        .map(|e| e.seq)
        .min()
        .unwrap();
    assert!(
        last_db < first_app,
        "stage `apps` started before `databases` ended"
    );
    assert!(
        most_in_flight(&sim, &db) <= 4,
        "databases: {} in flight",
        most_in_flight(&sim, &db)
    );
    assert!(
        most_in_flight(&sim, &apps) <= 6,
        "apps: {} in flight",
        most_in_flight(&sim, &apps)
    );
    assert!(most_in_flight(&sim, &apps) > 1, "items ran in parallel");

    // The resume took the stored list: items done before the crash were not run again.
    let again = events
        .lock()
        .unwrap()
        .iter()
        .filter(|e| matches!(e, RunEvent::ItemStarted { step_id, .. } if step_id == "databases"))
        .count();
    assert!(
        again < 20,
        "{again} database items started again after the crash"
    );
    let chain = store.verify().await.unwrap();
    assert!(chain.is_ok(), "audit chain intact: {chain:?}");
}

#[tokio::test]
async fn throttling_slows_a_plan_without_failing_it() {
    let mut faults = Faults::default();
    faults.rules.insert(
        "evs.get".into(),
        FaultRule {
            per_second: Some(15),
            ..FaultRule::default()
        },
    );
    let sim = plan_sim(12, faults).await;
    let (store, _dir) = store().await;
    let request = with_params(
        two_stages(),
        &[
            ("db_groups", &groups(1, 6).join(",")),
            ("app_groups", &groups(7, 12).join(",")),
        ],
    );
    let summary = engine(&sim, &store, Arc::default())
        .run(request, &CancellationToken::new())
        .await
        .unwrap();
    assert_eq!(summary.status, RunStatus::Succeeded, "{:?}", summary.error);
    let throttled = sim
        .sim
        .journal()
        .iter()
        .filter(|e| e.status == Some(429))
        .count();
    assert!(throttled > 0, "the gateway throttled some reads");
    let acted = switched(&sim);
    assert!(groups(1, 12).iter().all(|g| acted.get(g) == Some(&1)));
}

#[tokio::test]
async fn the_shipped_az_plan_discovers_the_groups_of_an_az_and_moves_only_those() {
    let sim = plan_sim(8, Faults::default()).await;
    // Two groups already run in the other AZ: the plan must leave them alone.
    for g in ["g0003", "g0006"] {
        sim.sim.with_evs_group(g, |g| {
            std::mem::swap(&mut g.priority_station, &mut g.secondary_station);
        });
    }
    let (store, _dir) = store().await;
    let summary = az_plan(&sim, &store, &[("from_az", "eu-de-01")]).await;
    assert_eq!(summary.status, RunStatus::Succeeded, "{:?}", summary.error);
    let acted = switched(&sim);
    assert_eq!(acted.len(), 6, "{acted:?}");
    assert!(!acted.contains_key("g0003") && !acted.contains_key("g0006"));
    for g in groups(1, 8) {
        assert_eq!(production(&sim, &g), "eu-de-02", "{g}");
    }
}

#[tokio::test]
async fn a_failed_item_does_not_stop_the_others_and_fails_the_run_naming_it() {
    let sim = plan_sim(5, Faults::default()).await;
    // g0002 is not healthy: its precheck fails.
    sim.sim.with_evs_group("g0002", |g| {
        g.fault_level = drover::runbook::model::FaultLevel::LinkDown
    });
    let (store, _dir) = store().await;
    let summary = az_plan(
        &sim,
        &store,
        // One at a time, the failing group first: the default is continue.
        &[
            ("from_az", "eu-de-01"),
            ("group_ids", "g0002,g0001,g0003"),
            ("max_parallel", "1"),
        ],
    )
    .await;
    assert_eq!(summary.status, RunStatus::Failed);
    let error = summary.error.unwrap();
    assert!(
        error.contains("1 of 3 items failed") && error.contains("g0002"),
        "{error}"
    );
    let acted = switched(&sim);
    assert_eq!(
        acted.keys().cloned().collect::<Vec<_>>(),
        ["g0001", "g0003"]
    );
    assert_eq!(
        production(&sim, "g0004"),
        "eu-de-01",
        "groups not listed stay"
    );
}

#[tokio::test]
async fn an_item_whose_group_another_run_holds_fails_alone_naming_the_holder() {
    let sim = plan_sim(2, Faults::default()).await;
    let (store, _dir) = store().await;
    let e = engine(&sim, &store, Arc::default());
    // Started, not executed: its lease on g0002 stays.
    let holder = e
        .start(crate::engine::request(
            "evs-switchover",
            &[("group_id", "g0002")],
        ))
        .await
        .unwrap();
    let summary = az_plan(
        &sim,
        &store,
        &[("from_az", "eu-de-01"), ("group_ids", "g0001 g0002")],
    )
    .await;
    assert_eq!(summary.status, RunStatus::Failed);
    let error = summary.error.unwrap();
    assert!(
        error.contains("g0002") && error.contains(&holder),
        "{error}"
    );
    assert_eq!(
        switched(&sim).keys().cloned().collect::<Vec<_>>(),
        ["g0001"]
    );
}

#[tokio::test]
async fn a_group_in_two_stages_of_one_run_is_switched_once_and_the_later_item_fails_naming_the_first()
 {
    let sim = plan_sim(3, Faults::default()).await;
    let (store, _dir) = store().await;
    let summary = run_book(
        &sim,
        &store,
        two_stages(),
        &[("db_groups", "g0001 g0002"), ("app_groups", "g0002 g0003")],
    )
    .await;
    assert_eq!(summary.status, RunStatus::Failed);
    let error = summary.error.unwrap();
    assert!(
        error.contains("1 of 2 items failed") && error.contains("block `databases`"),
        "{error}"
    );
    let acted = switched(&sim);
    assert_eq!(acted.get("g0002"), Some(&1), "{acted:?} {error}");
    assert_eq!(acted.len(), 3, "{acted:?} {error}");
    // The apps item for g0002 sent nothing: refused at expansion.
    let apps_reads = sim
        .sim
        .journal()
        .iter()
        .filter(|e| group_of(e).as_deref() == Some("g0002"))
        .filter(|e| e.endpoint == "evs.action")
        .count();
    assert_eq!(apps_reads, 1);
    // Nothing of the finished run is left pending: the refused item's steps are skipped.
    let steps = store.steps(&summary.run_id).await.unwrap();
    let pending: Vec<_> = steps
        .iter()
        .filter(|s| s.status == drover::store::StepStatus::Pending)
        .map(|s| &s.step_id)
        .collect();
    assert!(pending.is_empty(), "{pending:?}");
}

#[tokio::test]
async fn an_item_that_is_not_one_printable_line_fails_the_block_before_anything_is_sent() {
    let sim = plan_sim(2, Faults::default()).await;
    let (store, _dir) = store().await;
    for (groups, expect) in [
        (r#"["g0001", "g0002\nINFO forged"]"#, "control character"),
        (r#"["g0001", "g0001"]"#, "twice"),
    ] {
        let summary = az_plan(
            &sim,
            &store,
            &[("from_az", "eu-de-01"), ("group_ids", groups)],
        )
        .await;
        assert_eq!(summary.status, RunStatus::Failed);
        let error = summary.error.unwrap();
        assert!(error.contains(expect), "{error}");
        assert!(!error.contains('\n'), "{error}");
    }
    let long = format!(r#"["{}"]"#, "g".repeat(300));
    let summary = az_plan(
        &sim,
        &store,
        &[("from_az", "eu-de-01"), ("group_ids", &long)],
    )
    .await;
    assert!(summary.error.unwrap().contains("300 characters"));
    assert!(switched(&sim).is_empty());
}

#[tokio::test]
async fn on_item_failure_abort_starts_no_item_after_a_failure_and_skips_their_steps() {
    let sim = plan_sim(4, Faults::default()).await;
    sim.sim.with_evs_group("g0001", |g| {
        g.fault_level = drover::runbook::model::FaultLevel::LinkDown
    });
    let (store, _dir) = store().await;
    let text = std::fs::read_to_string(repo("tests/fixtures/runbooks/two-stage-plan.yaml"))
        .unwrap()
        .replace(
            "max_parallel: 4",
            "max_parallel: 1\n    on_item_failure: abort",
        );
    let book = runbook::parse(&text, std::path::Path::new("abort-plan.yaml")).unwrap();
    let summary = run_book(
        &sim,
        &store,
        book,
        &[("db_groups", "g0001 g0002 g0003"), ("app_groups", "g0004")],
    )
    .await;
    assert_eq!(summary.status, RunStatus::Failed);
    assert!(switched(&sim).is_empty(), "{:?}", switched(&sim));
    let steps = store.steps(&summary.run_id).await.unwrap();
    let status = |id: &str| steps.iter().find(|s| s.step_id == id).unwrap().status;
    use drover::store::StepStatus::*;
    assert_eq!(status("databases[0]"), Failed);
    for id in [
        "databases[1]",
        "databases[1].switchover",
        "databases[2].verify",
    ] {
        assert_eq!(status(id), Skipped, "{id}");
    }
    // The failed stage stops the run: apps is skipped, never expanded.
    assert_eq!(status("apps"), Skipped);
    assert!(steps.iter().all(|s| s.status != Pending), "{steps:?}");
}

/// The shipped SDRS AZ plan with `params`, to its end, against `sdrs` groups.
async fn sdrs_az_plan(sim: &Sim, store: &Store, params: &[(&str, &str)]) -> RunStatus {
    let book = runbook::load(&repo("runbooks/sdrs-az-switchover.yaml")).unwrap();
    run_book(sim, store, book, params).await.status
}

/// SDRS groups the simulator moved, per group, and where production is now.
fn sdrs_moves(sim: &Sim) -> (BTreeMap<String, usize>, BTreeMap<String, String>) {
    let mut moved = BTreeMap::new();
    for e in sim.sim.journal() {
        if e.endpoint == "sdrs.action" && e.changed {
            let id = e.path.split("server-groups/").nth(1).unwrap();
            *moved
                .entry(id.split('/').next().unwrap().to_string())
                .or_default() += 1;
        }
    }
    let production = sim.sim.with_sdrs(|s| {
        s.groups
            .iter()
            .map(|(id, g)| (id.clone(), g.production_az().to_string()))
            .collect()
    });
    (moved, production)
}

#[tokio::test]
async fn the_shipped_sdrs_az_plan_moves_each_protected_group_of_the_az_once_and_no_other() {
    let sim = start_sim(SimConfig {
        sdrs_groups: (1..=6).map(|i| format!("pg{i:02}")).collect(),
        transition: Duration::from_millis(200),
        ..SimConfig::default()
    })
    .await;
    // Two groups run in the other AZ already: the plan must leave them.
    sim.sim.with_sdrs(|s| {
        for id in ["pg05", "pg06"] {
            s.groups.get_mut(id).unwrap().priority_station =
                drover::runbook::model::PriorityStation::Target;
        }
    });
    let (store, _dir) = store().await;
    assert_eq!(
        sdrs_az_plan(&sim, &store, &[("from_az", "eu-de-01")]).await,
        RunStatus::Succeeded
    );
    let (moved, production) = sdrs_moves(&sim);
    assert_eq!(
        moved,
        ["pg01", "pg02", "pg03", "pg04"]
            .into_iter()
            .map(|g| (g.to_string(), 1))
            .collect()
    );
    assert!(
        production.values().all(|az| az == "eu-de-02"),
        "{production:?}"
    );

    // A listed group whose production is not in from_az is left out.
    let sim = start_sim(SimConfig {
        sdrs_groups: vec!["pg01".into(), "pg02".into(), "pg03".into()],
        transition: Duration::from_millis(200),
        ..SimConfig::default()
    })
    .await;
    sim.sim.with_sdrs(|s| {
        s.groups.get_mut("pg02").unwrap().priority_station =
            drover::runbook::model::PriorityStation::Target;
    });
    assert_eq!(
        sdrs_az_plan(
            &sim,
            &store,
            &[("from_az", "eu-de-01"), ("group_ids", "pg01,pg02")]
        )
        .await,
        RunStatus::Succeeded
    );
    let (moved, production) = sdrs_moves(&sim);
    assert_eq!(moved.keys().cloned().collect::<Vec<_>>(), ["pg01"]);
    assert_eq!(production["pg03"], "eu-de-01", "not listed: stays");
}

#[tokio::test]
async fn a_later_block_may_read_the_groups_an_earlier_one_changed() {
    let sim = plan_sim(2, Faults::default()).await;
    let (store, _dir) = store().await;
    let text =
        std::fs::read_to_string(repo("tests/fixtures/runbooks/two-stage-plan.yaml")).unwrap();
    // The second stage only checks where production went, for the same groups.
    let apps = text.find("  - id: apps").unwrap();
    let text = format!(
        "{}{}",
        &text[..apps],
        r#"  - id: confirm
    for_each: "{{ params.app_groups }}"
    steps:
      - id: check
        action: evs.check_group
        with:
          group: "{{ item }}"
          expect: { priority_station: eu-de-02 }
"#
    );
    let book = runbook::parse(&text, std::path::Path::new("confirm-plan.yaml")).unwrap();
    let summary = run_book(
        &sim,
        &store,
        book,
        &[("db_groups", "g0001 g0002"), ("app_groups", "g0001 g0002")],
    )
    .await;
    assert_eq!(summary.status, RunStatus::Succeeded, "{:?}", summary.error);
    assert_eq!(switched(&sim).values().sum::<usize>(), 2);
}
