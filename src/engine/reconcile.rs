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

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::Cloud;
use super::context::{StepError, StepRun, failed_outcome, read_evs, read_sdrs};
use super::crash;
use crate::cloud::CloudError;
use crate::cloud::Delivery;
use crate::cloud::evs::EvsAction;
use crate::cloud::resource::{Drill, EvsGroup, ProtectionGroup};
use crate::cloud::sdrs::{self, SdrsAction};
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
    async fn read<C: Cloud>(&self, s: &StepRun<'_, C>) -> Result<Image, StepError> {
        Ok(match self {
            Mutation::Evs { group, .. } => Image::Evs(read_evs(s, group).await?),
            Mutation::Sdrs { group, .. } => Image::Sdrs(read_sdrs(s, group).await?),
            Mutation::CreateDrill { group, name, .. } => {
                let group = read_sdrs(s, group).await?;
                let drills = s
                    .read(&format!("GET disaster-recovery-drills {name}"), || {
                        s.cloud().sdrs_list_drills(Some(&group.id), Some(name))
                    })
                    .await?;
                Image::Drills(DrillsOfName { group, drills })
            }
            Mutation::DeleteDrill { drill } => Image::Drill(
                match s
                    .read(&format!("GET disaster-recovery-drill {drill}"), || {
                        s.cloud().sdrs_get_drill(drill)
                    })
                    .await
                {
                    Ok(d) => DrillSeen {
                        exists: true,
                        status: Some(d.status),
                        id: Some(d.id),
                    },
                    Err(StepError::Cloud(e)) if is_drill_not_found(&e) => DrillSeen {
                        exists: false,
                        status: None,
                        id: None,
                    },
                    Err(e) => return Err(e),
                },
            ),
        })
    }

    /// A stored pre-image read back as this mutation's resource.
    fn image(&self, stored: &Value) -> Result<Image, String> {
        let v = stored.clone();
        match self {
            Mutation::Evs { .. } => serde_json::from_value(v).map(Image::Evs),
            Mutation::Sdrs { .. } => serde_json::from_value(v).map(Image::Sdrs),
            Mutation::CreateDrill { .. } => serde_json::from_value(v).map(Image::Drills),
            Mutation::DeleteDrill { .. } => serde_json::from_value(v).map(Image::Drill),
        }
        .map_err(|e| e.to_string())
    }

    /// The action's preconditions on a fresh read; `Err` says why not.
    fn precondition(&self, pre: &Image) -> Result<(), String> {
        match (self, pre) {
            (Mutation::Evs { action, .. }, Image::Evs(g)) => action.precondition(g),
            (Mutation::Sdrs { action, .. }, Image::Sdrs(pg)) => action.precondition(pg),
            (Mutation::CreateDrill { name, .. }, Image::Drills(d)) => {
                sdrs::create_drill_precondition(&d.group, name, &d.drills)
            }
            (Mutation::DeleteDrill { drill }, Image::Drill(d)) => {
                sdrs::delete_drill_precondition(drill, d.status())
            }
            _ => Err(mismatch(self)),
        }
    }

    /// Whether the action visibly took effect between `pre` and `now`; the evidence if so.
    fn applied(&self, pre: &Image, now: &Image) -> Option<String> {
        match (self, pre, now) {
            (Mutation::Evs { action, .. }, Image::Evs(a), Image::Evs(b)) => {
                action.took_effect(a, b)
            }
            (Mutation::Sdrs { action, .. }, Image::Sdrs(a), Image::Sdrs(b)) => {
                action.took_effect(a, b)
            }
            (Mutation::CreateDrill { name, .. }, _, Image::Drills(b)) => b
                .drills
                .first()
                .map(|d| format!("drill {} named {name} exists", d.id)),
            (Mutation::DeleteDrill { .. }, Image::Drill(a), Image::Drill(b)) => {
                sdrs::delete_drill_took_effect(a.status(), b.status())
            }
            _ => None,
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

/// A mutation's resource as read: before the call (the intent's pre-image,
/// stored as the JSON of the read) or when reconciling.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Image {
    Evs(EvsGroup),
    Sdrs(ProtectionGroup),
    Drills(DrillsOfName),
    Drill(DrillSeen),
}

/// The group a drill is to be created in, and its drills of that name.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct DrillsOfName {
    group: ProtectionGroup,
    drills: Vec<Drill>,
}

/// A drill to delete as read: `exists: false` once it is gone.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct DrillSeen {
    exists: bool,
    #[serde(default)]
    status: Option<String>,
    #[serde(default)]
    id: Option<String>,
}

impl DrillSeen {
    fn status(&self) -> Option<&str> {
        if self.exists {
            self.status.as_deref()
        } else {
            None
        }
    }
}

impl Image {
    /// The JSON the intent records; without it no reconciliation is possible.
    fn to_value(&self) -> Result<Value, StepError> {
        match self {
            Image::Evs(g) => serde_json::to_value(g),
            Image::Sdrs(pg) => serde_json::to_value(pg),
            Image::Drills(d) => serde_json::to_value(d),
            Image::Drill(d) => serde_json::to_value(d),
        }
        .map_err(|e| StepError::Failed(format!("cannot record the resource before the call: {e}")))
    }
}

