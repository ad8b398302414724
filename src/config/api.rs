//! `api`: where the daemon listens, who may call it, and how long it waits
//! for a client.

use std::collections::HashSet;
use std::net::SocketAddr;
use std::time::Duration;

use schemars::JsonSchema;
use serde::Deserialize;

use super::{ApiToken, FixedDuration, Role, check_url};
use crate::yaml::{Checked, Located, Sink};

/// What one slow or idle client may hold of the daemon's HTTP server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ServerLimits {
    /// `api.header_timeout`: how long a connection may take to send a
    /// request's headers, counted from the moment it opens or the previous
    /// answer was written; so also how long an idle keep-alive connection
    /// stays open. Default 10 s.
    pub header_timeout: Duration,
    /// `api.body_timeout`: how long a request's body may take to arrive once
    /// its headers have; a late body is answered 408. Default 10 s.
    pub body_timeout: Duration,
    /// `api.max_connections`: connections served at once; more wait, unread,
    /// in the listen queue until one closes. Default 256.
    pub max_connections: usize,
}

impl Default for ServerLimits {
    fn default() -> Self {
        ServerLimits {
            header_timeout: Duration::from_secs(10),
            body_timeout: Duration::from_secs(10),
            max_connections: 256,
        }
    }
}

/// The most connections `api.max_connections` may allow.
const MAX_CONNECTIONS: usize = 65_536;

#[derive(Debug, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct RawApi {
    #[serde(default)]
    listen: Option<Located<String>>,
    #[serde(default)]
    server: Option<Located<String>>,
    #[serde(default)]
    tokens: Vec<Checked<RawToken>>,
    #[serde(default)]
    header_timeout: Checked<Located<FixedDuration>>,
    #[serde(default)]
    body_timeout: Checked<Located<FixedDuration>>,
    #[serde(default)]
    max_connections: Checked<Located<u64>>,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
struct RawToken {
    name: Located<String>,
    role: Role,
    sha256: Located<String>,
}

/// The `api` section, checked.
pub(super) struct Api {
    pub listen: SocketAddr,
    pub server: String,
    pub tokens: Vec<ApiToken>,
    pub limits: ServerLimits,
}

pub(super) fn build(api: RawApi, sink: &Sink) -> Api {
    let listen = match api.listen {
        Some(l) => l.value.parse().unwrap_or_else(|_| {
            sink.error(
                &l.loc,
                format!(
                    "api.listen: expected an address such as `127.0.0.1:8080`, found `{}`",
                    l.value
                ),
            );
            default_listen()
        }),
        None => default_listen(),
    };
    let server = match api.server {
        Some(s) => {
            check_url(&s, "api.server", sink);
            s.value.trim_end_matches('/').to_string()
        }
        None => format!("http://{listen}"),
    };
    let mut names = HashSet::new();
    let mut tokens = Vec::new();
    for token in api.tokens.into_iter().filter_map(|t| t.0) {
        if !names.insert(token.name.value.clone()) {
            sink.error(
                &token.name.loc,
                format!("duplicate token name `{}`", token.name.value),
            );
        }
        let digest = token.sha256.value.to_ascii_lowercase();
        if digest.len() != 64 || !digest.chars().all(|c| c.is_ascii_hexdigit()) {
            // The value may be a token pasted by mistake: never echo it.
            sink.error(
                &token.sha256.loc,
                format!(
                    "api.tokens `{}`: sha256 must be 64 hex characters (the digest of the token, e.g. from `printf %s \"$TOKEN\" | sha256sum`), found {} characters",
                    token.name.value,
                    digest.len()
                ),
            );
        }
        tokens.push(ApiToken {
            name: token.name.value,
            role: token.role,
            sha256: digest,
        });
    }
    let defaults = ServerLimits::default();
    let timeout = |raw: Checked<Located<FixedDuration>>, key: &str, default: Duration| {
        let Some(d) = raw.0 else { return default };
        if d.value.0 < Duration::from_millis(100) || d.value.0 > Duration::from_secs(3600) {
            sink.error(&d.loc, format!("api.{key} must be between 100ms and 1h"));
            return default;
        }
        d.value.0
    };
    let limits = ServerLimits {
        header_timeout: timeout(
            api.header_timeout,
            "header_timeout",
            defaults.header_timeout,
        ),
        body_timeout: timeout(api.body_timeout, "body_timeout", defaults.body_timeout),
        max_connections: match api.max_connections.0 {
            Some(n) if (1..=MAX_CONNECTIONS as u64).contains(&n.value) => n.value as usize,
            Some(n) => {
                sink.error(
                    &n.loc,
                    format!(
                        "api.max_connections must be between 1 and {MAX_CONNECTIONS}, found {}",
                        n.value
                    ),
                );
                defaults.max_connections
            }
            None => defaults.max_connections,
        },
    };
    Api {
        listen,
        server,
        tokens,
        limits,
    }
}

fn default_listen() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 8080))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::tests::{messages, parse};

    #[test]
    fn server_limits_have_defaults_and_take_file_and_environment_values() {
        let c = parse("", &[]).unwrap();
        assert_eq!(c.api_limits, ServerLimits::default());
        let c = parse(
            "api:\n  header_timeout: 5s\n  max_connections: 64\n",
            &[("DROVER_API__BODY_TIMEOUT", "2s")],
        )
        .unwrap();
        assert_eq!(
            c.api_limits,
            ServerLimits {
                header_timeout: Duration::from_secs(5),
                body_timeout: Duration::from_secs(2),
                max_connections: 64,
            }
        );
    }

    #[test]
    fn server_limits_out_of_range_are_named_with_their_place() {
        let m = messages(parse(
            "api:\n  header_timeout: 10ms\n  body_timeout: 2h\n  max_connections: 0\n",
            &[],
        ));
        assert_eq!(
            m,
            [
                "drover.yaml:2:19: api.header_timeout must be between 100ms and 1h",
                "drover.yaml:3:17: api.body_timeout must be between 100ms and 1h",
                "drover.yaml:4:20: api.max_connections must be between 1 and 65536, found 0",
            ]
        );
        let m = messages(parse("api:\n  max_connections: many\n", &[]));
        assert_eq!(m.len(), 1, "{m:?}");
        assert!(m[0].starts_with("drover.yaml:2:20: "), "{m:?}");
    }
}
