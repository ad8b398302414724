//! Request bodies arrive whole and in time, or are refused: the body is read
//! before any handler runs, within `api.body_timeout` (else 408
//! `request_timeout`) and [`MAX_BODY_BYTES`](super::MAX_BODY_BYTES) (else
//! 413 `body_too_large`). A client trickling a body cannot hold a handler.

use std::time::Duration;

use axum::body::{Body, HttpBody};
use axum::extract::Request;
use axum::http::StatusCode;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use http_body_util::{BodyExt, LengthLimitError, Limited};

use super::{ApiError, MAX_BODY_BYTES};

/// Reads the body of `request` within `timeout`, then hands it on.
pub(super) async fn read_in_time(timeout: Duration, request: Request, next: Next) -> Response {
    let (parts, body) = request.into_parts();
    if body.is_end_stream() {
        return next.run(Request::from_parts(parts, body)).await;
    }
    let read = Limited::new(body, MAX_BODY_BYTES).collect();
    let bytes = match tokio::time::timeout(timeout, read).await {
        Ok(Ok(collected)) => collected.to_bytes(),
        Ok(Err(e)) if e.is::<LengthLimitError>() => {
            return ApiError::body_too_large().into_response();
        }
        Ok(Err(_)) => {
            return ApiError::new(
                StatusCode::BAD_REQUEST,
                "bad_body",
                "the request body could not be read",
            )
            .into_response();
        }
        Err(_) => {
            let mut answer = ApiError::new(
                StatusCode::REQUEST_TIMEOUT,
                "request_timeout",
                format!(
                    "the request body did not arrive within {}",
                    crate::runbook::value::format_duration(timeout)
                ),
            )
            .into_response();
            // The rest of the body is not read: the connection cannot carry
            // another request.
            answer.headers_mut().insert(
                axum::http::header::CONNECTION,
                axum::http::HeaderValue::from_static("close"),
            );
            return answer;
        }
    };
    next.run(Request::from_parts(parts, Body::from(bytes)))
        .await
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::Router;
    use axum::routing::post;
    use futures_util::StreamExt;
    use tower::ServiceExt;

    fn app() -> Router {
        Router::new()
            .route(
                "/",
                post(|axum::Json(v): axum::Json<serde_json::Value>| async move { v.to_string() }),
            )
            .layer(axum::middleware::from_fn(|r, n| {
                read_in_time(Duration::from_secs(10), r, n)
            }))
    }

    fn request(body: Body) -> Request {
        Request::post("/")
            .header("content-type", "application/json")
            .body(body)
            .unwrap()
    }

    async fn answer(response: Response) -> (StatusCode, serde_json::Value, Option<String>) {
        let status = response.status();
        let connection = response
            .headers()
            .get("connection")
            .map(|v| v.to_str().unwrap().to_string());
        let bytes = axum::body::to_bytes(response.into_body(), 1 << 20)
            .await
            .unwrap();
        let body = serde_json::from_slice(&bytes).unwrap_or_else(|_| {
            serde_json::Value::String(String::from_utf8_lossy(&bytes).into_owned())
        });
        (status, body, connection)
    }

    #[tokio::test(start_paused = true)]
    async fn a_body_that_stops_arriving_is_answered_408_at_the_timeout() {
        // One chunk, then nothing: a client that stalls mid-body.
        let chunks = futures_util::stream::iter([Ok::<_, std::io::Error>(
            bytes::Bytes::from_static(b"{\"runbook\": "),
        )])
        .chain(futures_util::stream::pending());
        let started = tokio::time::Instant::now();
        let (status, body, connection) = answer(
            app()
                .oneshot(request(Body::from_stream(chunks)))
                .await
                .unwrap(),
        )
        .await;
        assert_eq!(status, StatusCode::REQUEST_TIMEOUT);
        assert_eq!(body["code"], "request_timeout", "{body}");
        assert_eq!(
            body["message"], "the request body did not arrive within 10s",
            "{body}"
        );
        assert_eq!(connection.as_deref(), Some("close"));
        assert_eq!(started.elapsed(), Duration::from_secs(10));
    }

    #[tokio::test(start_paused = true)]
    async fn a_whole_body_passes_and_an_oversized_one_is_413() {
        let (status, body, _) = answer(
            app()
                .oneshot(request(Body::from(r#"{"a": 1}"#)))
                .await
                .unwrap(),
        )
        .await;
        assert_eq!(
            (status, body),
            (StatusCode::OK, serde_json::json!({"a": 1}))
        );
        let big = format!("\"{}\"", "x".repeat(MAX_BODY_BYTES));
        let (status, body, _) =
            answer(app().oneshot(request(Body::from(big))).await.unwrap()).await;
        assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
        assert_eq!(body["code"], "body_too_large", "{body}");
    }
}
