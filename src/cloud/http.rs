//! The HTTP client every cloud call goes through: one reqwest client (rustls,
//! timeouts, `drover/<version>` user agent, optional extra CA), authentication
//! (cached IAM token refreshed before expiry and once on 401, AK/SK signing, or
//! a static token), and the mapping of every failure to a [`CloudError`].
//!
//! One call is one attempt, within the service's request budget
//! (`cloud.rate`), plus re-sends that are safe because the request was not
//! acted on: once after a token refresh on 401, and while the API gateway
//! throttles (429, `throttle`). Retries belong to the engine, which knows the
//! step's policy and reconciles ambiguous answers.

use bytes::Bytes;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use reqwest::Method;
use secrecy::{ExposeSecret, SecretString};
use serde_json::{Value, json};
use tokio::sync::Mutex;

use super::auth::{self, CachedToken, SignInput};
use super::error::{self, CloudError, Reach};
use super::throttle::{Bucket, throttle_wait};
use crate::config::endpoint::from_catalog;
use crate::config::{CloudAuth, CloudConfig};

/// The user agent sent with every request.
pub const USER_AGENT: &str = concat!("drover/", env!("CARGO_PKG_VERSION"));

/// Which service a request is for (selects endpoint and path prefix).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Service {
    /// EVS, paths under `/v2/{project_id}`.
    Evs = 0,
    /// SDRS, paths under `/v1/{project_id}`.
    Sdrs = 1,
}

impl Service {
    /// Its name in metrics and logs.
    pub fn name(self) -> &'static str {
        match self {
            Service::Evs => "evs",
            Service::Sdrs => "sdrs",
        }
    }
}

/// One request to EVS or SDRS.
#[derive(Debug, Clone)]
pub struct Request {
    pub method: Method,
    pub service: Service,
    /// Path after the project id, e.g. `/server-groups/{id}/action`.
    pub path: String,
    /// Query parameters.
    pub query: Vec<(String, String)>,
    /// JSON body.
    pub body: Option<Value>,
}

impl Request {
    pub fn get(service: Service, path: impl Into<String>) -> Self {
        Request {
            method: Method::GET,
            service,
            path: path.into(),
            query: Vec::new(),
            body: None,
        }
    }

    /// A POST with a JSON body.
    pub fn post(service: Service, path: impl Into<String>, body: Value) -> Self {
        Request {
            method: Method::POST,
            service,
            path: path.into(),
            query: Vec::new(),
            body: Some(body),
        }
    }

    pub fn delete(service: Service, path: impl Into<String>) -> Self {
        Request {
            method: Method::DELETE,
            service,
            path: path.into(),
            query: Vec::new(),
            body: None,
        }
    }

    /// Adds a query parameter.
    pub fn query(mut self, key: &str, value: &str) -> Self {
        self.query.push((key.to_string(), value.to_string()));
        self
    }

    /// True for requests that may change cloud state.
    pub fn is_mutating(&self) -> bool {
        !matches!(self.method, Method::GET | Method::HEAD)
    }
}

/// A successful answer.
#[derive(Debug, Clone)]
pub struct Answer {
    /// HTTP status.
    pub status: u16,
    /// Body bytes.
    pub body: Bytes,
    /// Request id header, if any.
    pub request_id: Option<String>,
    /// `X-Subject-Token` of an IAM token answer (redacted in `Debug`).
    pub subject_token: Option<SecretString>,
    /// `Retry-After`, when the answer carried one.
    pub retry_after: Option<std::time::Duration>,
}

impl Answer {
    /// The body as JSON of type `T`, or a fatal error naming the request.
    pub fn json<T: serde::de::DeserializeOwned>(&self, request: &str) -> Result<T, CloudError> {
        serde_json::from_slice(&self.body).map_err(|e| self.unexpected(request, &e.to_string()))
    }

    /// A fatal error naming the request: the answer is not what it should be.
    pub fn unexpected(&self, request: &str, why: &str) -> CloudError {
        CloudError {
            request: request.to_string(),
            status: Some(self.status),
            code: None,
            message: format!("unexpected answer: {why}"),
            request_id: self.request_id.clone(),
            reach: Reach::Answered,
            retry_after: None,
        }
    }
}

enum Auth {
    None,
    Password {
        user: String,
        domain: String,
        password: SecretString,
        cache: Mutex<Option<CachedToken>>,
    },
    AkSk {
        access_key: SecretString,
        secret_key: SecretString,
    },
    Token(SecretString),
}

