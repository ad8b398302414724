//! Run claims: which process executes a run. A claim names its node, host
//! and process id, carries an epoch that every new claimer raises, and
//! expires unless renewed (by the database's clock, so that daemons on
//! different hosts agree). Every write the engine makes for a run is fenced:
//! in the same transaction the run must still be claimed by this process
//! under the epoch it holds, so a process that lost a run records nothing
//! more for it. Each process also keeps a local deadline on the monotonic
//! clock (the claim's time to live, counted from before the renewal that
//! set it), which the engine checks right before it sends a change.

use std::collections::HashMap;
use std::sync::{Arc, Mutex as SyncMutex};
use std::time::{Duration, Instant};

use sqlx::AnyConnection;
use sqlx::Row;

use super::{Backend, Store, StoreError};

/// One statement for both backends, with the database's clock in
/// milliseconds since the Unix epoch between `before` and `after`.
macro_rules! with_now_ms {
    ($backend:expr, $before:literal, $after:literal) => {
        match $backend {
            Backend::Sqlite => concat!(
                $before,
                "CAST((julianday('now') - 2440587.5) * 86400000 AS INTEGER)",
                $after
            ),
            Backend::Postgres => concat!(
                $before,
                "CAST(EXTRACT(EPOCH FROM clock_timestamp()) * 1000 AS BIGINT)",
                $after
            ),
        }
    };
}
pub(super) use with_now_ms;

/// Keeps a claim renewed while it lives (see [`Store::keep_claimed`]).
pub struct Renewal {
    claims: Arc<Claims>,
    run_id: String,
}

impl Drop for Renewal {
    fn drop(&mut self) {
        let mut renewing = self.claims.lock_renewing();
        if let Some(count) = renewing.runs.get_mut(&self.run_id) {
            *count -= 1;
            if *count == 0 {
                renewing.runs.remove(&self.run_id);
            }
        }
    }
}

/// The runs whose claims are kept renewed, and whether the renewer runs.
#[derive(Debug, Default)]
struct Renewing {
    runs: HashMap<String, usize>,
    running: bool,
}

/// Who this process is, as claims name it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Node {
    /// `node.name` (default: host name and process id).
    pub name: String,
    pub host: String,
    pub pid: u32,
}

impl Node {
    /// This process, named `name` or, by default, `host-pid`.
    pub fn this_process(name: Option<&str>) -> Node {
        let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
            .map(|h| h.trim().to_string())
            .ok()
            .filter(|h| !h.is_empty())
            .unwrap_or_else(|| "localhost".into());
        let pid = std::process::id();
        Node {
            name: name.map_or_else(|| format!("{host}-{pid}"), str::to_string),
            host,
            pid,
        }
    }
}

/// Default time to live of a claim; it is renewed every third of it.
pub const DEFAULT_CLAIM_TTL: Duration = Duration::from_secs(15);

/// A claim this process holds.
#[derive(Debug, Clone, Copy)]
struct Held {
    epoch: i64,
    /// After this the claim may have been taken: no change is sent.
    deadline: Instant,
}

/// This process's claims, shared by the store's clones.
#[derive(Debug)]
pub(crate) struct Claims {
    pub node: Node,
    pub ttl: Duration,
    held: SyncMutex<HashMap<String, Held>>,
    renewing: SyncMutex<Renewing>,
}

impl Claims {
    pub fn new(node: Node, ttl: Duration) -> Arc<Claims> {
        Arc::new(Claims {
            node,
            ttl,
            held: SyncMutex::new(HashMap::new()),
            renewing: SyncMutex::new(Renewing::default()),
        })
    }

    fn lock_renewing(&self) -> std::sync::MutexGuard<'_, Renewing> {
        self.renewing.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn get(&self, run_id: &str) -> Option<Held> {
        self.held
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(run_id)
            .copied()
    }

    fn set(&self, run_id: &str, held: Option<Held>) {
        let mut map = self.held.lock().unwrap_or_else(|p| p.into_inner());
        match held {
            Some(h) => map.insert(run_id.to_string(), h),
            None => map.remove(run_id),
        };
    }
}

/// A run's claim as read, with the database's clock (columns 0 to 4:
/// owner, owner_host, owner_pid, claim_expires_ms, now).
struct ClaimSeen {
    owner: Option<String>,
    host: Option<String>,
    pid: Option<i64>,
    expires: Option<i64>,
    now_ms: i64,
}

impl ClaimSeen {
    fn read(row: &sqlx::any::AnyRow) -> ClaimSeen {
        ClaimSeen {
            owner: row.get(0),
            host: row.get(1),
            pid: row.get(2),
            expires: row.get(3),
            now_ms: row.get(4),
        }
    }

