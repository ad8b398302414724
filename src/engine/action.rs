//! The actions a step can run, one file per service (`evs`, `sdrs`, `http`,
//! `approval`, `sleep`), and what they share: polling until a condition holds
//! and checking a field against its expectation. Mutating calls go through
//! `reconcile`; everything here works on a [`StepRun`].

pub(crate) mod approval;
pub(crate) mod evs;
pub(crate) mod http;
pub(crate) mod sdrs;
pub(crate) mod sleep;

use std::time::Duration;

use serde_json::Value;

use super::context::{StepError, StepRun, to_json};
use super::{Cloud, RunEvent, crash};
use crate::runbook::value::Expect;
use crate::store::Outcome;

/// What a wait step follows.
pub(crate) struct Watch {
    /// `group g1`, for messages.
    pub what: String,
    /// The read, as recorded.
    pub request: String,
    /// Time between polls.
    pub interval: Duration,
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
    let mut polls = 0;
    loop {
        let current = read().await?;
        let seen = summary(&current);
        if failed(&current)? {
            return Err(StepError::Failed(format!(
                "{what} reached a failure state: {seen}"
            )));
        }
        if done(&current)? {
            return Ok(to_json(&current));
        }
        if s.dry_run() {
            s.note(format!("dry run: not waiting ({what} is {seen})"));
            return Ok(to_json(&current));
        }
        polls += 1;
        let outcome = Outcome {
            outcome: seen.clone(),
            http_status: Some(200),
            ..Outcome::default()
        };
        s.record(polls, "poll", &watch.request, None, None, Some(outcome))
            .await?;
        crash::point("wait.after_poll");
        s.emit(RunEvent::Waiting {
            step_id: s.step.id.clone(),
            observed: seen.clone(),
        });
        s.pause(watch.interval, || format!("{what} is still {seen}"))
            .await?;
    }
}

/// One field against its expectation; a readable problem if it does not match.
pub(crate) fn mismatch<C: Cloud, T>(
    s: &StepRun<'_, C>,
    field: &str,
    want: &Option<Expect<T>>,
    got: Option<&str>,
    out: &mut Vec<String>,
) -> Result<(), StepError>
where
    T: for<'de> serde::Deserialize<'de> + Clone + std::fmt::Display,
{
    let Some(want) = want else { return Ok(()) };
    let render = |t: &str| s.render(t).map_err(|e| e.to_string());
    if let Some(problem) = want
        .mismatch(field, got, render)
        .map_err(StepError::Failed)?
    {
        out.push(problem);
    }
    Ok(())
}
