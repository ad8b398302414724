//! Cross-field rules of a runbook: names and ids, the action catalog and each
//! action's input, retry values, templates and what they reference, cron
//! expressions, time zones and schedule parameters. Every rule records into the
//! sink and carries on, so one pass reports everything.

use std::collections::{BTreeMap, HashSet};
use std::str::FromStr;

use super::model::{
    self, ACTION_NAMES, Action, DurationSpec, ListGroupsInput, RawBackoff, RawRetry, RawSchedule,
    RawStep,
};
use super::template::{self, Scope};
use super::value::{Expect, Templated};
use super::{Entry, Kind, Param, Runbook, Schedule, Step};
use crate::cloud::vocabulary::{EvsStatus, SdrsStatus};
use crate::policy::RetryPolicy;
use crate::yaml::{Loc, Node, Sink, Value, suggestion};

mod block;
use block::build_block;

pub(super) fn validate(raw: model::RawRunbook, root: &Node, sink: &Sink) -> Option<Runbook> {
    check_name(&raw.name.value, &raw.name.loc, sink);

    let params = build_params(raw.params.0.unwrap_or_default(), sink);
    let param_names: Vec<String> = params.iter().map(|p| p.name.clone()).collect();

    let retry = match raw.retry.0 {
        Some(r) => merge_retry(&RetryPolicy::default(), &r, sink),
        None => RetryPolicy::default(),
    };

    let main_nodes = root.get("steps").map(Node::items).unwrap_or_default();
    let finally_nodes = root.get("finally").map(Node::items).unwrap_or_default();
    if raw.steps.value.is_empty() {
        sink.error(
            &raw.steps.loc,
            "a runbook needs at least one step, found an empty list",
        );
    }
    let finally_raw = raw.finally.unwrap_or_default();

    // Ids in run order; a template may read only the ids before its own step.
    let order: Vec<String> = raw
        .steps
        .value
        .iter()
        .chain(&finally_raw)
        .map(|s| s.0.as_ref().map(|s| s.id.value.clone()).unwrap_or_default())
        .collect();
    check_unique_ids(raw.steps.value.iter().chain(&finally_raw), sink);
    // A block's steps are known by their own ids inside it: unique there,
    // and none may hide a step of the runbook.
    for block in raw
        .steps
        .value
        .iter()
        .chain(&finally_raw)
        .filter_map(|s| s.0.as_ref())
    {
        let inner = block.steps.iter().flatten();
        check_unique_ids(inner.clone(), sink);
        for step in inner.filter_map(|s| s.0.as_ref()) {
            if order.contains(&step.id.value) {
                sink.error(
                    &step.id.loc,
                    format!(
                        "step `{}` of block `{}` has the id of a step of the runbook; inside the block `steps.{}` would be ambiguous",
                        step.id.value, block.id.value, step.id.value
                    ),
                );
            }
        }
    }

    let env = template::environment();
    let mut steps = Vec::new();
    let mut finally = Vec::new();
    let all = raw
        .steps
        .value
        .into_iter()
        .zip(main_nodes)
        .map(|s| (s, false))
        .chain(
            finally_raw
                .into_iter()
                .zip(finally_nodes)
                .map(|s| (s, true)),
        );
    let kind = raw.kind.0;
    for (index, ((step, node), in_finally)) in all.enumerate() {
        let Some(step) = step.0 else { continue };
        let scope = Scope {
            params: &param_names,
            earlier_steps: &order[..index],
            later_steps: &order[index..],
            item: false,
        };
        let id = step.id.value.clone();
        if step.for_each.is_some() || step.steps.is_some() {
            let block = sink.in_step(Some(&id), || {
                build_block(step, node, in_finally, kind, &retry, &scope, &env, sink)
            });
            steps.extend(block.map(Entry::Block));
            continue;
        }
        let built = sink.in_step(Some(&id), || {
            build_step(step, node, kind, &retry, &scope, &env, sink)
        });
        if let Some(built) = built {
            if in_finally {
                finally.push(built);
            } else {
                steps.push(Entry::Step(built));
            }
        }
    }

    let schedules = build_schedules(raw.schedules.unwrap_or_default(), &params, sink);

    Some(Runbook {
        name: raw.name.value,
        description: raw.description,
        kind: raw.kind.0?,
        params,
        steps,
        finally,
        schedules,
        rto: raw.rto.0.flatten().map(|r| r.value.0),
        path: Default::default(),
        digest: String::new(),
        source: String::new(),
    })
}

