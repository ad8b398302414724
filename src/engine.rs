//! Run execution. Today it holds the retry policy that runbooks build and the
//! step executor will apply; it never parses files and never runs SQL itself.

pub mod retry;
