//! `cloud`: region, project, endpoints, timeouts, rates and credentials
//! (secrets from the environment only, never from the file).

use std::path::PathBuf;
use std::time::Duration;

use schemars::JsonSchema;
use secrecy::SecretString;
use serde::Deserialize;

use super::endpoint::{self, Service};
use super::{CloudAuth, CloudConfig, FixedDuration, rate};
use crate::yaml::{Checked, Loc, Located, Sink};

#[derive(Debug, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct RawCloud {
    #[serde(default)]
    region: Option<Located<String>>,
    #[serde(default)]
    project_id: Option<String>,
    #[serde(default)]
    project_name: Option<String>,
    #[serde(default)]
    iam_endpoint: Option<Located<String>>,
    #[serde(default)]
    evs_endpoint: Option<Located<String>>,
    #[serde(default)]
    sdrs_endpoint: Option<Located<String>>,
    #[serde(default)]
    auth: Checked<RawAuth>,
    #[serde(default)]
    timeout: Checked<Located<FixedDuration>>,
    #[serde(default)]
    connect_timeout: Checked<Located<FixedDuration>>,
    #[serde(default)]
    tls_ca_file: Option<Located<String>>,
    #[serde(default)]
    rate: Checked<rate::RawRate>,
}

#[derive(Debug, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
struct RawAuth {
    #[serde(default)]
    method: Checked<Located<AuthMethod>>,
    #[serde(default)]
    user: Option<String>,
    #[serde(default)]
    domain: Option<String>,
    #[serde(default)]
    password: Option<Located<String>>,
    #[serde(default)]
    access_key: Option<Located<String>>,
    #[serde(default)]
    secret_key: Option<Located<String>>,
    #[serde(default)]
    token: Option<Located<String>>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
enum AuthMethod {
    Password,
    Aksk,
    Token,
}

pub(super) fn build(raw: RawCloud, sink: &Sink) -> CloudConfig {
    let region = raw.region.map_or_else(|| "eu-de".to_string(), |r| r.value);
    // The forms people paste (`/v3`, `/v2/{project_id}`, a trailing `/`)
    // become the service root; anything else is refused with the form expected.
    let endpoint = |value: Option<Located<String>>, service: Service| {
        value.map(|v| {
            endpoint::normalize(service, &v.value).unwrap_or_else(|e| {
                sink.error(&v.loc, format!("{}: {e}", service.key()));
                v.value
            })
        })
    };
    let iam_endpoint = endpoint(raw.iam_endpoint, Service::Iam)
        .unwrap_or_else(|| Service::Iam.default_endpoint(&region));
    let evs_endpoint = endpoint(raw.evs_endpoint, Service::Evs);
    let sdrs_endpoint = endpoint(raw.sdrs_endpoint, Service::Sdrs);
    let auth = build_auth(raw.auth.0.unwrap_or_default(), sink);
    CloudConfig {
        region,
        project_id: raw.project_id,
        project_name: raw.project_name,
        iam_endpoint,
        evs_endpoint,
        sdrs_endpoint,
        auth,
        timeout: raw.timeout.0.map_or(Duration::from_secs(30), |d| d.value.0),
        connect_timeout: raw
            .connect_timeout
            .0
            .map_or(Duration::from_secs(10), |d| d.value.0),
        tls_ca_file: raw.tls_ca_file.map(|f| PathBuf::from(f.value)),
        rate: rate::build(raw.rate.0.unwrap_or_default(), sink),
    }
}

fn build_auth(raw: RawAuth, sink: &Sink) -> CloudAuth {
    // A secret in the file would end up in backups and version control.
    let secret = |value: Option<Located<String>>, key: &str| -> Option<SecretString> {
        let v = value?;
        if matches!(v.loc, Loc::At { .. }) {
            sink.error(
                &v.loc,
                format!(
                    "cloud.auth.{key} must not be written in the config file; set the environment variable DROVER_CLOUD__AUTH__{}",
                    key.to_ascii_uppercase()
                ),
            );
            return None;
        }
        Some(SecretString::from(v.value))
    };
    let password = secret(raw.password, "password");
    let access_key = secret(raw.access_key, "access_key");
    let secret_key = secret(raw.secret_key, "secret_key");
    let token = secret(raw.token, "token");
    let Some(method) = raw.method.0 else {
        return CloudAuth::None;
    };
    let needs = |what: &str| {
        format!(
            "cloud.auth.method `{}` needs {what}",
            method_name(method.value)
        )
    };
    let missing = |what: &str| {
        sink.error(&method.loc, needs(what));
    };
    match method.value {
        AuthMethod::Password => match (raw.user, raw.domain, password) {
            (Some(user), Some(domain), Some(password)) => CloudAuth::Password {
                user,
                domain,
                password,
            },
            (user, domain, password) => {
                if user.is_none() {
                    missing("`user`");
                }
                if domain.is_none() {
                    missing("`domain` (the account name)");
                }
                if password.is_none() {
                    return CloudAuth::Incomplete(needs(
                        "the environment variable DROVER_CLOUD__AUTH__PASSWORD",
                    ));
                }
                CloudAuth::None
            }
        },
        AuthMethod::Aksk => match (access_key, secret_key) {
            (Some(access_key), Some(secret_key)) => CloudAuth::AkSk {
                access_key,
                secret_key,
            },
            _ => CloudAuth::Incomplete(needs(
                "the environment variables DROVER_CLOUD__AUTH__ACCESS_KEY and DROVER_CLOUD__AUTH__SECRET_KEY",
            )),
        },
        AuthMethod::Token => match token {
            Some(t) => CloudAuth::Token(t),
            None => {
                CloudAuth::Incomplete(needs("the environment variable DROVER_CLOUD__AUTH__TOKEN"))
            }
        },
    }
}

fn method_name(m: AuthMethod) -> &'static str {
    match m {
        AuthMethod::Password => "password",
        AuthMethod::Aksk => "aksk",
        AuthMethod::Token => "token",
    }
}
