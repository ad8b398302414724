//! The only code that talks to Open Telekom Cloud.
//!
//! - [`http`]: the client: TLS, timeouts, authentication (IAM token cached and
//!   refreshed, AK/SK signing, static token), every failure as a [`CloudError`].
//! - [`evs`], [`sdrs`]: typed operations of the two APIs.
//! - [`resource`]: tolerant reads of groups, protection groups, jobs and drills.
//! - [`error`]: every documented error shape and the retry decision.
//! - [`vocabulary`]: the statuses and stations of the OTC APIs, as enums.
//! - [`id`]: the cloud's id syntax, checked where ids enter, encoded in paths.
//! - [`auth`]: AK/SK signing and the token refresh rule.
//! - [`interface`]: the [`Cloud`] trait the engine uses; [`CloudClient`] is the
//!   real implementation, [`dry_run::DryRun`] the one that holds changes back.

pub mod auth;
pub mod dry_run;
pub mod error;
pub mod evs;
pub mod http;
pub mod id;
pub mod interface;
pub mod resource;
pub mod sdrs;
pub mod throttle;
pub mod vocabulary;

pub use error::{CloudError, Reach};
pub use http::CloudClient;
pub use interface::{Cloud, Delivery, WouldSend};
