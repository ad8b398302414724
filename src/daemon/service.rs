//! Serving: the daemon's background tasks (take-over, checkpoints, the
//! scheduler) around the HTTP server, and the signals that stop or reload it.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use chrono::{DateTime, Utc};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::daemon::{Daemon, SHUTDOWN_GRACE, TriggerError, checkpoint};
use crate::engine::RunRequest;
use crate::engine::run::EngineError;
use crate::scheduler::{self, Job, Launched, Launcher, TokioClock};
use crate::store::{RunStatus, StoreError, Trigger};

/// The scheduler starts runs through the daemon.
pub struct DaemonLauncher(pub Arc<Daemon>);

impl Launcher for DaemonLauncher {
    async fn launch(&self, job: &Job, fire_at: DateTime<Utc>) -> Result<Launched, String> {
        let actor = format!("schedule:{}", job.schedule.name);
        let fire = crate::store::FireKey {
            runbook: job.runbook.clone(),
            schedule: job.schedule.name.clone(),
            fire_at,
        };
        let request = |runbook| RunRequest {
            runbook,
            params: job.schedule.params.clone(),
            trigger: Trigger::Schedule,
            requested_by: actor,
            idempotency: None,
            dry_run: false,
            fire: Some(fire),
        };
        let started = self.0.start(&job.runbook, request).await;
        match started {
            Ok(run_id) => {
                tracing::info!(runbook = %job.runbook, %fire_at, "Schedule fires.");
                Ok(Launched::Started(run_id))
            }
            Err(TriggerError::Engine(EngineError::Store(StoreError::FireTaken { .. }))) => {
                Ok(Launched::Elsewhere)
            }
            Err(e) => Err(e.to_string()),
        }
    }

    async fn is_active(&self, run_id: &str) -> bool {
        matches!(self.0.store.run(run_id).await, Ok(Some(r)) if r.status == RunStatus::Running)
    }
}

/// Runs the daemon on `listener` until `shutdown`, serving `router` (the
/// caller builds it, `api::router`, so the daemon does not depend on its API).
pub async fn serve(
    daemon: Arc<Daemon>,
    router: axum::Router,
    listener: TcpListener,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    let addr = listener.local_addr()?;
    let resumed = daemon.take_over_runs().await?;
    // Runs of daemons that stopped renewing their claims are taken over.
    let takeover = {
        let daemon = daemon.clone();
        let stop = shutdown.clone();
        tokio::spawn(async move {
            let mut every = tokio::time::interval(daemon.store.claim_ttl() / 3);
            loop {
                tokio::select! {
                    _ = stop.cancelled() => return,
                    _ = every.tick() => {}
                }
                if let Err(e) = daemon.take_over_runs().await {
                    tracing::warn!(error = %e, "Cannot look for runs to take over.");
                }
            }
        })
    };
    let config = daemon.config();
    if let (Some(key), Some(interval)) = (
        config.audit.signing_key.clone(),
        config.audit.checkpoint_interval,
    ) {
        let store = daemon.store.clone();
        tokio::spawn(checkpoint::every(store, key, interval, shutdown.clone()));
    }
    let scheduler_stop = CancellationToken::new();
    let scheduler = tokio::spawn(scheduler::run(
        daemon.jobs.subscribe(),
        Arc::new(daemon.store.clone()),
        Arc::new(DaemonLauncher(daemon.clone())),
        Arc::new(TokioClock::system()),
        config.scheduler.missed_fire_grace,
        scheduler_stop.clone(),
    ));
    daemon.ready.store(true, Ordering::Relaxed);
    let registry = daemon.registry();
    tracing::info!(
        %addr,
        runbooks = registry.runbooks.len(),
        invalid_files = registry.errors.len(),
        schedules = registry.jobs().len(),
        resumed,
        node = %daemon.store.node().name,
        database = %crate::redact::url(&config.database_url),
        "drover daemon serving http://{addr}/v1"
    );
    super::http::serve_http(listener, router, config.api_limits, shutdown.clone()).await;
    takeover.abort();
    scheduler_stop.cancel();
    let _ = scheduler.await;
    daemon.stop(SHUTDOWN_GRACE).await;
    Ok(())
}

/// Installs signal handling: SIGTERM/SIGINT cancel `shutdown` (a second one
/// exits at once), SIGHUP reloads.
pub fn handle_signals(daemon: Arc<Daemon>, shutdown: CancellationToken) -> anyhow::Result<()> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    let mut hup = signal(SignalKind::hangup())?;
    tokio::spawn(async move {
        let mut stopping = false;
        loop {
            tokio::select! {
                _ = term.recv() => {}
                _ = int.recv() => {}
                _ = hup.recv() => { daemon.reload().await; continue; }
            }
            if stopping {
                tracing::warn!(
                    "Second signal: exiting now; unfinished runs resume at the next start."
                );
                std::process::exit(130);
            }
            stopping = true;
            tracing::info!("Stopping: no new requests; runs stop at their next step boundary.");
            shutdown.cancel();
        }
    });
    Ok(())
}