/// Where the client reads the time (token expiry, `X-Sdk-Date`); tests move it.
pub type Clock = Arc<dyn Fn() -> DateTime<Utc> + Send + Sync>;

/// A generic HTTP call (`http.request` steps), through the same client and gate.
#[derive(Debug, Clone)]
pub struct HttpCall {
    pub method: Method,
    /// Absolute URL.
    pub url: String,
    /// Extra headers.
    pub headers: Vec<(String, String)>,
    /// JSON body.
    pub json: Option<Value>,
    /// Text body.
    pub body: Option<String>,
}

impl HttpCall {
    /// True for methods that may change something.
    pub fn is_mutating(&self) -> bool {
        !matches!(self.method, Method::GET | Method::HEAD)
    }

    /// `METHOD url`, query values hidden.
    pub fn line(&self) -> String {
        format!("{} {}", self.method, crate::redact::url(&self.url))
    }
}

pub struct CloudClient {
    http: reqwest::Client,
    clock: Clock,
    config: CloudConfig,
    auth: Auth,
    /// Project from the token when the config names none.
    project: Mutex<Option<String>>,
    /// EVS and SDRS roots found in the token's catalog (by [`Service`]).
    discovered: Mutex<[Option<String>; 2]>,
    /// Request budgets of EVS and SDRS (`cloud.rate`).
    budgets: [Option<Bucket>; 2],
    /// Hears of every throttled (429) attempt that is sent again.
    on_throttle: Option<ThrottleHook>,
}

/// What the client calls for each throttled attempt it sends again.
pub type ThrottleHook = Arc<dyn Fn(Service) + Send + Sync>;

impl std::fmt::Debug for CloudClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CloudClient")
            .field("region", &self.config.region)
            .finish_non_exhaustive()
    }
}

/// Why a client could not be built.
#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    /// The extra CA file could not be read or parsed.
    #[error("cloud.tls_ca_file {path}: {reason}")]
    CaFile {
        /// The file.
        path: String,
        /// What went wrong.
        reason: String,
    },
    /// reqwest refused the settings.
    #[error("cannot build the HTTP client: {0}")]
    Client(String),
    /// Credentials are configured but their secret is missing.
    #[error("{0}")]
    Auth(String),
}

impl CloudClient {
    /// Builds the client from the cloud config.
    pub fn new(config: &CloudConfig) -> Result<Self, BuildError> {
        let mut builder = reqwest::Client::builder()
            .user_agent(USER_AGENT)
            .timeout(config.timeout)
            .connect_timeout(config.connect_timeout);
        if let Some(path) = &config.tls_ca_file {
            let ca_error = |reason: String| BuildError::CaFile {
                path: path.display().to_string(),
                reason,
            };
            let pem = std::fs::read(path).map_err(|e| ca_error(e.to_string()))?;
            let cert = reqwest::Certificate::from_pem(&pem).map_err(|e| ca_error(e.to_string()))?;
            builder = builder.tls_certs_merge([cert]);
        }
        // reqwest reads the certificate only here, so a bad one surfaces here too.
        let http = builder.build().map_err(|e| {
            let reason = error_chain(&e);
            match &config.tls_ca_file {
                Some(path) => BuildError::CaFile {
                    path: path.display().to_string(),
                    reason,
                },
                None => BuildError::Client(reason),
            }
        })?;
        let auth = match &config.auth {
            CloudAuth::None => Auth::None,
            CloudAuth::Incomplete(why) => return Err(BuildError::Auth(why.clone())),
            CloudAuth::Password {
                user,
                domain,
                password,
            } => Auth::Password {
                user: user.clone(),
                domain: domain.clone(),
                password: password.clone(),
                cache: Mutex::new(None),
            },
            CloudAuth::AkSk {
                access_key,
                secret_key,
            } => Auth::AkSk {
                access_key: access_key.clone(),
                secret_key: secret_key.clone(),
            },
            CloudAuth::Token(t) => Auth::Token(t.clone()),
        };
        Ok(CloudClient {
            http,
            clock: Arc::new(Utc::now),
            config: config.clone(),
            auth,
            project: Mutex::new(config.project_id.clone()),
            discovered: Mutex::new([None, None]),
            budgets: [config.rate.evs, config.rate.sdrs]
                .map(|rate| rate.map(|r| Bucket::new(r, config.rate.burst))),
            on_throttle: None,
        })
    }

    /// Calls `hook` for each throttled (429) attempt sent again (metrics).
    pub fn on_throttle(mut self, hook: ThrottleHook) -> Self {
        self.on_throttle = Some(hook);
        self
    }

