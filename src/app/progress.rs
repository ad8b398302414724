//! Live progress of a run: plain lines with the time since start when the
//! output is a file or a pipe, one JSON object per event with `--json`, and
//! on a terminal a live line per running step (a spinner, its elapsed time,
//! the last state seen) above which finished steps and notable events stay.

use std::collections::{BTreeMap, HashMap};
use std::io::{IsTerminal, Write};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use console::Style;
use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};
use tokio::time::Instant;

use crate::engine::{EventSink, RunEvent};
use crate::store::{IntentOutcome, StepStatus};

/// Prints run events as they happen: JSON lines with `json`; on a terminal
/// (stdout, `TERM` not `dumb`) the live view; else one plain line per event
/// with the time since start. Colours only on a terminal without `NO_COLOR`.
pub fn progress_printer(json: bool) -> EventSink {
    let terminal =
        std::io::stdout().is_terminal() && std::env::var("TERM").map_or(true, |t| t != "dumb");
    if json || !terminal {
        console::set_colors_enabled(false);
        return plain_printer(json);
    }
    let live = Mutex::new(LiveView::new(ProgressDrawTarget::stdout()));
    Arc::new(move |event: &RunEvent| {
        live.lock().unwrap_or_else(|p| p.into_inner()).show(event);
    })
}

fn plain_printer(json: bool) -> EventSink {
    let start = Instant::now();
    let out = Arc::new(Mutex::new((std::io::stdout(), PlanView::default())));
    Arc::new(move |event: &RunEvent| {
        let mut guard = out.lock().unwrap_or_else(|p| p.into_inner());
        let (out, plan) = &mut *guard;
        if json {
            let _ = writeln!(out, "{}", serde_json::to_string(event).unwrap_or_default());
            return;
        }
        let t = start.elapsed().as_secs_f64();
        let Some(line) = plan.line(event) else {
            return;
        };
        let _ = writeln!(out, "[{t:7.1}s] {line}");
    })
}

/// The terminal view: a live line per running step, printed lines above.
pub struct LiveView {
    multi: MultiProgress,
    /// Running steps (and plan blocks) by step id.
    bars: HashMap<String, ProgressBar>,
    plan: PlanView,
    start: Instant,
}

impl LiveView {
    /// A view drawing to `target` (stdout; a test's in-memory terminal).
    pub fn new(target: ProgressDrawTarget) -> Self {
        LiveView {
            multi: MultiProgress::with_draw_target(target),
            bars: HashMap::new(),
            plan: PlanView::default(),
            start: Instant::now(),
        }
    }

    fn bar(&mut self, step_id: &str, message: String) {
        let style =
            ProgressStyle::with_template("{spinner:.cyan} {prefix:<18} {elapsed:>4} {wide_msg}")
                .unwrap_or_else(|_| ProgressStyle::default_spinner())
                .tick_chars("⠋⠙⠹⠸⠼⠴⠦⠧⠇⠏ ");
        let bar = self.multi.add(
            ProgressBar::new_spinner()
                .with_style(style)
                .with_prefix(step_id.to_string())
                .with_message(message),
        );
        bar.enable_steady_tick(Duration::from_millis(120));
        self.bars.insert(step_id.to_string(), bar);
    }

    /// Prints `line` above the live lines, with the time since start.
    fn print(&self, line: &str, style: &Style) {
        let t = self.start.elapsed().as_secs_f64();
        let _ = self
            .multi
            .println(format!("[{t:7.1}s] {}", style.apply_to(line)));
    }

