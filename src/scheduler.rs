//! The scheduler: fires each runbook schedule at its cron instants in its time
//! zone (DST handled by croner: a 02:30 job runs at 03:00 on the spring-forward
//! day and once on the fall-back day), never overlapping itself, and on start
//! runs a fire missed while the daemon was down if it is within the grace
//! window (otherwise records it as missed). Every fire is recorded in the store.
//!
//! Time comes from a [`Clock`], so tests drive it with paused tokio time.

use std::collections::HashMap;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use crate::runbook::Schedule;
use crate::store::Store;

/// Where the scheduler reads the time.
pub trait Clock: Send + Sync {
    fn now(&self) -> DateTime<Utc>;
}

/// Wall-clock time that moves with tokio's clock (and so pauses and jumps in tests).
#[derive(Debug, Clone)]
pub struct TokioClock {
    wall: DateTime<Utc>,
    base: tokio::time::Instant,
}

impl TokioClock {
    /// A clock reading `start` now.
    pub fn starting_at(start: DateTime<Utc>) -> Self {
        TokioClock {
            wall: start,
            base: tokio::time::Instant::now(),
        }
    }

    /// The system time.
    pub fn system() -> Self {
        Self::starting_at(Utc::now())
    }
}

impl Clock for TokioClock {
    fn now(&self) -> DateTime<Utc> {
        self.wall + chrono::Duration::from_std(self.base.elapsed()).unwrap_or_default()
    }
}

/// One schedule of one runbook.
#[derive(Debug, Clone)]
pub struct Job {
    pub runbook: String,
    pub schedule: Schedule,
}

impl Job {
    fn key(&self) -> (String, String) {
        (self.runbook.clone(), self.schedule.name.clone())
    }
}

/// The first cron instant strictly after `after`, read in the schedule's time zone.
pub fn next_fire(schedule: &Schedule, after: DateTime<Utc>) -> Option<DateTime<Utc>> {
    let local = after.with_timezone(&schedule.timezone);
    schedule
        .cron
        .find_next_occurrence(&local, false)
        .ok()
        .map(|t| t.with_timezone(&Utc))
}

/// The latest cron instant in `(after, until]`, and how many there were.
pub fn latest_fire_between(
    schedule: &Schedule,
    after: DateTime<Utc>,
    until: DateTime<Utc>,
) -> Option<(DateTime<Utc>, usize)> {
    let mut latest = None;
    let mut count = 0;
    let mut t = after;
    // Bounded: a schedule firing every second for a week is 604,800 steps; stop earlier.
    while let Some(next) = next_fire(schedule, t) {
        if next > until || count >= 100_000 {
            break;
        }
        latest = Some(next);
        count += 1;
        t = next;
    }
    latest.map(|l| (l, count))
}

/// Where fires are recorded and the last one is found ([`Store`] in the daemon).
pub trait FireLog: Send + Sync + 'static {
    /// Records what was done with a fire.
    fn record(
        &self,
        job: &Job,
        fire_at: DateTime<Utc>,
        outcome: &str,
        run_id: Option<&str>,
        detail: Option<&str>,
    ) -> impl Future<Output = Result<(), String>> + Send;
    /// The latest recorded fire of a job.
    fn last(&self, job: &Job)
    -> impl Future<Output = Result<Option<DateTime<Utc>>, String>> + Send;
    /// Takes a fire for this scheduler: `false` when another (a daemon
    /// sharing the database) already took it, so that each fire is acted on
    /// once across daemons.
    fn take(
        &self,
        job: &Job,
        fire_at: DateTime<Utc>,
    ) -> impl Future<Output = Result<bool, String>> + Send;
    /// The run the job's latest started fire started, whichever daemon
    /// started it.
    fn last_started(
        &self,
        job: &Job,
    ) -> impl Future<Output = Result<Option<String>, String>> + Send;
}

