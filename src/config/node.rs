//! `node`: who this process is among the daemons sharing a database.

use std::time::Duration;

use schemars::JsonSchema;
use serde::Deserialize;

use super::FixedDuration;
use crate::yaml::{Checked, Located, Sink};

/// Who this process is among the daemons sharing a database.
#[derive(Debug, Clone)]
pub struct NodeConfig {
    /// `node.name` (`DROVER_NODE__NAME`); default: host name and process id.
    pub name: Option<String>,
    /// How long a run's claim lives unless renewed (every third of it): a
    /// run of a stopped daemon is taken over this long after its last
    /// renewal. Default 15 s.
    pub claim_ttl: Duration,
}

#[derive(Debug, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct RawNode {
    #[serde(default)]
    name: Option<Located<String>>,
    #[serde(default)]
    claim_ttl: Checked<Located<FixedDuration>>,
}

pub(super) fn build(raw: RawNode, sink: &Sink) -> NodeConfig {
    if let Some(ttl) = &raw.claim_ttl.0
        && ttl.value.0 < Duration::from_secs(1)
    {
        sink.error(
            &ttl.loc,
            "node.claim_ttl must be at least 1s (claims are renewed every third of it)",
        );
    }
    // The name goes into logs, rows and audit events: a plain word only.
    if let Some(name) = &raw.name
        && (name.value.is_empty()
            || name.value.len() > 64
            || !name
                .value
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-')))
    {
        sink.error(
            &name.loc,
            "node.name must be 1 to 64 characters of letters, digits, `.`, `_` and `-`",
        );
    }
    NodeConfig {
        name: raw.name.map(|n| n.value),
        claim_ttl: raw
            .claim_ttl
            .0
            .map_or(crate::store::DEFAULT_CLAIM_TTL, |d| d.value.0),
    }
}
