//! `for_each` blocks: recovery plans over many groups.
//!
//! When a block is reached its list is evaluated once and stored with the
//! block (`Store::expand_block`): a row per item (`block[i]`) and per item
//! step (`block[i].step`), and each item's leases, in one transaction. A
//! resume reads the stored list, never the cloud's list of today, so every
//! item keeps its place. Each item's steps then go through the same path as
//! any step (`advance`: intents, reconciliation, crash points), so
//! exactly-once holds per item. Items run in parallel up to `max_parallel`;
//! they are isolated unless `on_item_failure: abort` stops new ones.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};

use futures_util::StreamExt;
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

use super::context::{ItemScope, RunContext, StepError, StepState, decide_when};
use super::crash;
use super::run::{EngineError, Flow};
use super::{Cloud, Engine, RunEvent};
use crate::runbook::{Block, MAX_ITEMS, OnFailure, template};
use crate::store::{Expansion, REFUSED_ITEM, StepStatus};

impl RunContext {
    /// The context item `id` of a block runs in: its own `steps` (by local
    /// id) over `outer`, the run's view outside the block.
    fn for_item(
        &self,
        id: &str,
        item: &Value,
        steps: BTreeMap<String, StepState>,
        outer: &Outer,
    ) -> RunContext {
        RunContext {
            run: self.run.clone(),
            runbook: self.runbook.clone(),
            steps,
            outcome: self.outcome,
            env: self.env.clone(),
            item: Some(ItemScope {
                prefix: format!("{id}."),
                value: item.clone(),
                outer: outer.view.clone(),
                held_back: outer.held_back,
            }),
        }
    }
}

/// What the items of a block share of the run outside it.
struct Outer {
    view: minijinja::Value,
    held_back: bool,
}

impl Outer {
    fn of(ctx: &RunContext) -> Outer {
        Outer {
            view: ctx.outer_view(),
            held_back: ctx.steps.iter().any(|(id, st)| {
                !id.contains('[') && st.output.get("held_back") == Some(&Value::Bool(true))
            }),
        }
    }
}

/// How an item ended in this execution.
enum ItemEnd {
    Done(StepStatus, Option<String>),
    /// The process is stopping: the item resumes later.
    Interrupted,
}

/// An item as people read it: a string, a number, or an object's `id`.
pub fn item_label(item: &Value) -> String {
    match item {
        Value::String(s) => s.clone(),
        Value::Object(o) => o
            .get("id")
            .or_else(|| o.get("name"))
            .map(|v| {
                v.as_str()
                    .map(str::to_string)
                    .unwrap_or_else(|| v.to_string())
            })
            .unwrap_or_else(|| item.to_string()),
        other => other.to_string(),
    }
}

/// The stored row id of item `index` of `block`.
pub fn item_id(block: &str, index: usize) -> String {
    format!("{block}[{index}]")
}

/// The label of item `index` of `block`, read from the block's stored
/// output among a run's `steps` (empty when it is not there).
pub fn stored_item_label(steps: &[crate::store::StepRecord], block: &str, index: usize) -> String {
    steps
        .iter()
        .find(|s| s.step_id == block)
        .and_then(|s| s.output.as_ref()?.get("items")?.get(index))
        .map(item_label)
        .unwrap_or_default()
}

/// Splits a stored step id `block[i].step` (or `block[i]`) into its parts.
pub fn split_item_id(step_id: &str) -> Option<(&str, usize, Option<&str>)> {
    let (block, rest) = step_id.split_once('[')?;
    let (index, rest) = rest.split_once(']')?;
    let index = index.parse().ok()?;
    match rest {
        "" => Some((block, index, None)),
        _ => Some((block, index, Some(rest.strip_prefix('.')?))),
    }
}

