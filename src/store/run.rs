//! Runs and their steps: creation with target leases and idempotency keys,
//! status changes, cancel requests, and reads.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;
use sqlx::Row;
use sqlx::any::AnyRow;
use utoipa::ToSchema;

use super::claim::with_now_ms;
use super::{Backend, RunStatus, StepStatus, Store, StoreError, json_column, now, word};
use crate::runbook::Kind;
use crate::spelling::string_enum;

string_enum! {
    /// What started a run.
    Trigger {
        /// `drover run`.
        Cli = "cli",
        /// `POST /v1/runs`.
        Api = "api",
        /// A runbook schedule of the daemon.
        Schedule = "schedule",
    }
}

string_enum! {
    /// The part of a runbook a step belongs to.
    Phase {
        /// `steps`: stop at the first failure.
        Main = "main",
        /// `finally`: always executed.
        Finally = "finally",
    }
}

/// The run columns in the order `run_record` reads them (a macro so queries stay `&'static str`).
macro_rules! run_columns {
    () => {
        "SELECT id, runbook, runbook_digest, runbook_source, runbook_path, kind, trigger, requested_by, params, dry_run, status, error, created_at, finished_at, recovered_at, cancel_requested_by, owner FROM runs"
    };
}

/// Positions of a run's steps are this far apart, so that the rows of a
/// block's items fit between the block and the step after it.
pub const POSITION_STRIDE: i64 = 1 << 20;

/// Why the steps of an item refused at expansion did not run.
pub const REFUSED_ITEM: &str = "the item was refused when the block was reached";

/// The rows a `for_each` block adds when it is reached.
#[derive(Debug, Clone)]
pub struct Expansion {
    /// The block's output: its items (what a resume works on).
    pub output: Value,
    /// New step rows (an item's row, `block[i]`, then its steps) with positions.
    pub rows: Vec<(String, i64)>,
    /// Per item: its row id and the targets it leases (none in a dry run).
    pub leases: Vec<(String, Vec<String>)>,
    /// Items failed before any lease, with the reason (a group that is an
    /// item of another block of the run, say). They lease nothing.
    pub refused: Vec<(String, String)>,
}

/// A run to create.
#[derive(Debug, Clone)]
pub struct NewRun {
    /// Run id (UUID v7).
    pub id: String,
    pub runbook: String,
    /// sha256 of the runbook file.
    pub digest: String,
    /// The runbook text.
    pub source: String,
    /// Where it was loaded from.
    pub path: String,
    /// Runbook kind.
    pub kind: Kind,
    /// What started it.
    pub trigger: Trigger,
    /// Who asked for it.
    pub requested_by: String,
    /// Resolved parameters.
    pub params: BTreeMap<String, String>,
    pub dry_run: bool,
    /// Step ids in run order with their phase.
    pub steps: Vec<(String, Phase)>,
    /// Cloud targets to lease (`evs:<id>`, `sdrs:<id>`).
    pub targets: Vec<String>,
    /// `Idempotency-Key` of an API trigger: (actor, key, sha256 of the request).
    pub idempotency: Option<(String, String, String)>,
    /// The schedule fire that starts it: recorded as started by this run
    /// in the same transaction, so a fire starts one run across daemons.
    pub fire: Option<super::FireKey>,
}

/// A stored run (as the API shows it, too).
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct RunRecord {
    pub id: String,
    pub runbook: String,
    /// Runbook version.
    pub runbook_digest: String,
    /// The runbook text it started with.
    #[serde(skip)]
    pub runbook_source: String,
    /// File it came from.
    pub runbook_path: String,
    pub kind: Kind,
    pub trigger: Trigger,
    pub requested_by: String,
    pub params: BTreeMap<String, String>,
    pub dry_run: bool,
    pub status: RunStatus,
    /// Failure summary.
    pub error: Option<String>,
    pub created_at: String,
    pub finished_at: Option<String>,
    /// When the last main step succeeded (recovery time = this - created_at).
    pub recovered_at: Option<String>,
    /// Who asked to cancel the run, if anyone did.
    pub cancel_requested_by: Option<String>,
    /// The node that executes it (or last did).
    pub owner: Option<String>,
}

