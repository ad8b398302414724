//! The daemon's API: every endpoint with every role, approvals, idempotency,
//! input errors, live events, cancel, reload, OpenAPI, health and metrics; and
//! the real binary killed mid-run and restarted.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use drover::config::Config;
use drover::daemon::Daemon;
use drover::sim::SimConfig;
use reqwest::Method;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use tokio_util::sync::CancellationToken;

use crate::helpers::{JsonHttp, Sim, repo, start_sim};

const ROLES: [&str; 5] = ["viewer", "auditor", "drill", "operator", "admin"];

pub(crate) struct Api {
    pub sim: Sim,
    pub daemon: Arc<Daemon>,
    pub url: String,
    http: reqwest::Client,
    json: JsonHttp,
    runbooks: std::path::PathBuf,
    shutdown: CancellationToken,
    _dir: tempfile::TempDir,
}

impl Drop for Api {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

pub(crate) fn token(role: &str) -> String {
    format!("token-of-{role}")
}

fn config_text(sim: &Sim, db: &std::path::Path, runbooks: &std::path::Path) -> String {
    config_text_for(sim, &format!("sqlite://{}", db.display()), runbooks)
}

/// The daemon's config with any database URL.
pub(crate) fn config_text_for(sim: &Sim, database: &str, runbooks: &std::path::Path) -> String {
    let creds = sim.sim.credentials();
    let mut tokens = String::new();
    for role in ROLES {
        tokens.push_str(&format!(
            "    - {{ name: {role}, role: {role}, sha256: {} }}\n",
            hex::encode(Sha256::digest(token(role).as_bytes()))
        ));
    }
    tokens.push_str(&format!(
        "    - {{ name: operator2, role: operator, sha256: {} }}\n",
        hex::encode(Sha256::digest(b"token-of-operator2"))
    ));
    format!(
        "database: {{ url: \"{database}\" }}\nrunbooks: {{ dir: \"{}\" }}\napi:\n  listen: 127.0.0.1:0\n  tokens:\n{tokens}cloud:\n  timeout: 3s\n  project_id: {}\n  iam_endpoint: {url}\n  evs_endpoint: {url}\n  sdrs_endpoint: {url}\n  auth: {{ method: password, user: {}, domain: {} }}\n",
        runbooks.display(),
        creds.project_id,
        creds.user,
        creds.domain,
        url = sim.url
    )
}

pub(crate) async fn start() -> Api {
    let sim = start_sim(SimConfig {
        evs_groups: vec!["g1".into(), "g2".into()],
        sdrs_groups: vec!["pg1".into()],
        transition: Duration::from_millis(300),
        ..SimConfig::default()
    })
    .await;
    let dir = tempfile::tempdir().unwrap();
    let runbooks = dir.path().join("runbooks");
    std::fs::create_dir(&runbooks).unwrap();
    for f in std::fs::read_dir(repo("runbooks")).unwrap() {
        let f = f.unwrap().path();
        std::fs::copy(&f, runbooks.join(f.file_name().unwrap())).unwrap();
    }
    let file = dir.path().join("drover.yaml");
    std::fs::write(
        &file,
        config_text(&sim, &dir.path().join("audit.db"), &runbooks),
    )
    .unwrap();
    let env: BTreeMap<String, String> = [(
        "DROVER_CLOUD__AUTH__PASSWORD".to_string(),
        sim.sim.credentials().password,
    )]
    .into();
    let config = Config::load_with_env(Some(&file), &env).unwrap();
    let daemon = Daemon::new(config, Some(file)).await.unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let shutdown = CancellationToken::new();
    tokio::spawn(drover::daemon::serve(
        daemon.clone(),
        drover::api::router(daemon.clone()),
        listener,
        shutdown.clone(),
    ));
    Api {
        sim,
        daemon,
        json: JsonHttp::new(&url),
        url,
        http: reqwest::Client::new(),
        runbooks,
        shutdown,
        _dir: dir,
    }
}

impl Api {
    async fn call(
        &self,
        who: Option<&str>,
        method: Method,
        path: &str,
        body: Option<Value>,
    ) -> (u16, Value) {
        let auth: Vec<(&str, String)> = who
            .map(|w| ("authorization", format!("Bearer {}", token(w))))
            .into_iter()
            .collect();
        self.json.call(method, path, &auth, body).await
    }

    async fn trigger(&self, who: &str, runbook: &str, group: &str) -> String {
        let (status, body) = self
            .call(
                Some(who),
                Method::POST,
                "/v1/runs",
                Some(json!({"runbook": runbook, "params": {"group_id": group}})),
            )
            .await;
        assert_eq!(status, 201, "{body}");
        body["id"].as_str().unwrap().to_string()
    }

    /// The run's detail once `check` holds: looked at again on each of the
    /// run's live events (and once a second, for a change no event follows).
    pub(crate) async fn wait_for(&self, id: &str, check: impl Fn(&Value) -> bool) -> Value {
        let mut events = self.daemon.subscribe(id);
        let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
        loop {
            let (_, detail) = self
                .call(Some("admin"), Method::GET, &format!("/v1/runs/{id}"), None)
                .await;
            if check(&detail) {
                return detail;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "run {id} never reached the expected state: {detail}"
            );
            let next = async {
                match &mut events {
                    Some(rx) => rx.recv().await.is_ok(),
                    None => std::future::pending().await,
                }
            };
            if let Ok(false) = tokio::time::timeout(Duration::from_secs(1), next).await {
                events = None; // the run ended here; its last state is stored
            }
        }
    }

