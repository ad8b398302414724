//! The shipped example config and its environment overrides.

use crate::helpers::repo;

#[test]
fn shipped_example_config_pins_nothing_that_defeats_openstack_credentials() {
    use drover::config::{CloudAuth, Config};
    let shipped = repo("config/drover.yaml");
    // It loads with nothing set (audit commands need no cloud) ...
    let config = Config::load_with_env(Some(&shipped), &Default::default())
        .unwrap_or_else(|e| panic!("{e:#?}"));
    assert!(matches!(config.cloud.auth, CloudAuth::None));
    assert_eq!(config.cloud.evs_endpoint, None, "EVS from the catalog");
    assert_eq!(config.cloud.project_id, None);
    // ... and the OS_* variables an OpenStack user already has are used.
    let env = [
        ("OS_AUTH_URL", "https://iam.eu-de.otc.t-systems.com/v3"),
        ("OS_USERNAME", "alice"),
        ("OS_PASSWORD", "from-env"),
        ("OS_USER_DOMAIN_NAME", "OTC00000000001000000001"),
        ("OS_PROJECT_NAME", "eu-de"),
    ]
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .into();
    let config = Config::load_with_env(Some(&shipped), &env).unwrap();
    assert!(matches!(config.cloud.auth, CloudAuth::Password { ref user, .. } if user == "alice"));
    // drover's own variables still work on their own.
    let env = [
        ("DROVER_CLOUD__AUTH__METHOD", "password"),
        ("DROVER_CLOUD__AUTH__USER", "bob"),
        ("DROVER_CLOUD__AUTH__DOMAIN", "d"),
    ]
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .into();
    let config = Config::load_with_env(Some(&shipped), &env).unwrap();
    let err = drover::cloud::CloudClient::new(&config.cloud)
        .unwrap_err()
        .to_string();
    assert!(err.contains("DROVER_CLOUD__AUTH__PASSWORD"), "{err}");
}
