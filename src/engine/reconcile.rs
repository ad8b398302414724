//! Exactly-once mutating calls.
//!
//! Before a mutating call: re-read the resource and check the action's
//! preconditions; record the intent (with the pre-image) durably; then send.
//! A definite answer is recorded as the outcome. An ambiguous one (a retryable
//! status, a timeout or a connection lost after sending) is reconciled before
//! anything is sent again: after the policy's backoff (a service behind a
//! timed-out gateway may still act), the resource is re-read and compared with
//! the pre-image, and only if the action visibly did not take effect is the
//! request sent again. An intent found without a resolved outcome when a run
//! resumes is reconciled the same way, once it is older than the request
//! timeout (the interrupted process's request may still be in flight).
//!
//! This matters most for the EVS switchover, which carries no direction:
//! sending it twice switches back.

use serde_json::{Value, json};

use super::Cloud;
use super::context::{StepError, StepRun, failed_outcome, read_evs, read_sdrs};
use super::crash;
use crate::cloud::CloudError;
use crate::cloud::Delivery;
use crate::cloud::evs::EvsAction;
use crate::cloud::sdrs::SdrsAction;
use crate::engine::RunEvent;
use crate::store::{AttemptKind, IntentOutcome, Outcome};

/// A mutating call.
#[derive(Debug, Clone)]
pub(crate) enum Mutation {
    Evs {
        group: String,
        action: EvsAction,
    },
    Sdrs {
        group: String,
        action: SdrsAction,
    },
    CreateDrill {
        group: String,
        name: String,
        vpc: Option<String>,
    },
    DeleteDrill {
        drill: String,
    },
}

/// What happened to a mutating call.
#[derive(Debug, Clone)]
pub(crate) enum Sent {
    /// The cloud accepted it (SDRS: with its job id).
    Answered { job_id: Option<String> },
    /// A dry run held it back.
    HeldBack,
    /// The answer was lost, but re-reading showed the action took effect.
    Applied { evidence: String },
}

fn field<'v>(v: &'v Value, name: &str) -> &'v str {
    v[name].as_str().unwrap_or("null")
}

impl Mutation {
    /// `METHOD path` as recorded (the project id is not needed to read it).
    fn request(&self) -> String {
        match self {
            Mutation::Evs { group, .. } => {
                format!("POST os-vendor-replication-consistency-groups/{group}/action")
            }
            Mutation::Sdrs { group, .. } => format!("POST server-groups/{group}/action"),
            Mutation::CreateDrill { .. } => "POST disaster-recovery-drills".to_string(),
            Mutation::DeleteDrill { drill } => format!("DELETE disaster-recovery-drills/{drill}"),
        }
    }

    fn body(&self) -> Option<Value> {
        match self {
            Mutation::Evs { action, .. } => Some(action.body()),
            Mutation::Sdrs { action, .. } => Some(action.body()),
            Mutation::CreateDrill { group, name, vpc } => Some(
                json!({ "disaster_recovery_drill": { "server_group_id": group, "name": name, "drill_vpc_id": vpc } }),
            ),
            Mutation::DeleteDrill { .. } => None,
        }
    }

    /// The resource as it is now.
    async fn read<C: Cloud>(&self, s: &StepRun<'_, C>) -> Result<Value, StepError> {
        Ok(match self {
            Mutation::Evs { group, .. } => pre_image(&read_evs(s, group).await?)?,
            Mutation::Sdrs { group, .. } => pre_image(&read_sdrs(s, group).await?)?,
            Mutation::CreateDrill { group, name, .. } => {
                let pg = read_sdrs(s, group).await?;
                let drills = s
                    .read(&format!("GET disaster-recovery-drills {name}"), || {
                        s.cloud().sdrs_list_drills(Some(group), Some(name))
                    })
                    .await?;
                json!({ "group": pg, "drills": drills })
            }
            Mutation::DeleteDrill { drill } => match s
                .read(&format!("GET disaster-recovery-drill {drill}"), || {
                    s.cloud().sdrs_get_drill(drill)
                })
                .await
            {
                Ok(d) => json!({ "exists": true, "status": d.status, "id": d.id }),
                Err(StepError::Cloud(e)) if is_drill_not_found(&e) => json!({ "exists": false }),
                Err(e) => return Err(e),
            },
        })
    }

