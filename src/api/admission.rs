//! What an authenticated support API request goes through before its
//! handler runs, in this order:
//!
//! 1. a place among its API key's requests in progress
//!    ([`crate::server::capped_counts::CappedCounts`]):
//!    at most
//!    `max_concurrent_requests_per_key`, more are answered `429
//!    concurrency_limit_exceeded`;
//! 2. for a write, room for its body in the budget of bodies held in
//!    memory ([`BodyBudget`], `max_buffered_body_bytes`): its declared
//!    `Content-Length`, or `max_body_bytes` for a body of unknown length,
//!    waited for within the request timeout and held until the request is
//!    answered;
//! 3. for a write, its whole body, within `body_read_timeout` (`408
//!    request_body_timeout` after it) and `max_body_bytes` (413);
//! 4. a turn among the requests handled at once (`max_concurrent_requests`),
//!    waited for within the request timeout.
//!
//! An upload ([`crate::api::streams_body`]) skips 2 to 4: its body streams
//! to the blob store as it arrives, and it takes one of the turns kept for
//! uploads (a quarter of `max_concurrent_requests`), so that slow uploads
//! never hold up other requests.
//!
//! [`crate::api::auth::authenticate`] takes the first and then calls
//! [`run`] for the others.
//!
//! The budget bounds the memory of bodies read or waiting for a turn,
//! which would otherwise be `max_connections × max_body_bytes`.
//!
//! So a turn is only ever held by a request that is authenticated and has
//! its body: clients that send nothing, no key, or a body byte by byte hold
//! a connection (bounded by the listener's caps and the deadlines) but no
//! turn, and health checks take no turn at all.

use axum::body::Body;
use axum::extract::Request;
use axum::http::{HeaderValue, Method, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use http_body::Body as _;
use http_body_util::{BodyExt, LengthLimitError, Limited};
use tokio::sync::{Semaphore, SemaphorePermit};

use crate::api::AppState;
use crate::api::extract::UNREADABLE_BODY;
use crate::api::refusal::{ErrorCode, Refusal};

/// The bytes of request bodies that may be held in memory at once (read,
/// being read, or waiting for a turn), counted in KiB.
pub struct BodyBudget {
    kib: Semaphore,
    total_kib: u32,
}

impl BodyBudget {
    /// A budget of `bytes` (rounded up to whole KiB, at least one, and at
    /// most what a semaphore can count: far beyond any memory).
    pub fn new(bytes: usize) -> Self {
        let most = Semaphore::MAX_PERMITS.min(usize::try_from(u32::MAX).unwrap_or(usize::MAX));
        let total = bytes.div_ceil(1024).clamp(1, most);
        let total_kib = u32::try_from(total).unwrap_or(u32::MAX);
        Self {
            kib: Semaphore::new(total),
            total_kib,
        }
    }

    /// Room for a body of `bytes`, waited for until enough is given back,
    /// in the order bodies asked (a large body is not overtaken forever by
    /// small ones). A body is never charged more than the whole budget, so
    /// that every body gets room once the others are answered. `None` only
    /// if the budget was closed.
    pub async fn reserve(&self, bytes: usize) -> Option<SemaphorePermit<'_>> {
        let kib = u32::try_from(bytes.div_ceil(1024))
            .unwrap_or(u32::MAX)
            .clamp(1, self.total_kib);
        self.kib.acquire_many(kib).await.ok()
    }

    #[cfg(test)]
    fn available_kib(&self) -> usize {
        self.kib.available_permits()
    }
}

/// The refusal of a request over its key's concurrency cap.
pub fn over_key_concurrency(cap: usize) -> Refusal {
    crate::metrics::count(
        crate::metrics::RATE_LIMIT_REFUSALS,
        Some(("limit", "key_concurrency")),
        1,
    );
    Refusal::new(ErrorCode::ConcurrencyLimitExceeded)
        .with_detail(format!(
            "This API key already has {cap} requests in progress, the most it may have at once. \
             Retry when one of them has been answered."
        ))
        .with_retry_after(1)
}

