//! Service endpoints: the forms people paste (`https://iam.eu-de.otc.t-systems.com/v3`
//! from `clouds.yaml`, a catalog URL ending in `/v2/{project_id}`, a trailing
//! `/`) normalized to the service root drover appends its paths to, and the
//! endpoints an IAM token's catalog lists, chosen by service type and region.

use serde_json::Value;

/// The OTC services drover calls.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Service {
    /// IAM: `/v3/auth/tokens`.
    Iam,
    /// EVS consistency groups: `/v2/{project_id}/...`.
    Evs,
    /// SDRS: `/v1/{project_id}/...`.
    Sdrs,
}

impl Service {
    /// The config key naming its endpoint.
    pub fn key(self) -> &'static str {
        match self {
            Service::Iam => "cloud.iam_endpoint",
            Service::Evs => "cloud.evs_endpoint",
            Service::Sdrs => "cloud.sdrs_endpoint",
        }
    }

    /// Host name prefix in OTC's endpoint pattern.
    fn host(self) -> &'static str {
        match self {
            Service::Iam => "iam",
            Service::Evs => "evs",
            Service::Sdrs => "sdrs",
        }
    }

    /// The API version segment that may follow the root.
    fn version(self) -> &'static str {
        match self {
            Service::Iam => "v3",
            Service::Evs => "v2",
            Service::Sdrs => "v1",
        }
    }

    /// Catalog types that name it (EVS is listed as the block storage service).
    fn catalog_types(self) -> &'static [&'static str] {
        match self {
            Service::Iam => &["identity", "iam"],
            Service::Evs => &["volumev2", "evs", "block-storage"],
            Service::Sdrs => &["sdrs"],
        }
    }

    /// OTC's pattern `https://<service>.<region>.otc.t-systems.com`.
    pub fn default_endpoint(self, region: &str) -> String {
        format!("https://{}.{region}.otc.t-systems.com", self.host())
    }
}