/// A stored step state.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct StepRecord {
    pub step_id: String,
    /// Run order.
    pub position: i64,
    /// Main or finally.
    pub phase: Phase,
    pub status: StepStatus,
    /// Output (JSON): `{}` until the step has one.
    #[schema(value_type = Object)]
    #[serde(serialize_with = "object_or_empty")]
    pub output: Option<Value>,
    pub error: Option<String>,
    pub started_at: Option<String>,
    pub finished_at: Option<String>,
}

/// A step's output as the API shows it: an object, `{}` when there is none.
fn object_or_empty<S: serde::Serializer>(output: &Option<Value>, s: S) -> Result<S::Ok, S::Error> {
    match output {
        Some(v) => v.serialize(s),
        None => serde_json::Map::new().serialize(s),
    }
}

impl Store {
    /// Creates a run with its steps, leasing its targets, in one transaction.
    pub async fn create_run(&self, run: &NewRun) -> Result<(), StoreError> {
        let started = std::time::Instant::now();
        // As few statements as it takes: one writer connection serves every
        // start of the process in turn (see `commit`).
        let insert_run = with_now_ms!(
            self.backend,
            "INSERT INTO runs (id, runbook, runbook_digest, runbook_source, runbook_path, kind, trigger, requested_by, params, dry_run, status, created_at, owner, owner_host, owner_pid, epoch, claim_expires_ms)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, 'running', $11, $12, $13, $14, 1, ",
            " + $15)"
        );
        let mut insert_steps =
            "INSERT INTO steps (run_id, step_id, position, phase, status) VALUES ".to_string();
        for i in 0..run.steps.len() {
            let n = 2 + 3 * i;
            let sep = if i == 0 { "" } else { ", " };
            insert_steps.push_str(&format!(
                "{sep}($1, ${n}, ${}, ${}, 'pending')",
                n + 1,
                n + 2
            ));
        }
        self.write(async |tx| {
            let at = now();
            let node = self.node();
            sqlx::query(insert_run)
            .bind(&run.id)
            .bind(&run.runbook)
            .bind(&run.digest)
            .bind(&run.source)
            .bind(&run.path)
            .bind(run.kind.as_str())
            .bind(run.trigger.as_str())
            .bind(&run.requested_by)
            .bind(serde_json::Value::from_iter(
                run.params
                    .iter()
                    .map(|(k, v)| (k.clone(), serde_json::Value::String(v.clone()))),
            )
            .to_string())
            .bind(i64::from(run.dry_run))
            .bind(&at)
            .bind(&node.name)
            .bind(&node.host)
            .bind(i64::from(node.pid))
            .bind(self.claim_ttl().as_millis() as i64)
            .execute(&mut *tx)
            .await?;
            if !run.steps.is_empty() {
                let mut insert = sqlx::query(sqlx::AssertSqlSafe(insert_steps.as_str())).bind(&run.id);
                for (position, (step, phase)) in run.steps.iter().enumerate() {
                    insert = insert.bind(step).bind(position as i64 * POSITION_STRIDE).bind(phase.as_str());
                }
                insert.execute(&mut *tx).await?;
            }
            if let Some(fire) = &run.fire {
                super::fire::start_fire(tx, fire, &run.id, &node.name).await?;
            }
            if let Some((actor, key, request)) = &run.idempotency {
                sqlx::query("INSERT INTO idempotency_keys (actor, key, request, run_id, created_at) VALUES ($1, $2, $3, $4, $5)")
                    .bind(actor)
                    .bind(key)
                    .bind(request)
                    .bind(&run.id)
                    .bind(&at)
                    .execute(&mut *tx)
                    .await?;
            }
            for target in &run.targets {
                if let Some(held) = lease(tx, target, &run.id, &at).await? {
                    return Err(held);
                }
            }
            let data = serde_json::json!({
                "runbook": run.runbook, "digest": run.digest, "kind": run.kind, "trigger": run.trigger,
                "params": run.params, "dry_run": run.dry_run, "targets": run.targets,
            });
            self.append(
                tx,
                &run.requested_by,
                "run.started",
                Some(&run.id),
                None,
                data,
            )
            .await?;
            Ok(())
        })
        .await?;
        self.hold_new(&run.id, started);
        Ok(())
    }

