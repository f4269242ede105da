//! Daakey's error envelope, `{success: false, message, errors?, data:
//! null, request_id, timestamp}`, for every refusal under
//! `/api/v1/client`: its handlers', the agency signature check's and the
//! shared layers' (authentication, rate limits, body limits, timeouts,
//! router fallbacks). Validation failures are Laravel's 422 `"Validation
//! failed"` with `errors: {field: [messages]}`, fields named with dots
//! (`attachments.0`).

use axum::http::{HeaderValue, StatusCode};
use serde_json::{Map, Value};

use crate::api::profiles::agency::wire::{ErrorBody, request_uuid};
use crate::api::refusal::{
    ErrorCode, FieldCode, FieldError, PendingRefusal, Refusal, RefusalRenderer, RequestFacts,
};
use crate::core::upload::attach::{AttachRefusal, UploadProblem};
use crate::service::ServiceError;

/// The reason of a refused agency signature.
pub const AGENCY_SIGNATURE: &str = "agency_signature";
/// The reason of a ticket the caller cannot see.
pub const TICKET_NOT_FOUND: &str = "ticket_not_found";

/// The message of every refused signature: it does not say which check
/// failed, so it reveals nothing of which agencies exist.
pub const INVALID_SIGNATURE: &str = "Invalid agency signature.";

/// Writes refusals as Daakey does.
#[derive(Debug, Clone, Copy)]
pub struct AgencyErrors;

/// The status and message of a refusal.
fn status_and_message(refusal: &PendingRefusal) -> (StatusCode, &'static str) {
    match (refusal.code, refusal.reason) {
        (ErrorCode::Unauthorized, Some(AGENCY_SIGNATURE)) => {
            (StatusCode::UNAUTHORIZED, INVALID_SIGNATURE)
        }
        (ErrorCode::NotFound, Some(TICKET_NOT_FOUND)) => {
            (StatusCode::NOT_FOUND, "Ticket not found")
        }
        (code, _) => match code {
            ErrorCode::InvalidRequest
            | ErrorCode::MalformedJson
            | ErrorCode::IdempotencyKeyInvalid
            | ErrorCode::TooManyAttachments
            | ErrorCode::TicketStorageExhausted
            | ErrorCode::UploadTooLarge
            | ErrorCode::UploadContentMismatch => {
                (StatusCode::UNPROCESSABLE_ENTITY, "Validation failed")
            }
            ErrorCode::UploadIncomplete => (StatusCode::BAD_REQUEST, "The upload is incomplete."),
            ErrorCode::TicketClosed => (
                StatusCode::BAD_REQUEST,
                "Cannot add message to closed ticket",
            ),
            ErrorCode::Unauthorized => (StatusCode::UNAUTHORIZED, "Unauthenticated."),
            ErrorCode::Forbidden => (StatusCode::FORBIDDEN, "This action is unauthorized."),
            ErrorCode::NotFound => (StatusCode::NOT_FOUND, "Not found"),
            ErrorCode::MethodNotAllowed => (
                StatusCode::METHOD_NOT_ALLOWED,
                "The method is not supported for this route.",
            ),
            ErrorCode::PayloadTooLarge => (
                StatusCode::PAYLOAD_TOO_LARGE,
                "The request body is too large.",
            ),
            ErrorCode::UnsupportedMediaType => (
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "The request body must be application/json.",
            ),
            ErrorCode::RateLimitExceeded
            | ErrorCode::ConcurrencyLimitExceeded
            | ErrorCode::AuthRateLimitExceeded => {
                (StatusCode::TOO_MANY_REQUESTS, "Too Many Attempts.")
            }
            ErrorCode::RequestBodyTimeout => (
                StatusCode::REQUEST_TIMEOUT,
                "The request body arrived too slowly.",
            ),
            ErrorCode::InternalError => (StatusCode::INTERNAL_SERVER_ERROR, "Server Error"),
            ErrorCode::ServiceUnavailable | ErrorCode::RequestTimeout => {
                (StatusCode::SERVICE_UNAVAILABLE, "Service Unavailable")
            }
            ErrorCode::IdempotencyKeyReused => (
                StatusCode::CONFLICT,
                "The Idempotency-Key was used for another request.",
            ),
            ErrorCode::IdempotencyRequestInProgress => (
                StatusCode::CONFLICT,
                "A request with this Idempotency-Key is in progress.",
            ),
            ErrorCode::UploadUrlInvalid | ErrorCode::UploadUrlExpired => {
                (StatusCode::FORBIDDEN, "This action is unauthorized.")
            }
            ErrorCode::UploadUrlUsed => (StatusCode::CONFLICT, "The upload URL was used already."),
        },
    }
}