    /// Held by `node`'s own process.
    fn is_process(&self, node: &Node) -> bool {
        self.host.as_deref() == Some(&node.host) && self.pid == Some(i64::from(node.pid))
    }

    /// Nobody holds it: never claimed, released or expired, or held by a
    /// process of `node`'s host that has ended.
    fn free_for(&self, node: &Node) -> bool {
        let ended_here = self.host.as_deref() == Some(&node.host)
            && self
                .pid
                .is_some_and(|p| p != i64::from(node.pid) && !alive(p));
        self.owner.is_none() || self.expires.is_none_or(|e| e < self.now_ms) || ended_here
    }
}

/// True when process `pid` runs on this host.
fn alive(pid: i64) -> bool {
    std::path::Path::new(&format!("/proc/{pid}")).exists()
}

impl Store {
    /// This process, as its claims name it.
    pub fn node(&self) -> &Node {
        &self.claims.node
    }

    /// Claims run `run_id` for this process. A run can be claimed when it is
    /// still running and nobody holds it: never claimed, released, expired,
    /// or held by a process of this host that has ended. Taking it from
    /// another owner is an audit event. The epoch goes up with every claim.
    pub async fn claim(&self, run_id: &str) -> Result<i64, StoreError> {
        let started = Instant::now();
        let node = &self.claims.node;
        let epoch = self.write(async |tx| {
            let sql = with_now_ms!(
                self.backend,
                "SELECT owner, owner_host, owner_pid, claim_expires_ms, ",
                ", epoch, status FROM runs WHERE id = $1"
            );
            let row = sqlx::query(sql)
                .bind(run_id)
                .fetch_optional(&mut *tx)
                .await?
                .ok_or_else(|| StoreError::Corrupt(format!("run {run_id} does not exist")))?;
            let seen = ClaimSeen::read(&row);
            let epoch: i64 = row.get(5);
            let status: String = row.get(6);
            if status != "running" {
                return Err(StoreError::NotRunning {
                    run_id: run_id.to_string(),
                    status,
                });
            }
            let this_process = seen.is_process(node);
            if !(seen.free_for(node) || this_process) {
                return Err(StoreError::Owned {
                    run_id: run_id.to_string(),
                    owner: seen.owner.unwrap_or_default(),
                    expires_in: Duration::from_millis(
                        seen.expires.map_or(0, |e| e.saturating_sub(seen.now_ms)).max(0) as u64,
                    ),
                });
            }
            let owner = seen.owner;
            let now_ms = seen.now_ms;
            let ttl_ms = self.claims.ttl.as_millis() as i64;
            sqlx::query(
                "UPDATE runs SET owner = $1, owner_host = $2, owner_pid = $3, epoch = $4, claim_expires_ms = $5 WHERE id = $6 AND epoch = $7",
            )
            .bind(&node.name)
            .bind(&node.host)
            .bind(i64::from(node.pid))
            .bind(epoch + 1)
            .bind(now_ms + ttl_ms)
            .bind(run_id)
            .bind(epoch)
            .execute(&mut *tx)
            .await?;
            self.db.set_fenced(run_id, None);
            if let Some(previous) = owner.filter(|_| !this_process) {
                let data =
                    serde_json::json!({ "node": node.name, "epoch": epoch + 1, "from": previous });
                self.append(
                    tx,
                    &node.name,
                    "run.taken_over",
                    Some(run_id),
                    None,
                    data,
                )
                .await?;
            }
            Ok(epoch + 1)
        })
        .await?;
        self.claims.set(
            run_id,
            Some(Held {
                epoch,
                deadline: started + self.claims.ttl,
            }),
        );
        Ok(epoch)
    }

    /// Extends this process's claim of `run_id`; `false` when it was lost
    /// (taken over, or the run ended), which also forgets it here.
    pub async fn renew(&self, run_id: &str) -> Result<bool, StoreError> {
        Ok(self.renew_all(&[run_id.to_string()]).await?.is_empty())
    }

    /// Extends this process's claims of `runs` in one transaction; the runs
    /// whose claims were lost (taken over, or the run ended), which are
    /// also forgotten here.
    pub async fn renew_all(&self, runs: &[String]) -> Result<Vec<String>, StoreError> {
        let held: Vec<(&String, Held)> = runs
            .iter()
            .filter_map(|r| Some((r, self.claims.get(r)?)))
            .collect();
        self.renew_held(held).await
    }