    /// Sends a generic HTTP request (no cloud authentication is added).
    pub async fn http_request(&self, call: &HttpCall) -> Result<Answer, CloudError> {
        let name = call.line();
        let mut builder = self.http.request(call.method.clone(), &call.url);
        for (k, v) in &call.headers {
            builder = builder.header(k, v);
        }
        if let Some(json) = &call.json {
            builder = builder
                .header("content-type", "application/json")
                .body(json.to_string());
        } else if let Some(text) = &call.body {
            builder = builder.body(text.clone());
        }
        self.exchange_raw(builder, &name).await
    }

    /// Replaces the clock (for tests of token expiry).
    pub fn with_clock(mut self, clock: Clock) -> Self {
        self.clock = clock;
        self
    }

    /// The project id used in paths: configured, or learnt from the token.
    pub async fn project_id(&self) -> Result<String, CloudError> {
        if let Some(p) = self.project.lock().await.clone() {
            return Ok(p);
        }
        if let Auth::Password { .. } = self.auth {
            self.token(false).await?;
            if let Some(p) = self.project.lock().await.clone() {
                return Ok(p);
            }
        }
        Err(local_error("cloud.project_id is not configured"))
    }

    /// The path a request goes to: `/v2/{project_id}/...` (EVS) or `/v1/...` (SDRS).
    async fn full_path(&self, req: &Request) -> Result<String, CloudError> {
        let project = self.project_id().await?;
        let prefix = match req.service {
            Service::Evs => "v2",
            Service::Sdrs => "v1",
        };
        Ok(format!("/{prefix}/{project}{}", req.path))
    }

    /// `METHOD path` of a request, as logs, errors and the audit trail name it.
    pub async fn request_line(&self, req: &Request) -> Result<String, CloudError> {
        Ok(format!("{} {}", req.method, self.full_path(req).await?))
    }

    /// Sends one request: one attempt within the service's request budget;
    /// once more after a token refresh on 401; and again, up to
    /// `cloud.rate.throttle_retries` times, while the API gateway answers 429
    /// (it refused the request before the service saw it), waiting what
    /// `Retry-After` asks. The step's retries count none of these.
    pub async fn send(&self, req: &Request) -> Result<Answer, CloudError> {
        let mut throttled = 0;
        loop {
            if let Some(budget) = &self.budgets[req.service as usize] {
                budget.take().await;
            }
            match self.send_once(req).await {
                Err(e)
                    if e.status == Some(429) && throttled < self.config.rate.throttle_retries =>
                {
                    throttled += 1;
                    let wait = throttle_wait(throttled, e.retry_after);
                    tracing::warn!(request = %e.request, throttled, wait_ms = wait.as_millis() as u64, "Throttled by the cloud (429); sending the request again after the wait.");
                    if let Some(hook) = &self.on_throttle {
                        hook(req.service);
                    }
                    tokio::time::sleep(wait).await;
                }
                other => return other,
            }
        }
    }

    /// The service root a request goes to: configured, else from the
    /// token's catalog (password auth), else OTC's pattern for the region.
    pub async fn endpoint(&self, service: Service) -> Result<String, CloudError> {
        let configured = match service {
            Service::Evs => &self.config.evs_endpoint,
            Service::Sdrs => &self.config.sdrs_endpoint,
        };
        if let Some(url) = configured {
            return Ok(url.clone());
        }
        if let Auth::Password { .. } = self.auth {
            self.token(false).await?;
        }
        if let Some(url) = self.discovered.lock().await[service as usize].clone() {
            return Ok(url);
        }
        Ok(catalog_service(service).default_endpoint(&self.config.region))
    }

    async fn send_once(&self, req: &Request) -> Result<Answer, CloudError> {
        let path = self.full_path(req).await?;
        let base = self.endpoint(req.service).await?;
        let url = format!("{base}{path}");
        let name = format!("{} {path}", req.method);
        let first = self.attempt(req, &url, &path, &name, false).await;
        match (&first, &self.auth) {
            (Err(e), Auth::Password { .. }) if e.status == Some(401) => {
                self.attempt(req, &url, &path, &name, true).await
            }
            _ => first,
        }
    }

