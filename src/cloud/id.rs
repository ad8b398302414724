//! The cloud's identifier syntax, checked wherever an id enters drover (a
//! runbook literal, a run parameter, a rendered template, the client itself)
//! and encoded wherever it becomes part of a URL path.
//!
//! OTC ids are UUIDs or 32 hex characters; the check is the wider
//! `[A-Za-z0-9-]{1,64}`, which keeps every real id and rules out what could
//! change a request's meaning: `/`, `.` segments, `?`, `#`, `%`, spaces.

use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};

/// The longest id accepted.
pub const MAX_LEN: usize = 64;

/// The longest DR drill name accepted (the drill API's limit).
pub const MAX_NAME_LEN: usize = 64;

/// [`check`] as a JSON Schema pattern, for the API's documents.
pub const PATTERN: &str = "^[A-Za-z0-9-]{1,64}$";
/// [`check_name`] as a JSON Schema pattern.
pub const NAME_PATTERN: &str = "^[A-Za-z0-9._-]{1,64}$";

/// Checks `value` as a cloud id; the reason if it is not one.
pub fn check(value: &str) -> Result<(), String> {
    if value.is_empty() {
        return Err("an id cannot be empty".into());
    }
    if value.len() > MAX_LEN {
        return Err(format!(
            "an id has at most {MAX_LEN} characters, this one has {}",
            value.len()
        ));
    }
    if let Some(bad) = value
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || *c == '-'))
    {
        return Err(format!(
            "`{}` is not an id: only letters, digits and `-` are allowed, found {bad:?}",
            shown(value)
        ));
    }
    Ok(())
}

/// Checks a DR drill name: 1 to [`MAX_NAME_LEN`] letters, digits, `-`, `_` or `.`.
pub fn check_name(value: &str) -> Result<(), String> {
    check_word("drill name", value)
}

/// Checks a name of `what` (a drill, an AZ, a group name filter): 1 to 64
/// letters, digits, `-`, `_` and `.`.
pub fn check_word(what: &str, value: &str) -> Result<(), String> {
    if value.is_empty() || value.chars().count() > MAX_NAME_LEN {
        return Err(format!(
            "a {what} has 1 to {MAX_NAME_LEN} characters, this one has {}",
            value.chars().count()
        ));
    }
    if let Some(bad) = value
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.')))
    {
        return Err(format!(
            "`{}` is not a {what}: only letters, digits, `-`, `_` and `.` are allowed, found {bad:?}",
            shown(value)
        ));
    }
    Ok(())
}

/// The form leases use: ids are compared without regard to case.
pub fn canonical(value: &str) -> String {
    value.trim().to_ascii_lowercase()
}

/// Everything but letters, digits and `-` is encoded in a path segment.
const SEGMENT: &AsciiSet = &NON_ALPHANUMERIC.remove(b'-');

/// `value` encoded as one URL path segment: it can never add a segment, a
/// query or a fragment, even if a check upstream was missed.
pub fn segment(value: &str) -> String {
    utf8_percent_encode(value, SEGMENT).to_string()
}

/// `value` checked and encoded for the path of `request` (`GET server-group`);
/// a bad id is a fatal error that is never retried and never sent.
pub fn in_path(request: &str, value: &str) -> Result<String, super::CloudError> {
    check(value).map_err(|why| super::CloudError {
        request: request.to_string(),
        status: None,
        code: None,
        message: format!("not sent: {why}"),
        request_id: None,
        reach: super::Reach::NotSent,
        retry_after: None,
    })?;
    Ok(segment(value))
}

/// At most 80 characters of a bad value, for messages.
fn shown(value: &str) -> String {
    let mut out: String = value.chars().take(80).collect();
    if value.chars().count() > 80 {
        out.push('…');
    }
    out.escape_debug().to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_patterns_say_what_the_checks_do() {
        let matches = |pattern: &str, value: &str| {
            jsonschema::is_valid(
                &serde_json::json!({ "type": "string", "pattern": pattern }),
                &serde_json::json!(value),
            )
        };
        let long = "a".repeat(MAX_LEN + 1);
        for value in [
            "g1",
            "",
            "a-b",
            "a.b",
            "a_b",
            "a b",
            "g1/..",
            "ü",
            "x\n",
            &long,
            &long[1..],
        ] {
            assert_eq!(matches(PATTERN, value), check(value).is_ok(), "{value:?}");
            assert_eq!(
                matches(NAME_PATTERN, value),
                check_name(value).is_ok(),
                "{value:?}"
            );
        }
    }

    #[test]
    fn ids_are_checked() {
        let cases: &[(&str, bool, &str)] = &[
            ("0a1b2c3d-4e5f-6789-abcd-ef0123456789", true, "a UUID"),
            ("5a04b3c8c6e343c9b8e8bd5e8f1ed6ee", true, "32 hex"),
            ("g1", true, "a short simulator id"),
            ("", false, "empty"),
            ("g2/../g1", false, "dot segments"),
            ("g1?x=1", false, "a query string"),
            ("g1/", false, "a trailing slash"),
            ("g1#frag", false, "a fragment"),
            ("g%2F1", false, "an encoded slash"),
            (" g1", false, "a space"),
            ("g\u{0}1", false, "a NUL"),
            ("ä", false, "non-ASCII"),
        ];
        for (value, ok, why) in cases {
            assert_eq!(check(value).is_ok(), *ok, "{why}: {value:?}");
        }
        assert!(check(&"a".repeat(MAX_LEN)).is_ok(), "the longest id");
        let long = check(&"a".repeat(1_900_000)).unwrap_err();
        assert!(
            long.contains("at most 64") && long.len() < 200,
            "a huge id is refused without echoing it: {long}"
        );
    }

    #[test]
    fn drill_names_are_checked() {
        assert!(check_name("drill-2026_11.29").is_ok());
        assert!(check_name("a/b").is_err());
        assert!(check_name("").is_err());
        assert!(check_name(&"d".repeat(65)).is_err());
    }

    #[test]
    fn segments_cannot_escape_their_place() {
        assert_eq!(segment("g1"), "g1");
        assert_eq!(segment("g2/../g1"), "g2%2F%2E%2E%2Fg1");
        assert_eq!(segment("g1?x=1"), "g1%3Fx%3D1");
        assert_eq!(canonical("AbC-1"), "abc-1");
    }
}
