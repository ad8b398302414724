//! What each action does: reads and checks, polling waits, the mutating calls
//! (through `reconcile`), SDRS job waits, HTTP calls, approvals and sleeps.
//! Every read goes through the step's retry policy; every wait is bounded by
//! the step's timeout (default [`DEFAULT_WAIT_TIMEOUT`] for waits).

use std::time::Duration;

use serde_json::{Value, json};

use super::context::{
    CANCEL_CHECK, RunContext, StepError, StepRun, deadline_after, evs_summary, read_evs, read_sdrs,
    sdrs_summary, to_json,
};
use super::crash;
use super::reconcile::{self, Mutation, Sent};
use super::{Approvals, Cloud, Engine, RunEvent};
use crate::cloud::CloudError;
use crate::cloud::evs::EvsAction;
use crate::cloud::http::{DRY_RUN_JOB, HttpCall, redact_query};
use crate::cloud::resource::{EvsGroup, Job, JobStatus, ProtectionGroup};
use crate::cloud::sdrs::SdrsAction;
use crate::runbook::model::{
    self, ApprovalInput, EvsExpect, HttpMethod, HttpRequestInput, IdField, SdrsExpect,
};
use crate::runbook::value::Expect;
use crate::runbook::{Action, DEFAULT_JOB_INTERVAL, DEFAULT_POLL_INTERVAL, DurationSpec, Step};
use crate::store::Outcome;
use crate::yaml::Located;

/// How long a wait or job poll may take when its step sets no timeout.
pub const DEFAULT_WAIT_TIMEOUT: Duration = Duration::from_secs(3600);

