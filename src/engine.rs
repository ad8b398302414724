//! Run execution: a validated runbook, step by step, with safe retries,
//! exactly-once mutating calls, and every state change stored before the
//! engine moves on.
//!
//! - [`run`]: the run lifecycle: start (params, leases), execute, resume.
//! - [`step`]: one step: its deadline and the dispatch of its action.
//! - [`plan`]: `for_each` blocks: items expanded into stored steps, run in
//!   parallel up to `max_parallel`, each through the same step path.
//! - [`action`]: what each action does, one file per service.
//! - [`context`]: what a step runs in (run context, step context, errors).
//! - [`reconcile`]: the exactly-once path of mutating calls.
//! - [`retry`]: the one retry policy and the one loop that applies it.
//! - [`crash`]: crash points at the durable boundaries, for the kill tests.
//!
//! The engine reaches the cloud only through the [`Cloud`] trait and
//! persists only through the store, so its tests can use fakes and paused time.

pub mod action;
pub mod context;
pub mod crash;
pub mod plan;
pub mod reconcile;
pub mod retry;
pub mod run;
pub mod step;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use serde::Serialize;

pub use crate::cloud::Cloud;
use crate::runbook::template;
use crate::store::{IntentOutcome, RunStatus, StepStatus, Store};

pub use run::{RunRequest, RunSummary};

/// Something that happened during a run, for live progress and followers.
#[derive(Debug, Clone, PartialEq, Serialize, serde::Deserialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum RunEvent {
    /// The run started (or resumed).
    RunStarted {
        run_id: String,
        runbook: String,
        /// True when resuming an interrupted run.
        resumed: bool,
        dry_run: bool,
    },
    StepStarted {
        step_id: String,
        action: String,
    },
    /// A step was skipped.
    StepSkipped {
        step_id: String,
        reason: String,
    },
    /// A `for_each` block was reached: its items.
    BlockStarted {
        step_id: String,
        /// Items in all.
        items: usize,
        max_parallel: u32,
    },
    /// An item of a block started (its steps carry the id `block[i].step`).
    ItemStarted {
        /// The block.
        step_id: String,
        index: usize,
        /// The item as text (a group id).
        item: String,
    },
    /// An item of a block ended.
    ItemFinished {
        /// The block.
        step_id: String,
        index: usize,
        item: String,
        /// Succeeded, failed or skipped.
        status: StepStatus,
        error: Option<String>,
    },
    /// A step was already done before a resume and is not executed again.
    StepAlreadyDone {
        step_id: String,
        /// Its stored status.
        status: StepStatus,
    },
    /// A failed attempt will be tried again.
    Retrying {
        step_id: String,
        /// The request retried, e.g. `GET consistency group g1`: each request
        /// of a step counts its own attempts.
        #[serde(default)]
        request: String,
        /// The attempt that failed (1-based).
        attempt: u32,
        /// Attempts allowed.
        max_attempts: u32,
        /// Wait before the next attempt.
        delay_ms: u64,
        /// HTTP status of the failure, if there was an answer.
        status: Option<u16>,
        /// What failed.
        reason: String,
    },
    /// A poll saw a state that is not the awaited one yet.
    Waiting {
        step_id: String,
        /// What was seen.
        observed: String,
    },
    /// A mutating call got no clear answer; the resource is read again before any re-send.
    Ambiguous {
        step_id: String,
        /// What happened to the call.
        reason: String,
    },
    /// An ambiguous answer was resolved by reading the resource again.
    Reconciled {
        step_id: String,
        /// Applied or not applied.
        outcome: IntentOutcome,
        /// What was seen.
        evidence: String,
    },
    /// A dry run held a request back.
    WouldSend {
        step_id: String,
        request: String,
    },
    /// An approval step waits for operators (daemon mode).
    AwaitingApproval {
        step_id: String,
        /// The question.
        prompt: String,
        /// Distinct approvers needed.
        needed: u32,
    },
    /// An approval was given.
    Approved {
        step_id: String,
        approver: String,
    },
    /// A note (dry-run skips and the like).
    Note {
        step_id: String,
        message: String,
    },
    /// A step ended.
    StepFinished {
        step_id: String,
        /// Succeeded or failed.
        status: StepStatus,
        /// How long it took.
        duration_ms: u64,
        /// Why it failed.
        error: Option<String>,
    },
    /// The run ended.
    RunFinished {
        run_id: String,
        /// How it ended.
        status: RunStatus,
        /// Trigger to the end of the last main step, when they all succeeded.
        recovery_ms: Option<u64>,
        /// Why it failed.
        error: Option<String>,
    },
}

