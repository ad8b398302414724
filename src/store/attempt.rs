//! Step attempts: reads, polls, requests, and the intents of mutating calls
//! with their outcomes (the exactly-once record).

use std::time::Duration;

use serde::Serialize;
use serde_json::Value;
use sqlx::Row;

use super::{Store, StoreError, json_column, now, timestamp};
use crate::spelling::string_enum;

string_enum! {
    /// What an attempt row records.
    #[derive(Default)]
    AttemptKind {
        /// A failed read that was retried.
        #[default]
        Read = "read",
        /// A mutating call, written before it is sent; its outcome follows.
        Intent = "intent",
        /// A re-read that decided whether an unanswered call took effect.
        Reconcile = "reconcile",
        /// A poll of a wait or an SDRS job.
        Poll = "poll",
        /// An `http.request` call and its status.
        Request = "request",
        /// A request a dry run held back.
        WouldSend = "would_send",
    }
}

string_enum! {
    /// What became of an intent (a mutating call).
    IntentOutcome {
        /// The cloud accepted it: never sent again.
        Accepted = "accepted",
        /// A reconciliation found it took effect: never sent again.
        Applied = "applied",
        /// The cloud refused it with a definite answer.
        Failed = "failed",
        /// A reconciliation found it did not take effect: may be sent again.
        NotApplied = "not_applied",
        /// The answer was lost or retryable: reconciled before anything else.
        Ambiguous = "ambiguous",
    }
}

/// An attempt to record.
#[derive(Debug, Clone, Default)]
pub struct NewAttempt {
    pub run_id: String,
    pub step_id: String,
    /// Attempt number within the step.
    pub attempt: u32,
    /// What it records.
    pub kind: AttemptKind,
    /// `METHOD path`.
    pub request: String,
    /// Request body (secrets never included).
    pub request_body: Option<Value>,
    /// The resource before a mutating call.
    pub pre_image: Option<Value>,
}

/// The outcome of an attempt.
#[derive(Debug, Clone, Default)]
pub struct Outcome {
    /// Short outcome word (`ok`, `failed`, `ambiguous`, `applied`, `not_applied`, `would_send`).
    pub outcome: String,
    pub http_status: Option<u16>,
    /// Cloud error code.
    pub error_code: Option<String>,
    /// Cloud message.
    pub error_message: Option<String>,
    /// How long it took.
    pub duration: Duration,
    /// The SDRS job an accepted call started.
    pub job_id: Option<String>,
    /// The cloud's request id of the answer (`X-Request-Id` or the error body).
    pub request_id: Option<String>,
    /// When the request was sent, if not `duration` before it is recorded
    /// (a retried read is recorded after its retries).
    pub sent_at: Option<String>,
}

impl AttemptRecord {
    /// What became of this intent: `None` while its answer is unknown.
    pub fn intent_outcome(&self) -> Result<Option<IntentOutcome>, StoreError> {
        self.outcome
            .as_deref()
            .map(|o| {
                IntentOutcome::parse(o).ok_or_else(|| {
                    StoreError::Corrupt(format!(
                        "unknown outcome `{o}` of intent #{} ({})",
                        self.attempt, self.request
                    ))
                })
            })
            .transpose()
    }
}

/// A stored attempt.
#[derive(Debug, Clone, Serialize)]
pub struct AttemptRecord {
    /// Row id.
    pub id: i64,
    pub step_id: String,
    /// Attempt number.
    pub attempt: i64,
    /// What it records.
    pub kind: AttemptKind,
    /// Request summary.
    pub request: String,
    pub request_body: Option<Value>,
    pub pre_image: Option<Value>,
    pub http_status: Option<i64>,
    /// Cloud code.
    pub error_code: Option<String>,
    /// Cloud message.
    pub error_message: Option<String>,
    /// Outcome; `None` for an intent whose answer never arrived.
    pub outcome: Option<String>,
    pub started_at: String,
    pub duration_ms: Option<i64>,
    /// The SDRS job an accepted call started.
    pub job_id: Option<String>,
    /// The cloud's request id of the answer, when it gave one.
    pub request_id: Option<String>,
}

