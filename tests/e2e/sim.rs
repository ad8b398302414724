//! The simulator over HTTP: its JSON has exactly the field names and types of
//! the reference examples, the control endpoints work, and `drover sim` starts
//! with faults from the command line.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::Duration;

use serde_json::{Value, json};

use crate::helpers::{JsonHttp, repo, start_sim};

/// The JSON type tree of a value: objects by key, arrays by their first item.
fn shape(v: &Value) -> Value {
    match v {
        Value::Null => json!("null"),
        Value::Bool(_) => json!("boolean"),
        Value::Number(_) => json!("number"),
        Value::String(_) => json!("string"),
        Value::Array(items) => json!([items.first().map(shape).unwrap_or(Value::Null)]),
        Value::Object(map) => {
            Value::Object(map.iter().map(|(k, v)| (k.clone(), shape(v))).collect())
        }
    }
}

fn reference(name: &str) -> Value {
    let text = std::fs::read_to_string(repo(&format!("tests/fixtures/reference/{name}"))).unwrap();
    serde_json::from_str(&text).unwrap()
}

struct Api {
    http: JsonHttp,
    token: String,
    project: String,
}

impl Api {
    async fn new(url: &str, creds: &drover::sim::iam::Credentials) -> Api {
        let http = reqwest::Client::new();
        let body = json!({"auth": {"identity": {"methods": ["password"], "password": {"user": {
            "name": creds.user, "password": creds.password, "domain": {"name": creds.domain}}}},
            "scope": {"project": {"id": creds.project_id}}}});
        let answer = http
            .post(format!("{url}/v3/auth/tokens"))
            .json(&body)
            .send()
            .await
            .unwrap();
        assert_eq!(answer.status(), 201, "IAM answers 201");
        let token = answer.headers()["x-subject-token"]
            .to_str()
            .unwrap()
            .to_string();
        let body: Value = answer.json().await.unwrap();
        assert_eq!(body["token"]["project"]["id"], creds.project_id.as_str());
        Api {
            http: JsonHttp::new(url),
            token,
            project: creds.project_id.clone(),
        }
    }