impl FireLog for Store {
    async fn record(
        &self,
        job: &Job,
        fire_at: DateTime<Utc>,
        outcome: &str,
        run_id: Option<&str>,
        detail: Option<&str>,
    ) -> Result<(), String> {
        self.record_fire(
            &job.runbook,
            &job.schedule.name,
            fire_at,
            outcome,
            run_id,
            detail,
        )
        .await
        .map_err(|e| e.to_string())
    }
    async fn last(&self, job: &Job) -> Result<Option<DateTime<Utc>>, String> {
        self.last_fire(&job.runbook, &job.schedule.name)
            .await
            .map_err(|e| e.to_string())
    }
    async fn take(&self, job: &Job, fire_at: DateTime<Utc>) -> Result<bool, String> {
        self.take_fire(&job.runbook, &job.schedule.name, fire_at)
            .await
            .map_err(|e| e.to_string())
    }
    async fn last_started(&self, job: &Job) -> Result<Option<String>, String> {
        self.last_started_run(&job.runbook, &job.schedule.name)
            .await
            .map_err(|e| e.to_string())
    }
}

/// What a launch did with a fire.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Launched {
    /// This process started the fire's run (the fire is recorded as started
    /// by it in the same transaction).
    Started(String),
    /// A process sharing the database had the fire already.
    Elsewhere,
}

/// What starts runs for the scheduler.
pub trait Launcher: Send + Sync + 'static {
    /// Starts a run of `job` for the fire at `fire_at`, taking the fire in
    /// the run's creation, so that a process dying in between leaves neither
    /// behind; or why it could not start one.
    fn launch(
        &self,
        job: &Job,
        fire_at: DateTime<Utc>,
    ) -> impl Future<Output = Result<Launched, String>> + Send;
    /// True while run `run_id` is still going.
    fn is_active(&self, run_id: &str) -> impl Future<Output = bool> + Send;
}

/// Fires schedules until `shutdown`. `jobs` may be replaced at any time (reload).
pub async fn run<L: Launcher, F: FireLog>(
    jobs: watch::Receiver<Vec<Job>>,
    log: Arc<F>,
    launcher: Arc<L>,
    clock: Arc<dyn Clock>,
    grace: Duration,
    shutdown: CancellationToken,
) {
    let mut jobs = jobs;
    let mut scheduler = Scheduler {
        log,
        launcher,
        clock,
        grace,
        considered: HashMap::new(),
    };
    let current = jobs.borrow_and_update().clone();
    scheduler.catch_up(&current).await;
    loop {
        let current = jobs.borrow().clone();
        let now = scheduler.clock.now();
        let due: Vec<(Job, DateTime<Utc>)> = current
            .iter()
            .filter(|j| j.schedule.enabled)
            .filter_map(|j| {
                let after = scheduler
                    .considered
                    .get(&j.key())
                    .copied()
                    .unwrap_or(now)
                    .max(now - chrono::Duration::seconds(1));
                next_fire(&j.schedule, after).map(|t| (j.clone(), t))
            })
            .collect();
        let Some(next) = due.iter().map(|(_, t)| *t).min() else {
            // Nothing scheduled: wait for a reload or the end.
            tokio::select! {
                _ = shutdown.cancelled() => return,
                changed = jobs.changed() => if changed.is_err() { return } else { continue },
            }
        };
        let wait = (next - now).to_std().unwrap_or_default();
        tokio::select! {
            _ = shutdown.cancelled() => return,
            changed = jobs.changed() => {
                if changed.is_err() {
                    return;
                }
                continue;
            }
            _ = tokio::time::sleep(wait) => {}
        }
        for (job, at) in due.into_iter().filter(|(_, t)| *t == next) {
            scheduler.considered.insert(job.key(), at);
            scheduler.launch(&job, at).await;
        }
    }
}

struct Scheduler<L: Launcher, F: FireLog> {
    log: Arc<F>,
    launcher: Arc<L>,
    clock: Arc<dyn Clock>,
    grace: Duration,
    considered: HashMap<(String, String), DateTime<Utc>>,
}

