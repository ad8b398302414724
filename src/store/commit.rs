//! Group commit: writers that arrive while one transaction is being
//! written or committed share the next one, so that N concurrent writes cost
//! one fsync (SQLite) or one WAL flush (PostgreSQL) instead of N, and each is
//! still reported only after the commit that holds it ended.
//!
//! A process has one writer connection behind a fair (first come, first
//! served) async mutex, and one reader connection that sees committed rows
//! only. A writer takes the mutex, opens a transaction (a batch) if none is
//! open, and does its work (inside a savepoint unless it is the batch's
//! first member, so that its failure undoes its own rows only). If the
//! batch is full it commits it for all its members; if another writer is
//! waiting for the mutex it lets the mutex go and that writer joins the
//! batch (the question is asked again after its work); if it is the last in
//! line it queues once more, behind whoever arrived meanwhile (they join
//! and, seeing it in line, leave the commit to it), and then commits. Every member, failed or not, returns once the batch
//! ended, so that what it saw inside (another member's row, say) is durable
//! or gone before it acts on it. A write costs one hand-over of the mutex,
//! and a batch holds everyone who queued while it was written.
//!
//! Cancellation leaves the batch whole: a member dropped inside its work is
//! undone by the next holder of the mutex, a commit whose future was dropped
//! is reported as of unknown outcome, a member dropped before the commit
//! leaves a task that commits the batch for the others, and so does a
//! writer dropped while it waited in line (one that was counted on to
//! commit).

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use sqlx::AnyConnection;
use tokio::sync::{Mutex, MutexGuard, watch};

use super::{Backend, StoreError};

/// The advisory lock key of the store's writers on PostgreSQL ("drover" in ASCII).
pub(super) const WRITER_LOCK: i64 = 0x6472_6f76_6572;

/// A batch this full is committed even while writers wait: the first
/// member's wait stays bounded (a few hundred writes) under any load.
const MAX_MEMBERS: usize = 256;

/// The store's connections.
#[derive(Debug)]
pub(crate) struct Db {
    writer: Mutex<Writer>,
    /// Writers waiting in line for the writer mutex.
    waiting: AtomicUsize,
    /// What the open batch's writes learnt (see [`Db::head`], [`Db::fenced`]).
    memo: Arc<std::sync::Mutex<Memo>>,
    reader: Mutex<AnyConnection>,
}

/// The last event of the chain: its sequence number and hash.
pub(crate) type Head = (i64, String);

/// What the writes of the open batch learnt that later ones need not read
/// again. The batch holds the writer lock of every process, so only its own
/// writes change it; whatever undoes a write forgets all of it.
#[derive(Debug, Default)]
struct Memo {
    head: Option<Head>,
    /// Runs whose claim row showed this process as owner, with the epoch.
    fenced: std::collections::HashSet<(String, i64)>,
    /// The work under way sent a statement that changes rows.
    changed: bool,
}

#[derive(Debug)]
struct Writer {
    conn: AnyConnection,
    memo: Arc<std::sync::Mutex<Memo>>,
    backend: Backend,
    batch: Option<Batch>,
    batches: u64,
}

/// The open write transaction.
#[derive(Debug)]
struct Batch {
    id: u64,
    members: usize,
    /// What to undo first: work that started and did not finish.
    unfinished: Option<Undo>,
    /// The last member's savepoint is still set (released by the next
    /// member's, in the same round trip, or by the commit).
    kept_savepoint: bool,
    /// Why the batch can only be rolled back.
    broken: Option<String>,
    /// A commit was sent; if this is still set, its sender was dropped.
    committing: bool,
    ended: watch::Sender<Ended>,
}

/// How a batch ended (`None` while it is open).
type Ended = Option<Result<(), String>>;

#[derive(Debug, Clone, Copy, PartialEq)]
enum Undo {
    /// The batch's first member: nothing else is in the transaction.
    Batch,
    Savepoint,
    /// Interrupted while its savepoint was being set: which savepoint
    /// exists is unknown, so the batch can only be rolled back.
    Unknown,
    /// A write without a savepoint ([`Db::write_unguarded`]): undone
    /// with the batch if it fails once it changed rows, else nothing to undo.
    Unguarded,
}

async fn run(conn: &mut AnyConnection, sql: &'static str) -> Result<(), sqlx::Error> {
    sqlx::raw_sql(sql).execute(conn).await.map(|_| ())
}

