//! The HTTP adapters: routing, middleware, extractors and the canonical
//! `/api/v2` handlers. Handlers extract, convert to core input, call the
//! store, and convert the result to a wire DTO.

pub mod admission;
pub mod auth;
pub mod context;
pub mod download;
pub mod error_pages;
pub mod extract;
pub mod fields;
pub mod health;
pub mod idempotency;
pub mod key_cache;
pub mod metrics;
pub mod percent;
pub mod problem;
pub mod profiles;
pub mod range;
pub mod refusal;
pub mod respond;
pub mod upload_body;
pub mod utf8;
pub mod v2;

use std::sync::{Arc, LazyLock};
use std::time::Duration;

use axum::Router;
use axum::extract::{DefaultBodyLimit, Request, State};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use tokio::sync::Semaphore;
use tower_http::catch_panic::CatchPanicLayer;
use utoipa::OpenApi;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::api::problem::{ApiError, ErrorCode, Rfc9457};
use crate::api::profiles::Profile;
use crate::api::refusal::Renderers;
use crate::api::v2::{attachments, messages, openapi, tickets, uploads};
use crate::core::agency_signature::AgencySignatureKey;
use crate::core::id::KeyId;
use crate::core::idempotency::FingerprintKey;
use crate::core::render::HtmlCache;
use crate::core::text::TextLimits;
use crate::core::upload::attach::AttachLimits;
use crate::rate_limit::auth_failures::AuthFailures;
use crate::rate_limit::{Limiters, RateLimiter};
use crate::server::ConnectionLimits;
use crate::server::capped_counts::CappedCounts;
use crate::service::{CLAIM_LEASE, Idempotency, IdempotencyPolicy, Support, UploadPolicy, Uploads};
use crate::store::Store;
use crate::store::idempotency::ClaimHolder;

/// HTTP settings the handlers and middleware need.
#[derive(Debug, Clone)]
pub struct ApiSettings {
    /// Base URL clients reach the server at; problem `type` URIs start with it.
    pub public_url: String,
    /// Longest a request may take before it is answered with 503.
    pub request_timeout: Duration,
    /// Longest a client may take to send a write's body, from when the
    /// server starts reading it; 408 after that.
    pub body_read_timeout: Duration,
    /// Largest request body accepted, in bytes.
    pub max_body_bytes: usize,
    /// Bytes of request bodies held in memory at once, read or waiting for
    /// a turn; further writes wait for room before their body is read.
    pub max_buffered_body_bytes: usize,
    /// Requests handled at once; more wait their turn. Only authenticated
    /// requests with their bodies in take a turn.
    pub max_concurrent_requests: usize,
    /// Requests one API key may have in progress at once (from its
    /// authentication on); more are answered 429.
    pub max_concurrent_requests_per_key: usize,
    /// The longest subject and message accepted.
    pub text_limits: TextLimits,
    /// What the listener allows each connection, and how many at once.
    pub connections: ConnectionLimits,
    /// How long the response of a request with an `Idempotency-Key` is kept
    /// for its retries.
    pub idempotency_ttl: Duration,
    /// The server idempotency claims are taken for: this node and process.
    pub claim_holder: ClaimHolder,
    /// The token a scrape of `GET /metrics` on this listener must send;
    /// `None` to serve no metrics here.
    pub metrics_token: Option<String>,
    /// How long a key's credentials, once read, are used without reading
    /// them again (see [`key_cache`]); zero reads them on every request.
    pub api_key_cache: Duration,
    /// Bytes of rendered message HTML kept in memory; zero renders on
    /// every read.
    pub html_cache_bytes: usize,
    /// How many files a message may carry, and what a ticket's may hold.
    pub attach_limits: AttachLimits,
    /// The compatibility profiles served beside the canonical API.
    pub profiles: Vec<Profile>,
}

/// What every handler shares: one reference-counted bundle, so that the
/// copies each middleware layer and extractor takes cost one counter update.
#[derive(Clone)]
pub struct AppState(Arc<SharedState>);

