//! The audit store: the only code that runs SQL.
//!
//! SQLite (the default), opened with WAL, a busy timeout and
//! `synchronous=FULL` (an intent must be on disk before its request is
//! sent), or PostgreSQL (several daemons), through sqlx's `Any` driver with
//! one set of queries; schema from `migrations/<backend>/` applied at open.
//! Every write appends its audit event in its own transaction, so the state
//! and the hash chain never disagree; writers serialise (`BEGIN IMMEDIATE` on
//! SQLite, one advisory lock on PostgreSQL), and concurrent writers of a
//! process share a transaction and its commit (`commit`). Writes for a run
//! are fenced by the run's claim (`claim`).
//!
//! Two plain connections per process, a writer and a reader, each behind an
//! async mutex: SQLite has one writer anyway, and unlike a pool they arm no
//! timer while the database works, so the engine can be tested in paused
//! time.

/// `$sql` alone, and `$sql` followed by the insert of an audit event whose
/// nine parameters are numbered `$a` to `$i` (the numbers after `$sql`'s
/// own), for [`Store::execute_and_append`]: one round trip on SQLite.
macro_rules! and_event {
    ($sql:literal, $a:literal, $b:literal, $c:literal, $d:literal, $e:literal, $f:literal, $g:literal, $h:literal, $i:literal) => {
        (
            $sql,
            concat!(
                $sql,
                "; INSERT INTO audit_events (seq, at, actor, kind, run_id, step_id, data, prev_hash, hash) VALUES ($",
                $a, ", $", $b, ", $", $c, ", $", $d, ", $", $e, ", $", $f, ", $", $g, ", $", $h, ", $", $i, ")"
            ),
        )
    };
}

pub mod approval;
pub mod attempt;
pub mod audit;
pub mod checkpoint;
pub mod claim;
mod commit;
pub mod copy;
pub mod fire;
pub mod run;

use std::path::PathBuf;
use std::str::FromStr;
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde_json::Value;
use sqlx::AnyConnection;
use sqlx::any::{Any, AnyConnectOptions, AnyRow};
use sqlx::{Connection, Row, Transaction};
use std::sync::Arc;

pub use approval::{Admission, ApprovalRecord, Decision};
pub use attempt::{AttemptKind, AttemptRecord, IntentOutcome, NewAttempt, Outcome};
pub use audit::{BrokenLink, Event};
pub use claim::{DEFAULT_CLAIM_TTL, Node};
pub use fire::FireKey;
pub use run::{
    Expansion, NewRun, POSITION_STRIDE, Phase, REFUSED_ITEM, RunRecord, StepRecord, Trigger,
};

const POSTGRES_MIGRATIONS: &[(i64, &str, &str)] = &[
    (
        20261129120000,
        "create audit store",
        include_str!("../migrations/postgres/20261129120000_create_audit_store.sql"),
    ),
    (
        20261129130000,
        "add run claims",
        include_str!("../migrations/postgres/20261129130000_add_run_claims.sql"),
    ),
    (
        20261203120000,
        "create audit checkpoints",
        include_str!("../migrations/postgres/20261203120000_create_audit_checkpoints.sql"),
    ),
    (
        20261203130000,
        "add attempt request id",
        include_str!("../migrations/postgres/20261203130000_add_attempt_request_id.sql"),
    ),
];

const SQLITE_MIGRATIONS: &[(i64, &str, &str)] = &[
    (
        20261126000000,
        "create audit store",
        include_str!("../migrations/sqlite/20261126000000_create_audit_store.sql"),
    ),
    (
        20261126010000,
        "create schedule fires",
        include_str!("../migrations/sqlite/20261126010000_create_schedule_fires.sql"),
    ),
    (
        20261126020000,
        "add run control",
        include_str!("../migrations/sqlite/20261126020000_add_run_control.sql"),
    ),
    (
        20261129000000,
        "add attempt job id",
        include_str!("../migrations/sqlite/20261129000000_add_attempt_job_id.sql"),
    ),
    (
        20261129130000,
        "add run claims",
        include_str!("../migrations/sqlite/20261129130000_add_run_claims.sql"),
    ),
    (
        20261203120000,
        "create audit checkpoints",
        include_str!("../migrations/sqlite/20261203120000_create_audit_checkpoints.sql"),
    ),
    (
        20261203130000,
        "add attempt request id",
        include_str!("../migrations/sqlite/20261203130000_add_attempt_request_id.sql"),
    ),
];

