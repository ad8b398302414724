//! `audit`: the keys of signed checkpoints and how often the daemon writes one.

use std::time::Duration;

use schemars::JsonSchema;
use serde::Deserialize;

use super::FixedDuration;
use crate::signing::{PublicKey, SigningKey};
use crate::yaml::{Checked, Loc, Located, Sink};

/// Checkpoint settings.
#[derive(Debug, Clone, Default)]
pub struct AuditConfig {
    /// `audit.public_key`: verifies checkpoints (`drover audit verify`, reports).
    pub public_key: Option<PublicKey>,
    /// The private key that signs them: `DROVER_AUDIT__SIGNING_KEY` only.
    pub signing_key: Option<SigningKey>,
    /// `audit.checkpoint_interval`: the daemon signs the chain's head this
    /// often when it has grown (none by default).
    pub checkpoint_interval: Option<Duration>,
}

#[derive(Debug, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct RawAudit {
    #[serde(default)]
    public_key: Option<Located<String>>,
    #[serde(default)]
    signing_key: Option<Located<String>>,
    #[serde(default)]
    checkpoint_interval: Checked<Located<FixedDuration>>,
}

pub(super) fn build(raw: RawAudit, sink: &Sink) -> AuditConfig {
    let public_key = raw.public_key.and_then(|k| {
        PublicKey::parse(&k.value)
            .map_err(|e| sink.error(&k.loc, format!("audit.public_key: {e}")))
            .ok()
    });
    let signing_key = raw.signing_key.and_then(|k| {
        // A private key in the file would end up in backups and version control.
        if matches!(k.loc, Loc::At { .. }) {
            sink.error(
                &k.loc,
                "audit.signing_key must not be written in the config file; set the environment variable DROVER_AUDIT__SIGNING_KEY",
            );
            return None;
        }
        SigningKey::parse(&k.value)
            .map_err(|e| sink.error(&k.loc, format!("audit.signing_key: {e}")))
            .ok()
    });
    if let (Some(public), Some(signing)) = (&public_key, &signing_key)
        && signing.public_key() != *public
    {
        sink.error(
            &Loc::Env("DROVER_AUDIT__SIGNING_KEY".into()),
            format!(
                "audit.signing_key does not belong to audit.public_key {public}: its checkpoints would not verify"
            ),
        );
    }
    let checkpoint_interval = raw.checkpoint_interval.0.map(|d| {
        if d.value.0 < Duration::from_secs(1) {
            sink.error(&d.loc, "audit.checkpoint_interval must be at least 1s");
        }
        d.value.0
    });
    AuditConfig {
        public_key,
        signing_key,
        checkpoint_interval,
    }
}
