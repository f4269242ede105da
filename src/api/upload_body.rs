//! The body of an upload request as a stream, for every API that takes
//! files: refused at once when its declared length is over the limit, and
//! cut off when it stalls or arrives too slowly, so that an upload's turn
//! ends in bounded time ([`paced`], [`deadline`]).

use std::io;
use std::pin::Pin;
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::extract::Request;
use axum::http::{HeaderMap, header};
use bytes::Bytes;
use futures_util::{Stream, StreamExt, stream};

use crate::api::AppState;
use crate::blob::ByteStream;
use crate::service::UploadError;

/// The slowest an upload may arrive on average, once
/// `body_read_timeout_secs` has passed: 32 KiB/s.
pub const MIN_UPLOAD_BYTES_PER_SEC: u64 = 32 * 1024;

/// The longest an upload request may take in all: the request timeout,
/// plus the time the largest file takes at [`MIN_UPLOAD_BYTES_PER_SEC`].
pub fn deadline(state: &AppState) -> Duration {
    let transfer = state.uploads.policy().max_bytes / MIN_UPLOAD_BYTES_PER_SEC;
    state.settings.request_timeout + Duration::from_secs(transfer)
}

/// A raw upload's body as a stream: refused at once if its declared
/// `Content-Length` is over `max_bytes`, and cut off if it stalls or
/// arrives too slowly (for an API that takes only raw bodies).
///
/// # Errors
/// `Refused(TooLarge)` for a declared length over `max_bytes`.
pub fn request_body_stream(
    state: &AppState,
    request: Request,
    max_bytes: u64,
) -> Result<ByteStream, UploadError> {
    if declared_length(request.headers()).is_some_and(|length| length > max_bytes) {
        return Err(UploadError::Refused(
            crate::blob::inspect::UploadRefusal::TooLarge { limit: max_bytes },
        ));
    }
    Ok(paced(
        request.into_body(),
        state.settings.body_read_timeout,
        MIN_UPLOAD_BYTES_PER_SEC,
    ))
}

pub(crate) fn declared_length(headers: &HeaderMap) -> Option<u64> {
    headers
        .get(header::CONTENT_LENGTH)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.parse().ok())
}

/// A request body as a stream that fails when nothing arrives for `idle`,
/// or when, once `idle` has passed since the first poll, fewer than
/// `min_rate` bytes a second have arrived on average.
pub(crate) fn paced(body: Body, idle: Duration, min_rate: u64) -> ByteStream {
    struct Pace {
        data: Pin<Box<dyn Stream<Item = Result<Bytes, axum::Error>> + Send>>,
        started: Option<Instant>,
        received: u64,
    }
    let pace = Pace {
        data: Box::pin(body.into_data_stream()),
        started: None,
        received: 0,
    };
    Box::pin(stream::unfold(Some(pace), move |pace| async move {
        let mut pace = pace?;
        let started = *pace.started.get_or_insert_with(Instant::now);
        let chunk = match tokio::time::timeout(idle, pace.data.next()).await {
            Ok(None) => return None,
            Ok(Some(Ok(chunk))) => chunk,
            Ok(Some(Err(error))) => return Some((Err(io::Error::other(error)), None)),
            Err(_) => {
                let stalled = io::Error::new(io::ErrorKind::TimedOut, "the upload stalled");
                return Some((Err(stalled), None));
            }
        };
        pace.received = pace.received.saturating_add(chunk.len() as u64);
        let elapsed = started.elapsed();
        if elapsed > idle && pace.received < min_rate.saturating_mul(elapsed.as_secs()) {
            let slow = io::Error::new(io::ErrorKind::TimedOut, "the upload is too slow");
            return Some((Err(slow), None));
        }
        Some((Ok(chunk), Some(pace)))
    }))
}
