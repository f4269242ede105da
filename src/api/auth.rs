//! Authentication, rate limiting and scope checks.
//!
//! [`authenticate`] runs before every support API handler: it resolves the
//! bearer token to a [`Principal`] (401 otherwise; the key's stored
//! credentials come from the [`KeyCache`](crate::api::key_cache) when it
//! has them), charges the key's rate
//! limit (429 over it; 503 with `Retry-After` when a shared limiter cannot
//! decide), takes the request's place among the key's requests in progress
//! (429 `concurrency_limit_exceeded` past the cap, see
//! [`admission`](crate::api::admission)) and stamps the `X-RateLimit-*`
//! headers on whatever the handler answers. Handlers then state the scope
//! they need in their signature with [`Authed`], which answers 403 when
//! the key lacks it.
//!
//! Every failed authentication costs the client's address one failure of
//! its budget ([`AuthFailures`](crate::rate_limit::auth_failures)); past
//! it the address gets `429 auth_rate_limit_exceeded` instead of 401, and
//! its keys are not looked up in the database until it may try again.
//! Only a key this node has read before (its credentials are still in the
//! key cache, however old) is looked up meanwhile, and only when the
//! request proves its secret against them: that client is not the one
//! guessing, even behind the same NAT.

use std::marker::PhantomData;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::extract::{ConnectInfo, FromRequestParts, Request, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderName, HeaderValue, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use crate::api::AppState;
use crate::api::admission::{self, over_key_concurrency};
use crate::api::refusal::{ErrorCode, Refusal};
use crate::api::v2::service_errors::canonical_upload;
use crate::core::access::{Principal, Scope};
use crate::core::id::KeyId;
use crate::core::token::ApiToken;
use crate::core::upload::signed_url::SignedUrlError;
use crate::rate_limit::RateDecision;
use crate::server::{AddressGroup, Authenticated};
use crate::service::UploadError;
use crate::store::{KeyCredentials, StoreError};

const LIMIT_HEADER: HeaderName = HeaderName::from_static("x-ratelimit-limit");
const REMAINING_HEADER: HeaderName = HeaderName::from_static("x-ratelimit-remaining");
const RESET_HEADER: HeaderName = HeaderName::from_static("x-ratelimit-reset");

/// Middleware: authenticate the bearer token, apply the key's rate limit
/// and its cap on requests in progress.
pub async fn authenticate(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let address = client_address(&request);
    match resolve_principal(&state, request.headers(), address).await {
        Ok(principal) => admit(&state, principal, request, next).await,
        Err(error) => error.into_response(),
    }
}

/// Middleware for a pre-signed upload URL, which carries no API key: the
/// caller is the key that asked for the URL, if the URL's signature holds,
/// the key still works and still acts as the user the URL was made for.
/// From there on the request is limited as that key's requests are. The
/// URL is used up by its handler, not here.
pub async fn authenticate_upload_url(
    State(state): State<AppState>,
    request: Request,
    next: Next,
) -> Response {
    let address = client_address(&request);
    let token = request.uri().path().rsplit('/').next().unwrap_or_default();
    let grant = match state.uploads.grant_of(token) {
        Ok(grant) => grant,
        // A URL ticketd did not sign is a failed authentication, counted
        // as a wrong API key is (an expired one was ticketd's).
        Err(error @ UploadError::Url(SignedUrlError::Malformed | SignedUrlError::Forged)) => {
            let refusal = canonical_upload(error, &state.uploads.policy().media);
            return match count_failure(&state, address).await {
                Some(wait) => too_many_failures(wait).into_response(),
                None => refusal.into_response(),
            };
        }
        Err(error) => {
            return canonical_upload(error, &state.uploads.policy().media).into_response();
        }
    };
    let credentials = match state.key_cache.get(grant.key_id) {
        Some(credentials) => Some(credentials),
        None => match read_credentials(&state, grant.key_id).await {
            Ok(credentials) => credentials,
            Err(refusal) => return refusal.into_response(),
        },
    };
    match credentials {
        Some(credentials)
            if !credentials.revoked && credentials.principal.actor.user_id == grant.user_id =>
        {
            let principal = credentials.principal.clone();
            admit(&state, principal, request, next).await
        }
        _ => Refusal::new(ErrorCode::UploadUrlInvalid)
            .with_detail("The API key that asked for this upload URL no longer works.")
            .into_response(),
    }
}

/// The rest of authentication, once the caller is known: the key's rate
/// limit, its place among its requests in progress, then [`admission`].
async fn admit(
    state: &AppState,
    principal: Principal,
    mut request: Request,
    next: Next,
) -> Response {
    let key_id = principal.key_id;
    let decision = match state.limiter.check(principal.key_id).await {
        Ok(decision) => decision,
        // Refuse rather than let the key through unlimited: an unreachable
        // shared limiter must not switch the limit off on every node.
        Err(error) => return Refusal::unavailable(error.to_string()).into_response(),
    };
    let mut response = if !decision.allowed {
        let retry_after = decision
            .retry_after
            .map_or(1, |wait| ceil_secs(wait).max(1));
        crate::metrics::count(
            crate::metrics::RATE_LIMIT_REFUSALS,
            Some(("limit", "key_rate")),
            1,
        );
        Refusal::new(ErrorCode::RateLimitExceeded)
            .with_retry_after(retry_after)
            .into_response()
    } else if let Some(_place) = state.key_concurrency.take(key_id) {
        request.extensions_mut().insert(principal);
        let mut response = admission::run(state, request, next).await;
        // For the listener: the connection carried an admitted request,
        // and earns the full idle timeout. A refused one earns nothing, or
        // a key past its limits could hold idle connections as long.
        response.extensions_mut().insert(Authenticated);
        response
    } else {
        over_key_concurrency(state.settings.max_concurrent_requests_per_key).into_response()
    };
    stamp_rate_limit(response.headers_mut(), &decision);
    // For the request's log line.
    response.extensions_mut().insert(key_id);
    response
}

/// Why a request was not authenticated.
enum Failure {
    /// The credentials are missing or wrong: a 401, counted against the
    /// client's address.
    Unauthorized(Refusal),
    /// No decision could be made, or the address may not try now: answered
    /// as it is, not counted.
    Refused(Refusal),
}

async fn resolve_principal(
    state: &AppState,
    headers: &HeaderMap,
    address: Option<AddressGroup>,
) -> Result<Principal, Refusal> {
    let failure = match verify(state, headers, address).await {
        Ok(principal) => return Ok(principal),
        Err(Failure::Refused(error)) => return Err(error),
        Err(Failure::Unauthorized(error)) => error,
    };
    match count_failure(state, address).await {
        Some(wait) => Err(too_many_failures(wait)),
        None => Err(failure),
    }
}

/// The client's address group. Set by the listener; absent only where the
/// router is driven without one, which then has no per-address limit.
fn client_address(request: &Request) -> Option<AddressGroup> {
    request
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|ConnectInfo(peer)| AddressGroup::of(peer.ip()))
}

