//! Configuration: `config/drover.yaml` (optional), overridden key by key by
//! environment variables `DROVER_<SECTION>__<KEY>` (double underscore between
//! levels, e.g. `DROVER_CLOUD__EVS_ENDPOINT`). Secrets (the cloud password,
//! AK/SK, a static token) are read from the environment only and held as
//! [`SecretString`]: they are never written to the file, printed or logged.
//!
//! Errors carry the same quality as runbook errors: file, line, column (or the
//! environment variable), what was found and what was expected.

mod api;
mod audit;
mod cloud;
pub mod endpoint;
mod node;
pub mod openstack;
mod rate;

pub use rate::{DEFAULT_THROTTLE_RETRIES, RateConfig};

pub use api::ServerLimits;
pub use audit::AuditConfig;
pub use node::NodeConfig;

use std::collections::BTreeMap;
use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use schemars::JsonSchema;
use secrecy::SecretString;
use serde::{Deserialize, Serialize};

use crate::runbook::model::FixedDuration;
use crate::yaml::{self, Checked, Diagnostic, Loc, Located, Node, Sink, Value};

/// The config file read when `--config` is not given (missing is fine).
pub const DEFAULT_PATH: &str = "config/drover.yaml";
/// Prefix of every environment override.
pub const ENV_PREFIX: &str = "DROVER_";

/// The validated configuration.
#[derive(Debug, Clone)]
pub struct Config {
    /// Where the audit trail lives.
    pub database_url: String,
    /// Folder of runbook files.
    pub runbooks_dir: PathBuf,
    /// HTTP API listen address.
    pub api_listen: SocketAddr,
    /// Base URL the `drover runs` client talks to.
    pub api_server: String,
    /// Bearer tokens accepted by the API.
    pub api_tokens: Vec<ApiToken>,
    /// Timeouts and the connection limit of the API server.
    pub api_limits: ServerLimits,
    /// Log output.
    pub log_format: LogFormat,
    /// Cloud access.
    pub cloud: CloudConfig,
    /// Scheduler settings.
    pub scheduler: SchedulerConfig,
    /// Run execution settings.
    pub engine: EngineConfig,
    pub node: NodeConfig,
    /// Signed audit checkpoints.
    pub audit: AuditConfig,
}

/// How logs are written.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Human-readable lines.
    #[default]
    Text,
    /// One JSON object per line.
    Json,
}

/// What an API token may do.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Deserialize, Serialize, JsonSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Read runs and runbooks.
    Viewer,
    /// Viewer, plus the audit trail.
    Auditor,
    /// Trigger runbooks of kind `drill`.
    Drill,
    /// Trigger anything, approve, cancel.
    Operator,
    /// Everything.
    Admin,
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Role::Viewer => "viewer",
            Role::Auditor => "auditor",
            Role::Drill => "drill",
            Role::Operator => "operator",
            Role::Admin => "admin",
        })
    }
}

/// One accepted API token, known only by its sha256 digest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiToken {
    /// Who holds it; recorded as the actor of what it does.
    pub name: String,
    /// What it may do.
    pub role: Role,
    /// sha256 of the token, lowercase hex.
    pub sha256: String,
}

/// Cloud endpoints, credentials and timeouts.
#[derive(Debug, Clone)]
pub struct CloudConfig {
    /// Region, e.g. `eu-de`.
    pub region: String,
    /// Project id used in EVS and SDRS paths.
    pub project_id: Option<String>,
    /// Project name a token is scoped to when no id is given (default: the
    /// region's name, which is how OTC names a region's main project).
    pub project_name: Option<String>,
    /// IAM base URL (the token call is `POST {iam}/v3/auth/tokens`).
    pub iam_endpoint: String,
    /// EVS base URL (paths start `/v2/{project_id}`); `None`: from the
    /// token's catalog, else OTC's pattern for the region.
    pub evs_endpoint: Option<String>,
    /// SDRS base URL (paths start `/v1/{project_id}`); `None` as for EVS.
    pub sdrs_endpoint: Option<String>,
    /// How requests are authenticated.
    pub auth: CloudAuth,
    /// Whole-request timeout.
    pub timeout: Duration,
    pub connect_timeout: Duration,
    /// Extra CA certificate (PEM) to trust.
    pub tls_ca_file: Option<PathBuf>,
    /// Request budgets and the answer to throttling (`cloud.rate`).
    pub rate: RateConfig,
}