/// Executes one step; its output for `steps.<id>.output`.
pub(crate) async fn execute<C: Cloud>(
    engine: &Engine<C>,
    ctx: &RunContext,
    step: &Step,
) -> Result<Value, StepError> {
    let probe = StepRun {
        engine,
        ctx,
        step,
        deadline: None,
    };
    let timeout = match &step.timeout {
        Some(spec) => Some(probe.duration(spec)?),
        None if matches!(
            step.action,
            Action::EvsWaitGroup(_) | Action::SdrsWaitGroup(_)
        ) || is_sdrs_job(&step.action) =>
        {
            Some(DEFAULT_WAIT_TIMEOUT)
        }
        None => None,
    };
    let s = StepRun {
        deadline: deadline_after(timeout),
        ..probe
    };
    match &step.action {
        Action::EvsCheckGroup(i) => {
            let id = s.render_id(IdField::EvsGroup, "group", &i.group.value)?;
            let g = read_evs(&s, &id).await?;
            let mismatches = evs_mismatches(&s, &i.expect, &g)?;
            if mismatches.is_empty() || s.unverifiable(&mismatches) {
                Ok(to_json(&g))
            } else {
                Err(StepError::Failed(format!(
                    "group {id}: {}",
                    mismatches.join("; ")
                )))
            }
        }
        Action::EvsWaitGroup(i) => {
            let id = s.render_id(IdField::EvsGroup, "group", &i.group.value)?;
            let interval = s.interval(&i.interval, DEFAULT_POLL_INTERVAL)?;
            let watch = Watch {
                what: format!("group {id}"),
                request: format!("GET consistency group {id}"),
                interval,
            };
            poll_until(
                &s,
                &watch,
                || read_evs(&s, &id),
                evs_summary,
                |g| {
                    Ok(i.fail_if
                        .as_ref()
                        .filter(|f| !f.is_empty_expect())
                        .map(|f| evs_mismatches(&s, f, g))
                        .transpose()?
                        .is_some_and(|m| m.is_empty()))
                },
                |g| Ok(evs_mismatches(&s, &i.until, g)?.is_empty()),
            )
            .await
        }
        Action::EvsSwitchover(i) => evs_mutation(&s, &i.group.value, EvsAction::Switchover).await,
        Action::EvsFailover(i) => evs_mutation(&s, &i.group.value, EvsAction::Failover).await,
        Action::EvsSync(i) => evs_mutation(&s, &i.group.value, EvsAction::Sync).await,
        Action::EvsStop(i) => evs_mutation(&s, &i.group.value, EvsAction::Stop).await,
        Action::EvsReprotect(i) => evs_mutation(&s, &i.group.value, EvsAction::Reprotect).await,
        Action::SdrsCheckGroup(i) => {
            let id = s.render_id(IdField::SdrsGroup, "group", &i.group.value)?;
            let g = read_sdrs(&s, &id).await?;
            let mismatches = sdrs_mismatches(&s, &i.expect, &g)?;
            if mismatches.is_empty() || s.unverifiable(&mismatches) {
                Ok(to_json(&g))
            } else {
                Err(StepError::Failed(format!(
                    "protection group {id}: {}",
                    mismatches.join("; ")
                )))
            }
        }
        Action::SdrsWaitGroup(i) => {
            let id = s.render_id(IdField::SdrsGroup, "group", &i.group.value)?;
            let interval = s.interval(&i.interval, DEFAULT_POLL_INTERVAL)?;
            let watch = Watch {
                what: format!("protection group {id}"),
                request: format!("GET server-group {id}"),
                interval,
            };
            poll_until(
                &s,
                &watch,
                || read_sdrs(&s, &id),
                sdrs_summary,
                |g| {
                    Ok(i.fail_if
                        .as_ref()
                        .filter(|f| f.status.is_some())
                        .map(|f| sdrs_mismatches(&s, f, g))
                        .transpose()?
                        .is_some_and(|m| m.is_empty()))
                },
                |g| Ok(sdrs_mismatches(&s, &i.until, g)?.is_empty()),
            )
            .await
        }
        Action::SdrsSwitchover(i) => {
            let to = i
                .priority_station
                .resolve(|t| s.render(t).map_err(|e| e.to_string()))
                .map_err(|e| StepError::Failed(format!("`priority_station`: {e}")))?;
            sdrs_mutation(&s, &i.group.value, SdrsAction::Switchover(to), &i.interval).await
        }
        Action::SdrsFailover(i) => {
            sdrs_mutation(&s, &i.group.value, SdrsAction::Failover, &i.interval).await
        }
        Action::SdrsEnable(i) => {
            sdrs_mutation(&s, &i.group.value, SdrsAction::Enable, &i.interval).await
        }
        Action::SdrsDisable(i) => {
            sdrs_mutation(&s, &i.group.value, SdrsAction::Disable, &i.interval).await
        }
        Action::SdrsCreateDrill(i) => {
            let group = s.render_id(IdField::SdrsGroup, "group", &i.group.value)?;
            let name = s.render_id(IdField::DrillName, "name", &i.name.value)?;
            let vpc = match &i.drill_vpc_id {
                Some(v) => Some(s.render(&v.value)?)
                    .filter(|v| !v.trim().is_empty())
                    .map(|_| s.render_id(IdField::Vpc, "drill_vpc_id", &v.value))
                    .transpose()?,
                None => None,
            };
            let interval = s.interval(&i.interval, DEFAULT_JOB_INTERVAL)?;
            let m = Mutation::CreateDrill {
                group: group.clone(),
                name: name.clone(),
                vpc,
            };
            let sent = reconcile::mutate(&s, &m).await?;
            let job = match &sent {
                Sent::Answered { job_id: Some(j) } if j != DRY_RUN_JOB => {
                    Some(wait_job(&s, j, interval).await?)
                }
                _ => None,
            };
            if s.dry_run() {
                return Ok(json!({ "dry_run": true, "held_back": true, "name": name }));
            }
            let drill = wait_drill_created(&s, &group, &name, interval).await?;
            let mut out = to_json(&drill);
            out["job_id"] = json!(job.map(|j| j.job_id));
            Ok(out)
        }
        Action::SdrsDeleteDrill(i) => {
            let drill = s.render_id(IdField::Drill, "drill", &i.drill.value)?;
            let interval = s.interval(&i.interval, DEFAULT_JOB_INTERVAL)?;
            let sent = reconcile::mutate(
                &s,
                &Mutation::DeleteDrill {
                    drill: drill.clone(),
                },
            )
            .await?;
            match &sent {
                Sent::Answered { job_id: Some(j) } if j != DRY_RUN_JOB => {
                    let job = wait_job(&s, j, interval).await?;
                    Ok(json!({ "drill": drill, "job_id": job.job_id }))
                }
                Sent::Applied { .. } => {
                    reconcile::wait_drill_gone(&s, &drill, interval).await?;
                    Ok(json!({ "drill": drill }))
                }
                _ => {
                    Ok(json!({ "drill": drill, "dry_run": s.dry_run(), "held_back": s.dry_run() }))
                }
            }
        }
        Action::HttpRequest(i) => http_request(&s, i).await,
        Action::Approval(i) => approval(&s, i).await,
        Action::Sleep(i) => {
            let d = s.duration(&i.duration.value)?;
            if s.dry_run() {
                s.note(format!(
                    "dry run: not sleeping {}",
                    model::format_duration(d)
                ));
                return Ok(json!({ "slept_ms": 0, "dry_run": true }));
            }
            s.pause(d, || {
                format!(
                    "the step timeout is shorter than its {} sleep",
                    model::format_duration(d)
                )
            })
            .await?;
            Ok(json!({ "slept_ms": d.as_millis() as u64 }))
        }
    }
}