    /// Ends a run: status, error, finish time; releases its leases.
    pub async fn finish_run(
        &self,
        run_id: &str,
        status: RunStatus,
        error: Option<&str>,
        actor: &str,
    ) -> Result<(), StoreError> {
        self.write(async |tx| {
            self.fence(tx, run_id).await?;
            sqlx::query("UPDATE runs SET status = $1, error = $2, finished_at = $3, claim_expires_ms = NULL WHERE id = $4")
                .bind(status.as_str())
                .bind(error)
                .bind(now())
                .bind(run_id)
                .execute(&mut *tx)
                .await?;
            sqlx::query("DELETE FROM target_leases WHERE run_id = $1")
                .bind(run_id)
                .execute(&mut *tx)
                .await?;
            self.append(
                tx,
                actor,
                "run.finished",
                Some(run_id),
                None,
                serde_json::json!({ "status": status, "error": error }),
            )
            .await?;
            Ok(())
        })
        .await?;
        self.forget_claim(run_id);
        Ok(())
    }

    /// Records that the run's main steps are done (the end of recovery).
    pub async fn mark_recovered(&self, run_id: &str) -> Result<(), StoreError> {
        self.write(async |tx| {
            self.fence(tx, run_id).await?;
            sqlx::query("UPDATE runs SET recovered_at = $1 WHERE id = $2 AND recovered_at IS NULL")
                .bind(now())
                .bind(run_id)
                .execute(&mut *tx)
                .await?;
            Ok(())
        })
        .await
    }

    /// Skips an item of a block and its steps (`ids`: the item's row first),
    /// each with its audit event, in one transaction.
    pub async fn skip_item(
        &self,
        run_id: &str,
        ids: &[String],
        reason: &str,
    ) -> Result<(), StoreError> {
        self.write(async |tx| {
            self.fence(tx, run_id).await?;
            self.skip_rows(tx, run_id, ids, reason, &now()).await
        })
        .await
    }

    /// Inside a write: marks steps `ids` skipped, each with its audit event.
    async fn skip_rows(
        &self,
        tx: &mut sqlx::AnyConnection,
        run_id: &str,
        ids: &[String],
        reason: &str,
        at: &str,
    ) -> Result<(), StoreError> {
        for id in ids {
            sqlx::query("UPDATE steps SET status = 'skipped', error = $1, finished_at = $2 WHERE run_id = $3 AND step_id = $4")
                .bind(reason)
                .bind(at)
                .bind(run_id)
                .bind(id)
                .execute(&mut *tx)
                .await?;
            let data = serde_json::json!({ "status": "skipped", "error": reason });
            self.append(tx, "drover", "step.status", Some(run_id), Some(id), data)
                .await?;
        }
        Ok(())
    }

