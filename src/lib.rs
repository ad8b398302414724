//! drover: disaster-recovery orchestration for Open Telekom Cloud storage
//! replication (EVS replication consistency groups and SDRS protection groups).
//!
//! drover loads YAML runbooks (pre-checks, the switchover or failover call,
//! post-verification polling), executes them step by step with safe retries and
//! exactly-once mutating calls, and keeps a tamper-evident audit trail.
//!
//! # Layout
//! - [`client`]: `drover runs`, the client of a running daemon.
//! - [`cli`]: command-line surface (`validate`, `schema`, `run`, `demo`, `audit`, `sim`).
//! - [`app`]: wiring of config, store, cloud client and engine for the commands.
//! - [`daemon`]: the long-running service (runs, schedules, reload, shutdown).
//! - [`api`]: the daemon's HTTP API with roles and its OpenAPI document.
//! - [`metrics`]: Prometheus metrics fed by run events.
//! - [`cloud`]: the only code that talks to OTC: errors, signing, resources.
//! - [`config`]: `config/drover.yaml` plus `DROVER_*` environment overrides.
//! - [`runbook`]: runbook files -> validated [`runbook::Runbook`] values.
//! - [`engine`]: run execution: retries, exactly-once mutating calls, durable runs.
//! - [`policy`]: the retry policy value, below runbook, cloud and engine.
//! - [`store`]: the audit store (SQLite), the only code that runs SQL.
//! - [`scheduler`]: cron schedules with time zones, missed fires, no overlap.
//! - [`sim`]: the OTC simulator (today: the EVS group state machine).
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
pub mod runbook;
pub mod scheduler;
pub mod sim;
pub mod store;
pub mod telemetry;
pub mod yaml;
