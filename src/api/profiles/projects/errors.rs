//! AppHandoff's error schema, `{error, code, fieldErrors?, issues?,
//! retryAfter?}`, for every refusal under `/api/projects`: its handlers'
//! and the shared layers' (authentication, rate limits, body limits,
//! timeouts, router fallbacks). Codes are stable UPPER_SNAKE; `issues`
//! name fields by Zod's dotted paths (`body`, `ticketId`).

use axum::http::{HeaderValue, StatusCode};
use serde_json::{Map, Value};

use crate::api::profiles::projects::wire::{ErrorBody, Issue};
use crate::api::refusal::{
    ErrorCode, FieldCode, FieldError, PendingRefusal, Refusal, RefusalRenderer, RequestFacts,
};
use crate::service::ServiceError;

/// The reason of a ticket the caller cannot see.
pub const TICKET_NOT_FOUND: &str = "ticket_not_found";

/// Writes refusals as AppHandoff does.
#[derive(Debug, Clone, Copy)]
pub struct ProjectsErrors;

/// The status, code and message of a refusal.
fn described(refusal: &PendingRefusal) -> (StatusCode, &'static str, &'static str) {
    if refusal.code == ErrorCode::NotFound && refusal.reason == Some(TICKET_NOT_FOUND) {
        return (StatusCode::NOT_FOUND, "NOT_FOUND", "Ticket not found");
    }
    let invalid = StatusCode::BAD_REQUEST;
    match refusal.code {
        ErrorCode::InvalidRequest
        | ErrorCode::IdempotencyKeyInvalid
        | ErrorCode::TooManyAttachments
        | ErrorCode::TicketStorageExhausted
        | ErrorCode::UploadTooLarge
        | ErrorCode::UploadContentMismatch
        | ErrorCode::UploadIncomplete => (invalid, "VALIDATION_ERROR", "Invalid request"),
        ErrorCode::MalformedJson => (invalid, "INVALID_JSON", "Invalid JSON body"),
        ErrorCode::TicketClosed => (
            invalid,
            "TICKET_CLOSED",
            "Ticket is closed; reopen it first",
        ),
        ErrorCode::Unauthorized => (
            StatusCode::UNAUTHORIZED,
            "UNAUTHORIZED",
            "Not authenticated",
        ),
        ErrorCode::Forbidden | ErrorCode::UploadUrlInvalid | ErrorCode::UploadUrlExpired => {
            (StatusCode::FORBIDDEN, "FORBIDDEN", "Forbidden")
        }
        ErrorCode::NotFound => (StatusCode::NOT_FOUND, "NOT_FOUND", "Not found"),
        ErrorCode::MethodNotAllowed => (
            StatusCode::METHOD_NOT_ALLOWED,
            "METHOD_NOT_ALLOWED",
            "Method not allowed",
        ),
        ErrorCode::PayloadTooLarge => (
            StatusCode::PAYLOAD_TOO_LARGE,
            "PAYLOAD_TOO_LARGE",
            "Request body too large",
        ),
        ErrorCode::UnsupportedMediaType => (
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "UNSUPPORTED_MEDIA_TYPE",
            "The request body must be application/json",
        ),
        ErrorCode::RateLimitExceeded
        | ErrorCode::ConcurrencyLimitExceeded
        | ErrorCode::AuthRateLimitExceeded => (
            StatusCode::TOO_MANY_REQUESTS,
            "RATE_LIMITED",
            "Too many requests",
        ),
        ErrorCode::RequestBodyTimeout => (
            StatusCode::REQUEST_TIMEOUT,
            "REQUEST_TIMEOUT",
            "The request body arrived too slowly",
        ),
        ErrorCode::InternalError => (
            StatusCode::INTERNAL_SERVER_ERROR,
            "INTERNAL_ERROR",
            "Internal server error",
        ),
        ErrorCode::ServiceUnavailable | ErrorCode::RequestTimeout => (
            StatusCode::SERVICE_UNAVAILABLE,
            "SERVICE_UNAVAILABLE",
            "Service unavailable; retry",
        ),
        ErrorCode::IdempotencyKeyReused => (
            StatusCode::CONFLICT,
            "IDEMPOTENCY_KEY_REUSED",
            "The Idempotency-Key was used for another request",
        ),
        ErrorCode::IdempotencyRequestInProgress => (
            StatusCode::CONFLICT,
            "IDEMPOTENCY_REQUEST_IN_PROGRESS",
            "A request with this Idempotency-Key is in progress",
        ),
        ErrorCode::UploadUrlUsed => (StatusCode::CONFLICT, "CONFLICT", "Already used"),
    }
}

/// A field error in words close to Zod's: `Required`, or the core's
/// wording without the field's name in front.
fn message_of(error: &FieldError) -> String {
    match error.code {
        FieldCode::MissingRequired => "Required".to_owned(),
        _ => {
            let detail = error.detail.as_str();
            let rest = error.detail_after_field().unwrap_or(detail);
            let mut chars = rest.chars();
            match chars.next() {
                Some(first) => first.to_uppercase().chain(chars).collect(),
                None => detail.to_owned(),
            }
        }
    }
}

impl RefusalRenderer for ProjectsErrors {
    fn status(&self, refusal: &PendingRefusal, _facts: &RequestFacts<'_>) -> StatusCode {
        described(refusal).0
    }

    fn render(&self, refusal: PendingRefusal, _facts: &RequestFacts<'_>) -> (HeaderValue, Vec<u8>) {
        let (status, code, error) = described(&refusal);
        let issues: Vec<Issue> = refusal
            .errors
            .iter()
            .map(|field| Issue {
                path: field.dotted_path(),
                message: message_of(field),
            })
            .collect();
        let field_errors = (!issues.is_empty()).then(|| {
            let mut first = Map::new();
            for issue in &issues {
                first
                    .entry(issue.path.clone())
                    .or_insert_with(|| Value::String(issue.message.clone()));
            }
            first
        });
        let retry_after = refusal
            .retry_after_secs
            .filter(|_| status == StatusCode::TOO_MANY_REQUESTS);
        let body = ErrorBody {
            error: error.to_owned(),
            code: code.to_owned(),
            field_errors,
            issues: (!issues.is_empty()).then_some(issues),
            retry_after,
        };
        let bytes = serde_json::to_vec(&body).unwrap_or_else(|_| {
            br#"{"error":"Internal server error","code":"INTERNAL_ERROR"}"#.to_vec()
        });
        (HeaderValue::from_static("application/json"), bytes)
    }
}

/// A use case's refusal, in AppHandoff's terms.
pub fn refusal_of(error: ServiceError) -> Refusal {
    match error {
        ServiceError::NotFound | ServiceError::NotOwner => {
            Refusal::new(ErrorCode::NotFound).with_reason(TICKET_NOT_FOUND)
        }
        ServiceError::TicketClosed => Refusal::new(ErrorCode::TicketClosed),
        ServiceError::OnBehalfOf(_)
        | ServiceError::ActionNotPermitted(_)
        | ServiceError::CustomerNotFound => Refusal::new(ErrorCode::Forbidden),
        other => crate::api::refusal::server_failure(other),
    }
}
