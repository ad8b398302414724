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

pub mod evs;
pub mod faults;
pub mod iam;
pub mod sdrs;

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, patch, post};
use chrono::{DateTime, Utc};
use rand::Rng;
use rand::rngs::StdRng;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::cloud::vocabulary::{
    EvsStatus, FaultLevel, PriorityStation, ReplicationStatus, SdrsStatus,
};
use evs::{EvsAction, EvsGroup, Refusal};
use faults::{Fault, Faults, Forced};
use iam::Credentials;
use sdrs::{Sdrs, SdrsAction};

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
    /// Path.
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
                get(control_journal).delete(control_clear_journal),
            )
            .route(
                "/_sim/faults",
                get(control_get_faults).put(control_put_faults),
            )
            .route("/_sim/faults/forced", post(control_force))
            .route("/_sim/evs/groups", post(control_add_evs))
            .route("/_sim/evs/groups/{id}", patch(control_patch_evs))
            .route("/_sim/sdrs/groups", post(control_add_sdrs))
            .route("/_sim/sdrs/groups/{id}", patch(control_patch_sdrs))
            .route("/_sim/clock", post(control_clock))
            .route("/_sim/reset", post(control_reset))
            .fallback(api)
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

// ---- the cloud API ---------------------------------------------------------

/// Which API a request is for, from method and path.
#[derive(Debug, Clone, PartialEq)]
enum Route {
    Token,
    EvsList(String),
    EvsGet(String, String),
    EvsAction(String, String),
    SdrsList(String),
    SdrsGet(String, String),
    SdrsAction(String, String),
    Job(String, String),
    DrillCreate(String),
    DrillList(String),
    DrillGet(String, String),
    DrillDelete(String, String),
    Unknown,
}

impl Route {
    fn parse(method: &Method, path: &str) -> Route {
        let segs: Vec<String> = path
            .trim_matches('/')
            .split('/')
            .map(str::to_string)
            .collect();
        let s: Vec<&str> = segs.iter().map(String::as_str).collect();
        let m = method.as_str();
        const EVS: &str = "os-vendor-replication-consistency-groups";
        match (m, s.as_slice()) {
            ("POST", ["v3", "auth", "tokens"]) => Route::Token,
            ("GET", ["v2", p, EVS]) => Route::EvsList(p.to_string()),
            ("GET", ["v2", p, EVS, id]) => Route::EvsGet(p.to_string(), id.to_string()),
            ("POST", ["v2", p, EVS, id, "action"]) => {
                Route::EvsAction(p.to_string(), id.to_string())
            }
            ("GET", ["v1", p, "server-groups"]) => Route::SdrsList(p.to_string()),
            ("GET", ["v1", p, "server-groups", id]) => {
                Route::SdrsGet(p.to_string(), id.to_string())
            }
            ("POST", ["v1", p, "server-groups", id, "action"]) => {
                Route::SdrsAction(p.to_string(), id.to_string())
            }
            ("GET", ["v1", p, "jobs", id]) => Route::Job(p.to_string(), id.to_string()),
            ("POST", ["v1", p, "disaster-recovery-drills"]) => Route::DrillCreate(p.to_string()),
            ("GET", ["v1", p, "disaster-recovery-drills"]) => Route::DrillList(p.to_string()),
            ("GET", ["v1", p, "disaster-recovery-drills", id]) => {
                Route::DrillGet(p.to_string(), id.to_string())
            }
            ("DELETE", ["v1", p, "disaster-recovery-drills", id]) => {
                Route::DrillDelete(p.to_string(), id.to_string())
            }
            _ => Route::Unknown,
        }
    }

    fn endpoint(&self) -> &'static str {
        match self {
            Route::Token => "iam.token",
            Route::EvsList(_) => "evs.list",
            Route::EvsGet(..) => "evs.get",
            Route::EvsAction(..) => "evs.action",
            Route::SdrsList(_) => "sdrs.list",
            Route::SdrsGet(..) => "sdrs.get",
            Route::SdrsAction(..) => "sdrs.action",
            Route::Job(..) => "sdrs.job",
            Route::DrillCreate(_) => "sdrs.drill.create",
            Route::DrillList(_) => "sdrs.drill.list",
            Route::DrillGet(..) => "sdrs.drill.get",
            Route::DrillDelete(..) => "sdrs.drill.delete",
            Route::Unknown => "unknown",
        }
    }

    fn project(&self) -> Option<&str> {
        match self {
            Route::Token | Route::Unknown => None,
            Route::EvsList(p)
            | Route::SdrsList(p)
            | Route::DrillCreate(p)
            | Route::DrillList(p)
            | Route::EvsGet(p, _)
            | Route::EvsAction(p, _)
            | Route::SdrsGet(p, _)
            | Route::SdrsAction(p, _)
            | Route::Job(p, _)
            | Route::DrillGet(p, _)
            | Route::DrillDelete(p, _) => Some(p),
        }
    }
}