/// A field error in Laravel's words: `The message field is required.`
fn laravel_message(field: &str, error: &FieldError) -> String {
    match error.code {
        FieldCode::MissingRequired | FieldCode::TooShort => {
            format!("The {field} field is required.")
        }
        _ => match error.detail_after_field() {
            Some(rest) => format!("The {field} field {rest}"),
            None => error.detail.clone(),
        },
    }
}

/// The `errors` of a 422: each field's messages, in the order found; a
/// refusal naming no field is filed under `request`.
fn errors_of(refusal: &PendingRefusal) -> Map<String, Value> {
    let mut errors = Map::new();
    for error in &refusal.errors {
        let field = if error.pointer.is_empty() {
            "request".to_owned()
        } else {
            error.dotted_path()
        };
        let message = laravel_message(&field, error);
        match errors
            .entry(field)
            .or_insert_with(|| Value::Array(Vec::new()))
        {
            Value::Array(messages) => messages.push(Value::String(message)),
            other => *other = Value::Array(vec![Value::String(message)]),
        }
    }
    if errors.is_empty() {
        errors.insert(
            "request".into(),
            Value::Array(vec![Value::String(refusal.detail().to_owned())]),
        );
    }
    errors
}

impl RefusalRenderer for AgencyErrors {
    fn status(&self, refusal: &PendingRefusal, _facts: &RequestFacts<'_>) -> StatusCode {
        status_and_message(refusal).0
    }

    fn render(&self, refusal: PendingRefusal, facts: &RequestFacts<'_>) -> (HeaderValue, Vec<u8>) {
        let (status, message) = status_and_message(&refusal);
        let errors = (status == StatusCode::UNPROCESSABLE_ENTITY).then(|| errors_of(&refusal));
        let body = ErrorBody {
            success: false,
            message: message.to_owned(),
            errors,
            data: None,
            request_id: request_uuid(facts.request_id),
            timestamp: facts.now.to_string(),
        };
        let bytes = serde_json::to_vec(&body).unwrap_or_else(|_| {
            br#"{"success":false,"message":"Server Error","data":null}"#.to_vec()
        });
        (HeaderValue::from_static("application/json"), bytes)
    }
}

/// A refusal of one field, in Laravel's words already.
pub fn field_refusal(pointer: &str, code: FieldCode, detail: String) -> Refusal {
    Refusal::invalid(vec![FieldError {
        pointer: pointer.to_owned(),
        detail,
        code,
    }])
}

/// A use case's refusal, in Daakey's terms.
pub fn refusal_of(error: ServiceError) -> Refusal {
    match error {
        // A ticket of another customer is not found, as an unknown one.
        ServiceError::NotFound | ServiceError::NotOwner => {
            Refusal::new(ErrorCode::NotFound).with_reason(TICKET_NOT_FOUND)
        }
        ServiceError::TicketClosed => Refusal::new(ErrorCode::TicketClosed),
        ServiceError::OnBehalfOf(_) | ServiceError::ActionNotPermitted(_) => {
            Refusal::new(ErrorCode::Forbidden)
        }
        ServiceError::CustomerNotFound => Refusal::new(ErrorCode::Forbidden),
        ServiceError::Attachments(refusal) => attachments_refused(&refusal),
        other => crate::api::refusal::server_failure(other),
    }
}

/// Attachments a message cannot carry: 422 on `attachments` or the entry.
fn attachments_refused(refusal: &AttachRefusal) -> Refusal {
    let (pointer, detail) = match refusal {
        AttachRefusal::TooMany { limit } => (
            "/attachments".to_owned(),
            format!("The attachments field must not have more than {limit} items."),
        ),
        AttachRefusal::Uploads(problems) => match problems.first() {
            Some((at, problem)) => (
                format!("/attachments/{at}"),
                format!(
                    "The attachments.{at} field {}",
                    match problem {
                        UploadProblem::Unknown => "must be a file you uploaded.",
                        UploadProblem::Expired => "has expired; upload the file again.",
                        UploadProblem::AlreadyAttached => "is attached to a message already.",
                        UploadProblem::EncryptionMismatch { .. } => "is stored sealed.",
                    }
                ),
            ),
            None => (
                "/attachments".to_owned(),
                "The attachments field is invalid.".to_owned(),
            ),
        },
        other => (
            "/attachments".to_owned(),
            format!("The attachments field is invalid: {other}."),
        ),
    };
    field_refusal(&pointer, FieldCode::InvalidValue, detail)
}