impl<L: Launcher, F: FireLog> Scheduler<L, F> {
    /// At start: the latest fire missed since the last recorded one runs if it
    /// is within the grace window; otherwise it is recorded as missed.
    async fn catch_up(&mut self, jobs: &[Job]) {
        let now = self.clock.now();
        for job in jobs.iter().filter(|j| j.schedule.enabled) {
            let last = match self.log.last(job).await {
                Ok(Some(last)) => last,
                // Never fired: a new schedule starts from now.
                Ok(None) => continue,
                Err(e) => {
                    tracing::error!(runbook = %job.runbook, schedule = %job.schedule.name, error = %e, "Cannot read the last fire.");
                    continue;
                }
            };
            let Some((missed, count)) = latest_fire_between(&job.schedule, last, now) else {
                continue;
            };
            self.considered.insert(job.key(), missed);
            let late = (now - missed).to_std().unwrap_or_default();
            if late <= self.grace {
                tracing::info!(runbook = %job.runbook, schedule = %job.schedule.name, %missed, "Running a fire missed while stopped.");
                self.launch(job, missed).await;
            } else if self.taken(job, missed).await {
                let detail = format!(
                    "{count} fire(s) missed while the daemon was stopped; the latest was {}s late, beyond the grace of {}s",
                    late.as_secs(),
                    self.grace.as_secs()
                );
                tracing::warn!(runbook = %job.runbook, schedule = %job.schedule.name, %missed, "{detail}");
                self.record(job, missed, "missed", None, Some(&detail))
                    .await;
            }
        }
    }

    /// Whether this scheduler may act on the fire (another daemon may have).
    async fn taken(&self, job: &Job, at: DateTime<Utc>) -> bool {
        match self.log.take(job, at).await {
            Ok(true) => true,
            Ok(false) => {
                tracing::info!(runbook = %job.runbook, schedule = %job.schedule.name, %at, "Another daemon took this fire.");
                false
            }
            Err(e) => {
                tracing::error!(runbook = %job.runbook, schedule = %job.schedule.name, %at, error = %e, "Cannot take a fire; it is left to the other daemons.");
                false
            }
        }
    }

    /// Starts the run of a fire unless the schedule's previous run is still
    /// going (started by any daemon on the database). The run's creation
    /// takes the fire; a skip or a failure to start takes it on its own.
    async fn launch(&mut self, job: &Job, at: DateTime<Utc>) {
        let previous = match self.log.last_started(job).await {
            Ok(previous) => previous,
            Err(e) => {
                tracing::error!(runbook = %job.runbook, schedule = %job.schedule.name, error = %e, "Cannot read the schedule's previous run; starting this one.");
                None
            }
        };
        if let Some(previous) = &previous
            && self.launcher.is_active(previous).await
        {
            if !self.taken(job, at).await {
                return;
            }
            let detail = format!("run {previous} of this schedule is still going");
            tracing::warn!(runbook = %job.runbook, schedule = %job.schedule.name, %at, "Skipping a fire: {detail}.");
            self.record(
                job,
                at,
                "skipped_overlap",
                Some(previous.clone()).as_deref(),
                Some(&detail),
            )
            .await;
            return;
        }
        match self.launcher.launch(job, at).await {
            Ok(Launched::Started(run_id)) => {
                tracing::info!(runbook = %job.runbook, schedule = %job.schedule.name, %at, run.id = %run_id, "Scheduled run started.");
                self.record(job, at, "started", Some(&run_id), None).await;
            }
            Ok(Launched::Elsewhere) => {
                tracing::info!(runbook = %job.runbook, schedule = %job.schedule.name, %at, "Another daemon took this fire.");
            }
            Err(why) if !self.taken(job, at).await => {
                tracing::info!(runbook = %job.runbook, schedule = %job.schedule.name, %at, error = %why, "Could not start a run for this fire, and another daemon has taken it.");
            }
            Err(why) => {
                tracing::error!(runbook = %job.runbook, schedule = %job.schedule.name, %at, error = %why, "Scheduled run did not start.");
                self.record(job, at, "not_started", None, Some(&why)).await;
            }
        }
    }

