//! The HTTP adapters: routing, middleware, extractors and the canonical
//! `/api/v2` handlers. Handlers extract, convert to core input, call the
//! store, and convert the result to a wire DTO.

pub mod auth;
pub mod context;
pub mod error_pages;
pub mod extract;
pub mod fields;
pub mod health;
pub mod idempotency;
pub mod messages;
pub mod openapi;
pub mod percent;
pub mod problem;
pub mod respond;
pub mod tickets;
pub mod utf8;
pub mod wire;

use std::sync::{Arc, LazyLock};
use std::time::Duration;

use axum::Router;
use axum::extract::{DefaultBodyLimit, Request, State};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use tokio::sync::Semaphore;
use tower_http::catch_panic::CatchPanicLayer;
use utoipa::OpenApi;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::api::problem::{ApiError, ErrorCode};
use crate::core::text::TextLimits;
use crate::rate_limit::RateLimiter;
use crate::server::ConnectionLimits;
use crate::store::Store;

/// HTTP settings the handlers and middleware need.
#[derive(Debug, Clone)]
pub struct ApiSettings {
    /// Base URL clients reach the server at; problem `type` URIs start with it.
    pub public_url: String,
    /// Longest a request may take before it is answered with 503.
    pub request_timeout: Duration,
    /// Largest request body accepted, in bytes.
    pub max_body_bytes: usize,
    /// Requests handled at once; more wait their turn.
    pub max_concurrent_requests: usize,
    /// The longest subject and message accepted.
    pub text_limits: TextLimits,
    /// What the listener allows each connection, and how many at once.
    pub connections: ConnectionLimits,
    /// How long the response of a request with an `Idempotency-Key` is kept
    /// for its retries.
    pub idempotency_ttl: Duration,
}

/// What every handler shares.
#[derive(Clone)]
pub struct AppState {
    /// The database.
    pub store: Arc<dyn Store>,
    /// The per-key rate limiter.
    pub limiter: Arc<dyn RateLimiter>,
    /// HTTP settings.
    pub settings: Arc<ApiSettings>,
    in_flight: Arc<Semaphore>,
    /// This server's OpenAPI document (it states the configured limits).
    openapi: axum::body::Bytes,
}

impl AppState {
    /// Bundles the parts of a running API.
    pub fn new(
        store: Arc<dyn Store>,
        limiter: Arc<dyn RateLimiter>,
        settings: ApiSettings,
    ) -> Self {
        let in_flight = Arc::new(Semaphore::new(settings.max_concurrent_requests.max(1)));
        let openapi = openapi::with_text_limits(openapi_json(), settings.text_limits).into();
        Self {
            store,
            limiter,
            settings: Arc::new(settings),
            in_flight,
            openapi,
        }
    }
}

/// Every documented route, unlayered: the support API (to be put behind
/// authentication) and the operational endpoints (open), with the OpenAPI
/// document describing both.
fn documented_routes() -> (Router<AppState>, Router<AppState>, utoipa::openapi::OpenApi) {
    let (support, support_doc) = OpenApiRouter::<AppState>::new()
        .routes(routes!(tickets::list_tickets, tickets::create_ticket))
        .routes(routes!(tickets::get_ticket))
        .routes(routes!(messages::list_messages, messages::reply_to_ticket))
        .routes(routes!(messages::get_message))
        .routes(routes!(tickets::close_ticket))
        .routes(routes!(tickets::reopen_ticket))
        .routes(routes!(tickets::resolve_ticket))
        .routes(routes!(tickets::mark_ticket_in_progress))
        .split_for_parts();
    let (operations, mut doc) = OpenApiRouter::with_openapi(openapi::ApiDoc::openapi())
        .routes(routes!(health::healthz))
        .routes(routes!(health::readyz))
        .routes(routes!(error_pages::error_page))
        .routes(routes!(serve_openapi))
        .split_for_parts();
    doc.merge(support_doc);
    // The modifier ran before the support paths were merged in; run it again
    // so that they get the shared responses too.
    utoipa::Modify::modify(&openapi::CommonResponses, &mut doc);
    (support, operations, doc)
}

static OPENAPI_JSON: LazyLock<String> = LazyLock::new(|| {
    documented_routes()
        .2
        .to_pretty_json()
        .unwrap_or_else(|_| "{}".to_owned())
});

/// The OpenAPI document for the published text limits; a server whose
/// limits are lower serves it with those instead.
pub fn openapi_json() -> &'static str {
    &OPENAPI_JSON
}

/// This API's OpenAPI 3.1 document.
#[utoipa::path(
    get,
    path = "/openapi.json",
    tag = "Operations",
    responses((status = 200, description = "The OpenAPI document.", content_type = "application/json", body = Object))
)]
pub async fn serve_openapi(State(state): State<AppState>) -> Response {
    (
        [(axum::http::header::CONTENT_TYPE, "application/json")],
        state.openapi.clone(),
    )
        .into_response()
}

async fn not_found() -> ApiError {
    ApiError::new(ErrorCode::NotFound)
}

async fn method_not_allowed() -> ApiError {
    ApiError::new(ErrorCode::MethodNotAllowed)
}

async fn enforce_timeout(State(state): State<AppState>, request: Request, next: Next) -> Response {
    match tokio::time::timeout(state.settings.request_timeout, next.run(request)).await {
        Ok(response) => response,
        Err(_) => ApiError::new(ErrorCode::RequestTimeout)
            .with_retry_after(1)
            .into_response(),
    }
}

/// Answers 413 at once when the declared `Content-Length` is over the
/// limit, rather than reading the body (or waiting for one that never
/// comes) before refusing it. Chunked bodies are counted as they are read.
async fn refuse_oversized_body(
    State(state): State<AppState>,
    request: Request,
    next: Next,
) -> Response {
    let declared = request
        .headers()
        .get(axum::http::header::CONTENT_LENGTH)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.parse::<u64>().ok());
    let limit = u64::try_from(state.settings.max_body_bytes).unwrap_or(u64::MAX);
    if declared.is_some_and(|length| length > limit) {
        return ApiError::new(ErrorCode::PayloadTooLarge).into_response();
    }
    next.run(request).await
}

async fn limit_concurrency(
    State(state): State<AppState>,
    request: Request,
    next: Next,
) -> Response {
    match state.in_flight.acquire().await {
        Ok(_permit) => next.run(request).await,
        Err(_) => ApiError::unavailable("the server is shutting down").into_response(),
    }
}

fn panic_response(_: Box<dyn std::any::Any + Send + 'static>) -> Response {
    ApiError::internal("a handler panicked").into_response()
}

/// The whole HTTP application over `state`.
pub fn app(state: AppState) -> Router {
    let (support, operations, _) = documented_routes();
    // Route layers run outermost last-added first: authentication, then
    // idempotency keys (scoped to the authenticated API key).
    let support = support
        .route_layer(middleware::from_fn_with_state(
            state.clone(),
            idempotency::guard,
        ))
        .route_layer(middleware::from_fn_with_state(
            state.clone(),
            auth::authenticate,
        ));
    operations
        .merge(support)
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(middleware::from_fn_with_state(
            state.clone(),
            limit_concurrency,
        ))
        .layer(DefaultBodyLimit::max(state.settings.max_body_bytes))
        .layer(middleware::from_fn_with_state(
            state.clone(),
            refuse_oversized_body,
        ))
        .layer(middleware::from_fn_with_state(
            state.clone(),
            enforce_timeout,
        ))
        .layer(CatchPanicLayer::custom(panic_response))
        .layer(middleware::from_fn_with_state(
            state.clone(),
            context::track_request,
        ))
        .with_state(state)
}