/// The contents of [`AppState`].
pub struct SharedState {
    /// The database.
    pub store: Arc<dyn Store>,
    /// The ticket use cases, over `store`.
    pub support: Support,
    /// Claims on idempotency keys, over `store`.
    pub idempotency: Idempotency,
    /// Uploaded files, over `store` and the blob store.
    pub uploads: Uploads,
    /// The per-key rate limiter.
    pub limiter: Arc<dyn RateLimiter>,
    /// Failed authentications per client address; `None` when unlimited.
    pub auth_failures: Option<AuthFailures>,
    /// HTTP settings.
    pub settings: ApiSettings,
    /// What requests with an `Idempotency-Key` are fingerprinted under.
    fingerprint_key: FingerprintKey,
    /// What agency signatures are checked with.
    pub agency_signatures: AgencySignatureKey,
    /// Turns among the requests handled at once.
    in_flight: Semaphore,
    /// Requests in progress per API key.
    key_concurrency: Arc<CappedCounts<KeyId>>,
    /// Room for the request bodies held in memory.
    body_budget: admission::BodyBudget,
    /// Turns among the uploads handled at once.
    upload_turns: Semaphore,
    /// API keys read recently.
    key_cache: key_cache::KeyCache,
    /// Messages rendered recently.
    pub html_cache: Arc<HtmlCache>,
    /// This server's OpenAPI document (it states the configured limits).
    openapi: axum::body::Bytes,
    /// Who writes the refusals under which path: RFC 9457 problems unless
    /// an API mounted elsewhere has its own format.
    pub renderers: Renderers,
}

impl std::ops::Deref for AppState {
    type Target = SharedState;

    fn deref(&self) -> &SharedState {
        &self.0
    }
}

impl AppState {
    /// Bundles the parts of a running API. `fingerprint_key` comes from the
    /// server secret (`Encryption::fingerprint_key`), the same on every node;
    /// so do `agency_signatures` and the key `uploads` signs upload URLs
    /// with.
    pub fn new(
        store: Arc<dyn Store>,
        limiters: Limiters,
        settings: ApiSettings,
        fingerprint_key: FingerprintKey,
        agency_signatures: AgencySignatureKey,
        uploads: Uploads,
    ) -> Self {
        let in_flight = Semaphore::new(settings.max_concurrent_requests.max(1));
        let upload_turns = Semaphore::new((settings.max_concurrent_requests / 4).max(1));
        let key_concurrency = CappedCounts::new(settings.max_concurrent_requests_per_key.max(1));
        let body_budget = admission::BodyBudget::new(settings.max_buffered_body_bytes);
        let file_limits = openapi::FileLimits::of(uploads.policy(), settings.attach_limits);
        let openapi = openapi::with_text_limits(openapi_json(), settings.text_limits);
        let openapi = openapi::with_file_limits(&openapi, &file_limits);
        let openapi = openapi::with_server(&openapi, &settings.public_url).into();
        let key_cache = key_cache::KeyCache::new(settings.api_key_cache);
        let settings_profiles = settings.profiles.clone();
        let html_cache = Arc::new(HtmlCache::new(settings.html_cache_bytes));
        Self(Arc::new(SharedState {
            support: Support::new(Arc::clone(&store)).with_attach_limits(settings.attach_limits),
            uploads,
            idempotency: Idempotency::new(
                Arc::clone(&store),
                IdempotencyPolicy {
                    ttl: settings.idempotency_ttl,
                    lease: CLAIM_LEASE,
                    holder: settings.claim_holder.clone(),
                },
            ),
            store,
            limiter: limiters.keys,
            auth_failures: limiters.auth_failures,
            settings,
            fingerprint_key,
            agency_signatures,
            in_flight,
            key_concurrency,
            body_budget,
            upload_turns,
            key_cache,
            html_cache,
            openapi,
            renderers: profiles::renderers(Renderers::new(Rfc9457), &settings_profiles),
        }))
    }
}

