//! The actions a step can run, one file per service (`evs`, `sdrs`, `http`,
//! `approval`, `sleep`), and what they share: polling until a condition holds
//! and checking a field against its expectation. Mutating calls go through
//! `reconcile`; everything here works on a `StepRun`.

pub(crate) mod approval;
pub(crate) mod discover;
pub(crate) mod evs;
pub(crate) mod http;
pub(crate) mod sdrs;
pub(crate) mod sleep;

use std::time::Duration;

use serde_json::Value;

use super::context::{StepError, StepRun, to_json};
use super::{Cloud, RunEvent, crash};
use crate::runbook::DEFAULT_POLL_INTERVAL;
use crate::runbook::model::IdField;
use crate::runbook::value::{DurationSpec, Expect, FieldCheck};
use crate::store::{AttemptKind, Outcome};
use crate::yaml::Located;

/// What a wait follows.
pub(crate) struct Watch {
    /// `group g1`, for messages.
    pub what: String,
    /// The read, as recorded.
    pub request: String,
    /// Time between polls once they have grown to it ([`poll_wait`]).
    pub interval: Duration,
    /// The crash point after each recorded poll.
    pub crash_point: &'static str,
}

/// The wait after the first pending look: a transition that ends within
/// a second is seen within a second, not a whole interval later.
pub(crate) const FIRST_POLL_WAIT: Duration = Duration::from_millis(500);

/// The wait after the `polls`-th pending look: [`FIRST_POLL_WAIT`], doubled
/// each time, at most `interval`.
pub(crate) fn poll_wait(interval: Duration, polls: u32) -> Duration {
    let doublings = polls.saturating_sub(1).min(20);
    (FIRST_POLL_WAIT * (1u32 << doublings)).min(interval)
}

/// What one look at a watched resource found.
pub(crate) enum Seen<R> {
    /// The wait is over, with this result.
    Done(R),
    /// Not yet: what was seen (`status reversing`), recorded and reported.
    Pending(String),
}

/// The one polling loop: `look` reads and judges (an error fails the step at
/// once); each pending state is recorded as a poll, reported, and waited on
/// ([`poll_wait`]: soon at first, growing to the interval), bounded by the
/// step's deadline and ended by a cancel.
pub(crate) async fn poll<C, R, F, Fut>(
    s: &StepRun<'_, C>,
    watch: &Watch,
    mut look: F,
) -> Result<R, StepError>
where
    C: Cloud,
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<Seen<R>, StepError>>,
{
    let mut polls = 0;
    loop {
        let seen = match look().await? {
            Seen::Done(result) => return Ok(result),
            Seen::Pending(seen) => seen,
        };
        polls += 1;
        let outcome = Outcome {
            outcome: seen.clone(),
            http_status: Some(200),
            ..Outcome::default()
        };
        s.record(
            polls,
            AttemptKind::Poll,
            &watch.request,
            None,
            None,
            Some(outcome),
        )
        .await?;
        crash::point(watch.crash_point);
        s.emit(RunEvent::Waiting {
            step_id: s.step.id.clone(),
            observed: seen.clone(),
        });
        let what = &watch.what;
        s.pause(poll_wait(watch.interval, polls), || {
            format!("{what} is still {seen}")
        })
        .await?;
    }
}

/// Polls with `read` until `done` holds (the resource as output), failing at
/// once when `failed` holds, and at the deadline. A dry run reads once.
pub(crate) async fn poll_until<C, T, R, Fut>(
    s: &StepRun<'_, C>,
    watch: &Watch,
    read: R,
    summary: fn(&T) -> String,
    failed: impl Fn(&T) -> Result<bool, StepError>,
    done: impl Fn(&T) -> Result<bool, StepError>,
) -> Result<Value, StepError>
where
    C: Cloud,
    T: serde::Serialize,
    R: Fn() -> Fut,
    Fut: std::future::Future<Output = Result<T, StepError>>,
{
    let what = &watch.what;
    poll(s, watch, || async {
        let current = read().await?;
        let seen = summary(&current);
        if failed(&current)? {
            return Err(StepError::Failed(format!(
                "{what} reached a failure state: {seen}"
            )));
        }
        if done(&current)? {
            return Ok(Seen::Done(to_json(&current)));
        }
        if s.dry_run() {
            s.note(format!("dry run: not waiting ({what} is {seen})"));
            return Ok(Seen::Done(to_json(&current)));
        }
        Ok(Seen::Pending(seen))
    })
    .await
}

