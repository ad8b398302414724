//! The one loop that applies a [`RetryPolicy`] (defined in `policy`, built by
//! runbooks: runbook default, step override) and the one retry decision,
//! [`retryable`]. The engine runs reads through [`run`].
//! Mutating calls are not blind-retried here: they go through `reconcile`,
//! which uses the same policy for its attempts and delays.

use std::cell::RefCell;
use std::future::Future;
use std::time::Duration;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use tokio::time::Instant;

use crate::cloud::{CloudError, Reach};
pub use crate::policy::{Backoff, DEFAULT_RETRY_STATUSES, Jitter, RetryPolicy};

/// True when this failure may be tried again under `policy`: transport
/// failures and the listed statuses (401 is handled by the client, once); a
/// request refused before sending never is. The one retry decision: reads and
/// the exactly-once path both ask it (there, a retryable failure of a change
/// is reconciled before anything is sent again).
pub fn retryable(policy: &RetryPolicy, error: &CloudError) -> bool {
    match error.reach {
        Reach::NotSent => false,
        Reach::Unreached | Reach::Unanswered => true,
        Reach::Answered => error.status.is_some_and(|s| policy.retries_status(s)),
    }
}

/// The wait after failed attempt `attempt`, with fresh jitter, never shorter
/// than the `Retry-After` the cloud asked for.
pub fn next_delay(policy: &RetryPolicy, attempt: u32, error: &CloudError) -> Duration {
    let delay = policy.delay(attempt, unit_random());
    delay.max(error.retry_after.unwrap_or_default())
}

thread_local! {
    static RNG: RefCell<StdRng> = RefCell::new(StdRng::from_os_rng());
}

fn unit_random() -> f64 {
    RNG.with(|r| r.borrow_mut().random())
}