/// Whether a path segment can be a project placeholder or id.
fn project_segment(segment: &str) -> bool {
    matches!(
        segment,
        "{project_id}" | "$(project_id)s" | "%(project_id)s" | "$(tenant_id)s" | "%(tenant_id)s"
    ) || (!segment.is_empty()
        && segment.len() <= 64
        && segment
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-'))
}

/// The service root of `url`: scheme and authority, without the API version
/// (and, for EVS and SDRS, the project) that clients and catalogs add.
pub fn normalize(service: Service, url: &str) -> Result<String, String> {
    let expected = || {
        let version = service.version();
        let example = service.default_endpoint("eu-de");
        let tail = match service {
            Service::Iam => format!("/{version}"),
            _ => format!("/{version}/{{project_id}}"),
        };
        format!("expected a service root such as `{example}` (`{example}{tail}` is accepted too)")
    };
    let shown = crate::redact::url(url);
    let Some((scheme, rest)) = url.split_once("://") else {
        return Err(format!("{}; found `{shown}`", expected()));
    };
    if !matches!(scheme, "http" | "https") || rest.contains(['?', '#']) {
        return Err(format!("{}; found `{shown}`", expected()));
    }
    let (authority, path) = rest.split_once('/').unwrap_or((rest, ""));
    if authority.is_empty() || authority.contains('@') {
        return Err(format!("{}; found `{shown}`", expected()));
    }
    let segments: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
    let accepted = match (service, segments.as_slice()) {
        (_, []) => true,
        (_, [v]) => *v == service.version(),
        (Service::Evs | Service::Sdrs, [v, project]) => {
            *v == service.version() && project_segment(project)
        }
        _ => false,
    };
    if !accepted {
        return Err(format!("{}; found `{shown}`", expected()));
    }
    Ok(format!("{scheme}://{authority}"))
}

/// The public endpoint of `service` in `region` from a Keystone v3 token
/// catalog (`token.catalog`), normalized; an endpoint without a region
/// counts for every region. `None` when the catalog lists none.
pub fn from_catalog(catalog: &Value, service: Service, region: &str) -> Option<String> {
    let entries = catalog.as_array()?;
    let entry = entries.iter().find(|e| {
        e["type"]
            .as_str()
            .is_some_and(|t| service.catalog_types().contains(&t))
    })?;
    let endpoints = entry["endpoints"].as_array()?;
    let in_region = |e: &&Value| {
        let named = [&e["region"], &e["region_id"]];
        named.iter().all(|r| r.is_null()) || named.iter().any(|r| r.as_str() == Some(region))
    };
    let public = |e: &&Value| e["interface"].as_str().is_none_or(|i| i == "public");
    endpoints
        .iter()
        .filter(in_region)
        .find(public)
        .and_then(|e| e["url"].as_str())
        .and_then(|url| normalize(service, url).ok())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn pasted_forms_become_the_service_root() {
        let cases = [
            (
                Service::Iam,
                "https://iam.eu-de.otc.t-systems.com/v3",
                "https://iam.eu-de.otc.t-systems.com",
            ),
            (
                Service::Iam,
                "https://iam.eu-de.otc.t-systems.com/v3/",
                "https://iam.eu-de.otc.t-systems.com",
            ),
            (
                Service::Iam,
                "https://iam.eu-de.otc.t-systems.com/",
                "https://iam.eu-de.otc.t-systems.com",
            ),
            (
                Service::Evs,
                "https://evs.eu-de.otc.t-systems.com/v2/0123456789abcdef0123456789abcdef",
                "https://evs.eu-de.otc.t-systems.com",
            ),
            (
                Service::Evs,
                "https://evs.eu-de.otc.t-systems.com/v2/%(tenant_id)s",
                "https://evs.eu-de.otc.t-systems.com",
            ),
            (
                Service::Evs,
                "http://127.0.0.1:8090",
                "http://127.0.0.1:8090",
            ),
            (
                Service::Sdrs,
                "https://sdrs.eu-de.otc.t-systems.com/v1/{project_id}/",
                "https://sdrs.eu-de.otc.t-systems.com",
            ),
        ];
        for (service, url, root) in cases {
            assert_eq!(normalize(service, url).as_deref(), Ok(root), "{url}");
        }
    }

    #[test]
    fn other_paths_are_refused_with_the_expected_form() {
        for (service, url) in [
            (
                Service::Iam,
                "https://iam.eu-de.otc.t-systems.com/v3/auth/tokens",
            ),
            (Service::Evs, "https://evs.eu-de.otc.t-systems.com/v1/abc"),
            (
                Service::Sdrs,
                "https://sdrs.eu-de.otc.t-systems.com/v1/p/server-groups",
            ),
            (Service::Evs, "evs.eu-de.otc.t-systems.com"),
            (Service::Evs, "ftp://evs.example"),
            (Service::Evs, "https://evs.example/v2?x=1"),
            (Service::Iam, "https://user:secret@iam.example"),
        ] {
            let e = normalize(service, url).unwrap_err();
            assert!(
                e.contains("expected a service root such as `https://"),
                "{url}: {e}"
            );
            assert!(!e.contains("secret"), "{e}");
        }
    }

    #[test]
    fn the_catalog_gives_the_public_endpoint_of_the_region() {
        let catalog = json!([
            { "type": "identity", "endpoints": [
                { "interface": "public", "region": "eu-de", "url": "https://iam.eu-de.otc.t-systems.com/v3" } ] },
            { "type": "volumev2", "endpoints": [
                { "interface": "internal", "region": "eu-de", "url": "https://internal.example/v2/p" },
                { "interface": "public", "region": "eu-nl", "url": "https://evs.eu-nl.otc.t-systems.com/v2/p" },
                { "interface": "public", "region": "eu-de", "url": "https://evs.eu-de.otc.t-systems.com/v2/p" } ] },
            { "type": "sdrs", "endpoints": [ { "url": "https://sdrs.example/v1/$(tenant_id)s" } ] }
        ]);
        let got = |s, r| from_catalog(&catalog, s, r);
        assert_eq!(
            got(Service::Evs, "eu-de").as_deref(),
            Some("https://evs.eu-de.otc.t-systems.com")
        );
        assert_eq!(
            got(Service::Evs, "eu-nl").as_deref(),
            Some("https://evs.eu-nl.otc.t-systems.com")
        );
        assert_eq!(
            got(Service::Evs, "eu-ch2"),
            None,
            "no endpoint in that region"
        );
        assert_eq!(
            got(Service::Sdrs, "eu-de").as_deref(),
            Some("https://sdrs.example"),
            "no region: any"
        );
        assert_eq!(
            got(Service::Iam, "eu-de").as_deref(),
            Some("https://iam.eu-de.otc.t-systems.com")
        );
        assert_eq!(from_catalog(&json!([]), Service::Evs, "eu-de"), None);
    }
}