    /// Shows one event.
    pub fn show(&mut self, event: &RunEvent) {
        let plain = Style::new();
        match event {
            RunEvent::StepStarted { step_id, action } if action != "approval" => {
                // Hidden inside a plan view: the block's line counts it.
                if self.plan.line(event).is_some() {
                    self.bar(step_id, action.clone());
                }
            }
            RunEvent::BlockStarted { step_id, items, .. } => {
                let Some(line) = self.plan.line(event) else {
                    return;
                };
                if *items > PLAN_VIEW_ITEMS {
                    self.bar(step_id, line);
                } else {
                    self.print(&line, &plain);
                }
            }
            RunEvent::ItemFinished {
                step_id, status, ..
            } if self.plan.is_plan(step_id) => {
                let line = self.plan.line(event);
                if *status == StepStatus::Failed
                    && let Some(line) = &line
                {
                    self.print(line, &Style::new().red());
                }
                if let (Some(bar), Some(b)) =
                    (self.bars.get(step_id), self.plan.blocks.get(step_id))
                {
                    bar.set_message(b.counts());
                }
            }
            RunEvent::Waiting { step_id, observed } if self.bars.contains_key(step_id) => {
                if let Some(bar) = self.bars.get(step_id) {
                    bar.set_message(format!("waiting: {observed}"));
                }
            }
            RunEvent::StepFinished {
                step_id, status, ..
            } => {
                if let Some(bar) = self.bars.remove(step_id) {
                    bar.finish_and_clear();
                    self.multi.remove(&bar);
                }
                if let Some(line) = self.plan.line(event) {
                    let style = match status {
                        StepStatus::Succeeded => Style::new().green(),
                        StepStatus::Failed => Style::new().red().bold(),
                        _ => Style::new().dim(),
                    };
                    self.print(&line, &style);
                }
            }
            RunEvent::RunFinished { .. } => {
                for (_, bar) in self.bars.drain() {
                    bar.finish_and_clear();
                }
                let _ = self.multi.clear();
            }
            other => {
                let Some(line) = self.plan.line(other) else {
                    return;
                };
                let style = match other {
                    RunEvent::Retrying { .. } | RunEvent::Ambiguous { .. } => Style::new().yellow(),
                    RunEvent::StepSkipped { .. } | RunEvent::StepAlreadyDone { .. } => {
                        Style::new().dim()
                    }
                    RunEvent::AwaitingApproval { .. } | RunEvent::WouldSend { .. } => {
                        Style::new().cyan()
                    }
                    _ => plain,
                };
                self.print(&line, &style);
                // The live line says what the step is at.
                if let RunEvent::Retrying {
                    step_id,
                    request,
                    attempt,
                    max_attempts,
                    ..
                } = other
                    && let Some(bar) = self.bars.get(step_id)
                {
                    bar.set_message(format!(
                        "{request}: attempt {attempt}/{max_attempts} failed, retrying"
                    ));
                }
            }
        }
    }
}

/// Blocks with more items than this are shown as a plan view (counts)
/// instead of a line per item and step.
pub const PLAN_VIEW_ITEMS: usize = 10;

/// What the progress printer knows of the blocks it has seen.
#[derive(Debug, Default)]
pub struct PlanView {
    blocks: BTreeMap<String, BlockProgress>,
}

#[derive(Debug, Default)]
struct BlockProgress {
    items: usize,
    in_flight: usize,
    done: usize,
    failed: usize,
    skipped: usize,
}

impl BlockProgress {
    fn counts(&self) -> String {
        format!(
            "{} of {} done, {} failed, {} skipped, {} in flight",
            self.done, self.items, self.failed, self.skipped, self.in_flight
        )
    }
}

impl PlanView {
    fn is_plan(&self, block: &str) -> bool {
        self.blocks
            .get(block)
            .is_some_and(|b| b.items > PLAN_VIEW_ITEMS)
    }

    /// The line to print for `event`, or `None` when the plan view hides it.
    pub fn line(&mut self, event: &RunEvent) -> Option<String> {
        let step_of = |e: &RunEvent| -> Option<String> {
            let value = serde_json::to_value(e).ok()?;
            value.get("step_id")?.as_str().map(str::to_string)
        };
        if let Some(id) = step_of(event)
            && let Some((block, _, Some(_))) = crate::engine::plan::split_item_id(&id)
            && self.is_plan(block)
        {
            return None;
        }
        Some(match event {
            RunEvent::BlockStarted {
                step_id,
                items,
                max_parallel,
            } => {
                self.blocks.insert(
                    step_id.clone(),
                    BlockProgress {
                        items: *items,
                        ..BlockProgress::default()
                    },
                );
                format!("{step_id:<18} for each of {items} items, {max_parallel} at a time")
            }
            RunEvent::ItemStarted {
                step_id,
                index,
                item,
            } => {
                let b = self.blocks.entry(step_id.clone()).or_default();
                b.in_flight += 1;
                if self.is_plan(step_id) {
                    return None;
                }
                format!("{:<18} {item} ...", format!("{step_id}[{index}]"))
            }
            RunEvent::ItemFinished {
                step_id,
                index,
                item,
                status,
                error,
            } => {
                let plan = self.is_plan(step_id);
                let b = self.blocks.entry(step_id.clone()).or_default();
                match status {
                    StepStatus::Succeeded => b.done += 1,
                    StepStatus::Failed => b.failed += 1,
                    _ => b.skipped += 1,
                }
                if *status != StepStatus::Skipped {
                    b.in_flight = b.in_flight.saturating_sub(1);
                }
                let what = match error {
                    Some(e) => format!("{status}: {e}"),
                    None => status.to_string(),
                };
                if plan {
                    // Failures are always named; successes only counted.
                    match status {
                        StepStatus::Failed => {
                            format!("{step_id:<18} {item} {what}; {}", b.counts())
                        }
                        _ => format!("{step_id:<18} {}", b.counts()),
                    }
                } else {
                    format!("{:<18} {item} {what}", format!("{step_id}[{index}]"))
                }
            }
            other => step_line(other)?,
        })
    }
}

