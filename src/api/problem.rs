//! Errors as RFC 9457 problem details (`application/problem+json`).
//!
//! Handlers, extractors and middleware return [`ApiError`]. Rendering the
//! final document needs the request id and path, which only the outermost
//! middleware knows, so an `ApiError` becomes a response carrying a
//! [`PendingProblem`] extension; [`crate::api::context`] finishes it.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use utoipa::ToSchema;

use crate::core::lifecycle::LifecycleError;
use crate::store::StoreError;

/// The stable, machine-readable error codes of the canonical API. Clients
/// branch on these; titles and details are for people.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorCode {
    /// The request failed validation; `errors[]` says where.
    InvalidRequest,
    /// The body is not well-formed JSON.
    MalformedJson,
    /// A reply or staff action on a closed ticket.
    TicketClosed,
    /// No, malformed, unknown or revoked credentials.
    Unauthorized,
    /// The key lacks a scope, or the user's role may not do this.
    Forbidden,
    /// No such resource, or not visible to the caller.
    NotFound,
    /// The path exists but not with this method.
    MethodNotAllowed,
    /// The body is larger than the configured limit.
    PayloadTooLarge,
    /// The body is not `application/json`.
    UnsupportedMediaType,
    /// Too many requests for this key.
    RateLimitExceeded,
    /// This key already has as many requests in progress as it may.
    ConcurrencyLimitExceeded,
    /// Too many failed authentications from this client address.
    AuthRateLimitExceeded,
    /// The request body did not arrive in time.
    RequestBodyTimeout,
    /// A bug or an unexpected failure; details are in the server log.
    InternalError,
    /// The database is unreachable or the server is shutting down.
    ServiceUnavailable,
    /// The request took longer than the configured timeout.
    RequestTimeout,
    /// The `Idempotency-Key` header is not a valid key.
    IdempotencyKeyInvalid,
    /// The `Idempotency-Key` was already used with a different request.
    IdempotencyKeyReused,
    /// A request with this `Idempotency-Key` is still being processed.
    IdempotencyRequestInProgress,
}

impl ErrorCode {
    /// Every code, for the error pages and the OpenAPI document.
    pub const ALL: [ErrorCode; 19] = [
        ErrorCode::InvalidRequest,
        ErrorCode::MalformedJson,
        ErrorCode::TicketClosed,
        ErrorCode::Unauthorized,
        ErrorCode::Forbidden,
        ErrorCode::NotFound,
        ErrorCode::MethodNotAllowed,
        ErrorCode::PayloadTooLarge,
        ErrorCode::UnsupportedMediaType,
        ErrorCode::RateLimitExceeded,
        ErrorCode::ConcurrencyLimitExceeded,
        ErrorCode::AuthRateLimitExceeded,
        ErrorCode::RequestBodyTimeout,
        ErrorCode::InternalError,
        ErrorCode::ServiceUnavailable,
        ErrorCode::RequestTimeout,
        ErrorCode::IdempotencyKeyInvalid,
        ErrorCode::IdempotencyKeyReused,
        ErrorCode::IdempotencyRequestInProgress,
    ];