/// Where run events go (printed, streamed, or dropped).
pub type EventSink = Arc<dyn Fn(&RunEvent) + Send + Sync>;

/// Asks someone for `needed` distinct approvals of `prompt` (blocking: it
/// runs on a blocking thread). The CLI asks on the terminal.
pub type Ask = Arc<dyn Fn(&str, usize) -> Result<Prompted, String> + Send + Sync>;

/// What asking for approval got.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Prompted {
    /// These people approved.
    Approved(Vec<String>),
    /// Someone refused; why.
    Refused(String),
    /// Nobody was there to answer (the input ended): the run waits, resumable.
    NoInput,
}

/// How `approval` steps are decided.
#[derive(Clone)]
pub enum Approvals {
    /// Approved by these people, without asking (`drover run --approve NAME`).
    Given(Vec<String>),
    /// Asked interactively (the terminal, in `drover run`).
    Ask(Ask),
    /// Given through the daemon's API and read from the store: distinct
    /// approvers, never the requester; a rejection fails the step.
    Api,
}

/// The engine: executes runs against a cloud, persisting to a store.
pub struct Engine<C: Cloud> {
    pub(crate) cloud: Arc<C>,
    pub(crate) store: Store,
    pub(crate) events: EventSink,
    pub(crate) approvals: Approvals,
    pub(crate) env: BTreeMap<String, String>,
    /// How long a request sent by an interrupted run may still be in flight.
    pub(crate) in_flight_grace: Duration,
    /// Upper bound of any rendered sleep, timeout, interval or hold.
    pub(crate) max_duration: Duration,
}

/// Default [`Engine::with_in_flight_grace`]: the default request timeout plus 5 s.
pub const DEFAULT_IN_FLIGHT_GRACE: Duration = Duration::from_secs(35);

/// The environment a template may read: `DROVER_*` names that are not config
/// overrides (those contain `__` and may hold secrets).
pub fn template_env(vars: impl IntoIterator<Item = (String, String)>) -> BTreeMap<String, String> {
    vars.into_iter()
        .filter(|(k, _)| k.starts_with("DROVER_") && !template::is_secret_name(k))
        .collect()
}

impl<C: Cloud> Engine<C> {
    /// An engine over `cloud` and `store`, reporting to `events`.
    pub fn new(cloud: Arc<C>, store: Store, events: EventSink, approvals: Approvals) -> Self {
        Engine {
            cloud,
            store,
            events,
            approvals,
            env: template_env(std::env::vars()),
            in_flight_grace: DEFAULT_IN_FLIGHT_GRACE,
            max_duration: crate::config::DEFAULT_MAX_DURATION,
        }
    }

    /// Applies the `engine` section of the config.
    pub fn with_settings(mut self, settings: &crate::config::EngineConfig) -> Self {
        self.in_flight_grace = settings.in_flight_grace;
        self.max_duration = settings.max_duration;
        self
    }

    /// Before reconciling an intent left by an interrupted run, wait until it is
    /// this old: a request sent just before the crash may still be processed.
    /// Set it above the cloud request timeout.
    pub fn with_in_flight_grace(mut self, grace: Duration) -> Self {
        self.in_flight_grace = grace;
        self
    }

    /// Replaces the environment templates see (for tests).
    pub fn with_env(mut self, env: BTreeMap<String, String>) -> Self {
        self.env = template_env(env);
        self
    }

    pub fn store(&self) -> &Store {
        &self.store
    }

    pub(crate) fn emit(&self, event: RunEvent) {
        (self.events)(&event);
    }
}