impl Db {
    pub fn new(writer: AnyConnection, reader: AnyConnection, backend: Backend) -> Arc<Db> {
        let memo = Arc::new(std::sync::Mutex::new(Memo::default()));
        Arc::new(Db {
            memo: memo.clone(),
            writer: Mutex::new(Writer {
                memo,
                conn: writer,
                backend,
                batch: None,
                batches: 0,
            }),
            waiting: AtomicUsize::new(0),
            reader: Mutex::new(reader),
        })
    }

    /// Inside a write: the chain head the open batch's earlier writes left
    /// (`None`: read it). The batch holds the writer lock of every process,
    /// so nobody else appends meanwhile; whatever undoes a write forgets it.
    pub fn head(&self) -> Option<Head> {
        self.memo().head.clone()
    }

    /// Inside a write: the head after an append.
    pub fn set_head(&self, head: Head) {
        self.memo().head = Some(head);
    }

    /// Inside a write: forget what the batch learnt (the write may rewrite
    /// anything).
    pub fn forget(&self) {
        *self.memo() = Memo::default();
    }

    /// Inside a write: an earlier write of the open batch saw run `run_id`
    /// claimed by this process at `epoch`.
    pub fn fenced(&self, run_id: &str, epoch: i64) -> bool {
        self.memo().fenced.contains(&(run_id.to_string(), epoch))
    }

    /// Inside a write: run `run_id`'s claim row shows this process at `epoch`
    /// (`None`: the write changes it, read it again).
    pub fn set_fenced(&self, run_id: &str, epoch: Option<i64>) {
        let mut memo = self.memo();
        memo.fenced.retain(|(r, _)| r != run_id);
        if let Some(epoch) = epoch {
            memo.fenced.insert((run_id.to_string(), epoch));
        }
    }

    /// Inside a write: the work is about to send a statement that changes
    /// rows (what an unguarded write's failure then has to undo).
    pub fn changing(&self) {
        self.memo().changed = true;
    }

    fn memo(&self) -> std::sync::MutexGuard<'_, Memo> {
        self.memo.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Batches opened so far.
    pub async fn transactions(&self) -> u64 {
        self.writer.lock().await.batches
    }

    /// The reader connection: committed rows only.
    pub async fn read(&self) -> MutexGuard<'_, AnyConnection> {
        self.reader.lock().await
    }

    /// `work` in a shared write transaction, serialised with every other
    /// writer of every process on the database; its value once that
    /// transaction committed, or its error once it ended.
    pub async fn write<T>(
        self: &Arc<Self>,
        work: impl AsyncFnOnce(&mut AnyConnection) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        self.write_with(true, work).await
    }

    /// As [`Db::write`], without the savepoint that lets a member fail
    /// alone: one round trip less per write, for a work whose statements
    /// that change rows are all sent after it called [`Db::changing`]
    /// (reads and checks come first). If it fails before that point it
    /// fails alone, as it changed nothing; after it, its whole batch is
    /// rolled back and every member told so (a statement that fails on a
    /// well-formed step row is a broken database, not a routine error).
    pub async fn write_unguarded<T>(
        self: &Arc<Self>,
        work: impl AsyncFnOnce(&mut AnyConnection) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        self.write_with(false, work).await
    }

    async fn write_with<T>(
        self: &Arc<Self>,
        guarded: bool,
        work: impl AsyncFnOnce(&mut AnyConnection) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        let (mut writer, mut in_line) = self.queue().await;
        writer.settle().await;
        // A batch that can only be rolled back takes nobody else down with it.
        if let Some(id) = writer
            .batch
            .as_ref()
            .filter(|b| b.broken.is_some())
            .map(|b| b.id)
        {
            writer.finish(id).await;
        }
        if writer.batch.is_none() {
            writer.open().await?;
        }
        let (id, ended) = writer.join()?;
        in_line.stage = Stage::Joined;
        let mut member = Member {
            db: self.clone(),
            id,
            ended: false,
        };
        let result = match writer.start_work(guarded).await {
            Ok(undo) => {
                let result = work(&mut writer.conn).await;
                writer.close_work(undo, result).await
            }
            Err(e) => Err(e),
        };
        if writer.full() {
            writer.finish(id).await;
            drop(writer);
        } else if self.waiting.load(Ordering::SeqCst) > 0 {
            drop(writer);
        } else {
            // The last in line commits for all, after queueing once more:
            // whoever arrives meanwhile joins the batch first (and, seeing
            // this one in line, leaves the commit to it).
            drop(writer);
            let (mut writer, mut in_line) = self.queue().await;
            in_line.stage = Stage::Joined;
            writer.finish(id).await;
        }
        let outcome = member.outcome(ended).await;
        let value = result?;
        outcome.map(|()| value).map_err(StoreError::Commit)
    }
}