/// Runs `op` until it succeeds, fails with a non-retryable error, runs out of
/// attempts, or the next wait would pass `deadline`. `on_retry` hears of each
/// retry (attempt that failed, when it was sent, delay, error) before the
/// wait.
pub async fn run<T, F, Fut>(
    policy: &RetryPolicy,
    deadline: Option<Instant>,
    mut op: F,
    mut on_retry: impl FnMut(u32, &str, Duration, &CloudError),
) -> Result<T, CloudError>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, CloudError>>,
{
    let mut attempt = 1;
    loop {
        let sent = crate::store::now();
        let error = match op().await {
            Ok(value) => return Ok(value),
            Err(e) => e,
        };
        if !retryable(policy, &error) || !policy.allows_another(attempt) {
            return Err(error);
        }
        let delay = next_delay(policy, attempt, &error);
        if deadline.is_some_and(|d| Instant::now() + delay > d) {
            return Err(error);
        }
        let delay_ms = u64::try_from(delay.as_millis()).unwrap_or(u64::MAX);
        tracing::info!(attempt, delay_ms, error = %error, "Retrying.");
        on_retry(attempt, &sent, delay, &error);
        tokio::time::sleep(delay).await;
        attempt += 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(jitter: Jitter) -> RetryPolicy {
        RetryPolicy {
            backoff: Backoff {
                jitter,
                ..RetryPolicy::default().backoff
            },
            ..RetryPolicy::default()
        }
    }

    #[test]
    fn delays_grow_exponentially_and_are_capped() {
        let p = policy(Jitter::None);
        let cases = [(1, 1), (2, 2), (3, 4), (4, 8), (5, 16), (6, 30), (20, 30)];
        for (attempt, secs) in cases {
            assert_eq!(
                p.delay(attempt, 0.5),
                Duration::from_secs(secs),
                "attempt {attempt}"
            );
        }
    }

    #[test]
    fn full_jitter_spans_zero_to_the_capped_delay() {
        let p = policy(Jitter::Full);
        assert_eq!(p.delay(3, 0.0), Duration::ZERO);
        assert_eq!(p.delay(3, 0.5), Duration::from_secs(2));
        assert_eq!(
            p.delay(30, 0.999_999),
            Duration::from_secs_f64(30.0 * 0.999_999)
        );
    }

    #[test]
    fn equal_jitter_keeps_half() {
        let p = policy(Jitter::Equal);
        assert_eq!(p.delay(3, 0.0), Duration::from_secs(2));
        assert_eq!(p.delay(3, 1.0), Duration::from_secs(4));
    }

    #[test]
    fn default_statuses_and_attempt_limit() {
        let p = RetryPolicy::default();
        for s in [408, 502, 503, 504] {
            assert!(p.retries_status(s), "{s} is retried");
        }
        for s in [400, 401, 403, 404, 409, 500] {
            assert!(!p.retries_status(s), "{s} is not retried");
        }
        assert!(p.allows_another(4));
        assert!(!p.allows_another(5));
    }

    fn failure(status: Option<u16>, retry_after: Option<u64>) -> CloudError {
        CloudError {
            request: "GET /x".into(),
            status,
            code: None,
            message: "m".into(),
            request_id: None,
            reach: if status.is_some() {
                Reach::Answered
            } else {
                Reach::Unanswered
            },
            retry_after: retry_after.map(Duration::from_secs),
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_request_refused_before_sending_is_tried_once() {
        let mut calls = 0;
        let result: Result<(), CloudError> = run(
            &RetryPolicy::default(),
            None,
            || {
                calls += 1;
                async {
                    Err(CloudError::not_sent(
                        "GET /x",
                        "no cloud credentials configured",
                    ))
                }
            },
            |_, _, _, _| panic!("no retry"),
        )
        .await;
        assert_eq!(result.unwrap_err().reach, Reach::NotSent);
        assert_eq!(calls, 1);
    }

    #[test]
    fn the_retry_decision_reads_how_far_the_call_got_and_the_policy() {
        let p = RetryPolicy::default();
        let with = |reach, status| CloudError {
            reach,
            status,
            ..failure(None, None)
        };
        assert!(retryable(&p, &with(Reach::Unreached, None)));
        assert!(retryable(&p, &with(Reach::Unanswered, None)));
        assert!(
            !retryable(&p, &with(Reach::NotSent, None)),
            "a local refusal is final"
        );
        for s in [408, 502, 503, 504] {
            assert!(retryable(&p, &with(Reach::Answered, Some(s))), "{s}");
        }
        for s in [200, 400, 403, 404, 409, 500] {
            assert!(!retryable(&p, &with(Reach::Answered, Some(s))), "{s}");
        }
        let custom = RetryPolicy {
            on: vec![500],
            ..RetryPolicy::default()
        };
        assert!(
            retryable(&custom, &with(Reach::Answered, Some(500))),
            "the step's list wins"
        );
        assert!(!retryable(&custom, &with(Reach::Answered, Some(503))));
    }

    #[tokio::test(start_paused = true)]
    async fn retries_retryable_failures_with_backoff_until_success() {
        let p = policy(Jitter::None);
        let start = Instant::now();
        let mut calls = 0;
        let mut seen = Vec::new();
        let result = run(
            &p,
            None,
            || {
                calls += 1;
                let n = calls;
                async move {
                    if n < 4 {
                        Err(failure(Some(503), None))
                    } else {
                        Ok(n)
                    }
                }
            },
            |attempt, _, delay, _| seen.push((attempt, delay.as_secs())),
        )
        .await;
        assert_eq!(result.unwrap(), 4);
        assert_eq!(seen, [(1, 1), (2, 2), (3, 4)], "exponential delays");
        assert_eq!(
            start.elapsed(),
            Duration::from_secs(7),
            "slept exactly the delays (paused time)"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn stops_at_max_attempts_and_never_retries_fatal_statuses() {
        let p = RetryPolicy {
            max_attempts: 3,
            ..policy(Jitter::None)
        };
        let mut calls = 0;
        let r: Result<(), _> = run(
            &p,
            None,
            || {
                calls += 1;
                async { Err(failure(Some(502), None)) }
            },
            |_, _, _, _| {},
        )
        .await;
        assert_eq!((r.unwrap_err().status, calls), (Some(502), 3));
        for status in [400, 403, 404, 409] {
            let mut calls = 0;
            let r: Result<(), _> = run(
                &p,
                None,
                || {
                    calls += 1;
                    async move { Err(failure(Some(status), None)) }
                },
                |_, _, _, _| {},
            )
            .await;
            assert_eq!(
                (r.unwrap_err().status, calls),
                (Some(status), 1),
                "{status} is not retried"
            );
        }
        let mut calls = 0;
        let r: Result<(), _> = run(
            &p,
            None,
            || {
                calls += 1;
                async { Err(failure(None, None)) }
            },
            |_, _, _, _| {},
        )
        .await;
        assert_eq!(
            (r.unwrap_err().status, calls),
            (None, 3),
            "transport failures are retried"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn honours_retry_after_and_the_deadline() {
        let p = policy(Jitter::None);
        let start = Instant::now();
        let mut calls = 0;
        let r = run(
            &p,
            None,
            || {
                calls += 1;
                let n = calls;
                async move {
                    if n == 1 {
                        Err(failure(Some(503), Some(9)))
                    } else {
                        Ok(())
                    }
                }
            },
            |_, _, _, _| {},
        )
        .await;
        assert!(r.is_ok());
        assert_eq!(
            start.elapsed(),
            Duration::from_secs(9),
            "Retry-After beats the 1 s backoff"
        );

        let deadline = Instant::now() + Duration::from_secs(5);
        let mut calls = 0;
        let r: Result<(), _> = run(
            &p,
            Some(deadline),
            || {
                calls += 1;
                async { Err(failure(Some(503), None)) }
            },
            |_, _, _, _| {},
        )
        .await;
        assert!(r.is_err());
        assert_eq!(
            calls, 3,
            "1 s + 2 s fit before the deadline, the 4 s wait does not"
        );
    }
}
