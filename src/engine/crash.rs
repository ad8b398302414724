//! Crash points: named places at the durable boundaries of a run where a test
//! build can make the process die (`FAILPOINTS=mutate.after_send=return`
//! aborts there, with no unwinding and no chance to record anything more).
//!
//! They exist only with the `failpoints` feature, which only the test build
//! enables; elsewhere `point` compiles to nothing. The kill tests drive the
//! real binary through every point of [`CRASH_POINTS`] and resume it.

/// Every crash point, in the order a run meets them.
pub const CRASH_POINTS: &[&str] = &[
    // The run is claimed by this process (stored); no step has started.
    "run.after_claim",
    // A step is stored as running; nothing of it has happened yet.
    "step.after_start",
    // An approval was given but is not stored yet.
    "approval.before_record",
    // The resource was re-read and its preconditions hold; no intent yet.
    "mutate.before_intent",
    // The intent is stored; the request has not left.
    "mutate.after_intent",
    // The cloud answered; the answer is not stored yet.
    "mutate.after_send",
    // The answer is stored; the step is not.
    "mutate.after_outcome",
    // A reconciliation stored its verdict; nothing was sent after it.
    "mutate.after_reconcile",
    // An SDRS job was polled and the poll stored; the job has not ended.
    "job.after_poll",
    // A wait step polled and stored the poll; its condition does not hold yet.
    "wait.after_poll",
    // A for_each block's items, their rows and leases are stored; no item
    // has started.
    "block.after_expand",
    // A step's result is stored; the next step has not started.
    "run.after_step",
    // Every main step is done; the `finally` steps have not started.
    "run.before_finally",
];

/// Dies here when the test build armed crash point `name`.
#[inline]
pub(crate) fn point(name: &'static str) {
    debug_assert!(CRASH_POINTS.contains(&name), "unlisted crash point {name}");
    #[cfg(feature = "failpoints")]
    fail::eval(name, |_| std::process::abort());
}

/// Keeps the crash points armed from `FAILPOINTS` while it lives.
pub struct Armed {
    #[cfg(feature = "failpoints")]
    _scenario: fail::FailScenario<'static>,
}

/// Arms the crash points named in `FAILPOINTS` (a no-op without the
/// `failpoints` feature).
pub fn arm() -> Armed {
    Armed {
        #[cfg(feature = "failpoints")]
        _scenario: fail::FailScenario::setup(),
    }
}
