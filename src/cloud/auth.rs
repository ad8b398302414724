//! Request authentication: AK/SK signing (`SDK-HMAC-SHA256`, the documented
//! `Access=` form) and the cached IAM token's refresh rule.
//!
//! Keys are taken as `SecretString` and exposed only to compute the HMAC; no
//! function here returns or formats a secret.

use std::time::Duration;

use chrono::{DateTime, Utc};
use hmac::{Hmac, KeyInit, Mac};
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};
use secrecy::{ExposeSecret, SecretString};
use sha2::{Digest, Sha256};

/// The signing algorithm name, first word of the `Authorization` header.
pub const ALGORITHM: &str = "SDK-HMAC-SHA256";
/// Refresh a token this long before it expires (near-expiry tokens may fail).
pub const TOKEN_REFRESH_MARGIN: Duration = Duration::from_secs(5 * 60);

/// RFC 3986 unreserved characters stay, everything else is encoded.
const UNRESERVED: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'~');

/// What is signed of a request.
#[derive(Debug, Clone)]
pub struct SignInput<'a> {
    /// HTTP method.
    pub method: &'a str,
    /// URL path, not yet encoded (e.g. `/v1/{project}/server-groups`).
    pub path: &'a str,
    /// Query parameters, not yet encoded.
    pub query: &'a [(String, String)],
    /// Headers to sign (name, value); must include `host` and `x-sdk-date`.
    pub headers: &'a [(String, String)],
    /// Exact body bytes.
    pub body: &'a [u8],
}

fn encode(text: &str) -> String {
    utf8_percent_encode(text, UNRESERVED).to_string()
}

/// The canonical request text that is hashed and signed.
pub fn canonical_request(input: &SignInput<'_>) -> String {
    let mut uri: String = input
        .path
        .split('/')
        .map(encode)
        .collect::<Vec<_>>()
        .join("/");
    if !uri.ends_with('/') {
        uri.push('/');
    }
    let mut query: Vec<(String, String)> = input
        .query
        .iter()
        .map(|(k, v)| (encode(k), encode(v)))
        .collect();
    query.sort();
    let query = query
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join("&");
    let mut headers: Vec<(String, String)> = input
        .headers
        .iter()
        .map(|(k, v)| (k.to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    headers.sort();
    let canonical_headers: String = headers.iter().map(|(k, v)| format!("{k}:{v}\n")).collect();
    format!(
        "{}\n{uri}\n{query}\n{canonical_headers}\n{}\n{}",
        input.method.to_ascii_uppercase(),
        signed_headers(&headers),
        hex::encode(Sha256::digest(input.body))
    )
}

fn signed_headers(sorted: &[(String, String)]) -> String {
    sorted
        .iter()
        .map(|(k, _)| k.as_str())
        .collect::<Vec<_>>()
        .join(";")
}

/// The `Authorization` header value for a request signed with AK/SK. `date` is
/// the request's `X-Sdk-Date` (`YYYYMMDDTHHMMSSZ`), also among `input.headers`.
pub fn authorization(
    access_key: &SecretString,
    secret_key: &SecretString,
    date: &str,
    input: &SignInput<'_>,
) -> String {
    let canonical = canonical_request(input);
    let string_to_sign = format!(
        "{ALGORITHM}\n{date}\n{}",
        hex::encode(Sha256::digest(canonical.as_bytes()))
    );
    let mut mac = Hmac::<Sha256>::new_from_slice(secret_key.expose_secret().as_bytes())
        .expect("HMAC accepts keys of any length");
    mac.update(string_to_sign.as_bytes());
    let signature = hex::encode(mac.finalize().into_bytes());
    let mut names: Vec<String> = input
        .headers
        .iter()
        .map(|(k, _)| k.to_ascii_lowercase())
        .collect();
    names.sort();
    format!(
        "{ALGORITHM} Access={}, SignedHeaders={}, Signature={signature}",
        access_key.expose_secret(),
        names.join(";")
    )
}

/// `X-Sdk-Date` for a time: `YYYYMMDDTHHMMSSZ`.
pub fn sdk_date(at: DateTime<Utc>) -> String {
    at.format("%Y%m%dT%H%M%SZ").to_string()
}

/// A token with its expiry, as cached by the client.
#[derive(Clone)]
pub struct CachedToken {
    /// The token (`X-Subject-Token`).
    pub token: SecretString,
    /// When it was obtained.
    pub obtained_at: DateTime<Utc>,
    /// When IAM says it expires.
    pub expires_at: DateTime<Utc>,
}

impl std::fmt::Debug for CachedToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "CachedToken([REDACTED], expires_at: {})",
            self.expires_at
        )
    }
}