impl Store {
    /// Records an attempt; with `outcome` `None` it is an intent (written
    /// before the request is sent). Returns its id.
    pub async fn record_attempt(
        &self,
        a: &NewAttempt,
        outcome: Option<&Outcome>,
    ) -> Result<i64, StoreError> {
        self.write_unguarded(async |tx| {
            self.fence(tx, &a.run_id).await?;
            // `started_at` is when the request was sent: an intent is
            // written just before; an answer `duration` after.
            let at = match outcome {
                None => now(),
                Some(o) => o.sent_at.clone().unwrap_or_else(|| {
                    timestamp(
                        chrono::Utc::now()
                            - chrono::Duration::from_std(o.duration).unwrap_or_default(),
                    )
                }),
            };
            let kind = if outcome.is_none() {
                "step.intent"
            } else {
                "step.attempt"
            };
            let data = serde_json::json!({
                "attempt": a.attempt, "kind": a.kind.as_str(), "request": a.request, "body": a.request_body,
                "outcome": outcome.map(|o| &o.outcome), "http_status": outcome.and_then(|o| o.http_status),
                "error_code": outcome.and_then(|o| o.error_code.clone()),
            });
            let rows = self
                .execute_and_append(
                    tx,
                    and_event!(
                        "INSERT INTO step_attempts (run_id, step_id, attempt, kind, request, request_body, pre_image, http_status, error_code, error_message, outcome, started_at, duration_ms, request_id)
                         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14) RETURNING id",
                        15, 16, 17, 18, 19, 20, 21, 22, 23
                    ),
                    |q| {
                        q.bind(&a.run_id)
                            .bind(&a.step_id)
                            .bind(a.attempt as i64)
                            .bind(a.kind.as_str())
                            .bind(&a.request)
                            .bind(a.request_body.as_ref().map(Value::to_string))
                            .bind(a.pre_image.as_ref().map(Value::to_string))
                            .bind(outcome.and_then(|o| o.http_status).map(i64::from))
                            .bind(outcome.and_then(|o| o.error_code.clone()))
                            .bind(outcome.and_then(|o| o.error_message.clone()))
                            .bind(outcome.map(|o| o.outcome.clone()))
                            .bind(&at)
                            .bind(outcome.map(|o| o.duration.as_millis() as i64))
                            .bind(outcome.and_then(|o| o.request_id.clone()))
                    },
                    ("drover", kind, Some(&a.run_id), Some(&a.step_id), data),
                )
                .await?;
            let id: i64 = rows
                .first()
                .ok_or_else(|| StoreError::Corrupt("an attempt was stored without an id".into()))?
                .get(0);
            Ok(id)
        })
        .await
    }

    /// Records the answer to an intent.
    pub async fn record_outcome(
        &self,
        run_id: &str,
        step_id: &str,
        attempt_id: i64,
        o: &Outcome,
    ) -> Result<(), StoreError> {
        self.write_unguarded(async |tx| {
            self.fence(tx, run_id).await?;
            let data = serde_json::json!({ "attempt_id": attempt_id, "outcome": o.outcome, "http_status": o.http_status, "error_code": o.error_code, "job_id": o.job_id, "request_id": o.request_id });
            // A reconciliation's verdict (applied, not applied) keeps the
            // answer it settled: the status, code and request id the cloud
            // gave, and how long the call took.
            self.execute_and_append(
                tx,
                and_event!(
                    "UPDATE step_attempts SET outcome = $1, http_status = COALESCE($2, http_status), error_code = COALESCE($3, error_code), error_message = COALESCE($4, error_message), duration_ms = COALESCE(NULLIF($5, 0), duration_ms), job_id = COALESCE($6, job_id), request_id = COALESCE($7, request_id) WHERE id = $8",
                    9, 10, 11, 12, 13, 14, 15, 16, 17
                ),
                |q| {
                    q.bind(&o.outcome)
                        .bind(o.http_status.map(i64::from))
                        .bind(&o.error_code)
                        .bind(&o.error_message)
                        .bind(o.duration.as_millis() as i64)
                        .bind(&o.job_id)
                        .bind(&o.request_id)
                        .bind(attempt_id)
                },
                ("drover", "step.outcome", Some(run_id), Some(step_id), data),
            )
            .await?;
            Ok(())
        })
        .await
    }

    /// A run's attempts in order.
    pub async fn attempts(&self, run_id: &str) -> Result<Vec<AttemptRecord>, StoreError> {
        self.attempts_where(run_id, None).await
    }

    /// The attempts of one step of a run, in order (a plan's run holds
    /// thousands of other steps' attempts).
    pub async fn step_attempts(
        &self,
        run_id: &str,
        step_id: &str,
    ) -> Result<Vec<AttemptRecord>, StoreError> {
        self.attempts_where(run_id, Some(step_id)).await
    }

    async fn attempts_where(
        &self,
        run_id: &str,
        step_id: Option<&str>,
    ) -> Result<Vec<AttemptRecord>, StoreError> {
        let rows = sqlx::query(
            "SELECT id, step_id, attempt, kind, request, request_body, pre_image, http_status, error_code, error_message, outcome, started_at, duration_ms, job_id, request_id
             FROM step_attempts WHERE run_id = $1 AND ($2 IS NULL OR step_id = $2) ORDER BY id",
        )
        .bind(run_id)
        .bind(step_id)
        .fetch_all(&mut *self.db.read().await)
        .await?;
        rows.iter()
            .map(|r| {
                let kind: String = r.get(3);
                let kind = AttemptKind::parse(&kind).ok_or_else(|| {
                    StoreError::Corrupt(format!("unknown attempt kind `{kind}` in run {run_id}"))
                })?;
                Ok(AttemptRecord {
                    id: r.get(0),
                    step_id: r.get(1),
                    attempt: r.get(2),
                    kind,
                    request: r.get(4),
                    request_body: json_column(r, 5, || {
                        format!("the request body of an attempt in run {run_id}")
                    })?,
                    pre_image: json_column(r, 6, || {
                        format!("the pre-image of an attempt in run {run_id}")
                    })?,
                    http_status: r.get(7),
                    error_code: r.get(8),
                    error_message: r.get(9),
                    outcome: r.get(10),
                    started_at: r.get(11),
                    duration_ms: r.get(12),
                    job_id: r.get(13),
                    request_id: r.get(14),
                })
            })
            .collect()
    }
}