    /// The code as sent in `code` and in the `type` URI.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorCode::InvalidRequest => "invalid_request",
            ErrorCode::MalformedJson => "malformed_json",
            ErrorCode::TicketClosed => "ticket_closed",
            ErrorCode::Unauthorized => "unauthorized",
            ErrorCode::Forbidden => "forbidden",
            ErrorCode::NotFound => "not_found",
            ErrorCode::MethodNotAllowed => "method_not_allowed",
            ErrorCode::PayloadTooLarge => "payload_too_large",
            ErrorCode::UnsupportedMediaType => "unsupported_media_type",
            ErrorCode::RateLimitExceeded => "rate_limit_exceeded",
            ErrorCode::ConcurrencyLimitExceeded => "concurrency_limit_exceeded",
            ErrorCode::AuthRateLimitExceeded => "auth_rate_limit_exceeded",
            ErrorCode::RequestBodyTimeout => "request_body_timeout",
            ErrorCode::InternalError => "internal_error",
            ErrorCode::ServiceUnavailable => "service_unavailable",
            ErrorCode::RequestTimeout => "request_timeout",
            ErrorCode::IdempotencyKeyInvalid => "idempotency_key_invalid",
            ErrorCode::IdempotencyKeyReused => "idempotency_key_reused",
            ErrorCode::IdempotencyRequestInProgress => "idempotency_request_in_progress",
        }
    }

    /// Parses a code.
    pub fn parse(text: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|code| code.as_str() == text)
    }

    /// The HTTP status that goes with the code.
    pub fn status(self) -> StatusCode {
        match self {
            ErrorCode::InvalidRequest
            | ErrorCode::MalformedJson
            | ErrorCode::TicketClosed
            | ErrorCode::IdempotencyKeyInvalid => StatusCode::BAD_REQUEST,
            ErrorCode::Unauthorized => StatusCode::UNAUTHORIZED,
            ErrorCode::Forbidden => StatusCode::FORBIDDEN,
            ErrorCode::NotFound => StatusCode::NOT_FOUND,
            ErrorCode::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            ErrorCode::PayloadTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            ErrorCode::UnsupportedMediaType => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            ErrorCode::RateLimitExceeded
            | ErrorCode::ConcurrencyLimitExceeded
            | ErrorCode::AuthRateLimitExceeded => StatusCode::TOO_MANY_REQUESTS,
            ErrorCode::RequestBodyTimeout => StatusCode::REQUEST_TIMEOUT,
            ErrorCode::InternalError => StatusCode::INTERNAL_SERVER_ERROR,
            ErrorCode::ServiceUnavailable | ErrorCode::RequestTimeout => {
                StatusCode::SERVICE_UNAVAILABLE
            }
            ErrorCode::IdempotencyKeyReused => StatusCode::UNPROCESSABLE_ENTITY,
            ErrorCode::IdempotencyRequestInProgress => StatusCode::CONFLICT,
        }
    }

    /// A short human title.
    pub fn title(self) -> &'static str {
        match self {
            ErrorCode::InvalidRequest => "Invalid request",
            ErrorCode::MalformedJson => "Malformed JSON",
            ErrorCode::TicketClosed => "Ticket closed",
            ErrorCode::Unauthorized => "Unauthorized",
            ErrorCode::Forbidden => "Forbidden",
            ErrorCode::NotFound => "Not found",
            ErrorCode::MethodNotAllowed => "Method not allowed",
            ErrorCode::PayloadTooLarge => "Payload too large",
            ErrorCode::UnsupportedMediaType => "Unsupported media type",
            ErrorCode::RateLimitExceeded => "Too many requests",
            ErrorCode::ConcurrencyLimitExceeded => "Too many concurrent requests",
            ErrorCode::AuthRateLimitExceeded => "Too many failed authentications",
            ErrorCode::RequestBodyTimeout => "Request body timeout",
            ErrorCode::InternalError => "Internal server error",
            ErrorCode::ServiceUnavailable => "Service unavailable",
            ErrorCode::RequestTimeout => "Request timeout",
            ErrorCode::IdempotencyKeyInvalid => "Invalid Idempotency-Key",
            ErrorCode::IdempotencyKeyReused => "Idempotency-Key is already used",
            ErrorCode::IdempotencyRequestInProgress => {
                "A request is outstanding for this Idempotency-Key"
            }
        }
    }

    /// The default detail, used when nothing more specific applies.
    pub fn default_detail(self) -> &'static str {
        match self {
            ErrorCode::InvalidRequest => "The request body failed validation.",
            ErrorCode::MalformedJson => "The request body is not valid JSON.",
            ErrorCode::TicketClosed => "Closed tickets must be reopened first.",
            ErrorCode::Unauthorized => "Authentication is required.",
            ErrorCode::Forbidden => {
                "The caller lacks a required scope or does not own the resource."
            }
            ErrorCode::NotFound => "The requested resource could not be found.",
            ErrorCode::MethodNotAllowed => "The resource does not support this method.",
            ErrorCode::PayloadTooLarge => "The request body is too large.",
            ErrorCode::UnsupportedMediaType => "The request body must be sent as application/json.",
            ErrorCode::RateLimitExceeded => "Too many requests. Retry after the limit resets.",
            ErrorCode::ConcurrencyLimitExceeded => {
                "This API key has too many requests in progress. Retry when one has been answered."
            }
            ErrorCode::AuthRateLimitExceeded => {
                "Too many requests from this address failed authentication. Retry after the number of seconds in Retry-After."
            }
            ErrorCode::RequestBodyTimeout => "The request body did not arrive in time.",
            ErrorCode::InternalError => {
                "An unexpected error occurred. Retry later or contact support if the issue persists."
            }
            ErrorCode::ServiceUnavailable => "The service is temporarily unavailable. Retry later.",
            ErrorCode::RequestTimeout => "The request took too long to process. Retry later.",
            ErrorCode::IdempotencyKeyInvalid => {
                "The Idempotency-Key header must be one key of 1 to 255 visible ASCII characters."
            }
            ErrorCode::IdempotencyKeyReused => {
                "This Idempotency-Key was already used with a different request. Use a new key for a new request."
            }
            ErrorCode::IdempotencyRequestInProgress => {
                "A request with this Idempotency-Key is still being processed. Retry after the number of seconds in Retry-After."
            }
        }
    }

    /// What the code means and what a client should do, for its error page.
    pub fn explanation(self) -> &'static str {
        match self {
            ErrorCode::InvalidRequest => {
                "One or more fields or query parameters are missing, of the wrong type, out of range or not recognised. Each entry of errors[] names the field (a JSON pointer), what is wrong with it, and a field code: missing_required, invalid_type, too_short, too_long, invalid_value, unknown_field or invalid_encoding (a query or path parameter that is not valid percent-encoded UTF-8). Fix the request; retrying it unchanged will fail again."
            }
            ErrorCode::MalformedJson => {
                "The body could not be parsed as JSON, or is not UTF-8. The detail says where parsing stopped. For invalid UTF-8, the detail gives the byte offset of the first invalid byte and errors[] holds one entry (code invalid_encoding) whose pointer names the member or element where it is (an empty pointer: the body itself)."
            }
            ErrorCode::TicketClosed => {
                "The ticket is closed. Reopen it with POST /api/v2/support/tickets/{id}/actions/reopen, then send the reply again."
            }
            ErrorCode::Unauthorized => {
                "Send an API key as Authorization: Bearer <token>. The key may be missing, malformed, unknown or revoked."
            }
            ErrorCode::Forbidden => {
                "The API key is valid but lacks the scope this endpoint needs (read:support for reads, write:support for writes), or the user's role may not take this action."
            }
            ErrorCode::NotFound => {
                "Nothing exists at this address that the caller may see. Tickets of other customers are reported exactly like tickets that do not exist."
            }
            ErrorCode::MethodNotAllowed => "The Allow header lists the methods this path supports.",
            ErrorCode::PayloadTooLarge => {
                "Send a smaller body; the server's limit is configurable by its operator."
            }
            ErrorCode::UnsupportedMediaType => "Send the body with Content-Type: application/json.",
            ErrorCode::RateLimitExceeded => {
                "This API key sent more requests than its rate limit allows. Wait the number of seconds in Retry-After; X-RateLimit-Limit, X-RateLimit-Remaining and X-RateLimit-Reset describe the budget on every authenticated response."
            }
            ErrorCode::ConcurrencyLimitExceeded => {
                "This API key already has as many requests in progress as the server allows one key (max_concurrent_requests_per_key, 64 unless its operator changed it). Nothing was done. Wait for one of the key's requests to be answered, then retry; Retry-After says 1 second. Send fewer requests in parallel, or spread the work over several keys."
            }
            ErrorCode::AuthRateLimitExceeded => {
                "Too many requests from this client address failed authentication (a missing, malformed, unknown or revoked API key) within a short time, so the server stopped looking keys up for it. Nothing was done. Fix the Authorization header, then retry after the number of seconds in Retry-After. Keys this server has already seen, sent with their right secret, keep working meanwhile."
            }
            ErrorCode::RequestBodyTimeout => {
                "The server stopped waiting for the request body after its configured body timeout (body_read_timeout_secs, 10 s unless its operator changed it) and closed the connection. Nothing was written. Send the body promptly after the request head, then retry."
            }
            ErrorCode::InternalError => {
                "Something failed inside the server. The requestId identifies the failure in the server's log; retry later, or report the requestId."
            }
            ErrorCode::ServiceUnavailable => {
                "The server cannot reach its database or is shutting down. Retry after the number of seconds in Retry-After."
            }
            ErrorCode::RequestTimeout => {
                "The server gave up on the request after its configured timeout. A write may or may not have been applied; retry with care, ideally with an Idempotency-Key, which makes the retry safe."
            }
            ErrorCode::IdempotencyKeyInvalid => {
                "Send at most one Idempotency-Key header, holding 1 to 255 visible ASCII characters (! to ~), bare (Idempotency-Key: 9f1c2b3a-reply-1) or as a quoted string (Idempotency-Key: \"9f1c2b3a-reply-1\"). Nothing was recorded or written."
            }
            ErrorCode::IdempotencyKeyReused => {
                "An Idempotency-Key names one request: the same method, path and body (JSON compared by value). This key was first used for a different request within the server's retention window (24 hours unless its operator set idempotency_ttl_secs), so this one was refused and nothing was written. Use a fresh key for every new request, and the same key only to retry it unchanged."
            }
            ErrorCode::IdempotencyRequestInProgress => {
                "The first request with this Idempotency-Key (from the same API key) has not finished yet, or was interrupted and its claim has not lapsed yet. Nothing was written for this one. Retry the same request with the same key after Retry-After seconds: once the first has completed, the retry gets its response, marked Idempotent-Replayed: true."
            }
        }
    }
}

