//! The runbook file as written: serde types read from the located YAML tree.
//!
//! These types are the single description of the format: they drive parsing
//! (unknown keys and wrong types become located errors) and `drover schema`.
//! Cross-field rules (unique ids, references, cron, time zones) live in
//! `validate`; this module only says what shape each part has.

use crate::spelling::string_enum;
use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::de::{self, Deserializer};
use serde::{Deserialize, Serialize};

use super::value::{Expect, Templated};
pub use crate::policy::Jitter;
use crate::yaml::{Checked, Located, Node, Sink, from_node};

/// A whole runbook file.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(title = "drover runbook")]
pub struct RawRunbook {
    /// Unique name, lowercase letters, digits and `-`.
    pub name: Located<String>,
    /// What the runbook is for, shown in listings and reports.
    #[serde(default)]
    pub description: Option<String>,
    /// What kind of operation this is; drives permissions and reports.
    pub kind: Checked<Kind>,
    /// Parameters a run is started with.
    #[serde(default)]
    pub params: Checked<BTreeMap<String, Checked<Located<RawParam>>>>,
    /// Retry policy for every step that does not set its own.
    #[serde(default)]
    pub retry: Checked<RawRetry>,
    /// Recovery time objective: how long a run may take from its trigger to
    /// the end of its last main step (`15m`); runs are measured against it.
    #[serde(default)]
    pub rto: Checked<Option<Located<Rto>>>,
    /// The steps, in order.
    pub steps: Located<Vec<Checked<RawStep>>>,
    /// Steps that always run after the others, whatever the outcome.
    #[serde(default)]
    pub finally: Option<Vec<Checked<RawStep>>>,
    /// When the daemon runs this runbook by itself (DR drills).
    #[serde(default)]
    pub schedules: Option<Vec<Checked<RawSchedule>>>,
}

string_enum! {
    /// What kind of operation a runbook performs.
    Kind {
        /// A planned move of production to the other site.
        Switchover = "switchover",
        /// An unplanned move after the production site failed.
        Failover = "failover",
        /// A rehearsal; the `drill` role may start these.
        Drill = "drill",
        /// Anything else (sync, reprotect, housekeeping).
        Maintenance = "maintenance",
    }
}

/// A declared parameter.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawParam {
    /// A run must give a value.
    #[serde(default)]
    pub required: Option<bool>,
    /// The value when a run gives none.
    #[serde(default)]
    pub default: Option<Located<String>>,
    /// What the parameter means.
    #[serde(default)]
    pub description: Option<String>,
    /// The type values are checked against (default `string`).
    #[serde(default, rename = "type")]
    pub kind: Checked<ParamType>,
}

/// The type of a parameter value.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum ParamType {
    /// Any text.
    #[default]
    String,
    /// A whole number.
    Integer,
    /// `true` or `false`.
    Boolean,
    /// A duration such as `30m`.
    Duration,
    /// A list of words separated by commas or white space (`g1, g2`), or a
    /// JSON array of strings; templates see a list.
    List,
}

impl ParamType {
    /// Checks a value given for a parameter of this type.
    pub fn check(self, value: &str) -> Result<(), String> {
        let ok = match self {
            ParamType::String => true,
            ParamType::Integer => value.trim().parse::<i64>().is_ok(),
            ParamType::Boolean => matches!(value.trim(), "true" | "false"),
            ParamType::Duration => return parse_duration(value).map(|_| ()),
            ParamType::List => return parse_list(value).map(|_| ()),
        };
        if ok {
            Ok(())
        } else {
            Err(format!("expected {}, found `{value}`", self.describe()))
        }
    }

    fn describe(self) -> &'static str {
        match self {
            ParamType::String => "a string",
            ParamType::Integer => "an integer",
            ParamType::Boolean => "`true` or `false`",
            ParamType::Duration => "a duration such as `30s` or `5m`",
            ParamType::List => "a list such as `g1, g2` or `[\"g1\", \"g2\"]`",
        }
    }
}

/// The items of a `list` parameter: a JSON array of strings, or words
/// separated by commas or white space (empty items dropped).
pub fn parse_list(value: &str) -> Result<Vec<String>, String> {
    let text = value.trim();
    if text.starts_with('[') {
        return serde_json::from_str::<Vec<String>>(text)
            .map_err(|e| format!("expected a JSON array of strings, found `{text}`: {e}"));
    }
    Ok(words(text))
}

