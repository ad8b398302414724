//! Credentials where OpenStack tools keep them: a cloud of `clouds.yaml`
//! named by `OS_CLOUD`, or the `OS_*` variables, read as openstacksdk reads
//! them. They fill in only what neither the `DROVER_` variables nor the
//! config file set (that order is the precedence), and only when no
//! `cloud.auth` is configured: a config that names its own credentials is
//! never mixed with another tool's.
//!
//! Secrets (password, AK/SK) from `clouds.yaml` are carried as if they came
//! from the environment, so they become secret strings like drover's own;
//! no message here quotes a value read from `clouds.yaml`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use crate::yaml::{self, Loc, Node, Sink};

/// What an OpenStack source says, by drover config path (`cloud.auth.user`).
type Settings = Vec<(&'static [&'static str], String)>;

/// The `clouds.yaml` files openstacksdk reads, in order: `OS_CLIENT_CONFIG_FILE`,
/// then the current folder, the user's and the system's configuration folder.
pub fn search_paths(env: &BTreeMap<String, String>) -> Vec<PathBuf> {
    if let Some(file) = env.get("OS_CLIENT_CONFIG_FILE") {
        return vec![PathBuf::from(file)];
    }
    let user = env
        .get("XDG_CONFIG_HOME")
        .map(PathBuf::from)
        .or_else(|| env.get("HOME").map(|h| Path::new(h).join(".config")));
    let mut paths = vec![PathBuf::from("clouds.yaml")];
    paths.extend(user.map(|u| u.join("openstack").join("clouds.yaml")));
    paths.push(PathBuf::from("/etc/openstack/clouds.yaml"));
    paths
}

/// Fills `root` (the config tree after the `DROVER_` overrides) from
/// `clouds.yaml` (when `OS_CLOUD` is set) or the `OS_*` variables, unless it
/// has a `cloud.auth` of its own.
pub(super) fn fill(root: &mut Node, env: &BTreeMap<String, String>, sink: &Sink) {
    if root.get("cloud").and_then(|c| c.get("auth")).is_some() {
        return;
    }
    let (origin, settings) = match env.get("OS_CLOUD") {
        Some(name) => match from_clouds_yaml(name, env) {
            Ok((path, settings)) => (format!("{} (OS_CLOUD={name})", path.display()), settings),
            Err(message) => {
                sink.error(&Loc::Env("OS_CLOUD".into()), message);
                return;
            }
        },
        None => ("OS_* variables".to_string(), from_os_variables(env)),
    };
    if !settings
        .iter()
        .any(|(path, _)| path[..2] == ["cloud", "auth"])
    {
        return;
    }
    for (path, value) in settings {
        let exists = path
            .iter()
            .try_fold(&*root, |node, key| node.get(key))
            .is_some();
        if !exists {
            let path: Vec<String> = path.iter().map(|s| s.to_string()).collect();
            super::set_path(root, &path, Node::env_text(&origin, &value), &origin);
        }
    }
}

/// The settings of the `OS_*` variables.
fn from_os_variables(env: &BTreeMap<String, String>) -> Settings {
    let var = |names: &[&str]| names.iter().find_map(|n| env.get(*n).cloned());
    let mut out: Settings = Vec::new();
    let mut put = |path: &'static [&'static str], value: Option<String>| {
        if let Some(v) = value.filter(|v| !v.is_empty()) {
            out.push((path, v));
        }
    };
    put(&["cloud", "iam_endpoint"], var(&["OS_AUTH_URL"]));
    put(&["cloud", "region"], var(&["OS_REGION_NAME"]));
    put(
        &["cloud", "project_id"],
        var(&["OS_PROJECT_ID", "OS_TENANT_ID"]),
    );
    put(
        &["cloud", "project_name"],
        var(&["OS_PROJECT_NAME", "OS_TENANT_NAME"]),
    );
    out.extend(auth_settings(
        var(&["OS_ACCESS_KEY", "OS_AK"]),
        var(&["OS_SECRET_KEY", "OS_SK"]),
        var(&["OS_USERNAME"]),
        var(&[
            "OS_USER_DOMAIN_NAME",
            "OS_DOMAIN_NAME",
            "OS_PROJECT_DOMAIN_NAME",
        ]),
        var(&["OS_PASSWORD"]),
    ));
    out
}