    /// Sets a step's status (and output or error), with its audit event.
    pub async fn set_step(
        &self,
        run_id: &str,
        step_id: &str,
        status: StepStatus,
        output: Option<&Value>,
        error: Option<&str>,
    ) -> Result<(), StoreError> {
        self.write_unguarded(async |tx| {
            self.fence(tx, run_id).await?;
            let at = now();
            let started = status == StepStatus::Running;
            let data = serde_json::json!({ "status": status.as_str(), "error": error });
            self.execute_and_append(
                tx,
                and_event!(
                    "UPDATE steps SET status = $1, output = COALESCE($2, output), error = $3,
                         started_at = CASE WHEN $4 THEN $5 ELSE started_at END,
                         finished_at = CASE WHEN $6 THEN NULL ELSE $7 END
                     WHERE run_id = $8 AND step_id = $9",
                    10,
                    11,
                    12,
                    13,
                    14,
                    15,
                    16,
                    17,
                    18
                ),
                |q| {
                    q.bind(status.as_str())
                        .bind(output.map(Value::to_string))
                        .bind(error)
                        .bind(started)
                        .bind(&at)
                        .bind(started)
                        .bind(&at)
                        .bind(run_id)
                        .bind(step_id)
                },
                ("drover", "step.status", Some(run_id), Some(step_id), data),
            )
            .await?;
            Ok(())
        })
        .await
    }

    /// Expands a block in one transaction: the block becomes `running` with
    /// its items as output, the items' rows are added, and each item leases
    /// its targets. An item whose target another run holds fails here, with
    /// the holder named; the others go on. Returns the failed items' row ids
    /// with the reason.
    pub async fn expand_block(
        &self,
        run_id: &str,
        block_id: &str,
        expansion: &Expansion,
    ) -> Result<Vec<(String, String)>, StoreError> {
        self.write(async |tx| {
            self.fence(tx, run_id).await?;
            let at = now();
            sqlx::query("UPDATE steps SET status = 'running', output = $1, started_at = $2, finished_at = NULL WHERE run_id = $3 AND step_id = $4")
                .bind(expansion.output.to_string())
                .bind(&at)
                .bind(run_id)
                .bind(block_id)
                .execute(&mut *tx)
                .await?;
            // Bounded statements: SQLite and PostgreSQL cap bound values.
            for chunk in expansion.rows.chunks(500) {
                let mut sql = "INSERT INTO steps (run_id, step_id, position, phase, status) VALUES ".to_string();
                for i in 0..chunk.len() {
                    let n = 2 + 2 * i;
                    let sep = if i == 0 { "" } else { ", " };
                    sql.push_str(&format!("{sep}($1, ${n}, ${}, 'main', 'pending')", n + 1));
                }
                let mut insert = sqlx::query(sqlx::AssertSqlSafe(sql.as_str())).bind(run_id);
                for (id, position) in chunk {
                    insert = insert.bind(id).bind(*position);
                }
                insert.execute(&mut *tx).await?;
            }
            let mut refused = expansion.refused.clone();
            for (item, targets) in &expansion.leases {
                if refused.iter().any(|(r, _)| r == item) {
                    continue;
                }
                for target in targets {
                    if let Some(StoreError::LeaseHeld { run_id: holder, runbook, .. }) =
                        lease(tx, target, run_id, &at).await?
                    {
                        refused.push((item.clone(), format!("{target} is held by run {holder} ({runbook})")));
                        break;
                    }
                }
            }
            for (item, why) in &refused {
                sqlx::query("UPDATE steps SET status = 'failed', error = $1, finished_at = $2 WHERE run_id = $3 AND step_id = $4")
                    .bind(why)
                    .bind(&at)
                    .bind(run_id)
                    .bind(item)
                    .execute(&mut *tx)
                    .await?;
                // Its steps will not run: skipped, not left pending.
                let inner = format!("{item}.");
                let steps: Vec<String> = expansion
                    .rows
                    .iter()
                    .filter(|(id, _)| id.starts_with(&inner))
                    .map(|(id, _)| id.clone())
                    .collect();
                self.skip_rows(tx, run_id, &steps, REFUSED_ITEM, &at).await?;
            }
            let data = serde_json::json!({
                "items": expansion.leases.len(),
                "refused": refused.iter().map(|(i, why)| serde_json::json!({"item": i, "error": why})).collect::<Vec<_>>(),
            });
            self.append(tx, "drover", "block.expanded", Some(run_id), Some(block_id), data)
                .await?;
            Ok(refused)
        })
        .await
    }

