//! `Idempotency-Key` on every POST of the support API.
//!
//! [`guard`] runs after authentication. A POST that carries a key is
//! fingerprinted (an HMAC of method, path and body under a key derived from
//! the server secret, so the stored fingerprint reveals nothing of the body)
//! and claims the key for its API key ([`crate::service::Idempotency`]):
//!
//! - a completed record of the same request: its stored response is sent
//!   again, with `Idempotent-Replayed: true`, and nothing runs;
//! - a record of another request: `422 idempotency_key_reused`;
//! - the same request still in progress: `409
//!   idempotency_request_in_progress` with `Retry-After` the seconds its
//!   claim's lease has left (rounded up);
//! - an upload's body streams to its blob and is never held whole, so an
//!   upload is fingerprinted by its path, query, `Content-Type` and
//!   `Content-Length` instead of its bytes;
//! - otherwise the claim is granted and the handler runs with it
//!   ([`IdempotencyClaim`]): its write completes the record with the
//!   response in the same transaction. If the handler fails instead (a 4xx
//!   or 5xx: nothing was written), or the request is abandoned (it timed
//!   out, the client went away, the handler panicked), the claim is given
//!   back, so nothing is recorded and a retry runs afresh.

use axum::extract::{FromRequestParts, Request, State};
use axum::http::request::Parts;
use axum::http::{HeaderName, HeaderValue, Method};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use crate::api::AppState;
use crate::api::extract::read_body;
use crate::api::refusal::{self, ErrorCode, Refusal};
use crate::api::respond;
use crate::core::access::{Principal, Scope};
use crate::core::idempotency::{Fingerprint, IdempotencyKey, KeyError};
use crate::service::{ClaimAnswer, GrantedClaim, KeyedRequest};
use crate::store::idempotency::{Completion, Render, StoredResponse};

/// The request header carrying the key.
pub const IDEMPOTENCY_KEY: HeaderName = HeaderName::from_static("idempotency-key");

/// The response header marking a replayed response.
pub const IDEMPOTENT_REPLAYED: HeaderName = HeaderName::from_static("idempotent-replayed");

/// Marks a response whose write completed the request's idempotency record.
#[derive(Debug, Clone, Copy)]
struct Completed;

/// Middleware: idempotency for POST requests that carry an `Idempotency-Key`.
pub async fn guard(State(state): State<AppState>, request: Request, next: Next) -> Response {
    if request.method() != Method::POST || !request.headers().contains_key(IDEMPOTENCY_KEY) {
        return next.run(request).await;
    }
    // Keys belong to API keys that may write; any other caller is refused
    // by the handler (403), and nothing is claimed for it.
    let api_key = match request.extensions().get::<Principal>() {
        Some(principal) if principal.scopes.contains(Scope::WriteSupport) => principal.key_id,
        _ => return next.run(request).await,
    };
    let key = match key_of(&request) {
        Ok(key) if crate::api::profiles::keys_scoped_by_path(request.uri().path()) => {
            key.within(request.uri().path())
        }
        Ok(key) => key,
        Err(error) => return error.into_response(),
    };
    let (parts, body) = request.into_parts();
    let (body, fingerprint) = if crate::api::streams_body(parts.uri.path()) {
        // An upload's body streams to its blob and is never held whole, so
        // its request is known by what its head says of the file.
        let fingerprint = Fingerprint::of_request(
            &state.fingerprint_key,
            parts.method.as_str(),
            parts.uri.path(),
            &streamed_request_summary(&parts),
        );
        (body, fingerprint)
    } else {
        let body = match read_body(Request::from_parts(parts.clone(), body), &state).await {
            Ok(body) => body,
            Err(error) => return error.into_response(),
        };
        let fingerprint = Fingerprint::of_request(
            &state.fingerprint_key,
            parts.method.as_str(),
            parts.uri.path(),
            &body,
        );
        (body.into(), fingerprint)
    };
    let answer = state
        .idempotency
        .claim(KeyedRequest {
            api_key,
            key,
            fingerprint,
        })
        .await;
    let held = match answer {
        Ok(ClaimAnswer::Granted(held)) => held,
        Ok(ClaimAnswer::Replay(stored)) => return replay(stored),
        Ok(ClaimAnswer::InProgress { retry_after }) => {
            return in_progress(retry_after).into_response();
        }
        Ok(ClaimAnswer::Reused) => {
            return Refusal::new(ErrorCode::IdempotencyKeyReused).into_response();
        }
        Err(error) => return refusal::server_failure(error).into_response(),
    };
    let mut request = Request::from_parts(parts, body);
    request.extensions_mut().insert(held.granted().clone());
    let response = next.run(request).await;
    if response.extensions().get::<Completed>().is_some() {
        held.completed();
    } else {
        if response.status().is_success() {
            tracing::error!(
                status = response.status().as_u16(),
                "a keyed request succeeded without completing its idempotency record"
            );
        }
        // Nothing was written: give the key back so that a retry runs.
        held.release().await;
    }
    response
}

