//! The audit store: the only code that runs SQL.
//!
//! SQLite, opened with WAL, a busy timeout and `synchronous=FULL` (an intent
//! must be on disk before its request is sent), schema from `migrations/`
//! applied at open. Every write is one `BEGIN IMMEDIATE` transaction that also
//! appends its audit event, so the state and the hash chain never disagree and
//! concurrent writers (a daemon and a CLI run) serialise.
//!
//! One connection per process, behind an async mutex: SQLite has one writer
//! anyway, and unlike a pool it arms no timer while SQLite works, so the engine
//! can be tested in paused time.

pub mod audit;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::str::FromStr;
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::Value;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqliteRow, SqliteSynchronous};
use sqlx::{Connection, Row, SqliteConnection};
use std::sync::Arc;
use tokio::sync::Mutex;

pub use audit::{BrokenLink, Event};

const MIGRATIONS: &[(i64, &str, &str)] = &[
    (
        20261126000000,
        "create audit store",
        include_str!("../migrations/20261126000000_create_audit_store.sql"),
    ),
    (
        20261126010000,
        "create schedule fires",
        include_str!("../migrations/20261126010000_create_schedule_fires.sql"),
    ),
    (
        20261126020000,
        "add run control",
        include_str!("../migrations/20261126020000_add_run_control.sql"),
    ),
    (
        20261129000000,
        "add attempt job id",
        include_str!("../migrations/20261129000000_add_attempt_job_id.sql"),
    ),
];

/// The run columns in the order `run_record` reads them (a macro so queries stay `&'static str`).
macro_rules! run_columns {
    () => {
        "SELECT id, runbook, runbook_digest, runbook_source, runbook_path, kind, trigger, requested_by, params, dry_run, status, error, created_at, finished_at, recovered_at, cancel_requested_by FROM runs"
    };
}

/// A store failure.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The database could not be opened or created.
    #[error("cannot open database {url}: {reason}")]
    Open {
        /// The configured URL.
        url: String,
        /// Why.
        reason: String,
    },
    /// Migrations failed.
    #[error("cannot apply migrations: {0}")]
    Migrate(String),
    /// A query failed.
    #[error("database error: {0}")]
    Db(#[from] sqlx::Error),
    /// A target is leased by another run.
    #[error(
        "{target} is in use by run {run_id} ({runbook}, started {since}); wait for it to finish, or resume it with `drover run --resume {run_id}`"
    )]
    LeaseHeld {
        /// The contested target.
        target: String,
        /// The run holding it.
        run_id: String,
        /// That run's runbook.
        runbook: String,
        /// When that run started.
        since: String,
    },
}

/// Run status values.
pub mod status {
    /// The run or step is executing (or was, when the process stopped).
    pub const RUNNING: &str = "running";
    /// Waiting to run.
    pub const PENDING: &str = "pending";
    /// Finished well.
    pub const SUCCEEDED: &str = "succeeded";
    /// Finished with a failure.
    pub const FAILED: &str = "failed";
    /// Skipped (`when` was false, or an earlier failure aborted the run).
    pub const SKIPPED: &str = "skipped";
    /// Stopped on request.
    pub const CANCELLED: &str = "cancelled";
}

/// A run to create.
#[derive(Debug, Clone)]
pub struct NewRun {
    /// Run id (UUID v7).
    pub id: String,
    /// Runbook name.
    pub runbook: String,
    /// sha256 of the runbook file.
    pub digest: String,
    /// The runbook text.
    pub source: String,
    /// Where it was loaded from.
    pub path: String,
    /// Runbook kind.
    pub kind: String,
    /// `cli`, `api` or `schedule`.
    pub trigger: String,
    /// Who asked for it.
    pub requested_by: String,
    /// Resolved parameters.
    pub params: BTreeMap<String, String>,
    /// Dry run.
    pub dry_run: bool,
    /// Step ids in run order with their phase (`main` / `finally`).
    pub steps: Vec<(String, String)>,
    /// Cloud targets to lease (`evs:<id>`, `sdrs:<id>`).
    pub targets: Vec<String>,
    /// `Idempotency-Key` of an API trigger: (actor, key, sha256 of the request).
    pub idempotency: Option<(String, String, String)>,
}

/// A stored run.
#[derive(Debug, Clone, Serialize)]
pub struct RunRecord {
    /// Id.
    pub id: String,
    /// Runbook name.
    pub runbook: String,
    /// Runbook version.
    pub runbook_digest: String,
    /// The runbook text it started with.
    #[serde(skip)]
    pub runbook_source: String,
    /// File it came from.
    pub runbook_path: String,
    /// Kind.
    pub kind: String,
    /// Trigger.
    pub trigger: String,
    /// Requester.
    pub requested_by: String,
    /// Parameters.
    pub params: BTreeMap<String, String>,
    /// Dry run.
    pub dry_run: bool,
    /// Status.
    pub status: String,
    /// Failure summary.
    pub error: Option<String>,
    /// Created.
    pub created_at: String,
    /// Finished.
    pub finished_at: Option<String>,
    /// When the last main step succeeded (recovery time = this - created_at).
    pub recovered_at: Option<String>,
    /// Who asked to cancel the run, if anyone did.
    pub cancel_requested_by: Option<String>,
}