/// Every documented route, unlayered, with the OpenAPI document
/// describing them all.
struct DocumentedRoutes {
    /// The support API, to be put behind authentication.
    support: Router<AppState>,
    /// Pre-signed upload URLs, authenticated by their signature.
    signed_uploads: Router<AppState>,
    /// The operational endpoints (open).
    operations: Router<AppState>,
    /// The OpenAPI document.
    doc: utoipa::openapi::OpenApi,
}

fn documented_routes() -> DocumentedRoutes {
    let (support, support_doc) = OpenApiRouter::<AppState>::new()
        .routes(routes!(tickets::list_tickets, tickets::create_ticket))
        .routes(routes!(tickets::get_ticket))
        .routes(routes!(messages::list_messages, messages::reply_to_ticket))
        .routes(routes!(messages::get_message))
        .routes(routes!(tickets::close_ticket))
        .routes(routes!(tickets::reopen_ticket))
        .routes(routes!(tickets::resolve_ticket))
        .routes(routes!(tickets::mark_ticket_in_progress))
        .routes(routes!(attachments::download_attachment))
        .routes(routes!(uploads::create_upload))
        .routes(routes!(uploads::get_upload))
        .routes(routes!(uploads::create_upload_url))
        .split_for_parts();
    let (signed_uploads, signed_doc) = OpenApiRouter::<AppState>::new()
        .routes(routes!(uploads::upload_to_url))
        .split_for_parts();
    let (operations, mut doc) = OpenApiRouter::with_openapi(openapi::ApiDoc::openapi())
        .routes(routes!(health::healthz))
        .routes(routes!(health::readyz))
        .routes(routes!(error_pages::error_page))
        .routes(routes!(serve_openapi))
        .split_for_parts();
    doc.merge(support_doc);
    doc.merge(signed_doc);
    // The modifier ran before the support paths were merged in; run it again
    // so that they get the shared responses too.
    utoipa::Modify::modify(&openapi::CommonResponses, &mut doc);
    DocumentedRoutes {
        support,
        signed_uploads,
        operations,
        doc,
    }
}

static OPENAPI_JSON: LazyLock<String> = LazyLock::new(|| {
    let document = documented_routes()
        .doc
        .to_pretty_json()
        .unwrap_or_else(|_| "{}".to_owned());
    let defaults = openapi::FileLimits::of(&UploadPolicy::default(), AttachLimits::default());
    openapi::with_file_limits(&document, &defaults)
});

/// The OpenAPI document for the published text limits and the default
/// file limits; a server serves it with its own limits and its own
/// `servers` entry.
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

/// Whether requests to `path` stream their bodies to their handler (file
/// uploads) rather than having them read whole first: they are limited by
/// `max_upload_bytes` instead of `max_body_bytes`, and get longer to
/// arrive ([`upload_body::deadline`]).
pub fn streams_body(path: &str) -> bool {
    path == uploads::UPLOADS_PATH
        || path.starts_with(uploads::SIGNED_UPLOADS_PREFIX)
        || profiles::streams_body(path)
}

/// Admits a request to the router: answers 413 at once when its declared
/// `Content-Length` is over the limit (rather than reading the body, or
/// waiting for one that never comes, before refusing it; chunked bodies are
/// counted as they are read), and answers 503 if the whole takes longer
/// than the request timeout. The turn among the requests handled at once
/// is taken later, by support API requests only, once they are
/// authenticated and have their bodies ([`admission`]). Uploads check
/// their own length, against their own limit, and have their own deadline.
/// A request that has started a write is given the time to finish it
/// ([`within_deadline`]).
pub(crate) async fn admit(state: &AppState, request: Request, next: Next) -> Response {
    let streamed = streams_body(request.uri().path());
    let declared = request
        .headers()
        .get(axum::http::header::CONTENT_LENGTH)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.parse::<u64>().ok());
    let limit = u64::try_from(state.settings.max_body_bytes).unwrap_or(u64::MAX);
    if !streamed && declared.is_some_and(|length| length > limit) {
        return ApiError::new(ErrorCode::PayloadTooLarge).into_response();
    }
    let deadline = if streamed {
        upload_body::deadline(state)
    } else {
        state.settings.request_timeout
    };
    let grace = state.settings.request_timeout;
    match within_deadline(deadline, grace, next.run(request)).await {
        Some(response) => response,
        None => ApiError::new(ErrorCode::RequestTimeout)
            .with_retry_after(1)
            .into_response(),
    }
}

