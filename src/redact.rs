//! Hiding secrets before anything is shown, logged or stored: URLs (their
//! user info and query values) and JSON bodies (password-like keys).

use serde_json::Value;

const HIDDEN: &str = "[REDACTED]";

/// JSON keys whose string values are secrets.
const SECRET_KEYS: [&str; 3] = ["password", "secret", "secret_key"];

/// A URL with its user info (`user:password@`) and every query value hidden.
pub fn url(url: &str) -> String {
    let (base, query) = match url.split_once('?') {
        Some((b, q)) => (b, Some(q)),
        None => (url, None),
    };
    let mut out = match (base.find("://"), base.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => {
            format!("{}://{HIDDEN}@{}", &base[..scheme], &base[at + 1..])
        }
        _ => base.to_string(),
    };
    if let Some(query) = query {
        let keys: Vec<String> = query
            .split('&')
            .map(|p| format!("{}={HIDDEN}", p.split('=').next().unwrap_or_default()))
            .collect();
        out.push('?');
        out.push_str(&keys.join("&"));
    }
    out
}

/// Replaces the string value of every secret key, at any depth.
pub fn json(value: &mut Value) {
    match value {
        Value::Object(map) => {
            for (k, v) in map.iter_mut() {
                if SECRET_KEYS.contains(&k.as_str()) && v.is_string() {
                    *v = Value::String(HIDDEN.into());
                } else {
                    json(v);
                }
            }
        }
        Value::Array(items) => items.iter_mut().for_each(json),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn urls_lose_their_user_info_and_query_values() {
        assert_eq!(
            url("postgres://drover:hunter2@db/drover?sslpassword=x"),
            "postgres://[REDACTED]@db/drover?sslpassword=[REDACTED]"
        );
        assert_eq!(
            url("https://hooks.example/x?token=abc&flag"),
            "https://hooks.example/x?token=[REDACTED]&flag=[REDACTED]"
        );
        assert_eq!(url("https://a:b@h/p"), "https://[REDACTED]@h/p");
        assert_eq!(url("sqlite://drover.db"), "sqlite://drover.db");
        // An `@` in the query is not user info.
        assert_eq!(url("https://h/p?mail=a@b"), "https://h/p?mail=[REDACTED]");
    }

    #[test]
    fn secret_keys_are_hidden_at_any_depth() {
        let mut v = json!({"auth": {"identity": {"password": {"user": {"name": "u", "password": "p"}}}}, "list": [{"secret_key": "s"}], "password": 3});
        json(&mut v);
        assert_eq!(
            v,
            json!({"auth": {"identity": {"password": {"user": {"name": "u", "password": "[REDACTED]"}}}}, "list": [{"secret_key": "[REDACTED]"}], "password": 3})
        );
    }
}
