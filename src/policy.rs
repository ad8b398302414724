//! The retry policy as a value: which answers are retried, how often, and how
//! long to wait between attempts. It sits below the runbook (which builds it),
//! the cloud client (which classifies answers with the default statuses) and
//! the engine (whose `retry` loop applies it), so none of them imports another
//! for it.

use std::time::Duration;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// HTTP statuses retried when a runbook does not say otherwise.
pub const DEFAULT_RETRY_STATUSES: [u16; 4] = [408, 502, 503, 504];

/// When and how a failed attempt is tried again.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RetryPolicy {
    /// HTTP statuses that are retried; transport errors always are.
    pub on: Vec<u16>,
    /// Attempts in all, the first included (at least 1).
    pub max_attempts: u32,
    /// Delay between attempts.
    pub backoff: Backoff,
}

/// Exponential backoff, capped, with jitter.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Backoff {
    /// Delay before the second attempt (before jitter).
    #[serde(serialize_with = "millis")]
    pub initial: Duration,
    /// Cap on any one delay.
    #[serde(serialize_with = "millis")]
    pub max: Duration,
    /// Growth per attempt.
    pub multiplier: f64,
    /// Randomisation.
    pub jitter: Jitter,
}

fn millis<S: serde::Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_u64(u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            on: DEFAULT_RETRY_STATUSES.to_vec(),
            max_attempts: 5,
            backoff: Backoff {
                initial: Duration::from_secs(1),
                max: Duration::from_secs(30),
                multiplier: 2.0,
                jitter: Jitter::Full,
            },
        }
    }
}

impl RetryPolicy {
    /// True when an answer with this HTTP status may be tried again.
    pub fn retries_status(&self, status: u16) -> bool {
        self.on.contains(&status)
    }

    /// True when attempt number `attempt` (1-based) may be followed by another.
    pub fn allows_another(&self, attempt: u32) -> bool {
        attempt < self.max_attempts
    }

    /// The wait after failed attempt `attempt` (1-based). `unit` is a uniform
    /// random number in `[0, 1)` supplied by the caller, so this stays testable.
    pub fn delay(&self, attempt: u32, unit: f64) -> Duration {
        let b = &self.backoff;
        let exponent = i32::try_from(attempt.saturating_sub(1)).unwrap_or(i32::MAX);
        let raw = b.initial.as_secs_f64() * b.multiplier.powi(exponent);
        let capped = raw.min(b.max.as_secs_f64());
        let unit = unit.clamp(0.0, 1.0);
        let secs = match b.jitter {
            Jitter::None => capped,
            Jitter::Full => capped * unit,
            Jitter::Equal => capped / 2.0 + capped / 2.0 * unit,
        };
        Duration::from_secs_f64(secs.max(0.0))
    }
}

/// How a backoff delay is randomised.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Jitter {
    /// A uniform delay between zero and the computed delay (AWS "full jitter").
    #[default]
    Full,
    /// Half the computed delay plus a uniform share of the other half.
    Equal,
    /// Exactly the computed delay.
    None,
}