impl Db {
    /// The writer mutex, counted in `waiting` while queued for it.
    async fn queue(self: &Arc<Self>) -> (MutexGuard<'_, Writer>, InLine) {
        let mut in_line = InLine {
            db: self.clone(),
            stage: Stage::Queued,
        };
        self.waiting.fetch_add(1, Ordering::SeqCst);
        let writer = self.writer.lock().await;
        self.waiting.fetch_sub(1, Ordering::SeqCst);
        in_line.stage = Stage::Holding;
        (writer, in_line)
    }
}

/// A writer from the moment it queues for the mutex until it joined a
/// batch. Dropped meanwhile, it may have been the one the holder before it
/// counted on to commit: it leaves a task that commits the open batch unless
/// another writer is in line.
struct InLine {
    db: Arc<Db>,
    stage: Stage,
}

#[derive(PartialEq)]
enum Stage {
    /// Waiting for the mutex (counted in `waiting`).
    Queued,
    Holding,
    /// A member now: [`Member`] answers for the batch.
    Joined,
}

impl Drop for InLine {
    fn drop(&mut self) {
        match self.stage {
            Stage::Joined => return,
            Stage::Queued => {
                self.db.waiting.fetch_sub(1, Ordering::SeqCst);
            }
            Stage::Holding => {}
        }
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            let db = self.db.clone();
            runtime.spawn(async move {
                let mut writer = db.writer.lock().await;
                if db.waiting.load(Ordering::SeqCst) == 0
                    && let Some(id) = writer.batch.as_ref().map(|b| b.id)
                {
                    writer.finish(id).await;
                }
            });
        }
    }
}

/// A member of a batch until it saw the batch end; dropped before, it
/// leaves a task that ends the batch for the others.
struct Member {
    db: Arc<Db>,
    id: u64,
    ended: bool,
}

impl Member {
    async fn outcome(&mut self, mut ended: watch::Receiver<Ended>) -> Result<(), String> {
        let outcome = match ended.wait_for(Option::is_some).await {
            Ok(outcome) => outcome.clone().unwrap_or(Ok(())),
            Err(_) => Err("the transaction ended without a word on its outcome".into()),
        };
        self.ended = true;
        outcome
    }
}

impl Drop for Member {
    fn drop(&mut self) {
        if self.ended {
            return;
        }
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            let (db, id) = (self.db.clone(), self.id);
            runtime.spawn(async move { db.writer.lock().await.finish(id).await });
        }
    }
}

impl Writer {
    /// Opens a batch. SQLite: `BEGIN IMMEDIATE`, its one writer.
    /// PostgreSQL: a transaction-scoped advisory lock, so that writers of
    /// every daemon sharing the database serialise the same way (the audit
    /// chain is appended to in every write).
    async fn open(&mut self) -> Result<(), StoreError> {
        self.forget_memo();
        self.batches += 1;
        // Marked before it is sent: a begin interrupted half-way is rolled back.
        self.batch = Some(Batch {
            id: self.batches,
            members: 0,
            unfinished: Some(Undo::Batch),
            kept_savepoint: false,
            broken: None,
            committing: false,
            ended: watch::Sender::new(None),
        });
        let begun = match self.backend {
            Backend::Sqlite => run(&mut self.conn, "BEGIN IMMEDIATE").await,
            Backend::Postgres => match run(&mut self.conn, "BEGIN").await {
                Ok(()) => sqlx::query("SELECT pg_advisory_xact_lock($1)")
                    .bind(WRITER_LOCK)
                    .execute(&mut self.conn)
                    .await
                    .map(|_| ()),
                Err(e) => Err(e),
            },
        };
        if let Err(e) = begun {
            self.settle().await;
            return Err(e.into());
        }
        if let Some(batch) = &mut self.batch {
            batch.unfinished = None;
        }
        Ok(())
    }

    /// The open batch has as many members as one may have.
    fn full(&self) -> bool {
        self.batch
            .as_ref()
            .is_some_and(|b| b.members >= MAX_MEMBERS)
    }

    /// Joins the open batch: its id and its end.
    fn join(&mut self) -> Result<(u64, watch::Receiver<Ended>), StoreError> {
        let Some(batch) = self.batch.as_mut() else {
            return Err(StoreError::Commit("no transaction is open".into()));
        };
        batch.members += 1;
        Ok((batch.id, batch.ended.subscribe()))
    }

