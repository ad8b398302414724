//! Runbooks: YAML files -> validated [`Runbook`] values that cannot be invalid.
//!
//! Loading reads the file into a located tree, deserializes the raw model
//! (`model`), then `validate` checks every cross-field rule and builds the
//! runbook. Every problem of a file is reported at once, each naming
//! `file:line:column`, the step, what was found and what was expected.
//! Nothing here talks to the cloud or the database.

pub mod model;
pub mod params;
pub mod schema;
pub mod template;
mod validate;
pub mod value;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Serialize;
use sha2::{Digest, Sha256};

use crate::policy::RetryPolicy;
use crate::yaml::{self, Diagnostic, Loc, Sink};
pub use model::{Action, DurationSpec, Kind, OnFailure, ParamType};

/// A runbook that passed validation.
#[derive(Debug, Clone)]
pub struct Runbook {
    /// Unique name.
    pub name: String,
    /// What it is for.
    pub description: Option<String>,
    /// What kind of operation it is.
    pub kind: Kind,
    /// Declared parameters, in name order.
    pub params: Vec<Param>,
    /// Main steps in order: plain steps and `for_each` blocks (stages).
    pub steps: Vec<Entry>,
    /// Steps that always run afterwards.
    pub finally: Vec<Step>,
    /// Recovery time objective: trigger to the end of the last main step.
    pub rto: Option<Duration>,
    /// Schedules for the daemon.
    pub schedules: Vec<Schedule>,
    /// The file it was loaded from.
    pub path: PathBuf,
    /// sha256 of the file's bytes: the version a run records and resumes with.
    pub digest: String,
    /// The file's text, kept so a run can resume with exactly this version.
    pub source: String,
}

/// A declared parameter.
#[derive(Debug, Clone, Serialize, serde::Deserialize)]
pub struct Param {
    /// Name, as used in `params.<name>`.
    pub name: String,
    /// A run must give a value.
    pub required: bool,
    /// Value used when a run gives none.
    pub default: Option<String>,
    /// What it means.
    pub description: Option<String>,
    /// Type of its values.
    #[serde(rename = "type")]
    pub kind: ParamType,
}

/// A validated step.
#[derive(Debug, Clone)]
pub struct Step {
    /// Unique id.
    pub id: String,
    /// Human description.
    pub description: Option<String>,
    /// The action and its typed input.
    pub action: Action,
    /// Bound on the whole step (retries and polling included).
    pub timeout: Option<DurationSpec>,
    /// Retry policy (runbook default with this step's overrides).
    pub retry: RetryPolicy,
    /// Template that must render `true` for the step to run.
    pub when: Option<String>,
    /// What a failure does to the run.
    pub on_failure: OnFailure,
    /// Line of the step in the file, for messages.
    pub line: u64,
}

/// One entry of the main steps: a step, or a block run for each item of a list.
#[derive(Debug, Clone)]
#[allow(clippy::large_enum_variant)] // a handful per runbook; boxing buys nothing
pub enum Entry {
    Step(Step),
    Block(Block),
}

impl Entry {
    /// The step or block id.
    pub fn id(&self) -> &str {
        match self {
            Entry::Step(s) => &s.id,
            Entry::Block(b) => &b.id,
        }
    }

    /// What a failure does to the run.
    pub fn on_failure(&self) -> OnFailure {
        match self {
            Entry::Step(s) => s.on_failure,
            Entry::Block(b) => b.on_failure,
        }
    }
}

/// A `for_each` block: its steps run in order for each item, items in
/// parallel up to `max_parallel`. Blocks in the main steps run one after
/// the other, so each is a stage that waits for the one before.
#[derive(Debug, Clone)]
pub struct Block {
    pub id: String,
    pub description: Option<String>,
    /// The expression giving the items (the text between `{{` and `}}`).
    pub for_each: String,
    /// Items in flight at once.
    pub max_parallel: value::Templated<u32>,
    /// What a block with a failed item does to the run.
    pub on_failure: OnFailure,
    /// What a failed item does to the block's other items.
    pub on_item_failure: OnFailure,
    /// Template that must render `true` for the block to run.
    pub when: Option<String>,
    /// The steps of one item.
    pub steps: Vec<Step>,
    /// Line of the block in the file.
    pub line: u64,
}