    async fn record(
        &self,
        job: &Job,
        at: DateTime<Utc>,
        outcome: &str,
        run_id: Option<&str>,
        detail: Option<&str>,
    ) {
        if let Err(e) = self.log.record(job, at, outcome, run_id, detail).await {
            tracing::error!(runbook = %job.runbook, schedule = %job.schedule.name, error = %e, "Cannot record a fire.");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::str::FromStr;
    use std::sync::Mutex;

    fn schedule(cron: &str, tz: &str) -> Schedule {
        Schedule {
            name: "s".into(),
            cron_text: cron.into(),
            cron: croner::Cron::from_str(cron).unwrap(),
            timezone: tz.parse().unwrap(),
            params: Default::default(),
            enabled: true,
        }
    }

    fn at(text: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(text)
            .unwrap()
            .with_timezone(&Utc)
    }

    #[test]
    fn fires_follow_the_time_zone_across_dst_changes() {
        let s = schedule("30 2 * * *", "Europe/Berlin");
        // Spring forward (29 March 2026): 02:30 does not exist and runs at 03:00 CEST.
        assert_eq!(
            next_fire(&s, at("2026-03-28T12:00:00Z")),
            Some(at("2026-03-29T01:00:00Z"))
        );
        assert_eq!(
            next_fire(&s, at("2026-03-29T01:00:00Z")),
            Some(at("2026-03-30T00:30:00Z"))
        );
        // Fall back (25 October 2026): 02:30 happens twice and runs once.
        assert_eq!(
            next_fire(&s, at("2026-10-24T12:00:00Z")),
            Some(at("2026-10-25T00:30:00Z"))
        );
        assert_eq!(
            next_fire(&s, at("2026-10-25T00:30:00Z")),
            Some(at("2026-10-26T01:30:00Z"))
        );
    }

    /// Starts runs; a fire it started once is taken (as the store's unique
    /// fire key makes it for processes sharing a database).
    #[derive(Default)]
    struct FakeLauncher {
        launched: Mutex<Vec<(String, DateTime<Utc>)>>,
        active: Mutex<bool>,
    }

    impl Launcher for FakeLauncher {
        async fn launch(&self, job: &Job, fire_at: DateTime<Utc>) -> Result<Launched, String> {
            let mut l = self.launched.lock().unwrap();
            if l.iter().any(|(_, at)| *at == fire_at) {
                return Ok(Launched::Elsewhere);
            }
            l.push((job.schedule.name.clone(), fire_at));
            Ok(Launched::Started(format!("run-{}", l.len())))
        }
        async fn is_active(&self, _run_id: &str) -> bool {
            *self.active.lock().unwrap()
        }
    }

    /// A fire's time, outcome and run.
    type Fire = (DateTime<Utc>, String, Option<String>);

    /// An in-memory fire log: no I/O thread, so paused time stays exact.
    #[derive(Default)]
    struct MemoryLog(
        Mutex<Vec<Fire>>,
        Mutex<std::collections::HashSet<DateTime<Utc>>>,
    );

    impl FireLog for MemoryLog {
        async fn record(
            &self,
            _job: &Job,
            fire_at: DateTime<Utc>,
            outcome: &str,
            run: Option<&str>,
            _detail: Option<&str>,
        ) -> Result<(), String> {
            let run = run.map(str::to_string);
            self.0
                .lock()
                .unwrap()
                .push((fire_at, outcome.to_string(), run));
            Ok(())
        }
        async fn last(&self, _job: &Job) -> Result<Option<DateTime<Utc>>, String> {
            Ok(self.0.lock().unwrap().iter().map(|(t, _, _)| *t).max())
        }
        async fn last_started(&self, _job: &Job) -> Result<Option<String>, String> {
            let log = self.0.lock().unwrap();
            let started = log.iter().filter(|(_, o, _)| o == "started");
            Ok(started
                .max_by_key(|(t, _, _)| *t)
                .and_then(|(_, _, r)| r.clone()))
        }
        async fn take(&self, _job: &Job, fire_at: DateTime<Utc>) -> Result<bool, String> {
            Ok(self.1.lock().unwrap().insert(fire_at))
        }
    }

    fn store() -> Arc<MemoryLog> {
        Arc::new(MemoryLog::default())
    }

    fn outcomes(log: &MemoryLog) -> Vec<String> {
        log.0
            .lock()
            .unwrap()
            .iter()
            .map(|(_, o, _)| o.clone())
            .collect()
    }

    /// The fire times the launcher started runs for, in order.
    fn fired(launcher: &FakeLauncher) -> Vec<DateTime<Utc>> {
        launcher
            .launched
            .lock()
            .unwrap()
            .iter()
            .map(|(_, t)| *t)
            .collect()
    }

    fn job(cron: &str, tz: &str) -> Job {
        Job {
            runbook: "rb".into(),
            schedule: schedule(cron, tz),
        }
    }

    #[tokio::test(start_paused = true)]
    async fn fires_at_the_right_instants_across_the_spring_change() {
        let store = store();
        let launcher = Arc::new(FakeLauncher::default());
        let clock = Arc::new(TokioClock::starting_at(at("2026-03-27T12:00:00Z")));
        let (_tx, rx) = watch::channel(vec![job("30 2 * * *", "Europe/Berlin")]);
        let shutdown = CancellationToken::new();
        let task = tokio::spawn(run(
            rx,
            store.clone(),
            launcher.clone(),
            clock.clone(),
            Duration::from_secs(3600),
            shutdown.clone(),
        ));
        tokio::time::sleep(Duration::from_secs(4 * 24 * 3600)).await;
        shutdown.cancel();
        task.await.unwrap();
        let fired = fired(&launcher);
        assert_eq!(
            fired,
            [
                at("2026-03-28T01:30:00Z"),
                at("2026-03-29T01:00:00Z"),
                at("2026-03-30T00:30:00Z"),
                at("2026-03-31T00:30:00Z")
            ]
        );
        assert_eq!(outcomes(&store), ["started"; 4]);
    }

    /// Two daemons sharing one fire log: every fire is launched once.
    #[tokio::test(start_paused = true)]
    async fn two_schedulers_on_one_log_launch_each_fire_once() {
        let store = store();
        let launcher = Arc::new(FakeLauncher::default());
        let (_tx, rx) = watch::channel(vec![job("0 * * * *", "UTC")]);
        let shutdown = CancellationToken::new();
        let tasks: Vec<_> = (0..2)
            .map(|_| {
                tokio::spawn(run(
                    rx.clone(),
                    store.clone(),
                    launcher.clone(),
                    Arc::new(TokioClock::starting_at(at("2026-05-01T00:30:00Z"))),
                    Duration::from_secs(3600),
                    shutdown.clone(),
                ))
            })
            .collect();
        tokio::time::sleep(Duration::from_secs(3 * 3600)).await;
        shutdown.cancel();
        for t in tasks {
            t.await.unwrap();
        }
        let fired = fired(&launcher);
        assert_eq!(
            fired,
            [
                at("2026-05-01T01:00:00Z"),
                at("2026-05-01T02:00:00Z"),
                at("2026-05-01T03:00:00Z")
            ]
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_schedule_never_overlaps_itself() {
        let store = store();
        let launcher = Arc::new(FakeLauncher::default());
        let clock = Arc::new(TokioClock::starting_at(at("2026-05-01T00:00:30Z")));
        let (_tx, rx) = watch::channel(vec![job("* * * * *", "UTC")]);
        let shutdown = CancellationToken::new();
        let task = tokio::spawn(run(
            rx,
            store.clone(),
            launcher.clone(),
            clock,
            Duration::from_secs(60),
            shutdown.clone(),
        ));
        tokio::time::sleep(Duration::from_secs(60)).await; // first fire at 00:01
        *launcher.active.lock().unwrap() = true; // that run is still going
        tokio::time::sleep(Duration::from_secs(120)).await; // fires at 00:02 and 00:03 are skipped
        *launcher.active.lock().unwrap() = false;
        tokio::time::sleep(Duration::from_secs(60)).await; // 00:04 runs
        shutdown.cancel();
        task.await.unwrap();
        assert_eq!(
            outcomes(&store),
            ["started", "skipped_overlap", "skipped_overlap", "started"]
        );
        assert_eq!(launcher.launched.lock().unwrap().len(), 2);
    }

    /// The previous run was started by another daemon (gone since): a
    /// scheduler that took the next fire still sees it going.
    #[tokio::test(start_paused = true)]
    async fn a_schedule_does_not_overlap_a_run_another_daemon_started() {
        let store = store();
        let launcher = Arc::new(FakeLauncher::default());
        let (_tx, rx) = watch::channel(vec![job("* * * * *", "UTC")]);
        let start = |at_time: &str| {
            let shutdown = CancellationToken::new();
            let task = tokio::spawn(run(
                rx.clone(),
                store.clone(),
                launcher.clone(),
                Arc::new(TokioClock::starting_at(at(at_time))),
                Duration::from_secs(60),
                shutdown.clone(),
            ));
            (task, shutdown)
        };
        let (a, stop_a) = start("2026-05-01T00:00:30Z");
        tokio::time::sleep(Duration::from_secs(60)).await; // a starts the 00:01 fire
        stop_a.cancel();
        a.await.unwrap();
        *launcher.active.lock().unwrap() = true;
        let (b, stop_b) = start("2026-05-01T00:01:30Z");
        tokio::time::sleep(Duration::from_secs(60)).await; // b takes 00:02
        stop_b.cancel();
        b.await.unwrap();
        assert_eq!(outcomes(&store), ["started", "skipped_overlap"]);
        assert_eq!(launcher.launched.lock().unwrap().len(), 1);
    }

    #[tokio::test(start_paused = true)]
    async fn a_missed_fire_runs_once_within_the_grace_window_or_is_recorded_as_missed() {
        // The daemon last handled the 02:00 fire of an hourly schedule, then stopped.
        let cases = [
            (
                "2026-05-01T03:20:00Z",
                3600,
                "started",
                "2026-05-01T03:00:00Z",
            ),
            (
                "2026-05-01T04:50:00Z",
                1800,
                "missed",
                "2026-05-01T04:00:00Z",
            ),
        ];
        for (down_until, grace, want, fire) in cases {
            let store = store();
            store
                .0
                .lock()
                .unwrap()
                .push((at("2026-05-01T02:00:00Z"), "started".into(), None));
            let launcher = Arc::new(FakeLauncher::default());
            let clock = Arc::new(TokioClock::starting_at(at(down_until)));
            let (_tx, rx) = watch::channel(vec![job("0 * * * *", "UTC")]);
            let shutdown = CancellationToken::new();
            let task = tokio::spawn(run(
                rx,
                store.clone(),
                launcher.clone(),
                clock,
                Duration::from_secs(grace),
                shutdown.clone(),
            ));
            tokio::time::sleep(Duration::from_secs(1)).await;
            shutdown.cancel();
            task.await.unwrap();
            let latest = store.0.lock().unwrap().last().cloned().unwrap();
            assert_eq!(
                (latest.0, latest.1.as_str()),
                (at(fire), want),
                "down until {down_until}"
            );
            let runs = launcher.launched.lock().unwrap().clone();
            let expected: Vec<(String, DateTime<Utc>)> = if want == "started" {
                vec![("s".into(), at(fire))]
            } else {
                vec![]
            };
            assert_eq!(runs, expected, "at most one catch-up run");
        }
    }

    #[tokio::test(start_paused = true)]
    async fn reload_replaces_the_schedules() {
        let store = store();
        let launcher = Arc::new(FakeLauncher::default());
        let clock = Arc::new(TokioClock::starting_at(at("2026-05-01T00:00:00Z")));
        let (tx, rx) = watch::channel(vec![]);
        let shutdown = CancellationToken::new();
        let task = tokio::spawn(run(
            rx,
            store.clone(),
            launcher.clone(),
            clock,
            Duration::from_secs(60),
            shutdown.clone(),
        ));
        tokio::time::sleep(Duration::from_secs(3600)).await;
        assert!(launcher.launched.lock().unwrap().is_empty());
        tx.send(vec![job("30 * * * *", "UTC")]).unwrap();
        tokio::time::sleep(Duration::from_secs(3600)).await;
        shutdown.cancel();
        task.await.unwrap();
        assert_eq!(
            launcher.launched.lock().unwrap().clone(),
            [("s".to_string(), at("2026-05-01T01:30:00Z"))]
        );
    }
}