fn check_name(name: &str, loc: &Loc, sink: &Sink) {
    let ok = !name.is_empty()
        && name.len() <= 64
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        && !name.starts_with('-');
    if !ok {
        sink.error(
            loc,
            format!(
                "invalid runbook name `{name}`: expected 1 to 64 lowercase letters, digits and `-`, such as `evs-switchover`"
            ),
        );
    }
}

/// Identifiers used in templates (`params.x`, `steps.x`): a hyphen would read as minus.
fn is_identifier(text: &str) -> bool {
    let mut chars = text.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_lowercase())
        && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
        && text.len() <= 64
}

fn build_params(
    raw: BTreeMap<String, crate::yaml::Checked<crate::yaml::Located<model::RawParam>>>,
    sink: &Sink,
) -> Vec<Param> {
    let mut out = Vec::new();
    for (name, param) in raw {
        let Some(param) = param.0 else { continue };
        if !is_identifier(&name) {
            sink.error(
                &param.loc,
                format!(
                    "invalid parameter name `{name}`: expected lowercase letters, digits and `_`, starting with a letter"
                ),
            );
        }
        let p = param.value;
        let kind = p.kind.0.unwrap_or_default();
        let required = p.required.unwrap_or(false);
        if let Some(default) = &p.default
            && required
        {
            sink.error(
                &default.loc,
                format!(
                    "parameter `{name}` is required and also has a default; remove one of them"
                ),
            );
        }
        // An invalid default is reported once, here, and then dropped so that
        // schedules relying on it do not report it again.
        let default = p.default.filter(|d| match kind.check(&d.value) {
            Ok(()) => true,
            Err(e) => {
                sink.error(&d.loc, format!("default of parameter `{name}`: {e}"));
                false
            }
        });
        out.push(Param {
            name,
            required,
            default: default.map(|d| d.value),
            description: p.description,
            kind,
        });
    }
    out
}

fn merge_retry(base: &RetryPolicy, raw: &RawRetry, sink: &Sink) -> RetryPolicy {
    let mut policy = base.clone();
    if let Some(on) = &raw.on.0 {
        for status in &on.value {
            if !(400..=599).contains(status) {
                sink.error(
                    &on.loc,
                    format!(
                        "retry.on: `{status}` is not an HTTP error status; expected 400 to 599"
                    ),
                );
            }
        }
        policy.on = on.value.clone();
    }
    if let Some(max) = &raw.max_attempts.0 {
        if !(1..=100).contains(&max.value) {
            sink.error(
                &max.loc,
                format!(
                    "retry.max_attempts: expected 1 to 100, found `{}`",
                    max.value
                ),
            );
        }
        policy.max_attempts = max.value.clamp(1, 100);
    }
    if let Some(b) = &raw.backoff.0 {
        merge_backoff(&mut policy, b, sink);
    }
    policy
}

fn merge_backoff(policy: &mut RetryPolicy, raw: &RawBackoff, sink: &Sink) {
    let b = &mut policy.backoff;
    if let Some(initial) = &raw.initial.0 {
        b.initial = initial.value.0;
    }
    if let Some(max) = &raw.max.0 {
        b.max = max.value.0;
    }
    if let Some(m) = &raw.multiplier.0 {
        if !(1.0..=10.0).contains(&m.value) {
            sink.error(
                &m.loc,
                format!(
                    "retry.backoff.multiplier: expected 1 to 10, found `{}`",
                    m.value
                ),
            );
        }
        b.multiplier = m.value;
    }
    if let Some(j) = raw.jitter.0 {
        b.jitter = j;
    }
    if b.initial > b.max {
        let loc = raw
            .initial
            .0
            .as_ref()
            .map(|l| l.loc.clone())
            .or_else(|| raw.max.0.as_ref().map(|l| l.loc.clone()))
            .unwrap_or(Loc::Unknown);
        sink.error(
            &loc,
            format!(
                "retry.backoff: initial delay `{}` is longer than max `{}`",
                model::format_duration(b.initial),
                model::format_duration(b.max)
            ),
        );
    }
}

fn check_unique_ids<'a>(
    steps: impl Iterator<Item = &'a crate::yaml::Checked<RawStep>>,
    sink: &Sink,
) {
    let mut seen: HashSet<&str> = HashSet::new();
    for step in steps.filter_map(|s| s.0.as_ref()) {
        let id = step.id.value.as_str();
        if !is_identifier(id) {
            sink.error(
                &step.id.loc,
                format!(
                    "invalid step id `{id}`: expected lowercase letters, digits and `_`, starting with a letter (templates read it as `steps.{id}`)"
                ),
            );
        }
        if !seen.insert(id) {
            sink.error(
                &step.id.loc,
                format!("duplicate step id `{id}`: step ids must be unique"),
            );
        }
    }
}