/// A stored step state.
#[derive(Debug, Clone, Serialize)]
pub struct StepRecord {
    /// Step id.
    pub step_id: String,
    /// Run order.
    pub position: i64,
    /// `main` / `finally`.
    pub phase: String,
    /// Status.
    pub status: String,
    /// Output (JSON).
    pub output: Option<Value>,
    /// Failure.
    pub error: Option<String>,
    /// Started.
    pub started_at: Option<String>,
    /// Finished.
    pub finished_at: Option<String>,
}

/// An attempt to record.
#[derive(Debug, Clone, Default)]
pub struct NewAttempt {
    /// Run.
    pub run_id: String,
    /// Step.
    pub step_id: String,
    /// Attempt number within the step.
    pub attempt: u32,
    /// `read`, `intent`, `reconcile`, `poll`, `request`, `would_send`.
    pub kind: String,
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
    /// HTTP status.
    pub http_status: Option<u16>,
    /// Cloud error code.
    pub error_code: Option<String>,
    /// Cloud message.
    pub error_message: Option<String>,
    /// How long it took.
    pub duration: Duration,
    /// The SDRS job an accepted call started.
    pub job_id: Option<String>,
}

/// A stored attempt.
#[derive(Debug, Clone, Serialize)]
pub struct AttemptRecord {
    /// Row id.
    pub id: i64,
    /// Step.
    pub step_id: String,
    /// Attempt number.
    pub attempt: i64,
    /// Kind.
    pub kind: String,
    /// Request summary.
    pub request: String,
    /// Request body.
    pub request_body: Option<Value>,
    /// Pre-image.
    pub pre_image: Option<Value>,
    /// HTTP status.
    pub http_status: Option<i64>,
    /// Cloud code.
    pub error_code: Option<String>,
    /// Cloud message.
    pub error_message: Option<String>,
    /// Outcome; `None` for an intent whose answer never arrived.
    pub outcome: Option<String>,
    /// Started.
    pub started_at: String,
    /// Duration.
    pub duration_ms: Option<i64>,
    /// The SDRS job an accepted call started.
    pub job_id: Option<String>,
}

/// A stored approval.
#[derive(Debug, Clone, Serialize)]
pub struct ApprovalRecord {
    /// Step.
    pub step_id: String,
    /// Who.
    pub approver: String,
    /// `approved` / `rejected`.
    pub decision: String,
    /// Note.
    pub comment: Option<String>,
    /// When.
    pub at: String,
}