/// Default `max_parallel` of a block.
pub const DEFAULT_MAX_PARALLEL: u32 = 5;
/// The most items one block may have.
pub const MAX_ITEMS: usize = 10_000;
/// The most steps one block may have.
pub const MAX_BLOCK_STEPS: usize = 20;

/// A validated schedule.
#[derive(Debug, Clone)]
pub struct Schedule {
    /// Unique within the runbook.
    pub name: String,
    /// The expression as written.
    pub cron_text: String,
    /// The parsed expression.
    pub cron: croner::Cron,
    /// Time zone the expression is read in.
    pub timezone: chrono_tz::Tz,
    /// Parameters of the scheduled runs, defaults applied.
    pub params: BTreeMap<String, String>,
    /// False keeps the schedule without firing it.
    pub enabled: bool,
}

/// Default interval between polls of a group.
pub const DEFAULT_POLL_INTERVAL: Duration = Duration::from_secs(10);
/// Default interval between polls of an SDRS job.
pub const DEFAULT_JOB_INTERVAL: Duration = Duration::from_secs(5);

impl Runbook {
    /// Every step, main steps first (a block's steps in its place), then `finally`.
    pub fn all_steps(&self) -> impl Iterator<Item = &Step> {
        self.steps
            .iter()
            .flat_map(|e| match e {
                Entry::Step(s) => std::slice::from_ref(s),
                Entry::Block(b) => b.steps.as_slice(),
            })
            .chain(&self.finally)
    }

    /// The ids of the main steps and blocks, in order.
    pub fn main_ids(&self) -> impl Iterator<Item = &str> {
        self.steps.iter().map(Entry::id)
    }

    /// Checks the parameters a run was started with against the declarations and
    /// fills in defaults. Every problem is listed.
    pub fn resolve_params(
        &self,
        given: &BTreeMap<String, String>,
    ) -> Result<BTreeMap<String, String>, Vec<String>> {
        resolve_params(&self.params, given)
    }
}

/// The longest parameter value accepted, in characters (a `list` is bounded
/// by where it comes from: the API's body limit, the file, the command line).
pub const MAX_PARAM_CHARS: usize = 4096;

pub(crate) fn resolve_params(
    declared: &[Param],
    given: &BTreeMap<String, String>,
) -> Result<BTreeMap<String, String>, Vec<String>> {
    let mut problems = Vec::new();
    let mut out = BTreeMap::new();
    for name in given.keys() {
        if !declared.iter().any(|p| &p.name == name) {
            problems.push(format!(
                "unknown parameter `{name}`{}",
                yaml::suggestion(name, declared.iter().map(|p| p.name.as_str()))
            ));
        }
    }
    for param in declared {
        match given.get(&param.name).or(param.default.as_ref()) {
            Some(value)
                if param.kind != ParamType::List && value.chars().count() > MAX_PARAM_CHARS =>
            {
                problems.push(format!(
                    "parameter `{}` has {} characters; a value may have at most {MAX_PARAM_CHARS}",
                    param.name,
                    value.chars().count()
                ))
            }
            Some(value) => match param.kind.check(value) {
                Ok(()) => {
                    out.insert(param.name.clone(), value.clone());
                }
                Err(e) => problems.push(format!("parameter `{}`: {e}", param.name)),
            },
            None if param.required => {
                problems.push(format!("missing required parameter `{}`", param.name));
            }
            None => {}
        }
    }
    if problems.is_empty() {
        Ok(out)
    } else {
        Err(problems)
    }
}

