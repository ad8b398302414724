//! The runbook language: shipped runbooks are valid, every invalid fixture
//! reports exactly its expected errors at their exact places, the CLI exit
//! codes, the JSON Schema, and no panic on any input.

use std::path::{Path, PathBuf};

use drover::runbook;
use proptest::prelude::*;

use crate::helpers::{drover, repo, stdout};

/// `# expect: LINE:COL phrase` lines at the end of a fixture (`-` for no position).
fn expectations(path: &Path) -> Vec<(String, String)> {
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .filter_map(|l| l.strip_prefix("# expect: "))
        .map(|e| {
            let (pos, phrase) = e.split_once(' ').expect("`# expect: L:C phrase`");
            (pos.to_string(), phrase.to_string())
        })
        .collect()
}

fn invalid_fixtures() -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(repo("tests/fixtures/invalid"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    files
}

#[test]
fn every_invalid_fixture_reports_exactly_its_expected_errors() {
    let files = invalid_fixtures();
    assert!(
        files.len() >= 30,
        "at least 30 kinds of mistake, found {}",
        files.len()
    );
    for file in files {
        let want = expectations(&file);
        assert!(
            !want.is_empty(),
            "{} has no `# expect:` lines",
            file.display()
        );
        let got = runbook::load(&file).expect_err(&format!("{} must be invalid", file.display()));
        assert_eq!(
            got.len(),
            want.len(),
            "{}: got {:#?}",
            file.display(),
            got.iter().map(ToString::to_string).collect::<Vec<_>>()
        );
        for (diagnostic, (pos, phrase)) in got.iter().zip(&want) {
            let at = match (diagnostic.loc.line(), diagnostic.loc.column()) {
                (Some(l), Some(c)) => format!("{l}:{c}"),
                _ => "-".to_string(),
            };
            assert_eq!(&at, pos, "{}: position of `{phrase}`", file.display());
            let text = diagnostic.to_string();
            assert!(
                text.contains(phrase),
                "{}: `{text}` lacks `{phrase}`",
                file.display()
            );
            assert!(
                text.starts_with(&file.display().to_string()),
                "the message names the file: {text}"
            );
        }
    }
}

#[test]
fn errors_inside_a_step_name_the_step() {
    let errs = runbook::load(&repo("tests/fixtures/invalid/multiple-errors.yaml")).unwrap_err();
    let texts: Vec<String> = errs.iter().map(ToString::to_string).collect();
    assert!(
        texts
            .iter()
            .any(|t| t.contains(":8:13: step `precheck`: unknown action")),
        "{texts:#?}"
    );
    assert!(
        texts
            .iter()
            .any(|t| t.contains(":15:14: step `verify`: invalid duration")),
        "{texts:#?}"
    );
}

#[test]
fn shipped_runbooks_are_valid() {
    let files = runbook::find_files(&[repo("runbooks")]).unwrap();
    let names: Vec<String> = files
        .iter()
        .map(|f| {
            runbook::load(f)
                .unwrap_or_else(|e| panic!("{}: {e:#?}", f.display()))
                .name
        })
        .collect();
    for want in [
        "evs-switchover",
        "evs-failover",
        "evs-round-trip-drill",
        "sdrs-switchover",
        "sdrs-failover",
        "sdrs-drill",
        "evs-az-switchover",
        "sdrs-az-switchover",
    ] {
        assert!(names.iter().any(|n| n == want), "{want} is shipped");
    }
}

#[test]
fn validate_command_exits_zero_for_the_shipped_runbooks() {
    let out = drover(&["validate", "runbooks/"]);
    assert!(out.status.success(), "{}", stdout(&out));
    assert!(
        stdout(&out).contains("8 runbook(s) valid"),
        "{}",
        stdout(&out)
    );
}

#[test]
fn validate_command_prints_every_error_and_fails() {
    let fixture = "tests/fixtures/invalid/multiple-errors.yaml";
    let out = drover(&["validate", fixture]);
    assert_eq!(out.status.code(), Some(1));
    let text = stdout(&out);
    let errors = text.lines().filter(|l| l.starts_with("error ")).count();
    assert_eq!(errors, expectations(&repo(fixture)).len(), "{text}");
    assert!(
        text.contains("1 of 1 runbook file(s) invalid, 8 error(s)"),
        "{text}"
    );
}

#[test]
fn validate_json_output_lists_errors_with_positions() {
    let out = drover(&[
        "validate",
        "--json",
        "tests/fixtures/invalid/unknown-action.yaml",
        "runbooks/evs-switchover.yaml",
    ]);
    assert_eq!(out.status.code(), Some(1));
    let reports: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let bad = &reports[0];
    assert_eq!(bad["valid"], false);
    assert_eq!(bad["errors"][0]["line"], 7);
    assert_eq!(bad["errors"][0]["column"], 13);
    assert_eq!(bad["errors"][0]["step"], "verify");
    assert_eq!(reports[1]["valid"], true);
    assert_eq!(reports[1]["runbook"]["name"], "evs-switchover");
}

#[test]
fn two_files_with_one_runbook_name_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let text = std::fs::read_to_string(repo("runbooks/evs-switchover.yaml")).unwrap();
    std::fs::write(dir.path().join("a.yaml"), &text).unwrap();
    std::fs::write(dir.path().join("b.yaml"), &text).unwrap();
    let out = drover(&["validate", dir.path().to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stdout(&out).contains("runbook name `evs-switchover` is already used by"),
        "{}",
        stdout(&out)
    );
}

#[test]
fn every_shipped_runbook_validates_against_the_schema() {
    let out = drover(&["schema"]);
    assert!(out.status.success());
    let schema: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let validator = jsonschema::validator_for(&schema).expect("the schema is a valid JSON Schema");
    for file in runbook::find_files(&[repo("runbooks")]).unwrap() {
        let text = std::fs::read_to_string(&file).unwrap();
        let doc = drover::yaml::parse(&text, &file).unwrap().to_json();
        let errors: Vec<String> = validator
            .iter_errors(&doc)
            .map(|e| format!("{} at {}", e, e.instance_path()))
            .collect();
        assert!(errors.is_empty(), "{}: {errors:#?}", file.display());
    }
    // And the schema is not vacuous: a misspelt action and key are rejected.
    let bad = serde_json::json!({"name": "x", "kind": "drill", "steps": [{"id": "a", "action": "evs.wait", "wiht": {}}]});
    assert!(!validator.is_valid(&bad));
    let bad_with = serde_json::json!({"name": "x", "kind": "drill", "steps": [{"id": "a", "action": "sleep", "with": {"duraton": "1s"}}]});
    assert!(
        !validator.is_valid(&bad_with),
        "with-blocks are checked per action"
    );
}

fn shipped_texts() -> Vec<String> {
    runbook::find_files(&[repo("runbooks")])
        .unwrap()
        .iter()
        .map(|f| std::fs::read_to_string(f).unwrap())
        .collect()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 400, ..ProptestConfig::default() })]

    /// Arbitrary text never panics the parser.
    #[test]
    fn random_text_never_panics(text in "\\PC{0,400}") {
        let _ = runbook::parse(&text, Path::new("fuzz.yaml"));
    }

    /// YAML-ish noise (indentation, flow markers, anchors, templates) never panics.
    #[test]
    fn yaml_like_noise_never_panics(text in "([a-z_]{1,8}: |  - |\\{|\\}|\\[|\\]|&a |\\*a |\\{\\{ |\\}\\} |\"|'|\n|#|: |[0-9]{1,3}|yes|~){0,80}") {
        let _ = runbook::parse(&text, Path::new("fuzz.yaml"));
    }

    /// Every truncation of a shipped runbook either validates or reports located errors.
    #[test]
    fn truncated_runbooks_fail_cleanly(index in 0usize..6, cut in 0.0f64..1.0) {
        let texts = shipped_texts();
        let text = &texts[index % texts.len()];
        let mut at = (text.len() as f64 * cut) as usize;
        while !text.is_char_boundary(at) { at -= 1; }
        if let Err(errors) = runbook::parse(&text[..at], Path::new("cut.yaml")) {
            prop_assert!(!errors.is_empty());
        }
    }

    /// Replacing one byte of a shipped runbook never panics.
    #[test]
    fn mutated_runbooks_never_panic(index in 0usize..6, pos in 0.0f64..1.0, byte in any::<u8>()) {
        let texts = shipped_texts();
        let mut bytes = texts[index % texts.len()].clone().into_bytes();
        let at = ((bytes.len() - 1) as f64 * pos) as usize;
        bytes[at] = byte;
        if let Ok(text) = String::from_utf8(bytes) {
            let _ = runbook::parse(&text, Path::new("mutated.yaml"));
        }
    }
}