    async fn attempt(
        &self,
        req: &Request,
        url: &str,
        path: &str,
        name: &str,
        refresh: bool,
    ) -> Result<Answer, CloudError> {
        let body = req
            .body
            .as_ref()
            .map(|b| b.to_string().into_bytes())
            .unwrap_or_default();
        let mut builder = self.http.request(req.method.clone(), url).query(&req.query);
        if req.body.is_some() {
            builder = builder
                .header("content-type", "application/json")
                .body(body.clone());
        }
        builder = match &self.auth {
            Auth::None => {
                return Err(local_error(
                    "no cloud credentials: configure cloud.auth (its secret in DROVER_CLOUD__AUTH__*), or set OS_CLOUD for a cloud of clouds.yaml, or the OS_* variables",
                ));
            }
            Auth::Token(t) => builder.header("x-auth-token", t.expose_secret()),
            Auth::Password { .. } => {
                let token = self.token(refresh).await?;
                builder.header("x-auth-token", token.expose_secret())
            }
            Auth::AkSk {
                access_key,
                secret_key,
            } => {
                let date = auth::sdk_date((self.clock)());
                let host = host_of(url);
                let mut headers = vec![
                    ("host".to_string(), host),
                    ("x-sdk-date".to_string(), date.clone()),
                ];
                if req.body.is_some() {
                    headers.push(("content-type".to_string(), "application/json".to_string()));
                }
                let input = SignInput {
                    method: req.method.as_str(),
                    path,
                    query: &req.query,
                    headers: &headers,
                    body: &body,
                };
                let authorization = auth::authorization(access_key, secret_key, &date, &input);
                builder
                    .header("x-sdk-date", date)
                    .header("authorization", authorization)
            }
        };
        self.exchange(builder, name).await
    }

    /// Sends a built request and reads the whole answer, whatever its status;
    /// only transport failures are errors.
    async fn exchange_raw(
        &self,
        builder: reqwest::RequestBuilder,
        name: &str,
    ) -> Result<Answer, CloudError> {
        let transport = |e: reqwest::Error| CloudError {
            request: name.to_string(),
            status: None,
            code: None,
            message: describe_transport(&e),
            request_id: None,
            reach: if e.is_connect() {
                Reach::Unreached
            } else {
                Reach::Unanswered
            },
            retry_after: None,
        };
        let response = builder.send().await.map_err(transport)?;
        let status = response.status().as_u16();
        let header = |n: &str| {
            response
                .headers()
                .get(n)
                .and_then(|v| v.to_str().ok())
                .map(str::to_string)
        };
        let request_id = header("x-request-id").or_else(|| header("x-openstack-request-id"));
        let retry_after = header("retry-after").and_then(|v| error::parse_retry_after(&v));
        let subject_token = header("x-subject-token").map(SecretString::from);
        // Reading the whole body first: a connection lost mid-answer is a transport failure.
        let body = response.bytes().await.map_err(transport)?;
        Ok(Answer {
            status,
            body,
            request_id,
            subject_token,
            retry_after,
        })
    }

    /// Sends a built request; an error status becomes a [`CloudError`].
    async fn exchange(
        &self,
        builder: reqwest::RequestBuilder,
        name: &str,
    ) -> Result<Answer, CloudError> {
        let answer = self.exchange_raw(builder, name).await?;
        if answer.status < 400 {
            return Ok(answer);
        }
        let parsed = error::parse_body(&answer.body);
        Err(CloudError {
            request: name.to_string(),
            status: Some(answer.status),
            code: parsed.code,
            message: parsed
                .message
                .unwrap_or_else(|| format!("HTTP {}", answer.status)),
            request_id: parsed.request_id.or(answer.request_id),
            reach: Reach::Answered,
            retry_after: answer.retry_after,
        })
    }