/// `cloud.auth`: AK/SK when both keys are there, else a password login
/// when a user is; empty values count as missing.
fn auth_settings(
    ak: Option<String>,
    sk: Option<String>,
    user: Option<String>,
    domain: Option<String>,
    password: Option<String>,
) -> Settings {
    let some = |v: Option<String>| v.filter(|v| !v.is_empty());
    let fields: Vec<(&'static [&'static str], Option<String>)> =
        match (some(ak), some(sk), some(user)) {
            (Some(ak), Some(sk), _) => vec![
                (&["cloud", "auth", "method"], Some("aksk".into())),
                (&["cloud", "auth", "access_key"], Some(ak)),
                (&["cloud", "auth", "secret_key"], Some(sk)),
            ],
            (_, _, Some(user)) => vec![
                (&["cloud", "auth", "method"], Some("password".into())),
                (&["cloud", "auth", "user"], Some(user)),
                (&["cloud", "auth", "domain"], some(domain)),
                (&["cloud", "auth", "password"], some(password)),
            ],
            _ => Vec::new(),
        };
    fields
        .into_iter()
        .filter_map(|(p, v)| Some((p, v?)))
        .collect()
}

/// The settings of cloud `name` in the first `clouds.yaml` found, and that file.
fn from_clouds_yaml(
    name: &str,
    env: &BTreeMap<String, String>,
) -> Result<(PathBuf, Settings), String> {
    let paths = search_paths(env);
    let Some((path, text)) = paths
        .iter()
        .find_map(|p| std::fs::read_to_string(p).ok().map(|t| (p.clone(), t)))
    else {
        let searched: Vec<String> = paths.iter().map(|p| p.display().to_string()).collect();
        return Err(format!(
            "OS_CLOUD is `{name}` but no clouds.yaml was found (looked in {})",
            searched.join(", ")
        ));
    };
    // The file holds passwords: a parse error names the place, never the text.
    let root = yaml::parse(&text, &path).map_err(|d| {
        let place = match d.loc {
            Loc::At { line, column } => format!(":{line}:{column}"),
            _ => String::new(),
        };
        format!("{}{place}: not valid YAML", path.display())
    })?;
    let cloud = root
        .get("clouds")
        .and_then(|c| c.get(name))
        .ok_or_else(|| {
            format!(
                "{}: no cloud `{name}` under `clouds` (OS_CLOUD)",
                path.display()
            )
        })?;
    let auth = cloud.get("auth");
    let text = |node: Option<&Node>, key: &str| -> Option<String> {
        let v = node?.get(key)?;
        match &v.value {
            yaml::Value::Str { text, .. } => Some(text.clone()),
            yaml::Value::Int(i) => Some(i.to_string()),
            _ => None,
        }
        .filter(|t| !t.is_empty())
    };
    let mut out: Settings = Vec::new();
    let mut put = |path: &'static [&'static str], value: Option<String>| {
        if let Some(v) = value {
            out.push((path, v));
        }
    };
    put(&["cloud", "iam_endpoint"], text(auth, "auth_url"));
    put(&["cloud", "region"], text(Some(cloud), "region_name"));
    put(
        &["cloud", "project_id"],
        text(auth, "project_id").or(text(auth, "tenant_id")),
    );
    put(
        &["cloud", "project_name"],
        text(auth, "project_name").or(text(auth, "tenant_name")),
    );
    put(
        &["cloud", "evs_endpoint"],
        text(Some(cloud), "volumev2_endpoint_override")
            .or(text(Some(cloud), "block_storage_endpoint_override")),
    );
    put(
        &["cloud", "sdrs_endpoint"],
        text(Some(cloud), "sdrs_endpoint_override"),
    );
    out.extend(auth_settings(
        text(auth, "ak").or(text(auth, "access_key")),
        text(auth, "sk").or(text(auth, "secret_key")),
        text(auth, "username"),
        text(auth, "user_domain_name")
            .or(text(auth, "domain_name"))
            .or(text(auth, "project_domain_name")),
        text(auth, "password"),
    ));
    Ok((path, out))
}

