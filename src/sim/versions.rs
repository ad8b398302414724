//! Version documents, for clients that discover an API version before they
//! call (openstacksdk and keystoneauth do): the root lists every API the
//! simulator serves, since one address stands for IAM, EVS and SDRS; each
//! version root describes itself.

use serde_json::{Value, json};

/// When the simulated API versions last changed, as the documents show it.
const UPDATED: &str = "2018-07-18T00:00:00Z";

/// `(path, id, status)` of each API version served: SDRS v1, EVS v2 (the
/// replication consistency groups), IAM v3.
const VERSIONS: [(&str, &str, &str); 3] = [
    ("v1", "v1", "CURRENT"),
    ("v2", "v2.0", "SUPPORTED"),
    ("v3", "v3.0", "CURRENT"),
];

fn describe(base: &str, (path, id, status): (&str, &str, &str)) -> Value {
    json!({
        "id": id,
        "status": status,
        "updated": UPDATED,
        "min_version": "",
        "version": "",
        "links": [{ "rel": "self", "href": format!("{base}/{path}/") }],
        "media-types": [{ "base": "application/json", "type": "application/json" }],
    })
}

/// `GET /` (`None`: `{"versions": [...]}`) or `GET /v1`, `/v2`, `/v3`
/// (`{"version": {...}}`), with links under `base`.
pub(super) fn document(base: &str, version: Option<&str>) -> Value {
    match version {
        None => json!({
            "versions": VERSIONS.iter().map(|v| describe(base, *v)).collect::<Vec<_>>()
        }),
        Some(path) => {
            let v = VERSIONS
                .into_iter()
                .find(|(p, _, _)| *p == path)
                .unwrap_or(VERSIONS[0]);
            json!({ "version": describe(base, v) })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_root_lists_each_api_with_a_self_link_and_a_version_root_describes_itself() {
        let root = document("http://sim", None);
        let ids: Vec<&str> = root["versions"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v["id"].as_str().unwrap())
            .collect();
        assert_eq!(ids, ["v1", "v2.0", "v3.0"]);
        assert_eq!(root["versions"][1]["links"][0]["href"], "http://sim/v2/");
        let v3 = document("http://sim", Some("v3"));
        assert_eq!(v3["version"]["id"], "v3.0");
        assert_eq!(v3["version"]["links"][0]["href"], "http://sim/v3/");
    }
}