/// Cloud credentials. Secrets come from the environment only.
#[derive(Clone)]
pub enum CloudAuth {
    /// Nothing configured: cloud steps fail with a clear message.
    None,
    /// IAM password token, project-scoped.
    Password {
        /// IAM user name.
        user: String,
        /// Account (domain) name.
        domain: String,
        /// From `DROVER_CLOUD__AUTH__PASSWORD`.
        password: SecretString,
    },
    /// AK/SK request signing.
    AkSk {
        /// From `DROVER_CLOUD__AUTH__ACCESS_KEY`.
        access_key: SecretString,
        /// From `DROVER_CLOUD__AUTH__SECRET_KEY`.
        secret_key: SecretString,
    },
    /// A token obtained elsewhere, from `DROVER_CLOUD__AUTH__TOKEN`.
    Token(SecretString),
    /// A method is configured but its secret is not in the environment. Commands
    /// that need no cloud (audit, validate) still work; building a client fails
    /// with this message.
    Incomplete(String),
}

impl fmt::Debug for CloudAuth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            CloudAuth::None => "CloudAuth::None",
            CloudAuth::Password { .. } => "CloudAuth::Password([REDACTED])",
            CloudAuth::AkSk { .. } => "CloudAuth::AkSk([REDACTED])",
            CloudAuth::Token(_) => "CloudAuth::Token([REDACTED])",
            CloudAuth::Incomplete(_) => "CloudAuth::Incomplete",
        })
    }
}

/// Scheduler settings.
#[derive(Debug, Clone)]
pub struct SchedulerConfig {
    /// A fire missed while the daemon was down runs at start if it is at most this old.
    pub missed_fire_grace: Duration,
}

/// Run execution settings.
#[derive(Debug, Clone)]
pub struct EngineConfig {
    /// Before a resumed run reconciles a mutating call whose answer was never
    /// recorded, it waits until the call is this old: the interrupted
    /// process's request may still be on its way. Default: the cloud request
    /// timeout plus 5 s.
    pub in_flight_grace: Duration,
    /// Upper bound of any sleep, step timeout, poll interval or hold a runbook
    /// asks for once rendered. Default 24 h.
    pub max_duration: Duration,
}

/// Default of [`EngineConfig::max_duration`].
pub const DEFAULT_MAX_DURATION: Duration = Duration::from_secs(24 * 3600);

// ---- raw model -------------------------------------------------------------

#[derive(Debug, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    #[serde(default)]
    database: Checked<RawDatabase>,
    #[serde(default)]
    runbooks: Checked<RawRunbooks>,
    #[serde(default)]
    api: Checked<api::RawApi>,
    #[serde(default)]
    log: Checked<RawLog>,
    #[serde(default)]
    cloud: Checked<cloud::RawCloud>,
    #[serde(default)]
    scheduler: Checked<RawScheduler>,
    #[serde(default)]
    engine: Checked<RawEngine>,
    #[serde(default)]
    node: Checked<node::RawNode>,
    #[serde(default)]
    audit: Checked<audit::RawAudit>,
}

#[derive(Debug, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
struct RawDatabase {
    #[serde(default)]
    url: Option<Located<String>>,
}

#[derive(Debug, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
struct RawRunbooks {
    #[serde(default)]
    dir: Option<String>,
}

#[derive(Debug, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
struct RawLog {
    #[serde(default)]
    format: Checked<LogFormat>,
}

#[derive(Debug, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
struct RawScheduler {
    #[serde(default)]
    missed_fire_grace: Checked<Located<FixedDuration>>,
}

#[derive(Debug, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
struct RawEngine {
    #[serde(default)]
    in_flight_grace: Checked<Located<FixedDuration>>,
    #[serde(default)]
    max_duration: Checked<Located<FixedDuration>>,
}

// ---- loading ---------------------------------------------------------------

impl Config {
    /// Loads `path` (or the default file if it exists), applies the process
    /// environment, and validates.
    pub fn load(path: Option<&Path>) -> Result<Config, Vec<Diagnostic>> {
        let env: BTreeMap<String, String> = std::env::vars().collect();
        Self::load_with_env(path, &env)
    }

