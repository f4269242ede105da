//! `GET /metrics`: the Prometheus text exposition ([`crate::metrics`]), on
//! the API listener to a scrape that sends `metrics_token`, or on a
//! listener of its own ([`router`]) to anyone who reaches it.

use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use subtle::ConstantTimeEq;

use crate::api::AppState;
use crate::api::refusal::{ErrorCode, Refusal};

/// The exposition format's media type.
const EXPOSITION: &str = "text/plain; version=0.0.4; charset=utf-8";

/// The metrics, to a request with `Authorization: Bearer <metrics_token>`.
pub async fn scrape_with_token(State(state): State<AppState>, headers: HeaderMap) -> Response {
    let Some(token) = state.settings.metrics_token.as_deref() else {
        return Refusal::new(ErrorCode::NotFound).into_response();
    };
    let presented = headers
        .get(header::AUTHORIZATION)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.strip_prefix("Bearer "))
        .unwrap_or_default();
    if !bool::from(presented.as_bytes().ct_eq(token.as_bytes())) {
        return Refusal::new(ErrorCode::Unauthorized)
            .with_detail(
                "GET /metrics needs Authorization: Bearer with the server's metrics_token.",
            )
            .into_response();
    }
    exposition().unwrap_or_else(|| Refusal::new(ErrorCode::NotFound).into_response())
}

/// The metrics, to anyone: the listener of `metrics_listen`.
async fn scrape() -> Response {
    exposition().unwrap_or_else(|| StatusCode::NOT_FOUND.into_response())
}

/// The exposition, once metrics are recorded.
fn exposition() -> Option<Response> {
    let text = crate::metrics::render()?;
    Some(
        (
            StatusCode::OK,
            [(header::CONTENT_TYPE, HeaderValue::from_static(EXPOSITION))],
            text,
        )
            .into_response(),
    )
}

/// The router of the `metrics_listen` listener: `GET /metrics` only.
pub fn router() -> Router {
    Router::new().route("/metrics", get(scrape))
}