#[cfg(test)]
mod tests {
    use super::super::tests::{messages, parse};
    use super::super::{CloudAuth, Config, Diagnostic};
    use secrecy::ExposeSecret;

    const CLOUDS: &str = "clouds:\n  otc:\n    auth:\n      auth_url: https://iam.eu-de.otc.t-systems.com:443/v3\n      username: alice\n      password: 'clouds-s3cret'\n      project_name: eu-de_dr\n      user_domain_name: OTC00000000001000000001\n    region_name: eu-de\n  keys:\n    auth:\n      auth_url: https://iam.eu-nl.otc.t-systems.com/v3\n      ak: AKCLOUDS\n      sk: 'sk-s3cret'\n      project_id: 0123456789abcdef0123456789abcdef\n    region_name: eu-nl\n    volumev2_endpoint_override: https://evs.eu-nl.otc.t-systems.com/v2/%(project_id)s\n    sdrs_endpoint_override: https://sdrs.eu-nl.otc.t-systems.com/v1/$(tenant_id)s\n";

    fn with_clouds(
        config: &str,
        env: &[(&str, &str)],
    ) -> (Result<Config, Vec<Diagnostic>>, tempfile::TempDir) {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("clouds.yaml");
        std::fs::write(&file, CLOUDS).unwrap();
        let file = file.display().to_string();
        let mut env = env.to_vec();
        env.push(("OS_CLIENT_CONFIG_FILE", &file));
        (parse(config, &env), dir)
    }

    #[test]
    fn a_password_cloud_of_clouds_yaml() {
        let (config, _dir) = with_clouds("", &[("OS_CLOUD", "otc")]);
        let cloud = config.unwrap().cloud;
        assert_eq!(
            cloud.iam_endpoint,
            "https://iam.eu-de.otc.t-systems.com:443"
        );
        assert_eq!(cloud.region, "eu-de");
        assert_eq!(cloud.project_name.as_deref(), Some("eu-de_dr"));
        let CloudAuth::Password {
            user,
            domain,
            password,
        } = &cloud.auth
        else {
            panic!("{:?}", cloud.auth);
        };
        assert_eq!(
            (user.as_str(), domain.as_str()),
            ("alice", "OTC00000000001000000001")
        );
        assert_eq!(password.expose_secret(), "clouds-s3cret");
        assert!(
            !format!("{cloud:?}").contains("clouds-s3cret"),
            "hidden in Debug"
        );
    }

    #[test]
    fn an_aksk_cloud_with_endpoint_overrides() {
        let (config, _dir) = with_clouds("", &[("OS_CLOUD", "keys")]);
        let cloud = config.unwrap().cloud;
        let CloudAuth::AkSk {
            access_key,
            secret_key,
        } = &cloud.auth
        else {
            panic!("{:?}", cloud.auth);
        };
        assert_eq!(
            (access_key.expose_secret(), secret_key.expose_secret()),
            ("AKCLOUDS", "sk-s3cret")
        );
        assert_eq!(
            cloud.project_id.as_deref(),
            Some("0123456789abcdef0123456789abcdef")
        );
        assert_eq!(
            cloud.evs_endpoint.as_deref(),
            Some("https://evs.eu-nl.otc.t-systems.com")
        );
        assert_eq!(
            cloud.sdrs_endpoint.as_deref(),
            Some("https://sdrs.eu-nl.otc.t-systems.com")
        );
        assert_eq!(cloud.region, "eu-nl");
    }

