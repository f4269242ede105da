//! `Idempotency-Key` on every POST of the support API.
//!
//! [`guard`] runs after authentication. A POST that carries a key is
//! fingerprinted (an HMAC of method, path and body under a key derived from
//! the server secret, so the stored fingerprint reveals nothing of the body)
//! and claims the key for its API key:
//!
//! - a completed record of the same request: its stored response is sent
//!   again, with `Idempotent-Replayed: true`, and nothing runs;
//! - a record of another request: `422 idempotency_key_reused`;
//! - the same request still in progress: `409
//!   idempotency_request_in_progress` with `Retry-After`;
//! - otherwise the claim is granted and the handler runs with it
//!   ([`Keyed`]): its write completes the record with the response in the
//!   same transaction. If the handler fails instead (a 4xx or 5xx: nothing
//!   was written), or the request is abandoned (it timed out, the client
//!   went away, the handler panicked), the claim is released, so nothing
//!   is recorded and a retry runs afresh. Releasing is safe even while the
//!   abandoned write is still on its way: the release only deletes a
//!   record still in progress under the claim's token, and it queues behind
//!   the write (SQLite's single writer) or waits for the write's lock on
//!   the record (PostgreSQL), so it finds the record completed if the
//!   write commits.
//!
//! A claim's lease is the request timeout: a request cannot hold its claim
//! longer, so a claim still in progress after that was abandoned without a
//! release (the process died) and a retry takes it over. Records expire
//! `idempotency_ttl` after the request that claimed them and are swept by
//! [`sweep_expired_records`].

use std::sync::Arc;
use std::time::Duration;

use axum::extract::{FromRequestParts, Request, State};
use axum::http::request::Parts;
use axum::http::{HeaderName, HeaderValue, Method};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use crate::api::AppState;
use crate::api::extract::read_body;
use crate::api::refusal::{ErrorCode, Refusal};
use crate::api::respond;
use crate::core::access::{Principal, Scope};
use crate::core::idempotency::{ClaimToken, Fingerprint, IdempotencyKey, KeyError};
use crate::core::time::Timestamp;
use crate::store::Store;
use crate::store::idempotency::{
    Claim, ClaimOutcome, ClaimRequest, Completion, Render, StoredResponse,
};

/// The request header carrying the key.
pub const IDEMPOTENCY_KEY: HeaderName = HeaderName::from_static("idempotency-key");

/// The response header marking a replayed response.
pub const IDEMPOTENT_REPLAYED: HeaderName = HeaderName::from_static("idempotent-replayed");

/// Seconds a client is asked to wait before retrying a request in progress.
const RETRY_AFTER_SECS: u64 = 1;

/// How often expired records are swept.
const SWEEP_INTERVAL: Duration = Duration::from_secs(60);

/// Records deleted per sweeping transaction.
const SWEEP_BATCH: u32 = 1_000;

/// The claim [`guard`] took for a request, as the handler finds it.
#[derive(Debug, Clone)]
struct Claimed {
    claim: Claim,
    expires_at: Timestamp,
}

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
        Ok(key) => key,
        Err(error) => return error.into_response(),
    };
    let (parts, body) = request.into_parts();
    let body = match read_body(Request::from_parts(parts.clone(), body), &state).await {
        Ok(body) => body,
        Err(error) => return error.into_response(),
    };
    let now = Timestamp::now();
    let expires_at = later(now, state.settings.idempotency_ttl);
    let claim = ClaimRequest {
        api_key,
        key,
        fingerprint: Fingerprint::of_request(
            &state.fingerprint_key,
            parts.method.as_str(),
            parts.uri.path(),
            &body,
        ),
        token: ClaimToken::generate(),
        now,
        lease_until: later(now, state.settings.request_timeout),
        expires_at,
    };
    let claim = match state.store.claim_idempotency_key(claim).await {
        Ok(ClaimOutcome::Claimed(claim)) => claim,
        Ok(ClaimOutcome::Replay(stored)) => return replay(stored),
        Ok(ClaimOutcome::InProgress) => return in_progress().into_response(),
        Ok(ClaimOutcome::Mismatch) => {
            return Refusal::new(ErrorCode::IdempotencyKeyReused).into_response();
        }
        Err(error) => return Refusal::from(error).into_response(),
    };
    let mut request = Request::from_parts(parts, body.into());
    request.extensions_mut().insert(Claimed {
        claim: claim.clone(),
        expires_at,
    });
    let mut held = Held::new(Arc::clone(&state.store), claim);
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

