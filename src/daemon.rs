//! The long-running service: loads config and runbooks, resumes interrupted
//! runs, fires schedules, serves the API, reloads on SIGHUP and stops
//! gracefully on SIGTERM/SIGINT (a second signal exits at once).
//!
//! It owns the runs it executes (their live event channels and the task
//! tracker); the API and the scheduler go through it. It reuses the engine and
//! the store as they are.

pub mod checkpoint;
pub mod follow;
pub mod http;
mod service;

pub use service::{DaemonLauncher, handle_signals, serve};

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use anyhow::Context;
use chrono::{DateTime, Utc};
use sha2::Digest;
use tokio::sync::{broadcast, watch};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::cloud::CloudClient;
use crate::config::Config;
use crate::engine::run::EngineError;
use crate::engine::{Approvals, Engine, RunEvent, RunRequest};
use crate::metrics::Metrics;
use crate::runbook::{self, Kind, Runbook};
use crate::scheduler::{self, Job};
use crate::store::{Admission, Decision, StepStatus, Store, StoreError, Trigger};
use crate::yaml::Diagnostic;

/// How long SIGTERM waits for runs to reach a step boundary.
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(60);

/// The loaded runbooks and the files that did not load.
#[derive(Debug, Clone, Default)]
pub struct Registry {
    /// Runbooks by name.
    pub runbooks: BTreeMap<String, Runbook>,
    /// Problems by file; a file listed here may still have its previous version loaded.
    pub errors: BTreeMap<PathBuf, Vec<Diagnostic>>,
}

impl Registry {
    /// Loads every runbook in `dir`. A file that no longer validates keeps its
    /// version from `previous`, and its errors are listed.
    pub fn load(dir: &Path, previous: Option<&Registry>) -> Registry {
        let mut registry = Registry::default();
        let files = match runbook::find_files(&[dir.to_path_buf()]) {
            Ok(f) => f,
            Err(d) => {
                registry.errors.insert(dir.to_path_buf(), vec![d]);
                return registry;
            }
        };
        for (file, result) in runbook::load_all(&files) {
            match result {
                Ok(r) => {
                    registry.runbooks.insert(r.name.clone(), r);
                }
                Err(errors) => {
                    tracing::error!(file = %file.display(), errors = errors.len(), "Runbook does not validate: {}", errors.iter().map(ToString::to_string).collect::<Vec<_>>().join("; "));
                    if let Some(old) =
                        previous.and_then(|p| p.runbooks.values().find(|r| r.path == file))
                    {
                        tracing::warn!(runbook = %old.name, "Keeping the previous version.");
                        registry.runbooks.insert(old.name.clone(), old.clone());
                    }
                    registry.errors.insert(file, errors);
                }
            }
        }
        registry
    }

    /// Every schedule of every runbook.
    pub fn jobs(&self) -> Vec<Job> {
        self.runbooks
            .values()
            .flat_map(|r| {
                r.schedules.iter().map(|s| Job {
                    runbook: r.name.clone(),
                    schedule: s.clone(),
                })
            })
            .collect()
    }
}

/// Why a run could not be triggered.
#[derive(Debug, thiserror::Error)]
pub enum TriggerError {
    /// No runbook of that name.
    #[error("no runbook named `{0}`")]
    UnknownRunbook(String),
    /// The engine refused (parameters, lease, store).
    #[error(transparent)]
    Engine(#[from] EngineError),
    /// The `Idempotency-Key` came with another request before.
    #[error("Idempotency-Key `{key}` was used for a different request (run {run_id})")]
    KeyReused { key: String, run_id: String },
}

/// A triggered run: new, or the one an earlier request with the same
/// `Idempotency-Key` started.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Triggered {
    pub run_id: String,
    /// True when the key had started it before (nothing new was started).
    pub repeated: bool,
}