/// Runs `request` for at most `deadline`; but once it has started a write
/// ([`crate::service::watch_writes`]), which may commit at any moment,
/// until its outcome is known, for at most `grace` more: a client must
/// never be told "timed out, retry" for a write that committed. `None` if
/// it took longer.
async fn within_deadline<F: std::future::Future<Output = Response>>(
    deadline: Duration,
    grace: Duration,
    request: F,
) -> Option<Response> {
    let started = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let run = crate::service::watch_writes(Arc::clone(&started), request);
    tokio::pin!(run);
    if let Ok(response) = tokio::time::timeout(deadline, &mut run).await {
        return Some(response);
    }
    if !crate::service::started_a_write(&started) {
        return None;
    }
    tokio::time::timeout(grace, run).await.ok()
}

fn panic_response(_: Box<dyn std::any::Any + Send + 'static>) -> Response {
    ApiError::internal("a handler panicked").into_response()
}

/// The whole HTTP application over `state`.
pub fn app(state: AppState) -> Router {
    let DocumentedRoutes {
        mut support,
        mut signed_uploads,
        mut operations,
        ..
    } = documented_routes();
    // The profiles' routes join the canonical ones before the layers, so
    // that every API shares them. Route layers run outermost last-added
    // first: authentication (with the key's rate limit, then admission: its
    // place among the key's requests in progress, the body, a turn among
    // the requests handled at once), then idempotency keys (scoped to the
    // authenticated API key).
    for profile in &state.settings.profiles {
        let routes = profile.routes();
        support = support.merge(routes.authenticated);
        signed_uploads = signed_uploads.merge(routes.signed);
        operations = operations.merge(routes.open);
    }
    // An agency request's signature is checked once its key is known, and
    // before its idempotency key is claimed.
    let support = support
        .route_layer(middleware::from_fn_with_state(
            state.clone(),
            idempotency::guard,
        ))
        .route_layer(middleware::from_fn_with_state(
            state.clone(),
            profiles::agency::check_signature,
        ))
        .route_layer(middleware::from_fn_with_state(
            state.clone(),
            auth::authenticate,
        ));
    let signed_uploads = signed_uploads.route_layer(middleware::from_fn_with_state(
        state.clone(),
        auth::authenticate_upload_url,
    ));
    if state.settings.metrics_token.is_some() {
        operations = operations.route("/metrics", get(metrics::scrape_with_token));
    }
    operations
        .merge(support)
        .merge(signed_uploads)
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(CatchPanicLayer::custom(panic_response))
        .layer(DefaultBodyLimit::max(state.settings.max_body_bytes))
        .layer(middleware::from_fn_with_state(
            state.clone(),
            context::track_request,
        ))
        .with_state(state)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok() -> Response {
        axum::http::StatusCode::CREATED.into_response()
    }

    #[tokio::test(start_paused = true)]
    async fn a_request_that_started_a_write_is_answered_with_its_outcome() {
        let (deadline, grace) = (Duration::from_secs(30), Duration::from_secs(30));
        let reading = async {
            tokio::time::sleep(Duration::from_secs(31)).await;
            ok()
        };
        assert!(within_deadline(deadline, grace, reading).await.is_none());
        let writing = async {
            crate::service::note_write_for_tests();
            tokio::time::sleep(Duration::from_secs(31)).await;
            ok()
        };
        let answered = within_deadline(deadline, grace, writing).await;
        assert_eq!(
            answered.map(|response| response.status().as_u16()),
            Some(201)
        );
        // Not for ever: a write that never ends is cut off after the grace.
        let stuck = async {
            crate::service::note_write_for_tests();
            std::future::pending::<()>().await;
            ok()
        };
        assert!(within_deadline(deadline, grace, stuck).await.is_none());
    }
}
