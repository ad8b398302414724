//! `approval`: pause until enough distinct operators approve. Approvals come
//! from `--approve`, the terminal, or the API (stored, so a restart loses
//! none); with nobody to ask, the run stops at the step, resumable.

use serde_json::{Value, json};

use crate::engine::context::{CANCEL_CHECK, StepError, StepRun};
use crate::engine::{Approvals, Cloud, Prompted, RunEvent, crash};
use crate::runbook::model::ApprovalInput;
use crate::store::Decision;

/// Waits for the approvals the step needs; the approvers.
pub(crate) async fn ask<C: Cloud>(
    s: &StepRun<'_, C>,
    i: &ApprovalInput,
) -> Result<Value, StepError> {
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
        Approvals::Ask(ask) => {
            let (question, ask) = (prompt.clone(), ask.clone());
            let ask = tokio::task::spawn_blocking(move || ask(&question, needed));
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
                        "step `{}` needs {needed} approval(s) for `{prompt}` and nobody was there to answer",
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
            .record_approval(&s.ctx.run.id, &s.step.id, name, Decision::Approved, None)
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
    store
        .await_approvals(run_id, step_id, needed as u32, prompt)
        .await?;
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