/// Why an approval decision was refused.
#[derive(Debug, thiserror::Error)]
pub enum DecideError {
    /// No such run.
    #[error("no run {0}")]
    NotFound(String),
    /// The requester of a run may not approve it.
    #[error("{approver} started run {run} and cannot approve it")]
    Requester {
        /// Who tried.
        approver: String,
        run: String,
    },
    /// The run is not waiting in an approval step.
    #[error("{0}")]
    NoApprovalPending(String),
    /// The step has all the approvals it needs (or a rejection) already;
    /// the run goes on without this one.
    #[error("step `{step}` has the approvals it needs already; the run is going on")]
    Settled {
        /// The approval step.
        step: String,
    },
    /// This person decided on this step already.
    #[error("{approver} already decided on step `{step}`")]
    AlreadyDecided {
        approver: String,
        /// The approval step.
        step: String,
    },
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// An approval decision as stored.
#[derive(Debug, Clone)]
pub struct Decided {
    /// The approval step it is for.
    pub step_id: String,
    /// What was decided.
    pub decision: Decision,
}

/// The daemon's shared state.
pub struct Daemon {
    config: RwLock<Config>,
    config_path: Option<PathBuf>,
    store: Store,
    registry: RwLock<Registry>,
    cloud: RwLock<Arc<CloudClient>>,
    metrics: Metrics,
    live: Mutex<HashMap<String, broadcast::Sender<RunEvent>>>,
    stop: CancellationToken,
    tracker: TaskTracker,
    jobs: watch::Sender<Vec<Job>>,
    ready: AtomicBool,
}

impl Daemon {
    /// Builds the daemon from a loaded config (opens the store, loads runbooks).
    pub async fn new(config: Config, config_path: Option<PathBuf>) -> anyhow::Result<Arc<Daemon>> {
        let node = crate::store::Node::this_process(config.node.name.as_deref());
        let store = Store::open(&config.database_url)
            .await?
            .with_node(node, config.node.claim_ttl);
        let metrics = Metrics::new();
        let cloud = CloudClient::new(&config.cloud)
            .context("cloud client")?
            .on_throttle(metrics.throttle_hook());
        let registry = Registry::load(&config.runbooks_dir, None);
        let (jobs, _) = watch::channel(registry.jobs());
        Ok(Arc::new(Daemon {
            config: RwLock::new(config),
            config_path,
            store,
            registry: RwLock::new(registry),
            cloud: RwLock::new(Arc::new(cloud)),
            metrics,
            live: Mutex::new(HashMap::new()),
            stop: CancellationToken::new(),
            tracker: TaskTracker::new(),
            jobs,
            ready: AtomicBool::new(false),
        }))
    }

    pub fn store(&self) -> &Store {
        &self.store
    }

    pub fn metrics(&self) -> &Metrics {
        &self.metrics
    }

