//! The OTC simulator: the only code that pretends to be OTC. It follows the
//! reference pages, not drover's client, so tests against it prove what was
//! sent. `drover sim` serves it; tests and `drover demo` run it in-process.
//!
//! It serves IAM tokens, the EVS replication consistency group API and the
//! SDRS protection group / job / drill API with their documented paths,
//! bodies, status codes, error shapes and state machines; injects faults
//! ([`faults`]); and keeps a journal of every request (`GET /_sim/journal`).
//! Control endpoints under `/_sim/` create groups, force states, move the
//! simulator's clock, set faults and reset.

mod control;
pub mod evs;
pub mod faults;
pub mod iam;
mod listing;
mod route;
pub mod sdrs;
mod versions;

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use axum::Router;
use axum::routing::{get, patch, post};
use chrono::{DateTime, Utc};
use rand::rngs::StdRng;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use evs::{EvsGroup, Refusal};
use faults::{Fault, Faults, Forced};
use iam::Credentials;
use sdrs::Sdrs;

/// How the simulator starts.
#[derive(Debug, Clone)]
pub struct SimConfig {
    /// Accepted credentials and the project.
    pub credentials: Credentials,
    /// Lifetime of issued tokens.
    pub token_lifetime: Duration,
    /// How long EVS transitions and SDRS jobs take.
    pub transition: Duration,
    /// Seed of the fault draws.
    pub seed: u64,
    /// Initial faults.
    pub faults: Faults,
    /// EVS groups to create at start (healthy, production in `eu-de-01`).
    pub evs_groups: Vec<String>,
    /// SDRS protection groups to create at start (protected, production on `source`).
    pub sdrs_groups: Vec<String>,
    /// The journal keeps this many most recent requests.
    pub journal_limit: usize,
}

impl Default for SimConfig {
    fn default() -> Self {
        SimConfig {
            credentials: Credentials::default(),
            token_lifetime: Duration::from_secs(24 * 3600),
            transition: Duration::from_secs(3),
            seed: 1,
            faults: Faults::default(),
            evs_groups: Vec::new(),
            sdrs_groups: Vec::new(),
            journal_limit: 100_000,
        }
    }
}

/// One request as the simulator saw it. Credentials are never recorded: the
/// password in a token request is replaced, tokens and signatures are omitted.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct JournalEntry {
    /// Order of arrival, from 1.
    pub seq: u64,
    /// Simulator time of the answer, milliseconds.
    pub at_ms: u64,
    /// Endpoint name (`evs.action`, `sdrs.job`, ... or `unknown`).
    pub endpoint: String,
    /// HTTP method.
    pub method: String,
    pub path: String,
    /// Query string, if any.
    pub query: Option<String>,
    /// `token`, `aksk` or `none`.
    pub auth: String,
    /// Request body (JSON, or text as a string, or null).
    pub body: Value,
    /// Status answered; `None` when the connection was reset.
    pub status: Option<u16>,
    /// Body answered.
    pub response: Value,
    /// True when the request changed simulator state.
    pub changed: bool,
    /// The injected fault, if any.
    pub fault: Option<Fault>,
}

struct Token {
    expires: Duration,
}

struct SimState {
    creds: Credentials,
    token_lifetime: Duration,
    transition: Duration,
    evs: BTreeMap<String, EvsGroup>,
    sdrs: Sdrs,
    tokens: HashMap<String, Token>,
    faults: Faults,
    rng: StdRng,
    journal: VecDeque<JournalEntry>,
    journal_limit: usize,
    requests: u64,
    started: tokio::time::Instant,
    offset: Duration,
    epoch: DateTime<Utc>,
}

impl SimState {
    fn now(&self) -> Duration {
        self.started.elapsed() + self.offset
    }

    fn wall(&self, at: Duration) -> DateTime<Utc> {
        self.epoch + chrono::Duration::from_std(at).unwrap_or_default()
    }

    fn advance(&mut self) {
        let now = self.now();
        self.evs.values_mut().for_each(|g| g.advance(now));
        self.sdrs.advance(now);
    }
}

