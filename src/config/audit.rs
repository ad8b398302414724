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

#[cfg(test)]
mod tests {
    use super::super::tests::{messages, parse};
    use crate::signing::SigningKey;

    #[test]
    fn keys_from_file_and_environment() {
        let key = SigningKey::generate();
        let (seed, public) = (key.to_base64(), key.public_key().to_string());
        let text = format!("audit:\n  public_key: {public}\n  checkpoint_interval: 1h\n");
        let config = parse(&text, &[("DROVER_AUDIT__SIGNING_KEY", &seed)]).unwrap();
        assert_eq!(config.audit.public_key, Some(key.public_key()));
        assert_eq!(
            config.audit.signing_key.map(|k| k.public_key()),
            Some(key.public_key())
        );
        assert_eq!(
            config.audit.checkpoint_interval,
            Some(std::time::Duration::from_secs(3600))
        );
    }

    #[test]
    fn a_private_key_in_the_file_or_a_wrong_pair_is_refused_without_echoing_it() {
        let key = SigningKey::generate();
        let seed = key.to_base64();
        let m = messages(parse(&format!("audit:\n  signing_key: {seed}\n"), &[]));
        assert!(
            m.iter()
                .any(|e| e.contains("2:16") && e.contains("DROVER_AUDIT__SIGNING_KEY")),
            "{m:?}"
        );
        assert!(m.iter().all(|e| !e.contains(&seed)), "{m:?}");

        let other = SigningKey::generate().public_key();
        let m = messages(parse(
            &format!("audit:\n  public_key: {other}\n"),
            &[("DROVER_AUDIT__SIGNING_KEY", &seed)],
        ));
        assert!(m.iter().any(|e| e.contains("does not belong")), "{m:?}");
        assert!(m.iter().all(|e| !e.contains(&seed)), "{m:?}");

        let m = messages(parse("audit:\n  public_key: nope\n", &[]));
        assert!(
            m.iter()
                .any(|e| e.contains("2:15") && e.contains("audit.public_key")),
            "{m:?}"
        );
        let m = messages(parse("", &[("DROVER_AUDIT__SIGNING_KEY", "c2hvcnQ=")]));
        assert!(m.iter().any(|e| e.contains("5 bytes")), "{m:?}");
    }
}