    /// A copy of the current config.
    pub fn config(&self) -> Config {
        self.config
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// The name and role of the API token `token`, if it is one.
    pub fn find_token(&self, token: &str) -> Option<(String, crate::config::Role)> {
        let config = self.config.read().unwrap_or_else(|p| p.into_inner());
        config.find_token(token).map(|t| (t.name.clone(), t.role))
    }

    /// A copy of the current runbooks.
    pub fn registry(&self) -> Registry {
        self.registry
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// True once runs are resumed and the scheduler is started.
    pub fn is_ready(&self) -> bool {
        self.ready.load(Ordering::Relaxed)
    }

    /// A live event channel of a run being executed here, if it is.
    pub fn subscribe(&self, run_id: &str) -> Option<broadcast::Receiver<RunEvent>> {
        self.live
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(run_id)
            .map(broadcast::Sender::subscribe)
    }

    /// Starts a run and executes it in the background. With an
    /// `Idempotency-Key`, a request that repeats an earlier one of the same
    /// actor (same runbook, parameters and dry run) gets that run back and
    /// starts nothing; the key with another request is refused.
    pub async fn trigger(
        self: &Arc<Self>,
        name: &str,
        params: BTreeMap<String, String>,
        trigger: Trigger,
        actor: &str,
        dry_run: bool,
        key: Option<String>,
    ) -> Result<Triggered, TriggerError> {
        let digest = hex::encode(sha2::Sha256::digest(
            serde_json::json!({"runbook": name, "params": params, "dry_run": dry_run}).to_string(),
        ));
        if let Some(key) = &key
            && let Some(earlier) = self.earlier_run(actor, key, &digest).await?
        {
            return Ok(earlier);
        }
        let idempotency = key.clone().map(|k| (k, digest.clone()));
        let request = |runbook| RunRequest {
            runbook,
            params,
            trigger,
            requested_by: actor.to_string(),
            idempotency,
            dry_run,
            fire: None,
        };
        match self.start(name, request).await {
            Ok(run_id) => Ok(Triggered {
                run_id,
                repeated: false,
            }),
            // The same key raced this request in: its run is the answer.
            Err(TriggerError::Engine(EngineError::Store(e))) if key.is_some() => {
                let key = key.unwrap_or_default();
                match self.earlier_run(actor, &key, &digest).await? {
                    Some(earlier) => Ok(earlier),
                    None => Err(TriggerError::Engine(EngineError::Store(e))),
                }
            }
            Err(e) => Err(e),
        }
    }

    /// The run an earlier request with this key started, if any.
    async fn earlier_run(
        &self,
        actor: &str,
        key: &str,
        digest: &str,
    ) -> Result<Option<Triggered>, TriggerError> {
        let earlier = self
            .store
            .idempotent_run(actor, key)
            .await
            .map_err(EngineError::Store)?;
        match earlier {
            None => Ok(None),
            Some((previous, run_id)) if previous == digest => Ok(Some(Triggered {
                run_id,
                repeated: true,
            })),
            Some((_, run_id)) => Err(TriggerError::KeyReused {
                key: key.to_string(),
                run_id,
            }),
        }
    }

    /// Starts a run of runbook `name` as `request` (given the runbook) asks.
    async fn start(
        self: &Arc<Self>,
        name: &str,
        request: impl FnOnce(Runbook) -> RunRequest,
    ) -> Result<String, TriggerError> {
        let runbook = self
            .registry()
            .runbooks
            .get(name)
            .cloned()
            .ok_or_else(|| TriggerError::UnknownRunbook(name.to_string()))?;
        let kind = runbook.kind;
        let cloud = self.client();
        let engine = self.engine(cloud.clone(), None);
        let run_id = engine.start(request(runbook)).await?;
        self.metrics.run_started(name);
        self.execute(run_id.clone(), cloud, name.to_string(), kind);
        Ok(run_id)
    }

    fn engine(
        &self,
        cloud: Arc<CloudClient>,
        events: Option<broadcast::Sender<RunEvent>>,
    ) -> Engine<CloudClient> {
        let settings = self.config().engine.clone();
        let sink = Arc::new(move |e: &RunEvent| {
            if let Some(tx) = &events {
                let _ = tx.send(e.clone());
            }
        });
        Engine::new(cloud, self.store.clone(), sink, Approvals::Api).with_settings(&settings)
    }

    /// Executes a stored run in the background (new or resumed).
    fn execute(
        self: &Arc<Self>,
        run_id: String,
        cloud: Arc<CloudClient>,
        runbook: String,
        kind: Kind,
    ) {
        let (tx, _) = broadcast::channel(1024);
        self.live
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(run_id.clone(), tx.clone());
        // Metrics see every event of the run.
        let metrics_rx = tx.subscribe();
        let engine = self.engine(cloud, Some(tx));
        let daemon = self.clone();
        let stop = self.stop.clone();
        self.tracker.spawn(async move {
            let observer = tokio::spawn(observe(daemon.clone(), metrics_rx, runbook.clone(), kind));
            let ended = engine.execute(&run_id, &stop).await;
            // The engine holds the run's event sender: the observer ends
            // once it is gone, also when the run stopped without finishing.
            drop(engine);
            match ended {
                Ok(summary) => {
                    tracing::info!(run.id = %run_id, status = %summary.status, "Run ended.")
                }
                Err(EngineError::Store(e @ StoreError::Owned { .. })) => {
                    tracing::info!(run.id = %run_id, reason = %e, "Another process executes this run.")
                }
                Err(e) => {
                    tracing::error!(run.id = %run_id, error = %e, "Run stopped; it is resumable.")
                }
            }
            daemon
                .live
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .remove(&run_id);
            let _ = observer.await;
        });
    }

    /// Records `approver`'s decision on the approval step run `run_id` waits
    /// in. The rules: never the requester, only while an approval step is
    /// running, once per person and step. (The engine counts the approvals of
    /// distinct approvers other than the requester.)
    pub async fn decide(
        &self,
        run_id: &str,
        approver: &str,
        decision: Decision,
        comment: Option<&str>,
    ) -> Result<Decided, DecideError> {
        let run = self
            .store
            .run(run_id)
            .await?
            .ok_or_else(|| DecideError::NotFound(run_id.to_string()))?;
        if run.requested_by == approver {
            return Err(DecideError::Requester {
                approver: approver.to_string(),
                run: run_id.to_string(),
            });
        }
        let book =
            runbook::parse(&run.runbook_source, Path::new(&run.runbook_path)).map_err(|_| {
                DecideError::NoApprovalPending("the run's runbook cannot be read".into())
            })?;
        let steps = self.store.steps(run_id).await?;
        let waiting = steps
            .iter()
            .find(|s| {
                s.status == StepStatus::Running
                    && book.all_steps().any(|b| {
                        b.id == s.step_id && matches!(b.action, runbook::Action::Approval(_))
                    })
            })
            .ok_or_else(|| {
                DecideError::NoApprovalPending(format!(
                    "run {run_id} is {} and not waiting for an approval",
                    run.status
                ))
            })?;
        let admitted = self
            .store
            .admit_approval(
                run_id,
                &waiting.step_id,
                approver,
                &run.requested_by,
                decision,
                comment,
            )
            .await?;
        let step = waiting.step_id.clone();
        match admitted {
            Admission::Recorded => {}
            Admission::AlreadyDecided => {
                return Err(DecideError::AlreadyDecided {
                    approver: approver.to_string(),
                    step,
                });
            }
            Admission::Settled => return Err(DecideError::Settled { step }),
            Admission::NotWaiting => {
                return Err(DecideError::NoApprovalPending(format!(
                    "run {run_id} is no longer waiting for an approval"
                )));
            }
        }
        Ok(Decided {
            step_id: waiting.step_id.clone(),
            decision,
        })
    }

    /// The shared client (a dry run wraps it in the engine).
    fn client(&self) -> Arc<CloudClient> {
        self.cloud.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Takes over every running run that no live process holds (this
    /// daemon's own after a restart, or another daemon's that stopped
    /// renewing its claim): it is executed here through the crash-recovery
    /// path. How many were taken.
    pub async fn take_over_runs(self: &Arc<Self>) -> Result<usize, StoreError> {
        let mut taken = 0;
        for id in self.store.claimable_runs().await? {
            if self.subscribe(&id).is_some() {
                continue;
            }
            let Some(run) = self.store.run(&id).await? else {
                continue;
            };
            tracing::info!(run.id = %run.id, runbook = %run.runbook, node = %self.store.node().name, "Taking over a run nobody holds.");
            self.execute(run.id.clone(), self.client(), run.runbook.clone(), run.kind);
            taken += 1;
        }
        Ok(taken)
    }

    /// Reloads config and runbooks (SIGHUP). Runbooks that no longer validate
    /// keep their previous version; their errors are logged and shown by the API.
    pub async fn reload(&self) {
        match Config::load(self.config_path.as_deref()) {
            Ok(config) => {
                match CloudClient::new(&config.cloud) {
                    Ok(c) => {
                        let c = c.on_throttle(self.metrics.throttle_hook());
                        *self.cloud.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(c);
                    }
                    Err(e) => tracing::error!(error = %e, "Keeping the previous cloud client."),
                }
                *self.config.write().unwrap_or_else(|p| p.into_inner()) = config;
            }
            Err(errors) => {
                tracing::error!(
                    "Config does not validate; keeping the previous one: {}",
                    errors
                        .iter()
                        .map(ToString::to_string)
                        .collect::<Vec<_>>()
                        .join("; ")
                );
            }
        }
        let dir = self.config().runbooks_dir;
        let registry = Registry::load(&dir, Some(&self.registry()));
        let (count, errors) = (registry.runbooks.len(), registry.errors.len());
        let _ = self.jobs.send(registry.jobs());
        *self.registry.write().unwrap_or_else(|p| p.into_inner()) = registry;
        tracing::info!(runbooks = count, invalid_files = errors, "Reloaded.");
        let data = serde_json::json!({ "runbooks": count, "invalid_files": errors });
        if let Err(e) = self
            .store
            .record_event("signal", "config.reload", None, data)
            .await
        {
            tracing::error!(error = %e, "Cannot record the reload.");
        }
    }

    /// Asks every run to stop at its next step boundary and waits up to `grace`.
    pub async fn stop(&self, grace: Duration) {
        self.stop.cancel();
        self.tracker.close();
        if tokio::time::timeout(grace, self.tracker.wait())
            .await
            .is_err()
        {
            tracing::warn!(
                "Runs did not reach a step boundary in time; they resume at the next start."
            );
        }
    }

    /// Next fire time of each schedule of a runbook.
    pub fn next_fires(
        runbook: &Runbook,
        now: DateTime<Utc>,
    ) -> Vec<(String, Option<DateTime<Utc>>)> {
        runbook
            .schedules
            .iter()
            .map(|s| {
                (
                    s.name.clone(),
                    if s.enabled {
                        scheduler::next_fire(s, now)
                    } else {
                        None
                    },
                )
            })
            .collect()
    }
}

/// Feeds a run's events to the metrics until it ends.
async fn observe(
    daemon: Arc<Daemon>,
    mut rx: broadcast::Receiver<RunEvent>,
    runbook: String,
    kind: Kind,
) {
    loop {
        match rx.recv().await {
            Ok(event) => {
                let finished = matches!(event, RunEvent::RunFinished { .. });
                daemon.metrics.observe(&runbook, kind, &event);
                if finished {
                    return;
                }
            }
            Err(broadcast::error::RecvError::Lagged(_)) => continue,
            Err(broadcast::error::RecvError::Closed) => return,
        }
    }
}
