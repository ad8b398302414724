//! Schedule fires: what the scheduler did with each cron fire time.

use chrono::{DateTime, Utc};
use sqlx::Row;

use super::{Store, StoreError, now};

/// One fire of a schedule: the key that makes it happen once across the
/// daemons sharing a database.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FireKey {
    pub runbook: String,
    pub schedule: String,
    pub fire_at: DateTime<Utc>,
}

impl FireKey {
    /// The fire time as stored (whole seconds, UTC).
    pub(crate) fn at(&self) -> String {
        self.fire_at
            .to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
    }
}

/// In the transaction that creates run `run_id` for `fire`: the fire is
/// recorded as started by it, or, when a process sharing the database has the
/// fire already, the whole start is refused.
pub(crate) async fn start_fire(
    tx: &mut sqlx::AnyConnection,
    fire: &FireKey,
    run_id: &str,
    node: &str,
) -> Result<(), StoreError> {
    let inserted = sqlx::query("INSERT INTO schedule_fires (runbook, schedule, fire_at, outcome, run_id, detail, recorded_at) VALUES ($1, $2, $3, 'started', $4, $5, $6) ON CONFLICT (runbook, schedule, fire_at) DO NOTHING")
        .bind(&fire.runbook)
        .bind(&fire.schedule)
        .bind(fire.at())
        .bind(run_id)
        .bind(format!("by {node}"))
        .bind(now())
        .execute(&mut *tx)
        .await?
        .rows_affected();
    if inserted == 1 {
        Ok(())
    } else {
        Err(StoreError::FireTaken {
            schedule: fire.schedule.clone(),
            fire_at: fire.at(),
        })
    }
}

impl Store {
    /// Takes fire `fire_at` of a schedule for this process: `false` when a
    /// process sharing the database took it first (its key is unique).
    pub async fn take_fire(
        &self,
        runbook: &str,
        schedule: &str,
        fire_at: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        let at = fire_at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
        let taken = self.write(async |tx| {
            Ok(sqlx::query("INSERT INTO schedule_fires (runbook, schedule, fire_at, outcome, detail, recorded_at) VALUES ($1, $2, $3, 'taken', $4, $5) ON CONFLICT (runbook, schedule, fire_at) DO NOTHING")
                .bind(runbook)
                .bind(schedule)
                .bind(&at)
                .bind(format!("by {}", self.node().name))
                .bind(now())
                .execute(tx)
                .await?
                .rows_affected())
        }).await?;
        Ok(taken == 1)
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
        self.write(async |tx| {
            let at = fire_at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
            sqlx::query("INSERT INTO schedule_fires (runbook, schedule, fire_at, outcome, run_id, detail, recorded_at) VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (runbook, schedule, fire_at) DO UPDATE SET outcome = excluded.outcome, run_id = excluded.run_id, detail = excluded.detail, recorded_at = excluded.recorded_at")
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
            self.append(tx, "scheduler", "schedule.fire", run_id, None, data).await?;
            Ok(())
        })
        .await
    }

    /// The latest fire time the scheduler handled for a schedule.
    pub async fn last_fire(
        &self,
        runbook: &str,
        schedule: &str,
    ) -> Result<Option<DateTime<Utc>>, StoreError> {
        let row = sqlx::query(
            "SELECT MAX(fire_at) FROM schedule_fires WHERE runbook = $1 AND schedule = $2",
        )
        .bind(runbook)
        .bind(schedule)
        .fetch_one(&mut *self.db.read().await)
        .await?;
        let at: Option<String> = row.get(0);
        Ok(at
            .and_then(|t| DateTime::parse_from_rfc3339(&t).ok())
            .map(|t| t.with_timezone(&Utc)))
    }

    /// The run the latest fire of a schedule that started one started.
    pub async fn last_started_run(
        &self,
        runbook: &str,
        schedule: &str,
    ) -> Result<Option<String>, StoreError> {
        let row = sqlx::query("SELECT run_id FROM schedule_fires WHERE runbook = $1 AND schedule = $2 AND outcome = 'started' ORDER BY fire_at DESC LIMIT 1")
            .bind(runbook)
            .bind(schedule)
            .fetch_optional(&mut *self.db.read().await)
            .await?;
        Ok(row.and_then(|r| r.get(0)))
    }

    /// Fire records of a schedule, oldest first: (fire time, outcome, run id).
    pub async fn fires(
        &self,
        runbook: &str,
        schedule: &str,
    ) -> Result<Vec<(String, String, Option<String>)>, StoreError> {
        let rows = sqlx::query("SELECT fire_at, outcome, run_id FROM schedule_fires WHERE runbook = $1 AND schedule = $2 ORDER BY fire_at")
            .bind(runbook)
            .bind(schedule)
            .fetch_all(&mut *self.db.read().await)
            .await?;
        Ok(rows
            .iter()
            .map(|r| (r.get(0), r.get(1), r.get(2)))
            .collect())
    }
}