/// The words of a text separated by commas or white space.
pub fn words(text: &str) -> Vec<String> {
    text.split(|c: char| c == ',' || c.is_whitespace())
        .filter(|w| !w.is_empty())
        .map(str::to_string)
        .collect()
}

/// A retry policy as written; every field is optional and falls back to the
/// enclosing policy.
#[derive(Debug, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawRetry {
    /// HTTP statuses that are retried (transport errors always are).
    #[serde(default)]
    pub on: Checked<Located<Vec<u16>>>,
    /// Attempts in all, the first included.
    #[serde(default)]
    pub max_attempts: Checked<Located<u32>>,
    /// Delay between attempts.
    #[serde(default)]
    pub backoff: Checked<RawBackoff>,
}

/// Backoff between attempts as written.
#[derive(Debug, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawBackoff {
    /// The first delay.
    #[serde(default)]
    pub initial: Checked<Located<FixedDuration>>,
    /// The largest delay.
    #[serde(default)]
    pub max: Checked<Located<FixedDuration>>,
    /// Growth factor per attempt (at least 1).
    #[serde(default)]
    pub multiplier: Checked<Located<f64>>,
    /// How delays are randomised.
    #[serde(default)]
    pub jitter: Checked<Jitter>,
}

/// One step as written.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawStep {
    /// Unique id, used in `steps.<id>.output`.
    pub id: Located<String>,
    /// What the step does, from the action catalog (a `for_each` block has
    /// `steps` instead).
    #[serde(default)]
    pub action: Option<Located<String>>,
    /// Short human description for progress output and reports.
    #[serde(default)]
    pub description: Option<String>,
    /// The action's input; its fields depend on the action.
    #[serde(default)]
    pub with: Option<ActionInput>,
    /// Longest time the step may take, retries and polling included.
    #[serde(default)]
    pub timeout: Checked<Option<Located<DurationSpec>>>,
    /// Retry policy for this step, over the runbook's.
    #[serde(default)]
    pub retry: Checked<RawRetry>,
    /// Run the step only when this template renders `true`.
    #[serde(default)]
    pub when: Option<Located<String>>,
    /// What a failure of this step does to the run (of a block: what a
    /// block with a failed item does to the run).
    #[serde(default)]
    pub on_failure: Checked<OnFailure>,
    /// Makes this step a block: its `steps` run once for each item of this
    /// list, a `{{ ... }}` expression such as `{{ params.group_ids }}` or
    /// `{{ steps.discover.output.ids }}`; `item` is the item in its templates.
    #[serde(default)]
    pub for_each: Option<Located<String>>,
    /// A block's steps, run in order for each item.
    #[serde(default)]
    pub steps: Option<Vec<Checked<RawStep>>>,
    /// Items of a block in flight at once (default 5; templates allowed).
    #[serde(default)]
    pub max_parallel: Option<Located<Templated<u32>>>,
    /// What a failed item does to the other items of its block: `continue`
    /// (the default: items are isolated) or `abort` (no further item starts).
    #[serde(default)]
    pub on_item_failure: Checked<OnFailure>,
}

/// What a failed step does to the run.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum OnFailure {
    /// Stop the run (the `finally` steps still run).
    #[default]
    Abort,
    /// Record the failure and go on with the next step.
    Continue,
}

/// A step's `with` block. It is read separately, once the action is known.
#[derive(Debug, Clone, Copy)]
pub struct ActionInput;

impl<'de> Deserialize<'de> for ActionInput {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        de::IgnoredAny::deserialize(d).map(|_| ActionInput)
    }
}

impl JsonSchema for ActionInput {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "ActionInput".into()
    }
    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({
            "type": "object",
            "description": "The action's input; its fields depend on `action`."
        })
    }
}

/// A schedule as written.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawSchedule {
    /// Unique within the runbook.
    pub name: Located<String>,
    /// Cron expression, 5 fields (minute hour day month weekday) or 6 with seconds first.
    pub cron: Located<String>,
    /// IANA time zone the expression is read in (default `UTC`).
    #[serde(default)]
    pub timezone: Option<Located<String>>,
    /// Parameters of the scheduled runs.
    #[serde(default)]
    pub params: Checked<BTreeMap<String, Located<String>>>,
    /// Set to `false` to keep the schedule without firing it.
    #[serde(default)]
    pub enabled: Option<bool>,
}

pub use super::value::{
    DurationSpec, FixedDuration, MAX_DURATION_TEXT, Rto, format_duration, parse_duration,
};

pub use crate::cloud::vocabulary::{
    EvsStatus, FaultLevel, PriorityStation, ReplicationStatus, SdrsStatus,
};