    /// As [`Config::load`], with the environment given (for tests).
    pub fn load_with_env(
        path: Option<&Path>,
        env: &BTreeMap<String, String>,
    ) -> Result<Config, Vec<Diagnostic>> {
        let (file, text) = match path {
            Some(p) => match std::fs::read_to_string(p) {
                Ok(text) => (p.to_path_buf(), text),
                Err(e) => {
                    return Err(vec![Diagnostic {
                        file: p.to_path_buf(),
                        loc: Loc::Unknown,
                        step: None,
                        message: format!("cannot read config file: {e}"),
                    }]);
                }
            },
            None => {
                let p = PathBuf::from(DEFAULT_PATH);
                let text = std::fs::read_to_string(&p).unwrap_or_default();
                (p, text)
            }
        };
        Self::parse(&text, &file, env)
    }

    /// Validates config text plus environment overrides.
    pub fn parse(
        text: &str,
        file: &Path,
        env: &BTreeMap<String, String>,
    ) -> Result<Config, Vec<Diagnostic>> {
        let mut root = yaml::parse(text, file).map_err(|d| vec![d])?;
        if root.value == Value::Null {
            root.value = Value::Map(Vec::new());
        }
        let sink = Sink::new(file);
        apply_env(&mut root, env, &sink);
        openstack::fill(&mut root, env, &sink);
        let raw = yaml::from_node::<RawConfig>(&root, &sink).unwrap_or_default();
        let config = build(raw, &sink);
        if sink.is_clean() {
            Ok(config)
        } else {
            Err(sink.into_diagnostics())
        }
    }

    /// The token entry whose digest matches `token`, if any.
    pub fn find_token(&self, token: &str) -> Option<&ApiToken> {
        use sha2::{Digest, Sha256};
        let digest = hex::encode(Sha256::digest(token.as_bytes()));
        self.api_tokens.iter().find(|t| t.sha256 == digest)
    }
}

/// Writes each `DROVER_A__B=value` into the tree at `a.b`. A value starting
/// with `[` or `{` is read as YAML flow (for lists such as `api.tokens`).
fn apply_env(root: &mut Node, env: &BTreeMap<String, String>, sink: &Sink) {
    for (name, value) in env {
        let Some(rest) = name.strip_prefix(ENV_PREFIX) else {
            continue;
        };
        // Only names with a level separator are overrides: `DROVER_WEBHOOK_URL`
        // belongs to runbook templates, `DROVER_TOKEN` to the CLI client.
        if !rest.contains("__") {
            continue;
        }
        let path: Vec<String> = rest.split("__").map(str::to_ascii_lowercase).collect();
        let mut leaf = Node::env_text(name, value);
        let trimmed = value.trim_start();
        if trimmed.starts_with('[') || trimmed.starts_with('{') {
            match yaml::parse(value, Path::new(name)) {
                Ok(mut parsed) => {
                    relocate(&mut parsed, name);
                    leaf = parsed;
                }
                Err(d) => {
                    sink.error(
                        &Loc::Env(name.clone()),
                        format!("cannot read value: {}", d.message),
                    );
                    continue;
                }
            }
        }
        set_path(root, &path, leaf, name);
    }
}

fn relocate(node: &mut Node, name: &str) {
    node.loc = Loc::Env(name.to_string());
    match &mut node.value {
        Value::Seq(items) => items.iter_mut().for_each(|n| relocate(n, name)),
        Value::Map(entries) => entries.iter_mut().for_each(|(k, v)| {
            relocate(k, name);
            relocate(v, name);
        }),
        _ => {}
    }
}

fn set_path(node: &mut Node, path: &[String], leaf: Node, env_name: &str) {
    let Some((first, rest)) = path.split_first() else {
        *node = leaf;
        return;
    };
    if !matches!(node.value, Value::Map(_)) {
        node.value = Value::Map(Vec::new());
    }
    let Value::Map(entries) = &mut node.value else {
        return;
    };
    let index = match entries.iter().position(|(k, _)| k.as_str() == Some(first)) {
        Some(i) => i,
        None => {
            let key = Node::env_text(env_name, first);
            let value = Node {
                loc: Loc::Env(env_name.to_string()),
                value: Value::Map(Vec::new()),
            };
            entries.push((key, value));
            entries.len() - 1
        }
    };
    set_path(&mut entries[index].1, rest, leaf, env_name);
}