    #[test]
    fn os_variables_for_a_password_or_keys() {
        let env = [
            ("OS_AUTH_URL", "https://iam.eu-de.otc.t-systems.com/v3"),
            ("OS_USERNAME", "bob"),
            ("OS_PASSWORD", "os-s3cret"),
            ("OS_USER_DOMAIN_NAME", "OTC-EU-DE-1"),
            ("OS_PROJECT_NAME", "eu-de"),
            ("OS_REGION_NAME", "eu-de"),
        ];
        let cloud = parse("", &env).unwrap().cloud;
        let CloudAuth::Password {
            user,
            domain,
            password,
        } = &cloud.auth
        else {
            panic!("{:?}", cloud.auth);
        };
        assert_eq!(
            (user.as_str(), domain.as_str(), password.expose_secret()),
            ("bob", "OTC-EU-DE-1", "os-s3cret")
        );
        assert_eq!(cloud.project_name.as_deref(), Some("eu-de"));
        let keys = [
            ("OS_ACCESS_KEY", "AKENV"),
            ("OS_SECRET_KEY", "sk-env"),
            ("OS_PROJECT_ID", "p1"),
        ];
        let cloud = parse("", &keys).unwrap().cloud;
        assert!(
            matches!(cloud.auth, CloudAuth::AkSk { .. }),
            "{:?}",
            cloud.auth
        );
        assert_eq!(cloud.project_id.as_deref(), Some("p1"));
    }

    #[test]
    fn drover_settings_come_first_and_own_credentials_are_not_mixed() {
        // The file's region and a DROVER_ variable beat clouds.yaml; its
        // credentials fill in what is missing.
        let (config, _dir) = with_clouds(
            "cloud:\n  region: eu-ch2\n",
            &[("OS_CLOUD", "otc"), ("DROVER_CLOUD__PROJECT_NAME", "mine")],
        );
        let cloud = config.unwrap().cloud;
        assert_eq!(cloud.region, "eu-ch2");
        assert_eq!(cloud.project_name.as_deref(), Some("mine"));
        assert!(matches!(cloud.auth, CloudAuth::Password { .. }));
        // A config with its own cloud.auth ignores clouds.yaml and OS_* entirely.
        let (config, _dir) = with_clouds(
            "cloud:\n  auth: { method: token }\n",
            &[("OS_CLOUD", "otc"), ("DROVER_CLOUD__AUTH__TOKEN", "t")],
        );
        let cloud = config.unwrap().cloud;
        assert!(matches!(cloud.auth, CloudAuth::Token(_)));
        assert_eq!(cloud.project_name, None);
        assert_eq!(cloud.iam_endpoint, "https://iam.eu-de.otc.t-systems.com");
    }

    #[test]
    fn a_missing_cloud_or_file_is_named_and_secrets_are_never_quoted() {
        let (config, _dir) = with_clouds("", &[("OS_CLOUD", "prod")]);
        let m = messages(config);
        assert!(
            m.iter()
                .any(|e| e.contains("no cloud `prod` under `clouds`")),
            "{m:?}"
        );
        let m = messages(parse(
            "",
            &[
                ("OS_CLOUD", "otc"),
                ("OS_CLIENT_CONFIG_FILE", "/nonexistent/clouds.yaml"),
            ],
        ));
        assert!(
            m.iter().any(
                |e| e.contains("no clouds.yaml was found (looked in /nonexistent/clouds.yaml)")
            ),
            "{m:?}"
        );

        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("clouds.yaml");
        std::fs::write(
            &file,
            "clouds:\n  otc:\n    auth: { password: 'leaky-s3cret'\n",
        )
        .unwrap();
        let file = file.display().to_string();
        let m = messages(parse(
            "",
            &[("OS_CLOUD", "otc"), ("OS_CLIENT_CONFIG_FILE", &file)],
        ));
        assert!(m.iter().any(|e| e.contains("not valid YAML")), "{m:?}");
        assert!(m.iter().all(|e| !e.contains("leaky-s3cret")), "{m:?}");
    }
}