/// A running or ready-to-run simulator. Cloning shares the state.
#[derive(Clone)]
pub struct Simulator {
    state: Arc<Mutex<SimState>>,
}

/// What the API handler decided, before the journal entry is written.
struct Answer {
    status: Option<u16>,
    body: Value,
    headers: Vec<(&'static str, String)>,
    changed: bool,
}

impl Answer {
    fn json(status: u16, body: Value) -> Self {
        Answer {
            status: Some(status),
            body,
            headers: Vec::new(),
            changed: false,
        }
    }
    fn refusal(r: Refusal) -> Self {
        Answer::json(r.status, r.body)
    }
    fn changed(mut self) -> Self {
        self.changed = true;
        self
    }
}

impl Simulator {
    /// A simulator with the given configuration (groups created, nothing served yet).
    pub fn new(config: SimConfig) -> Result<Self, String> {
        config.faults.validate()?;
        let epoch = Utc::now();
        let mut state = SimState {
            creds: config.credentials,
            token_lifetime: config.token_lifetime,
            transition: config.transition,
            evs: BTreeMap::new(),
            sdrs: Sdrs::new(epoch, config.transition),
            tokens: HashMap::new(),
            faults: config.faults,
            rng: faults::rng(config.seed),
            journal: VecDeque::new(),
            journal_limit: config.journal_limit.max(1),
            requests: 0,
            started: tokio::time::Instant::now(),
            offset: Duration::ZERO,
            epoch,
        };
        for id in config.evs_groups {
            let group = EvsGroup::new(&id, "eu-de-01", "eu-de-02", state.transition);
            state.evs.insert(id, group);
        }
        for id in config.sdrs_groups {
            state.sdrs.add_group(&id, Duration::ZERO);
        }
        Ok(Simulator {
            state: Arc::new(Mutex::new(state)),
        })
    }

    fn lock(&self) -> MutexGuard<'_, SimState> {
        // A panic while holding the lock leaves plain data behind; keep serving.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The HTTP routes: the cloud APIs and `/_sim/` control.
    pub fn router(&self) -> Router {
        Router::new()
            .route(
                "/_sim/journal",
                get(control::control_journal).delete(control::control_clear_journal),
            )
            .route(
                "/_sim/faults",
                get(control::control_get_faults).put(control::control_put_faults),
            )
            .route("/_sim/faults/forced", post(control::control_force))
            .route("/_sim/evs/groups", post(control::control_add_evs))
            .route("/_sim/evs/groups/{id}", patch(control::control_patch_evs))
            .route("/_sim/sdrs/groups", post(control::control_add_sdrs))
            .route("/_sim/sdrs/groups/{id}", patch(control::control_patch_sdrs))
            .route("/_sim/clock", post(control::control_clock))
            .route("/_sim/reset", post(control::control_reset))
            .fallback(route::api)
            .with_state(self.clone())
    }

    /// Serves on `listener` until `shutdown` is cancelled.
    pub async fn serve(
        self,
        listener: TcpListener,
        shutdown: CancellationToken,
    ) -> std::io::Result<()> {
        axum::serve(listener, self.router())
            .with_graceful_shutdown(shutdown.cancelled_owned())
            .await
    }

    /// Binds `addr` (port 0 for any), starts serving in the background, and
    /// returns the bound address.
    pub async fn spawn(
        self,
        addr: &str,
        shutdown: CancellationToken,
    ) -> std::io::Result<std::net::SocketAddr> {
        let listener = TcpListener::bind(addr).await?;
        let bound = listener.local_addr()?;
        tokio::spawn(self.serve(listener, shutdown));
        Ok(bound)
    }

    /// The accepted credentials and project.
    pub fn credentials(&self) -> Credentials {
        self.lock().creds.clone()
    }

    /// The requests so far (the most recent `journal_limit`), oldest first.
    pub fn journal(&self) -> Vec<JournalEntry> {
        self.lock().journal.iter().cloned().collect()
    }

    /// Replaces the fault configuration.
    pub fn set_faults(&self, faults: Faults) -> Result<(), String> {
        faults.validate()?;
        self.lock().faults = faults;
        Ok(())
    }