fn gateway_error(code: &str, message: &str, request_id: &str) -> Value {
    json!({ "error_msg": message, "error_code": code, "request_id": request_id })
}

/// Replaces every `password` value so the journal never holds one.
fn redact(value: &mut Value) {
    match value {
        Value::Object(map) => {
            for (k, v) in map.iter_mut() {
                if k == "password" && v.is_string() {
                    *v = json!("[REDACTED]");
                } else {
                    redact(v);
                }
            }
        }
        Value::Array(items) => items.iter_mut().for_each(redact),
        _ => {}
    }
}

/// Every API request is processed to the end in its own task, even if the
/// client disconnects meanwhile: a real service does not notice a client that
/// died, and crash tests depend on requests that land after the crash.
async fn api(
    State(sim): State<Simulator>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    match tokio::spawn(process(sim, method, uri, headers, body)).await {
        Ok(response) => response,
        Err(_) => StatusCode::INTERNAL_SERVER_ERROR.into_response(),
    }
}

async fn process(
    sim: Simulator,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let route = Route::parse(&method, uri.path());
    let endpoint = route.endpoint();
    let (fault, latency, retry_after) = {
        let mut s = sim.lock();
        let SimState { faults, rng, .. } = &mut *s;
        let fault = if route == Route::Unknown {
            None
        } else {
            faults.draw(endpoint, rng)
        };
        let rule = faults.rule(endpoint);
        (
            fault,
            rule.map_or(0, |r| r.latency_ms),
            rule.and_then(|r| r.retry_after),
        )
    };
    if latency > 0 {
        tokio::time::sleep(Duration::from_millis(latency)).await;
    }

    let mut s = sim.lock();
    s.advance();
    s.requests += 1;
    let seq = s.requests;
    let request_id = format!("{:032x}", seq);
    let mut auth = "none";
    let answer = match fault {
        Some(Fault::Reset) => Answer {
            status: None,
            body: Value::Null,
            headers: Vec::new(),
            changed: false,
        },
        Some(f) if f != Fault::Ambiguous && f != Fault::Reset => {
            let status = f.status().unwrap_or(503);
            let mut a = Answer::json(
                status,
                gateway_error(&format!("SIM.{status}"), "simulated fault", &request_id),
            );
            if let (503, Some(secs)) = (status, retry_after) {
                a.headers.push(("retry-after", secs.to_string()));
            }
            a
        }
        _ => {
            let answer = match authenticate(&mut s, &route, &method, &uri, &headers, &body) {
                Ok(kind) => {
                    auth = kind;
                    handle(&mut s, &route, &uri, &body)
                }
                Err(a) => a,
            };
            if fault == Some(Fault::Ambiguous) {
                // The work is done; only the answer is lost behind a gateway timeout.
                Answer {
                    status: Some(504),
                    body: gateway_error(
                        "SIM.504",
                        "simulated gateway timeout after the request was processed",
                        &request_id,
                    ),
                    headers: Vec::new(),
                    changed: answer.changed,
                }
            } else {
                answer
            }
        }
    };

    let mut request_body = if body.is_empty() {
        Value::Null
    } else {
        serde_json::from_slice(&body)
            .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&body).into_owned()))
    };
    redact(&mut request_body);
    let entry = JournalEntry {
        seq,
        at_ms: u64::try_from(s.now().as_millis()).unwrap_or(u64::MAX),
        endpoint: endpoint.to_string(),
        method: method.to_string(),
        path: uri.path().to_string(),
        query: uri.query().map(str::to_string),
        auth: auth.to_string(),
        body: request_body,
        status: answer.status,
        response: answer.body.clone(),
        changed: answer.changed,
        fault,
    };
    if s.journal.len() >= s.journal_limit {
        s.journal.pop_front();
    }
    s.journal.push_back(entry);
    drop(s);

    let Some(status) = answer.status else {
        // Headers go out, then the body fails: the client loses the connection mid-answer.
        let failing = futures_util::stream::once(async {
            Err::<Bytes, std::io::Error>(std::io::Error::new(
                std::io::ErrorKind::ConnectionReset,
                "simulated reset",
            ))
        });
        return Response::builder()
            .status(StatusCode::OK)
            .body(Body::from_stream(failing))
            .unwrap_or_default();
    };
    let mut response = if answer.body.is_null() {
        StatusCode::from_u16(status)
            .unwrap_or(StatusCode::OK)
            .into_response()
    } else {
        (
            StatusCode::from_u16(status).unwrap_or(StatusCode::OK),
            axum::Json(answer.body),
        )
            .into_response()
    };
    let h = response.headers_mut();
    if let Ok(v) = HeaderValue::from_str(&request_id) {
        h.insert("x-request-id", v);
    }
    for (name, value) in answer.headers {
        if let Ok(v) = HeaderValue::from_str(&value) {
            h.insert(name, v);
        }
    }
    response
}