/// What a wait step follows.
struct Watch {
    /// `group g1`, for messages.
    what: String,
    /// The read, as recorded.
    request: String,
    /// Time between polls.
    interval: Duration,
}

/// Polls with `read` until `done` holds (the resource as output), failing at
/// once when `failed` holds, and at the deadline. A dry run reads once.
async fn poll_until<C, T, R, Fut>(
    s: &StepRun<'_, C>,
    watch: &Watch,
    read: R,
    summary: fn(&T) -> String,
    failed: impl Fn(&T) -> Result<bool, StepError>,
    done: impl Fn(&T) -> Result<bool, StepError>,
) -> Result<Value, StepError>
where
    C: Cloud,
    T: serde::Serialize,
    R: Fn() -> Fut,
    Fut: std::future::Future<Output = Result<T, StepError>>,
{
    let what = &watch.what;
    let mut polls = 0;
    loop {
        let current = read().await?;
        let seen = summary(&current);
        if failed(&current)? {
            return Err(StepError::Failed(format!(
                "{what} reached a failure state: {seen}"
            )));
        }
        if done(&current)? {
            return Ok(to_json(&current));
        }
        if s.dry_run() {
            s.note(format!("dry run: not waiting ({what} is {seen})"));
            return Ok(to_json(&current));
        }
        polls += 1;
        let outcome = Outcome {
            outcome: seen.clone(),
            http_status: Some(200),
            ..Outcome::default()
        };
        s.record(polls, "poll", &watch.request, None, None, Some(outcome))
            .await?;
        crash::point("wait.after_poll");
        s.emit(RunEvent::Waiting {
            step_id: s.step.id.clone(),
            observed: seen.clone(),
        });
        s.pause(watch.interval, || format!("{what} is still {seen}"))
            .await?;
    }
}

fn is_sdrs_job(action: &Action) -> bool {
    matches!(
        action,
        Action::SdrsSwitchover(_)
            | Action::SdrsFailover(_)
            | Action::SdrsEnable(_)
            | Action::SdrsDisable(_)
            | Action::SdrsCreateDrill(_)
            | Action::SdrsDeleteDrill(_)
    )
}

trait EmptyExpect {
    fn is_empty_expect(&self) -> bool;
}

impl EmptyExpect for EvsExpect {
    fn is_empty_expect(&self) -> bool {
        self.status.is_none()
            && self.replication_status.is_none()
            && self.fault_level.is_none()
            && self.priority_station.is_none()
    }
}

/// One field against its expectation; a readable problem if it does not match.
fn mismatch<C: Cloud, T>(
    s: &StepRun<'_, C>,
    field: &str,
    want: &Option<Expect<T>>,
    got: Option<&str>,
    out: &mut Vec<String>,
) -> Result<(), StepError>
where
    T: for<'de> serde::Deserialize<'de> + Clone + std::fmt::Display,
{
    let Some(want) = want else { return Ok(()) };
    let render = |t: &str| s.render(t).map_err(|e| e.to_string());
    if let Some(problem) = want
        .mismatch(field, got, render)
        .map_err(StepError::Failed)?
    {
        out.push(problem);
    }
    Ok(())
}

