//! Keeping within the cloud's request limits: a token bucket per service
//! (`cloud.rate`), shared by every run of the process, and the wait before a
//! request the API gateway throttled (HTTP 429) is sent again. A 429 means
//! the gateway refused the request before the service saw it, so sending it
//! again is safe, also for a change.

use std::sync::Mutex;
use std::time::Duration;

use tokio::time::Instant;

/// Longest wait between throttled attempts when the answer names none.
const MAX_THROTTLE_WAIT: Duration = Duration::from_secs(30);

/// A token bucket: `rate` tokens a second, holding at most `burst`.
#[derive(Debug)]
pub struct Bucket {
    rate: f64,
    burst: f64,
    state: Mutex<(f64, Instant)>,
}

impl Bucket {
    /// A full bucket of `burst` tokens (default: one second's worth, at least 1).
    pub fn new(rate: f64, burst: Option<u32>) -> Bucket {
        let burst = burst.map_or(rate.max(1.0).floor(), f64::from);
        Bucket {
            rate,
            burst,
            state: Mutex::new((burst, Instant::now())),
        }
    }

    /// Waits until a token is free and takes it. Waiters are served as the
    /// bucket refills; each takes its token when it asks, so a burst of
    /// callers queues in time rather than racing.
    pub async fn take(&self) {
        let wait = {
            let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
            let (tokens, last) = &mut *state;
            let now = Instant::now();
            *tokens =
                (*tokens + now.duration_since(*last).as_secs_f64() * self.rate).min(self.burst);
            *last = now;
            // Taken now, possibly into debt: the debt is the wait.
            *tokens -= 1.0;
            if *tokens >= 0.0 {
                return;
            }
            Duration::from_secs_f64(-*tokens / self.rate)
        };
        tokio::time::sleep(wait).await;
    }
}

/// The wait before throttled attempt `attempt` (1-based) is sent again:
/// what `Retry-After` asked, else 1 s, 2 s, 4 s ... up to 30 s.
pub fn throttle_wait(attempt: u32, retry_after: Option<Duration>) -> Duration {
    retry_after.unwrap_or_else(|| {
        let exp = attempt.saturating_sub(1).min(8);
        Duration::from_secs(1u64 << exp).min(MAX_THROTTLE_WAIT)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn a_bucket_lets_a_burst_through_then_keeps_the_rate() {
        let bucket = std::sync::Arc::new(Bucket::new(10.0, Some(5)));
        let start = Instant::now();
        let takers: Vec<_> = (0..25)
            .map(|_| {
                let bucket = bucket.clone();
                tokio::spawn(async move {
                    bucket.take().await;
                    Instant::now()
                })
            })
            .collect();
        let mut at = Vec::new();
        for t in takers {
            at.push(t.await.unwrap() - start);
        }
        at.sort();
        // Five at once, then one every 100 ms: the 25th after 2 s.
        assert!(at[..5].iter().all(|t| *t == Duration::ZERO), "{at:?}");
        assert_eq!(at[5], Duration::from_millis(100));
        assert_eq!(at[24], Duration::from_secs(2));
        // After a quiet spell the burst is back, and no more than it.
        tokio::time::sleep(Duration::from_secs(10)).await;
        let again = Instant::now();
        for _ in 0..6 {
            bucket.take().await;
        }
        assert_eq!(Instant::now() - again, Duration::from_millis(100));
    }

    #[test]
    fn throttled_requests_wait_what_they_are_told_or_back_off() {
        assert_eq!(
            throttle_wait(1, Some(Duration::from_secs(7))),
            Duration::from_secs(7)
        );
        let waits: Vec<u64> = (1..=7).map(|a| throttle_wait(a, None).as_secs()).collect();
        assert_eq!(waits, [1, 2, 4, 8, 16, 30, 30]);
    }
}