/// A store failure.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The database could not be opened or created.
    #[error("cannot open database {url}: {reason}")]
    Open {
        /// The configured URL.
        url: String,
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
    /// A stored value cannot be read back (edited by hand, or a newer schema).
    #[error("corrupt record: {0}")]
    Corrupt(String),
    /// This process lost the run: it records and sends nothing more for it.
    #[error("run {run_id} is no longer executed by this process: {why}")]
    Fenced { run_id: String, why: String },
    /// Another live process holds the run.
    #[error(
        "run {run_id} is being executed by {owner}; it can be taken over if that process stops renewing its claim (expires in {:.1}s)",
        expires_in.as_secs_f64()
    )]
    Owned {
        run_id: String,
        owner: String,
        expires_in: Duration,
    },
    /// A copy's target already holds rows.
    #[error(
        "the target database is not empty ({rows} rows in {table}); copy into a fresh database"
    )]
    NotEmpty { table: String, rows: i64 },
    /// The transaction that held a write did not commit.
    #[error("the write was not committed: {0}")]
    Commit(String),
    /// Another process sharing the database acted on this schedule fire.
    #[error("fire {fire_at} of schedule {schedule} was taken by another process")]
    FireTaken { schedule: String, fire_at: String },
    /// The run is over; nothing to claim.
    #[error("run {run_id} is {status}, not running")]
    NotRunning { run_id: String, status: String },
}

use crate::spelling::string_enum;

string_enum! {
    /// Where a run is.
    RunStatus {
        /// Executing (or it was, when the process stopped): resumable.
        Running = "running",
        /// Every main and `finally` step succeeded (or was skipped).
        Succeeded = "succeeded",
        /// A step failed.
        Failed = "failed",
        /// Stopped on request.
        Cancelled = "cancelled",
    }
}

string_enum! {
    /// Where a step is.
    StepStatus {
        /// Not started (or asked again on resume).
        Pending = "pending",
        /// Executing (or it was, when the process stopped).
        Running = "running",
        /// Finished well.
        Succeeded = "succeeded",
        /// Finished with a failure.
        Failed = "failed",
        /// `when` was false, or an earlier failure or a cancel skipped it.
        Skipped = "skipped",
    }
}

/// The transaction migrations run in, serialised like every write
/// ([`commit`]): sqlx's own, in which each migration is a savepoint.
async fn begin_migrations(
    conn: &mut AnyConnection,
    backend: Backend,
) -> Result<Transaction<'_, Any>, sqlx::Error> {
    if backend == Backend::Sqlite {
        return conn.begin_with("BEGIN IMMEDIATE").await;
    }
    let mut tx = conn.begin().await?;
    sqlx::query("SELECT pg_advisory_xact_lock($1)")
        .bind(commit::WRITER_LOCK)
        .execute(&mut *tx)
        .await?;
    Ok(tx)
}

/// A statement SQLite may refuse while another process switches a fresh
/// file to WAL (that switch does not wait for the busy timeout): retried.
async fn pragma(conn: &mut AnyConnection, sql: &'static str) -> Result<(), sqlx::Error> {
    let mut tries = 0;
    loop {
        match sqlx::query(sql).execute(&mut *conn).await {
            Err(sqlx::Error::Database(e))
                if tries < 100
                    && (e.message().contains("locked") || e.message().contains("busy")) =>
            {
                tries += 1;
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            other => return other.map(|_| ()),
        }
    }
}

/// Opens (creating) a SQLite file with WAL, a busy timeout and
/// `synchronous=FULL` (an intent must be on disk before its request is sent).
async fn open_sqlite(path: &str) -> Result<AnyConnection, String> {
    if let Some(parent) = PathBuf::from(path).parent()
        && !parent.as_os_str().is_empty()
    {
        std::fs::create_dir_all(parent)
            .map_err(|e| format!("cannot create {}: {e}", parent.display()))?;
    }
    let url = format!("sqlite://{path}?mode=rwc");
    let options = AnyConnectOptions::from_str(&url).map_err(|e| e.to_string())?;
    let mut conn = AnyConnection::connect_with(&options)
        .await
        .map_err(|e| e.to_string())?;
    for sql in [
        "PRAGMA busy_timeout = 10000",
        "PRAGMA journal_mode = WAL",
        "PRAGMA synchronous = FULL",
        "PRAGMA foreign_keys = ON",
    ] {
        pragma(&mut conn, sql).await.map_err(|e| e.to_string())?;
    }
    Ok(conn)
}

/// For tests: a fresh, empty PostgreSQL database on the test server
/// (`DROVER_TEST_POSTGRES`, default `postgres://postgres@127.0.0.1:5432`),
/// or `None`, said on stderr, when no server answers. With
/// `DROVER_TEST_POSTGRES_REQUIRED=1` (set by `.ci/run`) a missing server
/// fails the test instead. Databases left by test processes that have
/// ended are dropped first.
#[doc(hidden)]
pub async fn scratch_postgres() -> Option<String> {
    let base = std::env::var("DROVER_TEST_POSTGRES")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432".into());
    let required = std::env::var("DROVER_TEST_POSTGRES_REQUIRED").is_ok_and(|v| v == "1");
    sqlx::any::install_default_drivers();
    let mut admin = match AnyConnection::connect(&format!("{base}/postgres")).await {
        Ok(c) => c,
        Err(e) if !required => {
            eprintln!(
                "PostgreSQL at {base} does not answer ({e}): the PostgreSQL part of this test is skipped"
            );
            return None;
        }
        Err(e) => panic!("PostgreSQL at {base} is required for this test run: {e}"),
    };
    let leftovers =
        sqlx::query("SELECT datname::text FROM pg_database WHERE datname LIKE 'drover_test_%'")
            .fetch_all(&mut admin)
            .await
            .expect("list test databases");
    for row in leftovers {
        let name: String = row.get(0);
        let pid = name.split('_').nth(2).unwrap_or_default();
        if !std::path::Path::new(&format!("/proc/{pid}")).exists() {
            let drop = format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)");
            let _ = sqlx::query(sqlx::AssertSqlSafe(drop))
                .execute(&mut admin)
                .await;
        }
    }
    let name = format!(
        "drover_test_{}_{}",
        std::process::id(),
        uuid::Uuid::now_v7().simple()
    );
    sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE \"{name}\"")))
        .execute(&mut admin)
        .await
        .expect("create a test database");
    Some(format!("{base}/{name}"))
}

