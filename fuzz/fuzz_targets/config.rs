//! Config text with environment overrides (lines `DROVER_...=value` before a
//! `---` line): never a panic, and never a secret in an error message.
#![no_main]

use std::collections::BTreeMap;
use std::path::Path;

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let (head, yaml) = text.split_once("\n---\n").unwrap_or(("", text));
    let mut env: BTreeMap<String, String> = head
        .lines()
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    env.insert(
        "DROVER_CLOUD__AUTH__PASSWORD".into(),
        "fuzz-secret-7f3a".into(),
    );
    if let Err(errors) = drover::config::Config::parse(yaml, Path::new("fuzz.yaml"), &env) {
        for e in errors {
            assert!(!e.to_string().contains("fuzz-secret-7f3a"), "{e}");
        }
    }
});