    /// Marks where a member's work starts: how to undo it.
    async fn start_work(&mut self, guarded: bool) -> Result<Undo, StoreError> {
        let Writer {
            conn, batch, memo, ..
        } = self;
        let Some(batch) = batch.as_mut() else {
            return Err(StoreError::Commit("no transaction is open".into()));
        };
        memo.lock().unwrap_or_else(|p| p.into_inner()).changed = false;
        let undo = if batch.members == 1 {
            Undo::Batch
        } else if guarded {
            Undo::Savepoint
        } else {
            Undo::Unguarded
        };
        if undo == Undo::Savepoint {
            batch.unfinished = Some(Undo::Unknown);
            // Also a check: on PostgreSQL the release fails if an error the
            // previous member swallowed aborted the transaction.
            let sql = if batch.kept_savepoint {
                "RELEASE SAVEPOINT drover_write; SAVEPOINT drover_write"
            } else {
                "SAVEPOINT drover_write"
            };
            if let Err(e) = run(conn, sql).await {
                batch.unfinished = None;
                batch.broken = Some(format!("a savepoint failed: {e}"));
                return Err(e.into());
            }
            batch.kept_savepoint = false;
        }
        batch.unfinished = Some(undo);
        Ok(undo)
    }

    /// Ends a member's work: kept (its savepoint released) or undone.
    async fn close_work<T>(
        &mut self,
        undo: Undo,
        result: Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        let changed = self.memo.lock().unwrap_or_else(|p| p.into_inner()).changed;
        if result.is_err() {
            self.forget_memo();
        }
        let Writer { conn, batch, .. } = self;
        let Some(open) = batch.as_mut() else {
            return result;
        };
        open.unfinished = None;
        match (&result, undo) {
            (Ok(_), Undo::Batch | Undo::Unguarded) => {}
            (Ok(_), _) => open.kept_savepoint = true,
            (Err(e), Undo::Unguarded) => {
                if changed {
                    open.broken = Some(format!(
                        "a write without a savepoint failed after it changed rows: {e}"
                    ));
                }
            }
            (Err(_), Undo::Batch) => {
                let _ = run(conn, "ROLLBACK").await;
                if let Some(ended) = batch.take() {
                    ended.ended.send_replace(Some(Err("rolled back".into())));
                }
            }
            (Err(_), _) => {
                if let Err(e) = undo_savepoint(conn).await {
                    open.broken = Some(format!("a failed write could not be undone: {e}"));
                }
            }
        }
        result
    }

    /// Undoes what an interrupted holder of the mutex left behind.
    async fn settle(&mut self) {
        let Writer {
            conn, batch, memo, ..
        } = self;
        let Some(open) = batch.as_mut() else {
            return;
        };
        let changed = {
            let mut memo = memo.lock().unwrap_or_else(|p| p.into_inner());
            let changed = memo.changed;
            if open.committing || open.unfinished.is_some() {
                *memo = Memo::default();
            }
            changed
        };
        if open.committing {
            let _ = run(conn, "ROLLBACK").await;
            end(
                batch,
                Err("the commit was interrupted; whether it took effect is unknown".into()),
            );
            return;
        }
        match open.unfinished.take() {
            None => {}
            Some(Undo::Batch) => {
                let _ = run(conn, "ROLLBACK").await;
                end(batch, Err("its first write was interrupted".into()));
            }
            Some(Undo::Savepoint) => {
                if let Err(e) = undo_savepoint(conn).await {
                    open.broken = Some(format!("an interrupted write could not be undone: {e}"));
                }
            }
            Some(Undo::Unknown) => {
                open.broken = Some("a write was interrupted while its savepoint was set".into());
            }
            Some(Undo::Unguarded) if changed => {
                open.broken = Some("a write without a savepoint was interrupted".into());
            }
            Some(Undo::Unguarded) => {}
        }
    }

    /// Commits batch `id` if it is still open (rolls it back if broken).
    async fn finish(&mut self, id: u64) {
        self.settle().await;
        let Writer {
            conn,
            batch,
            backend,
            ..
        } = self;
        let Some(open) = batch.as_mut().filter(|b| b.id == id) else {
            return;
        };
        // PostgreSQL answers COMMIT of a transaction an error aborted (one
        // a member swallowed) with a silent rollback: asked first.
        if *backend == Backend::Postgres
            && open.broken.is_none()
            && let Err(e) = run(conn, "SELECT 1").await
        {
            open.broken = Some(format!("the transaction failed: {e}"));
        }
        let outcome = match open.broken.clone() {
            Some(why) => {
                let _ = run(conn, "ROLLBACK").await;
                Err(why)
            }
            None => {
                open.committing = true;
                match run(conn, "COMMIT").await {
                    Ok(()) => Ok(()),
                    Err(e) => {
                        let _ = run(conn, "ROLLBACK").await;
                        Err(e.to_string())
                    }
                }
            }
        };
        end(batch, outcome);
        self.forget_memo();
    }