string_enum! {
    /// HTTP method of an `http.request` step.
    HttpMethod {
        Get = "GET",
        Head = "HEAD",
        Post = "POST",
        Put = "PUT",
        Patch = "PATCH",
        Delete = "DELETE",
    }
}

/// Expected fields of an EVS group (each a value or a list of accepted values).
#[derive(Debug, Clone, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct EvsExpect {
    /// Accepted `status` values.
    #[serde(default)]
    pub status: Option<Expect<EvsStatus>>,
    /// Accepted `replication_status` values.
    #[serde(default)]
    pub replication_status: Option<Expect<ReplicationStatus>>,
    /// Accepted `fault_level` values (`"0"`, `"2"`, `"5"`).
    #[serde(default)]
    pub fault_level: Option<Expect<FaultLevel>>,
    /// Accepted `priority_station` values (AZ names), or `{ not: ... }`.
    #[serde(default)]
    pub priority_station: Option<Expect<String>>,
}

/// Expected fields of an SDRS protection group.
#[derive(Debug, Clone, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SdrsExpect {
    /// Accepted `status` values.
    #[serde(default)]
    pub status: Option<Expect<SdrsStatus>>,
    /// Accepted `priority_station` values.
    #[serde(default)]
    pub priority_station: Option<Expect<PriorityStation>>,
    /// Accepted `replication_status` values (null on newer groups: then never matches).
    #[serde(default)]
    pub replication_status: Option<Expect<ReplicationStatus>>,
}

/// `with` of the EVS group actions (switchover, failover, sync, stop, reprotect).
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct EvsGroupInput {
    /// Replication consistency group id.
    pub group: Located<String>,
}

/// `with` of `evs.list_groups` and `sdrs.list_groups`: every field given
/// must match (templates allowed).
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ListGroupsInput {
    /// Status, as the service spells it (`available`, `protected`, ...).
    #[serde(default)]
    pub status: Option<Located<String>>,
    /// The AZ production runs in now, e.g. `eu-de-01` (EVS
    /// `priority_station`, SDRS `availability_zone`).
    #[serde(default)]
    pub production_az: Option<Located<String>>,
    /// EVS: the exact name; SDRS: a part of the name.
    #[serde(default)]
    pub name: Option<Located<String>>,
}

/// `with` of `evs.check_group`.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct EvsCheckInput {
    /// Replication consistency group id.
    pub group: Located<String>,
    /// Fields that must match; the step fails listing every mismatch.
    #[serde(default)]
    pub expect: EvsExpect,
}

/// `with` of `evs.wait_group`.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct EvsWaitInput {
    /// Replication consistency group id.
    pub group: Located<String>,
    /// The state to wait for.
    pub until: EvsExpect,
    /// States that fail the step at once.
    #[serde(default)]
    pub fail_if: Option<EvsExpect>,
    /// Time between polls (default 10s).
    #[serde(default)]
    pub interval: Option<Located<DurationSpec>>,
}

/// `with` of `sdrs.check_group`.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SdrsCheckInput {
    /// Protection group id.
    pub group: Located<String>,
    /// Fields that must match.
    #[serde(default)]
    pub expect: SdrsExpect,
}

/// `with` of `sdrs.wait_group`.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SdrsWaitInput {
    /// Protection group id.
    pub group: Located<String>,
    /// The state to wait for.
    pub until: SdrsExpect,
    /// States that fail the step at once.
    #[serde(default)]
    pub fail_if: Option<SdrsExpect>,
    /// Time between polls (default 10s).
    #[serde(default)]
    pub interval: Option<Located<DurationSpec>>,
}

/// `with` of `sdrs.failover`, `sdrs.enable`, `sdrs.disable`.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SdrsGroupInput {
    /// Protection group id.
    pub group: Located<String>,
    /// Time between job polls (default 5s).
    #[serde(default)]
    pub interval: Option<Located<DurationSpec>>,
}

/// `with` of `sdrs.switchover` (planned failover, `reverse-server-group`).
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SdrsSwitchoverInput {
    /// Protection group id.
    pub group: Located<String>,
    /// The side that becomes production: `target` (the DR AZ) or `source` (back).
    pub priority_station: Templated<PriorityStation>,
    /// Time between job polls (default 5s).
    #[serde(default)]
    pub interval: Option<Located<DurationSpec>>,
}