/// Every field of `expect` that `g` does not match, as readable text.
fn evs_mismatches<C: Cloud>(
    s: &StepRun<'_, C>,
    expect: &EvsExpect,
    g: &EvsGroup,
) -> Result<Vec<String>, StepError> {
    let mut out = Vec::new();
    mismatch(s, "status", &expect.status, Some(&g.status), &mut out)?;
    mismatch(
        s,
        "replication_status",
        &expect.replication_status,
        g.replication_status.as_deref(),
        &mut out,
    )?;
    mismatch(
        s,
        "fault_level",
        &expect.fault_level,
        g.fault_level.as_deref(),
        &mut out,
    )?;
    mismatch(
        s,
        "priority_station",
        &expect.priority_station,
        g.priority_station.as_deref(),
        &mut out,
    )?;
    Ok(out)
}

fn sdrs_mismatches<C: Cloud>(
    s: &StepRun<'_, C>,
    expect: &SdrsExpect,
    g: &ProtectionGroup,
) -> Result<Vec<String>, StepError> {
    let mut out = Vec::new();
    mismatch(s, "status", &expect.status, Some(&g.status), &mut out)?;
    mismatch(
        s,
        "priority_station",
        &expect.priority_station,
        g.priority_station.as_deref(),
        &mut out,
    )?;
    // Newer groups answer null here: a null never matches (the docs advise against relying on it).
    mismatch(
        s,
        "replication_status",
        &expect.replication_status,
        g.replication_status.as_deref(),
        &mut out,
    )?;
    Ok(out)
}

async fn evs_mutation<C: Cloud>(
    s: &StepRun<'_, C>,
    group: &str,
    action: EvsAction,
) -> Result<Value, StepError> {
    let group = s.render_id(IdField::EvsGroup, "group", group)?;
    let sent = reconcile::mutate(
        s,
        &Mutation::Evs {
            group: group.clone(),
            action,
        },
    )
    .await?;
    Ok(match sent {
        Sent::Answered { .. } if s.dry_run() => {
            json!({ "group": group, "action": action.body_key(), "result": "dry run", "held_back": true })
        }
        Sent::Answered { .. } => {
            json!({ "group": group, "action": action.body_key(), "result": "accepted" })
        }
        Sent::Applied { evidence } => {
            json!({ "group": group, "action": action.body_key(), "result": "applied", "evidence": evidence })
        }
    })
}

async fn sdrs_mutation<C: Cloud>(
    s: &StepRun<'_, C>,
    group: &str,
    action: SdrsAction,
    interval: &Option<Located<DurationSpec>>,
) -> Result<Value, StepError> {
    let group = s.render_id(IdField::SdrsGroup, "group", group)?;
    let interval = s.interval(interval, DEFAULT_JOB_INTERVAL)?;
    let sent = reconcile::mutate(
        s,
        &Mutation::Sdrs {
            group: group.clone(),
            action,
        },
    )
    .await?;
    match sent {
        Sent::Answered { job_id: Some(j) } if j == DRY_RUN_JOB => {
            s.note("dry run: not waiting for the job");
            Ok(json!({ "group": group, "dry_run": true, "held_back": true }))
        }
        Sent::Answered { job_id: Some(j) } => {
            let job = wait_job(s, &j, interval).await?;
            let g = read_sdrs(s, &group).await?;
            Ok(json!({ "job_id": job.job_id, "group": to_json(&g) }))
        }
        Sent::Answered { job_id: None } | Sent::Applied { .. } => {
            // No job id (the answer was lost): follow the group instead.
            let g = reconcile::wait_group_settled(s, &group, action, interval).await?;
            Ok(json!({ "job_id": null, "group": to_json(&g) }))
        }
    }
}

