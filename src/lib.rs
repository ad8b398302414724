//! drover: disaster-recovery orchestration for Open Telekom Cloud storage
//! replication (EVS replication consistency groups and SDRS protection groups).
//!
//! drover loads YAML runbooks (pre-checks, the switchover or failover call,
//! post-verification polling), executes them step by step with safe retries and
//! exactly-once mutating calls, and keeps a tamper-evident audit trail.
//!
//! # Layout
//! Arrows point down: a module imports only modules below it (a layout test
//! finds import circles between files).
//! - [`cli`]: command-line surface (`validate`, `schema`, `run`, `demo`,
//!   `audit`, `report`, `sim`, `daemon`); [`client`]: `drover runs`, the daemon's client.
//! - [`api`]: the daemon's HTTP API, by resource (`runs`, `runbooks`, `audit`,
//!   `evidence`, `health`, with `auth` and `error`), its OpenAPI document,
//!   and the console at `/ui` (`ui`: server-rendered views, a small script).
//! - [`app`]: wiring of config, store, cloud client and engine for the
//!   commands, the progress printer and the terminal approval prompt.
//! - [`daemon`]: the long-running service (runs, schedules, reload, shutdown,
//!   taking over runs nobody holds; `follow`: a run another daemon executes);
//!   [`metrics`]: Prometheus metrics fed by run events; [`scheduler`]: cron
//!   schedules with time zones, missed fires, no overlap.
//! - [`engine`]: run execution: `run` (lifecycle, leases, resume), `step`
//!   (deadline, dispatch), `action/*` (one file per service), `context` (what a
//!   step runs in), `reconcile` (exactly-once mutating calls), `retry` (the
//!   loop), `crash` (crash points for the kill tests).
//! - [`store`]: the audit store (SQLite or PostgreSQL), the only code that
//!   runs SQL, by table family (`run`, `attempt`, `approval`, `fire`,
//!   `audit`), run claims with fencing (`claim`), and copying a whole store
//!   (`copy`).
//! - [`report`]: evidence for auditors: a run's self-contained HTML report
//!   with its timeline, and the compliance summary of a period.
//! - [`runbook`]: runbook files -> validated [`runbook::Runbook`] values
//!   (`model`, `value`, `template`, `validate`, `schema`).
//! - [`config`]: `config/drover.yaml` plus `DROVER_*` environment overrides.
//! - [`cloud`]: the only code that talks to OTC: the `Cloud` interface
//!   (`interface`) with its real client (`http`) and the dry run that holds
//!   changes back (`dry_run`); the EVS and SDRS operations with each action's
//!   preconditions and took-effect rules (`evs`, `sdrs`); resources, errors,
//!   ids, signing, and the OTC vocabulary (`vocabulary`).
//! - [`sim`]: the OTC simulator (`route`: the cloud API; `control`: `/_sim/`;
//!   `evs`, `sdrs`, `iam`: the state machines; `faults`).
//! - [`policy`]: the retry policy value, below runbook, cloud and engine.
//! - [`redact`]: hiding secrets in URLs and JSON before they are shown or kept.
//! - [`signing`]: ed25519 keys for signed audit checkpoints.
//! - [`spelling`]: the macro for closed sets of words kept as text.
//! - [`telemetry`]: tracing setup.
//! - [`yaml`]: located YAML and the error-collecting deserializer under both
//!   runbooks and config.
pub mod api;
pub mod app;
pub mod cli;
pub mod client;
pub mod cloud;
pub mod config;
pub mod daemon;
pub mod engine;
pub mod metrics;
pub mod policy;
pub mod redact;
pub mod report;
pub mod runbook;
pub mod scheduler;
pub mod signing;
pub mod sim;
pub mod spelling;
pub mod store;
pub mod telemetry;
pub mod yaml;