    /// Renews the claims `held` as they were seen before the renewal; what
    /// changed here meanwhile (a release, a newer claim) stays as it is.
    async fn renew_held(&self, held: Vec<(&String, Held)>) -> Result<Vec<String>, StoreError> {
        let started = Instant::now();
        let sql = with_now_ms!(
            self.backend,
            "UPDATE runs SET claim_expires_ms = ",
            " + $1 WHERE id = $2 AND owner = $3 AND epoch = $4 AND status = 'running'"
        );
        let kept = self
            .write(async |tx| {
                let mut kept = Vec::new();
                for (run_id, held) in &held {
                    let done = sqlx::query(sql)
                        .bind(self.claims.ttl.as_millis() as i64)
                        .bind(*run_id)
                        .bind(&self.claims.node.name)
                        .bind(held.epoch)
                        .execute(&mut *tx)
                        .await?
                        .rows_affected();
                    kept.push(done == 1);
                }
                Ok(kept)
            })
            .await?;
        let mut lost = Vec::new();
        for ((run_id, held), kept) in held.into_iter().zip(kept) {
            if self.claims.get(run_id).map(|h| h.epoch) != Some(held.epoch) {
                continue;
            }
            if kept {
                let deadline = started + self.claims.ttl;
                self.claims.set(run_id, Some(Held { deadline, ..held }));
            } else {
                self.claims.set(run_id, None);
                lost.push(run_id.clone());
            }
        }
        Ok(lost)
    }

    /// Gives the claim of `run_id` up, so that another process may take the
    /// run over at once (this one stops working on it).
    pub async fn release(&self, run_id: &str) -> Result<(), StoreError> {
        let Some(held) = self.claims.get(run_id) else {
            return Ok(());
        };
        self.claims.set(run_id, None);
        // The epoch goes up too: a renewal already under way cannot extend
        // the claim again.
        self.write(async |tx| {
            sqlx::query(
                "UPDATE runs SET claim_expires_ms = 0, epoch = epoch + 1 WHERE id = $1 AND owner = $2 AND epoch = $3",
            )
            .bind(run_id)
            .bind(&self.claims.node.name)
            .bind(held.epoch)
            .execute(&mut *tx)
            .await?;
            self.db.set_fenced(run_id, None);
            Ok(())
        })
        .await
    }

    /// Renews the claim of `run_id` every third of its time to live, until
    /// the returned guard is dropped or the claim is lost (logged). One
    /// renewer per store serves every run it executes; its ticks come from a
    /// thread sleeping on the real clock, as the claim's expiry is, so a
    /// test's paused tokio clock neither renews early nor jumps ahead to it.
    pub fn keep_claimed(&self, run_id: &str) -> Renewal {
        let mut renewing = self.claims.lock_renewing();
        *renewing.runs.entry(run_id.to_string()).or_insert(0) += 1;
        if !renewing.running {
            renewing.running = true;
            self.start_renewer();
        }
        Renewal {
            claims: self.claims.clone(),
            run_id: run_id.to_string(),
        }
    }

    /// The renewer: a ticking thread and a task that renews every claim
    /// kept; it ends when no claim is kept any more.
    fn start_renewer(&self) {
        let every = self.claim_ttl() / 3;
        let (tick, mut ticks) = tokio::sync::mpsc::channel::<()>(1);
        std::thread::spawn(move || {
            loop {
                std::thread::sleep(every);
                if tick.blocking_send(()).is_err() {
                    return;
                }
            }
        });
        let store = self.clone();
        tokio::spawn(async move {
            while ticks.recv().await.is_some() {
                let runs: Vec<String> = {
                    let mut renewing = store.claims.lock_renewing();
                    if renewing.runs.is_empty() {
                        renewing.running = false;
                        return;
                    }
                    renewing.runs.keys().cloned().collect()
                };
                match store.renew_all(&runs).await {
                    Ok(lost) => {
                        for run_id in lost {
                            store.claims.lock_renewing().runs.remove(&run_id);
                            tracing::warn!(run.id = %run_id, node = %store.node().name, "Lost the claim of this run: another process has it now; this one records and sends nothing more for it.");
                        }
                    }
                    Err(e) => {
                        tracing::warn!(runs = runs.len(), error = %e, "Cannot renew the claims of the runs this process executes; trying again.");
                    }
                }
            }
            store.claims.lock_renewing().running = false;
        });
    }

    /// How long a claim lives unless renewed.
    pub fn claim_ttl(&self) -> Duration {
        self.claims.ttl
    }

    /// Forgets a claim here without touching the database (the run's process
    /// stops working on it; the claim expires, or the run has ended).
    pub fn forget_claim(&self, run_id: &str) {
        self.claims.set(run_id, None);
    }

