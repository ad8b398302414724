//! Simulated IAM: password tokens (`POST /v3/auth/tokens`, 201 and
//! `X-Subject-Token`) and verification of AK/SK-signed requests.
//!
//! The signature check is written here from the published algorithm on purpose,
//! apart from the client's signer: a shared bug could not make both agree.

use std::collections::BTreeMap;
use std::time::Duration;

use hmac::{Hmac, KeyInit, Mac};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

/// Credentials the simulator accepts.
#[derive(Debug, Clone)]
pub struct Credentials {
    /// IAM user name.
    pub user: String,
    /// Account (domain) name.
    pub domain: String,
    pub password: String,
    /// Project id tokens are scoped to and paths must name.
    pub project_id: String,
    /// Project name (OTC names projects like the region).
    pub project_name: String,
    pub access_key: String,
    /// Secret access key.
    pub secret_key: String,
}

impl Default for Credentials {
    fn default() -> Self {
        Credentials {
            user: "drover".into(),
            domain: "drover-sim".into(),
            password: "sim-password".into(),
            project_id: "0123456789abcdef0123456789abcdef".into(),
            project_name: "eu-de".into(),
            access_key: "SIMACCESSKEY0000".into(),
            secret_key: "sim-secret-key".into(),
        }
    }
}

/// Why a token request was refused (answered 401 or 400).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TokenRefusal {
    /// Malformed body: 400.
    BadRequest(String),
    /// Wrong credentials or scope: 401.
    Unauthorized,
}

/// Checks a project-scoped password token request body.
pub fn check_password_body(body: &Value, creds: &Credentials) -> Result<(), TokenRefusal> {
    let identity = &body["auth"]["identity"];
    let methods = identity["methods"].as_array().cloned().unwrap_or_default();
    if methods != [json!("password")] {
        return Err(TokenRefusal::BadRequest(
            "auth.identity.methods must be [\"password\"]".into(),
        ));
    }
    let user = &identity["password"]["user"];
    let (Some(name), Some(domain), Some(password)) = (
        user["name"].as_str(),
        user["domain"]["name"].as_str(),
        user["password"].as_str(),
    ) else {
        return Err(TokenRefusal::BadRequest(
            "auth.identity.password.user needs name, password and domain.name".into(),
        ));
    };
    if name != creds.user || domain != creds.domain || password != creds.password {
        return Err(TokenRefusal::Unauthorized);
    }
    let project = &body["auth"]["scope"]["project"];
    let scoped = project["id"].as_str() == Some(creds.project_id.as_str())
        || project["name"].as_str() == Some(creds.project_name.as_str());
    if !scoped {
        return Err(TokenRefusal::Unauthorized);
    }
    Ok(())
}

/// The token body IAM answers with (project scope; the catalog is filled in
/// by the caller unless `nocatalog` was asked for).
pub fn token_body(creds: &Credentials, issued_at: &str, expires_at: &str) -> Value {
    let domain = json!({ "id": "d0d0d0d0d0d0d0d0d0d0d0d0d0d0d0d0", "name": creds.domain });
    json!({ "token": {
        "methods": ["password"],
        "expires_at": expires_at,
        "issued_at": issued_at,
        "user": { "domain": domain, "id": "u0u0u0u0u0u0u0u0u0u0u0u0u0u0u0u0", "name": creds.user, "password_expires_at": "" },
        "project": { "name": creds.project_name, "id": creds.project_id, "domain": domain },
        "roles": [{ "name": "te_admin", "id": "r0" }],
        "catalog": []
    }})
}

/// A Keystone v3 catalog naming `base` as IAM (`identity`), EVS (`volumev2`,
/// with the project in its URL as OTC lists it) and SDRS (`sdrs`), public,
/// in the project's region.
pub fn catalog(base: &str, creds: &Credentials) -> Value {
    let region = &creds.project_name;
    let entry = |kind: &str, name: &str, url: String| {
        json!({
            "type": kind,
            "name": name,
            "id": format!("{kind}-0"),
            "endpoints": [{ "id": format!("{kind}-public"), "interface": "public", "region": region, "region_id": region, "url": url }]
        })
    };
    json!([
        entry("identity", "iam", format!("{base}/v3")),
        entry(
            "volumev2",
            "cinderv2",
            format!("{base}/v2/{}", creds.project_id)
        ),
        entry("sdrs", "sdrs", format!("{base}/v1/{}", creds.project_id)),
    ])
}

/// What a signed request looks like to the verifier.
#[derive(Debug)]
pub struct SignedRequest<'a> {
    pub method: &'a str,
    /// Path as sent (percent-encoded).
    pub raw_path: &'a str,
    /// Query string as sent, without `?`.
    pub raw_query: &'a str,
    /// Request headers, lowercase names.
    pub headers: &'a BTreeMap<String, String>,
    /// Body bytes.
    pub body: &'a [u8],
}

