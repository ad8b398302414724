//! The cloud API side of the simulator: which endpoint a request is, how it
//! is authenticated (token or AK/SK), faults, the journal, and the handlers
//! that drive the EVS and SDRS state machines.

use std::collections::BTreeMap;
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Utc};
use rand::Rng;
use serde_json::{Value, json};

use super::evs::{EvsAction, Refusal};
use super::faults::Fault;
use super::iam::{self};
use super::listing;
use super::sdrs::SdrsAction;
use super::{Answer, JournalEntry, SimState, Simulator, Token, versions};
use crate::cloud::vocabulary::PriorityStation;

/// Which API a request is for, from method and path.
#[derive(Debug, Clone, PartialEq)]
pub(super) enum Route {
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
    SdrsRename(String, String),
    DrillRename(String, String),
    /// A version document: the root (`None`) or one API version's.
    Versions(Option<&'static str>),
    Unknown,
}

impl Route {
    pub(super) fn parse(method: &Method, path: &str) -> Route {
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
            ("PUT", ["v1", p, "server-groups", id]) => {
                Route::SdrsRename(p.to_string(), id.to_string())
            }
            ("PUT", ["v1", p, "disaster-recovery-drills", id]) => {
                Route::DrillRename(p.to_string(), id.to_string())
            }
            ("GET", [""]) => Route::Versions(None),
            ("GET", [version @ ("v1" | "v2" | "v3")]) => Route::Versions(Some(match *version {
                "v1" => "v1",
                "v2" => "v2",
                _ => "v3",
            })),
            _ => Route::Unknown,
        }
    }

    pub(super) fn endpoint(&self) -> &'static str {
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
            Route::SdrsRename(..) => "sdrs.rename",
            Route::DrillRename(..) => "sdrs.drill.rename",
            Route::Versions(_) => "versions",
            Route::Unknown => "unknown",
        }
    }

    fn project(&self) -> Option<&str> {
        match self {
            Route::Token | Route::Versions(_) | Route::Unknown => None,
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
            | Route::DrillDelete(p, _)
            | Route::SdrsRename(p, _)
            | Route::DrillRename(p, _) => Some(p),
        }
    }
}

pub(super) fn gateway_error(code: &str, message: &str, request_id: &str) -> Value {
    json!({ "error_msg": message, "error_code": code, "request_id": request_id })
}

/// Every API request is processed to the end in its own task, even if the
/// client disconnects meanwhile: a real service does not notice a client that
/// died, and crash tests depend on requests that land after the crash.
pub(super) async fn api(
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

pub(super) async fn process(
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
        let second = s.now().as_secs();
        let SimState { faults, rng, .. } = &mut *s;
        let fault = if route == Route::Unknown {
            None
        } else {
            faults.draw(endpoint, second, rng)
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
            let body = if f == Fault::Status429 {
                gateway_error(
                    "APIG.0308",
                    "The throttling threshold has been reached",
                    &request_id,
                )
            } else {
                gateway_error(&format!("SIM.{status}"), "simulated fault", &request_id)
            };
            let mut a = Answer::json(status, body);
            match (status, retry_after) {
                (503 | 429, Some(secs)) => a.headers.push(("retry-after", secs.to_string())),
                // A throttling budget is per second: come back in one.
                (429, None) => a.headers.push(("retry-after", "1".to_string())),
                _ => {}
            }
            a
        }
        _ => {
            let answer = match authenticate(&mut s, &route, &method, &uri, &headers, &body) {
                Ok(kind) => {
                    auth = kind;
                    match route {
                        // The catalog names this simulator as every service,
                        // at the address the client reached it by.
                        Route::Token => {
                            let host = headers.get("host").and_then(|h| h.to_str().ok());
                            issue_token(&mut s, &body, host.unwrap_or("127.0.0.1"), &uri)
                        }
                        Route::Versions(version) => {
                            let host = headers.get("host").and_then(|h| h.to_str().ok());
                            let base = format!("http://{}", host.unwrap_or("127.0.0.1"));
                            Answer::json(200, versions::document(&base, version))
                        }
                        _ => handle(&mut s, &route, &uri, &body),
                    }
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

    // The API gateway names the request in its error bodies as in the header.
    let mut answer = answer;
    let gateway = answer.body.get("error_msg").is_some();
    if let Some(id) = answer.body.get_mut("request_id")
        && gateway
        && id.as_str() == Some("")
    {
        *id = Value::String(request_id.clone());
    }

    let mut request_body = if body.is_empty() {
        Value::Null
    } else {
        serde_json::from_slice(&body)
            .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&body).into_owned()))
    };
    crate::redact::json(&mut request_body);
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
pub(super) fn authenticate(
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

pub(super) fn bad_body(message: &str, sdrs: bool) -> Answer {
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
pub(super) fn single_key(body: &[u8]) -> Option<(String, Value)> {
    let Ok(Value::Object(map)) = serde_json::from_slice::<Value>(body) else {
        return None;
    };
    if map.len() != 1 {
        return None;
    }
    map.into_iter().next()
}

pub(super) fn handle(s: &mut SimState, route: &Route, uri: &Uri, body: &[u8]) -> Answer {
    let now = s.now();
    match route {
        Route::Token => issue_token(s, body, "127.0.0.1", uri),
        Route::EvsList(_) => listing::evs_groups(s.evs.values(), uri),
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
        Route::SdrsList(_) => listing::sdrs_groups(&s.sdrs, uri, now),
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
        Route::DrillList(_) => listing::drills(&s.sdrs, uri),
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
        // Renames are synchronous: 200 with the object as it is now.
        Route::SdrsRename(_, id) | Route::DrillRename(_, id) => {
            let group = matches!(route, Route::SdrsRename(..));
            let key = if group {
                "server_group"
            } else {
                "disaster_recovery_drill"
            };
            let name = match single_key(body) {
                Some((k, Value::Object(o))) if k == key => o.get("name").cloned(),
                _ => None,
            };
            let Some(Value::String(name)) = name else {
                return bad_body(
                    &format!("the body must be {{\"{key}\": {{\"name\": ...}}}}"),
                    true,
                );
            };
            let renamed = if group {
                s.sdrs.rename_group(id, &name, now)
            } else {
                s.sdrs.rename_drill(id, &name, now)
            };
            match renamed {
                Ok(object) => Answer::json(200, json!({ key: object })).changed(),
                Err(r) => Answer::refusal(r),
            }
        }
        Route::Versions(version) => {
            Answer::json(200, versions::document("http://127.0.0.1", *version))
        }
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

/// A password token (201, `X-Subject-Token`) with the project scope and,
/// unless the query has `nocatalog`, a catalog naming this simulator.
pub(super) fn issue_token(s: &mut SimState, body: &[u8], host: &str, uri: &Uri) -> Answer {
    let no_catalog = uri.query().is_some_and(|q| {
        q.split('&')
            .any(|p| p.split('=').next() == Some("nocatalog"))
    });
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
            let mut body = iam::token_body(&s.creds, &fmt(s.wall(now)), &fmt(s.wall(expires)));
            if !no_catalog {
                body["token"]["catalog"] = iam::catalog(&format!("http://{host}"), &s.creds);
            }
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
