//! One error type for every failed cloud call, parsed from every documented
//! error body, with how far the call got (the fact the engine's one retry
//! decision reads).
//!
//! OTC answers errors in several shapes: `{"error": {message, code}}` and the
//! same under a fault name (`badRequest`, `badrequest`, `itemNotFound`, ...),
//! the API gateway's `{error_msg, error_code, request_id}`, IAM's Keystone form
//! with a numeric `code`, and plain `{code, message}`. `code` may be a number or
//! a string. Nothing here ever holds a credential: requests are named by method
//! and path only.

use std::fmt;
use std::time::Duration;

use serde_json::Value;

/// How far a failed call got. The engine's retry decision
/// (`engine::retry::retryable`) reads it with the step's policy.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Reach {
    /// Refused before sending (a bad id, no credentials): trying again cannot help.
    NotSent,
    /// The connection was never made: the request did not leave.
    Unreached,
    /// Sent (or possibly sent), then no answer came: a change may have been made.
    Unanswered,
    /// The cloud answered, with an error status or a body drover cannot read.
    Answered,
}

/// A failed cloud call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CloudError {
    /// `METHOD path` of the request (never headers, bodies or query secrets).
    pub request: String,
    /// HTTP status, or `None` when no answer came (transport error).
    pub status: Option<u16>,
    /// The cloud's error code (`SDRS.1013`, `EVS.5404`, `APIG.0303`, `400`).
    pub code: Option<String>,
    /// The cloud's message, or what went wrong in transport.
    pub message: String,
    /// Request id for support cases, from the body or the response headers.
    pub request_id: Option<String>,
    /// How far the call got.
    pub reach: Reach,
    /// Wait asked for by a `Retry-After` header.
    pub retry_after: Option<Duration>,
}

impl fmt::Display for CloudError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ", self.request)?;
        match self.status {
            Some(status) => write!(f, "answered {status}")?,
            None => f.write_str("failed")?,
        }
        if let Some(code) = &self.code {
            write!(f, " {code}")?;
        }
        write!(f, ": {}", self.message)?;
        if let Some(id) = &self.request_id {
            write!(f, " (request id {id})")?;
        }
        Ok(())
    }
}

impl std::error::Error for CloudError {}

impl CloudError {
    /// A failure before `request` left the process (nothing reached the cloud).
    pub fn not_sent(request: &str, message: &str) -> CloudError {
        CloudError {
            request: request.to_string(),
            status: None,
            code: None,
            message: message.to_string(),
            request_id: None,
            reach: Reach::NotSent,
            retry_after: None,
        }
    }
}

/// Code, message and request id read from an error body.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ErrorBody {
    /// Error code, numbers turned into text.
    pub code: Option<String>,
    pub message: Option<String>,
    /// Request id from the body (API gateway errors carry one).
    pub request_id: Option<String>,
}

/// Reads any documented error body shape. Never fails: unknown bodies give
/// their text (shortened) as the message.
pub fn parse_body(body: &[u8]) -> ErrorBody {
    let Ok(json) = serde_json::from_slice::<Value>(body) else {
        let text = String::from_utf8_lossy(body).trim().to_string();
        return ErrorBody {
            message: (!text.is_empty()).then(|| crate::yaml::truncate(&text, 300)),
            ..ErrorBody::default()
        };
    };
    let Some(object) = json.as_object() else {
        return ErrorBody::default();
    };
    // API gateway: {"error_msg", "error_code", "request_id"}.
    if object.contains_key("error_msg") || object.contains_key("error_code") {
        return ErrorBody {
            code: object.get("error_code").and_then(text),
            message: object.get("error_msg").and_then(text),
            request_id: object.get("request_id").and_then(text),
        };
    }
    // Flat {"code", "message"} (SDRS job request errors).
    if object.contains_key("message") || object.contains_key("code") {
        return ErrorBody {
            code: object.get("code").and_then(text),
            message: object.get("message").and_then(text),
            request_id: object.get("request_id").and_then(text),
        };
    }
    // One wrapper key ("error", "badRequest", "badrequest", "itemNotFound", ...)
    // around {message, code}.
    for inner in object.values() {
        if let Some(inner) = inner.as_object()
            && (inner.contains_key("message") || inner.contains_key("code"))
        {
            return ErrorBody {
                code: inner.get("code").and_then(text),
                message: inner.get("message").and_then(text),
                request_id: inner.get("request_id").and_then(text),
            };
        }
    }
    ErrorBody {
        message: Some(crate::yaml::truncate(&json.to_string(), 300)),
        ..ErrorBody::default()
    }
}