    /// The action's preconditions on a fresh read; `Err` says why not.
    fn precondition(&self, pre: &Value) -> Result<(), String> {
        let status = field(pre, "status");
        let refuse = |why: String| Err(why);
        match self {
            Mutation::Evs { group, action } => {
                let repl = field(pre, "replication_status");
                let fault = field(pre, "fault_level");
                match action {
                    EvsAction::Switchover if status != "available" || repl != "active" => {
                        refuse(format!(
                            "group {group} must be available and replicating (active) for a switchover, but is {status}/{repl}"
                        ))
                    }
                    EvsAction::Switchover if fault != "0" => refuse(format!(
                        "group {group} reports fault_level {fault}; a switchover needs fault_level 0"
                    )),
                    EvsAction::Failover if fault == "5" => refuse(format!(
                        "group {group} reports fault_level 5: the replication link is down and failover is impossible"
                    )),
                    EvsAction::Failover if !matches!(status, "available" | "error_failovering") => {
                        refuse(format!(
                            "group {group} is {status}; failover needs available (or error_failovering to retry)"
                        ))
                    }
                    EvsAction::Sync | EvsAction::Stop if status != "available" => {
                        refuse(format!("group {group} is {status}, not available"))
                    }
                    EvsAction::Reprotect if !matches!(status, "failovered" | "available") => {
                        refuse(format!(
                            "group {group} is {status}; reprotect needs failovered (or available)"
                        ))
                    }
                    EvsAction::Reprotect if fault == "5" => refuse(format!(
                        "group {group} reports fault_level 5: the replication link is down"
                    )),
                    _ => Ok(()),
                }
            }
            Mutation::Sdrs { group, action } => {
                let station = field(pre, "priority_station");
                let allowed: &[&str] = match action {
                    SdrsAction::Switchover(_) => &["protected", "error-reversing"],
                    SdrsAction::Failover => &["protected", "error-failing-over", "error-reversing"],
                    SdrsAction::Enable => &[
                        "available",
                        "error-starting",
                        "failed-over",
                        "error-reprotecting",
                    ],
                    SdrsAction::Disable => &["protected", "error-stopping"],
                };
                if !allowed.contains(&status) {
                    return refuse(format!(
                        "protection group {group} is {status}; this action needs {}",
                        allowed.join(" or ")
                    ));
                }
                if let SdrsAction::Switchover(to) = action
                    && status == "protected"
                    && station == to.as_str()
                {
                    return refuse(format!(
                        "production of protection group {group} is already on the {to} side"
                    ));
                }
                Ok(())
            }
            Mutation::CreateDrill { group, name, .. } => {
                let pg_status = field(&pre["group"], "status");
                let allowed = [
                    "available",
                    "protected",
                    "failed-over",
                    "error-starting",
                    "error-stopping",
                    "error-reversing",
                    "error-reprotecting",
                    "error-failing-over",
                ];
                if !allowed.contains(&pg_status) {
                    return refuse(format!(
                        "protection group {group} is {pg_status}; a drill cannot be created now"
                    ));
                }
                if pre["drills"].as_array().is_some_and(|d| !d.is_empty()) {
                    return refuse(format!(
                        "a drill named {name} already exists in protection group {group}"
                    ));
                }
                Ok(())
            }
            Mutation::DeleteDrill { drill } => {
                if pre["exists"] == json!(false) {
                    return refuse(format!("drill {drill} does not exist"));
                }
                if !matches!(status, "available" | "error" | "error-deleting") {
                    return refuse(format!(
                        "drill {drill} is {status}; it can be deleted when available, error or error-deleting"
                    ));
                }
                Ok(())
            }
        }
    }