    /// Who asked to cancel run `run_id`, if anyone has (one column: this is
    /// read at every step boundary and every second of a wait).
    pub async fn cancel_requested_by(&self, run_id: &str) -> Result<Option<String>, StoreError> {
        let row = sqlx::query("SELECT cancel_requested_by FROM runs WHERE id = $1")
            .bind(run_id)
            .fetch_optional(&mut *self.db.read().await)
            .await?;
        Ok(row.and_then(|r| r.get(0)))
    }

    /// The run an `Idempotency-Key` of `actor` started, with the request digest it came with.
    pub async fn idempotent_run(
        &self,
        actor: &str,
        key: &str,
    ) -> Result<Option<(String, String)>, StoreError> {
        let row = sqlx::query(
            "SELECT request, run_id FROM idempotency_keys WHERE actor = $1 AND key = $2",
        )
        .bind(actor)
        .bind(key)
        .fetch_optional(&mut *self.db.read().await)
        .await?;
        Ok(row.map(|r| (r.get(0), r.get(1))))
    }

    /// Asks a running run to stop; `false` when it is not running.
    pub async fn request_cancel(&self, run_id: &str, actor: &str) -> Result<bool, StoreError> {
        self.write(async |tx| {
            let changed = sqlx::query("UPDATE runs SET cancel_requested_by = COALESCE(cancel_requested_by, $1) WHERE id = $2 AND status = 'running'")
                .bind(actor)
                .bind(run_id)
                .execute(&mut *tx)
                .await?
                .rows_affected();
            if changed > 0 {
                self.append(
                    tx,
                    actor,
                    "run.cancel_requested",
                    Some(run_id),
                    None,
                    serde_json::json!({}),
                )
                .await?;
            }
            Ok(changed > 0)
        })
        .await
    }

    /// One run.
    pub async fn run(&self, id: &str) -> Result<Option<RunRecord>, StoreError> {
        let row = sqlx::query(concat!(run_columns!(), " WHERE id = $1"))
            .bind(id)
            .fetch_optional(&mut *self.db.read().await)
            .await?;
        row.map(|r| run_record(&r)).transpose()
    }

    /// The newest runs first.
    pub async fn runs(&self, limit: u32) -> Result<Vec<RunRecord>, StoreError> {
        let rows = sqlx::query(concat!(
            run_columns!(),
            " ORDER BY created_at DESC, id DESC LIMIT $1"
        ))
        .bind(i64::from(limit))
        .fetch_all(&mut *self.db.read().await)
        .await?;
        rows.iter().map(run_record).collect()
    }

    /// Runs created at or after `since` (RFC 3339, as stored), oldest
    /// first, of one runbook or of all.
    pub async fn runs_since(
        &self,
        since: &str,
        runbook: Option<&str>,
    ) -> Result<Vec<RunRecord>, StoreError> {
        let rows = sqlx::query(concat!(
            run_columns!(),
            " WHERE created_at >= $1 AND ($2 IS NULL OR runbook = $2) ORDER BY created_at, id"
        ))
        .bind(since)
        .bind(runbook)
        .fetch_all(&mut *self.db.read().await)
        .await?;
        rows.iter().map(run_record).collect()
    }

    /// Runs that were running when their process stopped.
    pub async fn interrupted_runs(&self) -> Result<Vec<RunRecord>, StoreError> {
        let rows = sqlx::query(concat!(
            run_columns!(),
            " WHERE status = 'running' ORDER BY created_at"
        ))
        .fetch_all(&mut *self.db.read().await)
        .await?;
        rows.iter().map(run_record).collect()
    }