/// Polls a job until SUCCESS (its result) or FAIL (the step fails with the job's code and reason).
async fn wait_job<C: Cloud>(
    s: &StepRun<'_, C>,
    job_id: &str,
    interval: Duration,
) -> Result<Job, StepError> {
    let mut polls = 0;
    loop {
        let job = s
            .read(&format!("GET job {job_id}"), || {
                s.cloud().sdrs_get_job(job_id)
            })
            .await?;
        match job.status {
            JobStatus::Success => return Ok(job),
            JobStatus::Fail => {
                return Err(StepError::Failed(format!(
                    "job {job_id} ({}) failed: {}: {}",
                    job.job_type.as_deref().unwrap_or("unknown type"),
                    job.error_code.as_deref().unwrap_or("no error code"),
                    job.fail_reason.as_deref().unwrap_or("no reason given")
                )));
            }
            _ => {}
        }
        polls += 1;
        let seen = format!("job {job_id} {:?}", job.status)
            .to_uppercase()
            .replace("JOB ", "job ");
        s.record(
            polls,
            "poll",
            &format!("GET job {job_id}"),
            None,
            None,
            Some(Outcome {
                outcome: seen.clone(),
                http_status: Some(200),
                ..Outcome::default()
            }),
        )
        .await?;
        crash::point("job.after_poll");
        s.emit(RunEvent::Waiting {
            step_id: s.step.id.clone(),
            observed: seen.clone(),
        });
        s.pause(interval, || format!("{seen} has not finished"))
            .await?;
    }
}

async fn wait_drill_created<C: Cloud>(
    s: &StepRun<'_, C>,
    group: &str,
    name: &str,
    interval: Duration,
) -> Result<crate::cloud::resource::Drill, StepError> {
    loop {
        let drills = s
            .read(&format!("GET disaster-recovery-drills {name}"), || {
                s.cloud().sdrs_list_drills(Some(group), Some(name))
            })
            .await?;
        match drills.into_iter().next() {
            Some(d) if d.status == "available" => return Ok(d),
            Some(d) if d.status == "error" => {
                return Err(StepError::Failed(format!(
                    "drill {} ({name}) ended in status error",
                    d.id
                )));
            }
            Some(d) => {
                let seen = format!("drill {} is {}", d.id, d.status);
                s.emit(RunEvent::Waiting {
                    step_id: s.step.id.clone(),
                    observed: seen.clone(),
                });
                s.pause(interval, || seen).await?;
            }
            None => {
                return Err(StepError::Failed(format!(
                    "no drill named {name} in protection group {group} after its job succeeded"
                )));
            }
        }
    }
}

