//! Runbook text through parsing and validation, and a valid runbook through
//! the start-time identifier checks: never a panic, whatever the text.
#![no_main]

use std::collections::BTreeMap;
use std::path::Path;

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(runbook) = drover::runbook::parse(text, Path::new("fuzz.yaml")) {
        let params: BTreeMap<String, String> = runbook
            .params
            .iter()
            .map(|p| (p.name.clone(), text.chars().take(80).collect()))
            .collect();
        let env = BTreeMap::new();
        let _ = runbook.resolve_params(&params);
        let _ = drover::engine::run::check_identifiers(&runbook, &params, &env);
        let _ = drover::engine::run::targets(&runbook, &params, &env);
    }
});