fn mismatch(m: &Mutation) -> String {
    format!(
        "{}: the resource read does not belong to this action",
        m.request()
    )
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
        .step_attempts(run_id, step_id)
        .await?
        .into_iter()
        .filter(|a| a.kind == AttemptKind::Intent)
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
                let pre = last.pre_image.as_ref().ok_or_else(|| {
                    StepError::Failed(format!(
                        "intent #{} of {} has no stored pre-image; cannot tell whether it took effect",
                        last.attempt, last.request
                    ))
                })?;
                let pre = m.image(pre).map_err(|e| {
                    StepError::Failed(format!(
                        "the pre-image of intent #{} of {} cannot be read ({e}); cannot tell whether it took effect",
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
                Some(pre.to_value()?),
                None,
            )
            .await?;
        crash::point("mutate.after_intent");
        // Right before the change leaves: this process must still hold the
        // run's claim by its own monotonic clock (another may take it after).
        store.may_send(run_id)?;
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
                request: request.clone(),
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
    pre: &Image,
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
        Some(now.to_value()?),
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
        json!({ "id": "g", "status": status, "replication_status": repl, "priority_station": station, "fault_level": "0" })
    }

    /// The rules over resources given as the JSON the store keeps.
    fn applied(m: &Mutation, pre: &Value, now: &Value) -> Option<String> {
        m.applied(&m.image(pre).unwrap(), &m.image(now).unwrap())
    }

    fn precondition(m: &Mutation, pre: &Value) -> Result<(), String> {
        m.precondition(&m.image(pre).unwrap())
    }

    #[test]
    fn evs_switchover_is_recognised_in_flight_and_after_completion() {
        let m = Mutation::Evs {
            group: "g".into(),
            action: EvsAction::Switchover,
        };
        let pre = evs("available", "active", "az1");
        assert!(
            applied(&m, &pre, &evs("reversing", "active", "az1")).is_some(),
            "in flight"
        );
        assert!(
            applied(&m, &pre, &evs("available", "active", "az2")).is_some(),
            "completed: the station moved"
        );
        assert!(
            applied(&m, &pre, &evs("error_reversing", "error", "az1")).is_some(),
            "failed, but it was acted on"
        );
        assert!(
            applied(&m, &pre, &evs("available", "active", "az1")).is_none(),
            "nothing happened"
        );
    }

    #[test]
    fn a_stored_pre_image_of_another_shape_is_an_error_not_a_guess() {
        let evs = Mutation::Evs {
            group: "g".into(),
            action: EvsAction::Switchover,
        };
        let err = evs.image(&json!({ "exists": false })).unwrap_err();
        assert!(err.contains("missing field"), "{err}");
        let delete = Mutation::DeleteDrill { drill: "d".into() };
        assert!(
            delete
                .image(&json!({ "id": "d", "status": "available" }))
                .is_err()
        );
        assert_eq!(
            delete.image(&json!({ "exists": false })),
            Ok(Image::Drill(DrillSeen {
                exists: false,
                status: None,
                id: None
            }))
        );
    }

    #[test]
    fn preconditions_of_each_action() {
        let ok = |m: &Mutation, pre: Value| precondition(m, &pre).is_ok();
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
        let why = precondition(&fo, &linkdown).unwrap_err();
        assert!(why.contains("failover is impossible"), "{why}");
        let rev = Mutation::Sdrs {
            group: "pg".into(),
            action: SdrsAction::Switchover(PriorityStation::Target),
        };
        assert!(ok(
            &rev,
            json!({"id": "pg", "status": "protected", "priority_station": "source"})
        ));
        assert!(
            !ok(
                &rev,
                json!({"id": "pg", "status": "protected", "priority_station": "target"})
            ),
            "already there"
        );
        assert!(!ok(
            &rev,
            json!({"id": "pg", "status": "available", "priority_station": "source"})
        ));
    }

    #[test]
    fn sdrs_and_drill_evidence() {
        let rev = Mutation::Sdrs {
            group: "pg".into(),
            action: SdrsAction::Switchover(PriorityStation::Target),
        };
        let pre = json!({"id": "pg", "status": "protected", "priority_station": "source"});
        assert!(
            applied(
                &rev,
                &pre,
                &json!({"id": "pg", "status": "reversing", "priority_station": "source"})
            )
            .is_some()
        );
        assert!(
            applied(
                &rev,
                &pre,
                &json!({"id": "pg", "status": "protected", "priority_station": "target"})
            )
            .is_some()
        );
        assert!(applied(&rev, &pre, &pre).is_none());
        let create = Mutation::CreateDrill {
            group: "pg".into(),
            name: "d".into(),
            vpc: None,
        };
        let pg = json!({"id": "pg", "status": "protected"});
        assert!(
            applied(
                &create,
                &json!({"group": pg, "drills": []}),
                &json!({"group": pg, "drills": [{"id": "x", "status": "creating"}]})
            )
            .is_some()
        );
        assert!(
            applied(
                &create,
                &json!({"group": pg, "drills": []}),
                &json!({"group": pg, "drills": []})
            )
            .is_none()
        );
        let delete = Mutation::DeleteDrill { drill: "x".into() };
        assert!(
            applied(
                &delete,
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
        let evs_at = |status: &str, repl: &str, station: &str, at: &str| json!({ "id": "g", "status": status, "replication_status": repl, "priority_station": station, "fault_level": "0", "updated_at": at });
        let sdrs_at = |status: &str, station: &str| json!({ "id": "pg", "status": status, "priority_station": station });
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
                applied(&m, &pre, &pre).is_none(),
                "{}: the untouched resource is not applied",
                m.request()
            );
            assert!(
                precondition(&m, &pre).is_ok(),
                "{}: pre-image is a valid start",
                m.request()
            );
            for (now, label) in after {
                assert!(
                    applied(&m, &pre, &now).is_some(),
                    "{} {label}: {now} must count as applied",
                    m.request()
                );
            }
        }
    }
}