/// Which database the store runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Backend {
    Sqlite,
    Postgres,
}

impl Backend {
    fn migrations(self) -> &'static [(i64, &'static str, &'static str)] {
        match self {
            Backend::Sqlite => SQLITE_MIGRATIONS,
            Backend::Postgres => POSTGRES_MIGRATIONS,
        }
    }
}

/// Current time as stored.
pub fn now() -> String {
    timestamp(Utc::now())
}

/// A time as stored: RFC 3339, UTC, milliseconds.
pub fn timestamp(at: DateTime<Utc>) -> String {
    at.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

/// The store. Clones share its connections.
#[derive(Debug, Clone)]
pub struct Store {
    db: Arc<commit::Db>,
    backend: Backend,
    claims: Arc<claim::Claims>,
}

impl Store {
    /// Opens (creating if missing) the database at `url` and applies migrations.
    pub async fn open(url: &str) -> Result<Store, StoreError> {
        // The URL may carry a password: errors show it redacted.
        let open_error = |reason: String| StoreError::Open {
            url: crate::redact::url(url),
            reason,
        };
        sqlx::any::install_default_drivers();
        let backend = if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            Backend::Postgres
        } else {
            Backend::Sqlite
        };
        let connect = async || match backend {
            Backend::Postgres => {
                let options = AnyConnectOptions::from_str(url).map_err(|e| e.to_string())?;
                AnyConnection::connect_with(&options)
                    .await
                    .map_err(|e| e.to_string())
            }
            Backend::Sqlite => {
                let path = url
                    .strip_prefix("sqlite://")
                    .or_else(|| url.strip_prefix("sqlite:"))
                    .ok_or("the URL must start with sqlite:// or postgres://")?;
                if path == ":memory:" || path.starts_with("file::memory:") {
                    return Err("an in-memory database cannot be shared by the store's writer and reader connections; give a file".to_string());
                }
                open_sqlite(path).await
            }
        };
        let mut conn = connect().await.map_err(open_error)?;
        let migrations = backend
            .migrations()
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
        let mut tx = begin_migrations(&mut conn, backend)
            .await
            .map_err(migrate)?;
        sqlx::migrate::Migrator::with_migrations(migrations)
            .run_direct(None, &mut *tx, false)
            .await
            .map_err(|e| StoreError::Migrate(e.to_string()))?;
        tx.commit().await.map_err(migrate)?;
        let reader = connect().await.map_err(open_error)?;
        Ok(Store {
            db: commit::Db::new(conn, reader, backend),
            backend,
            claims: claim::Claims::new(Node::this_process(None), DEFAULT_CLAIM_TTL),
        })
    }

    /// `work` in a write transaction, serialised with every other writer
    /// and shared with those arriving meanwhile ([`commit`]): its value
    /// once that transaction committed; when it fails, none of its writes.
    pub(crate) async fn write<T>(
        &self,
        work: impl AsyncFnOnce(&mut AnyConnection) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        self.db.write(work).await
    }

    /// As [`Store::write`], without a savepoint of its own: for a work whose
    /// only statements that change rows are sent by
    /// [`Store::execute_and_append`] at its end (see `Db::write_unguarded`).
    pub(crate) async fn write_unguarded<T>(
        &self,
        work: impl AsyncFnOnce(&mut AnyConnection) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        self.db.write_unguarded(work).await
    }

    /// Names this process `node` in the claims it takes, which live `ttl`
    /// unless renewed. For a store no run has been started on yet.
    pub fn with_node(mut self, node: Node, ttl: Duration) -> Store {
        self.claims = claim::Claims::new(node, ttl);
        self
    }

    /// Appends an audit event on its own (API calls, config reloads).
    pub async fn record_event(
        &self,
        actor: &str,
        kind: &str,
        run_id: Option<&str>,
        data: Value,
    ) -> Result<(), StoreError> {
        self.write(async |tx| {
            self.append(tx, actor, kind, run_id, None, data).await?;
            Ok(())
        })
        .await
    }

    /// Audit events in chain order, optionally only those at or after `since`.
    pub async fn events(&self, since: Option<DateTime<Utc>>) -> Result<Vec<Event>, StoreError> {
        let since = since.map(timestamp).unwrap_or_default();
        let rows = sqlx::query("SELECT seq, at, actor, kind, run_id, step_id, data, prev_hash, hash FROM audit_events WHERE at >= $1 ORDER BY seq")
            .bind(since)
            .fetch_all(&mut *self.db.read().await)
            .await?;
        Ok(rows.iter().map(event_record).collect())
    }

    /// Recomputes the whole chain; the count of events, or the first broken link.
    pub async fn verify(&self) -> Result<Result<u64, BrokenLink>, StoreError> {
        let events = self.events(None).await?;
        Ok(audit::verify(&events))
    }

    /// Write transactions this process committed or rolled back so far
    /// (each shared by the writes that joined it): for benchmarks.
    #[doc(hidden)]
    pub async fn transactions(&self) -> u64 {
        self.db.transactions().await
    }

    /// Runs raw SQL: for tests that tamper with the trail on purpose.
    #[doc(hidden)]
    pub async fn execute_unchecked(&self, sql: &'static str) -> Result<u64, StoreError> {
        self.write(async |tx| {
            // It may rewrite the chain or a claim: both are read again.
            self.db.forget();
            Ok(sqlx::query(sql).execute(tx).await?.rows_affected())
        })
        .await
    }
}