pub(super) fn build_step(
    step: RawStep,
    node: &Node,
    kind: Option<Kind>,
    runbook_retry: &RetryPolicy,
    scope: &Scope<'_>,
    env: &minijinja::Environment<'_>,
    sink: &Sink,
) -> Option<Step> {
    let empty = Node {
        loc: node.loc.clone(),
        value: Value::Map(Vec::new()),
    };
    let with_node = node.get("with").unwrap_or(&empty);
    for (key, given) in [
        ("max_parallel", step.max_parallel.is_some()),
        ("on_item_failure", step.on_item_failure.0.is_some()),
    ] {
        if given {
            sink.error(
                &step.id.loc,
                format!(
                    "`{key}` belongs to a `for_each` block; step `{}` is not one",
                    step.id.value
                ),
            );
        }
    }
    let Some(action_name) = &step.action else {
        sink.error(
            &step.id.loc,
            format!(
                "step `{}` has no `action`; give it one, or `for_each` with `steps` to make it a block",
                step.id.value
            ),
        );
        return None;
    };
    let name = action_name.value.as_str();
    let action = match Action::read(name, with_node, sink) {
        Some(action) => action,
        None => {
            sink.error(
                &action_name.loc,
                format!("unknown action `{name}`{}", suggestion_or_list(name)),
            );
            None
        }
    };

    // Templates: everywhere in `with`, and in `when` and `timeout`.
    let mut template_nodes: Vec<&Node> = vec![with_node];
    template_nodes.extend(node.get("when"));
    template_nodes.extend(node.get("timeout"));
    for n in template_nodes {
        n.walk_strings(&mut |s, text| {
            if template::is_template(text) {
                for problem in template::check(env, text, scope) {
                    sink.error(&s.loc, problem);
                }
            }
        });
    }
    if let Some(when) = &step.when
        && !template::is_template(&when.value)
        && !matches!(when.value.as_str(), "true" | "false")
    {
        sink.error(
            &when.loc,
            format!(
                "`when` must be a template such as `{{{{ params.x == 'y' }}}}` or `true`/`false`, found `{}`",
                when.value
            ),
        );
    }

    if let Some(action) = &action {
        check_action(action, sink);
        // The `drill` role may start drill runbooks: what they do decides
        // whether they are drills, not their label.
        if kind == Some(Kind::Drill) && action.disrupts_production() {
            sink.error(
                &action_name.loc,
                format!(
                    "action `{}` can change production, which a runbook of kind `drill` may not do; use kind `switchover`, `failover` or `maintenance` (drills may read, wait, sleep, ask for approval, create and delete SDRS DR drills, and send GET, HEAD or POST requests)",
                    action.name()
                ),
            );
        }
    }

    let retry = match step.retry.0 {
        Some(r) => merge_retry(runbook_retry, &r, sink),
        None => runbook_retry.clone(),
    };
    let timeout = step.timeout.0.flatten();
    if let Some(t) = &timeout
        && t.value == DurationSpec::Fixed(std::time::Duration::ZERO)
    {
        sink.error(&t.loc, "timeout must be longer than zero");
    }

    Some(Step {
        id: step.id.value,
        description: step.description,
        action: action?,
        timeout: timeout.map(|t| t.value),
        retry,
        when: step.when.map(|w| w.value),
        on_failure: step.on_failure.0.unwrap_or_default(),
        line: node.loc.line().unwrap_or(0),
    })
}

fn suggestion_or_list(name: &str) -> String {
    let hint = suggestion(name, ACTION_NAMES.iter().copied());
    if hint.is_empty() {
        format!("; known actions: {}", ACTION_NAMES.join(", "))
    } else {
        hint
    }
}