    /// Whether this process may still send a change for `run_id`: it holds
    /// the claim and its local deadline has not passed.
    pub fn may_send(&self, run_id: &str) -> Result<(), StoreError> {
        match self.claims.get(run_id) {
            Some(h) if Instant::now() < h.deadline => Ok(()),
            _ => Err(StoreError::Fenced {
                run_id: run_id.to_string(),
                why: "its claim was not renewed in time".into(),
            }),
        }
    }

    /// Runs still running that nobody holds: never claimed, expired, or held
    /// by a process of this host that has ended (candidates to take over).
    pub async fn claimable_runs(&self) -> Result<Vec<String>, StoreError> {
        let sql = with_now_ms!(
            self.backend,
            "SELECT owner, owner_host, owner_pid, claim_expires_ms, ",
            ", id FROM runs WHERE status = 'running' ORDER BY created_at"
        );
        let rows = sqlx::query(sql)
            .fetch_all(&mut *self.db.read().await)
            .await?;
        Ok(rows
            .iter()
            .filter(|r| ClaimSeen::read(r).free_for(&self.claims.node))
            .map(|r| r.get(5))
            .collect())
    }

    /// In the caller's write transaction: `run_id` is still claimed by this
    /// process under the epoch it holds.
    pub(crate) async fn fence(
        &self,
        tx: &mut AnyConnection,
        run_id: &str,
    ) -> Result<(), StoreError> {
        let Some(held) = self.claims.get(run_id) else {
            return Err(StoreError::Fenced {
                run_id: run_id.to_string(),
                why: "this process does not hold its claim".into(),
            });
        };
        // Seen by an earlier write of this batch, which only this process writes to.
        if self.db.fenced(run_id, held.epoch) {
            return Ok(());
        }
        let row = sqlx::query("SELECT owner, epoch FROM runs WHERE id = $1")
            .bind(run_id)
            .fetch_optional(&mut *tx)
            .await?;
        let (owner, epoch): (Option<String>, i64) = match &row {
            Some(r) => (r.get(0), r.get(1)),
            None => (None, -1),
        };
        if owner.as_deref() == Some(&self.claims.node.name) && epoch == held.epoch {
            self.db.set_fenced(run_id, Some(epoch));
            return Ok(());
        }
        self.claims.set(run_id, None);
        Err(StoreError::Fenced {
            run_id: run_id.to_string(),
            why: format!(
                "it is now claimed by {} (epoch {epoch}, this process held {})",
                owner.as_deref().unwrap_or("nobody"),
                held.epoch
            ),
        })
    }