    /// Whether the action visibly took effect between `pre` and `now`; the evidence if so.
    fn applied(&self, pre: &Value, now: &Value) -> Option<String> {
        let changed = |name: &str| {
            let (a, b) = (field(pre, name), field(now, name));
            (a != b).then(|| format!("{name} {b} (was {a})"))
        };
        let status_in = |set: &[&str]| {
            set.contains(&field(now, "status"))
                .then(|| changed("status"))
                .flatten()
        };
        match self {
            Mutation::Evs { action, .. } => match action {
                EvsAction::Switchover => status_in(&["reversing", "error_reversing"])
                    .or_else(|| changed("priority_station")),
                EvsAction::Failover => {
                    status_in(&["failovering", "failovered", "error_failovering"])
                        .or_else(|| changed("priority_station"))
                }
                // A finished sync or reprotect of a replicating group leaves
                // the group as it was except for its update time.
                EvsAction::Sync => (field(now, "replication_status") == "copying"
                    || (field(pre, "replication_status") != "active"
                        && field(now, "replication_status") == "active"))
                    .then(|| {
                        changed("replication_status")
                            .unwrap_or_else(|| "replication_status copying".into())
                    })
                    .or_else(|| changed("updated_at")),
                EvsAction::Stop => ["active-stopped", "inactive"]
                    .contains(&field(now, "replication_status"))
                    .then(|| changed("replication_status"))
                    .flatten(),
                EvsAction::Reprotect => (field(now, "replication_status") == "copying"
                    || (field(pre, "status") == "failovered"
                        && field(now, "status") == "available")
                    || (field(pre, "replication_status") != "active"
                        && field(now, "replication_status") == "active"))
                    .then(|| {
                        changed("status")
                            .or_else(|| changed("replication_status"))
                            .unwrap_or_else(|| "replication_status copying".into())
                    })
                    .or_else(|| changed("updated_at")),
            },
            Mutation::Sdrs { action, .. } => match action {
                SdrsAction::Switchover(to) => {
                    status_in(&["reversing", "error-reversing"]).or_else(|| {
                        (field(now, "priority_station") == to.as_str())
                            .then(|| changed("priority_station"))
                            .flatten()
                    })
                }
                SdrsAction::Failover => {
                    status_in(&["failing-over", "failed-over", "error-failing-over"])
                        .or_else(|| changed("priority_station"))
                }
                SdrsAction::Enable => status_in(&[
                    "starting",
                    "reprotecting",
                    "protected",
                    "error-starting",
                    "error-reprotecting",
                ]),
                SdrsAction::Disable => status_in(&["stopping", "available", "error-stopping"]),
            },
            Mutation::CreateDrill { name, .. } => now["drills"][0]["id"]
                .as_str()
                .map(|id| format!("drill {id} named {name} exists")),
            Mutation::DeleteDrill { .. } => {
                if now["exists"] == json!(false) {
                    Some("the drill is gone".into())
                } else {
                    status_in(&["deleting", "error-deleting"])
                }
            }
        }
    }

    /// Sends once; the SDRS job id when there is one.
    async fn send<C: Cloud>(
        &self,
        s: &StepRun<'_, C>,
    ) -> Result<Delivery<Option<String>>, CloudError> {
        let cloud = s.cloud();
        let job = |d: Delivery<String>| match d {
            Delivery::Sent(id) => Delivery::Sent(Some(id)),
            Delivery::HeldBack(w) => Delivery::HeldBack(w),
        };
        match self {
            Mutation::Evs { group, action } => {
                cloud.evs_action(group, *action).await.map(|d| match d {
                    Delivery::Sent(()) => Delivery::Sent(None),
                    Delivery::HeldBack(w) => Delivery::HeldBack(w),
                })
            }
            Mutation::Sdrs { group, action } => cloud.sdrs_action(group, *action).await.map(job),
            Mutation::CreateDrill { group, name, vpc } => cloud
                .sdrs_create_drill(group, name, vpc.as_deref())
                .await
                .map(job),
            Mutation::DeleteDrill { drill } => cloud.sdrs_delete_drill(drill).await.map(job),
        }
    }
}

/// A read as the JSON the intent records; without it no reconciliation is possible.
fn pre_image<T: serde::Serialize>(v: &T) -> Result<Value, StepError> {
    serde_json::to_value(v)
        .map_err(|e| StepError::Failed(format!("cannot record the resource before the call: {e}")))
}

/// SDRS answers a missing drill with `SDRS.1902` (or a plain 404).
pub(crate) fn is_drill_not_found(e: &CloudError) -> bool {
    e.code.as_deref() == Some("SDRS.1902") || e.status == Some(404)
}