/// Checks the token or the AK/SK signature, and the project in the path.
fn authenticate(
    s: &mut SimState,
    route: &Route,
    method: &Method,
    uri: &Uri,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<&'static str, Answer> {
    let Some(project) = route.project() else {
        return Ok("none");
    };
    let unauthorized = |message: &str| Answer::json(401, gateway_error("APIG.1002", message, ""));
    let kind = if let Some(token) = headers.get("x-auth-token").and_then(|v| v.to_str().ok()) {
        let now = s.now();
        match s.tokens.get(token) {
            Some(t) if t.expires > now => "token",
            Some(_) => return Err(unauthorized("the token has expired")),
            None => return Err(unauthorized("incorrect token")),
        }
    } else if let Some(authorization) = headers.get("authorization").and_then(|v| v.to_str().ok()) {
        let lower: BTreeMap<String, String> = headers
            .iter()
            .filter_map(|(k, v)| {
                Some((
                    k.as_str().to_ascii_lowercase(),
                    v.to_str().ok()?.to_string(),
                ))
            })
            .collect();
        let skew = lower
            .get("x-sdk-date")
            .and_then(|d| chrono::NaiveDateTime::parse_from_str(d, "%Y%m%dT%H%M%SZ").ok())
            .map(|d| {
                (Utc::now() - d.and_utc())
                    .abs()
                    .to_std()
                    .unwrap_or_default()
            })
            .unwrap_or(Duration::MAX);
        let req = iam::SignedRequest {
            method: method.as_str(),
            raw_path: uri.path(),
            raw_query: uri.query().unwrap_or(""),
            headers: &lower,
            body,
        };
        if let Err(why) = iam::verify_signature(&req, authorization, &s.creds, skew) {
            let code = if why.contains("expired") {
                "APIG.0303"
            } else {
                "APIG.0301"
            };
            return Err(Answer::json(
                401,
                gateway_error(
                    code,
                    &format!("Incorrect app authentication information: {why}"),
                    "",
                ),
            ));
        }
        "aksk"
    } else {
        return Err(unauthorized("no X-Auth-Token or Authorization header"));
    };
    if project != s.creds.project_id {
        return Err(Answer::json(
            400,
            json!({ "error": { "message": format!("project {project} in the URI is not the project of the credentials"), "code": "Common.0018" } }),
        ));
    }
    Ok(kind)
}

fn query_param(uri: &Uri, name: &str) -> Option<String> {
    uri.query()?.split('&').find_map(|pair| {
        let (k, v) = pair.split_once('=')?;
        (k == name).then(|| {
            percent_encoding::percent_decode_str(&v.replace('+', " "))
                .decode_utf8_lossy()
                .into_owned()
        })
    })
}

fn bad_body(message: &str, sdrs: bool) -> Answer {
    if sdrs {
        Answer::json(
            400,
            json!({ "badrequest": { "message": message, "code": "SDRS.0005" } }),
        )
    } else {
        Answer::json(
            400,
            json!({ "badRequest": { "message": message, "code": "EVS.5400" } }),
        )
    }
}

/// The single key of a one-key JSON object body, and its value.
fn single_key(body: &[u8]) -> Option<(String, Value)> {
    let Ok(Value::Object(map)) = serde_json::from_slice::<Value>(body) else {
        return None;
    };
    if map.len() != 1 {
        return None;
    }
    map.into_iter().next()
}