impl<C: Cloud> Engine<C> {
    /// Runs a block unless it is done already, skipped, or the run is stopping.
    pub(super) async fn advance_block(
        &self,
        ctx: &mut RunContext,
        block: &Block,
        position: i64,
        skip: Option<&str>,
        cancel: &CancellationToken,
    ) -> Result<Flow, EngineError> {
        let state = ctx.steps.get(&block.id).cloned();
        let stored = state
            .as_ref()
            .map(|s| s.status)
            .unwrap_or(StepStatus::Pending);
        match stored {
            StepStatus::Succeeded | StepStatus::Skipped | StepStatus::Failed => {
                self.emit(RunEvent::StepAlreadyDone {
                    step_id: block.id.clone(),
                    status: stored,
                });
                return Ok(match stored {
                    StepStatus::Failed => {
                        Flow::Failed(state.and_then(|s| s.error).unwrap_or_default())
                    }
                    _ => Flow::Continue,
                });
            }
            _ => {}
        }
        if cancel.is_cancelled() {
            return Ok(Flow::Interrupted);
        }
        if let Some(reason) = skip {
            return self.skip(ctx, &block.id, reason).await;
        }
        let started = tokio::time::Instant::now();
        let stored_items = state
            .as_ref()
            .filter(|s| s.status == StepStatus::Running)
            .and_then(|s| s.output.get("items").and_then(Value::as_array).cloned());
        let (items, max_parallel) = match stored_items {
            // A resume: the list the block was expanded with.
            Some(items) => {
                let output = &state.as_ref().expect("stored state").output;
                let max = output["max_parallel"].as_u64().unwrap_or(1).clamp(1, 1000) as u32;
                (items, max)
            }
            None => {
                match decide_when(ctx, block.when.as_deref()) {
                    Ok(None) => {}
                    Ok(Some(reason)) => return self.skip(ctx, &block.id, &reason).await,
                    Err(e) => return self.conclude(ctx, &block.id, Err(e), started).await,
                }
                match self.expand(ctx, block, position).await {
                    Ok(expanded) => expanded,
                    Err(EngineError::Store(e)) => return Err(EngineError::Store(e)),
                    Err(EngineError::Params { problems, .. }) => {
                        let e = StepError::Failed(problems.join("; "));
                        return self.conclude(ctx, &block.id, Err(e), started).await;
                    }
                    Err(e) => return Err(e),
                }
            }
        };
        self.emit(RunEvent::BlockStarted {
            step_id: block.id.clone(),
            items: items.len(),
            max_parallel,
        });

        // What an item may read of the run: the main steps, not other items.
        let outer = Outer::of(ctx);
        let abort = AtomicBool::new(
            block.on_item_failure == OnFailure::Abort
                && (0..items.len()).any(|i| {
                    ctx.steps.get(&item_id(&block.id, i)).map(|s| s.status)
                        == Some(StepStatus::Failed)
                }),
        );
        let known: BTreeMap<String, StepState> = ctx
            .steps
            .iter()
            .filter(|(k, _)| k.starts_with(&format!("{}[", block.id)))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        let shared = &*ctx;
        let mut runs: Vec<futures_util::future::BoxFuture<'_, _>> = Vec::new();
        for (index, item) in items.iter().enumerate() {
            let (outer, known, abort) = (&outer, &known, &abort);
            // Boxed: the compiler cannot prove an unboxed stream of these Send.
            runs.push(Box::pin(async move {
                let end = self
                    .run_item(shared, block, index, item, outer, known, abort, cancel)
                    .await;
                (index, end)
            }));
        }
        let ends: Vec<(usize, Result<ItemEnd, EngineError>)> = futures_util::stream::iter(runs)
            .buffer_unordered(max_parallel as usize)
            .collect()
            .await;

        let mut outcomes: Vec<(usize, StepStatus, Option<String>)> = Vec::new();
        let mut interrupted = false;
        for (index, end) in ends {
            match end? {
                ItemEnd::Done(status, error) => outcomes.push((index, status, error)),
                ItemEnd::Interrupted => interrupted = true,
            }
        }
        if interrupted {
            return Ok(Flow::Interrupted);
        }
        outcomes.sort_by_key(|(i, _, _)| *i);
        for (index, status, error) in &outcomes {
            ctx.steps.insert(
                item_id(&block.id, *index),
                StepState {
                    status: *status,
                    output: json!({ "item": items[*index] }),
                    error: error.clone(),
                },
            );
        }
        let count = |want: StepStatus| outcomes.iter().filter(|(_, s, _)| *s == want).count();
        let failures: Vec<Value> = outcomes
            .iter()
            .filter(|(_, s, _)| *s == StepStatus::Failed)
            .map(|(i, _, e)| json!({ "item": item_label(&items[*i]), "error": e }))
            .collect();
        let output = json!({
            "items": items,
            "max_parallel": max_parallel,
            "count": items.len(),
            "succeeded": count(StepStatus::Succeeded),
            "failed": count(StepStatus::Failed),
            "skipped": count(StepStatus::Skipped),
            "failures": failures,
        });
        let cancelled = self.store.cancel_requested_by(&ctx.run.id).await?;
        let error = if !failures.is_empty() {
            let named: Vec<String> = failures
                .iter()
                .take(5)
                .map(|f| {
                    format!(
                        "{}: {}",
                        f["item"].as_str().unwrap_or("?"),
                        f["error"].as_str().unwrap_or("")
                    )
                })
                .collect();
            let more = failures.len().saturating_sub(named.len());
            Some(format!(
                "{} of {} items failed ({}{})",
                failures.len(),
                items.len(),
                named.join("; "),
                if more > 0 {
                    format!("; and {more} more")
                } else {
                    String::new()
                }
            ))
        } else if let (Some(by), true) = (&cancelled, count(StepStatus::Skipped) > 0) {
            Some(format!(
                "cancelled by {by} after {} of {} items",
                items.len() - count(StepStatus::Skipped),
                items.len()
            ))
        } else {
            None
        };
        let status = if error.is_some() {
            StepStatus::Failed
        } else {
            StepStatus::Succeeded
        };
        self.store
            .set_step(
                &ctx.run.id,
                &block.id,
                status,
                Some(&output),
                error.as_deref(),
            )
            .await?;
        ctx.steps.insert(
            block.id.clone(),
            StepState {
                status,
                output,
                error: error.clone(),
            },
        );
        self.emit(RunEvent::StepFinished {
            step_id: block.id.clone(),
            status,
            duration_ms: u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX),
            error: error.clone(),
        });
        Ok(match error {
            Some(e) => Flow::Failed(e),
            None => Flow::Continue,
        })
    }

    /// Evaluates the block's list and stores the expansion. Problems with the
    /// list are `Params` errors (the block fails with them).
    async fn expand(
        &self,
        ctx: &mut RunContext,
        block: &Block,
        position: i64,
    ) -> Result<(Vec<Value>, u32), EngineError> {
        let problem = |p: String| EngineError::Params {
            runbook: ctx.run.runbook.clone(),
            problems: vec![p],
        };
        let jinja = template::environment();
        let value = jinja
            .compile_expression(&block.for_each)
            .and_then(|e| e.eval(ctx.template_value()))
            .map_err(|e| {
                problem(format!(
                    "cannot evaluate `for_each` (`{}`): {}",
                    block.for_each,
                    e.detail().unwrap_or(&e.to_string())
                ))
            })?;
        let items = match serde_json::to_value(&value) {
            Ok(Value::Array(items)) => items,
            Ok(other) => {
                return Err(problem(format!(
                    "`for_each` (`{}`) gave `{other}`, expected a list",
                    block.for_each
                )));
            }
            Err(e) => {
                return Err(problem(format!(
                    "`for_each` gave a value that cannot be kept: {e}"
                )));
            }
        };
        if items.len() > MAX_ITEMS {
            return Err(problem(format!(
                "`for_each` gave {} items; a block may have at most {MAX_ITEMS}",
                items.len()
            )));
        }
        // The same group twice would be switched over and back.
        let mut seen = std::collections::HashSet::new();
        for item in &items {
            let label = item_label(item);
            check_label(&label).map_err(&problem)?;
            if !seen.insert(label.clone()) {
                return Err(problem(format!(
                    "`for_each` gave `{label}` twice; each item must be distinct"
                )));
            }
        }
        let max_parallel = block
            .max_parallel
            .resolve(|t| ctx.render(t).map_err(|e| e.to_string()))
            .map_err(|e| problem(format!("max_parallel: {e}")))?;
        if !(1..=1000).contains(&max_parallel) {
            return Err(problem(format!(
                "max_parallel: expected 1 to 1000, found `{max_parallel}`"
            )));
        }

        // A run changes a group in one place only: in two stages it would be
        // switched over and back. Leases cannot tell (the run holds them).
        let outer = Outer::of(ctx);
        let mut claimed = changed_elsewhere(ctx, block, &outer);
        let width = block.steps.len() as i64 + 1;
        let mut rows = Vec::with_capacity(items.len() * width as usize);
        let mut leases = Vec::with_capacity(items.len());
        let mut refused = Vec::new();
        for (i, item) in items.iter().enumerate() {
            let id = item_id(&block.id, i);
            let at = position + 1 + i as i64 * width;
            rows.push((id.clone(), at));
            for (j, step) in block.steps.iter().enumerate() {
                rows.push((format!("{id}.{}", step.id), at + 1 + j as i64));
            }
            let changes = item_targets(ctx, block, &id, item, &outer, true);
            for target in &changes {
                match claimed.get(target) {
                    Some((owner, who)) if *owner == block.id => {
                        return Err(problem(format!(
                            "`for_each` gave `{}` and {who}, which both change {target}; each item must be distinct",
                            item_label(item)
                        )));
                    }
                    Some((_, who)) => {
                        refused.push((
                            id.clone(),
                            format!(
                                "{target} is also changed by {who} of this run; a run changes a group in one place only"
                            ),
                        ));
                        break;
                    }
                    None => {}
                }
            }
            for target in &changes {
                let who = format!("`{}`", item_label(item));
                claimed.insert(target.clone(), (block.id.clone(), who));
            }
            let targets = if ctx.run.dry_run {
                Vec::new()
            } else {
                item_targets(ctx, block, &id, item, &outer, false)
            };
            leases.push((id, targets));
        }
        let output = json!({ "items": items, "max_parallel": max_parallel, "count": items.len() });
        let refused = self
            .store
            .expand_block(
                &ctx.run.id,
                &block.id,
                &Expansion {
                    output: output.clone(),
                    rows: rows.clone(),
                    leases,
                    refused,
                },
            )
            .await?;
        crash::point("block.after_expand");
        ctx.steps.insert(
            block.id.clone(),
            StepState {
                status: StepStatus::Running,
                output,
                error: None,
            },
        );
        for (id, _) in rows {
            let (item, inner) = match id.split_once("].") {
                Some((item, _)) => (format!("{item}]"), true),
                None => (id.clone(), false),
            };
            let (status, error) = match refused.iter().find(|(r, _)| *r == item) {
                Some(_) if inner => (StepStatus::Skipped, Some(REFUSED_ITEM.to_string())),
                Some((_, why)) => (StepStatus::Failed, Some(why.clone())),
                None => (StepStatus::Pending, None),
            };
            ctx.steps.insert(
                id,
                StepState {
                    status,
                    output: json!({}),
                    error,
                },
            );
        }
        Ok((items, max_parallel))
    }

    #[allow(clippy::too_many_arguments)]
    async fn run_item(
        &self,
        ctx: &RunContext,
        block: &Block,
        index: usize,
        item: &Value,
        outer: &Outer,
        known: &BTreeMap<String, StepState>,
        abort: &AtomicBool,
        cancel: &CancellationToken,
    ) -> Result<ItemEnd, EngineError> {
        let id = item_id(&block.id, index);
        let label = item_label(item);
        let stored = known
            .get(&id)
            .map(|s| s.status)
            .unwrap_or(StepStatus::Pending);
        if matches!(
            stored,
            StepStatus::Succeeded | StepStatus::Failed | StepStatus::Skipped
        ) {
            let error = known.get(&id).and_then(|s| s.error.clone());
            return Ok(ItemEnd::Done(stored, error));
        }
        if cancel.is_cancelled() {
            return Ok(ItemEnd::Interrupted);
        }
        let skip_reason = if abort.load(Ordering::SeqCst) {
            Some("an earlier item failed and the block's on_item_failure is abort".to_string())
        } else {
            self.store
                .cancel_requested_by(&ctx.run.id)
                .await?
                .map(|by| format!("the run was cancelled by {by}"))
        };
        if let Some(reason) = skip_reason {
            let ids: Vec<String> = std::iter::once(id.clone())
                .chain(block.steps.iter().map(|s| format!("{id}.{}", s.id)))
                .collect();
            self.store.skip_item(&ctx.run.id, &ids, &reason).await?;
            self.emit(RunEvent::ItemFinished {
                step_id: block.id.clone(),
                index,
                item: label,
                status: StepStatus::Skipped,
                error: Some(reason.clone()),
            });
            return Ok(ItemEnd::Done(StepStatus::Skipped, Some(reason)));
        }
        if stored != StepStatus::Running {
            self.store
                .set_step(&ctx.run.id, &id, StepStatus::Running, None, None)
                .await?;
        }
        self.emit(RunEvent::ItemStarted {
            step_id: block.id.clone(),
            index,
            item: label.clone(),
        });
        let prefix = format!("{id}.");
        let mut steps = BTreeMap::new();
        for step in &block.steps {
            if let Some(state) = known.get(&format!("{prefix}{}", step.id)) {
                steps.insert(step.id.clone(), state.clone());
            }
        }
        let mut ictx = ctx.for_item(&id, item, steps, outer);
        let mut failed: Option<String> = None;
        for step in &block.steps {
            let mut stored_step = step.clone();
            stored_step.id = format!("{prefix}{}", step.id);
            let skip = failed
                .as_ref()
                .map(|_| "an earlier step of this item failed");
            match self.advance(&mut ictx, &stored_step, skip, cancel).await? {
                Flow::Continue => {}
                Flow::Failed(e) if step.on_failure == OnFailure::Abort => {
                    failed.get_or_insert(format!("step `{}` failed: {e}", step.id));
                }
                Flow::Failed(_) => {}
                Flow::Interrupted | Flow::Waiting(_) => return Ok(ItemEnd::Interrupted),
            }
        }
        let status = if failed.is_some() {
            StepStatus::Failed
        } else {
            StepStatus::Succeeded
        };
        self.store
            .set_step(
                &ctx.run.id,
                &id,
                status,
                Some(&json!({ "item": item })),
                failed.as_deref(),
            )
            .await?;
        if failed.is_some() && block.on_item_failure == OnFailure::Abort {
            abort.store(true, Ordering::SeqCst);
        }
        self.emit(RunEvent::ItemFinished {
            step_id: block.id.clone(),
            index,
            item: label,
            status,
            error: failed.clone(),
        });
        Ok(ItemEnd::Done(status, failed))
    }
}

