//! Benchmark: run starts over HTTP, and many concurrent runs over two
//! daemons. Real `drover daemon` processes; 1,000 `POST /v1/runs` sent at
//! once (at most 256 in flight) and spread over the daemons; each run holds
//! for 1 s (one `sleep` step) while the others start. Reported: starts per
//! second (until the last 201), the time until every run finished, which
//! daemon executed how many, and the audit chain's check at the end.
//! Setups: one daemon on a SQLite file; one and two daemons on a fresh
//! PostgreSQL database each (skipped when no server answers).
//! Run: `cargo bench --bench cluster`.

use std::collections::BTreeMap;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use drover::store::{RunStatus, Store};

const RUNS: usize = 1_000;
const IN_FLIGHT: usize = 256;
/// The digest of the token "bench".
const DIGEST: &str = "1b32c28cb38c05480eccc1bd60ff97029b57a05c96718b96dad7e9d84894f549";

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// (busy, total) jiffies of all cores so far.
fn cpu() -> (u64, u64) {
    let stat = std::fs::read_to_string("/proc/stat").unwrap_or_default();
    let fields: Vec<u64> = stat
        .lines()
        .next()
        .unwrap_or_default()
        .split_whitespace()
        .skip(1)
        .filter_map(|f| f.parse().ok())
        .collect();
    let total: u64 = fields.iter().sum();
    let idle = fields.get(3).copied().unwrap_or(0) + fields.get(4).copied().unwrap_or(0);
    (total - idle, total)
}

struct Daemon {
    child: Child,
    url: String,
}

impl Drop for Daemon {
    fn drop(&mut self) {
        self.child.kill().ok();
        self.child.wait().ok();
    }
}

/// Starts a daemon named `name` on `database`; waits until it is ready.
async fn daemon(dir: &std::path::Path, database: &str, name: &str) -> Daemon {
    let port = free_port();
    let runbooks = dir.join("runbooks");
    let config = dir.join(format!("{name}.yaml"));
    std::fs::write(
        &config,
        format!(
            "database: {{ url: \"{database}\" }}\nrunbooks: {{ dir: \"{}\" }}\nnode: {{ name: {name} }}\napi:\n  listen: 127.0.0.1:{port}\n  tokens: [{{ name: bench, role: operator, sha256: {DIGEST} }}]\ncloud: {{ auth: {{ method: token }} }}\n",
            runbooks.display()
        ),
    )
    .unwrap();
    let child = Command::new(env!("CARGO_BIN_EXE_drover"))
        .args(["daemon", "--config"])
        .arg(&config)
        .env("DROVER_CLOUD__AUTH__TOKEN", "unused")
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let daemon = Daemon {
        child,
        url: format!("http://127.0.0.1:{port}"),
    };
    let begin = Instant::now();
    loop {
        let ready = reqwest::get(format!("{}/readyz", daemon.url))
            .await
            .is_ok_and(|r| r.status().is_success());
        if ready {
            return daemon;
        }
        assert!(
            begin.elapsed() < Duration::from_secs(30),
            "the daemon did not become ready"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

async fn measure(label: &str, database: &str, daemons: usize) {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("runbooks")).unwrap();
    std::fs::write(
        dir.path().join("runbooks/hold.yaml"),
        "name: hold\nkind: maintenance\nparams: { n: { required: true } }\nsteps:\n  - { id: hold, action: sleep, with: { duration: 1s } }\n",
    )
    .unwrap();
    let mut nodes = Vec::new();
    for i in 0..daemons {
        nodes.push(daemon(dir.path(), database, &format!("d{}", i + 1)).await);
    }
    let urls: Vec<String> = nodes.iter().map(|d| d.url.clone()).collect();
    let client = reqwest::Client::new();
    let gate = Arc::new(tokio::sync::Semaphore::new(IN_FLIGHT));
    let (busy_before, total_before) = cpu();
    let start = Instant::now();
    let posts: Vec<_> = (0..RUNS)
        .map(|i| {
            let (client, gate) = (client.clone(), gate.clone());
            let url = format!("{}/v1/runs", urls[i % urls.len()]);
            tokio::spawn(async move {
                let _permit = gate.acquire().await.unwrap();
                let answer = client
                    .post(url)
                    .bearer_auth("bench")
                    .json(&serde_json::json!({"runbook": "hold", "params": {"n": i.to_string()}}))
                    .send()
                    .await
                    .expect("the daemon answers");
                assert_eq!(answer.status(), 201, "{}", answer.text().await.unwrap());
            })
        })
        .collect();
    for post in posts {
        post.await.unwrap();
    }
    let started = start.elapsed();
    let (busy, total) = cpu();
    let load = 100.0 * (busy - busy_before) as f64 / (total - total_before).max(1) as f64;
    let store = Store::open(database).await.unwrap();
    let runs = loop {
        let runs = store.runs(RUNS as u32 + 1).await.unwrap();
        if runs.iter().all(|r| r.status != RunStatus::Running) {
            break runs;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let finished = start.elapsed();
    let mut by_owner = BTreeMap::new();
    for run in &runs {
        assert_eq!(run.status, RunStatus::Succeeded, "run {}", run.id);
        *by_owner
            .entry(run.owner.clone().unwrap_or_default())
            .or_insert(0) += 1;
    }
    let chain = match store.verify().await.unwrap() {
        Ok(events) => format!("audit chain intact ({events} events)"),
        Err(broken) => format!("AUDIT CHAIN BROKEN: {broken:?}"),
    };
    println!(
        "{label}: {RUNS} POST /v1/runs in {:.2} s ({:.0} starts/s, CPU {load:.0}% busy); every run (1 s each) finished after {:.2} s; executed by {by_owner:?}; {chain}",
        started.as_secs_f64(),
        RUNS as f64 / started.as_secs_f64(),
        finished.as_secs_f64(),
    );
}

#[tokio::main]
async fn main() {
    let dir = tempfile::tempdir().unwrap();
    let file = format!("sqlite://{}", dir.path().join("audit.db").display());
    measure("sqlite, one daemon", &file, 1).await;
    for daemons in [1, 2] {
        match drover::store::scratch_postgres().await {
            Some(url) => {
                let label = format!("postgres, {daemons} daemon(s)");
                measure(&label, &url, daemons).await;
            }
            None => println!("postgres: no server answers; skipped"),
        }
    }
}