/// What the cloud answered, without the request (when it is the one named,
/// by its `method`, or any with `None`; a token request a read needed stays
/// named) or the cloud's request id (both are in the audit trail).
fn short_answer(reason: &str, method: Option<&str>) -> String {
    let answer = match reason.split_once(" answered ") {
        Some((asked, answer)) if method.is_none_or(|m| asked.split(' ').next() == Some(m)) => {
            answer.to_string()
        }
        _ => reason.to_string(),
    };
    match answer.rfind(" (request id ") {
        Some(at) if answer.ends_with(')') => answer[..at].to_string(),
        _ => answer,
    }
}

/// The line of an event outside the plan view.
fn step_line(event: &RunEvent) -> Option<String> {
    let line = match event {
        RunEvent::RunStarted {
            run_id,
            runbook,
            resumed,
            dry_run,
        } => format!(
            "{} run {run_id} ({runbook}){}",
            if *resumed { "resuming" } else { "starting" },
            if *dry_run {
                ", DRY RUN: no change is sent"
            } else {
                ""
            }
        ),
        RunEvent::StepStarted { step_id, action } => format!("{step_id:<18} {action} ..."),
        RunEvent::StepSkipped { step_id, reason } => format!("{step_id:<18} skipped: {reason}"),
        RunEvent::StepAlreadyDone { step_id, status } => {
            format!("{step_id:<18} already {status} (not run again)")
        }
        RunEvent::Retrying {
            step_id,
            request,
            attempt,
            max_attempts,
            delay_ms,
            reason,
            ..
        } => {
            let method = request.split(' ').next().unwrap_or_default();
            let answer = short_answer(reason, Some(method));
            format!(
                "{step_id:<18} {request}: attempt {attempt}/{max_attempts} failed, again in {:.1}s: {answer}",
                *delay_ms as f64 / 1e3
            )
        }
        RunEvent::Waiting { step_id, observed } => format!("{step_id:<18} waiting: {observed}"),
        RunEvent::Ambiguous { step_id, reason } => {
            let answer = short_answer(reason, None);
            format!("{step_id:<18} no clear answer ({answer}); re-reading before any re-send")
        }
        RunEvent::Reconciled {
            step_id,
            outcome,
            evidence,
        } => format!(
            "{step_id:<18} re-read: {} ({evidence})",
            if *outcome == IntentOutcome::Applied {
                "the action took effect, not sending again"
            } else {
                "the action did not take effect"
            }
        ),
        RunEvent::WouldSend { step_id, request } => {
            format!("{step_id:<18} dry run, would send: {request}")
        }
        RunEvent::AwaitingApproval {
            step_id,
            prompt,
            needed,
        } => {
            format!("{step_id:<18} waiting for {needed} approval(s): {prompt}")
        }
        RunEvent::Approved { step_id, approver } => {
            format!("{step_id:<18} approved by {approver}")
        }
        RunEvent::Note { step_id, message } => format!("{step_id:<18} {message}"),
        RunEvent::StepFinished {
            step_id,
            status,
            duration_ms,
            error,
        } => match error {
            None => format!("{step_id:<18} {status} ({:.1}s)", *duration_ms as f64 / 1e3),
            Some(e) => format!(
                "{step_id:<18} {status} ({:.1}s): {e}",
                *duration_ms as f64 / 1e3
            ),
        },
        RunEvent::RunFinished { .. }
        | RunEvent::BlockStarted { .. }
        | RunEvent::ItemStarted { .. }
        | RunEvent::ItemFinished { .. } => return None,
    };
    Some(line)
}

#[cfg(test)]
mod tests {
    use indicatif::InMemoryTerm;

    use super::*;

    fn view() -> (LiveView, InMemoryTerm) {
        let term = InMemoryTerm::new(12, 140);
        let target = ProgressDrawTarget::term_like_with_hz(Box::new(term.clone()), 250);
        (LiveView::new(target), term)
    }

    fn started(step: &str, action: &str) -> RunEvent {
        RunEvent::StepStarted {
            step_id: step.into(),
            action: action.into(),
        }
    }