/// Counts a failed authentication against `address`; how long it must
/// wait if that spent its budget.
async fn count_failure(state: &AppState, address: Option<AddressGroup>) -> Option<Duration> {
    let (Some(failures), Some(address)) = (&state.auth_failures, address) else {
        return None;
    };
    match failures.failed(address).await {
        Ok(wait) => wait,
        // A shared limiter that cannot count the failure does not turn a
        // 401 into a 503: the request is refused either way, and the
        // address's earlier refusals still hold on this node.
        Err(error) => {
            tracing::debug!(%error, "a failed authentication could not be counted");
            None
        }
    }
}

fn too_many_failures(wait: Duration) -> Refusal {
    crate::metrics::count(
        crate::metrics::RATE_LIMIT_REFUSALS,
        Some(("limit", "auth_failures")),
        1,
    );
    Refusal::new(ErrorCode::AuthRateLimitExceeded).with_retry_after(ceil_secs(wait).max(1))
}

async fn verify(
    state: &AppState,
    headers: &HeaderMap,
    address: Option<AddressGroup>,
) -> Result<Principal, Failure> {
    let unauthorized = |detail: &str| {
        Failure::Unauthorized(Refusal::new(ErrorCode::Unauthorized).with_detail(detail))
    };
    let Some(value) = headers.get(header::AUTHORIZATION) else {
        return Err(unauthorized(
            "Authentication is required: send Authorization: Bearer <API key>.",
        ));
    };
    let token = value
        .to_str()
        .ok()
        .and_then(|text| {
            let (scheme, token) = text.split_once(' ')?;
            scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
        })
        .ok_or_else(|| unauthorized("The Authorization header must be `Bearer <API key>`."))?;
    let token = ApiToken::parse(token).ok_or_else(|| unauthorized("The API key is not valid."))?;
    let credentials = match state.key_cache.get(token.key_id) {
        Some(credentials) => Some(credentials),
        None => {
            let blocked = address.and_then(|address| {
                state
                    .auth_failures
                    .as_ref()
                    .and_then(|failures| failures.blocked(address))
            });
            if let Some(wait) = blocked {
                let proven_before = state
                    .key_cache
                    .get_stale(token.key_id)
                    .is_some_and(|credentials| token.verify(&credentials.secret_hash));
                if !proven_before {
                    return Err(Failure::Refused(too_many_failures(wait)));
                }
            }
            read_credentials(state, token.key_id)
                .await
                .map_err(Failure::Refused)?
        }
    };
    match credentials {
        Some(credentials) if token.verify(&credentials.secret_hash) => {
            if credentials.revoked {
                Err(unauthorized("The API key has been revoked."))
            } else {
                Ok(credentials.principal.clone())
            }
        }
        _ => Err(unauthorized("The API key is not valid.")),
    }
}