/// Connects, retrying while another process holds the lock that switching a
/// fresh file to WAL needs (that switch does not wait for the busy timeout).
async fn connect(options: &SqliteConnectOptions) -> Result<SqliteConnection, sqlx::Error> {
    let mut tries = 0;
    loop {
        match SqliteConnection::connect_with(options).await {
            Err(sqlx::Error::Database(e))
                if tries < 100
                    && (e.message().contains("locked") || e.message().contains("busy")) =>
            {
                tries += 1;
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            other => return other,
        }
    }
}

/// Current time as stored.
pub fn now() -> String {
    Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

/// The store. Clones share the connection.
#[derive(Debug, Clone)]
pub struct Store {
    conn: Arc<Mutex<SqliteConnection>>,
}

impl Store {
    /// Opens (creating if missing) the database at `url` and applies migrations.
    pub async fn open(url: &str) -> Result<Store, StoreError> {
        // The URL may carry a password: errors show it redacted.
        let open_error = |reason: String| StoreError::Open {
            url: crate::config::redact_url(url),
            reason,
        };
        let path = url
            .strip_prefix("sqlite://")
            .or_else(|| url.strip_prefix("sqlite:"))
            .ok_or_else(|| open_error("only sqlite:// URLs are supported by this build".into()))?;
        if path != ":memory:"
            && let Some(parent) = PathBuf::from(path).parent()
            && !parent.as_os_str().is_empty()
        {
            std::fs::create_dir_all(parent)
                .map_err(|e| open_error(format!("cannot create {}: {e}", parent.display())))?;
        }
        let options = SqliteConnectOptions::from_str(&format!("sqlite:{path}"))
            .map_err(|e| open_error(e.to_string()))?
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .busy_timeout(Duration::from_secs(10))
            // Intents must survive a crash the moment they are written.
            .synchronous(SqliteSynchronous::Full)
            .foreign_keys(true);
        let mut conn = connect(&options)
            .await
            .map_err(|e| open_error(e.to_string()))?;
        let migrations = MIGRATIONS
            .iter()
            .map(|(version, description, sql)| {
                sqlx::migrate::Migration::new(
                    *version,
                    (*description).into(),
                    sqlx::migrate::MigrationType::Simple,
                    sqlx::SqlSafeStr::into_sql_str(*sql),
                    false,
                )
            })
            .collect();
        // Several processes may open a fresh file at once. The whole migration
        // run holds SQLite's write lock (each migration becomes a savepoint
        // inside it), so exactly one of them creates the schema and the others
        // find it done; without it two could both see an empty database.
        let migrate = |e: sqlx::Error| StoreError::Migrate(e.to_string());
        let mut tx = conn.begin_with("BEGIN IMMEDIATE").await.map_err(migrate)?;
        sqlx::migrate::Migrator::with_migrations(migrations)
            .run_direct(None, &mut *tx, false)
            .await
            .map_err(|e| StoreError::Migrate(e.to_string()))?;
        tx.commit().await.map_err(migrate)?;
        Ok(Store {
            conn: Arc::new(Mutex::new(conn)),
        })
    }

    /// Creates a run with its steps, leasing its targets, in one transaction.
    pub async fn create_run(&self, run: &NewRun) -> Result<(), StoreError> {
        let mut conn = self.conn.lock().await;
        let mut tx = conn.begin_with("BEGIN IMMEDIATE").await?;
        for target in &run.targets {
            let holder = sqlx::query("SELECT l.run_id, r.runbook, r.created_at FROM target_leases l JOIN runs r ON r.id = l.run_id WHERE l.target = ?")
                .bind(target)
                .fetch_optional(&mut *tx)
                .await?;
            if let Some(row) = holder {
                let run_id: String = row.get(0);
                if run_id != run.id {
                    return Err(StoreError::LeaseHeld {
                        target: target.clone(),
                        run_id,
                        runbook: row.get(1),
                        since: row.get(2),
                    });
                }
            }
        }
        let at = now();
        sqlx::query(
            "INSERT INTO runs (id, runbook, runbook_digest, runbook_source, runbook_path, kind, trigger, requested_by, params, dry_run, status, created_at)
             VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 'running', ?)",
        )
        .bind(&run.id)
        .bind(&run.runbook)
        .bind(&run.digest)
        .bind(&run.source)
        .bind(&run.path)
        .bind(&run.kind)
        .bind(&run.trigger)
        .bind(&run.requested_by)
        .bind(serde_json::to_string(&run.params).unwrap_or_default())
        .bind(run.dry_run)
        .bind(&at)
        .execute(&mut *tx)
        .await?;
        for (position, (step, phase)) in run.steps.iter().enumerate() {
            sqlx::query("INSERT INTO steps (run_id, step_id, position, phase, status) VALUES (?, ?, ?, ?, 'pending')")
                .bind(&run.id)
                .bind(step)
                .bind(position as i64)
                .bind(phase)
                .execute(&mut *tx)
                .await?;
        }
        if let Some((actor, key, request)) = &run.idempotency {
            sqlx::query("INSERT INTO idempotency_keys (actor, key, request, run_id, created_at) VALUES (?, ?, ?, ?, ?)")
                .bind(actor)
                .bind(key)
                .bind(request)
                .bind(&run.id)
                .bind(&at)
                .execute(&mut *tx)
                .await?;
        }
        for target in &run.targets {
            sqlx::query("INSERT OR IGNORE INTO target_leases (target, run_id, acquired_at) VALUES (?, ?, ?)")
                .bind(target)
                .bind(&run.id)
                .bind(&at)
                .execute(&mut *tx)
                .await?;
        }
        let data = serde_json::json!({
            "runbook": run.runbook, "digest": run.digest, "kind": run.kind, "trigger": run.trigger,
            "params": run.params, "dry_run": run.dry_run, "targets": run.targets,
        });
        append(
            &mut tx,
            &run.requested_by,
            "run.started",
            Some(&run.id),
            None,
            data,
        )
        .await?;
        tx.commit().await?;
        Ok(())
    }

    /// Ends a run: status, error, finish time; releases its leases.
    pub async fn finish_run(
        &self,
        run_id: &str,
        status: &str,
        error: Option<&str>,
        actor: &str,
    ) -> Result<(), StoreError> {
        let mut conn = self.conn.lock().await;
        let mut tx = conn.begin_with("BEGIN IMMEDIATE").await?;
        sqlx::query("UPDATE runs SET status = ?, error = ?, finished_at = ? WHERE id = ?")
            .bind(status)
            .bind(error)
            .bind(now())
            .bind(run_id)
            .execute(&mut *tx)
            .await?;
        sqlx::query("DELETE FROM target_leases WHERE run_id = ?")
            .bind(run_id)
            .execute(&mut *tx)
            .await?;
        append(
            &mut tx,
            actor,
            "run.finished",
            Some(run_id),
            None,
            serde_json::json!({ "status": status, "error": error }),
        )
        .await?;
        tx.commit().await?;
        Ok(())
    }

    /// Records that the run's main steps are done (the end of recovery).
    pub async fn mark_recovered(&self, run_id: &str) -> Result<(), StoreError> {
        sqlx::query("UPDATE runs SET recovered_at = ? WHERE id = ? AND recovered_at IS NULL")
            .bind(now())
            .bind(run_id)
            .execute(&mut *self.conn.lock().await)
            .await?;
        Ok(())
    }

    /// Sets a step's status (and output or error), with its audit event.
    pub async fn set_step(
        &self,
        run_id: &str,
        step_id: &str,
        status: &str,
        output: Option<&Value>,
        error: Option<&str>,
    ) -> Result<(), StoreError> {
        let mut conn = self.conn.lock().await;
        let mut tx = conn.begin_with("BEGIN IMMEDIATE").await?;
        let at = now();
        let started = status == status::RUNNING;
        sqlx::query(
            "UPDATE steps SET status = ?, output = COALESCE(?, output), error = ?,
                 started_at = CASE WHEN ? THEN ? ELSE started_at END,
                 finished_at = CASE WHEN ? THEN NULL ELSE ? END
             WHERE run_id = ? AND step_id = ?",
        )
        .bind(status)
        .bind(output.map(Value::to_string))
        .bind(error)
        .bind(started)
        .bind(&at)
        .bind(started)
        .bind(&at)
        .bind(run_id)
        .bind(step_id)
        .execute(&mut *tx)
        .await?;
        let data = serde_json::json!({ "status": status, "error": error });
        append(
            &mut tx,
            "drover",
            "step.status",
            Some(run_id),
            Some(step_id),
            data,
        )
        .await?;
        tx.commit().await?;
        Ok(())
    }

    /// Records an attempt; with `outcome` `None` it is an intent (written
    /// before the request is sent). Returns its id.
    pub async fn record_attempt(
        &self,
        a: &NewAttempt,
        outcome: Option<&Outcome>,
    ) -> Result<i64, StoreError> {
        let mut conn = self.conn.lock().await;
        let mut tx = conn.begin_with("BEGIN IMMEDIATE").await?;
        let at = now();
        let row = sqlx::query(
            "INSERT INTO step_attempts (run_id, step_id, attempt, kind, request, request_body, pre_image, http_status, error_code, error_message, outcome, started_at, duration_ms)
             VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING id",
        )
        .bind(&a.run_id)
        .bind(&a.step_id)
        .bind(a.attempt as i64)
        .bind(&a.kind)
        .bind(&a.request)
        .bind(a.request_body.as_ref().map(Value::to_string))
        .bind(a.pre_image.as_ref().map(Value::to_string))
        .bind(outcome.and_then(|o| o.http_status).map(i64::from))
        .bind(outcome.and_then(|o| o.error_code.clone()))
        .bind(outcome.and_then(|o| o.error_message.clone()))
        .bind(outcome.map(|o| o.outcome.clone()))
        .bind(&at)
        .bind(outcome.map(|o| o.duration.as_millis() as i64))
        .fetch_one(&mut *tx)
        .await?;
        let id: i64 = row.get(0);
        let kind = if outcome.is_none() {
            "step.intent"
        } else {
            "step.attempt"
        };
        let data = serde_json::json!({
            "attempt": a.attempt, "kind": a.kind, "request": a.request, "body": a.request_body,
            "outcome": outcome.map(|o| &o.outcome), "http_status": outcome.and_then(|o| o.http_status),
            "error_code": outcome.and_then(|o| o.error_code.clone()),
        });
        append(
            &mut tx,
            "drover",
            kind,
            Some(&a.run_id),
            Some(&a.step_id),
            data,
        )
        .await?;
        tx.commit().await?;
        Ok(id)
    }

    /// The run an `Idempotency-Key` of `actor` started, with the request digest it came with.
    pub async fn idempotent_run(
        &self,
        actor: &str,
        key: &str,
    ) -> Result<Option<(String, String)>, StoreError> {
        let row =
            sqlx::query("SELECT request, run_id FROM idempotency_keys WHERE actor = ? AND key = ?")
                .bind(actor)
                .bind(key)
                .fetch_optional(&mut *self.conn.lock().await)
                .await?;
        Ok(row.map(|r| (r.get(0), r.get(1))))
    }

    /// Asks a running run to stop; `false` when it is not running.
    pub async fn request_cancel(&self, run_id: &str, actor: &str) -> Result<bool, StoreError> {
        let mut conn = self.conn.lock().await;
        let mut tx = conn.begin_with("BEGIN IMMEDIATE").await?;
        let changed = sqlx::query("UPDATE runs SET cancel_requested_by = COALESCE(cancel_requested_by, ?) WHERE id = ? AND status = 'running'")
            .bind(actor)
            .bind(run_id)
            .execute(&mut *tx)
            .await?
            .rows_affected();
        if changed > 0 {
            append(
                &mut tx,
                actor,
                "run.cancel_requested",
                Some(run_id),
                None,
                serde_json::json!({}),
            )
            .await?;
        }
        tx.commit().await?;
        Ok(changed > 0)
    }

    /// Records the answer to an intent.
    pub async fn record_outcome(
        &self,
        run_id: &str,
        step_id: &str,
        attempt_id: i64,
        o: &Outcome,
    ) -> Result<(), StoreError> {
        let mut conn = self.conn.lock().await;
        let mut tx = conn.begin_with("BEGIN IMMEDIATE").await?;
        sqlx::query("UPDATE step_attempts SET outcome = ?, http_status = ?, error_code = ?, error_message = ?, duration_ms = ?, job_id = COALESCE(?, job_id) WHERE id = ?")
            .bind(&o.outcome)
            .bind(o.http_status.map(i64::from))
            .bind(&o.error_code)
            .bind(&o.error_message)
            .bind(o.duration.as_millis() as i64)
            .bind(&o.job_id)
            .bind(attempt_id)
            .execute(&mut *tx)
            .await?;
        let data = serde_json::json!({ "attempt_id": attempt_id, "outcome": o.outcome, "http_status": o.http_status, "error_code": o.error_code, "job_id": o.job_id });
        append(
            &mut tx,
            "drover",
            "step.outcome",
            Some(run_id),
            Some(step_id),
            data,
        )
        .await?;
        tx.commit().await?;
        Ok(())
    }

    /// Records an approval decision.
    pub async fn record_approval(
        &self,
        run_id: &str,
        step_id: &str,
        approver: &str,
        decision: &str,
        comment: Option<&str>,
    ) -> Result<(), StoreError> {
        let mut conn = self.conn.lock().await;
        let mut tx = conn.begin_with("BEGIN IMMEDIATE").await?;
        sqlx::query("INSERT OR REPLACE INTO approvals (run_id, step_id, approver, decision, comment, at) VALUES (?, ?, ?, ?, ?, ?)")
            .bind(run_id)
            .bind(step_id)
            .bind(approver)
            .bind(decision)
            .bind(comment)
            .bind(now())
            .execute(&mut *tx)
            .await?;
        append(
            &mut tx,
            approver,
            "approval",
            Some(run_id),
            Some(step_id),
            serde_json::json!({ "decision": decision, "comment": comment }),
        )
        .await?;
        tx.commit().await?;
        Ok(())
    }

    /// Appends an audit event on its own (API calls, config reloads).
    pub async fn record_event(
        &self,
        actor: &str,
        kind: &str,
        run_id: Option<&str>,
        data: Value,
    ) -> Result<(), StoreError> {
        let mut conn = self.conn.lock().await;
        let mut tx = conn.begin_with("BEGIN IMMEDIATE").await?;
        append(&mut tx, actor, kind, run_id, None, data).await?;
        tx.commit().await?;
        Ok(())
    }

    /// Records what the scheduler did with one fire time (with its audit event).
    pub async fn record_fire(
        &self,
        runbook: &str,
        schedule: &str,
        fire_at: DateTime<Utc>,
        outcome: &str,
        run_id: Option<&str>,
        detail: Option<&str>,
    ) -> Result<(), StoreError> {
        let mut conn = self.conn.lock().await;
        let mut tx = conn.begin_with("BEGIN IMMEDIATE").await?;
        let at = fire_at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
        sqlx::query("INSERT OR REPLACE INTO schedule_fires (runbook, schedule, fire_at, outcome, run_id, detail, recorded_at) VALUES (?, ?, ?, ?, ?, ?, ?)")
            .bind(runbook)
            .bind(schedule)
            .bind(&at)
            .bind(outcome)
            .bind(run_id)
            .bind(detail)
            .bind(now())
            .execute(&mut *tx)
            .await?;
        let data = serde_json::json!({ "runbook": runbook, "schedule": schedule, "fire_at": at, "outcome": outcome, "detail": detail });
        append(&mut tx, "scheduler", "schedule.fire", run_id, None, data).await?;
        tx.commit().await?;
        Ok(())
    }

    /// The latest fire time the scheduler handled for a schedule.
    pub async fn last_fire(
        &self,
        runbook: &str,
        schedule: &str,
    ) -> Result<Option<DateTime<Utc>>, StoreError> {
        let row = sqlx::query(
            "SELECT MAX(fire_at) FROM schedule_fires WHERE runbook = ? AND schedule = ?",
        )
        .bind(runbook)
        .bind(schedule)
        .fetch_one(&mut *self.conn.lock().await)
        .await?;
        let at: Option<String> = row.get(0);
        Ok(at
            .and_then(|t| DateTime::parse_from_rfc3339(&t).ok())
            .map(|t| t.with_timezone(&Utc)))
    }

    /// Fire records of a schedule, oldest first: (fire time, outcome, run id).
    pub async fn fires(
        &self,
        runbook: &str,
        schedule: &str,
    ) -> Result<Vec<(String, String, Option<String>)>, StoreError> {
        let rows = sqlx::query("SELECT fire_at, outcome, run_id FROM schedule_fires WHERE runbook = ? AND schedule = ? ORDER BY fire_at")
            .bind(runbook)
            .bind(schedule)
            .fetch_all(&mut *self.conn.lock().await)
            .await?;
        Ok(rows
            .iter()
            .map(|r| (r.get(0), r.get(1), r.get(2)))
            .collect())
    }

    /// One run.
    pub async fn run(&self, id: &str) -> Result<Option<RunRecord>, StoreError> {
        let row = sqlx::query(concat!(run_columns!(), " WHERE id = ?"))
            .bind(id)
            .fetch_optional(&mut *self.conn.lock().await)
            .await?;
        Ok(row.map(|r| run_record(&r)))
    }

    /// The newest runs first.
    pub async fn runs(&self, limit: u32) -> Result<Vec<RunRecord>, StoreError> {
        let rows = sqlx::query(concat!(
            run_columns!(),
            " ORDER BY created_at DESC, id DESC LIMIT ?"
        ))
        .bind(i64::from(limit))
        .fetch_all(&mut *self.conn.lock().await)
        .await?;
        Ok(rows.iter().map(run_record).collect())
    }

    /// Runs that were running when their process stopped.
    pub async fn interrupted_runs(&self) -> Result<Vec<RunRecord>, StoreError> {
        let rows = sqlx::query(concat!(
            run_columns!(),
            " WHERE status = 'running' ORDER BY created_at"
        ))
        .fetch_all(&mut *self.conn.lock().await)
        .await?;
        Ok(rows.iter().map(run_record).collect())
    }

    /// A run's steps in run order.
    pub async fn steps(&self, run_id: &str) -> Result<Vec<StepRecord>, StoreError> {
        let rows = sqlx::query("SELECT step_id, position, phase, status, output, error, started_at, finished_at FROM steps WHERE run_id = ? ORDER BY position")
            .bind(run_id)
            .fetch_all(&mut *self.conn.lock().await)
            .await?;
        Ok(rows
            .iter()
            .map(|r| StepRecord {
                step_id: r.get(0),
                position: r.get(1),
                phase: r.get(2),
                status: r.get(3),
                output: json_column(r, 4),
                error: r.get(5),
                started_at: r.get(6),
                finished_at: r.get(7),
            })
            .collect())
    }

    /// A run's attempts in order.
    pub async fn attempts(&self, run_id: &str) -> Result<Vec<AttemptRecord>, StoreError> {
        let rows = sqlx::query(
            "SELECT id, step_id, attempt, kind, request, request_body, pre_image, http_status, error_code, error_message, outcome, started_at, duration_ms, job_id
             FROM step_attempts WHERE run_id = ? ORDER BY id",
        )
        .bind(run_id)
        .fetch_all(&mut *self.conn.lock().await)
        .await?;
        Ok(rows
            .iter()
            .map(|r| AttemptRecord {
                id: r.get(0),
                step_id: r.get(1),
                attempt: r.get(2),
                kind: r.get(3),
                request: r.get(4),
                request_body: json_column(r, 5),
                pre_image: json_column(r, 6),
                http_status: r.get(7),
                error_code: r.get(8),
                error_message: r.get(9),
                outcome: r.get(10),
                started_at: r.get(11),
                duration_ms: r.get(12),
                job_id: r.get(13),
            })
            .collect())
    }

    /// A run's approvals.
    pub async fn approvals(&self, run_id: &str) -> Result<Vec<ApprovalRecord>, StoreError> {
        let rows = sqlx::query("SELECT step_id, approver, decision, comment, at FROM approvals WHERE run_id = ? ORDER BY at")
            .bind(run_id)
            .fetch_all(&mut *self.conn.lock().await)
            .await?;
        Ok(rows
            .iter()
            .map(|r| ApprovalRecord {
                step_id: r.get(0),
                approver: r.get(1),
                decision: r.get(2),
                comment: r.get(3),
                at: r.get(4),
            })
            .collect())
    }

    /// Audit events in chain order, optionally only those at or after `since`.
    pub async fn events(&self, since: Option<DateTime<Utc>>) -> Result<Vec<Event>, StoreError> {
        let since = since
            .map(|s| s.to_rfc3339_opts(chrono::SecondsFormat::Millis, true))
            .unwrap_or_default();
        let rows = sqlx::query("SELECT seq, at, actor, kind, run_id, step_id, data, prev_hash, hash FROM audit_events WHERE at >= ? ORDER BY seq")
            .bind(since)
            .fetch_all(&mut *self.conn.lock().await)
            .await?;
        Ok(rows.iter().map(event_record).collect())
    }

    /// Recomputes the whole chain; the count of events, or the first broken link.
    pub async fn verify(&self) -> Result<Result<u64, BrokenLink>, StoreError> {
        let events = self.events(None).await?;
        Ok(audit::verify(&events))
    }

    /// Runs raw SQL: for tests that tamper with the trail on purpose.
    #[doc(hidden)]
    pub async fn execute_unchecked(&self, sql: &'static str) -> Result<u64, StoreError> {
        Ok(sqlx::query(sql)
            .execute(&mut *self.conn.lock().await)
            .await?
            .rows_affected())
    }
}

fn run_record(r: &SqliteRow) -> RunRecord {
    let params: String = r.get(8);
    RunRecord {
        id: r.get(0),
        runbook: r.get(1),
        runbook_digest: r.get(2),
        runbook_source: r.get(3),
        runbook_path: r.get(4),
        kind: r.get(5),
        trigger: r.get(6),
        requested_by: r.get(7),
        params: serde_json::from_str(&params).unwrap_or_default(),
        dry_run: r.get(9),
        status: r.get(10),
        error: r.get(11),
        created_at: r.get(12),
        finished_at: r.get(13),
        recovered_at: r.get(14),
        cancel_requested_by: r.get(15),
    }
}

fn json_column(r: &SqliteRow, index: usize) -> Option<Value> {
    let text: Option<String> = r.get(index);
    text.and_then(|t| serde_json::from_str(&t).ok())
}

fn event_record(r: &SqliteRow) -> Event {
    let data: String = r.get(6);
    Event {
        seq: r.get(0),
        at: r.get(1),
        actor: r.get(2),
        kind: r.get(3),
        run_id: r.get(4),
        step_id: r.get(5),
        // An unreadable data column is kept as text so verification reports it.
        data: serde_json::from_str(&data).unwrap_or(Value::String(data)),
        prev_hash: r.get(7),
        hash: r.get(8),
    }
}

/// Appends one event to the chain inside the caller's transaction.
async fn append(
    tx: &mut SqliteConnection,
    actor: &str,
    kind: &str,
    run_id: Option<&str>,
    step_id: Option<&str>,
    data: Value,
) -> Result<(), StoreError> {
    let last = sqlx::query("SELECT seq, hash FROM audit_events ORDER BY seq DESC LIMIT 1")
        .fetch_optional(&mut *tx)
        .await?;
    let (prev_seq, prev_hash): (i64, String) = match last {
        Some(row) => (row.get(0), row.get(1)),
        None => (0, audit::GENESIS.to_string()),
    };
    let seq = prev_seq + 1;
    let at = now();
    let hash = audit::link(
        &prev_hash,
        &audit::canonical(seq, &at, actor, kind, run_id, step_id, &data),
    );
    sqlx::query("INSERT INTO audit_events (seq, at, actor, kind, run_id, step_id, data, prev_hash, hash) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)")
        .bind(seq)
        .bind(&at)
        .bind(actor)
        .bind(kind)
        .bind(run_id)
        .bind(step_id)
        .bind(data.to_string())
        .bind(&prev_hash)
        .bind(&hash)
        .execute(&mut *tx)
        .await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn new_run(id: &str, targets: &[&str]) -> NewRun {
        NewRun {
            id: id.into(),
            runbook: "evs-switchover".into(),
            digest: "d".into(),
            source: "name: x".into(),
            path: "runbooks/evs-switchover.yaml".into(),
            kind: "switchover".into(),
            trigger: "cli".into(),
            requested_by: "alice".into(),
            params: [("group_id".to_string(), "g1".to_string())].into(),
            dry_run: false,
            steps: vec![
                ("precheck".into(), "main".into()),
                ("notify".into(), "finally".into()),
            ],
            targets: targets.iter().map(|t| t.to_string()).collect(),
            idempotency: None,
        }
    }

    #[tokio::test]
    async fn runs_steps_attempts_and_a_verifiable_chain() {
        let store = Store::open("sqlite::memory:").await.unwrap();
        store.create_run(&new_run("r1", &["evs:g1"])).await.unwrap();
        store
            .set_step("r1", "precheck", status::RUNNING, None, None)
            .await
            .unwrap();
        let intent = NewAttempt {
            run_id: "r1".into(),
            step_id: "precheck".into(),
            attempt: 1,
            kind: "intent".into(),
            request: "POST /x".into(),
            ..Default::default()
        };
        let id = store.record_attempt(&intent, None).await.unwrap();
        let attempts = store.attempts("r1").await.unwrap();
        assert_eq!(
            attempts[0].outcome, None,
            "an intent has no outcome until the answer is recorded"
        );
        store
            .record_outcome(
                "r1",
                "precheck",
                id,
                &Outcome {
                    outcome: "ok".into(),
                    http_status: Some(200),
                    ..Default::default()
                },
            )
            .await
            .unwrap();
        store
            .set_step(
                "r1",
                "precheck",
                status::SUCCEEDED,
                Some(&serde_json::json!({"a": 1})),
                None,
            )
            .await
            .unwrap();
        store
            .finish_run("r1", status::SUCCEEDED, None, "alice")
            .await
            .unwrap();

        let run = store.run("r1").await.unwrap().unwrap();
        assert_eq!(
            (run.status.as_str(), run.params["group_id"].as_str()),
            ("succeeded", "g1")
        );
        let steps = store.steps("r1").await.unwrap();
        assert_eq!(steps[0].output, Some(serde_json::json!({"a": 1})));
        assert_eq!(steps[1].status, "pending");
        assert_eq!(
            store.attempts("r1").await.unwrap()[0].outcome.as_deref(),
            Some("ok")
        );
        let events = store.events(None).await.unwrap();
        let kinds: Vec<&str> = events.iter().map(|e| e.kind.as_str()).collect();
        assert_eq!(
            kinds,
            [
                "run.started",
                "step.status",
                "step.intent",
                "step.outcome",
                "step.status",
                "run.finished"
            ]
        );
        assert_eq!(store.verify().await.unwrap(), Ok(6));
    }

    #[tokio::test]
    async fn a_leased_target_refuses_a_second_run_until_released() {
        let store = Store::open("sqlite::memory:").await.unwrap();
        store.create_run(&new_run("r1", &["evs:g1"])).await.unwrap();
        let err = store
            .create_run(&new_run("r2", &["evs:g2", "evs:g1"]))
            .await
            .unwrap_err();
        let text = err.to_string();
        assert!(
            text.starts_with("evs:g1 is in use by run r1 (evs-switchover, started "),
            "{text}"
        );
        assert!(
            store.run("r2").await.unwrap().is_none(),
            "nothing of the refused run is stored"
        );
        store
            .finish_run("r1", status::SUCCEEDED, None, "alice")
            .await
            .unwrap();
        store.create_run(&new_run("r2", &["evs:g1"])).await.unwrap();
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn many_openers_of_a_fresh_database_all_succeed() {
        for round in 0..10 {
            let dir = tempfile::tempdir().unwrap();
            let url = format!("sqlite://{}", dir.path().join("fresh.db").display());
            let openers: Vec<_> = (0..8)
                .map(|_| {
                    let url = url.clone();
                    tokio::spawn(async move { Store::open(&url).await.map(|_| ()) })
                })
                .collect();
            for (i, o) in openers.into_iter().enumerate() {
                let result = o.await.unwrap();
                assert!(result.is_ok(), "round {round}, opener {i}: {result:?}");
            }
            let store = Store::open(&url).await.unwrap();
            assert!(store.runs(1).await.unwrap().is_empty());
        }
    }

    #[tokio::test]
    async fn open_errors_do_not_show_a_password() {
        let err = Store::open("postgres://drover:hunter2@db.example/drover")
            .await
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("postgres://[REDACTED]@db.example/drover") && !err.contains("hunter2"),
            "{err}"
        );
    }

    #[tokio::test]
    async fn schedule_fires_are_recorded_with_their_latest_time() {
        let store = Store::open("sqlite::memory:").await.unwrap();
        assert_eq!(store.last_fire("rb", "weekly").await.unwrap(), None);
        let t1 = DateTime::parse_from_rfc3339("2026-05-01T03:00:00Z")
            .unwrap()
            .with_timezone(&Utc);
        let t2 = DateTime::parse_from_rfc3339("2026-05-08T03:00:00Z")
            .unwrap()
            .with_timezone(&Utc);
        store
            .record_fire("rb", "weekly", t1, "started", Some("r1"), None)
            .await
            .unwrap();
        store
            .record_fire("rb", "weekly", t2, "missed", None, Some("down"))
            .await
            .unwrap();
        assert_eq!(store.last_fire("rb", "weekly").await.unwrap(), Some(t2));
        let fires = store.fires("rb", "weekly").await.unwrap();
        assert_eq!(
            fires[1],
            (
                "2026-05-08T03:00:00Z".to_string(),
                "missed".to_string(),
                None
            )
        );
        assert_eq!(
            store.verify().await.unwrap(),
            Ok(2),
            "fires are audit events"
        );
    }
}