/// A word column read into its enum; an unknown word is a corrupt record,
/// named by `what` (`step status`) and `place` (`in run R`).
pub(crate) fn word<T>(
    r: &AnyRow,
    index: usize,
    parse: fn(&str) -> Option<T>,
    what: &str,
    place: impl FnOnce() -> String,
) -> Result<T, StoreError> {
    let text: String = r.get(index);
    parse(&text).ok_or_else(|| StoreError::Corrupt(format!("unknown {what} `{text}` {}", place())))
}

/// A JSON column (`None` for NULL); text that is not JSON is a corrupt
/// record, named by `what`, never read as missing.
pub(crate) fn json_column(
    r: &AnyRow,
    index: usize,
    what: impl FnOnce() -> String,
) -> Result<Option<Value>, StoreError> {
    let text: Option<String> = r.get(index);
    text.map(|t| serde_json::from_str(&t))
        .transpose()
        .map_err(|e| StoreError::Corrupt(format!("{} is not JSON: {e}", what())))
}

fn event_record(r: &AnyRow) -> Event {
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

impl Store {
    /// Appends one event to the chain inside the write transaction `tx`; its
    /// data names this process's node.
    pub(crate) async fn append(
        &self,
        tx: &mut AnyConnection,
        actor: &str,
        kind: &str,
        run_id: Option<&str>,
        step_id: Option<&str>,
        data: Value,
    ) -> Result<(), StoreError> {
        let event = self
            .next_event(tx, actor, kind, run_id, step_id, data)
            .await?;
        self.db.changing();
        event.insert(tx).await?;
        self.db.set_head((event.seq, event.hash));
        Ok(())
    }

    /// Runs the statement `sql` (`and_event!`: the statement alone, and with
    /// the event's insert after it), its parameters bound by `bind`, then
    /// appends an event as [`Store::append`] does: on SQLite in one round
    /// trip to its worker thread instead of two, which is what a write costs
    /// in a large plan. The rows the statement returned.
    pub(crate) async fn execute_and_append<'q>(
        &self,
        tx: &mut AnyConnection,
        sql: (&'static str, &'static str),
        bind: impl FnOnce(AnyQuery<'q>) -> AnyQuery<'q>,
        event: (&str, &str, Option<&str>, Option<&str>, Value),
    ) -> Result<Vec<AnyRow>, StoreError> {
        let (actor, kind, run_id, step_id, data) = event;
        let event = self
            .next_event(tx, actor, kind, run_id, step_id, data)
            .await?;
        self.db.changing();
        let rows = match self.backend {
            Backend::Sqlite => {
                event
                    .bind(bind(sqlx::query(sql.1)))
                    .fetch_all(&mut *tx)
                    .await?
            }
            Backend::Postgres => {
                let rows = bind(sqlx::query(sql.0)).fetch_all(&mut *tx).await?;
                event.insert(tx).await?;
                rows
            }
        };
        self.db.set_head((event.seq, event.hash));
        Ok(rows)
    }

    /// The chain's head inside the write transaction `tx`: the last event's
    /// sequence number and hash (0 and the genesis hash when there is none).
    pub(crate) async fn head_in(
        &self,
        tx: &mut AnyConnection,
    ) -> Result<(i64, String), StoreError> {
        // The batch's earlier writes know the head; the first one reads it.
        if let Some(head) = self.db.head() {
            return Ok(head);
        }
        let last = sqlx::query("SELECT seq, hash FROM audit_events ORDER BY seq DESC LIMIT 1")
            .fetch_optional(&mut *tx)
            .await?;
        Ok(match last {
            Some(row) => (row.get(0), row.get(1)),
            None => (0, audit::GENESIS.to_string()),
        })
    }

    /// The event to append next inside `tx`, linked to the chain's head.
    async fn next_event(
        &self,
        tx: &mut AnyConnection,
        actor: &str,
        kind: &str,
        run_id: Option<&str>,
        step_id: Option<&str>,
        data: Value,
    ) -> Result<NextEvent, StoreError> {
        let (node, mut data) = (&self.claims.node.name, data);
        if let Value::Object(fields) = &mut data {
            fields.insert("node".into(), Value::String(node.clone()));
        }
        let (prev_seq, prev_hash) = self.head_in(tx).await?;
        let seq = prev_seq + 1;
        let at = now();
        let hash = audit::link(
            &prev_hash,
            &audit::canonical(seq, &at, actor, kind, run_id, step_id, &data),
        );
        Ok(NextEvent {
            seq,
            at,
            actor: actor.to_string(),
            kind: kind.to_string(),
            run_id: run_id.map(str::to_string),
            step_id: step_id.map(str::to_string),
            data: data.to_string(),
            prev_hash,
            hash,
        })
    }
}

/// A query of the `Any` driver.
pub(crate) type AnyQuery<'q> = sqlx::query::Query<'q, Any, sqlx::any::AnyArguments>;

const INSERT_EVENT: &str = "INSERT INTO audit_events (seq, at, actor, kind, run_id, step_id, data, prev_hash, hash) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)";

/// An audit event's row before it is inserted.
struct NextEvent {
    seq: i64,
    at: String,
    actor: String,
    kind: String,
    run_id: Option<String>,
    step_id: Option<String>,
    data: String,
    prev_hash: String,
    hash: String,
}

impl NextEvent {
    /// Inserts it as a statement of its own.
    async fn insert(&self, tx: &mut AnyConnection) -> Result<(), sqlx::Error> {
        self.bind(sqlx::query(INSERT_EVENT))
            .execute(tx)
            .await
            .map(|_| ())
    }

    /// `query` with the event's nine values bound after its own.
    fn bind<'q>(&self, query: AnyQuery<'q>) -> AnyQuery<'q> {
        query
            .bind(self.seq)
            .bind(self.at.clone())
            .bind(self.actor.clone())
            .bind(self.kind.clone())
            .bind(self.run_id.clone())
            .bind(self.step_id.clone())
            .bind(self.data.clone())
            .bind(self.prev_hash.clone())
            .bind(self.hash.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A fresh store on each backend this machine has: a SQLite file in a
    /// directory that lives as long as the returned guard, and PostgreSQL
    /// when its test server answers.
    pub(crate) async fn stores() -> (Vec<Store>, tempfile::TempDir) {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}", dir.path().join("audit.db").display());
        let mut out = vec![Store::open(&url).await.unwrap()];
        if let Some(url) = scratch_postgres().await {
            out.push(Store::open(&url).await.unwrap());
        }
        (out, dir)
    }

    pub(crate) fn new_run(id: &str, targets: &[&str]) -> NewRun {
        NewRun {
            id: id.into(),
            runbook: "evs-switchover".into(),
            digest: "d".into(),
            source: "name: x".into(),
            path: "runbooks/evs-switchover.yaml".into(),
            kind: crate::runbook::Kind::Switchover,
            trigger: Trigger::Cli,
            requested_by: "alice".into(),
            params: [("group_id".to_string(), "g1".to_string())].into(),
            dry_run: false,
            steps: vec![
                ("precheck".into(), Phase::Main),
                ("notify".into(), Phase::Finally),
            ],
            targets: targets.iter().map(|t| t.to_string()).collect(),
            idempotency: None,
            fire: None,
        }
    }

    #[tokio::test]
    async fn a_steps_attempts_are_its_own_and_the_runs_are_all() {
        let (stores, _dir) = stores().await;
        for store in stores {
            store.create_run(&new_run("r1", &[])).await.unwrap();
            let mut ids = Vec::new();
            for step_id in ["precheck", "notify", "precheck"] {
                let attempt = NewAttempt {
                    run_id: "r1".into(),
                    step_id: step_id.into(),
                    attempt: 1,
                    kind: AttemptKind::Intent,
                    request: "POST /x".into(),
                    ..Default::default()
                };
                ids.push(store.record_attempt(&attempt, None).await.unwrap());
            }
            let own: Vec<i64> = store
                .step_attempts("r1", "precheck")
                .await
                .unwrap()
                .iter()
                .map(|a| a.id)
                .collect();
            assert_eq!(own, [ids[0], ids[2]]);
            assert_eq!(store.attempts("r1").await.unwrap().len(), 3);
        }
    }

    #[tokio::test]
    async fn runs_steps_attempts_and_a_verifiable_chain() {
        let (stores, _dir) = stores().await;
        for store in stores {
            store.create_run(&new_run("r1", &["evs:g1"])).await.unwrap();
            store
                .set_step("r1", "precheck", StepStatus::Running, None, None)
                .await
                .unwrap();
            let intent = NewAttempt {
                run_id: "r1".into(),
                step_id: "precheck".into(),
                attempt: 1,
                kind: AttemptKind::Intent,
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
                    StepStatus::Succeeded,
                    Some(&serde_json::json!({"a": 1})),
                    None,
                )
                .await
                .unwrap();
            store
                .finish_run("r1", RunStatus::Succeeded, None, "alice")
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
            assert!(
                events
                    .iter()
                    .all(|e| e.data["node"].as_str() == Some(store.node().name.as_str())),
                "every event names the process that wrote it"
            );
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
    }

    #[tokio::test]
    async fn unreadable_parameters_are_an_error_not_an_empty_map() {
        let (stores, _dir) = stores().await;
        for store in stores {
            store.create_run(&new_run("r1", &[])).await.unwrap();
            store
                .execute_unchecked("UPDATE runs SET params = 'not json' WHERE id = 'r1'")
                .await
                .unwrap();
            let err = store.run("r1").await.unwrap_err().to_string();
            assert!(
                err.contains("corrupt record: the parameters of run r1 cannot be read"),
                "{err}"
            );
            assert!(store.interrupted_runs().await.is_err());
        }
    }

    #[tokio::test]
    async fn stored_json_that_is_not_json_is_a_corrupt_record() {
        let (stores, _dir) = stores().await;
        for store in stores {
            store.create_run(&new_run("r1", &[])).await.unwrap();
            store
                .execute_unchecked(
                    "UPDATE steps SET output = '{not json' WHERE step_id = 'precheck'",
                )
                .await
                .unwrap();
            let err = store.steps("r1").await.unwrap_err().to_string();
            assert!(err.contains("a step output in run r1 is not JSON"), "{err}");
        }
    }

    #[tokio::test]
    async fn unknown_stored_statuses_are_corrupt_records() {
        let (stores, _dir) = stores().await;
        for store in stores {
            store.create_run(&new_run("r1", &[])).await.unwrap();
            assert_eq!(
                store.run("r1").await.unwrap().unwrap().status,
                RunStatus::Running
            );
            store
                .execute_unchecked("UPDATE steps SET status = 'paused' WHERE run_id = 'r1'")
                .await
                .unwrap();
            let err = store.steps("r1").await.unwrap_err().to_string();
            assert!(err.contains("unknown step status `paused`"), "{err}");
            store
                .execute_unchecked("UPDATE runs SET status = 'paused' WHERE id = 'r1'")
                .await
                .unwrap();
            let err = store.run("r1").await.unwrap_err().to_string();
            assert!(err.contains("unknown status `paused` of run r1"), "{err}");
            for (sql, message) in [
                (
                    "UPDATE runs SET status = 'running', kind = 'paused'",
                    "unknown kind `paused` of run r1",
                ),
                (
                    "UPDATE runs SET kind = 'switchover', trigger = 'paused'",
                    "unknown trigger `paused` of run r1",
                ),
            ] {
                store.execute_unchecked(sql).await.unwrap();
                let err = store.run("r1").await.unwrap_err().to_string();
                assert!(err.contains(message), "{err}");
            }
            store
                .record_approval("r1", "precheck", "bob", Decision::Approved, None)
                .await
                .unwrap();
            store
                .execute_unchecked("UPDATE approvals SET decision = 'maybe'")
                .await
                .unwrap();
            let err = store.approvals("r1").await.unwrap_err().to_string();
            assert!(
                err.contains("unknown approval decision `maybe` in run r1"),
                "{err}"
            );
        }
    }

    #[tokio::test]
    async fn approvals_are_admitted_only_while_the_step_waits_for_them() {
        use approval::Admission as A;
        let (stores, _dir) = stores().await;
        for store in stores {
            store.create_run(&new_run("r1", &[])).await.unwrap();
            let admit = |who: &'static str, decision| {
                let store = store.clone();
                async move {
                    store
                        .admit_approval("r1", "precheck", who, "alice", decision, None)
                        .await
                        .unwrap()
                }
            };
            assert_eq!(
                admit("bob", Decision::Approved).await,
                A::NotWaiting,
                "pending"
            );
            store
                .execute_unchecked("UPDATE steps SET status = 'running', output = '{\"awaiting_approvals\": 2}' WHERE step_id = 'precheck'")
                .await
                .unwrap();
            assert_eq!(admit("alice", Decision::Approved).await, A::Recorded);
            assert_eq!(admit("bob", Decision::Approved).await, A::Recorded);
            assert_eq!(admit("bob", Decision::Approved).await, A::AlreadyDecided);
            assert_eq!(
                admit("carol", Decision::Approved).await,
                A::Recorded,
                "the requester's approval does not count"
            );
            assert_eq!(admit("dave", Decision::Approved).await, A::Settled);
            assert_eq!(admit("erin", Decision::Rejected).await, A::Settled);
            let approvers: Vec<String> = store
                .approvals("r1")
                .await
                .unwrap()
                .into_iter()
                .map(|a| a.approver)
                .collect();
            assert_eq!(approvers, ["alice", "bob", "carol"]);

            // One approver by default; a rejection settles the step too.
            store.create_run(&new_run("r2", &[])).await.unwrap();
            store
                .execute_unchecked("UPDATE steps SET status = 'running' WHERE run_id = 'r2' AND step_id = 'precheck'")
                .await
                .unwrap();
            let admit2 = |who: &'static str, decision| {
                let store = store.clone();
                async move {
                    store
                        .admit_approval("r2", "precheck", who, "alice", decision, None)
                        .await
                        .unwrap()
                }
            };
            assert_eq!(admit2("bob", Decision::Rejected).await, A::Recorded);
            assert_eq!(admit2("carol", Decision::Approved).await, A::Settled);
            let events = store.events(None).await.unwrap();
            let approvals = events.iter().filter(|e| e.kind == "approval").count();
            assert_eq!(
                approvals, 4,
                "an audit event for each admitted decision only"
            );
        }
    }

    #[tokio::test]
    async fn a_leased_target_refuses_a_second_run_until_released() {
        let (stores, _dir) = stores().await;
        for store in stores {
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
                .finish_run("r1", RunStatus::Succeeded, None, "alice")
                .await
                .unwrap();
            store.create_run(&new_run("r2", &["evs:g1"])).await.unwrap();
        }
    }

    #[tokio::test]
    async fn a_sqlite_file_is_opened_with_wal_full_sync_and_foreign_keys() {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}", dir.path().join("d/audit.db").display());
        let store = Store::open(&url).await.unwrap();
        let mut conn = store.db.read().await;
        let mut value = async |sql: &'static str| -> String {
            let row = sqlx::query(sql).fetch_one(&mut *conn).await.unwrap();
            row.try_get::<String, _>(0)
                .unwrap_or_else(|_| row.get::<i64, _>(0).to_string())
        };
        assert_eq!(value("PRAGMA journal_mode").await, "wal");
        assert_eq!(value("PRAGMA synchronous").await, "2", "FULL");
        assert_eq!(value("PRAGMA foreign_keys").await, "1");
        assert_eq!(value("PRAGMA busy_timeout").await, "10000");
    }

    #[test]
    fn every_file_in_migrations_is_applied() {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("migrations");
        for backend in [Backend::Sqlite, Backend::Postgres] {
            let dir = root.join(match backend {
                Backend::Sqlite => "sqlite",
                Backend::Postgres => "postgres",
            });
            let mut files: Vec<String> = std::fs::read_dir(&dir)
                .unwrap()
                .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                .filter(|n| n.ends_with(".sql"))
                .collect();
            files.sort();
            let listed: Vec<String> = backend
                .migrations()
                .iter()
                .map(|(v, d, _)| format!("{v}_{}.sql", d.replace(' ', "_")))
                .collect();
            assert_eq!(files, listed, "{backend:?} lists every file, in order");
        }
        let stray: Vec<_> = std::fs::read_dir(&root)
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.is_file())
            .collect();
        assert!(
            stray.is_empty(),
            "migrations belong to a backend: {stray:?}"
        );
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

    /// Managed PostgreSQL (RDS) wants TLS: `sslmode=require` connects
    /// encrypted (the local test server has a self-signed certificate).
    #[tokio::test]
    async fn postgresql_over_tls() {
        let Some(url) = scratch_postgres().await else {
            return;
        };
        let mut plain = AnyConnection::connect(&url).await.unwrap();
        let ssl: String = sqlx::query("SHOW ssl")
            .fetch_one(&mut plain)
            .await
            .unwrap()
            .get(0);
        if ssl != "on" {
            eprintln!("the PostgreSQL test server has ssl off: the TLS test is skipped");
            return;
        }
        let store = Store::open(&format!("{url}?sslmode=require"))
            .await
            .unwrap();
        assert!(store.runs(1).await.unwrap().is_empty());
    }

    /// A fire is taken in the transaction that creates its run: a process
    /// dying in between leaves neither, and a fire another process has
    /// (started, or taken for a skip) starts no second run.
    #[tokio::test]
    async fn a_fire_and_its_run_are_created_together_or_not_at_all() {
        let (stores, _dir) = stores().await;
        for store in stores {
            let at = |t: &str| DateTime::parse_from_rfc3339(t).unwrap().with_timezone(&Utc);
            let fire = |t: &str| FireKey {
                runbook: "rb".into(),
                schedule: "weekly".into(),
                fire_at: at(t),
            };
            let mut first = new_run("r1", &["evs:g1"]);
            first.fire = Some(fire("2026-05-01T03:00:00Z"));
            store.create_run(&first).await.unwrap();
            let mut again = new_run("r2", &["evs:g2"]);
            again.fire = Some(fire("2026-05-01T03:00:00Z"));
            let err = store.create_run(&again).await.unwrap_err();
            assert!(matches!(err, StoreError::FireTaken { .. }), "{err}");
            assert!(store.run("r2").await.unwrap().is_none(), "no second run");
            assert!(
                store
                    .take_fire("rb", "weekly", at("2026-05-08T03:00:00Z"))
                    .await
                    .unwrap()
            );
            let mut skipped = new_run("r3", &["evs:g3"]);
            skipped.fire = Some(fire("2026-05-08T03:00:00Z"));
            assert!(store.create_run(&skipped).await.is_err());
            assert!(store.run("r3").await.unwrap().is_none());
            let fires = store.fires("rb", "weekly").await.unwrap();
            assert_eq!(
                fires,
                [
                    (
                        "2026-05-01T03:00:00Z".to_string(),
                        "started".to_string(),
                        Some("r1".to_string())
                    ),
                    (
                        "2026-05-08T03:00:00Z".to_string(),
                        "taken".to_string(),
                        None
                    ),
                ]
            );
            assert!(store.verify().await.unwrap().is_ok());
        }
    }

    #[tokio::test]
    async fn a_fire_is_taken_once() {
        let (stores, _dir) = stores().await;
        for store in stores {
            let t = DateTime::parse_from_rfc3339("2026-05-01T03:00:00Z")
                .unwrap()
                .with_timezone(&Utc);
            assert!(store.take_fire("rb", "weekly", t).await.unwrap());
            assert!(!store.take_fire("rb", "weekly", t).await.unwrap());
            store
                .record_fire("rb", "weekly", t, "started", None, None)
                .await
                .unwrap();
            assert_eq!(store.fires("rb", "weekly").await.unwrap()[0].1, "started");
        }
    }

    #[tokio::test]
    async fn schedule_fires_are_recorded_with_their_latest_time() {
        let (stores, _dir) = stores().await;
        for store in stores {
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
}
