//! Copying a whole audit store into an empty one (SQLite to PostgreSQL when
//! one daemon grows into several): every table, row for row, in one
//! transaction, so the hash chain verifies in the copy as in the original.

use sqlx::AnyConnection;
use sqlx::Row;

use super::{Backend, Store, StoreError};

#[derive(Clone, Copy)]
enum Col {
    Text,
    Int,
}

use Col::{Int, Text};

/// Every table, parents first, with its columns.
const TABLES: &[(&str, &[(&str, Col)])] = &[
    (
        "runs",
        &[
            ("id", Text),
            ("runbook", Text),
            ("runbook_digest", Text),
            ("runbook_source", Text),
            ("runbook_path", Text),
            ("kind", Text),
            ("trigger", Text),
            ("requested_by", Text),
            ("params", Text),
            ("dry_run", Int),
            ("status", Text),
            ("error", Text),
            ("created_at", Text),
            ("finished_at", Text),
            ("recovered_at", Text),
            ("cancel_requested_by", Text),
            ("owner", Text),
            ("owner_host", Text),
            ("owner_pid", Int),
            ("epoch", Int),
            ("claim_expires_ms", Int),
        ],
    ),
    (
        "steps",
        &[
            ("run_id", Text),
            ("step_id", Text),
            ("position", Int),
            ("phase", Text),
            ("status", Text),
            ("output", Text),
            ("error", Text),
            ("started_at", Text),
            ("finished_at", Text),
        ],
    ),
    (
        "step_attempts",
        &[
            ("id", Int),
            ("run_id", Text),
            ("step_id", Text),
            ("attempt", Int),
            ("kind", Text),
            ("request", Text),
            ("request_body", Text),
            ("pre_image", Text),
            ("http_status", Int),
            ("error_code", Text),
            ("error_message", Text),
            ("outcome", Text),
            ("started_at", Text),
            ("duration_ms", Int),
            ("job_id", Text),
            ("request_id", Text),
        ],
    ),
    (
        "approvals",
        &[
            ("run_id", Text),
            ("step_id", Text),
            ("approver", Text),
            ("decision", Text),
            ("comment", Text),
            ("at", Text),
        ],
    ),
    (
        "target_leases",
        &[("target", Text), ("run_id", Text), ("acquired_at", Text)],
    ),
    (
        "audit_events",
        &[
            ("seq", Int),
            ("at", Text),
            ("actor", Text),
            ("kind", Text),
            ("run_id", Text),
            ("step_id", Text),
            ("data", Text),
            ("prev_hash", Text),
            ("hash", Text),
        ],
    ),
    (
        "audit_checkpoints",
        &[
            ("seq", Int),
            ("head", Text),
            ("at", Text),
            ("public_key", Text),
            ("signature", Text),
        ],
    ),
    (
        "schedule_fires",
        &[
            ("runbook", Text),
            ("schedule", Text),
            ("fire_at", Text),
            ("outcome", Text),
            ("run_id", Text),
            ("detail", Text),
            ("recorded_at", Text),
        ],
    ),
    (
        "idempotency_keys",
        &[
            ("actor", Text),
            ("key", Text),
            ("request", Text),
            ("run_id", Text),
            ("created_at", Text),
        ],
    ),
];