/// The longest code, message or request id kept from an error body: a huge
/// answer must not flood the audit trail or the logs.
pub const MAX_FIELD_CHARS: usize = 1000;

fn text(v: &Value) -> Option<String> {
    match v {
        Value::String(s) if !s.is_empty() => Some(crate::yaml::truncate(s, MAX_FIELD_CHARS)),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

/// Reads `Retry-After` as seconds (the form OTC gateways use); HTTP dates are ignored.
pub fn parse_retry_after(value: &str) -> Option<Duration> {
    value.trim().parse::<u64>().ok().map(Duration::from_secs)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_documented_error_shape_is_parsed() {
        type Case<'a> = (
            &'a str,
            &'a str,
            Option<&'a str>,
            Option<&'a str>,
            Option<&'a str>,
        );
        let cases: &[Case] = &[
            (
                "EVS/Cinder error",
                r#"{"error": {"message": "XXXX", "code": "XXX"}}"#,
                Some("XXX"),
                Some("XXXX"),
                None,
            ),
            (
                "EVS badRequest, numeric code",
                r#"{"badRequest": {"message": "Invalid volume", "code": 400}}"#,
                Some("400"),
                Some("Invalid volume"),
                None,
            ),
            (
                "SDRS lowercase badrequest",
                r#"{"badrequest": {"message": "server group not found", "code": "SDRS.1013"}}"#,
                Some("SDRS.1013"),
                Some("server group not found"),
                None,
            ),
            (
                "EVS itemNotFound",
                r#"{"itemNotFound": {"message": "not found", "code": "EVS.5404"}}"#,
                Some("EVS.5404"),
                Some("not found"),
                None,
            ),
            (
                "API gateway",
                r#"{"error_msg": "Incorrect app authentication information: signature expired", "error_code": "APIG.0303", "request_id": "fd6530a01c09807640189e65e837b8ad"}"#,
                Some("APIG.0303"),
                Some("Incorrect app authentication information: signature expired"),
                Some("fd6530a01c09807640189e65e837b8ad"),
            ),
            (
                "IAM Keystone",
                r#"{"error": {"message": "Could not find agency", "code": 404, "title": "Not Found"}}"#,
                Some("404"),
                Some("Could not find agency"),
                None,
            ),
            (
                "flat code/message",
                r#"{"code": "SDRS.0002", "message": "token expired"}"#,
                Some("SDRS.0002"),
                Some("token expired"),
                None,
            ),
            (
                "HTML from a proxy",
                "<html>Bad Gateway</html>",
                None,
                Some("<html>Bad Gateway</html>"),
                None,
            ),
            ("empty body", "", None, None, None),
        ];
        for (name, body, code, message, request_id) in cases {
            let got = parse_body(body.as_bytes());
            assert_eq!(got.code.as_deref(), *code, "{name}: code");
            assert_eq!(got.message.as_deref(), *message, "{name}: message");
            assert_eq!(got.request_id.as_deref(), *request_id, "{name}: request id");
        }
    }

    #[test]
    fn huge_fields_are_shortened() {
        let body = serde_json::json!({ "error": { "message": "m".repeat(100_000), "code": "c".repeat(5000) } });
        let parsed = parse_body(body.to_string().as_bytes());
        assert_eq!(parsed.message.unwrap().chars().count(), MAX_FIELD_CHARS + 3);
        assert_eq!(parsed.code.unwrap().chars().count(), MAX_FIELD_CHARS + 3);
    }

    #[test]
    fn display_names_request_status_code_and_request_id() {
        let e = CloudError {
            request: "POST /v1/p/server-groups/g/action".into(),
            status: Some(400),
            code: Some("SDRS.1002".into()),
            message: "operation not allowed".into(),
            request_id: Some("abc".into()),
            reach: Reach::Answered,
            retry_after: None,
        };
        assert_eq!(
            e.to_string(),
            "POST /v1/p/server-groups/g/action answered 400 SDRS.1002: operation not allowed (request id abc)"
        );
        assert_eq!(parse_retry_after(" 7 "), Some(Duration::from_secs(7)));
        assert_eq!(parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT"), None);
    }
}