/// Performs a mutating call exactly once (see the module docs).
pub(crate) async fn mutate<C: Cloud>(s: &StepRun<'_, C>, m: &Mutation) -> Result<Sent, StepError> {
    let store = &s.engine.store;
    let run_id = &s.ctx.run.id;
    let step_id = &s.step.id;
    let policy = &s.step.retry;
    let request = m.request();
    let intents: Vec<_> = store
        .attempts(run_id)
        .await?
        .into_iter()
        .filter(|a| &a.step_id == step_id && a.kind == AttemptKind::Intent)
        .collect();
    let mut attempt = u32::try_from(intents.len()).unwrap_or(u32::MAX) + 1;

    // A run resumed after a crash. The last intent's recorded outcome is
    // authoritative: a call the cloud accepted (or that a reconciliation found
    // applied) is never sent again, whatever the resource looks like now.
    if let Some(last) = intents.last() {
        match last.intent_outcome()? {
            Some(IntentOutcome::Accepted) => {
                s.note(format!(
                    "intent #{} ({}) was accepted before the interruption; not sending it again",
                    last.attempt, last.request
                ));
                return Ok(Sent::Answered {
                    job_id: last.job_id.clone(),
                });
            }
            Some(IntentOutcome::Applied) => {
                s.note(format!(
                    "intent #{} ({}) was found applied before the interruption; not sending it again",
                    last.attempt, last.request
                ));
                return Ok(Sent::Applied {
                    evidence: "applied before the interruption".into(),
                });
            }
            Some(IntentOutcome::Failed) => {
                return Err(StepError::Failed(format!(
                    "{} was refused before the interruption: {}",
                    last.request,
                    last.error_message.as_deref().unwrap_or("no message")
                )));
            }
            Some(IntentOutcome::NotApplied) => {
                // A re-send is still due, within the attempt budget.
                if !policy.allows_another(attempt - 1) {
                    return Err(StepError::Failed(format!(
                        "{request} did not take effect in {} attempts",
                        attempt - 1
                    )));
                }
            }
            None | Some(IntentOutcome::Ambiguous) => {
                s.emit(RunEvent::Ambiguous {
                    step_id: step_id.clone(),
                    reason: format!(
                        "resumed with intent #{} of {} unanswered",
                        last.attempt, last.request
                    ),
                });
                // The interrupted run's request may still be on its way: let it land first.
                let age = chrono::DateTime::parse_from_rfc3339(&last.started_at)
                    .map(|t| {
                        (chrono::Utc::now() - t.with_timezone(&chrono::Utc))
                            .to_std()
                            .unwrap_or_default()
                    })
                    .unwrap_or_default();
                if let Some(wait) = s
                    .engine
                    .in_flight_grace
                    .checked_sub(age)
                    .filter(|w| !w.is_zero())
                {
                    s.note(format!(
                        "waiting {:.1}s for a request the interrupted run may still have in flight",
                        wait.as_secs_f64()
                    ));
                    tokio::time::sleep(wait).await;
                }
                let pre = last.pre_image.clone().ok_or_else(|| {
                    StepError::Failed(format!(
                        "intent #{} of {} has no stored pre-image; cannot tell whether it took effect",
                        last.attempt, last.request
                    ))
                })?;
                if let Some(sent) = reconcile(s, m, &pre, last.id, attempt).await? {
                    return Ok(sent);
                }
                if !policy.allows_another(attempt - 1) {
                    return Err(StepError::Failed(format!(
                        "{request} did not take effect in {} attempts",
                        attempt - 1
                    )));
                }
            }
        }
    }

    loop {
        let pre = m.read(s).await?;
        m.precondition(&pre)
            .map_err(|why| StepError::Failed(format!("{why}; nothing was sent")))?;
        if s.dry_run() {
            // A dry run executes against the dry-run cloud: nothing leaves, so
            // there is no intent to make durable first.
            return match m.send(s).await? {
                Delivery::HeldBack(w) => {
                    s.record_held_back(attempt, w).await?;
                    Ok(Sent::HeldBack)
                }
                Delivery::Sent(_) => Err(StepError::Failed(format!(
                    "{request} was sent by a dry run"
                ))),
            };
        }
        crash::point("mutate.before_intent");
        // Durable before the request leaves: a crash from here on is reconciled on resume.
        let intent = s
            .record(
                attempt,
                AttemptKind::Intent,
                &request,
                m.body(),
                Some(pre.clone()),
                None,
            )
            .await?;
        crash::point("mutate.after_intent");
        let started = tokio::time::Instant::now();
        let result = m.send(s).await.and_then(|d| match d {
            Delivery::Sent(job_id) => Ok(job_id),
            Delivery::HeldBack(w) => Err(CloudError::not_sent(
                &w.request,
                "held back outside a dry run",
            )),
        });
        let duration = started.elapsed();
        crash::point("mutate.after_send");
        let error = match result {
            Ok(job_id) => {
                let outcome = Outcome {
                    outcome: IntentOutcome::Accepted.as_str().into(),
                    http_status: Some(200),
                    duration,
                    job_id: job_id.clone(),
                    ..Outcome::default()
                };
                store
                    .record_outcome(run_id, step_id, intent, &outcome)
                    .await?;
                crash::point("mutate.after_outcome");
                return Ok(Sent::Answered { job_id });
            }
            Err(e) => e,
        };
        if !super::retry::retryable(policy, &error) {
            let outcome = Outcome {
                duration,
                ..failed_outcome(IntentOutcome::Failed.as_str(), &error)
            };
            store
                .record_outcome(run_id, step_id, intent, &outcome)
                .await?;
            return Err(StepError::Cloud(error));
        }
        store
            .record_outcome(
                run_id,
                step_id,
                intent,
                &Outcome {
                    duration,
                    ..failed_outcome(IntentOutcome::Ambiguous.as_str(), &error)
                },
            )
            .await?;
        s.emit(RunEvent::Ambiguous {
            step_id: step_id.clone(),
            reason: error.to_string(),
        });
        // Wait first, then re-read: a service behind a timed-out gateway may act late.
        let delay = super::retry::next_delay(policy, attempt, &error);
        if policy.allows_another(attempt) {
            s.emit(RunEvent::Retrying {
                step_id: step_id.clone(),
                attempt,
                max_attempts: policy.max_attempts,
                delay_ms: u64::try_from(delay.as_millis()).unwrap_or(u64::MAX),
                status: error.status,
                reason: error.to_string(),
            });
            tracing::info!(attempt, delay_ms = delay.as_millis() as u64, error = %error, "Mutating call unanswered; re-reading after the backoff.");
        }
        // Not cut short by a cancel: the late request must have landed before the re-read.
        let waited = s
            .hold(delay, || {
                format!("{request} was not answered before the step timeout: {error}")
            })
            .await;
        // Even when the step timed out, the intent is settled before the step
        // fails: a failed run must say whether its call took effect.
        if let Some(sent) = reconcile(s, m, &pre, intent, attempt).await? {
            return Ok(sent);
        }
        waited?;
        if !policy.allows_another(attempt) {
            return Err(StepError::Cloud(error));
        }
        attempt += 1;
    }
}

