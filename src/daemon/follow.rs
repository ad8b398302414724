//! Following a run that another daemon executes: its events are not on this
//! daemon's live channels, so they are read back from the shared store, as
//! its steps change, until the run ends.

use std::collections::VecDeque;
use std::time::Duration;

use futures_util::Stream;

use crate::engine::RunEvent;
use crate::store::{RunRecord, RunStatus, StepRecord, StepStatus, Store};

/// How often the store is read for a run executed elsewhere.
pub const FOLLOW_POLL: Duration = Duration::from_millis(500);

struct Following {
    store: Store,
    run_id: String,
    actions: Vec<(String, String)>,
    seen: Vec<StepRecord>,
    queue: VecDeque<RunEvent>,
}

/// The events of run `run.id` after the state `seen`, derived from the
/// store: a step that starts, a step that ends (with its duration from the
/// stored times), and the run's end, which closes the stream.
pub fn from_store(
    store: Store,
    run: &RunRecord,
    seen: Vec<StepRecord>,
) -> impl Stream<Item = RunEvent> + Send + 'static {
    let actions =
        crate::runbook::parse(&run.runbook_source, std::path::Path::new(&run.runbook_path))
            .map(|rb| {
                rb.all_steps()
                    .map(|s| (s.id.clone(), s.action.name().to_string()))
                    .collect()
            })
            .unwrap_or_default();
    let state = Following {
        store,
        run_id: run.id.clone(),
        actions,
        seen,
        queue: VecDeque::new(),
    };
    futures_util::stream::unfold(Some(state), |state| async move {
        let mut f = state?;
        loop {
            if let Some(event) = f.queue.pop_front() {
                let end = matches!(event, RunEvent::RunFinished { .. });
                return Some((event, (!end).then_some(f)));
            }
            tokio::time::sleep(FOLLOW_POLL).await;
            let steps = f.store.steps(&f.run_id).await.ok()?;
            for step in &steps {
                let before = f
                    .seen
                    .iter()
                    .find(|s| s.step_id == step.step_id)
                    .map(|s| s.status);
                if before != Some(step.status) {
                    f.queue.extend(changed(step, &f.actions));
                }
            }
            f.seen = steps;
            let run = f.store.run(&f.run_id).await.ok()??;
            if run.status != RunStatus::Running {
                f.queue.push_back(RunEvent::RunFinished {
                    run_id: run.id.clone(),
                    status: run.status,
                    recovery_ms: None,
                    error: run.error.clone(),
                });
            }
        }
    })
}

/// The event a step's new stored status stands for.
fn changed(step: &StepRecord, actions: &[(String, String)]) -> Option<RunEvent> {
    match step.status {
        StepStatus::Running => Some(RunEvent::StepStarted {
            step_id: step.step_id.clone(),
            action: actions
                .iter()
                .find(|(id, _)| *id == step.step_id)
                .map(|(_, a)| a.clone())
                .unwrap_or_default(),
        }),
        StepStatus::Succeeded | StepStatus::Failed | StepStatus::Skipped => {
            let at = |t: &Option<String>| {
                t.as_deref()
                    .and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok())
            };
            let duration_ms = match (at(&step.started_at), at(&step.finished_at)) {
                (Some(a), Some(b)) => u64::try_from((b - a).num_milliseconds()).unwrap_or(0),
                _ => 0,
            };
            Some(RunEvent::StepFinished {
                step_id: step.step_id.clone(),
                status: step.status,
                duration_ms,
                error: step.error.clone(),
            })
        }
        StepStatus::Pending => None,
    }
}