    /// Adds a forced fault.
    pub fn force(&self, forced: Forced) {
        self.lock().faults.forced.push(forced);
    }

    /// Adds a healthy EVS group with production in `primary`.
    pub fn add_evs_group(&self, id: &str, primary: &str, secondary: &str) {
        let mut s = self.lock();
        let group = EvsGroup::new(id, primary, secondary, s.transition);
        s.evs.insert(id.to_string(), group);
    }

    /// Reads or changes an EVS group (after finishing due transitions).
    pub fn with_evs_group<R>(&self, id: &str, f: impl FnOnce(&mut EvsGroup) -> R) -> Option<R> {
        let mut s = self.lock();
        s.advance();
        s.evs.get_mut(id).map(f)
    }

    /// Adds a protected SDRS group with production on the source side.
    pub fn add_sdrs_group(&self, id: &str) {
        let mut s = self.lock();
        let now = s.now();
        s.sdrs.add_group(id, now);
    }

    /// Reads or changes the SDRS state (after finishing due jobs).
    pub fn with_sdrs<R>(&self, f: impl FnOnce(&mut Sdrs) -> R) -> R {
        let mut s = self.lock();
        s.advance();
        f(&mut s.sdrs)
    }

    /// Moves the simulator's clock forward (transitions, jobs and token expiry).
    pub fn advance_clock(&self, by: Duration) {
        let mut s = self.lock();
        s.offset += by;
        s.advance();
    }
}

#[cfg(test)]
mod tests {
    use super::route::Route;
    use super::*;
    use axum::http::Method;

    #[test]
    fn routes_follow_the_documented_paths() {
        let p = "0123456789abcdef0123456789abcdef";
        let cases = [
            ("POST", "/v3/auth/tokens".to_string(), "iam.token"),
            (
                "GET",
                format!("/v2/{p}/os-vendor-replication-consistency-groups"),
                "evs.list",
            ),
            (
                "GET",
                format!("/v2/{p}/os-vendor-replication-consistency-groups/g1"),
                "evs.get",
            ),
            (
                "POST",
                format!("/v2/{p}/os-vendor-replication-consistency-groups/g1/action"),
                "evs.action",
            ),
            ("GET", format!("/v1/{p}/server-groups"), "sdrs.list"),
            ("GET", format!("/v1/{p}/server-groups/pg"), "sdrs.get"),
            (
                "POST",
                format!("/v1/{p}/server-groups/pg/action"),
                "sdrs.action",
            ),
            ("GET", format!("/v1/{p}/jobs/j"), "sdrs.job"),
            (
                "POST",
                format!("/v1/{p}/disaster-recovery-drills"),
                "sdrs.drill.create",
            ),
            (
                "GET",
                format!("/v1/{p}/disaster-recovery-drills"),
                "sdrs.drill.list",
            ),
            (
                "GET",
                format!("/v1/{p}/disaster-recovery-drills/d"),
                "sdrs.drill.get",
            ),
            (
                "DELETE",
                format!("/v1/{p}/disaster-recovery-drills/d"),
                "sdrs.drill.delete",
            ),
            ("PUT", format!("/v1/{p}/server-groups/pg"), "sdrs.rename"),
            (
                "PUT",
                format!("/v1/{p}/disaster-recovery-drills/d"),
                "sdrs.drill.rename",
            ),
            ("GET", "/".to_string(), "versions"),
            ("GET", "/v2/".to_string(), "versions"),
            ("GET", "/v4".to_string(), "unknown"),
            (
                "DELETE",
                format!("/v2/{p}/os-vendor-replication-consistency-groups/g1/action"),
                "unknown",
            ),
        ];
        for (method, path, want) in &cases {
            let got =
                Route::parse(&Method::from_bytes(method.as_bytes()).unwrap(), path).endpoint();
            assert_eq!(got, *want, "{method} {path}");
        }
        for name in faults::ENDPOINTS {
            assert!(cases.iter().any(|c| c.2 == *name), "{name} is routed");
        }
    }
}