    fn forget_memo(&self) {
        *self.memo.lock().unwrap_or_else(|p| p.into_inner()) = Memo::default();
    }
}

fn end(batch: &mut Option<Batch>, outcome: Result<(), String>) {
    if let Some(ended) = batch.take() {
        ended.ended.send_replace(Some(outcome));
    }
}

async fn undo_savepoint(conn: &mut AnyConnection) -> Result<(), sqlx::Error> {
    run(conn, "ROLLBACK TO SAVEPOINT drover_write").await?;
    run(conn, "RELEASE SAVEPOINT drover_write").await
}

#[cfg(test)]
mod tests {
    use serde_json::json;
    use tokio::sync::mpsc;
    use tokio::task::JoinHandle;

    use super::super::Store;
    use super::super::tests::stores;
    use super::*;

    /// Events of `kind` a reader sees.
    async fn seen(store: &Store, kind: &str) -> i64 {
        sqlx::query_scalar("SELECT COUNT(*) FROM audit_events WHERE kind = $1")
            .bind(kind)
            .fetch_one(&mut *store.db.read().await)
            .await
            .unwrap()
    }

    #[derive(Clone, Copy)]
    enum Then {
        Keep,
        Fail,
        /// Says so on the channel, then never finishes.
        Hang,
        /// A statement fails and the work carries on as if it had not.
        Swallow,
    }

    /// One write appending an event of `kind`, then doing `then`.
    fn writer(
        store: &Store,
        kind: &str,
        then: Then,
        started: mpsc::UnboundedSender<()>,
    ) -> JoinHandle<Result<(), StoreError>> {
        let (store, kind) = (store.clone(), kind.to_string());
        tokio::spawn(async move {
            store
                .write(async |tx| {
                    store
                        .append(tx, "test", &kind, None, None, json!({}))
                        .await?;
                    let _ = started.send(());
                    match then {
                        Then::Keep => Ok(()),
                        Then::Fail => Err(StoreError::Corrupt("failed on purpose".into())),
                        Then::Hang => std::future::pending().await,
                        Then::Swallow => {
                            let _ = sqlx::query("SELECT * FROM no_such_table").execute(tx).await;
                            Ok(())
                        }
                    }
                })
                .await
        })
    }

    /// Starts `writers` while the writer connection is held, so that they
    /// queue in this order and share one batch once it is let go.
    async fn queued(
        store: &Store,
        writers: &[(&str, Then)],
    ) -> (
        Vec<JoinHandle<Result<(), StoreError>>>,
        mpsc::UnboundedReceiver<()>,
    ) {
        let (started, signals) = mpsc::unbounded_channel();
        let held = store.db.writer.lock().await;
        let mut handles = Vec::new();
        for (kind, then) in writers {
            handles.push(writer(store, kind, *then, started.clone()));
            // Each is first polled, and queues for the mutex, before the next.
            for _ in 0..10 {
                tokio::task::yield_now().await;
            }
        }
        drop(held);
        (handles, signals)
    }

    #[tokio::test]
    async fn concurrent_writes_share_commits_and_each_is_durable_once_it_returns() {
        let (stores, _dir) = stores().await;
        for store in stores {
            let before = store.transactions().await;
            let (started, _signals) = mpsc::unbounded_channel();
            let handles: Vec<_> = (0..200)
                .map(|i| {
                    let (store, kind) = (store.clone(), format!("e{i}"));
                    let write = writer(&store, &kind, Then::Keep, started.clone());
                    tokio::spawn(async move {
                        write.await.unwrap().unwrap();
                        // Acknowledged: committed, so another connection sees it.
                        assert_eq!(seen(&store, &kind).await, 1, "{kind}");
                    })
                })
                .collect();
            for handle in handles {
                handle.await.unwrap();
            }
            let used = store.transactions().await - before;
            assert!(used < 50, "200 concurrent writes took {used} transactions");
            assert_eq!(store.verify().await.unwrap(), Ok(200));
        }
    }

