//! Several daemons on one PostgreSQL database: a run is executed by the
//! daemon holding its claim; when that daemon is killed, or paused past its
//! claim's expiry, another takes the run over through the crash-recovery
//! path, and the switchover is sent exactly once. Skipped (said on stderr)
//! where no PostgreSQL server answers; `.ci/run` requires one.

use std::time::Duration;

use drover::sim::SimConfig;
use reqwest::Method;
use serde_json::{Value, json};

use crate::daemon::{
    Process, config_text_for, signal, spawn_daemon_with, step_status, token, until,
};
use crate::helpers::{JsonHttp, Sim, repo, start_sim};

/// A simulator, a fresh PostgreSQL database and a config for daemons on it
/// (claims live `ttl`); `None` without a PostgreSQL server.
async fn cluster(transition: Duration) -> Option<(Sim, tempfile::TempDir, std::path::PathBuf)> {
    let url = drover::store::scratch_postgres().await?;
    let sim = start_sim(SimConfig {
        evs_groups: vec!["g1".into()],
        transition,
        ..SimConfig::default()
    })
    .await;
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("drover.yaml");
    let mut text = config_text_for(&sim, &url, &repo("runbooks"));
    text.push_str("node: { claim_ttl: 3s }\n");
    std::fs::write(&config, text).unwrap();
    Some((sim, dir, config))
}

fn node(config: &std::path::Path, sim: &Sim, name: &str) -> Process {
    spawn_daemon_with(
        config,
        &sim.sim.credentials().password,
        &[("DROVER_NODE__NAME", name)],
    )
}

async fn get(url: &str, path: &str) -> Value {
    JsonHttp::new(url)
        .call(
            Method::GET,
            path,
            &[("authorization", format!("Bearer {}", token("admin")))],
            None,
        )
        .await
        .1
}

async fn post(url: &str, who: &str, path: &str, body: Value) -> (u16, Value) {
    JsonHttp::new(url)
        .call(
            Method::POST,
            path,
            &[("authorization", format!("Bearer {}", token(who)))],
            Some(body),
        )
        .await
}

fn switchovers(sim: &Sim) -> usize {
    sim.sim
        .journal()
        .iter()
        .filter(|e| e.endpoint == "evs.action" && e.changed)
        .count()
}

/// A switchover started on `a`, approved on `b`, waiting for `active` on `a`.
async fn switchover_waiting_on(a: &Process, b: &Process) -> String {
    let (status, created) = post(
        &a.url,
        "admin",
        "/v1/runs",
        json!({"runbook": "evs-switchover", "params": {"group_id": "g1"}}),
    )
    .await;
    assert_eq!(status, 201, "{created}");
    let run = created["id"].as_str().unwrap().to_string();
    until(async || step_status(&a.url, &run, "approve").await.1 == "running").await;
    let path = format!("/v1/runs/{run}/approvals");
    let (status, answer) = post(&b.url, "operator", &path, json!({"decision": "approve"})).await;
    assert_eq!(
        status, 201,
        "an approval sent to the other daemon: {answer}"
    );
    until(async || step_status(&a.url, &run, "verify").await.1 == "running").await;
    let detail = get(&b.url, &format!("/v1/runs/{run}")).await;
    assert_eq!(detail["run"]["owner"], "az1", "{detail}");
    run
}