/// The longest item label kept: labels reach events, logs and errors.
const MAX_LABEL: usize = 255;

/// An item's label must read as one short line.
fn check_label(label: &str) -> Result<(), String> {
    if label.is_empty() {
        return Err("`for_each` gave an empty item".to_string());
    }
    if label.chars().count() > MAX_LABEL {
        let head: String = label.chars().take(40).collect();
        return Err(format!(
            "`for_each` gave an item of {} characters (`{}...`); at most {MAX_LABEL}",
            label.chars().count(),
            head.escape_debug()
        ));
    }
    if label.chars().any(char::is_control) {
        return Err(format!(
            "`for_each` gave an item with a control character: `{}`",
            label.escape_debug()
        ));
    }
    Ok(())
}

/// What the rest of the run changes: per target, who changes it (a step or
/// a block) and how people read that (`step \`x\``, `item \`g1\` of block
/// \`db\``). Reading a group twice is fine; changing it twice is not.
fn changed_elsewhere(
    ctx: &RunContext,
    block: &Block,
    outer: &Outer,
) -> BTreeMap<String, (String, String)> {
    let mut out = BTreeMap::new();
    for entry in &ctx.runbook.steps {
        let crate::runbook::Entry::Step(step) = entry else {
            continue;
        };
        for target in named_targets(ctx, std::slice::from_ref(step), true) {
            out.insert(target, (step.id.clone(), format!("step `{}`", step.id)));
        }
    }
    for other in ctx.runbook.steps.iter().filter_map(|e| match e {
        crate::runbook::Entry::Block(b) if b.id != block.id => Some(b),
        _ => None,
    }) {
        let Some(items) = ctx
            .steps
            .get(&other.id)
            .and_then(|s| s.output.get("items"))
            .and_then(Value::as_array)
        else {
            continue;
        };
        for (i, item) in items.iter().enumerate() {
            for target in item_targets(ctx, other, &item_id(&other.id, i), item, outer, true) {
                let who = format!("item `{}` of block `{}`", item_label(item), other.id);
                out.insert(target, (other.id.clone(), who));
            }
        }
    }
    out
}