fn build(raw: RawConfig, sink: &Sink) -> Config {
    let database = raw.database.0.unwrap_or_default();
    let database_url = match database.url {
        Some(url) => {
            if !(url.value.starts_with("sqlite:")
                || url.value.starts_with("postgres://")
                || url.value.starts_with("postgresql://"))
            {
                sink.error(
                    &url.loc,
                    format!(
                        "database.url: expected `sqlite://PATH` or `postgres://...`, found `{}`",
                        crate::redact::url(&url.value)
                    ),
                );
            }
            url.value
        }
        None => "sqlite://data/drover.db".to_string(),
    };

    let api = api::build(raw.api.0.unwrap_or_default(), sink);

    let log_format = raw.log.0.and_then(|l| l.format.0).unwrap_or_default();
    let cloud = cloud::build(raw.cloud.0.unwrap_or_default(), sink);
    let scheduler = SchedulerConfig {
        missed_fire_grace: raw
            .scheduler
            .0
            .and_then(|s| s.missed_fire_grace.0)
            .map_or(Duration::from_secs(3600), |d| d.value.0),
    };

    let raw_engine = raw.engine.0.unwrap_or_default();
    let engine = EngineConfig {
        in_flight_grace: raw_engine
            .in_flight_grace
            .0
            .map_or(cloud.timeout + Duration::from_secs(5), |d| d.value.0),
        max_duration: raw_engine
            .max_duration
            .0
            .map_or(DEFAULT_MAX_DURATION, |d| d.value.0),
    };

    let node = node::build(raw.node.0.unwrap_or_default(), sink);
    let audit = audit::build(raw.audit.0.unwrap_or_default(), sink);

    Config {
        database_url,
        runbooks_dir: PathBuf::from(
            raw.runbooks
                .0
                .and_then(|r| r.dir)
                .unwrap_or_else(|| "runbooks".into()),
        ),
        api_listen: api.listen,
        api_server: api.server,
        api_tokens: api.tokens,
        api_limits: api.limits,
        log_format,
        cloud,
        scheduler,
        engine,
        node,
        audit,
    }
}