/// Reads a key's credentials from the database, keeping them in the cache
/// if the key exists.
async fn read_credentials(
    state: &AppState,
    key: KeyId,
) -> Result<Option<Arc<KeyCredentials>>, Refusal> {
    let read_at = Instant::now();
    match state.store.find_key_credentials(key).await {
        Ok(Some(credentials)) => {
            let credentials = Arc::new(credentials);
            state
                .key_cache
                .insert(key, Arc::clone(&credentials), read_at);
            Ok(Some(credentials))
        }
        Ok(None) => Ok(None),
        Err(StoreError::Unavailable(cause)) => Err(Refusal::unavailable(cause.to_string())),
        Err(error) => Err(Refusal::internal(error.to_string())),
    }
}

fn ceil_secs(duration: std::time::Duration) -> u64 {
    duration.as_secs() + u64::from(duration.subsec_nanos() > 0)
}

fn stamp_rate_limit(headers: &mut HeaderMap, decision: &RateDecision) {
    headers.insert(LIMIT_HEADER, HeaderValue::from(decision.limit));
    headers.insert(REMAINING_HEADER, HeaderValue::from(decision.remaining));
    headers.insert(
        RESET_HEADER,
        HeaderValue::from(ceil_secs(decision.reset_after)),
    );
}

/// A scope a handler requires, as a type.
pub trait RequiredScope: Send + Sync {
    /// The scope.
    const SCOPE: Scope;
}

/// `read:support`: every GET of the support API.
pub struct ReadSupport;

impl RequiredScope for ReadSupport {
    const SCOPE: Scope = Scope::ReadSupport;
}

/// `write:support`: every write of the support API.
pub struct WriteSupport;

impl RequiredScope for WriteSupport {
    const SCOPE: Scope = Scope::WriteSupport;
}

/// The authenticated caller, proven to hold scope `S`.
pub struct Authed<S> {
    /// The caller.
    pub principal: Principal,
    scope: PhantomData<S>,
}

impl<S: RequiredScope, St: Send + Sync> FromRequestParts<St> for Authed<S> {
    type Rejection = Refusal;

    async fn from_request_parts(parts: &mut Parts, _state: &St) -> Result<Self, Refusal> {
        let principal = parts
            .extensions
            .get::<Principal>()
            .cloned()
            .ok_or_else(|| Refusal::new(ErrorCode::Unauthorized))?;
        if !principal.scopes.contains(S::SCOPE) {
            return Err(Refusal::new(ErrorCode::Forbidden).with_detail(format!(
                "This API key lacks the `{}` scope this endpoint requires.",
                S::SCOPE.as_str()
            )));
        }
        Ok(Self {
            principal,
            scope: PhantomData,
        })
    }
}
