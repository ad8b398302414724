//! Benchmark of `drover sim`: time from process start to the first answered
//! request, and GETs of a consistency group per second from a separate load
//! process over loopback. Targets: ready well under 1 s; at least 5,000 GET/s.
//! Run: `cargo bench --bench sim`.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

const STARTS: usize = 5;
const CONNECTIONS: usize = 32;
const LOAD: Duration = Duration::from_secs(5);

fn start() -> (std::process::Child, String, Duration) {
    let begin = Instant::now();
    let mut child = Command::new(env!("CARGO_BIN_EXE_drover"))
        .args(["sim", "--listen", "127.0.0.1:0", "--evs-group", "g1"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("drover sim starts");
    let mut line = String::new();
    BufReader::new(child.stdout.take().expect("stdout"))
        .read_line(&mut line)
        .expect("ready line");
    let url = line
        .split_whitespace()
        .find(|w| w.starts_with("http://"))
        .expect("url")
        .to_string();
    // Ready means answering, not just printing.
    let probe = std::net::TcpStream::connect(url.trim_start_matches("http://")).expect("connect");
    drop(probe);
    (child, url, begin.elapsed())
}

fn main() {
    let mut ready: Vec<Duration> = (0..STARTS)
        .map(|_| {
            let (mut child, _, took) = start();
            child.kill().ok();
            child.wait().ok();
            took
        })
        .collect();
    ready.sort();

    let (mut child, url, _) = start();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("runtime");
    let (count, elapsed) = rt.block_on(async {
        let http = reqwest::Client::builder().pool_max_idle_per_host(CONNECTIONS).build().expect("client");
        let body = serde_json::json!({"auth": {"identity": {"methods": ["password"], "password": {"user": {
            "name": "drover", "password": "sim-password", "domain": {"name": "drover-sim"}}}},
            "scope": {"project": {"name": "eu-de"}}}});
        let answer = http.post(format!("{url}/v3/auth/tokens")).json(&body).send().await.expect("token");
        let token = answer.headers()["x-subject-token"].to_str().expect("token text").to_string();
        let path = format!("{url}/v2/0123456789abcdef0123456789abcdef/os-vendor-replication-consistency-groups/g1");
        let count = Arc::new(AtomicU64::new(0));
        let begin = Instant::now();
        let tasks: Vec<_> = (0..CONNECTIONS)
            .map(|_| {
                let (http, path, token, count) = (http.clone(), path.clone(), token.clone(), count.clone());
                tokio::spawn(async move {
                    while begin.elapsed() < LOAD {
                        let r = http.get(&path).header("x-auth-token", &token).send().await.expect("GET");
                        assert_eq!(r.status(), 200);
                        r.bytes().await.expect("body");
                        count.fetch_add(1, Ordering::Relaxed);
                    }
                })
            })
            .collect();
        for t in tasks {
            t.await.expect("load task");
        }
        (count.load(Ordering::Relaxed), begin.elapsed())
    });
    child.kill().ok();
    child.wait().ok();

    let rate = count as f64 / elapsed.as_secs_f64();
    println!(
        "drover sim ready: median {:.1} ms, worst {:.1} ms over {STARTS} starts (target well under 1000 ms)",
        ready[STARTS / 2].as_secs_f64() * 1e3,
        ready[STARTS - 1].as_secs_f64() * 1e3
    );
    println!(
        "drover sim GET group: {count} requests in {:.1} s over {CONNECTIONS} connections = {rate:.0} req/s (target >= 5000): {}",
        elapsed.as_secs_f64(),
        if rate >= 5000.0 { "met" } else { "MISSED" }
    );
}