/// Why one field or parameter was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum FieldCode {
    /// A required member is absent.
    MissingRequired,
    /// The member has the wrong JSON type.
    InvalidType,
    /// The text is empty or blank.
    TooShort,
    /// The text is longer than allowed.
    TooLong,
    /// The value is of the right type but not acceptable.
    InvalidValue,
    /// The member is not part of this request.
    UnknownField,
    /// The text is not valid UTF-8, or (in the URL) not valid
    /// percent-encoding of UTF-8.
    InvalidEncoding,
}

/// One entry of a problem's `errors[]`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct FieldError {
    /// JSON pointer (RFC 6901) to the member in the request body, or
    /// `/name` for a query or path parameter.
    pub pointer: String,
    /// What is wrong, for people.
    pub detail: String,
    /// What is wrong, for programs.
    pub code: FieldCode,
}

/// The problem document, as sent.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Problem {
    /// URI of a page describing the error code.
    #[serde(rename = "type")]
    #[schema(example = "http://127.0.0.1:8080/errors/invalid_request")]
    pub type_uri: String,
    /// Short summary of the problem type.
    #[schema(example = "Invalid request")]
    pub title: String,
    /// The HTTP status code.
    #[schema(example = 400)]
    pub status: u16,
    /// What went wrong with this request.
    #[schema(example = "The request body failed validation.")]
    pub detail: String,
    /// Stable machine-readable code. Branch on this field, not on `detail`.
    #[schema(example = "invalid_request")]
    pub code: String,
    /// The request path.
    #[schema(example = "/api/v2/support/tickets/tkt_01hxa3b4c5d6e7f8g9h0j1k2m3/messages")]
    pub instance: String,
    /// The request's id, also in the `X-Request-Id` header and the server log.
    #[schema(example = "req_01hxa3b4c5d6e7f8g9h0j1k2m3")]
    pub request_id: String,
    /// When the error happened (RFC 3339, UTC, milliseconds).
    #[schema(example = "2026-04-27T12:34:56.000Z")]
    pub timestamp: String,
    /// Field-level validation errors when `code` is `invalid_request`; for
    /// `malformed_json`, where a body that is not UTF-8 goes wrong.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub errors: Vec<FieldError>,
}