/// The run ends, owned by az2, with one switchover and an intact chain that
/// records the takeover.
async fn completed_by_az2(b: &Process, sim: &Sim, run: &str) {
    until(async || step_status(&b.url, run, "verify").await.0 == "succeeded").await;
    let detail = get(&b.url, &format!("/v1/runs/{run}")).await;
    assert_eq!(detail["run"]["owner"], "az2", "{detail}");
    assert_eq!(switchovers(sim), 1, "exactly one switchover");
    let verify = get(&b.url, "/v1/audit/verify").await;
    assert_eq!(verify["intact"], true, "{verify}");
    let events = get(&b.url, "/v1/audit/events").await;
    let taken: Vec<&Value> = events
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["kind"] == "run.taken_over" && e["run_id"] == run)
        .collect();
    assert_eq!(taken.len(), 1, "{events}");
    assert_eq!(
        (
            taken[0]["data"]["from"].as_str(),
            taken[0]["data"]["node"].as_str()
        ),
        (Some("az1"), Some("az2"))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_owner_s_run_is_completed_by_another_daemon_with_one_switchover() {
    let Some((sim, _dir, config)) = cluster(Duration::from_secs(4)).await else {
        return;
    };
    let mut a = node(&config, &sim, "az1");
    let b = node(&config, &sim, "az2");
    let run = switchover_waiting_on(&a, &b).await;
    // b streams the run a executes, to its end.
    let mut stream = reqwest::Client::new()
        .get(format!("{}/v1/runs/{run}/events", b.url))
        .bearer_auth(token("viewer"))
        .send()
        .await
        .unwrap();
    let followed = tokio::spawn(async move {
        let mut text = String::new();
        while let Ok(Some(chunk)) = stream.chunk().await {
            text.push_str(&String::from_utf8_lossy(&chunk));
            if text.contains("event: run_finished") {
                break;
            }
        }
        text
    });
    a.child.kill().unwrap(); // SIGKILL while the run waits for `active`
    a.child.wait().unwrap();
    completed_by_az2(&b, &sim, &run).await;
    let text = tokio::time::timeout(Duration::from_secs(10), followed)
        .await
        .expect("the stream on b ends with the run")
        .unwrap();
    assert!(text.starts_with("event: snapshot"), "{text}");
    assert!(
        text.contains("\"step_id\":\"verify\",\"status\":\"succeeded\""),
        "{text}"
    );
    assert!(text.contains("\"status\":\"succeeded\""), "{text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_paused_owner_loses_its_run_and_sends_nothing_more_for_it() {
    let Some((sim, _dir, config)) = cluster(Duration::from_secs(8)).await else {
        return;
    };
    let a = node(&config, &sim, "az1");
    let b = node(&config, &sim, "az2");
    let run = switchover_waiting_on(&a, &b).await;
    signal(&a, "STOP"); // past the claim's 3s: b takes over
    completed_by_az2(&b, &sim, &run).await;
    let requests_before = sim.sim.journal().len();
    signal(&a, "CONT");
    let lost = async || {
        a.log.lock().unwrap().iter().any(|l| {
            l.contains("Lost the claim") || l.contains("no longer executed by this process")
        })
    };
    until(lost).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let after: Vec<_> = sim.sim.journal()[requests_before..]
        .iter()
        .filter(|e| e.method != "GET")
        .map(|e| e.endpoint.clone())
        .collect();
    assert!(after.is_empty(), "the old owner sent {after:?}");
    assert_eq!(switchovers(&sim), 1);
}

/// A schedule firing every two seconds with three daemons on the database:
/// every fire between the first and the last starts exactly one run,
/// whichever daemon took it, and the audit chain holds.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_schedule_fires_once_with_three_daemons_running() {
    let Some(url) = drover::store::scratch_postgres().await else {
        return;
    };
    let sim = start_sim(SimConfig::default()).await;
    let dir = tempfile::tempdir().unwrap();
    let runbooks = dir.path().join("runbooks");
    std::fs::create_dir(&runbooks).unwrap();
    std::fs::write(
        runbooks.join("tick.yaml"),
        "name: tick\nkind: maintenance\nsteps:\n  - { id: pause, action: sleep, with: { duration: 10ms } }\nschedules:\n  - { name: every2s, cron: \"*/2 * * * * *\" }\n",
    )
    .unwrap();
    let config = dir.path().join("drover.yaml");
    std::fs::write(&config, config_text_for(&sim, &url, &runbooks)).unwrap();
    let mut nodes: Vec<Process> = ["az1", "az2", "az3"]
        .iter()
        .map(|name| node(&config, &sim, name))
        .collect();
    let store = drover::store::Store::open(&url).await.unwrap();
    until(async || store.fires("tick", "every2s").await.unwrap().len() >= 4).await;
    // SIGTERM: a fire being handled is finished before the daemon exits.
    for n in &mut nodes {
        signal(n, "TERM");
        n.child.wait().unwrap();
    }
    let fires = store.fires("tick", "every2s").await.unwrap();
    let times: Vec<chrono::DateTime<chrono::Utc>> =
        fires.iter().map(|(at, _, _)| at.parse().unwrap()).collect();
    for pair in times.windows(2) {
        assert_eq!(
            pair[1] - pair[0],
            chrono::Duration::seconds(2),
            "one record per fire, none missing: {fires:?}"
        );
    }
    let runs: Vec<_> = store
        .runs(100)
        .await
        .unwrap()
        .into_iter()
        .filter(|r| r.runbook == "tick")
        .collect();
    // A fire is skipped only while the schedule's previous run still goes
    // (one a stopping daemon left to be taken over).
    let started = fires.iter().filter(|(_, o, _)| o == "started").count();
    assert!(started >= 3, "{fires:?}");
    assert_eq!(runs.len(), started, "one run per started fire: {fires:?}");
    for (at, outcome, run) in &fires {
        assert!(
            ["started", "skipped_overlap"].contains(&outcome.as_str()),
            "fire {at}: {outcome}"
        );
        let run = run.as_deref().unwrap();
        assert!(runs.iter().any(|r| r.id == run), "fire {at}: run {run}");
    }
    let owners: std::collections::BTreeSet<_> =
        runs.iter().filter_map(|r| r.owner.clone()).collect();
    assert!(!owners.is_empty(), "{owners:?}");
    let verified = store.verify().await.unwrap();
    assert!(verified.is_ok(), "{verified:?}");
}