fn handle(s: &mut SimState, route: &Route, uri: &Uri, body: &[u8]) -> Answer {
    let now = s.now();
    match route {
        Route::Token => issue_token(s, body),
        Route::EvsList(_) => {
            let status = query_param(uri, "status");
            let groups: Vec<Value> = s
                .evs
                .values()
                .filter(|g| status.as_deref().is_none_or(|st| g.status.as_str() == st))
                .map(EvsGroup::to_json)
                .collect();
            Answer::json(200, json!({ "replication_consistency_groups": groups }))
        }
        Route::EvsGet(_, id) => match s.evs.get(id) {
            Some(g) => Answer::json(200, json!({ "replication_consistency_group": g.to_json() })),
            None => Answer::refusal(Refusal::not_found(id)),
        },
        Route::EvsAction(_, id) => {
            let Some(group) = s.evs.get_mut(id) else {
                return Answer::refusal(Refusal::not_found(id));
            };
            let action = match single_key(body) {
                Some((key, Value::Null)) => EvsAction::from_key(&key),
                _ => None,
            };
            let Some(action) = action else {
                return bad_body(
                    "the body must be one action key with a null value, e.g. {\"os-reverse-replication-consistency-group\": null}",
                    false,
                );
            };
            match group.act(action, now) {
                Ok(()) => Answer::json(200, Value::Null).changed(),
                Err(r) => Answer::refusal(r),
            }
        }
        Route::SdrsList(_) => {
            let groups: Vec<Value> = s
                .sdrs
                .groups
                .values()
                .map(|g| s.sdrs.group_json(g))
                .collect();
            Answer::json(
                200,
                json!({ "count": groups.len(), "server_groups": groups }),
            )
        }
        Route::SdrsGet(_, id) => match s.sdrs.groups.get(id) {
            Some(g) => Answer::json(200, json!({ "server_group": s.sdrs.group_json(g) })),
            None => Answer::json(
                400,
                json!({ "badrequest": { "message": format!("protection group {id} not found"), "code": "SDRS.1013" } }),
            ),
        },
        Route::SdrsAction(_, id) => {
            let action = match single_key(body) {
                Some((k, Value::Object(_))) if k == "start-server-group" => Some(SdrsAction::Start),
                Some((k, Value::Object(_))) if k == "stop-server-group" => Some(SdrsAction::Stop),
                Some((k, Value::Object(_))) if k == "failover-server-group" => {
                    Some(SdrsAction::Failover)
                }
                Some((k, Value::Object(o))) if k == "reverse-server-group" => o
                    .get("priority_station")
                    .and_then(Value::as_str)
                    .and_then(PriorityStation::parse)
                    .map(SdrsAction::Reverse),
                _ => None,
            };
            let Some(action) = action else {
                return bad_body(
                    "the body must be one of start-server-group, stop-server-group, failover-server-group ({}) or reverse-server-group ({\"priority_station\": \"target\"|\"source\"})",
                    true,
                );
            };
            match s.sdrs.act(id, action, now) {
                Ok(job) => Answer::json(200, json!({ "job_id": job })).changed(),
                Err(r) => Answer::refusal(r),
            }
        }
        Route::Job(_, id) => match s.sdrs.jobs.get(id) {
            Some(j) => Answer::json(200, s.sdrs.job_json(j)),
            // Not documented; answered in the SDRS error shape.
            None => Answer::json(
                404,
                json!({ "error": { "message": format!("job {id} not found"), "code": "SDRS.0404" } }),
            ),
        },
        Route::DrillCreate(_) => {
            let Some((key, spec)) = single_key(body) else {
                return bad_body("missing disaster_recovery_drill", true);
            };
            let (Some(group), Some(name)) =
                (spec["server_group_id"].as_str(), spec["name"].as_str())
            else {
                return bad_body(
                    "disaster_recovery_drill needs server_group_id and name",
                    true,
                );
            };
            if key != "disaster_recovery_drill" {
                return bad_body("missing disaster_recovery_drill", true);
            }
            match s
                .sdrs
                .create_drill(group, name, spec["drill_vpc_id"].as_str(), now)
            {
                Ok(job) => Answer::json(200, json!({ "job_id": job })).changed(),
                Err(r) => Answer::refusal(r),
            }
        }
        Route::DrillList(_) => {
            let group = query_param(uri, "server_group_id");
            let name = query_param(uri, "name");
            let drills: Vec<Value> = s
                .sdrs
                .drills
                .values()
                .filter(|d| group.as_deref().is_none_or(|g| d.server_group_id == g))
                .filter(|d| name.as_deref().is_none_or(|n| d.name.contains(n)))
                .map(|d| s.sdrs.drill_json(d))
                .collect();
            Answer::json(
                200,
                json!({ "count": drills.len(), "disaster_recovery_drills": drills }),
            )
        }
        Route::DrillGet(_, id) => match s.sdrs.drills.get(id) {
            Some(d) => Answer::json(
                200,
                json!({ "disaster_recovery_drill": s.sdrs.drill_json(d) }),
            ),
            None => Answer::json(
                400,
                json!({ "badrequest": { "message": format!("DR drill {id} not found"), "code": "SDRS.1902" } }),
            ),
        },
        Route::DrillDelete(_, id) => match s.sdrs.delete_drill(id, now) {
            Ok(job) => Answer::json(200, json!({ "job_id": job })).changed(),
            Err(r) => Answer::refusal(r),
        },
        Route::Unknown => Answer::json(
            404,
            gateway_error(
                "APIG.0101",
                "the API does not exist or has not been published",
                "",
            ),
        ),
    }
}

