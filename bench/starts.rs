//! Benchmark: durable run starts per second. Each start is what `POST
//! /v1/runs` stores before it answers: the run, its steps, its target lease,
//! its claim and its audit event, in one committed transaction (SQLite with
//! `synchronous=FULL`, so one fsync each; PostgreSQL with its defaults). 1,000
//! starts from 64 concurrent tasks, on a SQLite file and, when the local
//! server answers, on a fresh PostgreSQL database.
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

#[tokio::main]
async fn main() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("bench.db").display());
    measure("sqlite", Store::open(&url).await.unwrap()).await;
    match drover::store::scratch_postgres().await {
        Some(url) => measure("postgres", Store::open(&url).await.unwrap()).await,
        None => println!("postgres: no server answers; skipped"),
    }
}
