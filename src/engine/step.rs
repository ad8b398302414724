//! One step: its deadline (the step timeout, or a default for waits and job
//! polls) and the dispatch of its action to `action::*`.

use std::time::Duration;

use serde_json::Value;
use tokio_util::sync::CancellationToken;

use super::action::{approval, check, discover, evs, http, sdrs, sleep, wait};
use super::context::{RunContext, StepError, StepRun, deadline_after};
use super::{Cloud, Engine};
use crate::cloud::evs::EvsAction;
use crate::cloud::resource::{EvsGroup, ProtectionGroup};
use crate::cloud::sdrs::SdrsAction;
use crate::runbook::{Action, Step};

/// How long a wait or job poll may take when its step sets no timeout.
pub const DEFAULT_WAIT_TIMEOUT: Duration = Duration::from_secs(3600);

/// Executes one step; its output for `steps.<id>.output`.
pub(crate) async fn execute<C: Cloud>(
    engine: &Engine<C>,
    ctx: &RunContext,
    step: &Step,
    stop: &CancellationToken,
) -> Result<Value, StepError> {
    let probe = StepRun {
        engine,
        ctx,
        step,
        deadline: None,
        stop,
    };
    let timeout = match &step.timeout {
        Some(spec) => Some(probe.duration(spec)?),
        None if matches!(
            step.action,
            Action::EvsWaitGroup(_) | Action::SdrsWaitGroup(_)
        ) || is_sdrs_job(&step.action) =>
        {
            Some(DEFAULT_WAIT_TIMEOUT)
        }
        None => None,
    };
    let s = StepRun {
        deadline: deadline_after(timeout),
        ..probe
    };
    match &step.action {
        Action::EvsListGroups(i) => discover::evs_groups(&s, i).await,
        Action::SdrsListGroups(i) => discover::sdrs_groups(&s, i).await,
        Action::EvsCheckGroup(i) => check::<C, EvsGroup>(&s, &i.group, &i.expect).await,
        Action::EvsWaitGroup(i) => {
            wait::<C, EvsGroup>(&s, &i.group, &i.until, i.fail_if.as_ref(), &i.interval).await
        }
        Action::EvsSwitchover(i) => evs::mutation(&s, &i.group.value, EvsAction::Switchover).await,
        Action::EvsFailover(i) => evs::mutation(&s, &i.group.value, EvsAction::Failover).await,
        Action::EvsSync(i) => evs::mutation(&s, &i.group.value, EvsAction::Sync).await,
        Action::EvsStop(i) => evs::mutation(&s, &i.group.value, EvsAction::Stop).await,
        Action::EvsReprotect(i) => evs::mutation(&s, &i.group.value, EvsAction::Reprotect).await,
        Action::SdrsCheckGroup(i) => check::<C, ProtectionGroup>(&s, &i.group, &i.expect).await,
        Action::SdrsWaitGroup(i) => {
            let (until, fail_if) = (&i.until, i.fail_if.as_ref());
            wait::<C, ProtectionGroup>(&s, &i.group, until, fail_if, &i.interval).await
        }
        Action::SdrsSwitchover(i) => sdrs::switchover(&s, i).await,
        Action::SdrsFailover(i) => {
            sdrs::mutation(&s, &i.group.value, SdrsAction::Failover, &i.interval).await
        }
        Action::SdrsEnable(i) => {
            sdrs::mutation(&s, &i.group.value, SdrsAction::Enable, &i.interval).await
        }
        Action::SdrsDisable(i) => {
            sdrs::mutation(&s, &i.group.value, SdrsAction::Disable, &i.interval).await
        }
        Action::SdrsCreateDrill(i) => sdrs::create_drill(&s, i).await,
        Action::SdrsDeleteDrill(i) => sdrs::delete_drill(&s, i).await,
        Action::HttpRequest(i) => http::request(&s, i).await,
        Action::Approval(i) => approval::ask(&s, i).await,
        Action::Sleep(i) => sleep::sleep(&s, i).await,
    }
}

fn is_sdrs_job(action: &Action) -> bool {
    matches!(
        action,
        Action::SdrsSwitchover(_)
            | Action::SdrsFailover(_)
            | Action::SdrsEnable(_)
            | Action::SdrsDisable(_)
            | Action::SdrsCreateDrill(_)
            | Action::SdrsDeleteDrill(_)
    )
}