/// An error response before the request context is known.
#[derive(Debug, Clone)]
pub struct PendingProblem {
    /// The error code.
    pub code: ErrorCode,
    /// The detail to send.
    pub detail: String,
    /// Field errors, if any.
    pub errors: Vec<FieldError>,
    /// For 5xx: what actually happened, for the request's log line only.
    pub cause: Option<String>,
}

/// Everything a handler can fail with.
#[derive(Debug)]
pub struct ApiError {
    code: ErrorCode,
    detail: String,
    errors: Vec<FieldError>,
    retry_after_secs: Option<u64>,
    /// For 5xx: what actually happened, for the log only.
    cause: Option<String>,
}

impl ApiError {
    /// An error with the code's default detail.
    pub fn new(code: ErrorCode) -> Self {
        Self {
            code,
            detail: code.default_detail().to_owned(),
            errors: Vec::new(),
            retry_after_secs: None,
            cause: None,
        }
    }

    /// Replaces the detail.
    pub fn with_detail(mut self, detail: impl Into<String>) -> Self {
        self.detail = detail.into();
        self
    }

    /// Replaces the entries of `errors[]`.
    pub fn with_errors(mut self, errors: Vec<FieldError>) -> Self {
        self.errors = errors;
        self
    }

    /// Adds a `Retry-After` header.
    pub fn with_retry_after(mut self, secs: u64) -> Self {
        self.retry_after_secs = Some(secs);
        self
    }