fn issue_token(s: &mut SimState, body: &[u8]) -> Answer {
    let Ok(json) = serde_json::from_slice::<Value>(body) else {
        return Answer::json(
            400,
            json!({ "error": { "message": "the request body is not JSON", "code": 400, "title": "Bad Request" } }),
        );
    };
    match iam::check_password_body(&json, &s.creds) {
        Ok(()) => {
            let token = format!("MIIsim{:064x}", s.rng.random::<u128>());
            let now = s.now();
            let expires = now + s.token_lifetime;
            let fmt = |t: DateTime<Utc>| t.format("%Y-%m-%dT%H:%M:%S%.6fZ").to_string();
            let body = iam::token_body(&s.creds, &fmt(s.wall(now)), &fmt(s.wall(expires)));
            s.tokens.insert(token.clone(), Token { expires });
            let mut a = Answer::json(201, body).changed();
            a.headers.push(("x-subject-token", token));
            a
        }
        Err(iam::TokenRefusal::BadRequest(m)) => Answer::json(
            400,
            json!({ "error": { "message": m, "code": 400, "title": "Bad Request" } }),
        ),
        Err(iam::TokenRefusal::Unauthorized) => Answer::json(
            401,
            json!({ "error": { "message": "The request you have made requires authentication.", "code": 401, "title": "Unauthorized" } }),
        ),
    }
}

// ---- control endpoints -----------------------------------------------------

async fn control_journal(State(sim): State<Simulator>) -> axum::Json<Vec<JournalEntry>> {
    axum::Json(sim.journal())
}

async fn control_clear_journal(State(sim): State<Simulator>) -> StatusCode {
    sim.lock().journal.clear();
    StatusCode::NO_CONTENT
}

async fn control_get_faults(State(sim): State<Simulator>) -> axum::Json<Faults> {
    axum::Json(sim.lock().faults.clone())
}

fn control_error(message: String) -> Response {
    (
        StatusCode::BAD_REQUEST,
        axum::Json(json!({ "error": message })),
    )
        .into_response()
}

fn parse_json<T: for<'de> Deserialize<'de>>(body: &[u8]) -> Result<T, String> {
    serde_json::from_slice(body).map_err(|e| format!("invalid body: {e}"))
}

async fn control_put_faults(State(sim): State<Simulator>, body: Bytes) -> Response {
    let faults: Faults = match parse_json(&body) {
        Ok(f) => f,
        Err(e) => return control_error(e),
    };
    match sim.set_faults(faults) {
        Ok(()) => StatusCode::NO_CONTENT.into_response(),
        Err(e) => control_error(e),
    }
}