    /// The current IAM token, fetching a new one when missing, near expiry, or `force`d.
    async fn token(&self, force: bool) -> Result<SecretString, CloudError> {
        let Auth::Password {
            user,
            domain,
            password,
            cache,
        } = &self.auth
        else {
            return Err(local_error("token requested without password auth"));
        };
        let mut cache = cache.lock().await;
        if let Some(t) = cache.as_ref()
            && !force
            && !t.needs_refresh((self.clock)())
        {
            return Ok(t.token.clone());
        }
        // A project by name is looked up in a domain: the user's account.
        let scope = match (&self.config.project_id, &self.config.project_name) {
            (Some(id), _) => json!({ "project": { "id": id } }),
            (None, Some(name)) => {
                json!({ "project": { "name": name, "domain": { "name": domain } } })
            }
            (None, None) => json!({ "project": { "name": self.config.region } }),
        };
        let body = json!({ "auth": {
            "identity": { "methods": ["password"], "password": { "user": {
                "name": user, "password": password.expose_secret(), "domain": { "name": domain }
            } } },
            "scope": scope
        } });
        // The catalog is asked for only when an endpoint is to be found in it.
        let discover = self.config.evs_endpoint.is_none() || self.config.sdrs_endpoint.is_none();
        let url = format!(
            "{}/v3/auth/tokens{}",
            self.config.iam_endpoint,
            if discover { "" } else { "?nocatalog=true" }
        );
        let builder = self
            .http
            .post(&url)
            .header("content-type", "application/json;charset=utf8")
            .body(body.to_string());
        let answer = self.exchange(builder, "POST /v3/auth/tokens").await?;
        let envelope: Value = answer.json("POST /v3/auth/tokens")?;
        let expires_at = envelope["token"]["expires_at"]
            .as_str()
            .and_then(super::resource::parse_time)
            .unwrap_or_else(|| (self.clock)() + chrono::Duration::hours(1));
        let Some(token) = answer.subject_token.filter(|_| answer.status == 201) else {
            return Err(local_error("IAM answered without X-Subject-Token"));
        };
        if discover {
            let catalog = &envelope["token"]["catalog"];
            let mut found = self.discovered.lock().await;
            for service in [Service::Evs, Service::Sdrs] {
                let url = from_catalog(catalog, catalog_service(service), &self.config.region);
                if url.is_none() {
                    tracing::warn!(
                        service = service.name(),
                        region = %self.config.region,
                        "The token's catalog lists no endpoint for this service and region; using OTC's endpoint pattern."
                    );
                }
                found[service as usize] = url;
            }
        }
        if let Some(project) = envelope["token"]["project"]["id"].as_str() {
            let mut p = self.project.lock().await;
            if p.is_none() {
                *p = Some(project.to_string());
            }
        }
        *cache = Some(CachedToken {
            token: token.clone(),
            obtained_at: (self.clock)(),
            expires_at,
        });
        Ok(token)
    }
}

/// The config's name for a service the client calls.
fn catalog_service(service: Service) -> crate::config::endpoint::Service {
    match service {
        Service::Evs => crate::config::endpoint::Service::Evs,
        Service::Sdrs => crate::config::endpoint::Service::Sdrs,
    }
}

fn host_of(url: &str) -> String {
    url.split("://")
        .nth(1)
        .and_then(|rest| rest.split('/').next())
        .unwrap_or_default()
        .to_string()
}

/// An error with its causes, `outer: inner: innermost`.
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        text.push_str(&format!(": {s}"));
        source = s.source();
    }
    text
}

fn describe_transport(e: &reqwest::Error) -> String {
    let what = if e.is_timeout() {
        "timed out"
    } else if e.is_connect() {
        "could not connect"
    } else if e.is_body() || e.is_decode() {
        "connection lost while reading the answer"
    } else {
        "connection failed"
    };
    // The source chain names the cause (refused, reset, DNS); URLs carry no secrets.
    let mut cause = String::new();
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        cause = s.to_string();
        source = s.source();
    }
    if cause.is_empty() {
        what.to_string()
    } else {
        format!("{what}: {cause}")
    }
}

fn local_error(message: &str) -> CloudError {
    CloudError::not_sent("(not sent)", message)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;

    fn cloud() -> CloudConfig {
        Config::parse("", std::path::Path::new("t.yaml"), &Default::default())
            .unwrap()
            .cloud
    }

    #[test]
    fn a_missing_or_unreadable_ca_file_is_named() {
        let mut config = cloud();
        config.tls_ca_file = Some("/nonexistent/ca.pem".into());
        let err = CloudClient::new(&config).unwrap_err().to_string();
        assert!(
            err.starts_with("cloud.tls_ca_file /nonexistent/ca.pem: "),
            "{err}"
        );

        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ca.pem");
        std::fs::write(
            &path,
            "-----BEGIN CERTIFICATE-----\nnot base64!\n-----END CERTIFICATE-----\n",
        )
        .unwrap();
        config.tls_ca_file = Some(path.clone());
        let err = CloudClient::new(&config).unwrap_err().to_string();
        assert!(err.contains(&path.display().to_string()), "{err}");
    }

    #[test]
    fn requests_name_their_method_and_mutation() {
        let get = Request::get(Service::Evs, "/x");
        let post = Request::post(Service::Sdrs, "/x", json!({}));
        assert!(!get.is_mutating());
        assert!(post.is_mutating());
        assert!(Request::delete(Service::Sdrs, "/x").is_mutating());
        assert_eq!(
            host_of("https://evs.eu-de.otc.t-systems.com:8443/v2/p"),
            "evs.eu-de.otc.t-systems.com:8443"
        );
        assert!(USER_AGENT.starts_with("drover/"));
    }
}