    async fn call(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> (u16, Value) {
        let path = path.replace("{p}", &self.project);
        self.http
            .call(method, &path, &[("x-auth-token", self.token.clone())], body)
            .await
    }
}

#[tokio::test]
async fn simulator_json_has_the_reference_field_names_and_types() {
    let sim = start_sim(drover::sim::SimConfig {
        evs_groups: vec!["g1".into()],
        sdrs_groups: vec!["pg1".into()],
        ..Default::default()
    })
    .await;
    let api = Api::new(&sim.url, &sim.sim.credentials()).await;
    use reqwest::Method;

    let (status, group) = api
        .call(
            Method::GET,
            "/v2/{p}/os-vendor-replication-consistency-groups/g1",
            None,
        )
        .await;
    assert_eq!(status, 200);
    assert_eq!(
        shape(&group),
        shape(&reference("evs-group.json")),
        "EVS group"
    );

    let (_, pg) = api
        .call(Method::GET, "/v1/{p}/server-groups/pg1", None)
        .await;
    assert_eq!(
        shape(&pg),
        shape(&reference("protection-group.json")),
        "protection group"
    );

    let (status, job) = api
        .call(
            Method::POST,
            "/v1/{p}/server-groups/pg1/action",
            Some(json!({"reverse-server-group": {"priority_station": "target"}})),
        )
        .await;
    assert_eq!(status, 200, "SDRS actions answer 200, not 202");
    assert_eq!(
        shape(&job),
        shape(&reference("job-action.json")),
        "action answer"
    );
    sim.sim.advance_clock(Duration::from_secs(60));
    let (_, done) = api
        .call(
            Method::GET,
            &format!("/v1/{{p}}/jobs/{}", job["job_id"].as_str().unwrap()),
            None,
        )
        .await;
    assert_eq!(shape(&done), shape(&reference("job.json")), "job");

    let (_, job) = api
        .call(
            Method::POST,
            "/v1/{p}/disaster-recovery-drills",
            Some(json!({"disaster_recovery_drill": {"server_group_id": "pg1", "name": "d1"}})),
        )
        .await;
    sim.sim.advance_clock(Duration::from_secs(60));
    let (_, list) = api
        .call(
            Method::GET,
            "/v1/{p}/disaster-recovery-drills?server_group_id=pg1",
            None,
        )
        .await;
    assert_eq!(list["count"], 1);
    let id = list["disaster_recovery_drills"][0]["id"].as_str().unwrap();
    let (_, drill) = api
        .call(
            Method::GET,
            &format!("/v1/{{p}}/disaster-recovery-drills/{id}"),
            None,
        )
        .await;
    assert_eq!(shape(&drill), shape(&reference("drill.json")), "drill");
    assert!(job["job_id"].is_string());

    // Renames are synchronous and answer the object.
    let (status, renamed) = api
        .call(
            Method::PUT,
            &format!("/v1/{{p}}/disaster-recovery-drills/{id}"),
            Some(json!({"disaster_recovery_drill": {"name": "d1-renamed"}})),
        )
        .await;
    assert_eq!(status, 200);
    assert_eq!(
        shape(&renamed),
        shape(&reference("drill.json")),
        "renamed drill"
    );
    assert_eq!(renamed["disaster_recovery_drill"]["name"], "d1-renamed");
    let (status, renamed) = api
        .call(
            Method::PUT,
            "/v1/{p}/server-groups/pg1",
            Some(json!({"server_group": {"name": "pg1-renamed"}})),
        )
        .await;
    assert_eq!(status, 200);
    assert_eq!(
        shape(&renamed),
        shape(&reference("protection-group.json")),
        "renamed group"
    );
    assert_eq!(renamed["server_group"]["name"], "pg1-renamed");
    let (status, refused) = api
        .call(
            Method::PUT,
            "/v1/{p}/server-groups/pg1",
            Some(json!({"server_group": {"description": "no name"}})),
        )
        .await;
    assert_eq!(
        (status, &refused["badrequest"]["code"]),
        (400, &json!("SDRS.0005"))
    );

    // Version documents, without a token, at the root and each version.
    let http = reqwest::Client::new();
    let root: Value = http
        .get(&sim.url)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let hrefs: Vec<&str> = root["versions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["links"][0]["href"].as_str().unwrap())
        .collect();
    let base = sim.url.trim_end_matches('/');
    assert_eq!(
        hrefs,
        [
            format!("{base}/v1/"),
            format!("{base}/v2/"),
            format!("{base}/v3/")
        ]
    );
    let v2: Value = http
        .get(format!("{base}/v2"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(v2["version"]["id"], "v2.0");

    // EVS actions answer 200 with no body.
    let (status, body) = api
        .call(
            Method::POST,
            "/v2/{p}/os-vendor-replication-consistency-groups/g1/action",
            Some(json!({"os-sync-replication-consistency-group": null})),
        )
        .await;
    assert_eq!((status, body), (200, Value::String(String::new())));
}

#[tokio::test]
async fn refusals_and_bad_requests_use_the_documented_error_shapes() {
    let sim = start_sim(drover::sim::SimConfig {
        evs_groups: vec!["g1".into()],
        sdrs_groups: vec!["pg1".into()],
        ..Default::default()
    })
    .await;
    let api = Api::new(&sim.url, &sim.sim.credentials()).await;
    use reqwest::Method;
    // method, path, body, status, JSON pointer to the code, code
    type Case<'a> = (Method, &'a str, Option<Value>, u16, &'a str, &'a str);
    let cases: Vec<Case> = vec![
        (
            Method::POST,
            "/v2/{p}/os-vendor-replication-consistency-groups/g1/action",
            Some(json!({"os-reprotect-replication-consistency-group": null, "x": 1})),
            400,
            "/badRequest/code",
            "EVS.5400",
        ),
        (
            Method::POST,
            "/v2/{p}/os-vendor-replication-consistency-groups/g1/action",
            Some(json!({"os-reverse": null})),
            400,
            "/badRequest/code",
            "EVS.5400",
        ),
        (
            Method::GET,
            "/v2/{p}/os-vendor-replication-consistency-groups/none",
            None,
            404,
            "/itemNotFound/code",
            "EVS.5404",
        ),
        (
            Method::GET,
            "/v1/{p}/server-groups/none",
            None,
            400,
            "/badrequest/code",
            "SDRS.1013",
        ),
        (
            Method::POST,
            "/v1/{p}/server-groups/pg1/action",
            Some(json!({"reverse-server-group": {}})),
            400,
            "/badrequest/code",
            "SDRS.0005",
        ),
        (
            Method::POST,
            "/v1/{p}/server-groups/pg1/action",
            Some(json!({"start-server-group": {}})),
            400,
            "/badrequest/code",
            "SDRS.1002",
        ),
        (
            Method::GET,
            "/v1/{p}/disaster-recovery-drills/none",
            None,
            400,
            "/badrequest/code",
            "SDRS.1902",
        ),
        (
            Method::GET,
            "/v2/other/os-vendor-replication-consistency-groups/g1",
            None,
            400,
            "/error/code",
            "Common.0018",
        ),
        (
            Method::GET,
            "/v9/{p}/nothing",
            None,
            404,
            "/error_code",
            "APIG.0101",
        ),
    ];
    for (method, path, body, status, pointer, code) in cases {
        let (got, answer) = api.call(method.clone(), path, body).await;
        assert_eq!(got, status, "{method} {path}");
        assert_eq!(
            answer.pointer(pointer).and_then(Value::as_str),
            Some(code),
            "{method} {path}: {answer}"
        );
    }
    assert!(
        sim.sim
            .journal()
            .iter()
            .all(|e| !e.changed || e.endpoint == "iam.token"),
        "no refusal changed state"
    );
    // The API gateway's errors name the request in the body as in the header.
    for (path, token) in [
        ("/v9/x/nothing", Some(api.token.as_str())),
        ("/v2/{p}/os-vendor-replication-consistency-groups/g1", None),
    ] {
        let path = path.replace("{p}", &api.project);
        let mut req = reqwest::Client::new().get(format!("{}{path}", sim.url));
        if let Some(t) = token {
            req = req.header("x-auth-token", t);
        }
        let answer = req.send().await.unwrap();
        let header = answer.headers()["x-request-id"]
            .to_str()
            .unwrap()
            .to_string();
        let body: Value = answer.json().await.unwrap();
        assert!(
            body["error_code"].as_str().unwrap().starts_with("APIG."),
            "{body}"
        );
        assert_eq!(
            body["request_id"].as_str(),
            Some(header.as_str()),
            "{path}: {body}"
        );
        assert!(!header.is_empty());
    }
}

#[tokio::test]
async fn control_endpoints_drive_the_simulator() {
    use reqwest::Method;
    let sim = start_sim(drover::sim::SimConfig::default()).await;
    let api = JsonHttp::new(&sim.url);
    let call = async |method: Method, path: &str, body: Option<Value>| {
        api.call(method, path, &[], body).await
    };

    let (status, answer) = call(
        Method::PUT,
        "/_sim/faults",
        Some(json!({"rules": {"evs.acton": {"p503": 1}}})),
    )
    .await;
    assert_eq!(status, 400);
    assert!(
        answer.to_string().contains("unknown endpoint `evs.acton`"),
        "{answer}"
    );
    let rules = json!({"rules": {"evs.get": {"p503": 0.5, "latency_ms": 1}}});
    assert_eq!(call(Method::PUT, "/_sim/faults", Some(rules)).await.0, 204);
    let (_, faults) = call(Method::GET, "/_sim/faults", None).await;
    assert_eq!(faults["rules"]["evs.get"]["p503"], 0.5);
    let forced = json!({"endpoint": "evs.action", "fault": "ambiguous"});
    assert_eq!(
        call(Method::POST, "/_sim/faults/forced", Some(forced))
            .await
            .0,
        204
    );

    let group = json!({"id": "g9", "primary": "az-a", "secondary": "az-b"});
    let (status, g) = call(Method::POST, "/_sim/evs/groups", Some(group)).await;
    assert_eq!(status, 201);
    assert_eq!(g["priority_station"], "az-a");
    let patch = json!({"fault_level": "5", "status": "error_reversing"});
    let (_, g) = call(Method::PATCH, "/_sim/evs/groups/g9", Some(patch)).await;
    assert_eq!(
        (g["fault_level"].as_str(), g["status"].as_str()),
        (Some("5"), Some("error_reversing"))
    );
    let typo = json!({"status": "availabel"});
    assert_eq!(
        call(Method::PATCH, "/_sim/evs/groups/g9", Some(typo))
            .await
            .0,
        400,
        "bad values are refused"
    );
    assert_eq!(
        call(Method::PATCH, "/_sim/evs/groups/nope", Some(json!({})))
            .await
            .0,
        404
    );

    let pg = json!({"id": "pg9"});
    assert_eq!(
        call(Method::POST, "/_sim/sdrs/groups", Some(pg)).await.0,
        201
    );
    let patch = json!({"null_status_fields": true, "priority_station": "target"});
    let (_, pg) = call(Method::PATCH, "/_sim/sdrs/groups/pg9", Some(patch)).await;
    assert!(pg["replication_status"].is_null());
    assert_eq!(pg["priority_station"], "target");

    let advance = json!({"advance_ms": 60000});
    let (_, clock) = call(Method::POST, "/_sim/clock", Some(advance)).await;
    assert!(clock["now_ms"].as_u64().unwrap() >= 60_000);

    // Journal, then reset clears everything.
    call(Method::GET, "/v3/nothing", None).await;
    let (_, journal) = call(Method::GET, "/_sim/journal", None).await;
    let journal = journal.as_array().unwrap();
    assert_eq!(
        journal.len(),
        1,
        "control calls are not journaled, API calls are"
    );
    assert_eq!(journal[0]["endpoint"], "unknown");
    assert_eq!(call(Method::POST, "/_sim/reset", None).await.0, 204);
    assert!(sim.sim.journal().is_empty());
    assert!(sim.sim.with_evs_group("g9", |_| ()).is_none());
    let (_, faults) = call(Method::GET, "/_sim/faults", None).await;
    assert_eq!(faults, json!({"rules": {}, "forced": []}));
}

#[test]
fn drover_sim_starts_with_groups_and_faults_from_the_command_line() {
    let mut child = Command::new(env!("CARGO_BIN_EXE_drover"))
        .args([
            "sim",
            "--listen",
            "127.0.0.1:0",
            "--evs-group",
            "g1",
            "--faults",
            r#"{"rules": {"*": {"p503": 1.0}}}"#,
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let url = line
        .split_whitespace()
        .find(|w| w.starts_with("http://"))
        .unwrap()
        .to_string();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let faults: Value = rt.block_on(async {
        reqwest::get(format!("{url}/_sim/faults"))
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    });
    let status = rt.block_on(async {
        reqwest::get(format!("{url}/v3/auth/tokens"))
            .await
            .unwrap()
            .status()
            .as_u16()
    });
    child.kill().unwrap();
    child.wait().unwrap();
    assert_eq!(faults["rules"]["*"]["p503"], 1.0);
    assert_eq!(status, 404, "a GET on the token path is not an API");

    let out = Command::new(env!("CARGO_BIN_EXE_drover"))
        .args(["sim", "--faults", r#"{"rules": {"*": {"p503": 2}}}"#])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&out.stderr)
            .contains("--faults: probabilities of `*` must be 0 to 1"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[tokio::test]
async fn the_journal_keeps_the_most_recent_requests() {
    let sim = start_sim(drover::sim::SimConfig {
        journal_limit: 3,
        ..Default::default()
    })
    .await;
    let http = reqwest::Client::new();
    for _ in 0..5 {
        http.get(format!("{}/v9/x", sim.url)).send().await.unwrap();
    }
    let seqs: Vec<u64> = sim.sim.journal().iter().map(|e| e.seq).collect();
    assert_eq!(seqs, [3, 4, 5]);
}