/// Rules of single actions that the types cannot say.
fn check_action(action: &Action, sink: &Sink) {
    use crate::yaml::Located;
    let positive = |d: &Option<Located<DurationSpec>>, what: &str| {
        if let Some(d) = d
            && d.value == DurationSpec::Fixed(std::time::Duration::ZERO)
        {
            sink.error(&d.loc, format!("{what} must be longer than zero"));
        }
    };
    let not_empty = |s: &Located<String>, what: &str| {
        if s.value.trim().is_empty() {
            sink.error(&s.loc, format!("`{what}` must not be empty"));
        }
    };
    // Literal ids are checked now; templated ones when the run starts (from
    // its parameters) or when the step renders them.
    for (key, field, value) in action.identifiers() {
        if !template::is_template(&value.value)
            && !value.value.trim().is_empty()
            && let Err(why) = field.check(&value.value)
        {
            sink.error(&value.loc, format!("`{key}`: {why}"));
        }
    }
    // A misspelt status would list nothing, and a plan would act on nothing.
    let status = |s: &Option<Located<String>>, known: &[&str]| {
        if let Some(s) = s
            && !template::is_template(&s.value)
            && !known.contains(&s.value.as_str())
        {
            sink.error(
                &s.loc,
                format!(
                    "`status`: `{}` is not a status of these groups; one of: {}",
                    s.value,
                    known.join(", ")
                ),
            );
        }
    };
    // Literal filters are checked now, templated ones when the step renders them.
    let filters = |i: &ListGroupsInput| {
        for (key, what, value) in [
            ("production_az", "zone name", &i.production_az),
            ("name", "group name", &i.name),
        ] {
            if let Some(v) = value
                && !template::is_template(&v.value)
                && let Err(why) = crate::cloud::id::check_word(what, &v.value)
            {
                sink.error(&v.loc, format!("`{key}`: {why}"));
            }
        }
    };
    match action {
        Action::EvsListGroups(i) => {
            let known: Vec<&str> = EvsStatus::ALL.iter().map(|s| s.as_str()).collect();
            status(&i.status, &known);
            filters(i);
        }
        Action::SdrsListGroups(i) => {
            let known: Vec<&str> = SdrsStatus::ALL.iter().map(|s| s.as_str()).collect();
            status(&i.status, &known);
            filters(i);
        }
        Action::EvsCheckGroup(i) => not_empty(&i.group, "group"),
        Action::EvsWaitGroup(i) => {
            not_empty(&i.group, "group");
            positive(&i.interval, "interval");
            check_expect_overlap(
                &i.until.status,
                i.fail_if.as_ref().and_then(|f| f.status.as_ref()),
                &i.group.loc,
                sink,
            );
        }
        Action::EvsSwitchover(i)
        | Action::EvsFailover(i)
        | Action::EvsSync(i)
        | Action::EvsStop(i)
        | Action::EvsReprotect(i) => not_empty(&i.group, "group"),
        Action::SdrsCheckGroup(i) => not_empty(&i.group, "group"),
        Action::SdrsWaitGroup(i) => {
            not_empty(&i.group, "group");
            positive(&i.interval, "interval");
            check_expect_overlap(
                &i.until.status,
                i.fail_if.as_ref().and_then(|f| f.status.as_ref()),
                &i.group.loc,
                sink,
            );
        }
        Action::SdrsSwitchover(i) => {
            not_empty(&i.group, "group");
            positive(&i.interval, "interval");
        }
        Action::SdrsFailover(i) | Action::SdrsEnable(i) | Action::SdrsDisable(i) => {
            not_empty(&i.group, "group");
            positive(&i.interval, "interval");
        }
        Action::SdrsCreateDrill(i) => {
            not_empty(&i.group, "group");
            positive(&i.interval, "interval");
        }
        Action::SdrsDeleteDrill(i) => {
            not_empty(&i.drill, "drill");
            positive(&i.interval, "interval");
        }
        Action::HttpRequest(i) => {
            let url = &i.url.value;
            if !(template::is_template(url)
                || url.starts_with("http://")
                || url.starts_with("https://"))
            {
                sink.error(
                    &i.url.loc,
                    format!("invalid url `{url}`: expected an absolute http:// or https:// URL"),
                );
            }
            if i.json.is_some() && i.body.is_some() {
                sink.error(&i.url.loc, "`json` and `body` cannot both be set");
            }
            if let Some(codes) = &i.expect_status {
                for code in codes.value.iter().filter_map(Templated::literal) {
                    if !(100..=599).contains(code) {
                        sink.error(
                            &codes.loc,
                            format!(
                                "expect_status: `{code}` is not an HTTP status; expected 100 to 599"
                            ),
                        );
                    }
                }
            }
            for pointer in i.expect_json.keys() {
                if !pointer.starts_with('/') {
                    sink.error(
                        &i.url.loc,
                        format!(
                            "expect_json: key `{pointer}` must be a JSON pointer such as `/status`"
                        ),
                    );
                }
            }
        }
        Action::Approval(i) => {
            not_empty(&i.prompt, "prompt");
            if let Some(n) = &i.approvers
                && let Some(count) = n.value.literal()
                && !(1..=10).contains(count)
            {
                sink.error(
                    &n.loc,
                    format!("approvers: expected 1 to 10, found `{count}`"),
                );
            }
        }
        Action::Sleep(i) => {
            if i.duration.value == DurationSpec::Fixed(std::time::Duration::ZERO) {
                sink.error(&i.duration.loc, "duration must be longer than zero");
            }
        }
    }
}