async fn http_request<C: Cloud>(
    s: &StepRun<'_, C>,
    i: &HttpRequestInput,
) -> Result<Value, StepError> {
    let render = |t: &str| s.render(t).map_err(|e| e.to_string());
    let method = match i
        .method
        .as_ref()
        .map(|m| m.resolve(render))
        .transpose()
        .map_err(|e| StepError::Failed(format!("`method`: {e}")))?
        .unwrap_or(HttpMethod::Get)
    {
        HttpMethod::Get => reqwest::Method::GET,
        HttpMethod::Head => reqwest::Method::HEAD,
        HttpMethod::Post => reqwest::Method::POST,
        HttpMethod::Put => reqwest::Method::PUT,
        HttpMethod::Patch => reqwest::Method::PATCH,
        HttpMethod::Delete => reqwest::Method::DELETE,
    };
    let url = s.render(&i.url.value)?;
    if !(url.starts_with("http://") || url.starts_with("https://")) {
        return Err(StepError::Failed(format!(
            "url rendered to `{}`, not an http(s) URL",
            redact_query(&url)
        )));
    }
    let headers = i
        .headers
        .iter()
        .map(|(k, v)| Ok((k.clone(), s.render(v)?)))
        .collect::<Result<Vec<_>, StepError>>()?;
    let call = HttpCall {
        method: method.clone(),
        url: url.clone(),
        headers,
        json: i.json.as_ref().map(|j| s.ctx.render_json(j)).transpose()?,
        body: i.body.as_ref().map(|b| s.render(b)).transpose()?,
    };
    let request = format!("{method} {}", redact_query(&url));
    let policy = &s.step.retry;
    // A retryable status is treated like a failed attempt; any other status is an answer.
    let answer = s
        .read(&request, || async {
            let a = s.cloud().http_request(&call).await?;
            if policy.retries_status(a.status) {
                return Err(CloudError {
                    request: request.clone(),
                    status: Some(a.status),
                    code: None,
                    message: format!("HTTP {}", a.status),
                    request_id: a.request_id.clone(),
                    class: crate::cloud::ErrorClass::Retryable,
                    retry_after: a.retry_after,
                });
            }
            Ok(a)
        })
        .await?;
    s.flush_would_send(1).await?;
    if s.dry_run() && !matches!(method, reqwest::Method::GET | reqwest::Method::HEAD) {
        return Ok(json!({ "status": null, "dry_run": true }));
    }
    // Only method, URL (query hidden) and status are stored: bodies and headers may carry secrets.
    s.record(
        1,
        "request",
        &request,
        None,
        None,
        Some(Outcome {
            outcome: "answered".into(),
            http_status: Some(answer.status),
            ..Outcome::default()
        }),
    )
    .await?;
    let expected: Option<Vec<u16>> = i
        .expect_status
        .as_ref()
        .map(|codes| {
            codes
                .value
                .iter()
                .map(|c| c.resolve(render))
                .collect::<Result<Vec<u16>, String>>()
        })
        .transpose()
        .map_err(|e| StepError::Failed(format!("`expect_status`: {e}")))?;
    let ok = match &expected {
        Some(codes) => codes.contains(&answer.status),
        None => (200..300).contains(&answer.status),
    };
    if !ok {
        let wanted = expected.map_or("2xx".to_string(), |c| format!("{c:?}"));
        return Err(StepError::Failed(format!(
            "{request} answered {}, expected {wanted}",
            answer.status
        )));
    }
    let body: Value = serde_json::from_slice(&answer.body)
        .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&answer.body).into_owned()));
    for (pointer, want) in &i.expect_json {
        let want = s.ctx.render_json(want)?;
        let got = body.pointer(pointer);
        if got != Some(&want) {
            return Err(StepError::Failed(format!(
                "{request}: {pointer} is {}, expected {want}",
                got.map_or("missing".to_string(), Value::to_string)
            )));
        }
    }
    Ok(json!({ "status": answer.status, "body": body }))
}

async fn approval<C: Cloud>(s: &StepRun<'_, C>, i: &ApprovalInput) -> Result<Value, StepError> {
    let needed = match &i.approvers {
        None => 1,
        Some(n) => n
            .value
            .resolve(|t| s.render(t).map_err(|e| e.to_string()))
            .ok()
            .filter(|n| (1..=10).contains(n))
            .ok_or_else(|| {
                StepError::Failed(format!(
                    "`approvers` rendered from `{}`: expected a number from 1 to 10",
                    n.value
                ))
            })? as usize,
    };
    let prompt = s.render(&i.prompt.value)?;
    if s.dry_run() {
        s.note(format!("dry run: approval not requested ({prompt})"));
        return Ok(json!({ "approved_by": [], "dry_run": true }));
    }
    let approvers: Vec<String> = match &s.engine.approvals {
        Approvals::Given(names) => {
            let mut distinct: Vec<String> = Vec::new();
            for n in names {
                if !distinct.contains(n) {
                    distinct.push(n.clone());
                }
            }
            if distinct.len() < needed {
                return Err(StepError::Failed(format!(
                    "`{prompt}` needs {needed} distinct approvers, {} given",
                    distinct.len()
                )));
            }
            distinct.truncate(needed);
            distinct
        }
        Approvals::Api => return approval_from_api(s, &prompt, needed).await,
        Approvals::Prompt => {
            let question = prompt.clone();
            let ask = tokio::task::spawn_blocking(move || prompt_approvers(&question, needed));
            let answer = match s.deadline {
                Some(d) => tokio::time::timeout_at(d, ask).await.map_err(|_| {
                    StepError::TimedOut("no approval before the step timeout".into())
                })?,
                None => ask.await,
            };
            match answer
                .map_err(|e| StepError::Failed(format!("approval prompt failed: {e}")))?
                .map_err(|e| StepError::Failed(format!("approval prompt failed: {e}")))?
            {
                Prompted::Approved(names) => names,
                Prompted::Refused(why) => return Err(StepError::Failed(why)),
                // Nobody is there to answer (no terminal, input closed): the
                // run waits at this step instead of failing for good.
                Prompted::NoInput => {
                    return Err(StepError::AwaitingApproval(format!(
                        "step `{}` needs {needed} approval(s) for `{prompt}` and nobody was asked",
                        s.step.id
                    )));
                }
            }
        }
    };
    crash::point("approval.before_record");
    for name in &approvers {
        s.engine
            .store
            .record_approval(&s.ctx.run.id, &s.step.id, name, "approved", None)
            .await?;
        s.emit(RunEvent::Approved {
            step_id: s.step.id.clone(),
            approver: name.clone(),
        });
    }
    Ok(json!({ "approved_by": approvers }))
}