    /// Registers the claim a new run starts with (its creator holds epoch 1,
    /// taken in the transaction that created it).
    pub(crate) fn hold_new(&self, run_id: &str, started: Instant) {
        self.claims.set(
            run_id,
            Some(Held {
                epoch: 1,
                deadline: started + self.claims.ttl,
            }),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::tests::new_run;
    use crate::store::{RunStatus, StepStatus, scratch_postgres};

    fn node(name: &str, pid: u32) -> Node {
        Node {
            name: name.into(),
            host: Node::this_process(None).host,
            pid,
        }
    }

    /// Two processes on one database: `a` is this process, `b` another
    /// live one (pid 1 always runs).
    async fn pairs() -> Vec<(Store, Store, tempfile::TempDir)> {
        let dir = tempfile::tempdir().unwrap();
        let mut urls = vec![format!("sqlite://{}", dir.path().join("a.db").display())];
        urls.extend(scratch_postgres().await);
        let mut out = Vec::new();
        for url in urls {
            let a = Store::open(&url)
                .await
                .unwrap()
                .with_node(node("a", std::process::id()), DEFAULT_CLAIM_TTL);
            let b = Store::open(&url)
                .await
                .unwrap()
                .with_node(node("b", 1), DEFAULT_CLAIM_TTL);
            out.push((a, b, tempfile::tempdir().unwrap()));
        }
        let _keep = dir.keep();
        out
    }

    #[tokio::test]
    async fn a_live_claim_is_exclusive_and_an_expired_one_is_taken_over_and_fenced() {
        for (a, b, _dir) in pairs().await {
            a.create_run(&new_run("r1", &[])).await.unwrap();
            let err = b.claim("r1").await.unwrap_err().to_string();
            assert!(err.contains("is being executed by a"), "{err}");
            assert!(a.may_send("r1").is_ok());

            // a stops renewing: its claim expires.
            a.execute_unchecked("UPDATE runs SET claim_expires_ms = 0")
                .await
                .unwrap();
            assert_eq!(b.claim("r1").await.unwrap(), 2, "epoch raised");
            assert!(!a.renew("r1").await.unwrap(), "a learns it lost the run");
            assert!(a.may_send("r1").is_err(), "a sends nothing more");
            let fenced = a
                .set_step("r1", "precheck", StepStatus::Running, None, None)
                .await
                .unwrap_err()
                .to_string();
            assert!(
                fenced.contains("no longer executed by this process"),
                "{fenced}"
            );
            b.set_step("r1", "precheck", StepStatus::Running, None, None)
                .await
                .unwrap();
            let run = b.run("r1").await.unwrap().unwrap();
            assert_eq!(run.status, RunStatus::Running);
            let taken: Vec<_> = b
                .events(None)
                .await
                .unwrap()
                .into_iter()
                .filter(|e| e.kind == "run.taken_over")
                .collect();
            assert_eq!(taken.len(), 1);
            assert_eq!(
                (
                    taken[0].data["node"].as_str(),
                    taken[0].data["from"].as_str()
                ),
                (Some("b"), Some("a"))
            );
            b.finish_run("r1", RunStatus::Succeeded, None, "b")
                .await
                .unwrap();
            assert!(b.verify().await.unwrap().is_ok());
            let done = a.claim("r1").await.unwrap_err().to_string();
            assert!(done.contains("succeeded, not running"), "{done}");
        }
    }

    /// The renewer read a's claim, then a released the run (it stopped at a
    /// boundary): the renewal that lands after the release extends nothing,
    /// so b takes the run over at once and a holds nothing.
    #[tokio::test]
    async fn a_renewal_under_way_does_not_revive_a_released_claim() {
        for (a, b, _dir) in pairs().await {
            a.create_run(&new_run("r1", &[])).await.unwrap();
            let seen = a.claims.get("r1").unwrap();
            a.release("r1").await.unwrap();
            let run_id = "r1".to_string();
            let lost = a.renew_held(vec![(&run_id, seen)]).await.unwrap();
            assert!(lost.is_empty(), "a no longer held it: nothing to report");
            assert!(a.may_send("r1").is_err(), "a holds nothing");
            assert_eq!(b.claimable_runs().await.unwrap(), ["r1"]);
            assert_eq!(
                b.claim("r1").await.unwrap(),
                3,
                "created 1, released 2, taken 3"
            );
        }
    }

    #[tokio::test]
    async fn a_run_of_an_ended_process_of_this_host_is_free_at_once() {
        for (a, b, _dir) in pairs().await {
            b.create_run(&new_run("r1", &[])).await.unwrap();
            assert!(a.claim("r1").await.is_err(), "b (pid 1) is alive");
            a.execute_unchecked("UPDATE runs SET owner_pid = 999999999")
                .await
                .unwrap();
            assert_eq!(a.claimable_runs().await.unwrap(), ["r1"]);
            assert_eq!(a.claim("r1").await.unwrap(), 2);
            assert!(a.claimable_runs().await.unwrap().is_empty());
        }
    }

    /// Renewal runs on the real clock (as the claim's expiry does), so this
    /// test waits real time: a claim of 600 ms is renewed every 200 ms while
    /// kept, and lapses once the guard is dropped.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_kept_claim_is_renewed_and_lapses_when_released_by_its_guard() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&format!("sqlite://{}", dir.path().join("a.db").display()))
            .await
            .unwrap()
            .with_node(node("a", std::process::id()), Duration::from_millis(600));
        store.create_run(&new_run("r1", &[])).await.unwrap();
        store.create_run(&new_run("r2", &[])).await.unwrap();
        let kept = store.keep_claimed("r1");
        let other = store.keep_claimed("r2");
        tokio::time::sleep(Duration::from_millis(1_000)).await;
        assert!(
            store.may_send("r1").is_ok(),
            "renewed past its first 600 ms"
        );
        assert!(store.may_send("r2").is_ok());
        drop(kept);
        tokio::time::sleep(Duration::from_millis(1_000)).await;
        assert!(store.may_send("r1").is_err(), "no longer renewed");
        assert!(store.may_send("r2").is_ok(), "one renewer serves both");
        drop(other);
    }

    #[tokio::test]
    async fn a_claim_past_its_local_deadline_sends_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&format!("sqlite://{}", dir.path().join("a.db").display()))
            .await
            .unwrap()
            .with_node(node("a", std::process::id()), Duration::ZERO);
        store.create_run(&new_run("r1", &[])).await.unwrap();
        let err = store.may_send("r1").unwrap_err().to_string();
        assert!(err.contains("not renewed in time"), "{err}");
    }
}
