//! Templates in runbooks: the one minijinja environment, and the load-time
//! check of a template's syntax and of every variable it reads.
//!
//! A template may read `params.<name>`, `steps.<earlier step>.output|status|error`,
//! `run.<field>`, `env.DROVER_*`, and inside a `for_each` block `item`. Anything else is an error at load time, so
//! a typo never reaches a 3 a.m. run.

use minijinja::{Environment, UndefinedBehavior};

use crate::yaml::{quoted_list, suggestion};

/// Fields of `run` a template may read.
pub const RUN_FIELDS: &[&str] = &[
    "id",
    "runbook",
    "kind",
    "trigger",
    "requested_by",
    "dry_run",
    "started_at",
    "outcome",
];

/// Fields of `steps.<id>` a template may read.
pub const STEP_FIELDS: &[&str] = &["output", "status", "error"];

/// Globals minijinja provides that a template may call.
const BUILTIN_GLOBALS: &[&str] = &[
    "range",
    "dict",
    "namespace",
    "loop",
    "true",
    "false",
    "none",
];

/// Runaway templates stop after this much work.
const FUEL: u64 = 50_000;

/// The environment every runbook template is parsed and rendered with: strict
/// about undefined values, bounded in work.
pub fn environment() -> Environment<'static> {
    let mut env = Environment::new();
    env.set_undefined_behavior(UndefinedBehavior::Strict);
    env.set_fuel(Some(FUEL));
    env
}

/// What a template at some place in a runbook may see.
#[derive(Debug)]
pub struct Scope<'a> {
    /// Declared parameters.
    pub params: &'a [String],
    /// Steps that ran before this place.
    pub earlier_steps: &'a [String],
    /// Steps that run at or after this place (referencing one is an ordering error).
    pub later_steps: &'a [String],
    /// Inside a `for_each` block, where `item` is the current item.
    pub item: bool,
}

/// True when `text` contains template syntax at all.
pub fn is_template(text: &str) -> bool {
    text.contains("{{") || text.contains("{%")
}

/// Checks one template. Returns every problem, each a complete message.
pub fn check(env: &Environment<'_>, source: &str, scope: &Scope<'_>) -> Vec<String> {
    let template = match env.template_from_str(source) {
        Ok(t) => t,
        Err(err) => {
            let detail = err.detail().unwrap_or("invalid syntax");
            let line = match err.line() {
                Some(l) if l > 1 => format!(" (template line {l})"),
                _ => String::new(),
            };
            return vec![format!("template syntax error{line}: {detail}")];
        }
    };
    let mut vars: Vec<String> = template.undeclared_variables(true).into_iter().collect();
    vars.sort();
    let mut problems: Vec<String> = vars
        .into_iter()
        .filter_map(|var| check_variable(&var, scope))
        .collect();
    // However it is spelled (`env.X`, `env['X']`, a string built elsewhere in
    // the template), a name of a config override or the API token is refused:
    // those may hold secrets. The engine hides them at run time as well.
    for name in secret_names(source) {
        let problem = secret_problem(&name);
        if !problems.contains(&problem) {
            problems.push(problem);
        }
    }
    problems
}

/// `DROVER_` names in a template's text that templates may not read.
fn secret_names(source: &str) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    let mut rest = source;
    while let Some(at) = rest.find("DROVER_") {
        let tail = &rest[at..];
        let len = tail
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .unwrap_or(tail.len());
        let name = &tail[..len];
        if is_secret_name(name) && !out.iter().any(|n| n == name) {
            out.push(name.to_string());
        }
        rest = &tail[len.max(1)..];
    }
    out
}

/// Config overrides (`DROVER_CLOUD__AUTH__PASSWORD`: anything with `__`) and
/// the API client token.
pub fn is_secret_name(name: &str) -> bool {
    name.contains("__") || name == "DROVER_TOKEN"
}

fn secret_problem(name: &str) -> String {
    format!(
        "template reads `{name}`, a configuration or credential variable; templates may read only `DROVER_` variables without `__` (and not `DROVER_TOKEN`)"
    )
}