/// `with` of `sdrs.create_drill`.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SdrsCreateDrillInput {
    /// Protection group id.
    pub group: Located<String>,
    /// Drill name (up to 64 of `A-Za-z0-9._-`; templates allowed).
    pub name: Located<String>,
    /// VPC for the drill servers; SDRS creates one when omitted.
    #[serde(default)]
    pub drill_vpc_id: Option<Located<String>>,
    /// Time between job polls (default 5s).
    #[serde(default)]
    pub interval: Option<Located<DurationSpec>>,
}

/// `with` of `sdrs.delete_drill`.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SdrsDeleteDrillInput {
    /// Drill id, usually `{{ steps.<create step>.output.id }}`.
    pub drill: Located<String>,
    /// Time between job polls (default 5s).
    #[serde(default)]
    pub interval: Option<Located<DurationSpec>>,
}

/// `with` of `http.request`.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct HttpRequestInput {
    /// Method (default GET).
    #[serde(default)]
    pub method: Option<Templated<HttpMethod>>,
    /// Absolute http(s) URL.
    pub url: Located<String>,
    /// Extra request headers.
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    /// JSON body (templates allowed in strings).
    #[serde(default)]
    pub json: Option<serde_json::Value>,
    /// Raw text body.
    #[serde(default)]
    pub body: Option<String>,
    /// Accepted statuses (default: any 2xx).
    #[serde(default)]
    pub expect_status: Option<Located<Vec<Templated<u16>>>>,
    /// JSON pointer (`/status`) to expected value in the response body.
    #[serde(default)]
    pub expect_json: BTreeMap<String, serde_json::Value>,
}

/// `with` of `approval`.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ApprovalInput {
    /// The question shown to approvers.
    pub prompt: Located<String>,
    /// Distinct approvers needed, none of them the requester (default 1).
    #[serde(default)]
    pub approvers: Option<Located<Templated<u32>>>,
}

/// `with` of `sleep`.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SleepInput {
    /// How long to wait.
    pub duration: Located<DurationSpec>,
}