    async fn audit_count(&self) -> usize {
        self.daemon.store().events(None).await.unwrap().len()
    }
}

fn waiting_for_approval(d: &Value) -> bool {
    d["steps"].as_array().is_some_and(|s| {
        s.iter()
            .any(|s| s["step_id"] == "approve" && s["output"]["awaiting_approvals"].is_number())
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_endpoint_with_every_role() {
    let api = start().await;
    let run = api.trigger("admin", "evs-switchover", "g1").await;
    api.wait_for(&run, waiting_for_approval).await;
    let switch = json!({"runbook": "evs-switchover", "params": {"group_id": "g2"}});
    // The round trip is called a drill but moves production twice: by its
    // effect it is a switchover, which the drill role may not start.
    let round_trip = json!({"runbook": "evs-round-trip-drill", "params": {"group_id": "g2"}});
    let drill = json!({"runbook": "sdrs-drill", "params": {"group_id": "pg1"}});
    // (method, path, body, roles allowed)
    let endpoints: Vec<(Method, String, Option<Value>, &[&str])> = vec![
        (Method::GET, "/v1/runs".into(), None, &ROLES),
        (Method::GET, format!("/v1/runs/{run}"), None, &ROLES),
        (Method::GET, "/v1/runbooks".into(), None, &ROLES),
        (Method::GET, format!("/v1/runs/{run}/report"), None, &ROLES),
        (Method::GET, "/v1/whoami".into(), None, &ROLES),
        (
            Method::GET,
            "/v1/runbooks/evs-switchover".into(),
            None,
            &ROLES,
        ),
        (
            Method::GET,
            "/v1/audit/events".into(),
            None,
            &["auditor", "admin"],
        ),
        (
            Method::GET,
            "/v1/audit/verify".into(),
            None,
            &["auditor", "admin"],
        ),
        (
            Method::POST,
            "/v1/runs".into(),
            Some(switch),
            &["operator", "admin"],
        ),
        (
            Method::POST,
            "/v1/runs".into(),
            Some(round_trip),
            &["operator", "admin"],
        ),
        (
            Method::POST,
            "/v1/runs".into(),
            Some(drill),
            &["drill", "operator", "admin"],
        ),
        (
            Method::POST,
            format!("/v1/runs/{run}/approvals"),
            Some(json!({"decision": "approve"})),
            &["operator", "admin"],
        ),
        (
            Method::POST,
            format!("/v1/runs/{run}/cancel"),
            None,
            &["operator", "admin"],
        ),
    ];
    // Forbidden and unauthenticated calls first: none may change anything.
    let before = (
        api.audit_count().await,
        api.daemon.store().runs(100).await.unwrap().len(),
    );
    for (method, path, body, allowed) in &endpoints {
        for role in ROLES.iter().filter(|r| !allowed.contains(r)) {
            let (status, answer) = api
                .call(Some(role), method.clone(), path, body.clone())
                .await;
            assert_eq!(status, 403, "{role} {method} {path}: {answer}");
            assert_eq!(answer["code"], "forbidden");
        }
        let (status, answer) = api.call(None, method.clone(), path, body.clone()).await;
        assert_eq!(
            (status, answer["code"].as_str()),
            (401, Some("unauthorized")),
            "no token {method} {path}"
        );
        let wrong = api
            .http
            .request(method.clone(), format!("{}{path}", api.url))
            .bearer_auth("not-a-token")
            .send()
            .await
            .unwrap();
        assert_eq!(wrong.status(), 401, "wrong token {method} {path}");
    }
    let after = (
        api.audit_count().await,
        api.daemon.store().runs(100).await.unwrap().len(),
    );
    assert_eq!(
        before, after,
        "forbidden and unauthenticated calls changed nothing"
    );

    // Every allowed read answers 200.
    for (method, path, body, allowed) in &endpoints {
        if *method != Method::GET {
            continue;
        }
        for role in *allowed {
            let (status, answer) = api
                .call(Some(role), method.clone(), path, body.clone())
                .await;
            assert_eq!(status, 200, "{role} {method} {path}: {answer}");
        }
    }
    // And each allowed change once, by its least-privileged role.
    let (status, _) = api
        .call(
            Some("drill"),
            Method::POST,
            "/v1/runs",
            Some(json!({"runbook": "sdrs-drill", "params": {"group_id": "pg1", "hold": "1s"}})),
        )
        .await;
    assert_eq!(status, 201, "drill may trigger a drill");
    let (status, approval) = api
        .call(
            Some("operator"),
            Method::POST,
            &format!("/v1/runs/{run}/approvals"),
            Some(json!({"decision": "approve", "comment": "go"})),
        )
        .await;
    assert_eq!(status, 201, "{approval}");
    assert_eq!(approval["approver"], "operator");
    let done = api
        .wait_for(&run, |d| d["run"]["status"] != "running")
        .await;
    assert_eq!(done["run"]["status"], "succeeded", "{done}");
    assert_eq!(done["approvals"][0]["approver"], "operator");
    let events = api.daemon.store().events(None).await.unwrap();
    assert!(
        events
            .iter()
            .any(|e| e.kind == "approval" && e.actor == "operator"),
        "the approval is an audit event with its actor"
    );
    assert!(
        events
            .iter()
            .any(|e| e.kind == "run.started" && e.actor == "admin")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn approvals_need_someone_other_than_the_requester_and_survive_in_the_store() {
    let api = start().await;
    let run = api.trigger("operator", "evs-switchover", "g1").await;
    api.wait_for(&run, waiting_for_approval).await;
    let (status, body) = api
        .call(
            Some("operator"),
            Method::POST,
            &format!("/v1/runs/{run}/approvals"),
            Some(json!({"decision": "approve"})),
        )
        .await;
    assert_eq!(
        (status, body["code"].as_str()),
        (403, Some("requester_cannot_approve"))
    );
    let (status, body) = api
        .call(
            Some("admin"),
            Method::POST,
            &format!("/v1/runs/{run}/approvals"),
            Some(json!({"decision": "maybe"})),
        )
        .await;
    assert_eq!(
        (status, body["code"].as_str()),
        (400, Some("malformed_json"))
    );
    let mut req = api
        .http
        .post(format!("{}/v1/runs/{run}/approvals", api.url))
        .bearer_auth("token-of-operator2");
    req = req.json(&json!({"decision": "approve"}));
    assert_eq!(req.send().await.unwrap().status(), 201);
    let (status, body) = api
        .call(
            Some("admin"),
            Method::POST,
            &format!("/v1/runs/{run}/approvals"),
            Some(json!({"decision": "approve"})),
        )
        .await;
    let done = api
        .wait_for(&run, |d| d["run"]["status"] != "running")
        .await;
    assert_eq!(done["run"]["status"], "succeeded");
    // One approver was needed and had approved: the late one is refused
    // (while the step still runs, or after it) and not recorded.
    assert_eq!(status, 409, "{body}");
    assert!(
        body["code"] == "approval_settled" || body["code"] == "no_approval_pending",
        "{body}"
    );
    let approvers: Vec<Value> = done["approvals"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["approver"].clone())
        .collect();
    assert_eq!(approvers, [json!("operator2")]);
    assert_eq!(
        api.sim
            .sim
            .journal()
            .iter()
            .filter(|e| e.endpoint == "evs.action" && e.changed)
            .count(),
        1
    );

    // A rejection fails the run before anything is sent.
    let run = api.trigger("operator", "evs-switchover", "g2").await;
    api.wait_for(&run, waiting_for_approval).await;
    let (status, _) = api
        .call(
            Some("admin"),
            Method::POST,
            &format!("/v1/runs/{run}/approvals"),
            Some(json!({"decision": "reject", "comment": "not now"})),
        )
        .await;
    assert_eq!(status, 201);
    let done = api
        .wait_for(&run, |d| d["run"]["status"] != "running")
        .await;
    assert_eq!(done["run"]["status"], "failed");
    assert!(
        done["run"]["error"]
            .as_str()
            .unwrap()
            .contains("was rejected by admin")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_requests_name_the_problem() {
    let api = start().await;
    let post = |body: &'static str| {
        api.http
            .post(format!("{}/v1/runs", api.url))
            .bearer_auth(token("admin"))
            .header("content-type", "application/json")
            .body(body)
    };
    let cases = [
        (
            "{\"runbook\": ",
            400,
            "malformed_json",
            "not a valid run request",
        ),
        (
            "{\"runbook\": \"evs-switchovr\"}",
            404,
            "unknown_runbook",
            "did you mean `evs-switchover`?",
        ),
        (
            "{\"runbook\": \"evs-switchover\"}",
            422,
            "invalid_params",
            "missing required parameter `group_id`",
        ),
        (
            "{\"runbook\": \"evs-switchover\", \"params\": {\"group_id\": {\"a\": 1}}}",
            400,
            "bad_param_type",
            "parameter `group_id` is of type string: expected a JSON string, found an object",
        ),
        (
            "{\"runbook\": \"evs-switchover\", \"params\": {\"group_id\": 17}}",
            400,
            "bad_param_type",
            "expected a JSON string, found a number",
        ),
        (
            "{\"runbook\": \"evs-switchover\", \"params\": {\"group_id\": \" g1\"}}",
            422,
            "invalid_params",
            "`group_id`: ` g1` is not an id",
        ),
        (
            "{\"runbook\": \"evs-az-switchover\", \"params\": {\"from_az\": \"eu-de-01\", \"max_parallel\": \"2 \"}}",
            422,
            "invalid_params",
            "expected an integer of at most 18 digits",
        ),
        (
            "{\"runbook\": \"evs-az-switchover\", \"params\": {\"from_az\": \"eu-de-01\", \"max_parallel\": 2.5}}",
            422,
            "invalid_params",
            "expected an integer of at most 18 digits, found 2.5",
        ),
        (
            "{\"runbook\": \"evs-az-switchover\", \"params\": {\"from_az\": \"eu-de-01\", \"group_ids\": [1, 2]}}",
            400,
            "bad_param_type",
            "a list holds strings only",
        ),
        (
            "{\"runbook\": \"evs-switchover\", \"params\": {\"group_id\": \"g1\", \"verify_timeout\": \"soon\"}}",
            422,
            "invalid_params",
            "expected one number and unit of at most a week",
        ),
        (
            "{\"runbook\": \"evs-switchover\", \"parms\": {}}",
            400,
            "malformed_json",
            "unknown field `parms`",
        ),
    ];
    for (body, status, code, phrase) in cases {
        let answer = post(body).send().await.unwrap();
        assert_eq!(answer.status().as_u16(), status, "{body}");
        let json: Value = answer.json().await.unwrap();
        assert_eq!(json["code"], code, "{body}");
        assert!(
            json["message"].as_str().unwrap().contains(phrase),
            "{body}: {json}"
        );
    }
    let first = api.trigger("admin", "evs-switchover", "g1").await;
    let (status, body) = api
        .call(
            Some("admin"),
            Method::POST,
            "/v1/runs",
            Some(json!({"runbook": "evs-round-trip-drill", "params": {"group_id": "g1"}})),
        )
        .await;
    assert_eq!(
        (status, body["code"].as_str()),
        (409, Some("target_in_use"))
    );
    assert!(body["message"].as_str().unwrap().contains(&first));
    let (status, _) = api
        .call(Some("admin"), Method::GET, "/v1/runs/nope", None)
        .await;
    assert_eq!(status, 404);

    // JSON integers and arrays are taken for integer and list parameters,
    // and recorded as the text a run keeps.
    let (status, body) = api
        .call(
            Some("admin"),
            Method::POST,
            "/v1/runs",
            Some(
                json!({"runbook": "evs-az-switchover", "dry_run": true, "params": {
                "from_az": "eu-de-01", "max_parallel": 2, "group_ids": ["g2"]}}),
            ),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    let run = api
        .daemon
        .store()
        .run(body["id"].as_str().unwrap())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(run.params["max_parallel"], "2");
    assert_eq!(run.params["group_ids"], r#"["g2"]"#);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_openapi_document_states_each_runbooks_parameters() {
    let api = start().await;
    let (status, doc) = api
        .call(Some("viewer"), Method::GET, "/v1/openapi.json", None)
        .await;
    assert_eq!(status, 200);
    let requests = doc["components"]["schemas"]["TriggerBody"]["oneOf"]
        .as_array()
        .unwrap();
    let names: Vec<&str> = requests
        .iter()
        .map(|r| r["properties"]["runbook"]["enum"][0].as_str().unwrap())
        .collect();
    assert!(
        names.contains(&"evs-switchover") && names.contains(&"sdrs-drill"),
        "{names:?}"
    );
    let switchover = requests
        .iter()
        .find(|r| r["title"] == "evs-switchover")
        .unwrap();
    let params = &switchover["properties"]["params"];
    assert_eq!(params["required"], json!(["group_id"]));
    assert_eq!(params["additionalProperties"], false);
    assert_eq!(
        params["properties"]["group_id"]["pattern"],
        "^[A-Za-z0-9-]{1,64}$"
    );
    assert_eq!(switchover["required"], json!(["runbook", "params"]));
    let plan = requests
        .iter()
        .find(|r| r["title"] == "evs-az-switchover")
        .unwrap();
    let max_parallel = &plan["properties"]["params"]["properties"]["max_parallel"];
    assert_eq!(max_parallel["type"], json!(["integer", "string"]));
    assert_eq!(max_parallel["default"], "10");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn untrusted_input_gets_bounded_answers_that_name_the_problem() {
    let api = start().await;
    let expect = |status: u16, body: &Value, want: u16, code: &str, phrase: &str| {
        assert_eq!(status, want, "{body}");
        assert_eq!(body["code"], code, "{body}");
        let message = body["message"].as_str().unwrap();
        assert!(message.contains(phrase), "{body}");
        assert!(
            message.len() < 500,
            "no echo of a huge value: {message:.100}"
        );
    };
    for bad in ["g2/../g1", "g1?x=1", "g1/"] {
        let (status, body) = api
            .call(
                Some("admin"),
                Method::POST,
                "/v1/runs",
                Some(json!({"runbook": "evs-switchover", "params": {"group_id": bad}})),
            )
            .await;
        expect(status, &body, 422, "invalid_params", "parameter `group_id`");
    }
    let huge = "g".repeat(70 * 1024);
    let (status, body) = api
        .call(
            Some("admin"),
            Method::POST,
            "/v1/runs",
            Some(json!({"runbook": "evs-switchover", "params": {"group_id": huge}})),
        )
        .await;
    expect(status, &body, 413, "body_too_large", "65536 bytes");
    let answer = api
        .http
        .post(format!("{}/v1/runs", api.url))
        .bearer_auth(token("admin"))
        .header("idempotency-key", "k".repeat(300))
        .json(&json!({"runbook": "evs-switchover", "params": {"group_id": "g1"}}))
        .send()
        .await
        .unwrap();
    let status = answer.status().as_u16();
    expect(
        status,
        &answer.json().await.unwrap(),
        400,
        "bad_idempotency_key",
        "1 to 255",
    );
    let id = api.trigger("admin", "evs-switchover", "g1").await;
    let (status, body) = api
        .call(
            Some("operator"),
            Method::POST,
            &format!("/v1/runs/{id}/approvals"),
            Some(json!({"decision": "approve", "comment": "c".repeat(1001)})),
        )
        .await;
    expect(status, &body, 400, "comment_too_long", "at most 1000");
    let long_id = "r".repeat(5000);
    for path in [
        format!("/v1/runs/{long_id}"),
        format!("/v1/runs/{long_id}/events"),
        "/v1/runs/..%2Fetc/events".to_string(),
    ] {
        let (status, body) = api.call(Some("admin"), Method::GET, &path, None).await;
        expect(status, &body, 404, "not_found", "a run id is a UUID");
    }
    assert!(
        api.daemon.store().runs(10).await.unwrap().len() == 1,
        "only the good run"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_error_the_router_makes_is_json_with_a_code() {
    let api = start().await;
    let send = |method: Method, path: &str| {
        api.http
            .request(method, format!("{}{path}", api.url))
            .bearer_auth(token("admin"))
    };
    let read = |answer: reqwest::Response| async move {
        let status = answer.status().as_u16();
        let kind = answer.headers()["content-type"]
            .to_str()
            .unwrap()
            .to_string();
        let allow = answer
            .headers()
            .get("allow")
            .map(|v| v.to_str().unwrap().to_string());
        let body: Value = answer.json().await.unwrap();
        assert!(kind.starts_with("application/json"), "{kind}: {body}");
        assert!(!body["message"].as_str().unwrap().is_empty(), "{body}");
        (status, body["code"].as_str().unwrap().to_string(), allow)
    };
    let (status, code, _) = read(send(Method::GET, "/v1/nothing-here").send().await.unwrap()).await;
    assert_eq!((status, code.as_str()), (404, "not_found"));
    let (status, code, allow) = read(send(Method::DELETE, "/v1/runs").send().await.unwrap()).await;
    assert_eq!((status, code.as_str()), (405, "method_not_allowed"));
    assert!(allow.unwrap().contains("POST"), "the Allow header stays");
    let plain = send(Method::POST, "/v1/runs")
        .header("content-type", "text/plain")
        .body(r#"{"runbook": "evs-switchover", "params": {"group_id": "g1"}}"#)
        .send()
        .await
        .unwrap();
    let (status, code, _) = read(plain).await;
    assert_eq!((status, code.as_str()), (415, "unsupported_media_type"));
    let broken = send(Method::POST, "/v1/runs")
        .header("content-type", "application/json")
        .body("{not json")
        .send()
        .await
        .unwrap();
    let (status, code, _) = read(broken).await;
    assert_eq!((status, code.as_str()), (400, "malformed_json"));
    for query in ["limit=abc", "status=sleeping"] {
        let answer = send(Method::GET, &format!("/v1/runs?{query}"))
            .send()
            .await
            .unwrap();
        let (status, code, _) = read(answer).await;
        assert_eq!((status, code.as_str()), (400, "bad_request"), "{query}");
    }
    for query in ["limit=0", "limit=1001"] {
        let answer = send(Method::GET, &format!("/v1/runs?{query}"))
            .send()
            .await
            .unwrap();
        let (status, code, _) = read(answer).await;
        assert_eq!((status, code.as_str()), (400, "bad_limit"), "{query}");
    }
    let answer = send(Method::GET, "/v1/runs?limit=1000&status=running")
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), 200);
    assert!(
        api.daemon.store().runs(10).await.unwrap().is_empty(),
        "no run started"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idempotency_key_returns_the_same_run() {
    let api = start().await;
    let send = |body: Value| {
        api.http
            .post(format!("{}/v1/runs", api.url))
            .bearer_auth(token("admin"))
            .header("Idempotency-Key", "change-4711")
            .json(&body)
            .send()
    };
    let body = json!({"runbook": "evs-switchover", "params": {"group_id": "g1"}});
    let first = send(body.clone()).await.unwrap();
    assert_eq!(first.status(), 201);
    let first: Value = first.json().await.unwrap();
    let again = send(body).await.unwrap();
    assert_eq!(again.status(), 200);
    let again: Value = again.json().await.unwrap();
    assert_eq!(first["id"], again["id"]);
    let other = send(json!({"runbook": "evs-switchover", "params": {"group_id": "g2"}}))
        .await
        .unwrap();
    assert_eq!(other.status(), 422);
    assert_eq!(api.daemon.store().runs(10).await.unwrap().len(), 1);

    // Eight retries of one request at the same moment start one run.
    let retry = |_| {
        api.http
            .post(format!("{}/v1/runs", api.url))
            .bearer_auth(token("admin"))
            .header("Idempotency-Key", "change-4712")
            .json(&json!({"runbook": "evs-switchover", "params": {"group_id": "g2"}}))
            .send()
    };
    let answers = futures_util::future::join_all((0..8).map(retry)).await;
    let mut ids = std::collections::BTreeSet::new();
    for answer in answers {
        let answer = answer.unwrap();
        let status = answer.status().as_u16();
        let body: Value = answer.json().await.unwrap();
        assert!(status == 200 || status == 201, "{status} {body}");
        ids.insert(body["id"].as_str().unwrap().to_string());
    }
    assert_eq!(ids.len(), 1, "one run for one key: {ids:?}");
    assert_eq!(api.daemon.store().runs(10).await.unwrap().len(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_stream_live_and_cancel_stops_at_a_boundary() {
    let api = start().await;
    let run = api.trigger("admin", "evs-switchover", "g1").await;
    let mut stream = api
        .http
        .get(format!("{}/v1/runs/{run}/events", api.url))
        .bearer_auth(token("viewer"))
        .send()
        .await
        .unwrap();
    assert_eq!(stream.headers()["content-type"], "text/event-stream");
    let mut seen = String::new();
    while !seen.contains("event: awaiting_approval") {
        seen.push_str(&String::from_utf8_lossy(
            &stream.chunk().await.unwrap().unwrap(),
        ));
    }
    assert!(seen.starts_with("event: snapshot"), "{seen}");
    let (status, body) = api
        .call(
            Some("operator"),
            Method::POST,
            &format!("/v1/runs/{run}/cancel"),
            None,
        )
        .await;
    assert_eq!(status, 202, "{body}");
    while let Some(chunk) = stream.chunk().await.unwrap() {
        seen.push_str(&String::from_utf8_lossy(&chunk));
    }
    assert!(
        seen.contains("event: run_finished") && seen.contains("\"status\":\"cancelled\""),
        "{seen}"
    );
    let done = api
        .wait_for(&run, |d| d["run"]["status"] != "running")
        .await;
    assert_eq!(done["run"]["status"], "cancelled");
    assert_eq!(done["run"]["cancel_requested_by"], "operator");
    let steps: BTreeMap<String, String> = done["steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            (
                s["step_id"].as_str().unwrap().into(),
                s["status"].as_str().unwrap().into(),
            )
        })
        .collect();
    assert_eq!(steps["switchover"], "skipped");
    assert_eq!(
        steps["notify"], "skipped",
        "finally steps still ran (and their `when` was false)"
    );
    assert_eq!(
        api.sim
            .sim
            .journal()
            .iter()
            .filter(|e| e.endpoint == "evs.action")
            .count(),
        0
    );
    let (status, body) = api
        .call(
            Some("operator"),
            Method::POST,
            &format!("/v1/runs/{run}/cancel"),
            None,
        )
        .await;
    assert_eq!(
        (status, body["code"].as_str()),
        (409, Some("run_not_running"))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn runbooks_show_next_fires_and_a_broken_reload_keeps_the_previous_version() {
    let api = start().await;
    std::fs::write(
        api.runbooks.join("nightly.yaml"),
        "name: nightly\nkind: drill\nsteps:\n  - { id: look, action: evs.check_group, with: { group: g2 } }\nschedules:\n  - { name: n, cron: \"30 2 * * *\", timezone: Europe/Berlin }\n",
    )
    .unwrap();
    api.daemon.reload().await;
    let (_, list) = api
        .call(Some("viewer"), Method::GET, "/v1/runbooks", None)
        .await;
    let nightly = list["runbooks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["name"] == "nightly")
        .unwrap()
        .clone();
    let next = nightly["schedules"][0]["next_fire"].as_str().unwrap();
    let next = chrono::DateTime::parse_from_rfc3339(next).unwrap();
    assert_eq!(
        next.with_timezone(&chrono_tz::Europe::Berlin)
            .format("%H:%M")
            .to_string(),
        "02:30"
    );

    let path = api.runbooks.join("evs-switchover.yaml");
    let good = std::fs::read_to_string(&path).unwrap();
    std::fs::write(
        &path,
        good.replace("action: evs.switchover", "action: evs.switchovr"),
    )
    .unwrap();
    api.daemon.reload().await;
    let (_, list) = api
        .call(Some("viewer"), Method::GET, "/v1/runbooks", None)
        .await;
    assert!(
        list["runbooks"]
            .as_array()
            .unwrap()
            .iter()
            .any(|r| r["name"] == "evs-switchover"),
        "the previous version stays"
    );
    let invalid = &list["invalid"][0];
    assert!(
        invalid["file"]
            .as_str()
            .unwrap()
            .ends_with("evs-switchover.yaml")
    );
    assert!(
        invalid["errors"][0]
            .as_str()
            .unwrap()
            .contains("did you mean `evs.switchover`?"),
        "{invalid}"
    );
    assert_eq!(
        api.trigger("admin", "evs-switchover", "g1").await.len(),
        36,
        "still runnable"
    );
    assert!(
        api.daemon
            .store()
            .events(None)
            .await
            .unwrap()
            .iter()
            .any(|e| e.kind == "config.reload")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn openapi_health_and_metrics_need_no_token() {
    let api = start().await;
    let (status, doc) = api.call(None, Method::GET, "/v1/openapi.json", None).await;
    assert_eq!(status, 200);
    for path in [
        "/v1/runs",
        "/v1/runs/{id}",
        "/v1/runs/{id}/events",
        "/v1/runs/{id}/cancel",
        "/v1/runs/{id}/approvals",
        "/v1/runbooks",
        "/v1/runbooks/{name}",
        "/v1/audit/events",
        "/v1/audit/verify",
    ] {
        assert!(
            doc["paths"][path].is_object(),
            "{path} in the served document"
        );
    }
    assert_eq!(
        doc["openapi"].as_str().map(|v| v.starts_with("3.")),
        Some(true)
    );
    assert_eq!(api.call(None, Method::GET, "/healthz", None).await.0, 200);
    assert_eq!(api.call(None, Method::GET, "/readyz", None).await.0, 200);
    std::fs::write(
        api.runbooks.join("quick-drill.yaml"),
        "name: quick-drill\nkind: drill\nparams: { group_id: { required: true } }\nsteps:\n  - { id: look, action: evs.check_group, with: { group: \"{{ params.group_id }}\" } }\n",
    )
    .unwrap();
    api.daemon.reload().await;
    let run = api.trigger("admin", "quick-drill", "g1").await;
    api.wait_for(&run, |d| d["run"]["status"] == "succeeded")
        .await;
    // The metrics observer follows the run's events on its own task.
    let finished = "drover_runs_finished_total{runbook=\"quick-drill\",outcome=\"succeeded\"} 1";
    until(async || {
        let (_, m) = api.call(None, Method::GET, "/metrics", None).await;
        m.as_str().is_some_and(|t| t.contains(finished))
    })
    .await;
    let (status, metrics) = api.call(None, Method::GET, "/metrics", None).await;
    assert_eq!(status, 200);
    let text = metrics.as_str().unwrap();
    assert!(
        text.contains("drover_runs_started_total{runbook=\"quick-drill\"} 1"),
        "{text}"
    );
    assert!(
        text.contains(
            "drover_runs_finished_total{runbook=\"quick-drill\",outcome=\"succeeded\"} 1"
        ),
        "{text}"
    );
    assert!(
        text.contains("drover_last_successful_drill_timestamp_seconds{runbook=\"quick-drill\"}"),
        "{text}"
    );
    assert!(
        text.contains("drover_step_duration_seconds_bucket"),
        "{text}"
    );
}

/// The real `drover daemon` process.
pub(crate) struct Process {
    pub child: std::process::Child,
    pub url: String,
    /// Everything it logged so far.
    pub log: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
}

/// A test's daemon does not outlive the test.
impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A config on the simulator with the shipped runbooks and a SQLite file,
/// in a directory that lives as long as the returned guard.
fn shipped_config(sim: &Sim) -> (tempfile::TempDir, std::path::PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("drover.yaml");
    std::fs::write(
        &config,
        config_text(sim, &dir.path().join("audit.db"), &repo("runbooks")),
    )
    .unwrap();
    (dir, config)
}

/// SIGTERM: the daemon exits 0, well within its grace period.
async fn stops_promptly(daemon: Process) {
    let asked = std::time::Instant::now();
    signal(&daemon, "TERM");
    let exit = tokio::task::spawn_blocking(move || {
        let mut daemon = daemon;
        daemon.child.wait().unwrap()
    })
    .await
    .unwrap();
    assert!(exit.success(), "graceful stop exits 0");
    let took = asked.elapsed();
    assert!(
        took < drover::daemon::SHUTDOWN_GRACE / 4,
        "the daemon took {took:?} to stop"
    );
}

/// A switchover of g1 started on the daemon at `url`, waiting for its approval.
async fn switchover_awaiting_approval(url: &str) -> String {
    let (status, created) = JsonHttp::new(url)
        .call(
            Method::POST,
            "/v1/runs",
            &[("authorization", format!("Bearer {}", token("admin")))],
            Some(json!({"runbook": "evs-switchover", "params": {"group_id": "g1"}})),
        )
        .await;
    assert_eq!(status, 201, "{created}");
    let run = created["id"].as_str().unwrap().to_string();
    until(async || step_status(url, &run, "approve").await.1 == "running").await;
    run
}

fn spawn_daemon(config: &std::path::Path, password: &str) -> Process {
    spawn_daemon_with(config, password, &[])
}

/// The real daemon with extra environment (`DROVER_NODE__NAME`, ...).
pub(crate) fn spawn_daemon_with(
    config: &std::path::Path,
    password: &str,
    env: &[(&str, &str)],
) -> Process {
    use std::io::BufRead;
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_drover"))
        .args(["daemon", "--config"])
        .arg(config)
        .envs(env.iter().copied())
        .env("DROVER_CLOUD__AUTH__PASSWORD", password)
        .env("RUST_LOG", "info")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    let log = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let lines = log.clone();
    std::thread::spawn(move || {
        let mut sent = false;
        for line in std::io::BufReader::new(stderr)
            .lines()
            .map_while(Result::ok)
        {
            lines.lock().unwrap().push(line.clone());
            if !sent && let Some(at) = line.find("serving http://") {
                let url = line[at + "serving ".len()..]
                    .split("/v1")
                    .next()
                    .unwrap()
                    .to_string();
                let _ = tx.send(url);
                sent = true;
            }
        }
    });
    let url = rx
        .recv_timeout(Duration::from_secs(20))
        .expect("the daemon logs the address it serves");
    Process { child, url, log }
}

pub(crate) fn signal(p: &Process, name: &str) {
    let status = std::process::Command::new("kill")
        .args([&format!("-{name}"), &p.child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
}

pub(crate) async fn step_status(url: &str, run: &str, step: &str) -> (String, String) {
    let (_, d) = JsonHttp::new(url)
        .call(
            Method::GET,
            &format!("/v1/runs/{run}"),
            &[("authorization", format!("Bearer {}", token("admin")))],
            None,
        )
        .await;
    let s = d["steps"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["step_id"] == step)
        .unwrap()["status"]
        .as_str()
        .unwrap()
        .to_string();
    (d["run"]["status"].as_str().unwrap().to_string(), s)
}

pub(crate) async fn until(mut check: impl AsyncFnMut() -> bool) {
    for _ in 0..800 {
        if check().await {
            return;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("condition never met");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_daemon_resumes_the_run_with_one_switchover_and_keeps_pending_approvals() {
    let sim = start_sim(SimConfig {
        evs_groups: vec!["g1".into()],
        transition: Duration::from_secs(4),
        ..SimConfig::default()
    })
    .await;
    let (dir, config) = shipped_config(&sim);
    let password = sim.sim.credentials().password;
    let http = reqwest::Client::new();

    let mut daemon = spawn_daemon(&config, &password);
    let created: Value = http
        .post(format!("{}/v1/runs", daemon.url))
        .bearer_auth(token("admin"))
        .json(&json!({"runbook": "evs-switchover", "params": {"group_id": "g1"}}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let run = created["id"].as_str().unwrap().to_string();
    until(async || step_status(&daemon.url, &run, "approve").await.1 == "running").await;
    daemon.child.kill().unwrap(); // SIGKILL while the approval is pending
    daemon.child.wait().unwrap();

    let mut daemon = spawn_daemon(&config, &password);
    until(async || step_status(&daemon.url, &run, "approve").await.1 == "running").await;
    let approved = http
        .post(format!("{}/v1/runs/{run}/approvals", daemon.url))
        .bearer_auth(token("operator"))
        .json(&json!({"decision": "approve"}))
        .send()
        .await
        .unwrap();
    assert_eq!(
        approved.status(),
        201,
        "the pending approval survived the restart"
    );
    until(async || step_status(&daemon.url, &run, "verify").await.1 == "running").await;
    daemon.child.kill().unwrap(); // SIGKILL while waiting for `active`
    daemon.child.wait().unwrap();

    let mut daemon = spawn_daemon(&config, &password);
    until(async || step_status(&daemon.url, &run, "verify").await.0 == "succeeded").await;
    let changed = sim
        .sim
        .journal()
        .iter()
        .filter(|e| e.endpoint == "evs.action" && e.changed)
        .count();
    assert_eq!(changed, 1, "exactly one switchover");

    // SIGHUP reloads (an audit event), SIGTERM stops cleanly.
    signal(&daemon, "HUP");
    until(async || {
        let (_, events) = JsonHttp::new(&daemon.url)
            .call(
                Method::GET,
                "/v1/audit/events",
                &[("authorization", format!("Bearer {}", token("admin")))],
                None,
            )
            .await;
        events
            .as_array()
            .is_some_and(|e| e.iter().any(|e| e["kind"] == "config.reload"))
    })
    .await;
    signal(&daemon, "TERM");
    let status = tokio::task::spawn_blocking(move || daemon.child.wait().unwrap())
        .await
        .unwrap();
    assert!(status.success(), "graceful stop exits 0");
    let store = drover::store::Store::open(&format!(
        "sqlite://{}",
        dir.path().join("audit.db").display()
    ))
    .await
    .unwrap();
    assert!(
        store
            .events(None)
            .await
            .unwrap()
            .iter()
            .any(|e| e.kind == "config.reload" && e.actor == "signal")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_runs_client_triggers_approves_follows_and_cancels() {
    let api = start().await;
    let client = |who: &str, args: &[&str]| {
        let mut c = std::process::Command::new(env!("CARGO_BIN_EXE_drover"));
        c.arg("runs")
            .arg("--server")
            .arg(&api.url)
            .args(args)
            .env("DROVER_TOKEN", token(who));
        c
    };
    let out = client(
        "operator",
        &[
            "trigger",
            "evs-switchover",
            "-p",
            "group_id=g1",
            "--idempotency-key",
            "k1",
        ],
    )
    .output()
    .unwrap();
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(
        out.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let run = text.split_whitespace().nth(1).unwrap().to_string();
    api.wait_for(&run, waiting_for_approval).await;

    let follow = client("viewer", &["show", &run, "--follow"])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let out = client("operator", &["approve", &run]).output().unwrap();
    assert_eq!(
        out.status.code(),
        Some(1),
        "the requester cannot approve: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stderr).contains("requester_cannot_approve"));
    let out = client("admin", &["approve", &run, "--comment", "window open"])
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&out.stdout).contains("step `approve` approved by admin"));
    let followed = tokio::task::spawn_blocking(move || follow.wait_with_output().unwrap())
        .await
        .unwrap();
    let text = String::from_utf8_lossy(&followed.stdout);
    assert!(followed.status.success(), "{text}");
    assert!(
        text.contains("approved by admin") && text.contains(&format!("run {run} succeeded")),
        "{text}"
    );

    let list = client("viewer", &["list"]).output().unwrap();
    assert!(String::from_utf8_lossy(&list.stdout).contains(&run));
    let show = client("viewer", &["show", &run]).output().unwrap();
    assert!(String::from_utf8_lossy(&show.stdout).contains("switchover         succeeded"));

    let out = client(
        "operator",
        &["trigger", "evs-switchover", "-p", "group_id=g2"],
    )
    .output()
    .unwrap();
    let second = String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .nth(1)
        .unwrap()
        .to_string();
    let out = client("operator", &["cancel", &second]).output().unwrap();
    assert!(out.status.success());
    api.wait_for(&second, |d| d["run"]["status"] == "cancelled")
        .await;
    let out = client("viewer", &["cancel", &second]).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("403"));
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_drover"))
        .args(["runs", "--server", &api.url, "list"])
        .env_remove("DROVER_TOKEN")
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&out.stderr).contains("set DROVER_TOKEN"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn schedules_fire_runs_in_the_daemon() {
    let api = start().await;
    // Seconds field: fires every two seconds.
    std::fs::write(
        api.runbooks.join("tick.yaml"),
        "name: tick\nkind: drill\nsteps:\n  - { id: look, action: evs.check_group, with: { group: g2 } }\nschedules:\n  - { name: every-2s, cron: \"*/2 * * * * *\" }\n",
    )
    .unwrap();
    api.daemon.reload().await;
    let scheduled = async || {
        api.daemon
            .store()
            .runs(10)
            .await
            .unwrap()
            .into_iter()
            .filter(|r| r.trigger == "schedule")
            .collect::<Vec<_>>()
    };
    until(async || scheduled().await.iter().any(|r| r.status == "succeeded")).await;
    let runs = scheduled().await;
    let run = runs
        .iter()
        .find(|r| r.status == "succeeded")
        .expect("a scheduled run succeeded");
    assert_eq!(
        (run.runbook.as_str(), run.requested_by.as_str()),
        ("tick", "schedule:every-2s")
    );
    let fires = api.daemon.store().fires("tick", "every-2s").await.unwrap();
    assert!(
        fires
            .iter()
            .any(|(_, outcome, id)| outcome == "started" && id.as_deref() == Some(run.id.as_str()))
    );
}

/// SIGTERM while a run is in a step: the step ends, the run stops at the
/// boundary (still running, resumable), the daemon exits as soon as it did
/// rather than after its grace period, and the next start finishes the run.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_stops_a_run_at_its_step_boundary_and_exits_promptly() {
    let sim = start_sim(SimConfig::default()).await;
    let dir = tempfile::tempdir().unwrap();
    let runbooks = dir.path().join("runbooks");
    std::fs::create_dir(&runbooks).unwrap();
    std::fs::write(
        runbooks.join("two.yaml"),
        "name: two\nkind: maintenance\nsteps:\n  - { id: first, action: sleep, with: { duration: 1s } }\n  - { id: second, action: sleep, with: { duration: 1s } }\n",
    )
    .unwrap();
    let config = dir.path().join("drover.yaml");
    std::fs::write(
        &config,
        config_text(&sim, &dir.path().join("audit.db"), &runbooks),
    )
    .unwrap();
    let password = sim.sim.credentials().password;
    let daemon = spawn_daemon(&config, &password);
    let (status, created) = JsonHttp::new(&daemon.url)
        .call(
            Method::POST,
            "/v1/runs",
            &[("authorization", format!("Bearer {}", token("admin")))],
            Some(json!({"runbook": "two"})),
        )
        .await;
    assert_eq!(status, 201, "{created}");
    let run = created["id"].as_str().unwrap().to_string();
    until(async || step_status(&daemon.url, &run, "first").await.0 == "running").await;
    stops_promptly(daemon).await;
    let daemon = spawn_daemon(&config, &password);
    until(async || step_status(&daemon.url, &run, "second").await.0 == "succeeded").await;
    assert_eq!(step_status(&daemon.url, &run, "first").await.0, "succeeded");
}

/// SIGTERM while a run waits for an approval: the wait ends at once (it is
/// not a call in flight), the daemon exits without using its grace period,
/// and the next start finds the approval still pending and goes on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_ends_an_approval_wait_and_the_next_start_asks_again() {
    let sim = start_sim(SimConfig {
        evs_groups: vec!["g1".into()],
        transition: Duration::from_millis(300),
        ..SimConfig::default()
    })
    .await;
    let (_dir, config) = shipped_config(&sim);
    let password = sim.sim.credentials().password;
    let daemon = spawn_daemon(&config, &password);
    let run = switchover_awaiting_approval(&daemon.url).await;
    stops_promptly(daemon).await;
    let daemon = spawn_daemon(&config, &password);
    until(async || step_status(&daemon.url, &run, "approve").await.1 == "running").await;
    let (status, answer) = JsonHttp::new(&daemon.url)
        .call(
            Method::POST,
            &format!("/v1/runs/{run}/approvals"),
            &[("authorization", format!("Bearer {}", token("operator")))],
            Some(json!({"decision": "approve"})),
        )
        .await;
    assert_eq!(status, 201, "{answer}");
    until(async || step_status(&daemon.url, &run, "moved").await.0 == "succeeded").await;
    let moves = sim
        .sim
        .journal()
        .iter()
        .filter(|e| e.endpoint == "evs.action" && e.changed)
        .count();
    assert_eq!(moves, 1, "exactly one switchover");
}
