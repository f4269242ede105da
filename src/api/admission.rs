//! What an authenticated support API request goes through before its
//! handler runs, in this order:
//!
//! 1. a place among its API key's requests in progress ([`KeyConcurrency`]):
//!    at most
//!    `max_concurrent_requests_per_key`, more are answered `429
//!    concurrency_limit_exceeded`;
//! 2. for a write, its whole body, within `body_read_timeout` (`408
//!    request_body_timeout` after it) and `max_body_bytes` (413);
//! 3. a turn among the requests handled at once (`max_concurrent_requests`),
//!    waited for within the request timeout.
//!
//! [`crate::api::auth::authenticate`] takes the first and then calls
//! [`run`] for the other two.
//!
//! So a turn is only ever held by a request that is authenticated and has
//! its body: clients that send nothing, no key, or a body byte by byte hold
//! a connection (bounded by the listener's caps and the deadlines) but no
//! turn, and health checks take no turn at all.

use std::collections::HashMap;
use std::hash::{BuildHasher, RandomState};
use std::sync::{Mutex, PoisonError};

use axum::body::Body;
use axum::extract::Request;
use axum::http::{HeaderValue, Method, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use http_body::Body as _;
use http_body_util::{BodyExt, LengthLimitError, Limited};

use crate::api::AppState;
use crate::api::extract::UNREADABLE_BODY;
use crate::api::problem::{ApiError, ErrorCode};
use crate::core::id::KeyId;

/// Shards of [`KeyConcurrency`]: requests of different keys rarely wait
/// for the same lock.
const SHARDS: usize = 16;

/// How many requests each API key has in progress, each at most `cap`.
pub struct KeyConcurrency {
    cap: usize,
    hasher: RandomState,
    shards: [Mutex<HashMap<KeyId, usize>>; SHARDS],
}

impl KeyConcurrency {
    /// Counts allowing `cap` requests in progress per key.
    pub fn new(cap: usize) -> Self {
        Self {
            cap: cap.max(1),
            hasher: RandomState::new(),
            shards: std::array::from_fn(|_| Mutex::new(HashMap::new())),
        }
    }

    fn shard(&self, key: KeyId) -> std::sync::MutexGuard<'_, HashMap<KeyId, usize>> {
        let index = usize::try_from(self.hasher.hash_one(key) % SHARDS as u64).unwrap_or(0);
        // Plain counts, consistent after every update.
        self.shards[index]
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// A place for one more request of `key`; `None` when it already has
    /// `cap` in progress.
    pub fn enter(&self, key: KeyId) -> Option<KeyPlace<'_>> {
        let mut shard = self.shard(key);
        let count = shard.entry(key).or_insert(0);
        if *count >= self.cap {
            return None;
        }
        *count += 1;
        Some(KeyPlace { counts: self, key })
    }

    #[cfg(test)]
    fn in_progress(&self, key: KeyId) -> usize {
        self.shard(key).get(&key).copied().unwrap_or(0)
    }
}

/// One request's place among its key's requests in progress, given back
/// when dropped.
pub struct KeyPlace<'a> {
    counts: &'a KeyConcurrency,
    key: KeyId,
}

impl Drop for KeyPlace<'_> {
    fn drop(&mut self) {
        let mut shard = self.counts.shard(self.key);
        if let Some(count) = shard.get_mut(&self.key) {
            *count = count.saturating_sub(1);
            if *count == 0 {
                shard.remove(&self.key);
            }
        }
    }
}

/// The refusal of a request over its key's concurrency cap.
pub fn over_key_concurrency(cap: usize) -> ApiError {
    ApiError::new(ErrorCode::ConcurrencyLimitExceeded)
        .with_detail(format!(
            "This API key already has {cap} requests in progress, the most it may have at once. \
             Retry when one of them has been answered."
        ))
        .with_retry_after(1)
}

/// Runs an authenticated `request` (holding its key's place): reads a
/// write's whole body within its deadline, then waits for a turn among the
/// requests handled at once, and only then runs the rest of the stack.
/// Called by [`crate::api::auth::authenticate`] rather than being a layer
/// of its own, which would cost every request another boxed future.
pub async fn run(state: &AppState, request: Request, next: Next) -> Response {
    let request = if request.method() == Method::POST && !request.body().is_end_stream() {
        match read_whole_body(state, request).await {
            Ok(request) => request,
            Err(response) => return response,
        }
    } else {
        request
    };
    match state.in_flight.acquire().await {
        Ok(_turn) => next.run(request).await,
        Err(_) => ApiError::unavailable("the server is shutting down").into_response(),
    }
}

/// `request` with its body read into memory: 413 past `max_body_bytes`,
/// 408 (and the connection closed) if it is not in within
/// `body_read_timeout`.
async fn read_whole_body(state: &AppState, request: Request) -> Result<Request, Response> {
    let (parts, body) = request.into_parts();
    let limit = state.settings.max_body_bytes;
    let read = tokio::time::timeout(
        state.settings.body_read_timeout,
        Limited::new(body, limit).collect(),
    )
    .await;
    match read {
        Ok(Ok(collected)) => Ok(Request::from_parts(parts, Body::from(collected.to_bytes()))),
        Ok(Err(error)) => {
            Err(if error.is::<LengthLimitError>() {
                ApiError::new(ErrorCode::PayloadTooLarge).into_response()
            } else {
                // The client went away or sent a broken chunked body.
                tracing::debug!(%error, "a request body could not be read");
                ApiError::new(ErrorCode::MalformedJson)
                    .with_detail(UNREADABLE_BODY)
                    .into_response()
            })
        }
        Err(_) => {
            let seconds = state.settings.body_read_timeout.as_secs();
            let mut response = ApiError::new(ErrorCode::RequestBodyTimeout)
                .with_detail(format!(
                    "The request body did not arrive within {seconds} s; send it faster, or \
                     ask the operator to raise body_read_timeout_secs."
                ))
                .into_response();
            // Part of the body is still unread: the connection cannot carry
            // another request.
            response
                .headers_mut()
                .insert(header::CONNECTION, HeaderValue::from_static("close"));
            Err(response)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_key_gets_its_cap_and_places_come_back() {
        let counts = KeyConcurrency::new(2);
        let (key, other) = (KeyId::generate(), KeyId::generate());
        let first = counts.enter(key).expect("a place");
        let second = counts.enter(key).expect("a place");
        assert!(counts.enter(key).is_none(), "a third request in progress");
        let others = counts.enter(other).expect("another key has its own cap");
        drop(first);
        assert_eq!(counts.in_progress(key), 1);
        let third = counts.enter(key).expect("a place given back");
        drop((second, third, others));
        assert_eq!(counts.in_progress(key), 0);
        assert!(
            counts
                .shards
                .iter()
                .all(|shard| shard.lock().expect("not poisoned").is_empty()),
            "keys with nothing in progress are forgotten"
        );
    }
}