impl Store {
    /// Copies every row of this store into `target`, which must be empty;
    /// the rows copied per table.
    pub async fn copy_into(&self, target: &Store) -> Result<Vec<(&'static str, u64)>, StoreError> {
        if std::sync::Arc::ptr_eq(&self.db, &target.db) {
            return Err(StoreError::Corrupt(
                "a store cannot be copied into itself".into(),
            ));
        }
        let mut source = self.db.read().await;
        target
            .write(async |tx| {
                for (table, _) in TABLES {
                    let count: i64 =
                        sqlx::query(sqlx::AssertSqlSafe(format!("SELECT COUNT(*) FROM {table}")))
                            .fetch_one(&mut *tx)
                            .await?
                            .get(0);
                    if count > 0 {
                        return Err(StoreError::NotEmpty {
                            table: table.to_string(),
                            rows: count,
                        });
                    }
                }
                let mut counts = Vec::new();
                for (table, cols) in TABLES {
                    let names: Vec<&str> = cols.iter().map(|(n, _)| *n).collect();
                    let select = format!("SELECT {} FROM {table}", names.join(", "));
                    let rows = sqlx::query(sqlx::AssertSqlSafe(select))
                        .fetch_all(&mut *source)
                        .await?;
                    let marks: Vec<String> = (1..=cols.len()).map(|i| format!("${i}")).collect();
                    let overriding =
                        if *table == "step_attempts" && target.backend == Backend::Postgres {
                            " OVERRIDING SYSTEM VALUE"
                        } else {
                            ""
                        };
                    let insert = format!(
                        "INSERT INTO {table} ({}){overriding} VALUES ({})",
                        names.join(", "),
                        marks.join(", ")
                    );
                    for row in &rows {
                        let mut q = sqlx::query(sqlx::AssertSqlSafe(insert.clone()));
                        for (i, (_, col)) in cols.iter().enumerate() {
                            q = match col {
                                Text => q.bind(row.get::<Option<String>, _>(i)),
                                Int => q.bind(row.get::<Option<i64>, _>(i)),
                            };
                        }
                        q.execute(&mut *tx).await?;
                    }
                    counts.push((*table, rows.len() as u64));
                }
                if target.backend == Backend::Postgres {
                    restart_identity(tx).await?;
                }
                Ok(counts)
            })
            .await
    }
}

/// After rows with their own ids: new attempts continue after the highest.
async fn restart_identity(tx: &mut AnyConnection) -> Result<(), StoreError> {
    sqlx::query("SELECT setval(pg_get_serial_sequence('step_attempts', 'id'), COALESCE(MAX(id), 0) + 1, false) FROM step_attempts")
        .execute(&mut *tx)
        .await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::tests::new_run;
    use crate::store::{AttemptKind, NewAttempt, RunStatus, StepStatus, scratch_postgres};

    async fn filled(url: &str) -> Store {
        let store = Store::open(url).await.unwrap();
        for id in ["r1", "r2"] {
            store.create_run(&new_run(id, &[])).await.unwrap();
            store
                .set_step(id, "precheck", StepStatus::Running, None, None)
                .await
                .unwrap();
            let intent = NewAttempt {
                run_id: id.into(),
                step_id: "precheck".into(),
                attempt: 1,
                kind: AttemptKind::Intent,
                request: "POST /x".into(),
                ..Default::default()
            };
            store.record_attempt(&intent, None).await.unwrap();
        }
        store
            .finish_run("r1", RunStatus::Succeeded, None, "alice")
            .await
            .unwrap();
        store
    }

    #[tokio::test]
    async fn a_sqlite_trail_copied_into_an_empty_store_verifies_and_goes_on() {
        let dir = tempfile::tempdir().unwrap();
        let source = filled(&format!("sqlite://{}", dir.path().join("old.db").display())).await;
        let mut targets = vec![format!("sqlite://{}", dir.path().join("new.db").display())];
        targets.extend(scratch_postgres().await);
        for url in targets {
            let target = Store::open(&url).await.unwrap();
            let counts = source.copy_into(&target).await.unwrap();
            assert!(counts.contains(&("step_attempts", 2)), "{counts:?}");
            let events = source.events(None).await.unwrap();
            assert_eq!(target.events(None).await.unwrap(), events);
            assert_eq!(target.verify().await.unwrap(), Ok(events.len() as u64));
            assert_eq!(target.attempts("r2").await.unwrap().len(), 1);
            // The copy goes on: a new run and attempt after the copied ones.
            target.create_run(&new_run("r3", &[])).await.unwrap();
            let intent = NewAttempt {
                run_id: "r3".into(),
                step_id: "precheck".into(),
                attempt: 1,
                kind: AttemptKind::Intent,
                request: "POST /x".into(),
                ..Default::default()
            };
            let id = target.record_attempt(&intent, None).await.unwrap();
            assert_eq!(id, 3);
            assert!(target.verify().await.unwrap().is_ok());
            let again = source.copy_into(&target).await.unwrap_err().to_string();
            assert!(again.contains("not empty"), "{again}");
        }
    }
}