/// An optional expectation as a field check.
pub(crate) fn field<T>(want: &Option<Expect<T>>) -> Option<&dyn FieldCheck>
where
    T: for<'de> serde::Deserialize<'de> + Clone + std::fmt::Display + 'static,
{
    want.as_ref().map(|w| w as &dyn FieldCheck)
}

/// A cloud resource that `check` and `wait` steps look at: an EVS group or an
/// SDRS protection group. One check and one wait serve both.
pub(crate) trait Watched: Sized + serde::Serialize {
    /// The expectation type of its `expect`, `until` and `fail_if`.
    type Expect;
    /// Its id syntax and lease.
    const ID: IdField;
    /// `group g1`, for messages.
    fn named(id: &str) -> String;
    /// The read, as recorded.
    fn request(id: &str) -> String;
    /// Reads it under the step's retry policy.
    fn read<C: Cloud>(
        s: &StepRun<'_, C>,
        id: &str,
    ) -> impl std::future::Future<Output = Result<Self, StepError>>;
    /// `status available, ...`, for progress and messages.
    fn summary(&self) -> String;
    /// The fields an expectation may name, with what it says of each.
    fn expected(expect: &Self::Expect) -> Vec<(&'static str, Option<&dyn FieldCheck>)>;
    /// A field's value as the API spells it (`None`: null).
    fn value(&self, field: &str) -> Option<&str>;

    /// Every field of `expect` it does not match, as readable text.
    fn mismatches<C: Cloud>(
        &self,
        s: &StepRun<'_, C>,
        expect: &Self::Expect,
    ) -> Result<Vec<String>, StepError> {
        let render = |t: &str| s.render(t).map_err(|e| e.to_string());
        let mut out = Vec::new();
        for (field, want) in Self::expected(expect) {
            if let Some(want) = want
                && let Some(problem) = want
                    .check(field, self.value(field), &render)
                    .map_err(StepError::Failed)?
            {
                out.push(problem);
            }
        }
        Ok(out)
    }

    /// True when `expect` names no field.
    fn is_empty(expect: &Self::Expect) -> bool {
        Self::expected(expect)
            .iter()
            .all(|(_, want)| want.is_none())
    }
}

/// `*.check_group`: the resource, or every field that does not match.
pub(crate) async fn check<C: Cloud, W: Watched>(
    s: &StepRun<'_, C>,
    group: &Located<String>,
    expect: &W::Expect,
) -> Result<Value, StepError> {
    let id = s.render_id(W::ID, "group", &group.value)?;
    let g = W::read(s, &id).await?;
    let mismatches = g.mismatches(s, expect)?;
    if mismatches.is_empty() || s.unverifiable(&mismatches) {
        Ok(to_json(&g))
    } else {
        Err(StepError::Failed(format!(
            "{}: {}",
            W::named(&id),
            mismatches.join("; ")
        )))
    }
}

/// `*.wait_group`: polls until `until` holds, failing at once on `fail_if`.
pub(crate) async fn wait<C: Cloud, W: Watched>(
    s: &StepRun<'_, C>,
    group: &Located<String>,
    until: &W::Expect,
    fail_if: Option<&W::Expect>,
    interval: &Option<Located<DurationSpec>>,
) -> Result<Value, StepError> {
    let id = s.render_id(W::ID, "group", &group.value)?;
    let watch = Watch {
        what: W::named(&id),
        request: W::request(&id),
        interval: s.interval(interval, DEFAULT_POLL_INTERVAL)?,
        crash_point: "wait.after_poll",
    };
    poll_until(
        s,
        &watch,
        || W::read(s, &id),
        W::summary,
        |g| {
            Ok(fail_if
                .filter(|f| !W::is_empty(f))
                .map(|f| g.mismatches(s, f))
                .transpose()?
                .is_some_and(|m| m.is_empty()))
        },
        |g| Ok(g.mismatches(s, until)?.is_empty()),
    )
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn polls_start_soon_and_grow_to_the_interval() {
        let secs = |s: f64| Duration::from_secs_f64(s);
        let waits: Vec<Duration> = (1..=7).map(|n| poll_wait(secs(10.0), n)).collect();
        assert_eq!(
            waits,
            [0.5, 1.0, 2.0, 4.0, 8.0, 10.0, 10.0].map(secs),
            "doubling from half a second, capped"
        );
        assert_eq!(
            poll_wait(secs(0.2), 1),
            secs(0.2),
            "a short interval is kept"
        );
        assert_eq!(poll_wait(secs(30.0), u32::MAX), secs(30.0), "no overflow");
    }
}