impl CachedToken {
    /// True when the token should be replaced before the next request: within
    /// the refresh margin of its expiry (a quarter of its lifetime for tokens
    /// shorter than four margins, so a short-lived token is not refetched on
    /// every call).
    pub fn needs_refresh(&self, now: DateTime<Utc>) -> bool {
        let margin = chrono::Duration::from_std(TOKEN_REFRESH_MARGIN).unwrap_or_default();
        let margin = margin.min((self.expires_at - self.obtained_at) / 4);
        now + margin >= self.expires_at
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    type Pairs = Vec<(String, String)>;

    /// The published test vector (GET with query, empty body): query and headers.
    fn vector() -> (Pairs, Pairs) {
        let query = vec![
            ("limit".to_string(), "2".to_string()),
            (
                "marker".to_string(),
                "13551d6b-755d-4757-b956-536f674975c0".to_string(),
            ),
        ];
        let headers = vec![
            ("Content-Type".to_string(), "application/json".to_string()),
            ("Host".to_string(), "service.region.example.com".to_string()),
            ("X-Sdk-Date".to_string(), "20191115T033655Z".to_string()),
        ];
        (query, headers)
    }

    #[test]
    fn canonical_request_matches_the_published_vector() {
        let (query, headers) = vector();
        let input = SignInput {
            method: "GET",
            path: "/v1/77b6a44cba5143ab91d13ab9a8ff44fd/vpcs",
            query: &query,
            headers: &headers,
            body: b"",
        };
        let canonical = canonical_request(&input);
        assert_eq!(
            canonical,
            "GET\n/v1/77b6a44cba5143ab91d13ab9a8ff44fd/vpcs/\nlimit=2&marker=13551d6b-755d-4757-b956-536f674975c0\ncontent-type:application/json\nhost:service.region.example.com\nx-sdk-date:20191115T033655Z\n\ncontent-type;host;x-sdk-date\ne3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
        assert_eq!(
            hex::encode(Sha256::digest(canonical.as_bytes())),
            "b25362e603ee30f4f25e7858e8a7160fd36e803bb2dfe206278659d71a9bcd7a"
        );
    }

    #[test]
    fn signature_matches_the_published_vector() {
        let (query, headers) = vector();
        let input = SignInput {
            method: "GET",
            path: "/v1/77b6a44cba5143ab91d13ab9a8ff44fd/vpcs",
            query: &query,
            headers: &headers,
            body: b"",
        };
        let header = authorization(
            &SecretString::from("QTWAOYTTINDUT2QVKYUC"),
            &SecretString::from("MFyfvK41ba2giqM7Uio6PznpdUKGpownRZlmVmHc"),
            "20191115T033655Z",
            &input,
        );
        assert_eq!(
            header,
            "SDK-HMAC-SHA256 Access=QTWAOYTTINDUT2QVKYUC, SignedHeaders=content-type;host;x-sdk-date, Signature=7be6668032f70418fcc22abc52071e57aff61b84a1d2381bb430d6870f4f6ebe"
        );
    }

    #[test]
    fn path_segments_and_query_are_percent_encoded() {
        let query = vec![("name".to_string(), "a b/c".to_string())];
        let headers = vec![("host".to_string(), "h".to_string())];
        let input = SignInput {
            method: "get",
            path: "/v1/a b",
            query: &query,
            headers: &headers,
            body: b"{}",
        };
        let canonical = canonical_request(&input);
        let lines: Vec<&str> = canonical.lines().collect();
        assert_eq!(lines[0], "GET");
        assert_eq!(lines[1], "/v1/a%20b/");
        assert_eq!(lines[2], "name=a%20b%2Fc");
    }

    #[test]
    fn tokens_refresh_before_they_expire() {
        let now = Utc::now();
        let token = |mins: i64| CachedToken {
            token: SecretString::from("t"),
            obtained_at: now - chrono::Duration::hours(1),
            expires_at: now + chrono::Duration::minutes(mins),
        };
        assert!(!token(60).needs_refresh(now));
        assert!(token(4).needs_refresh(now), "inside the margin");
        assert!(token(-1).needs_refresh(now), "expired");
        let short = CachedToken {
            token: SecretString::from("t"),
            obtained_at: now,
            expires_at: now + chrono::Duration::minutes(2),
        };
        assert!(
            !short.needs_refresh(now),
            "a 2-minute token is used, not refetched at once"
        );
        assert!(
            short.needs_refresh(now + chrono::Duration::seconds(91)),
            "and refreshed in its last quarter"
        );
        assert!(format!("{:?}", token(60)).starts_with("CachedToken([REDACTED]"));
        assert_eq!(
            sdk_date(
                DateTime::parse_from_rfc3339("2019-11-15T03:36:55Z")
                    .unwrap()
                    .into()
            ),
            "20191115T033655Z"
        );
    }
}
