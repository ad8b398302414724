//! Benchmark: durable run starts per second. Each start is what `POST
//! /v1/runs` stores before it answers: the run, its steps, its target lease,
//! its claim and its audit event, in one committed transaction (SQLite with
//! `synchronous=FULL`, so one fsync each; PostgreSQL with its defaults). 1,000
//! starts from 64 concurrent tasks, on a SQLite file and, when the local
//! server answers, on a fresh PostgreSQL database.
//! Then the same 1,000 through the daemon (`Daemon::trigger`, what `POST
//! /v1/runs` calls): each run also executes (one `sleep 1ms` step) while the
//! others start, as in a burst of API triggers.
//! Run: `cargo bench --bench starts`.

use std::sync::Arc;
use std::time::Instant;

use drover::runbook::Kind;
use drover::store::{NewRun, Phase, Store, Trigger};

const RUNS: usize = 1_000;
const TASKS: usize = 64;

fn new_run(i: usize) -> NewRun {
    NewRun {
        id: uuid::Uuid::now_v7().to_string(),
        runbook: "evs-switchover".into(),
        digest: "d".into(),
        source: "name: x".into(),
        path: "runbooks/evs-switchover.yaml".into(),
        kind: Kind::Switchover,
        trigger: Trigger::Api,
        requested_by: "bench".into(),
        params: [("group_id".to_string(), format!("g{i}"))].into(),
        dry_run: false,
        steps: ["approve", "precheck", "switchover", "verify", "moved"]
            .iter()
            .map(|s| (s.to_string(), Phase::Main))
            .collect(),
        targets: vec![format!("evs:g{i}")],
        idempotency: None,
        fire: None,
    }
}

async fn measure(label: &str, store: Store) {
    let store = Arc::new(store);
    let start = Instant::now();
    let tasks: Vec<_> = (0..TASKS)
        .map(|t| {
            let store = store.clone();
            tokio::spawn(async move {
                for i in (t..RUNS).step_by(TASKS) {
                    store.create_run(&new_run(i)).await.expect("run stored");
                }
            })
        })
        .collect();
    for t in tasks {
        t.await.unwrap();
    }
    let took = start.elapsed();
    println!(
        "{label}: {RUNS} run starts from {TASKS} tasks in {:.2} s: {:.0} starts/s",
        took.as_secs_f64(),
        RUNS as f64 / took.as_secs_f64()
    );
}

/// 1,000 triggers at once through the daemon; starts per second, and the time
/// until every run has finished.
async fn through_the_daemon(label: &str, database: &str) {
    let dir = tempfile::tempdir().unwrap();
    let runbooks = dir.path().join("runbooks");
    std::fs::create_dir(&runbooks).unwrap();
    std::fs::write(
        runbooks.join("noop.yaml"),
        "name: noop\nkind: maintenance\nparams: { n: { required: true } }\nsteps:\n  - { id: pause, action: sleep, with: { duration: 1ms } }\n",
    )
    .unwrap();
    let text = format!(
        "database: {{ url: \"{database}\" }}\nrunbooks: {{ dir: \"{}\" }}\n",
        runbooks.display()
    );
    let config = drover::config::Config::parse(
        &text,
        std::path::Path::new("bench.yaml"),
        &Default::default(),
    )
    .unwrap();
    let daemon = drover::daemon::Daemon::new(config, None).await.unwrap();
    let start = Instant::now();
    let triggers: Vec<_> = (0..RUNS)
        .map(|i| {
            let daemon = daemon.clone();
            tokio::spawn(async move {
                daemon
                    .trigger(
                        "noop",
                        [("n".to_string(), i.to_string())].into(),
                        Trigger::Api,
                        "bench",
                        false,
                        None,
                    )
                    .await
                    .expect("run started")
            })
        })
        .collect();
    for t in triggers {
        t.await.unwrap();
    }
    let started = start.elapsed();
    loop {
        let running = daemon
            .store()
            .runs(RUNS as u32)
            .await
            .unwrap()
            .iter()
            .filter(|r| r.status == drover::store::RunStatus::Running)
            .count();
        if running == 0 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    let done = start.elapsed();
    println!(
        "{label} through the daemon: {RUNS} triggers started in {:.2} s ({:.0} starts/s); all finished after {:.2} s",
        started.as_secs_f64(),
        RUNS as f64 / started.as_secs_f64(),
        done.as_secs_f64()
    );
}

#[tokio::main]
async fn main() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("bench.db").display());
    measure("sqlite", Store::open(&url).await.unwrap()).await;
    let postgres = drover::store::scratch_postgres().await;
    match &postgres {
        Some(url) => measure("postgres", Store::open(url).await.unwrap()).await,
        None => println!("postgres: no server answers; skipped"),
    }
    let file = format!("sqlite://{}", dir.path().join("daemon.db").display());
    through_the_daemon("sqlite", &file).await;
    if let Some(url) = drover::store::scratch_postgres().await {
        through_the_daemon("postgres", &url).await;
    }
}
