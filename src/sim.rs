//! The OTC simulator: the only code that pretends to be OTC. It follows the
//! reference pages, not drover's client, so tests against it prove what was
//! sent.
//!
//! Built so far: the EVS replication consistency group state machine
//! ([`evs`]). The HTTP server, IAM, SDRS, fault injection and the request
//! journal build on it.

pub mod evs;
pub mod sdrs;
