//! The shipped example config and its environment overrides.

use crate::helpers::repo;

#[test]
fn shipped_example_config_loads_with_the_password_from_the_environment() {
    use drover::config::{CloudAuth, Config};
    let env = [(
        "DROVER_CLOUD__AUTH__PASSWORD".to_string(),
        "from-env".to_string(),
    )]
    .into();
    let config = Config::load_with_env(Some(&repo("config/drover.yaml")), &env)
        .unwrap_or_else(|e| panic!("{e:#?}"));
    assert!(matches!(config.cloud.auth, CloudAuth::Password { .. }));
    assert_eq!(
        config.cloud.project_id.as_deref(),
        Some("0123456789abcdef0123456789abcdef")
    );
    // Without the secret the config still loads (audit commands need no cloud),
    // and building a client names the missing variable.
    let config =
        Config::load_with_env(Some(&repo("config/drover.yaml")), &Default::default()).unwrap();
    let err = drover::cloud::CloudClient::new(&config.cloud)
        .unwrap_err()
        .to_string();
    assert!(err.contains("DROVER_CLOUD__AUTH__PASSWORD"), "{err}");
}