    #[tokio::test]
    async fn a_failed_write_undoes_its_own_rows_only_and_the_others_commit() {
        let (stores, _dir) = stores().await;
        for store in stores {
            let before = store.transactions().await;
            let (handles, _signals) = queued(
                &store,
                &[("a", Then::Keep), ("b", Then::Fail), ("c", Then::Keep)],
            )
            .await;
            let results: Vec<_> = futures_util::future::join_all(handles).await;
            assert!(results[0].as_ref().unwrap().is_ok());
            let failed = results[1].as_ref().unwrap().as_ref().unwrap_err();
            assert!(failed.to_string().contains("failed on purpose"), "{failed}");
            assert!(results[2].as_ref().unwrap().is_ok());
            assert_eq!(
                store.transactions().await - before,
                1,
                "one shared transaction"
            );
            assert_eq!(
                (
                    seen(&store, "a").await,
                    seen(&store, "b").await,
                    seen(&store, "c").await
                ),
                (1, 0, 1)
            );
            assert_eq!(store.verify().await.unwrap(), Ok(2));
        }
    }

    #[tokio::test]
    async fn an_interrupted_write_is_undone_and_the_others_in_its_batch_commit() {
        let (stores, _dir) = stores().await;
        for store in stores {
            // In the middle of a batch, and as its first member.
            for (writers, hung, kept) in [
                (
                    [("a", Then::Keep), ("b", Then::Hang), ("c", Then::Keep)],
                    1,
                    [0, 2],
                ),
                (
                    [("d", Then::Hang), ("e", Then::Keep), ("f", Then::Keep)],
                    0,
                    [1, 2],
                ),
            ] {
                let (mut handles, mut signals) = queued(&store, &writers).await;
                for _ in 0..=hung {
                    signals.recv().await.unwrap();
                }
                handles[hung].abort();
                let hung_handle = handles.remove(hung);
                assert!(hung_handle.await.unwrap_err().is_cancelled());
                for handle in handles {
                    handle.await.unwrap().unwrap();
                }
                assert_eq!(seen(&store, writers[hung].0).await, 0);
                for i in kept {
                    assert_eq!(seen(&store, writers[i].0).await, 1, "{}", writers[i].0);
                }
            }
            assert_eq!(store.verify().await.unwrap(), Ok(4));
            store
                .record_event("test", "after", None, json!({}))
                .await
                .unwrap();
            assert_eq!(seen(&store, "after").await, 1);
        }
    }

    #[tokio::test]
    async fn a_transaction_that_cannot_commit_is_reported_to_every_member() {
        let (stores, _dir) = stores().await;
        for store in stores {
            match store.backend {
                // A work that swallowed an error aborted the transaction:
                // PostgreSQL would answer the commit with a silent rollback.
                // The member after it finds that out (its savepoint fails);
                // one that comes later is not let into the doomed batch.
                Backend::Postgres => {
                    for writers in [
                        &[("a", Then::Keep), ("b", Then::Swallow), ("c", Then::Keep)][..],
                        &[("d", Then::Swallow), ("e", Then::Keep), ("f", Then::Keep)],
                        &[("g", Then::Keep), ("h", Then::Keep), ("i", Then::Swallow)],
                        &[("j", Then::Swallow)],
                    ] {
                        let (handles, _signals) = queued(&store, writers).await;
                        for (handle, (kind, _)) in handles.into_iter().zip(writers.iter().copied())
                        {
                            let result = handle.await.unwrap();
                            if kind == "f" {
                                result.unwrap();
                                assert_eq!(seen(&store, kind).await, 1, "{kind}");
                            } else {
                                assert!(result.is_err(), "{kind} acknowledged");
                                assert_eq!(seen(&store, kind).await, 0, "{kind}");
                            }
                        }
                    }
                    assert_eq!(store.verify().await.unwrap(), Ok(1));
                }
                // A deferred foreign key that fails at commit.
                Backend::Sqlite => {
                    let (handles, _signals) =
                        queued(&store, &[("a", Then::Keep), ("b", Then::Keep)]).await;
                    let dangling = store.write(async |tx| {
                        sqlx::raw_sql("PRAGMA defer_foreign_keys = ON").execute(&mut *tx).await?;
                        sqlx::query("INSERT INTO steps (run_id, step_id, position, phase, status) VALUES ('nowhere', 's', 0, 'main', 'pending')")
                            .execute(&mut *tx)
                            .await?;
                        Ok(())
                    });
                    let err = dangling.await.unwrap_err();
                    assert!(matches!(err, StoreError::Commit(_)), "{err}");
                    for (handle, kind) in handles.into_iter().zip(["a", "b"]) {
                        let err = handle.await.unwrap().unwrap_err();
                        assert!(err.to_string().contains("not committed"), "{kind}: {err}");
                        assert_eq!(seen(&store, kind).await, 0, "{kind}");
                    }
                    assert_eq!(store.verify().await.unwrap(), Ok(0));
                }
            }
            store
                .record_event("test", "after", None, json!({}))
                .await
                .unwrap();
            assert_eq!(seen(&store, "after").await, 1);
            assert!(store.verify().await.unwrap().is_ok());
        }
    }