/// What identifies a request whose body streams (an upload) for its
/// `Idempotency-Key`: its query, `Content-Type` and `Content-Length`.
fn streamed_request_summary(parts: &axum::http::request::Parts) -> Vec<u8> {
    let header = |name| {
        parts
            .headers
            .get(name)
            .map_or(&b""[..], |value: &HeaderValue| value.as_bytes())
    };
    let mut summary = Vec::new();
    for piece in [
        parts.uri.query().unwrap_or_default().as_bytes(),
        header(axum::http::header::CONTENT_TYPE),
        header(axum::http::header::CONTENT_LENGTH),
    ] {
        summary.extend_from_slice(piece);
        summary.push(b'\n');
    }
    summary
}

/// The request's one `Idempotency-Key`, parsed.
fn key_of(request: &Request) -> Result<IdempotencyKey, Refusal> {
    let mut values = request.headers().get_all(IDEMPOTENCY_KEY).iter();
    let invalid =
        |detail: String| Refusal::new(ErrorCode::IdempotencyKeyInvalid).with_detail(detail);
    let (Some(value), None) = (values.next(), values.next()) else {
        return Err(invalid(
            "Send one Idempotency-Key header, not several.".to_owned(),
        ));
    };
    let text = value
        .to_str()
        .map_err(|_| invalid(format!("{}.", capitalised(KeyError::NotVisibleAscii))))?;
    IdempotencyKey::from_header(text).map_err(|error| invalid(format!("{}.", capitalised(error))))
}

fn capitalised(error: KeyError) -> String {
    let text = error.to_string();
    let mut chars = text.chars();
    match chars.next() {
        Some(first) => first.to_ascii_uppercase().to_string() + chars.as_str(),
        None => text,
    }
}

/// The 409 of a request whose first try still holds its claim, for
/// `retry_after` more.
fn in_progress(retry_after: std::time::Duration) -> Refusal {
    let seconds = retry_after.as_millis().div_ceil(1000);
    Refusal::new(ErrorCode::IdempotencyRequestInProgress)
        .with_retry_after(u64::try_from(seconds).unwrap_or(u64::MAX).max(1))
}

/// A stored response sent again.
fn replay(stored: StoredResponse) -> Response {
    match respond::from_stored(stored) {
        Ok(mut response) => {
            response
                .headers_mut()
                .insert(IDEMPOTENT_REPLAYED, HeaderValue::from_static("true"));
            response
        }
        Err(error) => error.into_response(),
    }
}

/// The request's idempotency claim, if it carried an `Idempotency-Key`.
/// Handlers pass its completion to the use case, whose write completes the
/// claim's record with the response in the write's transaction.
#[derive(Debug)]
pub struct IdempotencyClaim(Option<GrantedClaim>);

impl<S: Send + Sync> FromRequestParts<S> for IdempotencyClaim {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        Ok(Self(parts.extensions.get::<GrantedClaim>().cloned()))
    }
}

impl IdempotencyClaim {
    /// Whether the request carries an `Idempotency-Key` (and holds its claim).
    pub fn is_keyed(&self) -> bool {
        self.0.is_some()
    }

    /// How the write completes the claim's record, rendering its response
    /// with `render`; `None` for a request without a key.
    pub fn completion<T>(self, render: Render<T>) -> Option<Completion<T>> {
        self.0.map(|granted| granted.completion(render))
    }
}

/// The response of a write that completed its idempotency record.
///
/// # Errors
/// As [`respond::from_stored`].
pub fn completed(stored: StoredResponse) -> Result<Response, Refusal> {
    let mut response = respond::from_stored(stored)?;
    response.extensions_mut().insert(Completed);
    Ok(response)
}