    /// A validation failure listing every field error.
    pub fn invalid(errors: Vec<FieldError>) -> Self {
        Self {
            errors,
            ..Self::new(ErrorCode::InvalidRequest)
        }
    }

    /// An internal error; `cause` goes to the log, never to the client.
    pub fn internal(cause: impl Into<String>) -> Self {
        Self {
            cause: Some(cause.into()),
            ..Self::new(ErrorCode::InternalError)
        }
    }

    /// The 503 for a backing service (the database, a shared rate limiter)
    /// that cannot be reached; `cause` is logged.
    pub fn unavailable(cause: impl Into<String>) -> Self {
        Self {
            cause: Some(cause.into()),
            ..Self::new(ErrorCode::ServiceUnavailable).with_retry_after(1)
        }
    }

    /// The error's code.
    pub fn code(&self) -> ErrorCode {
        self.code
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut response = self.code.status().into_response();
        if self.code == ErrorCode::Unauthorized {
            // RFC 9110: a 401 names the scheme that would be accepted.
            response.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer realm=\"ticketd\""),
            );
        }
        if let Some(secs) = self.retry_after_secs {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        response.extensions_mut().insert(PendingProblem {
            code: self.code,
            detail: self.detail,
            errors: self.errors,
            cause: self.cause,
        });
        response
    }
}

impl From<StoreError> for ApiError {
    fn from(error: StoreError) -> Self {
        match error {
            StoreError::NotFound => ApiError::new(ErrorCode::NotFound),
            StoreError::Lifecycle(LifecycleError::TicketClosed) => {
                ApiError::new(ErrorCode::TicketClosed).with_detail(
                    "This ticket is closed. Closed tickets must be reopened first: \
                     POST /api/v2/support/tickets/{id}/actions/reopen, then retry.",
                )
            }
            StoreError::CustomerNotFound => ApiError::invalid(vec![FieldError {
                pointer: "/customerId".into(),
                detail: "`customerId` must be the id of a customer in your workspace.".into(),
                code: FieldCode::InvalidValue,
            }]),
            StoreError::Unavailable(cause) => ApiError::unavailable(cause),
            StoreError::Conflict(constraint) => {
                ApiError::internal(format!("unexpected conflict on {constraint}"))
            }
            StoreError::Other(cause) => ApiError::internal(cause),
            StoreError::ClaimLost => {
                ApiError::new(ErrorCode::IdempotencyRequestInProgress).with_retry_after(1)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_round_trip_and_have_statuses() {
        for code in ErrorCode::ALL {
            assert_eq!(ErrorCode::parse(code.as_str()), Some(code));
            assert!(code.status().is_client_error() || code.status().is_server_error());
        }
    }

    #[test]
    fn internal_errors_never_carry_their_cause_to_the_client() {
        let response = ApiError::internal("disk on fire at /var/lib/secret").into_response();
        assert_eq!(response.status(), StatusCode::INTERNAL_SERVER_ERROR);
        let pending = response.extensions().get::<PendingProblem>().cloned();
        let pending = pending.expect("an ApiError response carries its problem");
        assert_eq!(pending.code, ErrorCode::InternalError);
        assert!(!pending.detail.contains("disk on fire"));
        assert_eq!(pending.detail, ErrorCode::InternalError.default_detail());
    }
}
