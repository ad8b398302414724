//! Approval decisions, each an audit event with its approver.

use serde::Serialize;
use sqlx::Row;

use super::{Store, StoreError, now, word};
use crate::spelling::string_enum;

string_enum! {
    /// What an approver decided.
    Decision {
        /// The run may go on.
        Approved = "approved",
        /// The approval step fails.
        Rejected = "rejected",
    }
}

/// What became of a decision sent while a run may be waiting for approval.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admission {
    /// Recorded, with its audit event.
    Recorded,
    /// The step is not waiting (not running).
    NotWaiting,
    /// The step has the approvals it needs, or a rejection, already.
    Settled,
    /// This approver decided on this step already.
    AlreadyDecided,
}

/// A stored approval.
#[derive(Debug, Clone, Serialize, serde::Deserialize, utoipa::ToSchema)]
pub struct ApprovalRecord {
    pub step_id: String,
    pub approver: String,
    /// Approved or rejected.
    pub decision: Decision,
    pub comment: Option<String>,
    pub at: String,
}

impl Store {
    /// Records an approval decision.
    pub async fn record_approval(
        &self,
        run_id: &str,
        step_id: &str,
        approver: &str,
        decision: Decision,
        comment: Option<&str>,
    ) -> Result<(), StoreError> {
        self.write(async |tx| {
            sqlx::query("INSERT INTO approvals (run_id, step_id, approver, decision, comment, at) VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (run_id, step_id, approver) DO UPDATE SET decision = excluded.decision, comment = excluded.comment, at = excluded.at")
                .bind(run_id)
                .bind(step_id)
                .bind(approver)
                .bind(decision.as_str())
                .bind(comment)
                .bind(now())
                .execute(&mut *tx)
                .await?;
            self.append(
                tx,
                approver,
                "approval",
                Some(run_id),
                Some(step_id),
                serde_json::json!({ "decision": decision, "comment": comment }),
            )
            .await?;
            Ok(())
        })
        .await
    }

    /// Marks an approval step as waiting for `needed` distinct approvers:
    /// the step's output says so (for the API to judge decisions against),
    /// with an `approval.requested` audit event. Fenced: only the run's
    /// owner writes it.
    pub async fn await_approvals(
        &self,
        run_id: &str,
        step_id: &str,
        needed: u32,
        prompt: &str,
    ) -> Result<(), StoreError> {
        let output = serde_json::json!({ "awaiting_approvals": needed, "prompt": prompt });
        self.write(async |tx| {
            self.fence(tx, run_id).await?;
            sqlx::query("UPDATE steps SET output = $1 WHERE run_id = $2 AND step_id = $3 AND status = 'running'")
                .bind(output.to_string())
                .bind(run_id)
                .bind(step_id)
                .execute(&mut *tx)
                .await?;
            self.append(tx, "drover", "approval.requested", Some(run_id), Some(step_id), output.clone())
                .await
        })
        .await
    }

    /// Records a decision only while the step waits for one: it is running,
    /// has no rejection and fewer distinct approvals (the requester's not
    /// counted) than its `awaiting_approvals` (1 when unset), and this
    /// approver has not decided on it. Checked and written in one write
    /// transaction, so two decisions racing cannot both be the last one.
    pub async fn admit_approval(
        &self,
        run_id: &str,
        step_id: &str,
        approver: &str,
        requester: &str,
        decision: Decision,
        comment: Option<&str>,
    ) -> Result<Admission, StoreError> {
        self.write(async |tx| {
            let waiting = sqlx::query("SELECT output FROM steps WHERE run_id = $1 AND step_id = $2 AND status = 'running'")
                .bind(run_id)
                .bind(step_id)
                .fetch_optional(&mut *tx)
                .await?;
            let Some(row) = waiting else {
                return Ok(Admission::NotWaiting);
            };
            let output: Option<String> = row.get(0);
            let needed = output
                .and_then(|o| serde_json::from_str::<serde_json::Value>(&o).ok())
                .and_then(|o| o["awaiting_approvals"].as_u64())
                .unwrap_or(1) as usize;
            let decided = sqlx::query("SELECT approver, decision FROM approvals WHERE run_id = $1 AND step_id = $2")
                .bind(run_id)
                .bind(step_id)
                .fetch_all(&mut *tx)
                .await?;
            let decided: Vec<(String, String)> =
                decided.iter().map(|r| (r.get(0), r.get(1))).collect();
            if decided.iter().any(|(who, _)| who == approver) {
                return Ok(Admission::AlreadyDecided);
            }
            let rejected = decided.iter().any(|(_, d)| d == Decision::Rejected.as_str());
            let approvals = decided
                .iter()
                .filter(|(who, d)| d == Decision::Approved.as_str() && who != requester)
                .count();
            if rejected || approvals >= needed {
                return Ok(Admission::Settled);
            }
            sqlx::query("INSERT INTO approvals (run_id, step_id, approver, decision, comment, at) VALUES ($1, $2, $3, $4, $5, $6)")
                .bind(run_id)
                .bind(step_id)
                .bind(approver)
                .bind(decision.as_str())
                .bind(comment)
                .bind(now())
                .execute(&mut *tx)
                .await?;
            self.append(
                tx,
                approver,
                "approval",
                Some(run_id),
                Some(step_id),
                serde_json::json!({ "decision": decision, "comment": comment }),
            )
            .await?;
            Ok(Admission::Recorded)
        })
        .await
    }

    /// A run's approvals.
    pub async fn approvals(&self, run_id: &str) -> Result<Vec<ApprovalRecord>, StoreError> {
        let rows = sqlx::query("SELECT step_id, approver, decision, comment, at FROM approvals WHERE run_id = $1 ORDER BY at")
            .bind(run_id)
            .fetch_all(&mut *self.db.read().await)
            .await?;
        rows.iter()
            .map(|r| {
                Ok(ApprovalRecord {
                    step_id: r.get(0),
                    approver: r.get(1),
                    decision: word(r, 2, Decision::parse, "approval decision", || {
                        format!("in run {run_id}")
                    })?,
                    comment: r.get(3),
                    at: r.get(4),
                })
            })
            .collect()
    }
}