    fn waiting(step: &str, observed: &str) -> RunEvent {
        RunEvent::Waiting {
            step_id: step.into(),
            observed: observed.into(),
        }
    }

    fn finished(step: &str, status: StepStatus, ms: u64) -> RunEvent {
        RunEvent::StepFinished {
            step_id: step.into(),
            status,
            duration_ms: ms,
            error: None,
        }
    }

    fn lines_with(screen: &str, text: &str) -> Vec<String> {
        screen
            .lines()
            .filter(|l| l.contains(text))
            .map(str::to_string)
            .collect()
    }

    #[test]
    fn a_running_step_is_one_line_showing_the_last_state_seen() {
        let (mut view, term) = view();
        view.show(&started("verify", "evs.wait_group"));
        view.show(&waiting("verify", "status reversing"));
        view.show(&waiting(
            "verify",
            "status reversing, replication_status active",
        ));
        let screen = term.contents();
        let live = lines_with(&screen, "verify");
        assert_eq!(live.len(), 1, "{screen}");
        assert!(
            live[0].ends_with("waiting: status reversing, replication_status active"),
            "{screen}"
        );
        view.show(&finished("verify", StepStatus::Succeeded, 5_100));
        let screen = term.contents();
        assert_eq!(
            lines_with(&screen, "verify")
                .iter()
                .map(|l| l.split_once("] ").map_or("", |(_, rest)| rest).trim_end())
                .collect::<Vec<_>>(),
            ["verify             succeeded (5.1s)"],
            "{screen}"
        );
        assert!(lines_with(&screen, "waiting").is_empty(), "{screen}");
    }

    #[test]
    fn finished_steps_and_retries_stay_above_the_running_ones() {
        let (mut view, term) = view();
        view.show(&started("slow", "evs.wait_group"));
        view.show(&started("quick", "evs.check_group"));
        view.show(&RunEvent::Retrying {
            step_id: "quick".into(),
            request: "GET consistency group g1".into(),
            attempt: 1,
            max_attempts: 6,
            delay_ms: 600,
            status: Some(503),
            reason: "GET /v2/p/groups/g1 answered 503 (request id 42)".into(),
        });
        view.show(&finished("quick", StepStatus::Succeeded, 700));
        let screen = term.contents();
        let rows: Vec<&str> = screen.lines().filter(|l| !l.trim().is_empty()).collect();
        assert_eq!(rows.len(), 3, "{screen}");
        assert!(
            rows[0].contains(
                "quick              GET consistency group g1: attempt 1/6 failed, again in 0.6s: 503"
            ),
            "{screen}"
        );
        assert!(
            rows[1].contains("quick              succeeded (0.7s)"),
            "{screen}"
        );
        assert!(
            rows[2].contains("slow") && rows[2].ends_with("evs.wait_group"),
            "{screen}"
        );
        view.show(&RunEvent::RunFinished {
            run_id: "r".into(),
            status: crate::store::RunStatus::Succeeded,
            recovery_ms: None,
            error: None,
        });
        assert!(
            lines_with(&term.contents(), "slow").is_empty(),
            "the live line is cleared"
        );
    }

    #[test]
    fn a_line_gives_the_cloud_s_answer_once_without_its_request_id() {
        let retry = |request: &str, reason: &str| {
            step_line(&RunEvent::Retrying {
                step_id: "s".into(),
                request: request.into(),
                attempt: 2,
                max_attempts: 6,
                delay_ms: 1500,
                status: Some(503),
                reason: reason.into(),
            })
            .unwrap()
        };
        assert_eq!(
            retry(
                "POST os-vendor-replication-consistency-groups/g1/action",
                "POST /v2/p/os-vendor-replication-consistency-groups/g1/action answered 503 SIM.503: busy (request id 7)"
            ),
            "s                  POST os-vendor-replication-consistency-groups/g1/action: attempt 2/6 failed, again in 1.5s: 503 SIM.503: busy"
        );
        // The token request a read needed is another request: named.
        assert!(
            retry(
                "GET consistency group g1",
                "POST /v3/auth/tokens answered 503 X: y"
            )
            .ends_with("again in 1.5s: POST /v3/auth/tokens answered 503 X: y")
        );
        let ambiguous = step_line(&RunEvent::Ambiguous {
            step_id: "s".into(),
            reason: "POST /v2/p/x/action answered 504 (request id 9)".into(),
        })
        .unwrap();
        assert_eq!(
            ambiguous,
            "s                  no clear answer (504); re-reading before any re-send"
        );
    }
}