fn check_variable(var: &str, scope: &Scope<'_>) -> Option<String> {
    let mut parts = var.split('.');
    let root = parts.next().unwrap_or_default();
    let name = parts.next();
    match (root, name) {
        ("params", Some(p)) => (!scope.params.iter().any(|x| x == p)).then(|| {
            format!(
                "unknown parameter `{p}` in template{}",
                suggestion(p, scope.params.iter().map(String::as_str))
            )
        }),
        ("steps", Some(id)) => {
            if scope.later_steps.iter().any(|x| x == id) {
                return Some(format!(
                    "template reads step `{id}`, which runs later; a step may only read the steps before it"
                ));
            }
            if !scope.earlier_steps.iter().any(|x| x == id) {
                return Some(format!(
                    "unknown step `{id}` in template{}",
                    suggestion(id, scope.earlier_steps.iter().map(String::as_str))
                ));
            }
            match parts.next() {
                Some(field) if !STEP_FIELDS.contains(&field) => Some(format!(
                    "unknown field `{field}` of step `{id}`{}; a step has {}",
                    suggestion(field, STEP_FIELDS.iter().copied()),
                    quoted_list(STEP_FIELDS)
                )),
                _ => None,
            }
        }
        ("run", Some(field)) => (!RUN_FIELDS.contains(&field)).then(|| {
            format!(
                "unknown field `run.{field}`{}; `run` has {}",
                suggestion(field, RUN_FIELDS.iter().copied()),
                quoted_list(RUN_FIELDS)
            )
        }),
        ("env", Some(name)) if is_secret_name(name) => Some(secret_problem(name)),
        ("env", Some(name)) => (!name.starts_with("DROVER_")).then(|| {
            format!(
                "template reads environment variable `{name}`; only variables whose names start with `DROVER_` may be read"
            )
        }),
        ("item", _) if scope.item => None,
        ("item", _) => Some(
            "template reads `item`, which exists only in the steps of a `for_each` block".to_string(),
        ),
        ("params" | "steps" | "run" | "env", None) => None,
        (other, _) if BUILTIN_GLOBALS.contains(&other) => None,
        (other, _) => Some(format!(
            "unknown variable `{other}` in template{}; templates may read `params`, `steps`, `run` and `env`",
            suggestion(other, ["params", "steps", "run", "env"])
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(source: &str) -> Vec<String> {
        let params = vec!["group_id".to_string()];
        let earlier = vec!["precheck".to_string()];
        let later = vec!["verify".to_string()];
        let scope = Scope {
            params: &params,
            earlier_steps: &earlier,
            later_steps: &later,
            item: false,
        };
        check(&environment(), source, &scope)
    }

    #[test]
    fn accepts_every_kind_of_allowed_reference() {
        let ok = [
            "{{ params.group_id }}",
            "{{ steps.precheck.output.priority_station }}",
            "{{ run.id }}-{{ run.outcome }}",
            "{{ env.DROVER_WEBHOOK_URL is defined }}",
            "{% for i in range(3) %}{{ i }}{% endfor %}",
            "plain text",
        ];
        for source in ok {
            assert_eq!(run(source), Vec::<String>::new(), "{source}");
        }
    }

    #[test]
    fn reports_each_bad_reference_with_a_reason() {
        let cases = [
            (
                "{{ params.grp_id }}",
                "unknown parameter `grp_id` in template, did you mean `group_id`?",
            ),
            ("{{ steps.verify.output }}", "runs later"),
            ("{{ steps.prechek.output }}", "did you mean `precheck`?"),
            (
                "{{ steps.precheck.outptu }}",
                "unknown field `outptu` of step `precheck`, did you mean `output`?",
            ),
            ("{{ run.outcom }}", "did you mean `outcome`?"),
            (
                "{{ env.HOME }}",
                "only variables whose names start with `DROVER_`",
            ),
            (
                "{{ parms.group_id }}",
                "unknown variable `parms` in template, did you mean `params`?",
            ),
            ("{{ params.group_id ", "template syntax error"),
            ("{{ item }}", "only in the steps of a `for_each` block"),
        ];
        for (source, want) in cases {
            let got = run(source);
            assert_eq!(got.len(), 1, "{source}: {got:?}");
            assert!(got[0].contains(want), "{source}: {}", got[0]);
        }
    }
}