/// A claim the guard holds while its request runs; released unless the
/// request completed its record, also when the request is dropped midway.
struct Held {
    store: Arc<dyn Store>,
    claim: Option<Claim>,
}

impl Held {
    fn new(store: Arc<dyn Store>, claim: Claim) -> Self {
        Self {
            store,
            claim: Some(claim),
        }
    }

    /// The record is completed: nothing to release.
    fn completed(&mut self) {
        self.claim = None;
    }

    async fn release(&mut self) {
        if let Some(claim) = self.claim.take() {
            release(self.store.as_ref(), &claim).await;
        }
    }
}

impl Drop for Held {
    fn drop(&mut self) {
        let Some(claim) = self.claim.take() else {
            return;
        };
        // Dropped midway (a timeout, a client gone, a panic): release in
        // the background. Without a runtime the claim lapses with its lease.
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            let store = Arc::clone(&self.store);
            runtime.spawn(async move { release(store.as_ref(), &claim).await });
        }
    }
}

async fn release(store: &dyn Store, claim: &Claim) {
    if let Err(error) = store.release_idempotency_key(claim).await {
        tracing::warn!(%error, "releasing an idempotency claim failed; it lapses with its lease");
    }
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

fn in_progress() -> Refusal {
    Refusal::new(ErrorCode::IdempotencyRequestInProgress).with_retry_after(RETRY_AFTER_SECS)
}

fn later(now: Timestamp, after: Duration) -> Timestamp {
    let millis = i64::try_from(after.as_millis()).unwrap_or(i64::MAX);
    Timestamp::from_millis(now.millis().saturating_add(millis))
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
/// Handlers pass it to the store's `*_once` write, which completes the
/// claim's record with the response in the write's transaction.
#[derive(Debug)]
pub struct Keyed(Option<Claimed>);

impl<S: Send + Sync> FromRequestParts<S> for Keyed {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        Ok(Self(parts.extensions.get::<Claimed>().cloned()))
    }
}

impl Keyed {
    /// Whether the request carries an `Idempotency-Key` (and holds its claim).
    pub fn is_keyed(&self) -> bool {
        self.0.is_some()
    }

    /// How the write completes the claim's record, rendering its response
    /// with `render`; `None` for a request without a key.
    pub fn completion<T>(self, render: Render<T>) -> Option<Completion<T>> {
        self.0.map(|claimed| Completion {
            claim: claimed.claim,
            expires_at: claimed.expires_at,
            render,
        })
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

/// Deletes expired records now and then every [`SWEEP_INTERVAL`], a batch
/// per transaction; runs until dropped. Failures are logged and retried at
/// the next round (claims ignore expired records anyway).
pub async fn sweep_expired_records(store: Arc<dyn Store>) {
    let mut rounds = tokio::time::interval(SWEEP_INTERVAL);
    rounds.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        rounds.tick().await;
        loop {
            match store
                .sweep_idempotency_keys(Timestamp::now(), SWEEP_BATCH)
                .await
            {
                Ok(swept) if swept >= u64::from(SWEEP_BATCH) => continue,
                Ok(_) => break,
                Err(error) => {
                    tracing::warn!(%error, "sweeping expired idempotency records failed");
                    break;
                }
            }
        }
    }
}
