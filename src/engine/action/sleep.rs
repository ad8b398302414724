//! `sleep`: wait a duration (skipped in a dry run, ended by a cancel).

use serde_json::{Value, json};

use crate::engine::Cloud;
use crate::engine::context::{StepError, StepRun};
use crate::runbook::model::{self, SleepInput};

/// Sleeps the rendered duration.
pub(crate) async fn sleep<C: Cloud>(
    s: &StepRun<'_, C>,
    i: &SleepInput,
) -> Result<Value, StepError> {
    let d = s.duration(&i.duration.value)?;
    if s.dry_run() {
        s.note(format!(
            "dry run: not sleeping {}",
            model::format_duration(d)
        ));
        return Ok(json!({ "slept_ms": 0, "dry_run": true }));
    }
    s.pause(d, || {
        format!(
            "the step timeout is shorter than its {} sleep",
            model::format_duration(d)
        )
    })
    .await?;
    Ok(json!({ "slept_ms": d.as_millis() as u64 }))
}
