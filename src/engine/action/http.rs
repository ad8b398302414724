//! `http.request`: any HTTP call (health checks, DNS or load-balancer APIs,
//! notifications) under the step's retry policy, with expected statuses and
//! JSON fields. Only method, URL (query hidden) and status are recorded.

use serde_json::{Value, json};

use crate::cloud::http::HttpCall;
use crate::cloud::{CloudError, Delivery};
use crate::engine::Cloud;
use crate::engine::context::{StepError, StepRun};
use crate::redact;
use crate::runbook::model::{HttpMethod, HttpRequestInput};
use crate::store::{AttemptKind, Outcome};

/// Sends the request and checks the answer.
pub(crate) async fn request<C: Cloud>(
    s: &StepRun<'_, C>,
    i: &HttpRequestInput,
) -> Result<Value, StepError> {
    let render = |t: &str| s.render(t).map_err(|e| e.to_string());
    let method = match i
        .method
        .as_ref()
        .map(|m| m.resolve(render))
        .transpose()
        .map_err(|e| StepError::Failed(format!("`method`: {e}")))?
        .unwrap_or(HttpMethod::Get)
    {
        HttpMethod::Get => reqwest::Method::GET,
        HttpMethod::Head => reqwest::Method::HEAD,
        HttpMethod::Post => reqwest::Method::POST,
        HttpMethod::Put => reqwest::Method::PUT,
        HttpMethod::Patch => reqwest::Method::PATCH,
        HttpMethod::Delete => reqwest::Method::DELETE,
    };
    let url = s.render(&i.url.value)?;
    if !(url.starts_with("http://") || url.starts_with("https://")) {
        return Err(StepError::Failed(format!(
            "url rendered to `{}`, not an http(s) URL",
            redact::url(&url)
        )));
    }
    let headers = i
        .headers
        .iter()
        .map(|(k, v)| Ok((k.clone(), s.render(v)?)))
        .collect::<Result<Vec<_>, StepError>>()?;
    let call = HttpCall {
        method: method.clone(),
        url: url.clone(),
        headers,
        json: i.json.as_ref().map(|j| s.ctx.render_json(j)).transpose()?,
        body: i.body.as_ref().map(|b| s.render(b)).transpose()?,
    };
    let request = format!("{method} {}", redact::url(&url));
    let policy = &s.step.retry;
    // A retryable status is treated like a failed attempt; any other status is an answer.
    let answer = s
        .read(&request, || async {
            let a = match s.cloud().http_request(&call).await? {
                Delivery::Sent(a) => a,
                Delivery::HeldBack(w) => return Ok(Delivery::HeldBack(w)),
            };
            if policy.retries_status(a.status) {
                return Err(CloudError {
                    request: request.clone(),
                    status: Some(a.status),
                    code: None,
                    message: format!("HTTP {}", a.status),
                    request_id: a.request_id.clone(),
                    reach: crate::cloud::Reach::Answered,
                    retry_after: a.retry_after,
                });
            }
            Ok(Delivery::Sent(a))
        })
        .await?;
    let answer = match answer {
        Delivery::Sent(a) => a,
        Delivery::HeldBack(w) => {
            s.record_held_back(1, w).await?;
            return Ok(json!({ "status": null, "dry_run": true, "held_back": true }));
        }
    };
    // Only method, URL (query hidden) and status are stored: bodies and headers may carry secrets.
    s.record(
        1,
        AttemptKind::Request,
        &request,
        None,
        None,
        Some(Outcome {
            outcome: "answered".into(),
            http_status: Some(answer.status),
            ..Outcome::default()
        }),
    )
    .await?;
    let expected: Option<Vec<u16>> = i
        .expect_status
        .as_ref()
        .map(|codes| {
            codes
                .value
                .iter()
                .map(|c| c.resolve(render))
                .collect::<Result<Vec<u16>, String>>()
        })
        .transpose()
        .map_err(|e| StepError::Failed(format!("`expect_status`: {e}")))?;
    let ok = match &expected {
        Some(codes) => codes.contains(&answer.status),
        None => (200..300).contains(&answer.status),
    };
    if !ok {
        let wanted = expected.map_or("2xx".to_string(), |c| format!("{c:?}"));
        return Err(StepError::Failed(format!(
            "{request} answered {}, expected {wanted}",
            answer.status
        )));
    }
    let body: Value = serde_json::from_slice(&answer.body)
        .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&answer.body).into_owned()));
    for (pointer, want) in &i.expect_json {
        let want = s.ctx.render_json(want)?;
        let got = body.pointer(pointer);
        if got != Some(&want) {
            return Err(StepError::Failed(format!(
                "{request}: {pointer} is {}, expected {want}",
                got.map_or("missing".to_string(), Value::to_string)
            )));
        }
    }
    Ok(json!({ "status": answer.status, "body": body }))
}