    #[tokio::test]
    async fn a_full_batch_is_committed_while_writers_still_wait() {
        let (stores, _dir) = stores().await;
        for store in stores {
            let before = store.transactions().await;
            let kinds: Vec<String> = (0..=2 * MAX_MEMBERS).map(|i| format!("e{i}")).collect();
            let writers: Vec<_> = kinds.iter().map(|k| (k.as_str(), Then::Keep)).collect();
            let (handles, _signals) = queued(&store, &writers).await;
            for handle in handles {
                handle.await.unwrap().unwrap();
            }
            // Without a bound, the first member would wait for all of them.
            assert_eq!(store.transactions().await - before, 3);
            assert_eq!(
                store.verify().await.unwrap(),
                Ok(2 * MAX_MEMBERS as u64 + 1)
            );
        }
    }

    /// The holder of the mutex saw a writer in line and left the commit to
    /// it; that writer is dropped before its turn: the batch is committed
    /// anyway, not left open with its members waiting.
    #[tokio::test]
    async fn a_writer_dropped_in_line_commits_the_batch_left_to_it() {
        let (stores, _dir) = stores().await;
        for store in stores {
            let mut writer = store.db.writer.lock().await;
            writer.open().await.unwrap();
            let (_, mut ended) = writer.join().unwrap();
            let undo = writer.start_work(true).await.unwrap();
            let work = store
                .append(&mut writer.conn, "test", "a", None, None, json!({}))
                .await;
            writer.close_work(undo, work).await.unwrap();
            let mut in_line = Box::pin(store.record_event("test", "b", None, json!({})));
            assert!(futures_util::poll!(&mut in_line).is_pending());
            assert_eq!(store.db.waiting.load(Ordering::SeqCst), 1);
            drop(writer);
            drop(in_line);
            let outcome = tokio::time::timeout(
                std::time::Duration::from_secs(30),
                ended.wait_for(Option::is_some),
            )
            .await
            .expect("the batch ended")
            .unwrap()
            .clone();
            assert_eq!(outcome, Some(Ok(())));
            assert_eq!((seen(&store, "a").await, seen(&store, "b").await), (1, 0));
            assert_eq!(store.db.waiting.load(Ordering::SeqCst), 0);
        }
    }

    /// Writes without a savepoint, between two ordinary ones: one refused
    /// before it changed anything (a run this process does not hold) fails
    /// alone; one whose statement fails after it began changing rows cannot
    /// be undone alone, so its whole batch is rolled back and every member
    /// told, none acknowledged.
    #[tokio::test]
    async fn an_unguarded_write_fails_alone_before_it_changes_rows_and_with_its_batch_after() {
        use crate::store::StepStatus;
        let (stores, _dir) = stores().await;
        for store in stores {
            for (round, changed) in [(0, false), (1, true)] {
                let (started, _signals) = mpsc::unbounded_channel();
                let (first, last) = (format!("a{round}"), format!("c{round}"));
                let before = store.transactions().await;
                let held = store.db.writer.lock().await;
                let a = writer(&store, &first, Then::Keep, started.clone());
                for _ in 0..10 {
                    tokio::task::yield_now().await;
                }
                let unguarded = store.clone();
                let b = tokio::spawn(async move {
                    if changed {
                        unguarded
                            .write_unguarded(async |tx| {
                                unguarded
                                    .append(tx, "test", "b", None, None, json!({}))
                                    .await?;
                                sqlx::query("INSERT INTO no_such_table VALUES (1)")
                                    .execute(tx)
                                    .await?;
                                Ok(())
                            })
                            .await
                    } else {
                        unguarded
                            .set_step("not-held", "s", StepStatus::Running, None, None)
                            .await
                    }
                });
                for _ in 0..10 {
                    tokio::task::yield_now().await;
                }
                let c = writer(&store, &last, Then::Keep, started.clone());
                for _ in 0..10 {
                    tokio::task::yield_now().await;
                }
                drop(held);
                let (a, b, c) = (a.await.unwrap(), b.await.unwrap(), c.await.unwrap());
                assert!(b.is_err());
                if changed {
                    let why = b.unwrap_err().to_string();
                    assert!(why.contains("no_such_table"), "{why}");
                    let err = a.unwrap_err().to_string();
                    assert!(err.contains("without a savepoint failed"), "{err}");
                    assert_eq!(
                        (seen(&store, &first).await, seen(&store, "b").await),
                        (0, 0)
                    );
                    // The next writer does not join a batch that can only be rolled back.
                    c.unwrap();
                    assert_eq!(seen(&store, &last).await, 1);
                    assert_eq!(store.transactions().await - before, 2);
                } else {
                    assert!(matches!(b, Err(StoreError::Fenced { .. })), "{b:?}");
                    a.unwrap();
                    c.unwrap();
                    assert_eq!(
                        (seen(&store, &first).await, seen(&store, &last).await),
                        (1, 1)
                    );
                    assert_eq!(store.transactions().await - before, 1, "one batch");
                }
            }
            assert_eq!(store.verify().await.unwrap(), Ok(3));
        }
    }