async fn control_force(State(sim): State<Simulator>, body: Bytes) -> Response {
    let forced: Forced = match parse_json(&body) {
        Ok(f) => f,
        Err(e) => return control_error(e),
    };
    let check = Faults {
        forced: vec![forced.clone()],
        ..Faults::default()
    };
    if let Err(e) = check.validate() {
        return control_error(e);
    }
    sim.force(forced);
    StatusCode::NO_CONTENT.into_response()
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NewEvsGroup {
    id: String,
    #[serde(default = "az1")]
    primary: String,
    #[serde(default = "az2")]
    secondary: String,
}

fn az1() -> String {
    "eu-de-01".into()
}
fn az2() -> String {
    "eu-de-02".into()
}

async fn control_add_evs(State(sim): State<Simulator>, body: Bytes) -> Response {
    match parse_json::<NewEvsGroup>(&body) {
        Ok(g) => {
            sim.add_evs_group(&g.id, &g.primary, &g.secondary);
            let json = sim.with_evs_group(&g.id, |g| g.to_json());
            (StatusCode::CREATED, axum::Json(json)).into_response()
        }
        Err(e) => control_error(e),
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct EvsPatch {
    status: Option<EvsStatus>,
    replication_status: Option<ReplicationStatus>,
    fault_level: Option<FaultLevel>,
    fail_next: Option<bool>,
}

async fn control_patch_evs(
    State(sim): State<Simulator>,
    Path(id): Path<String>,
    body: Bytes,
) -> Response {
    let p: EvsPatch = match parse_json(&body) {
        Ok(p) => p,
        Err(e) => return control_error(e),
    };
    let json = sim.with_evs_group(&id, |g| {
        if let Some(v) = p.status {
            g.status = v;
        }
        if let Some(v) = p.replication_status {
            g.replication_status = v;
        }
        if let Some(v) = p.fault_level {
            g.fault_level = v;
        }
        if let Some(v) = p.fail_next {
            g.fail_next = v;
        }
        g.to_json()
    });
    match json {
        Some(j) => axum::Json(j).into_response(),
        None => (
            StatusCode::NOT_FOUND,
            axum::Json(json!({ "error": format!("no EVS group {id}") })),
        )
            .into_response(),
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NewSdrsGroup {
    id: String,
}

async fn control_add_sdrs(State(sim): State<Simulator>, body: Bytes) -> Response {
    match parse_json::<NewSdrsGroup>(&body) {
        Ok(g) => {
            sim.add_sdrs_group(&g.id);
            let json = sim.with_sdrs(|s| s.groups.get(&g.id).map(|pg| s.group_json(pg)));
            (StatusCode::CREATED, axum::Json(json)).into_response()
        }
        Err(e) => control_error(e),
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SdrsPatch {
    status: Option<SdrsStatus>,
    priority_station: Option<PriorityStation>,
    fail_next: Option<bool>,
    null_status_fields: Option<bool>,
    replication_num: Option<u32>,
}

async fn control_patch_sdrs(
    State(sim): State<Simulator>,
    Path(id): Path<String>,
    body: Bytes,
) -> Response {
    let p: SdrsPatch = match parse_json(&body) {
        Ok(p) => p,
        Err(e) => return control_error(e),
    };
    let json = sim.with_sdrs(|s| {
        let g = s.groups.get_mut(&id)?;
        if let Some(v) = p.status {
            g.status = v;
        }
        if let Some(v) = p.priority_station {
            g.priority_station = v;
        }
        if let Some(v) = p.fail_next {
            g.fail_next = v;
        }
        if let Some(v) = p.null_status_fields {
            g.null_status_fields = v;
        }
        if let Some(v) = p.replication_num {
            g.replication_num = v;
        }
        let g = s.groups.get(&id)?;
        Some(s.group_json(g))
    });
    match json {
        Some(j) => axum::Json(j).into_response(),
        None => (
            StatusCode::NOT_FOUND,
            axum::Json(json!({ "error": format!("no protection group {id}") })),
        )
            .into_response(),
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ClockAdvance {
    advance_ms: u64,
}

async fn control_clock(State(sim): State<Simulator>, body: Bytes) -> Response {
    match parse_json::<ClockAdvance>(&body) {
        Ok(c) => {
            sim.advance_clock(Duration::from_millis(c.advance_ms));
            let now = sim.lock().now();
            axum::Json(json!({ "now_ms": now.as_millis() as u64 })).into_response()
        }
        Err(e) => control_error(e),
    }
}

async fn control_reset(State(sim): State<Simulator>) -> StatusCode {
    let mut s = sim.lock();
    s.evs.clear();
    let epoch = s.epoch;
    let transition = s.transition;
    s.sdrs = Sdrs::new(epoch, transition);
    s.tokens.clear();
    s.journal.clear();
    s.faults = Faults::default();
    StatusCode::NO_CONTENT
}

#[cfg(test)]
mod tests {
    use super::*;

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

    #[test]
    fn journal_bodies_never_hold_a_password() {
        let mut body = json!({"auth": {"identity": {"password": {"user": {"name": "u", "password": "hunter2"}}}}});
        redact(&mut body);
        assert!(!body.to_string().contains("hunter2"));
        assert_eq!(
            body["auth"]["identity"]["password"]["user"]["name"], "u",
            "only the secret is replaced"
        );
    }
}