/// Runs an authenticated `request` (holding its key's place): takes room
/// for a write's body in the [`BodyBudget`], reads the whole body within
/// its deadline, then waits for a turn among the requests handled at once,
/// and only then runs the rest of the stack, keeping the body's room until
/// it answers. Called by [`crate::api::auth::authenticate`] rather than
/// being a layer of its own, which would cost every request another boxed
/// future.
pub async fn run(state: &AppState, request: Request, next: Next) -> Response {
    let shutting_down = || Refusal::unavailable("the server is shutting down").into_response();
    if crate::api::streams_body(request.uri().path()) {
        // An upload's body streams to its blob, never whole in memory: it
        // takes no room in the budget, and one of the turns kept for
        // uploads, which may take long, rather than one of the others.
        return match state.upload_turns.acquire().await {
            Ok(_turn) => next.run(request).await,
            Err(_) => shutting_down(),
        };
    }
    let (request, _room) = if request.method() == Method::POST && !request.body().is_end_stream() {
        let Some(room) = state.body_budget.reserve(body_bytes(state, &request)).await else {
            return shutting_down();
        };
        match read_whole_body(state, request).await {
            Ok(request) => (request, Some(room)),
            Err(response) => return response,
        }
    } else {
        (request, None)
    };
    match state.in_flight.acquire().await {
        Ok(_turn) => next.run(request).await,
        Err(_) => shutting_down(),
    }
}

/// The bytes `request`'s body will take at most: its declared
/// `Content-Length` (already known to be within `max_body_bytes`, see
/// [`crate::api::admit`]), or `max_body_bytes` when it is not declared.
fn body_bytes(state: &AppState, request: &Request) -> usize {
    let limit = state.settings.max_body_bytes;
    request
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.parse::<usize>().ok())
        .map_or(limit, |length| length.min(limit))
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
                Refusal::new(ErrorCode::PayloadTooLarge).into_response()
            } else {
                // The client went away or sent a broken chunked body.
                tracing::debug!(%error, "a request body could not be read");
                Refusal::new(ErrorCode::MalformedJson)
                    .with_detail(UNREADABLE_BODY)
                    .into_response()
            })
        }
        Err(_) => {
            let seconds = state.settings.body_read_timeout.as_secs();
            let mut response = Refusal::new(ErrorCode::RequestBodyTimeout)
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
    use std::future::Future;
    use std::pin::pin;
    use std::task::Poll;
    use std::time::Duration;

    use super::*;

    /// Whether `future` is still waiting after being polled once.
    async fn pending<F: Future>(future: std::pin::Pin<&mut F>) -> bool {
        let mut future = future;
        std::future::poll_fn(|cx| Poll::Ready(future.as_mut().poll(cx).is_pending())).await
    }

    #[tokio::test]
    async fn a_body_waits_for_room_in_the_budget_and_proceeds_when_it_is_given_back() {
        let budget = BodyBudget::new(4 * 1024);
        let first = budget.reserve(3 * 1024).await.expect("room");
        // 1,025 bytes take two KiB: one is left.
        let mut second = pin!(budget.reserve(1025));
        assert!(
            pending(second.as_mut()).await,
            "the budget has one KiB left"
        );
        // Bodies get room in the order they asked: a small one does not
        // overtake the waiting one (which could otherwise wait forever).
        let mut small = pin!(budget.reserve(1));
        assert!(pending(small.as_mut()).await, "a later body overtook");
        drop(first);
        let second = tokio::time::timeout(Duration::from_secs(5), second)
            .await
            .expect("room was given back")
            .expect("room");
        let small = tokio::time::timeout(Duration::from_secs(5), small)
            .await
            .expect("room was left")
            .expect("room");
        assert_eq!(budget.available_kib(), 1);
        drop((small, second));
        assert_eq!(budget.available_kib(), 4);
    }

    #[tokio::test]
    async fn a_body_larger_than_the_budget_takes_the_whole_budget_rather_than_waiting_forever() {
        let budget = BodyBudget::new(2 * 1024);
        let held = budget.reserve(1024).await.expect("room");
        let mut huge = pin!(budget.reserve(1 << 20));
        assert!(pending(huge.as_mut()).await, "the whole budget is not free");
        drop(held);
        let huge = tokio::time::timeout(Duration::from_secs(5), huge)
            .await
            .expect("the whole budget is free")
            .expect("room");
        assert_eq!(budget.available_kib(), 0);
        drop(huge);
        assert_eq!(BodyBudget::new(0).available_kib(), 1, "at least one KiB");
        assert_eq!(BodyBudget::new(1025).available_kib(), 2, "whole KiB");
    }
}