/// Reads and validates one runbook file.
pub fn load(path: &Path) -> Result<Runbook, Vec<Diagnostic>> {
    match std::fs::read(path) {
        Ok(bytes) => match String::from_utf8(bytes) {
            Ok(text) => parse(&text, path),
            Err(_) => Err(vec![whole_file(path, "file is not valid UTF-8")]),
        },
        Err(e) => Err(vec![whole_file(path, format!("cannot read file: {e}"))]),
    }
}

/// Loads several files; a second file using a runbook name already taken by an
/// earlier one is an error (runs would be ambiguous). Results in file order.
pub fn load_all(files: &[PathBuf]) -> Vec<(PathBuf, Result<Runbook, Vec<Diagnostic>>)> {
    let mut seen: std::collections::HashMap<String, PathBuf> = std::collections::HashMap::new();
    files
        .iter()
        .map(|file| {
            let result = load(file).and_then(|r| match seen.get(&r.name) {
                Some(first) => Err(vec![whole_file(
                    file,
                    format!(
                        "runbook name `{}` is already used by {}",
                        r.name,
                        first.display()
                    ),
                )]),
                None => {
                    seen.insert(r.name.clone(), file.clone());
                    Ok(r)
                }
            });
            (file.clone(), result)
        })
        .collect()
}

/// Validates runbook text; `path` is used in messages and recorded in the runbook.
pub fn parse(text: &str, path: &Path) -> Result<Runbook, Vec<Diagnostic>> {
    let root = yaml::parse(text, path).map_err(|d| vec![d])?;
    let sink = Sink::new(path);
    let raw = yaml::from_node::<model::RawRunbook>(&root, &sink);
    let runbook = raw.and_then(|raw| validate::validate(raw, &root, &sink));
    sink.attribute_steps(&sections(&root));
    match runbook {
        Some(mut runbook) if sink.is_clean() => {
            runbook.path = path.to_path_buf();
            runbook.digest = hex::encode(Sha256::digest(text.as_bytes()));
            runbook.source = text.to_string();
            Ok(runbook)
        }
        _ => {
            let diagnostics = sink.into_diagnostics();
            if diagnostics.is_empty() {
                // A value could not be built but nothing says why: never pass it as valid.
                Err(vec![whole_file(path, "runbook could not be read")])
            } else {
                Err(diagnostics)
            }
        }
    }
}

/// Where each step starts, and where each top-level key starts (which ends the
/// step before it), for naming the step of an error found while deserializing.
fn sections(root: &yaml::Node) -> Vec<(u64, Option<String>)> {
    let mut out = Vec::new();
    for (key, value) in root.entries() {
        out.extend(key.loc.line().map(|l| (l, None)));
        if matches!(key.as_str(), Some("steps" | "finally")) {
            for step in value.items() {
                let id = step
                    .get("id")
                    .and_then(yaml::Node::as_str)
                    .map(str::to_string);
                out.extend(step.loc.line().map(|l| (l, id)));
            }
        }
    }
    out
}

/// The runbook files named by `paths`: files as given, folders searched for
/// `*.yaml` / `*.yml` (not recursively), sorted.
pub fn find_files(paths: &[PathBuf]) -> Result<Vec<PathBuf>, Diagnostic> {
    let mut out = Vec::new();
    for path in paths {
        if path.is_dir() {
            let entries = std::fs::read_dir(path)
                .map_err(|e| whole_file(path, format!("cannot read folder: {e}")))?;
            let mut found: Vec<PathBuf> = entries
                .filter_map(Result::ok)
                .map(|e| e.path())
                .filter(|p| {
                    p.is_file()
                        && matches!(p.extension().and_then(|e| e.to_str()), Some("yaml" | "yml"))
                })
                .collect();
            found.sort();
            out.extend(found);
        } else {
            out.push(path.clone());
        }
    }
    Ok(out)
}

fn whole_file(path: &Path, message: impl Into<String>) -> Diagnostic {
    Diagnostic {
        file: path.to_path_buf(),
        loc: Loc::Unknown,
        step: None,
        message: message.into(),
    }
}