/// A wait whose target state is also a failure state can never succeed.
fn check_expect_overlap<T>(
    until: &Option<Expect<T>>,
    fail_if: Option<&Expect<T>>,
    loc: &Loc,
    sink: &Sink,
) where
    T: for<'de> serde::Deserialize<'de> + Clone + PartialEq + std::fmt::Display,
{
    if let (Some(until), Some(fail_if)) = (until, fail_if) {
        let failing: Vec<&T> = fail_if.accepted_literals().collect();
        for status in until.accepted_literals() {
            if failing.contains(&status) {
                sink.error(
                    loc,
                    format!("status `{status}` is both in `until` and in `fail_if`; the wait could never succeed"),
                );
            }
        }
    }
}

fn build_schedules(
    raw: Vec<crate::yaml::Checked<RawSchedule>>,
    params: &[Param],
    sink: &Sink,
) -> Vec<Schedule> {
    let mut names = HashSet::new();
    let mut out = Vec::new();
    for schedule in raw.into_iter().filter_map(|s| s.0) {
        let name = schedule.name.value.clone();
        if !names.insert(name.clone()) {
            sink.error(
                &schedule.name.loc,
                format!("duplicate schedule name `{name}`"),
            );
        }
        let cron = match croner::Cron::from_str(&schedule.cron.value) {
            Ok(c) => Some(c),
            Err(e) => {
                sink.error(
                    &schedule.cron.loc,
                    format!(
                        "invalid cron expression `{}`: {}; expected 5 fields (minute hour day-of-month month day-of-week), such as `0 3 * * SAT`",
                        schedule.cron.value,
                        lowercase_first(&e.to_string())
                    ),
                );
                None
            }
        };
        let timezone = match &schedule.timezone {
            None => Some(chrono_tz::Tz::UTC),
            Some(tz) => match tz.value.parse::<chrono_tz::Tz>() {
                Ok(t) => Some(t),
                Err(_) => {
                    let names = chrono_tz::TZ_VARIANTS.iter().map(|t| t.name());
                    let hint = suggestion(&tz.value, names);
                    let tail = if hint.is_empty() {
                        "; expected an IANA name such as `Europe/Berlin`".to_string()
                    } else {
                        hint
                    };
                    sink.error(&tz.loc, format!("unknown time zone `{}`{tail}", tz.value));
                    None
                }
            },
        };
        let given: BTreeMap<String, String> = schedule
            .params
            .0
            .as_ref()
            .map(|m| {
                m.iter()
                    .map(|(k, v)| (k.clone(), v.value.clone()))
                    .collect()
            })
            .unwrap_or_default();
        let resolved = match super::resolve_params(params, &given) {
            Ok(p) => Some(p),
            Err(problems) => {
                for problem in problems {
                    // Point at the offending value where there is one, else at the schedule.
                    let loc = schedule
                        .params
                        .0
                        .as_ref()
                        .and_then(|m| {
                            m.iter()
                                .find(|(k, _)| problem.contains(&format!("`{k}`")))
                                .map(|(_, v)| v.loc.clone())
                        })
                        .unwrap_or_else(|| schedule.name.loc.clone());
                    sink.error(&loc, format!("schedule `{name}`: {problem}"));
                }
                None
            }
        };
        if let (Some(cron), Some(timezone), Some(params)) = (cron, timezone, resolved) {
            out.push(Schedule {
                name,
                cron_text: schedule.cron.value,
                cron,
                timezone,
                params,
                enabled: schedule.enabled.unwrap_or(true),
            });
        }
    }
    out
}

fn lowercase_first(text: &str) -> String {
    let text = text.trim_end_matches('.');
    let mut chars = text.chars();
    match chars.next() {
        Some(c) => c.to_lowercase().chain(chars).collect(),
        None => String::new(),
    }
}