/// Re-reads the resource and settles intent `intent`: `Some` when the action
/// took effect (nothing more to send), `None` when it did not.
async fn reconcile<C: Cloud>(
    s: &StepRun<'_, C>,
    m: &Mutation,
    pre: &Value,
    intent: i64,
    attempt: u32,
) -> Result<Option<Sent>, StepError> {
    let now = m.read(s).await?;
    let verdict = m.applied(pre, &now);
    let word = if verdict.is_some() {
        IntentOutcome::Applied
    } else {
        IntentOutcome::NotApplied
    };
    let evidence = verdict
        .clone()
        .unwrap_or_else(|| "no change since the intent".to_string());
    s.engine
        .store
        .record_outcome(
            &s.ctx.run.id,
            &s.step.id,
            intent,
            &Outcome {
                outcome: word.to_string(),
                ..Outcome::default()
            },
        )
        .await?;
    s.record(
        attempt,
        AttemptKind::Reconcile,
        &m.request(),
        None,
        Some(now),
        Some(Outcome {
            outcome: word.to_string(),
            error_message: Some(evidence.clone()),
            ..Outcome::default()
        }),
    )
    .await?;
    s.emit(RunEvent::Reconciled {
        step_id: s.step.id.clone(),
        outcome: word,
        evidence: evidence.clone(),
    });
    tracing::info!(outcome = %word, %evidence, "Reconciled.");
    crash::point("mutate.after_reconcile");
    Ok(verdict.map(|evidence| Sent::Applied { evidence }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runbook::model::PriorityStation;

    fn evs(status: &str, repl: &str, station: &str) -> Value {
        json!({ "status": status, "replication_status": repl, "priority_station": station, "fault_level": "0" })
    }

    #[test]
    fn evs_switchover_is_recognised_in_flight_and_after_completion() {
        let m = Mutation::Evs {
            group: "g".into(),
            action: EvsAction::Switchover,
        };
        let pre = evs("available", "active", "az1");
        assert!(
            m.applied(&pre, &evs("reversing", "active", "az1"))
                .is_some(),
            "in flight"
        );
        assert!(
            m.applied(&pre, &evs("available", "active", "az2"))
                .is_some(),
            "completed: the station moved"
        );
        assert!(
            m.applied(&pre, &evs("error_reversing", "error", "az1"))
                .is_some(),
            "failed, but it was acted on"
        );
        assert!(
            m.applied(&pre, &evs("available", "active", "az1"))
                .is_none(),
            "nothing happened"
        );
    }

    #[test]
    fn preconditions_of_each_action() {
        let ok = |m: &Mutation, pre: Value| m.precondition(&pre).is_ok();
        let sw = Mutation::Evs {
            group: "g".into(),
            action: EvsAction::Switchover,
        };
        assert!(ok(&sw, evs("available", "active", "az1")));
        assert!(!ok(&sw, evs("reversing", "active", "az1")));
        assert!(!ok(&sw, evs("available", "active-stopped", "az1")));
        let fo = Mutation::Evs {
            group: "g".into(),
            action: EvsAction::Failover,
        };
        let mut linkdown = evs("available", "active", "az1");
        linkdown["fault_level"] = json!("5");
        let why = fo.precondition(&linkdown).unwrap_err();
        assert!(why.contains("failover is impossible"), "{why}");
        let rev = Mutation::Sdrs {
            group: "pg".into(),
            action: SdrsAction::Switchover(PriorityStation::Target),
        };
        assert!(ok(
            &rev,
            json!({"status": "protected", "priority_station": "source"})
        ));
        assert!(
            !ok(
                &rev,
                json!({"status": "protected", "priority_station": "target"})
            ),
            "already there"
        );
        assert!(!ok(
            &rev,
            json!({"status": "available", "priority_station": "source"})
        ));
    }

    #[test]
    fn sdrs_and_drill_evidence() {
        let rev = Mutation::Sdrs {
            group: "pg".into(),
            action: SdrsAction::Switchover(PriorityStation::Target),
        };
        let pre = json!({"status": "protected", "priority_station": "source"});
        assert!(
            rev.applied(
                &pre,
                &json!({"status": "reversing", "priority_station": "source"})
            )
            .is_some()
        );
        assert!(
            rev.applied(
                &pre,
                &json!({"status": "protected", "priority_station": "target"})
            )
            .is_some()
        );
        assert!(rev.applied(&pre, &pre).is_none());
        let create = Mutation::CreateDrill {
            group: "pg".into(),
            name: "d".into(),
            vpc: None,
        };
        assert!(
            create
                .applied(&json!({"drills": []}), &json!({"drills": [{"id": "x"}]}))
                .is_some()
        );
        assert!(
            create
                .applied(&json!({"drills": []}), &json!({"drills": []}))
                .is_none()
        );
        let delete = Mutation::DeleteDrill { drill: "x".into() };
        assert!(
            delete
                .applied(
                    &json!({"exists": true, "status": "available"}),
                    &json!({"exists": false})
                )
                .is_some()
        );
    }

    /// Every state each action can leave its resource in (in flight, done,
    /// failed) is recognised as "applied"; the untouched resource is not.
    #[test]
    fn reconciliation_decides_from_every_state_an_action_leads_through() {
        let t0 = "2026-11-29T10:00:00Z";
        let t1 = "2026-11-29T10:00:05Z";
        let evs_at = |status: &str, repl: &str, station: &str, at: &str| json!({ "status": status, "replication_status": repl, "priority_station": station, "fault_level": "0", "updated_at": at });
        let sdrs_at =
            |status: &str, station: &str| json!({ "status": status, "priority_station": station });
        let e = |action| Mutation::Evs {
            group: "g".into(),
            action,
        };
        let p = |action| Mutation::Sdrs {
            group: "pg".into(),
            action,
        };
        let healthy = evs_at("available", "active", "az1", t0);
        let failed_over = evs_at("failovered", "active-stopped", "az2", t0);
        let protected = sdrs_at("protected", "source");
        let available = sdrs_at("available", "source");
        // (action, pre-image, states after it acted, each with its label)
        type Case = (Mutation, Value, Vec<(Value, &'static str)>);
        let cases: Vec<Case> = vec![
            (
                e(EvsAction::Switchover),
                healthy.clone(),
                vec![
                    (evs_at("reversing", "active", "az1", t1), "in flight"),
                    (evs_at("available", "active", "az2", t1), "done"),
                    (evs_at("error_reversing", "error", "az1", t1), "failed"),
                ],
            ),
            (
                e(EvsAction::Failover),
                healthy.clone(),
                vec![
                    (evs_at("failovering", "active", "az1", t1), "in flight"),
                    (evs_at("failovered", "active-stopped", "az2", t1), "done"),
                    (evs_at("error_failovering", "error", "az1", t1), "failed"),
                ],
            ),
            (
                e(EvsAction::Sync),
                healthy.clone(),
                vec![
                    (evs_at("available", "copying", "az1", t1), "in flight"),
                    (
                        evs_at("available", "active", "az1", t1),
                        "done: only updated_at moved",
                    ),
                    (evs_at("error", "error", "az1", t1), "failed"),
                ],
            ),
            (
                e(EvsAction::Stop),
                healthy.clone(),
                vec![(evs_at("available", "active-stopped", "az1", t1), "done")],
            ),
            (
                e(EvsAction::Reprotect),
                failed_over.clone(),
                vec![
                    (evs_at("failovered", "copying", "az2", t1), "in flight"),
                    (evs_at("available", "active", "az2", t1), "done"),
                    (evs_at("error", "error", "az2", t1), "failed"),
                ],
            ),
            (
                p(SdrsAction::Switchover(PriorityStation::Target)),
                protected.clone(),
                vec![
                    (sdrs_at("reversing", "source"), "in flight"),
                    (sdrs_at("protected", "target"), "done"),
                    (sdrs_at("error-reversing", "source"), "failed"),
                ],
            ),
            (
                p(SdrsAction::Failover),
                protected.clone(),
                vec![
                    (sdrs_at("failing-over", "source"), "in flight"),
                    (sdrs_at("failed-over", "target"), "done"),
                    (sdrs_at("error-failing-over", "source"), "failed"),
                ],
            ),
            (
                p(SdrsAction::Enable),
                available.clone(),
                vec![
                    (sdrs_at("starting", "source"), "in flight"),
                    (sdrs_at("protected", "source"), "done"),
                    (sdrs_at("error-starting", "source"), "failed"),
                ],
            ),
            (
                p(SdrsAction::Disable),
                protected.clone(),
                vec![
                    (sdrs_at("stopping", "source"), "in flight"),
                    (sdrs_at("available", "source"), "done"),
                    (sdrs_at("error-stopping", "source"), "failed"),
                ],
            ),
            (
                Mutation::CreateDrill {
                    group: "pg".into(),
                    name: "d".into(),
                    vpc: None,
                },
                json!({ "group": protected.clone(), "drills": [] }),
                vec![
                    (
                        json!({ "group": protected.clone(), "drills": [{ "id": "x", "status": "creating" }] }),
                        "in flight",
                    ),
                    (
                        json!({ "group": protected.clone(), "drills": [{ "id": "x", "status": "available" }] }),
                        "done",
                    ),
                    (
                        json!({ "group": protected.clone(), "drills": [{ "id": "x", "status": "error" }] }),
                        "failed",
                    ),
                ],
            ),
            (
                Mutation::DeleteDrill { drill: "x".into() },
                json!({ "exists": true, "status": "available", "id": "x" }),
                vec![
                    (
                        json!({ "exists": true, "status": "deleting", "id": "x" }),
                        "in flight",
                    ),
                    (json!({ "exists": false }), "done"),
                    (
                        json!({ "exists": true, "status": "error-deleting", "id": "x" }),
                        "failed",
                    ),
                ],
            ),
        ];
        for (m, pre, after) in cases {
            assert!(
                m.applied(&pre, &pre).is_none(),
                "{}: the untouched resource is not applied",
                m.request()
            );
            assert!(
                m.precondition(&pre).is_ok(),
                "{}: pre-image is a valid start",
                m.request()
            );
            for (now, label) in after {
                assert!(
                    m.applied(&pre, &now).is_some(),
                    "{} {label}: {now} must count as applied",
                    m.request()
                );
            }
        }
    }
}