macro_rules! actions {
    ($($(#[$meta:meta])* $name:literal => $variant:ident($input:ty), mutating: $mutating:expr;)+) => {
        /// A step's action with its typed input.
        #[derive(Debug, Clone)]
        pub enum Action {
            $($(#[$meta])* $variant($input)),+
        }

        /// Every action name, in catalog order.
        pub const ACTION_NAMES: &[&str] = &[$($name),+];

        impl Action {
            /// The catalog name, e.g. `evs.switchover`.
            pub fn name(&self) -> &'static str {
                match self { $(Action::$variant(_) => $name),+ }
            }

            /// True when the action changes cloud state (and so goes through the
            /// intent / reconcile path and is suppressed in dry runs).
            pub fn is_mutating(&self) -> bool {
                match self {
                    $(#[allow(unused_variables)] Action::$variant(input) => { let f: fn(&$input) -> bool = $mutating; f(input) }),+
                }
            }

            /// Reads the `with` block of action `name`; `None` for an unknown name.
            pub(crate) fn read(name: &str, with: &Node, sink: &Sink) -> Option<Option<Action>> {
                match name {
                    $($name => Some(from_node::<$input>(with, sink).map(Action::$variant)),)+
                    _ => None,
                }
            }

            /// The JSON Schema of each action's `with` block.
            pub(crate) fn input_schemas(generator: &mut schemars::SchemaGenerator) -> Vec<(&'static str, schemars::Schema)> {
                vec![$(($name, generator.subschema_for::<$input>())),+]
            }
        }
    };
}

/// What an identifier field of an action names; it decides the syntax check
/// and the lease.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IdField {
    /// An EVS replication consistency group (leased as `evs:<id>`).
    EvsGroup,
    /// An SDRS protection group (leased as `sdrs:<id>`).
    SdrsGroup,
    /// An SDRS DR drill (leased as `drill:<id>`).
    Drill,
    /// A VPC id (checked, not leased).
    Vpc,
    /// A DR drill name (a name, not an id: checked with the name rule).
    DrillName,
}

impl IdField {
    /// The lease prefix, for the fields that are leased.
    pub fn lease_prefix(self) -> Option<&'static str> {
        match self {
            IdField::EvsGroup => Some("evs"),
            IdField::SdrsGroup => Some("sdrs"),
            IdField::Drill => Some("drill"),
            IdField::Vpc | IdField::DrillName => None,
        }
    }

    /// Checks a value of this field; the reason if it is not valid.
    pub fn check(self, value: &str) -> Result<(), String> {
        match self {
            IdField::DrillName => crate::cloud::id::check_name(value),
            _ => crate::cloud::id::check(value),
        }
    }
}

impl Action {
    /// True when the action can change production: every EVS and SDRS
    /// protection-group action, and HTTP methods other than GET, HEAD and POST
    /// (a POST is taken as a notification). Reads, waits, sleeps, approvals
    /// and DR drills (which run on copies) cannot.
    pub fn disrupts_production(&self) -> bool {
        match self {
            Action::EvsSwitchover(_)
            | Action::EvsFailover(_)
            | Action::EvsSync(_)
            | Action::EvsStop(_)
            | Action::EvsReprotect(_)
            | Action::SdrsSwitchover(_)
            | Action::SdrsFailover(_)
            | Action::SdrsEnable(_)
            | Action::SdrsDisable(_) => true,
            // A templated method is not known until the run: taken as disruptive.
            Action::HttpRequest(i) => !matches!(
                i.method,
                None | Some(Templated::Literal(
                    HttpMethod::Get | HttpMethod::Head | HttpMethod::Post
                ))
            ),
            Action::EvsCheckGroup(_)
            | Action::EvsWaitGroup(_)
            | Action::EvsListGroups(_)
            | Action::SdrsListGroups(_)
            | Action::SdrsCheckGroup(_)
            | Action::SdrsWaitGroup(_)
            | Action::SdrsCreateDrill(_)
            | Action::SdrsDeleteDrill(_)
            | Action::Approval(_)
            | Action::Sleep(_) => false,
        }
    }

    /// The fields of this action that name cloud resources: the `with` key,
    /// what it names and its (possibly templated) value.
    pub fn identifiers(&self) -> Vec<(&'static str, IdField, &Located<String>)> {
        match self {
            Action::EvsCheckGroup(i) => vec![("group", IdField::EvsGroup, &i.group)],
            Action::EvsWaitGroup(i) => vec![("group", IdField::EvsGroup, &i.group)],
            Action::EvsSwitchover(i)
            | Action::EvsFailover(i)
            | Action::EvsSync(i)
            | Action::EvsStop(i)
            | Action::EvsReprotect(i) => vec![("group", IdField::EvsGroup, &i.group)],
            Action::SdrsCheckGroup(i) => vec![("group", IdField::SdrsGroup, &i.group)],
            Action::SdrsWaitGroup(i) => vec![("group", IdField::SdrsGroup, &i.group)],
            Action::SdrsSwitchover(i) => vec![("group", IdField::SdrsGroup, &i.group)],
            Action::SdrsFailover(i) | Action::SdrsEnable(i) | Action::SdrsDisable(i) => {
                vec![("group", IdField::SdrsGroup, &i.group)]
            }
            Action::SdrsCreateDrill(i) => {
                let mut out = vec![
                    ("group", IdField::SdrsGroup, &i.group),
                    ("name", IdField::DrillName, &i.name),
                ];
                if let Some(vpc) = &i.drill_vpc_id {
                    out.push(("drill_vpc_id", IdField::Vpc, vpc));
                }
                out
            }
            Action::SdrsDeleteDrill(i) => vec![("drill", IdField::Drill, &i.drill)],
            Action::EvsListGroups(_)
            | Action::SdrsListGroups(_)
            | Action::HttpRequest(_)
            | Action::Approval(_)
            | Action::Sleep(_) => Vec::new(),
        }
    }
}

actions! {
    /// Lists the EVS groups that match (every page): the groups a plan acts on.
    "evs.list_groups" => EvsListGroups(ListGroupsInput), mutating: |_| false;
    /// Lists the SDRS protection groups that match (every page).
    "sdrs.list_groups" => SdrsListGroups(ListGroupsInput), mutating: |_| false;
    /// Reads an EVS group and checks fields.
    "evs.check_group" => EvsCheckGroup(EvsCheckInput), mutating: |_| false;
    /// Polls an EVS group until a state is reached.
    "evs.wait_group" => EvsWaitGroup(EvsWaitInput), mutating: |_| false;
    /// Primary/secondary switchover (`os-reverse-replication-consistency-group`).
    "evs.switchover" => EvsSwitchover(EvsGroupInput), mutating: |_| true;
    /// Failover (`os-failover-replication-consistency-group`).
    "evs.failover" => EvsFailover(EvsGroupInput), mutating: |_| true;
    /// Synchronise (`os-sync-replication-consistency-group`).
    "evs.sync" => EvsSync(EvsGroupInput), mutating: |_| true;
    /// Pause replication (`os-stop-replication-consistency-group`).
    "evs.stop" => EvsStop(EvsGroupInput), mutating: |_| true;
    /// Reprotect after failover (`os-reprotect-replication-consistency-group`).
    "evs.reprotect" => EvsReprotect(EvsGroupInput), mutating: |_| true;
    /// Reads an SDRS protection group and checks fields.
    "sdrs.check_group" => SdrsCheckGroup(SdrsCheckInput), mutating: |_| false;
    /// Polls an SDRS protection group until a state is reached.
    "sdrs.wait_group" => SdrsWaitGroup(SdrsWaitInput), mutating: |_| false;
    /// Planned failover (`reverse-server-group`), then waits for the job.
    "sdrs.switchover" => SdrsSwitchover(SdrsSwitchoverInput), mutating: |_| true;
    /// Failover (`failover-server-group`), then waits for the job.
    "sdrs.failover" => SdrsFailover(SdrsGroupInput), mutating: |_| true;
    /// Enable or re-enable protection (`start-server-group`).
    "sdrs.enable" => SdrsEnable(SdrsGroupInput), mutating: |_| true;
    /// Disable protection (`stop-server-group`).
    "sdrs.disable" => SdrsDisable(SdrsGroupInput), mutating: |_| true;
    /// Creates a DR drill and waits for its job.
    "sdrs.create_drill" => SdrsCreateDrill(SdrsCreateDrillInput), mutating: |_| true;
    /// Deletes a DR drill and waits for its job.
    "sdrs.delete_drill" => SdrsDeleteDrill(SdrsDeleteDrillInput), mutating: |_| true;
    /// Any HTTP call.
    "http.request" => HttpRequest(HttpRequestInput), mutating: |i| !matches!(i.method, None | Some(Templated::Literal(HttpMethod::Get | HttpMethod::Head)));
    /// Waits for approvals.
    "approval" => Approval(ApprovalInput), mutating: |_| false;
    /// Waits a duration.
    "sleep" => Sleep(SleepInput), mutating: |_| false;
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn durations_parse_and_format() {
        let cases = [
            ("500ms", Duration::from_millis(500)),
            ("10s", Duration::from_secs(10)),
            ("5m", Duration::from_secs(300)),
            ("2h", Duration::from_secs(7200)),
            ("1h30m", Duration::from_secs(5400)),
        ];
        for (text, want) in cases {
            assert_eq!(parse_duration(text), Ok(want), "parsing {text}");
            assert_eq!(format_duration(want), text, "formatting {text}");
        }
    }

    #[test]
    fn bad_durations_are_rejected() {
        for text in ["", "10", "s", "5 minutes", "10sec", "-5s", "1.5s", "m5"] {
            let err = parse_duration(text).unwrap_err();
            assert!(err.contains("invalid duration"), "{text}: {err}");
        }
    }

    #[test]
    fn param_types_check_values() {
        assert!(ParamType::Integer.check("42").is_ok());
        assert!(ParamType::Integer.check("x").is_err());
        assert!(ParamType::Boolean.check("yes").is_err());
        assert!(ParamType::Duration.check("30m").is_ok());
        assert!(ParamType::String.check("anything").is_ok());
        assert!(
            ParamType::List.check("[1, 2]").is_err(),
            "a JSON list holds strings"
        );
        assert_eq!(parse_list(" g1, g2 g3,,").unwrap(), ["g1", "g2", "g3"]);
        assert_eq!(parse_list(r#"["a b", "c"]"#).unwrap(), ["a b", "c"]);
        assert!(parse_list("").unwrap().is_empty());
    }

    #[test]
    fn http_get_is_not_mutating_but_post_is() {
        let input = |method| HttpRequestInput {
            method,
            url: Located::new("http://x".into(), crate::yaml::Loc::Unknown),
            headers: BTreeMap::new(),
            json: None,
            body: None,
            expect_status: None,
            expect_json: BTreeMap::new(),
        };
        assert!(!Action::HttpRequest(input(None)).is_mutating());
        assert!(
            Action::HttpRequest(input(Some(Templated::Literal(HttpMethod::Post)))).is_mutating()
        );
        assert!(
            Action::HttpRequest(input(Some(Templated::Template("{{ x }}".into())))).is_mutating(),
            "an unknown method counts as mutating"
        );
        assert!(
            Action::EvsSwitchover(EvsGroupInput {
                group: Located::new("g".into(), crate::yaml::Loc::Unknown)
            })
            .is_mutating()
        );
    }
}
