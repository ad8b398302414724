//! `/readyz` and `/metrics` (no token; `/healthz` answers in the router).

use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};

use super::AppState;

pub(super) async fn readyz(State(d): State<AppState>) -> Response {
    if d.is_ready() {
        "ready".into_response()
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "starting").into_response()
    }
}

pub(super) async fn metrics(State(d): State<AppState>) -> Response {
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        d.metrics().render(),
    )
        .into_response()
}