    /// A claim taken again inside a batch raises the epoch: a later write
    /// of the same batch, made under the old claim, is fenced although an
    /// earlier one saw the old claim in place.
    #[tokio::test]
    async fn a_claim_changed_inside_a_batch_is_read_again_by_the_next_fence() {
        use super::super::tests::new_run;
        use crate::store::StepStatus;
        let (stores, _dir) = stores().await;
        for store in stores {
            store.create_run(&new_run("r1", &[])).await.unwrap();
            let before = store.transactions().await;
            let held = store.db.writer.lock().await;
            let step = |status| {
                let store = store.clone();
                tokio::spawn(
                    async move { store.set_step("r1", "precheck", status, None, None).await },
                )
            };
            let mut handles = vec![step(StepStatus::Running)];
            for _ in 0..10 {
                tokio::task::yield_now().await;
            }
            let claimer = store.clone();
            let claim = tokio::spawn(async move { claimer.claim("r1").await });
            for _ in 0..10 {
                tokio::task::yield_now().await;
            }
            handles.push(step(StepStatus::Succeeded));
            for _ in 0..10 {
                tokio::task::yield_now().await;
            }
            drop(held);
            let late = handles
                .pop()
                .unwrap()
                .await
                .unwrap()
                .unwrap_err()
                .to_string();
            assert!(
                late.contains("no longer executed by this process"),
                "{late}"
            );
            handles.pop().unwrap().await.unwrap().unwrap();
            assert_eq!(claim.await.unwrap().unwrap(), 2);
            assert_eq!(store.transactions().await - before, 1, "one batch");
        }
    }

    /// Interrupted between its savepoint's release of the previous member's
    /// and its own: which savepoint exists is unknown, so undoing "its"
    /// savepoint could silently undo the previous member's acknowledged
    /// rows; the whole batch is rolled back and every member told instead.
    #[tokio::test]
    async fn a_write_interrupted_while_its_savepoint_is_set_fails_its_batch() {
        use futures_util::FutureExt;
        let (stores, _dir) = stores().await;
        for store in stores {
            let mut writer = store.db.writer.lock().await;
            writer.open().await.unwrap();
            let mut ended = None;
            for kind in ["a", "b"] {
                let (_, end) = writer.join().unwrap();
                ended = Some(end);
                let undo = writer.start_work(true).await.unwrap();
                let work = store
                    .append(&mut writer.conn, "test", kind, None, None, json!({}))
                    .await;
                writer.close_work(undo, work).await.unwrap();
            }
            let (id, _) = writer.join().unwrap();
            if writer.start_work(true).now_or_never().is_some() {
                // Done in one poll (SQLite's worker can be that quick): left
                // as an interruption while the statement was under way
                // leaves it (as on PostgreSQL, which has to wait for the
                // server).
                if let Some(batch) = writer.batch.as_mut() {
                    batch.unfinished = Some(Undo::Unknown);
                }
            }
            writer.finish(id).await;
            drop(writer);
            let outcome = ended.unwrap().borrow().clone();
            assert!(matches!(outcome, Some(Err(_))), "{outcome:?}");
            assert_eq!((seen(&store, "a").await, seen(&store, "b").await), (0, 0));
            store
                .record_event("test", "after", None, json!({}))
                .await
                .unwrap();
            assert_eq!(store.verify().await.unwrap(), Ok(1));
        }
    }
}
