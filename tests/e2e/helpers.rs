//! Shared helpers: paths into the repository and running the real binary.

use std::path::PathBuf;
use std::process::{Command, Output};

/// A path relative to the repository root.
pub fn repo(path: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(path)
}

/// Runs the built `drover` binary with `args` from the repository root.
pub fn drover(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_drover"))
        .args(args)
        .current_dir(repo(""))
        .output()
        .expect("the drover binary runs")
}

/// Standard output as text.
pub fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// JSON over HTTP for the API tests (the daemon's and the simulator's): one
/// call, its status and its body as JSON (a body that is not JSON as a string).
pub struct JsonHttp {
    /// The client, for requests a test builds by hand.
    pub client: reqwest::Client,
    /// Base URL.
    pub base: String,
}

impl JsonHttp {
    pub fn new(base: &str) -> Self {
        JsonHttp {
            client: reqwest::Client::new(),
            base: base.to_string(),
        }
    }

    /// `method base+path` with `headers` and an optional JSON body.
    pub async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        headers: &[(&str, String)],
        body: Option<serde_json::Value>,
    ) -> (u16, serde_json::Value) {
        let mut req = self.client.request(method, format!("{}{path}", self.base));
        for (name, value) in headers {
            req = req.header(*name, value);
        }
        if let Some(b) = body {
            req = req.json(&b);
        }
        let answer = req.send().await.unwrap();
        let status = answer.status().as_u16();
        let text = answer.text().await.unwrap();
        (
            status,
            serde_json::from_str(&text).unwrap_or(serde_json::Value::String(text)),
        )
    }
}

/// A simulator served on a free loopback port, stopped when dropped.
pub struct Sim {
    /// The simulator (state, journal, control).
    pub sim: drover::sim::Simulator,
    /// Its base URL.
    pub url: String,
    shutdown: tokio_util::sync::CancellationToken,
}

impl Drop for Sim {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

/// Starts a simulator with `config` on port 0.
pub async fn start_sim(config: drover::sim::SimConfig) -> Sim {
    let shutdown = tokio_util::sync::CancellationToken::new();
    let sim = drover::sim::Simulator::new(config).expect("valid simulator config");
    let addr = sim
        .clone()
        .spawn("127.0.0.1:0", shutdown.clone())
        .await
        .expect("bind port 0");
    Sim {
        sim,
        url: format!("http://{addr}"),
        shutdown,
    }
}

/// Cloud settings pointing every service at the simulator, with `auth`.
pub fn cloud_config(sim: &Sim, auth: drover::config::CloudAuth) -> drover::config::CloudConfig {
    drover::config::CloudConfig {
        region: "eu-de".into(),
        project_id: None,
        project_name: None,
        iam_endpoint: sim.url.clone(),
        evs_endpoint: Some(sim.url.clone()),
        sdrs_endpoint: Some(sim.url.clone()),
        auth,
        timeout: std::time::Duration::from_secs(5),
        connect_timeout: std::time::Duration::from_secs(2),
        tls_ca_file: None,
        rate: Default::default(),
    }
}

/// Password auth with the simulator's credentials.
pub fn password_auth(sim: &Sim) -> drover::config::CloudAuth {
    let creds = sim.sim.credentials();
    drover::config::CloudAuth::Password {
        user: creds.user,
        domain: creds.domain,
        password: secrecy::SecretString::from(creds.password),
    }
}

/// A client for the simulator with password auth.
pub fn client(sim: &Sim) -> drover::cloud::CloudClient {
    drover::cloud::CloudClient::new(&cloud_config(sim, password_auth(sim))).expect("client")
}

/// The journal's endpoint names with their answered statuses, in order.
pub fn calls(sim: &Sim) -> Vec<(String, Option<u16>)> {
    sim.sim
        .journal()
        .into_iter()
        .map(|e| (e.endpoint, e.status))
        .collect()
}

/// Writes a config file pointing `drover` at the simulator and database `db`
/// (cloud request timeout 3 s); the password goes in `DROVER_CLOUD__AUTH__PASSWORD`.
pub fn write_config(sim: &Sim, db: &std::path::Path, dir: &std::path::Path) -> PathBuf {
    write_config_for(sim, &format!("sqlite://{}", db.display()), dir)
}

/// The same config with any database URL (`postgres://...` too).
pub fn write_config_for(sim: &Sim, database: &str, dir: &std::path::Path) -> PathBuf {
    let creds = sim.sim.credentials();
    let path = dir.join("drover.yaml");
    let text = format!(
        "database: {{ url: \"{database}\" }}\nrunbooks: {{ dir: \"{}\" }}\ncloud:\n  timeout: 3s\n  project_id: {}\n  iam_endpoint: {url}\n  evs_endpoint: {url}\n  sdrs_endpoint: {url}\n  auth: {{ method: password, user: {}, domain: {} }}\n",
        repo("runbooks").display(),
        creds.project_id,
        creds.user,
        creds.domain,
        url = sim.url
    );
    std::fs::write(&path, text).unwrap();
    path
}

/// A `drover` command with `--config` and the simulator's password in the environment.
pub fn drover_with(config: &std::path::Path, sim: &Sim, args: &[&str]) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_drover"));
    c.args(args)
        .arg("--config")
        .arg(config)
        .env(
            "DROVER_CLOUD__AUTH__PASSWORD",
            sim.sim.credentials().password,
        )
        .current_dir(repo(""));
    c
}
