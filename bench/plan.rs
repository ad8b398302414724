//! Benchmark: recovery plans. The shipped `evs-az-switchover` runbook over 1,
//! 100 and 1,000 EVS groups against the in-process simulator (2 s
//! transition, no rate limit, no faults), all groups in flight at once
//! (`max_parallel` = the group count), audit store on a SQLite file.
//! Prints the wall time of each plan and its ratio to the one-group plan,
//! audit events written per second and per write transaction (how well
//! group commit shares them), and the process's peak resident memory
//! (simulator included) after each size.
//! Run: `cargo bench --bench plan`.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use drover::cloud::CloudClient;
use drover::config::{CloudAuth, CloudConfig};
use drover::engine::{Approvals, Engine, RunEvent, RunRequest};
use drover::sim::{SimConfig, Simulator};
use drover::store::{RunStatus, Store, Trigger};
use tokio_util::sync::CancellationToken;

const SIZES: &[usize] = &[1, 100, 1_000];

fn peak_rss_mib() -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        .map_or(f64::NAN, |kb| kb / 1024.0)
}

#[tokio::main]
async fn main() {
    let groups: Vec<String> = (1..=*SIZES.last().unwrap())
        .map(|i| format!("g{i:04}"))
        .collect();
    let mut one = None;
    for &size in SIZES {
        let shutdown = CancellationToken::new();
        let sim = Simulator::new(SimConfig {
            evs_groups: groups[..size].to_vec(),
            transition: Duration::from_secs(2),
            ..SimConfig::default()
        })
        .expect("simulator");
        let addr = sim
            .clone()
            .spawn("127.0.0.1:0", shutdown.clone())
            .await
            .unwrap();
        let url = format!("http://{addr}");
        let creds = sim.credentials();
        let client = CloudClient::new(&CloudConfig {
            region: "eu-de".into(),
            project_id: None,
            project_name: None,
            iam_endpoint: url.clone(),
            evs_endpoint: Some(url.clone()),
            sdrs_endpoint: Some(url),
            auth: CloudAuth::Password {
                user: creds.user,
                domain: creds.domain,
                password: secrecy::SecretString::from(creds.password),
            },
            timeout: Duration::from_secs(30),
            connect_timeout: Duration::from_secs(5),
            tls_ca_file: None,
            rate: Default::default(),
        })
        .unwrap();
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&format!(
            "sqlite://{}",
            dir.path().join("audit.db").display()
        ))
        .await
        .unwrap();
        let engine = Engine::new(
            Arc::new(client),
            store.clone(),
            Arc::new(|_: &RunEvent| {}),
            Approvals::Given(vec!["bench".into()]),
        )
        .with_env(BTreeMap::new());
        let runbook = drover::runbook::load(Path::new("runbooks/evs-az-switchover.yaml")).unwrap();
        let params: BTreeMap<String, String> = [
            ("from_az".to_string(), "eu-de-01".to_string()),
            ("max_parallel".to_string(), size.to_string()),
        ]
        .into();
        let start = Instant::now();
        let summary = engine
            .run(
                RunRequest {
                    runbook,
                    params,
                    trigger: Trigger::Cli,
                    requested_by: "bench".into(),
                    idempotency: None,
                    dry_run: false,
                    fire: None,
                },
                &CancellationToken::new(),
            )
            .await
            .unwrap();
        let took = start.elapsed();
        assert_eq!(summary.status, RunStatus::Succeeded, "{:?}", summary.error);
        let events = store.events(None).await.unwrap().len();
        let transactions = store.transactions().await;
        let moved = (0..size)
            .filter(|i| {
                sim.with_evs_group(&groups[*i], |g| g.priority_station == "eu-de-02") == Some(true)
            })
            .count();
        assert_eq!(moved, size, "every group moved");
        let base = *one.get_or_insert(took.as_secs_f64());
        println!(
            "{size:>5} groups: {:6.2} s ({:.2}x the one-group plan), {events} audit events ({:.0}/s) in {transactions} write transactions ({:.1} events each), peak RSS {:.1} MiB",
            took.as_secs_f64(),
            took.as_secs_f64() / base,
            events as f64 / took.as_secs_f64(),
            events as f64 / transactions.max(1) as f64,
            peak_rss_mib()
        );
        shutdown.cancel();
    }
}
