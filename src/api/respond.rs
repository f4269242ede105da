//! Writing JSON responses.

use axum::body::Body;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::Response;
use serde::Serialize;

use crate::api::problem::ApiError;

/// A JSON response with `status`.
///
/// # Errors
/// Only if `body` cannot be serialised, which for our DTOs means a bug.
pub fn json<T: Serialize>(status: StatusCode, body: &T) -> Result<Response, ApiError> {
    let bytes = serde_json::to_vec(body)
        .map_err(|error| ApiError::internal(format!("serialising a response: {error}")))?;
    let mut response = Response::new(Body::from(bytes));
    *response.status_mut() = status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    Ok(response)
}

/// A 201 JSON response with a `Location` header.
///
/// # Errors
/// As [`json`], or if `location` is not a valid header value.
pub fn created<T: Serialize>(location: &str, body: &T) -> Result<Response, ApiError> {
    let mut response = json(StatusCode::CREATED, body)?;
    let location = HeaderValue::from_str(location)
        .map_err(|error| ApiError::internal(format!("Location header: {error}")))?;
    response.headers_mut().insert(header::LOCATION, location);
    Ok(response)
}
