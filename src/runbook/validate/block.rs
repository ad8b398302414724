//! `for_each` blocks: the list expression, `max_parallel`, and the block's
//! steps, each validated as a step that may read `item`.

use super::build_step;
use crate::policy::RetryPolicy;
use crate::runbook::model::RawStep;
use crate::runbook::template::{self, Scope};
use crate::runbook::value::Templated;
use crate::runbook::{Block, DEFAULT_MAX_PARALLEL, Kind, MAX_BLOCK_STEPS, OnFailure};
use crate::yaml::{Node, Sink};

/// A `for_each` block: the list expression, `max_parallel`, and its steps,
/// each validated as a step that may read `item`, the steps before the
/// block and the block's own earlier steps.
#[allow(clippy::too_many_arguments)]
pub(super) fn build_block(
    mut raw: RawStep,
    node: &Node,
    in_finally: bool,
    kind: Option<Kind>,
    runbook_retry: &RetryPolicy,
    scope: &Scope<'_>,
    env: &minijinja::Environment<'_>,
    sink: &Sink,
) -> Option<Block> {
    let id = raw.id.value.clone();
    if in_finally {
        sink.error(
            &raw.id.loc,
            format!("`finally` cannot hold the `for_each` block `{id}`"),
        );
    }
    if let Some(action) = &raw.action {
        sink.error(
            &action.loc,
            format!("block `{id}` has `steps`, so it takes no `action`; put the action in one of its steps"),
        );
    }
    if node.get("with").is_some() || node.get("timeout").is_some() || raw.retry.0.is_some() {
        sink.error(
            &raw.id.loc,
            format!("block `{id}` takes no `with`, `timeout` or `retry`; set them on its steps"),
        );
    }
    let for_each = match raw.for_each.take() {
        None => {
            sink.error(&raw.id.loc, format!("block `{id}` has `steps` but no `for_each`; say which list it runs over, such as `for_each: \"{{{{ params.group_ids }}}}\"`"));
            None
        }
        Some(f) => match expression(&f.value) {
            None => {
                sink.error(&f.loc, format!("`for_each` must be one `{{{{ ... }}}}` expression giving a list, such as `{{{{ steps.discover.output.ids }}}}`, found `{}`", f.value));
                None
            }
            Some(expr) => {
                for problem in template::check(env, &f.value, scope) {
                    sink.error(&f.loc, problem);
                }
                Some(expr.to_string())
            }
        },
    };
    let max_parallel = match raw.max_parallel.take() {
        None => Templated::Literal(DEFAULT_MAX_PARALLEL),
        Some(m) => {
            match &m.value {
                Templated::Literal(n) if !(1..=1000).contains(n) => {
                    sink.error(
                        &m.loc,
                        format!("max_parallel: expected 1 to 1000, found `{n}`"),
                    );
                }
                Templated::Template(t) => {
                    for problem in template::check(env, t, scope) {
                        sink.error(&m.loc, problem);
                    }
                }
                _ => {}
            }
            m.value
        }
    };
    if let Some(when) = &raw.when
        && template::is_template(&when.value)
    {
        for problem in template::check(env, &when.value, scope) {
            sink.error(&when.loc, problem);
        }
    }
    let inner_raw = raw.steps.take().unwrap_or_default();
    let inner_nodes = node.get("steps").map(Node::items).unwrap_or_default();
    if inner_raw.is_empty() {
        sink.error(
            &raw.id.loc,
            format!("block `{id}` needs at least one step in `steps`"),
        );
    }
    if inner_raw.len() > MAX_BLOCK_STEPS {
        sink.error(
            &raw.id.loc,
            format!(
                "block `{id}` has {} steps; a block may have at most {}",
                inner_raw.len(),
                MAX_BLOCK_STEPS
            ),
        );
    }
    let inner_ids: Vec<String> = inner_raw
        .iter()
        .map(|s| s.0.as_ref().map(|s| s.id.value.clone()).unwrap_or_default())
        .collect();
    // The block's own id counts as later: its output exists once it is done.
    let before_block = scope.earlier_steps;
    let mut steps = Vec::new();
    for (j, (step, step_node)) in inner_raw.into_iter().zip(inner_nodes).enumerate() {
        let Some(step) = step.0 else { continue };
        if step.for_each.is_some() || step.steps.is_some() {
            sink.error(
                &step.id.loc,
                format!(
                    "block `{id}` holds the block `{}`; blocks do not nest",
                    step.id.value
                ),
            );
            continue;
        }
        if step.action.as_ref().map(|a| a.value.as_str()) == Some("approval") {
            sink.error(&step.id.loc, format!("step `{}` asks for approval inside block `{id}`, once per item; put the approval before the block, where it is given once for the whole plan", step.id.value));
            continue;
        }
        let earlier: Vec<String> = before_block
            .iter()
            .cloned()
            .chain(inner_ids[..j].iter().cloned())
            .collect();
        let later: Vec<String> = scope
            .later_steps
            .iter()
            .cloned()
            .chain(inner_ids[j..].iter().cloned())
            .collect();
        let inner_scope = Scope {
            params: scope.params,
            earlier_steps: &earlier,
            later_steps: &later,
            item: true,
        };
        let step_id = step.id.value.clone();
        let built = sink.in_step(Some(&step_id), || {
            build_step(
                step,
                step_node,
                kind,
                runbook_retry,
                &inner_scope,
                env,
                sink,
            )
        });
        steps.extend(built);
    }
    Some(Block {
        id,
        description: raw.description,
        for_each: for_each?,
        max_parallel,
        on_failure: raw.on_failure.0.unwrap_or_default(),
        on_item_failure: raw.on_item_failure.0.unwrap_or(OnFailure::Continue),
        when: raw.when.map(|w| w.value),
        steps,
        line: node.loc.line().unwrap_or(0),
    })
}

/// The expression of a text that is exactly one `{{ ... }}`.
pub(crate) fn expression(text: &str) -> Option<&str> {
    let inner = text.trim().strip_prefix("{{")?.strip_suffix("}}")?.trim();
    (!inner.is_empty() && !inner.contains("{{") && !inner.contains("}}")).then_some(inner)
}
