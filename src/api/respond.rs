//! Writing JSON responses.

use axum::body::Body;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::Response;
use serde::Serialize;

use crate::api::refusal::Refusal;
use crate::store::Cause;
use crate::store::Written;
use crate::store::idempotency::StoredResponse;

/// A JSON response with `status`.
///
/// # Errors
/// Only if `body` cannot be serialised, which for our DTOs means a bug.
pub fn json<T: Serialize>(status: StatusCode, body: &T) -> Result<Response, Refusal> {
    let bytes = serde_json::to_vec(body)
        .map_err(|error| Refusal::internal(format!("serialising a response: {error}")))?;
    let mut response = Response::new(Body::from(bytes));
    *response.status_mut() = status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    Ok(response)
}

/// A write's response as it is sent and, for a request with an
/// `Idempotency-Key`, stored to be sent again: `status`, an optional
/// `Location` and `body` as JSON.
///
/// # Errors
/// Only if `body` cannot be serialised, which for our DTOs means a bug.
pub fn stored<T: Serialize>(
    status: StatusCode,
    location: Option<String>,
    body: &T,
) -> Result<StoredResponse, Cause> {
    let body = serde_json::to_vec(body)
        .map_err(|error| Cause::with_source(format!("serialising a response: {error}"), error))?;
    Ok(StoredResponse {
        status: status.as_u16(),
        location,
        body,
    })
}

/// The HTTP response for a [`stored`] one.
///
/// # Errors
/// If the stored status or `Location` is not valid HTTP (a damaged record).
pub fn from_stored(stored: StoredResponse) -> Result<Response, Refusal> {
    let status = StatusCode::from_u16(stored.status)
        .map_err(|error| Refusal::internal(format!("stored status: {error}")))?;
    let mut response = Response::new(Body::from(stored.body));
    *response.status_mut() = status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    if let Some(location) = stored.location {
        let location = HeaderValue::from_str(&location)
            .map_err(|error| Refusal::internal(format!("Location header: {error}")))?;
        response.headers_mut().insert(header::LOCATION, location);
    }
    Ok(response)
}

/// The response to a write: the one its idempotency record stored, or, for
/// a write without a key, `render`'s.
///
/// # Errors
/// `internal_error` if the response cannot be rendered.
pub fn written<T>(
    written: Written<T>,
    render: impl Fn(&T) -> Result<StoredResponse, Cause>,
) -> Result<Response, Refusal> {
    match written.response {
        Some(stored) => crate::api::idempotency::completed(stored),
        None => from_stored(
            render(&written.value).map_err(|cause| Refusal::internal(cause.to_string()))?,
        ),
    }
}
