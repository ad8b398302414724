//! Benchmark of `drover daemon` with the shipped runbooks: time from process
//! start to `/readyz` answering 200, resident memory when idle, and
//! authenticated `GET /v1/runs` per second. Run: `cargo bench --bench daemon`.

use std::io::Write;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const STARTS: usize = 5;

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

fn main() {
    let dir = std::env::temp_dir().join(format!("drover-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let runbooks = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("runbooks");
    // The digest of the token "bench".
    let digest = "1b32c28cb38c05480eccc1bd60ff97029b57a05c96718b96dad7e9d84894f549";
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let mut samples = Vec::new();
    let mut rss = 0;
    let mut rate = 0.0;
    for start in 0..STARTS {
        let port = free_port();
        let config = dir.join("drover.yaml");
        let mut f = std::fs::File::create(&config).unwrap();
        write!(
            f,
            "database: {{ url: \"sqlite://{}/audit.db\" }}\nrunbooks: {{ dir: \"{}\" }}\napi:\n  listen: 127.0.0.1:{port}\n  tokens: [{{ name: bench, role: viewer, sha256: {digest} }}]\ncloud: {{ auth: {{ method: token }} }}\n",
            dir.display(),
            runbooks.display()
        )
        .unwrap();
        let begin = Instant::now();
        let mut child = Command::new(env!("CARGO_BIN_EXE_drover"))
            .args(["daemon", "--config"])
            .arg(&config)
            .env("DROVER_CLOUD__AUTH__TOKEN", "unused")
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let client = reqwest::Client::new();
        let url = format!("http://127.0.0.1:{port}");
        let get = |path: &str, auth: bool| {
            let mut req = client.get(format!("{url}{path}"));
            if auth {
                req = req.bearer_auth("bench");
            }
            rt.block_on(async move {
                req.send()
                    .await
                    .map(|r| r.status().is_success())
                    .unwrap_or(false)
            })
        };
        loop {
            if get("/readyz", false) {
                break;
            }
            assert!(
                begin.elapsed() < Duration::from_secs(20),
                "the daemon did not become ready"
            );
            std::thread::sleep(Duration::from_millis(2));
        }
        samples.push(begin.elapsed());
        if start == STARTS - 1 {
            std::thread::sleep(Duration::from_secs(2));
            rss = rss_kib(child.id());
            let begin = Instant::now();
            let mut n = 0u32;
            while begin.elapsed() < Duration::from_secs(3) {
                assert!(get("/v1/runs", true));
                n += 1;
            }
            rate = f64::from(n) / begin.elapsed().as_secs_f64();
        }
        child.kill().ok();
        child.wait().ok();
    }
    samples.sort();
    println!(
        "drover daemon with the shipped runbooks: ready in median {:.0} ms (worst {:.0} ms, {STARTS} starts); idle RSS {:.1} MiB; GET /v1/runs {rate:.0} req/s (one client, sequential)",
        samples[STARTS / 2].as_secs_f64() * 1e3,
        samples[STARTS - 1].as_secs_f64() * 1e3,
        rss as f64 / 1024.0
    );
    let _ = std::fs::remove_dir_all(&dir);
}
