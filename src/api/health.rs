//! Liveness and readiness probes.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use serde::Serialize;
use utoipa::ToSchema;

use crate::api::AppState;
use crate::api::problem::{ApiError, Problem};
use crate::api::respond;

/// A probe's answer.
#[derive(Debug, Serialize, ToSchema)]
pub struct HealthResponse {
    /// `ok` (alive) or `ready` (serving).
    #[schema(example = "ok")]
    pub status: &'static str,
}

/// Liveness: the process is up and answering HTTP.
#[utoipa::path(
    get,
    path = "/healthz",
    tag = "Operations",
    responses((status = 200, description = "The process is alive.", body = HealthResponse))
)]
pub async fn healthz() -> Result<Response, ApiError> {
    respond::json(StatusCode::OK, &HealthResponse { status: "ok" })
}

/// Readiness: the database and the rate limiter's store answer, so
/// requests can be served. A 503's `detail` says which does not (and no
/// more: the probe is open to anyone).
#[utoipa::path(
    get,
    path = "/readyz",
    tag = "Operations",
    responses(
        (status = 200, description = "Ready to serve.", body = HealthResponse),
        (status = 503, description = "The database or the shared rate limiter cannot be reached.", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn readyz(State(state): State<AppState>) -> Result<Response, ApiError> {
    state.store.check_ready().await.map_err(|error| {
        ApiError::unavailable(error.to_string()).with_detail("The database cannot be reached.")
    })?;
    state.limiter.check_ready().await.map_err(|error| {
        ApiError::unavailable(error.to_string())
            .with_detail("The rate limiter's shared store (Redis) cannot be reached.")
    })?;
    respond::json(StatusCode::OK, &HealthResponse { status: "ready" })
}