/// The cloud resources an item's steps name, rendered with the item and
/// what the run knows before the block (an id read from the item's own
/// steps cannot be rendered yet and leases nothing; an invalid one fails
/// its step when rendered).
fn item_targets(
    ctx: &RunContext,
    block: &Block,
    id: &str,
    item: &Value,
    outer: &Outer,
    changed_only: bool,
) -> Vec<String> {
    let ictx = ctx.for_item(id, item, BTreeMap::new(), outer);
    named_targets(&ictx, &block.steps, changed_only)
}

/// The targets `steps` name, rendered in `ctx`; with `changed_only`, only
/// those of steps that change cloud state.
fn named_targets(
    ctx: &RunContext,
    steps: &[crate::runbook::Step],
    changed_only: bool,
) -> Vec<String> {
    let mut out: Vec<String> = steps
        .iter()
        .filter(|s| !changed_only || s.action.is_mutating())
        .flat_map(|s| s.action.identifiers())
        .filter_map(|(_, field, value)| {
            let prefix = field.lease_prefix()?;
            let rendered = ctx.render(&value.value).ok()?;
            let rendered = rendered.trim();
            field.check(rendered).ok()?;
            Some(format!(
                "{prefix}:{}",
                crate::cloud::id::canonical(rendered)
            ))
        })
        .collect();
    out.sort();
    out.dedup();
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn item_ids_split_back_into_their_parts() {
        assert_eq!(
            split_item_id("db[12].switchover"),
            Some(("db", 12, Some("switchover")))
        );
        assert_eq!(split_item_id("db[3]"), Some(("db", 3, None)));
        assert_eq!(split_item_id("precheck"), None);
        assert_eq!(split_item_id("db[x].a"), None);
        assert_eq!(item_id("db", 7), "db[7]");
    }

    #[test]
    fn items_are_labelled_by_text_or_id() {
        assert_eq!(item_label(&json!("g1")), "g1");
        assert_eq!(item_label(&json!({"id": "g2", "name": "x"})), "g2");
        assert_eq!(item_label(&json!(5)), "5");
    }
}
