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