    /// A run's steps in run order.
    pub async fn steps(&self, run_id: &str) -> Result<Vec<StepRecord>, StoreError> {
        let rows = sqlx::query("SELECT step_id, position, phase, status, output, error, started_at, finished_at FROM steps WHERE run_id = $1 ORDER BY position")
            .bind(run_id)
            .fetch_all(&mut *self.db.read().await)
            .await?;
        rows.iter()
            .map(|r| {
                let status = word(r, 3, StepStatus::parse, "step status", || {
                    format!("in run {run_id}")
                })?;
                let phase = word(r, 2, Phase::parse, "step phase", || {
                    format!("in run {run_id}")
                })?;
                Ok(StepRecord {
                    step_id: r.get(0),
                    position: r.get(1),
                    phase,
                    status,
                    output: json_column(r, 4, || format!("a step output in run {run_id}"))?,
                    error: r.get(5),
                    started_at: r.get(6),
                    finished_at: r.get(7),
                })
            })
            .collect()
    }
}

/// Leases `target` to `run_id` unless another run holds it; that holder as a
/// `LeaseHeld` error. A lease the run holds already is kept.
async fn lease(
    tx: &mut sqlx::AnyConnection,
    target: &str,
    run_id: &str,
    at: &str,
) -> Result<Option<StoreError>, StoreError> {
    let leased = sqlx::query("INSERT INTO target_leases (target, run_id, acquired_at) VALUES ($1, $2, $3) ON CONFLICT (target) DO NOTHING")
        .bind(target)
        .bind(run_id)
        .bind(at)
        .execute(&mut *tx)
        .await?
        .rows_affected();
    if leased == 1 {
        return Ok(None);
    }
    let holder = sqlx::query("SELECT l.run_id, r.runbook, r.created_at FROM target_leases l JOIN runs r ON r.id = l.run_id WHERE l.target = $1")
        .bind(target)
        .fetch_optional(&mut *tx)
        .await?;
    Ok(holder
        .filter(|row| row.get::<String, _>(0) != run_id)
        .map(|row| StoreError::LeaseHeld {
            target: target.to_string(),
            run_id: row.get(0),
            runbook: row.get(1),
            since: row.get(2),
        }))
}

fn run_record(r: &AnyRow) -> Result<RunRecord, StoreError> {
    let id: String = r.get(0);
    let params: String = r.get(8);
    // Never run with parameters other than the ones stored: unreadable is an error.
    let params = serde_json::from_str(&params).map_err(|e| {
        StoreError::Corrupt(format!("the parameters of run {id} cannot be read: {e}"))
    })?;
    let status = word(r, 10, RunStatus::parse, "status", || format!("of run {id}"))?;
    let kind = word(r, 5, Kind::parse, "kind", || format!("of run {id}"))?;
    let trigger = word(r, 6, Trigger::parse, "trigger", || format!("of run {id}"))?;
    Ok(RunRecord {
        id,
        runbook: r.get(1),
        runbook_digest: r.get(2),
        runbook_source: r.get(3),
        runbook_path: r.get(4),
        kind,
        trigger,
        requested_by: r.get(7),
        params,
        dry_run: r.get::<i64, _>(9) != 0,
        status,
        error: r.get(11),
        created_at: r.get(12),
        finished_at: r.get(13),
        recovered_at: r.get(14),
        cancel_requested_by: r.get(15),
        owner: r.get(16),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_step_without_output_shows_an_empty_object() {
        let mut step = StepRecord {
            step_id: "check".into(),
            phase: Phase::Main,
            position: 0,
            status: StepStatus::Pending,
            output: None,
            error: None,
            started_at: None,
            finished_at: None,
        };
        assert_eq!(
            serde_json::to_value(&step).unwrap()["output"],
            serde_json::json!({})
        );
        step.output = Some(serde_json::json!({"status": "available"}));
        assert_eq!(
            serde_json::to_value(&step).unwrap()["output"]["status"],
            "available"
        );
    }
}