/// Waits for approvals given through the API: `needed` distinct approvers other
/// than the requester. They are in the store, so a restart loses none.
async fn approval_from_api<C: Cloud>(
    s: &StepRun<'_, C>,
    prompt: &str,
    needed: usize,
) -> Result<Value, StepError> {
    let store = &s.engine.store;
    let (run_id, step_id) = (&s.ctx.run.id, &s.step.id);
    s.emit(RunEvent::AwaitingApproval {
        step_id: step_id.clone(),
        prompt: prompt.to_string(),
        needed: needed as u32,
    });
    loop {
        let records: Vec<_> = store
            .approvals(run_id)
            .await?
            .into_iter()
            .filter(|a| &a.step_id == step_id)
            .collect();
        if let Some(r) = records.iter().find(|a| a.decision == "rejected") {
            return Err(StepError::Failed(format!(
                "`{prompt}` was rejected by {}",
                r.approver
            )));
        }
        let mut approvers: Vec<String> = Vec::new();
        for r in records
            .iter()
            .filter(|a| a.decision == "approved" && a.approver != s.ctx.run.requested_by)
        {
            if !approvers.contains(&r.approver) {
                approvers.push(r.approver.clone());
            }
        }
        if approvers.len() >= needed {
            for name in &approvers {
                s.emit(RunEvent::Approved {
                    step_id: step_id.clone(),
                    approver: name.clone(),
                });
            }
            return Ok(json!({ "approved_by": approvers }));
        }
        let have = approvers.len();
        s.pause(CANCEL_CHECK, || {
            format!("`{prompt}` has {have} of {needed} approvals")
        })
        .await?;
    }
}

/// What the terminal prompt got.
enum Prompted {
    Approved(Vec<String>),
    Refused(String),
    /// The input ended before enough approvers answered.
    NoInput,
}

/// Asks on the terminal for `needed` distinct approvers.
fn prompt_approvers(prompt: &str, needed: usize) -> Result<Prompted, String> {
    use std::io::{BufRead, Write};
    let stdin = std::io::stdin();
    let mut lines = stdin.lock().lines();
    let mut err = std::io::stderr();
    let mut names: Vec<String> = Vec::new();
    let default_name = std::env::var("USER").unwrap_or_else(|_| "operator".into());
    while names.len() < needed {
        let _ = write!(
            err,
            "\n{prompt}\nApprove? Type your name to approve ({} of {needed}), or 'no' to refuse [{default_name}]: ",
            names.len() + 1
        );
        let _ = err.flush();
        let Some(line) = lines.next() else {
            let _ = writeln!(err);
            return Ok(Prompted::NoInput);
        };
        let line = line.map_err(|e| e.to_string())?;
        let answer = line.trim();
        let name = if answer.is_empty() {
            default_name.as_str()
        } else {
            answer
        };
        match name {
            "no" | "n" | "NO" => return Ok(Prompted::Refused(format!("`{prompt}` was refused"))),
            name if names.iter().any(|n| n == name) => {
                let _ = writeln!(
                    err,
                    "{name} has approved already; another approver is needed."
                );
            }
            name => names.push(name.to_string()),
        }
    }
    Ok(Prompted::Approved(names))
}