fn check_url(url: &Located<String>, what: &str, sink: &Sink) {
    if !(url.value.starts_with("http://") || url.value.starts_with("https://")) {
        sink.error(
            &url.loc,
            format!(
                "{what}: expected an http:// or https:// URL, found `{}`",
                url.value
            ),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use secrecy::ExposeSecret;

    pub(crate) fn parse(text: &str, env: &[(&str, &str)]) -> Result<Config, Vec<Diagnostic>> {
        let env = env
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Config::parse(text, Path::new("drover.yaml"), &env)
    }

    pub(crate) fn messages(r: Result<Config, Vec<Diagnostic>>) -> Vec<String> {
        r.unwrap_err().iter().map(ToString::to_string).collect()
    }

    #[test]
    fn empty_config_gives_working_defaults() {
        let c = parse("", &[]).unwrap();
        assert_eq!(c.database_url, "sqlite://data/drover.db");
        assert_eq!(c.api_listen.to_string(), "127.0.0.1:8080");
        assert_eq!(c.cloud.iam_endpoint, "https://iam.eu-de.otc.t-systems.com");
        assert!(matches!(c.cloud.auth, CloudAuth::None));
    }

    #[test]
    fn the_in_flight_grace_is_its_own_knob() {
        let c = parse("cloud:\n  timeout: 7s\n", &[]).unwrap();
        assert_eq!(
            c.engine.in_flight_grace,
            Duration::from_secs(12),
            "timeout + 5s"
        );
        assert_eq!(c.node.name, None);
        assert_eq!(c.node.claim_ttl, crate::store::DEFAULT_CLAIM_TTL);
        assert_eq!(c.engine.max_duration, DEFAULT_MAX_DURATION);
        let c = parse(
            "cloud:\n  timeout: 7s\nengine:\n  in_flight_grace: 90s\n",
            &[("DROVER_ENGINE__MAX_DURATION", "2h")],
        )
        .unwrap();
        assert_eq!(c.cloud.timeout, Duration::from_secs(7), "unchanged");
        assert_eq!(c.engine.in_flight_grace, Duration::from_secs(90));
        assert_eq!(c.engine.max_duration, Duration::from_secs(7200));
        let errors = messages(parse("engine:\n  in_flight_grace: 99999999999h\n", &[]));
        assert!(errors[0].contains("longer than the 168h"), "{errors:?}");
    }

    #[test]
    fn node_name_and_claim_ttl_from_file_and_environment() {
        let c = parse(
            "node:\n  name: az1-a\n  claim_ttl: 6s\n",
            &[("DROVER_NODE__NAME", "az2-b")],
        )
        .unwrap();
        assert_eq!(c.node.name.as_deref(), Some("az2-b"));
        assert_eq!(c.node.claim_ttl, Duration::from_secs(6));
        for bad in ["\"az1 a\"", "\"\"", "\"a\\nfake log line\""] {
            let errors = messages(parse(&format!("node:\n  name: {bad}\n"), &[]));
            assert!(errors[0].contains("node.name must be"), "{bad}: {errors:?}");
        }
        let errors = messages(parse("node:\n  claim_ttl: 500ms\n", &[]));
        assert!(
            errors[0].contains("2:14") && errors[0].contains("at least 1s"),
            "{errors:?}"
        );
    }

    #[test]
    fn environment_overrides_file_values_and_types() {
        let c = parse(
            "cloud:\n  evs_endpoint: http://a\n  timeout: 5s\n",
            &[
                ("DROVER_CLOUD__EVS_ENDPOINT", "http://b"),
                ("DROVER_CLOUD__TIMEOUT", "7s"),
                ("DROVER_API__LISTEN", "0.0.0.0:9000"),
                ("DROVER_WEBHOOK_URL", "http://not-config"),
            ],
        )
        .unwrap();
        assert_eq!(c.cloud.evs_endpoint.as_deref(), Some("http://b"));
        assert_eq!(c.cloud.timeout, Duration::from_secs(7));
        assert_eq!(c.api_listen.to_string(), "0.0.0.0:9000");
    }

    #[test]
    fn misspelt_override_names_the_variable() {
        let m = messages(parse("", &[("DROVER_CLOUD__EVS_ENDPONT", "http://b")]));
        assert_eq!(
            m,
            [
                "drover.yaml: environment variable DROVER_CLOUD__EVS_ENDPONT: unknown key `evs_endpont`, did you mean `evs_endpoint`?"
            ]
        );
    }

    #[test]
    fn secrets_in_the_file_are_refused_without_echoing_them() {
        let m = messages(parse(
            "cloud:\n  auth:\n    method: password\n    user: u\n    domain: d\n    password: hunter2-secret\n",
            &[],
        ));
        assert!(m.iter().any(|e| e.starts_with("drover.yaml:6:15: cloud.auth.password must not be written")), "{m:?}");
        assert!(m.iter().all(|e| !e.contains("hunter2-secret")), "{m:?}");
    }

    #[test]
    fn password_auth_from_environment() {
        let c = parse(
            "cloud:\n  auth: { method: password, user: u, domain: d }\n",
            &[("DROVER_CLOUD__AUTH__PASSWORD", "s3cr3t")],
        )
        .unwrap();
        let CloudAuth::Password { password, .. } = &c.cloud.auth else {
            panic!("password auth")
        };
        assert_eq!(password.expose_secret(), "s3cr3t");
        assert!(
            !format!("{c:?}").contains("s3cr3t"),
            "Debug must not show the secret"
        );
    }

    #[test]
    fn every_error_of_the_file_is_reported_with_its_place() {
        let m = messages(parse(
            "api:\n  listen: nowhere\n  tokens:\n    - { name: a, role: operatr, sha256: abc }\n    - { name: b, role: admin, sha256: xyz }\ncloud:\n  timeout: soon\nlogs: {}\n",
            &[],
        ));
        let want = [
            "drover.yaml:2:11: api.listen: expected an address such as `127.0.0.1:8080`, found `nowhere`",
            "drover.yaml:4:24: unknown value `operatr`, did you mean `operator`?",
            "drover.yaml:5:39: api.tokens `b`: sha256 must be 64 hex characters",
            "drover.yaml:7:12: invalid duration `soon`",
            "drover.yaml:8:1: unknown key `logs`, did you mean `log`?",
        ];
        assert_eq!(m.len(), want.len(), "{m:#?}");
        for (got, want) in m.iter().zip(want) {
            assert!(got.starts_with(want), "got {got}\nwant {want}");
        }
    }

    #[test]
    fn token_lookup_uses_the_digest() {
        use sha2::{Digest, Sha256};
        let digest = hex::encode(Sha256::digest(b"tok"));
        let c = parse(
            &format!(
                "api:\n  tokens:\n    - {{ name: alice, role: operator, sha256: {digest} }}\n"
            ),
            &[],
        )
        .unwrap();
        assert_eq!(c.find_token("tok").map(|t| t.name.as_str()), Some("alice"));
        assert!(c.find_token("other").is_none());
    }

    #[test]
    fn database_password_is_not_echoed() {
        let m = messages(parse("database:\n  url: mysql://u:pw@h/db\n", &[]));
        assert!(m[0].contains("mysql://[REDACTED]@h/db"), "{m:?}");
    }
}
