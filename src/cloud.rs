//! The only code that talks to Open Telekom Cloud: request authentication,
//! the error model with its retry decision, and the resources read back.
//!
//! Built so far: [`error`] (every documented error shape, retryable /
//! ambiguous / fatal), [`auth`] (AK/SK signing proven against the published
//! test vector, token refresh rule) and [`resource`] (tolerant typed reads of
//! groups, protection groups, jobs and drills). The HTTP client and the typed
//! operations build on these.

pub mod auth;
pub mod error;
pub mod resource;

pub use error::{CloudError, ErrorClass};