/// Verifies an `SDK-HMAC-SHA256 Access=..., SignedHeaders=..., Signature=...`
/// header. `skew` is how far `X-Sdk-Date` is from the simulator's clock.
pub fn verify_signature(
    req: &SignedRequest<'_>,
    authorization: &str,
    creds: &Credentials,
    skew: Duration,
) -> Result<(), String> {
    let rest = authorization
        .strip_prefix("SDK-HMAC-SHA256 ")
        .ok_or("unsupported signing algorithm")?;
    let mut parts = BTreeMap::new();
    for part in rest.split(", ") {
        let (k, v) = part
            .split_once('=')
            .ok_or("malformed Authorization header")?;
        parts.insert(k, v);
    }
    let (Some(access), Some(signed), Some(signature)) = (
        parts.get("Access"),
        parts.get("SignedHeaders"),
        parts.get("Signature"),
    ) else {
        return Err("malformed Authorization header".into());
    };
    if *access != creds.access_key {
        return Err("unknown access key".into());
    }
    let signed: Vec<&str> = signed.split(';').collect();
    if !signed.contains(&"host") || !signed.contains(&"x-sdk-date") {
        return Err("SignedHeaders must include host and x-sdk-date".into());
    }
    let date = req.headers.get("x-sdk-date").ok_or("missing X-Sdk-Date")?;
    if skew > Duration::from_secs(15 * 60) {
        return Err(format!("signature expired, signature time:{date}"));
    }
    let mut canonical_headers = String::new();
    for name in &signed {
        let value = req
            .headers
            .get(*name)
            .ok_or(format!("signed header {name} is missing"))?;
        canonical_headers.push_str(&format!("{name}:{}\n", value.trim()));
    }
    let canonical = [
        req.method.to_string(),
        canonical_uri(req.raw_path),
        canonical_query(req.raw_query),
        canonical_headers,
        signed.join(";"),
        hex::encode(Sha256::digest(req.body)),
    ]
    .join("\n");
    let to_sign = format!(
        "SDK-HMAC-SHA256\n{date}\n{}",
        hex::encode(Sha256::digest(canonical.as_bytes()))
    );
    let mut mac = Hmac::<Sha256>::new_from_slice(creds.secret_key.as_bytes())
        .map_err(|_| "bad key".to_string())?;
    mac.update(to_sign.as_bytes());
    let expected = hex::encode(mac.finalize().into_bytes());
    if expected == *signature {
        Ok(())
    } else {
        Err("signature does not match".into())
    }
}

/// Decodes `%XX`, then encodes all but RFC 3986 unreserved characters.
fn reencode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut decoded = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%'
            && i + 2 < bytes.len()
            && bytes[i + 1].is_ascii_hexdigit()
            && bytes[i + 2].is_ascii_hexdigit()
            && let Ok(b) = u8::from_str_radix(&text[i + 1..i + 3], 16)
        {
            decoded.push(b);
            i += 3;
            continue;
        }
        decoded.push(bytes[i]);
        i += 1;
    }
    decoded
        .iter()
        .map(|&b| {
            if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

fn canonical_uri(raw_path: &str) -> String {
    let mut uri = raw_path
        .split('/')
        .map(reencode)
        .collect::<Vec<_>>()
        .join("/");
    if !uri.ends_with('/') {
        uri.push('/');
    }
    uri
}

fn canonical_query(raw_query: &str) -> String {
    let mut pairs: Vec<(String, String)> = raw_query
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            (
                reencode(&k.replace('+', " ")),
                reencode(&v.replace('+', " ")),
            )
        })
        .collect();
    pairs.sort();
    pairs
        .into_iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join("&")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn verifies_the_published_vector_and_rejects_tampering() {
        let creds = Credentials {
            access_key: "QTWAOYTTINDUT2QVKYUC".into(),
            secret_key: "MFyfvK41ba2giqM7Uio6PznpdUKGpownRZlmVmHc".into(),
            ..Credentials::default()
        };
        let headers: BTreeMap<String, String> = [
            ("content-type", "application/json"),
            ("host", "service.region.example.com"),
            ("x-sdk-date", "20191115T033655Z"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        let req = SignedRequest {
            method: "GET",
            raw_path: "/v1/77b6a44cba5143ab91d13ab9a8ff44fd/vpcs",
            raw_query: "marker=13551d6b-755d-4757-b956-536f674975c0&limit=2",
            headers: &headers,
            body: b"",
        };
        let auth = "SDK-HMAC-SHA256 Access=QTWAOYTTINDUT2QVKYUC, SignedHeaders=content-type;host;x-sdk-date, Signature=7be6668032f70418fcc22abc52071e57aff61b84a1d2381bb430d6870f4f6ebe";
        assert_eq!(verify_signature(&req, auth, &creds, Duration::ZERO), Ok(()));
        let tampered = SignedRequest {
            raw_query: "limit=3",
            ..req
        };
        assert!(verify_signature(&tampered, auth, &creds, Duration::ZERO).is_err());
        let late = verify_signature(&req, auth, &creds, Duration::from_secs(16 * 60)).unwrap_err();
        assert!(late.contains("signature expired"), "{late}");
    }

    #[test]
    fn password_bodies_are_checked() {
        let creds = Credentials::default();
        let body = |pw: &str, scope: Value| json!({"auth": {"identity": {"methods": ["password"], "password": {"user": {"name": "drover", "password": pw, "domain": {"name": "drover-sim"}}}}, "scope": {"project": scope}}});
        assert_eq!(
            check_password_body(
                &body("sim-password", json!({"id": creds.project_id})),
                &creds
            ),
            Ok(())
        );
        assert_eq!(
            check_password_body(&body("sim-password", json!({"name": "eu-de"})), &creds),
            Ok(())
        );
        assert_eq!(
            check_password_body(&body("wrong", json!({"name": "eu-de"})), &creds),
            Err(TokenRefusal::Unauthorized)
        );
        assert_eq!(
            check_password_body(&body("sim-password", json!({"id": "other"})), &creds),
            Err(TokenRefusal::Unauthorized)
        );
        assert!(matches!(
            check_password_body(&json!({"auth": {}}), &creds),
            Err(TokenRefusal::BadRequest(_))
        ));
    }
}
