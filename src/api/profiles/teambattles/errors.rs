//! TeamBattles' error envelope, `{"error": CODE, "details": TEXT}`, for
//! every refusal under `/api/v1` but the agency profile's: its handlers'
//! and the shared layers' (authentication, rate limits, body limits,
//! timeouts, router fallbacks). The SDK parses only the statuses each
//! operation lists (400, 401, 403, 404, 409, 429, 500), so validation
//! failures of any kind are 400s.

use axum::http::{HeaderValue, StatusCode};

use crate::api::profiles::teambattles::wire::ErrorBody;
use crate::api::refusal::{ErrorCode, PendingRefusal, Refusal, RefusalRenderer, RequestFacts};
use crate::core::upload::attach::{AttachRefusal, UploadProblem};
use crate::service::{ServiceError, UploadError};

/// TeamBattles' code for a ticket the caller may not see.
pub const TICKET_NOT_FOUND: &str = "TICKET_NOT_FOUND";
/// TeamBattles' code for a reply to another user's ticket.
pub const TICKET_ACCESS_DENIED: &str = "TICKET_ACCESS_DENIED";
/// TeamBattles' code for a value the contract does not allow (a category,
/// an image).
pub const INVALID_INPUT: &str = "INVALID_INPUT";
/// TeamBattles' code for a `limit` outside 1 to 100.
pub const INVALID_LIMIT: &str = "INVALID_LIMIT";
/// TeamBattles' code for a `cursor` that is not one.
pub const INVALID_CURSOR: &str = "INVALID_CURSOR";

/// Writes refusals as TeamBattles does.
#[derive(Debug, Clone, Copy)]
pub struct TeambattlesErrors;

/// The code of a validation failure, by the field it names first:
/// TeamBattles has its own for the list's parameters and for values its
/// contract does not allow (a category, an image).
fn invalid_code(refusal: &PendingRefusal) -> &'static str {
    let field = refusal
        .errors
        .first()
        .map_or("", |error| error.pointer.as_str());
    match field {
        "/limit" => INVALID_LIMIT,
        "/cursor" => INVALID_CURSOR,
        "/category" => INVALID_INPUT,
        images if images == "/images" || images.starts_with("/images/") => INVALID_INPUT,
        _ => "error_invalid_request",
    }
}

/// The code and status of a refusal that names no finer reason.
fn code_of(refusal: &PendingRefusal, facts: &RequestFacts<'_>) -> (&'static str, StatusCode) {
    let bad_request = StatusCode::BAD_REQUEST;
    match refusal.code {
        ErrorCode::InvalidRequest => (invalid_code(refusal), bad_request),
        ErrorCode::MalformedJson
        | ErrorCode::IdempotencyKeyInvalid
        | ErrorCode::UploadIncomplete => ("error_invalid_request", bad_request),
        ErrorCode::TooManyAttachments
        | ErrorCode::TicketStorageExhausted
        | ErrorCode::UploadTooLarge
        | ErrorCode::UploadContentMismatch => (INVALID_INPUT, bad_request),
        ErrorCode::TicketClosed => ("TICKET_CLOSED", bad_request),
        ErrorCode::Unauthorized if facts.credentials_sent => {
            ("error_api_key_invalid", StatusCode::UNAUTHORIZED)
        }
        ErrorCode::Unauthorized => ("error_api_key_required", StatusCode::UNAUTHORIZED),
        ErrorCode::Forbidden => ("error_api_key_permission_denied", StatusCode::FORBIDDEN),
        ErrorCode::NotFound => ("error_not_found", StatusCode::NOT_FOUND),
        ErrorCode::MethodNotAllowed => ("error_method_not_allowed", StatusCode::METHOD_NOT_ALLOWED),
        ErrorCode::PayloadTooLarge => ("error_payload_too_large", StatusCode::PAYLOAD_TOO_LARGE),
        ErrorCode::UnsupportedMediaType => (
            "error_unsupported_media_type",
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
        ),
        ErrorCode::RateLimitExceeded | ErrorCode::ConcurrencyLimitExceeded => {
            ("error_api_rate_limited", StatusCode::TOO_MANY_REQUESTS)
        }
        ErrorCode::AuthRateLimitExceeded => {
            ("error_ip_rate_limited", StatusCode::TOO_MANY_REQUESTS)
        }
        ErrorCode::RequestBodyTimeout => ("error_request_timeout", StatusCode::REQUEST_TIMEOUT),
        ErrorCode::InternalError => ("error_internal", StatusCode::INTERNAL_SERVER_ERROR),
        ErrorCode::ServiceUnavailable | ErrorCode::RequestTimeout => {
            ("error_service_unavailable", StatusCode::SERVICE_UNAVAILABLE)
        }
        ErrorCode::IdempotencyKeyReused => ("error_idempotency_key_conflict", StatusCode::CONFLICT),
        ErrorCode::IdempotencyRequestInProgress => {
            ("error_idempotency_key_in_progress", StatusCode::CONFLICT)
        }
        ErrorCode::UploadUrlInvalid => ("error_upload_url_invalid", StatusCode::FORBIDDEN),
        ErrorCode::UploadUrlExpired => ("error_upload_url_expired", StatusCode::FORBIDDEN),
        ErrorCode::UploadUrlUsed => ("error_upload_url_used", StatusCode::CONFLICT),
    }
}

/// The status that goes with a finer reason.
fn status_of_reason(reason: &str) -> Option<StatusCode> {
    match reason {
        TICKET_NOT_FOUND => Some(StatusCode::NOT_FOUND),
        TICKET_ACCESS_DENIED => Some(StatusCode::FORBIDDEN),
        INVALID_INPUT | INVALID_LIMIT | INVALID_CURSOR => Some(StatusCode::BAD_REQUEST),
        _ => None,
    }
}

/// The details of a refusal: its first field error, named by its field
/// (`content: must be at most 2000 characters long`), or its detail.
fn details_of(refusal: &PendingRefusal) -> String {
    match refusal.errors.first() {
        Some(error) if !error.pointer.is_empty() => {
            let field = error.pointer.trim_start_matches('/').replace('/', ".");
            format!("{field}: {}", error.detail)
        }
        Some(error) => error.detail.clone(),
        None => refusal.detail().to_owned(),
    }
}

impl RefusalRenderer for TeambattlesErrors {
    fn status(&self, refusal: &PendingRefusal, facts: &RequestFacts<'_>) -> StatusCode {
        refusal
            .reason
            .and_then(status_of_reason)
            .unwrap_or_else(|| code_of(refusal, facts).1)
    }

    fn render(&self, refusal: PendingRefusal, facts: &RequestFacts<'_>) -> (HeaderValue, Vec<u8>) {
        let code = refusal.reason.unwrap_or_else(|| code_of(&refusal, facts).0);
        let body = ErrorBody {
            error: code.to_owned(),
            details: Some(details_of(&refusal)),
        };
        let bytes = serde_json::to_vec(&body)
            .unwrap_or_else(|_| b"{\"error\":\"error_internal\"}".to_vec());
        (HeaderValue::from_static("application/json"), bytes)
    }
}

/// A use case's refusal, in TeamBattles' terms.
pub fn refusal_of(error: ServiceError) -> Refusal {
    match error {
        ServiceError::NotFound => Refusal::new(ErrorCode::NotFound)
            .with_reason(TICKET_NOT_FOUND)
            .with_detail("No such ticket of yours."),
        ServiceError::NotOwner => Refusal::new(ErrorCode::Forbidden)
            .with_reason(TICKET_ACCESS_DENIED)
            .with_detail("This ticket is not yours to reply to."),
        ServiceError::TicketClosed => Refusal::new(ErrorCode::TicketClosed)
            .with_detail("The ticket is closed: it takes no more replies."),
        ServiceError::OnBehalfOf(_) | ServiceError::ActionNotPermitted(_) => {
            Refusal::new(ErrorCode::Forbidden)
                .with_detail("Only a customer's API key opens tickets through this API.")
        }
        ServiceError::CustomerNotFound => Refusal::new(ErrorCode::Forbidden),
        ServiceError::Attachments(refusal) => images_refused(&refusal),
        other => crate::api::refusal::server_failure(other),
    }
}

/// Images a message cannot carry: 400 `INVALID_INPUT`, naming the first.
fn images_refused(refusal: &AttachRefusal) -> Refusal {
    let details = match refusal {
        AttachRefusal::TooMany { limit } => format!("images: at most {limit} images per message"),
        AttachRefusal::Uploads(problems) => match problems.first() {
            Some((at, problem)) => format!(
                "images[{at}]: {}",
                match problem {
                    UploadProblem::Unknown => "no such image of yours",
                    UploadProblem::Expired => "the image expired; upload it again",
                    UploadProblem::AlreadyAttached => "the image is attached to a message already",
                    UploadProblem::EncryptionMismatch { .. } => "the image is stored sealed",
                }
            ),
            None => "images: cannot be attached".into(),
        },
        other => format!("images: {other}"),
    };
    Refusal::new(ErrorCode::InvalidRequest)
        .with_reason(INVALID_INPUT)
        .with_detail(details)
}

/// An upload's refusal, in TeamBattles' terms: a file that is not an image
/// TeamBattles takes is 400 `INVALID_INPUT`.
pub fn upload_refusal(error: UploadError) -> Refusal {
    match error {
        UploadError::Refused(refusal) => Refusal::new(ErrorCode::InvalidRequest)
            .with_reason(INVALID_INPUT)
            .with_detail(format!("image: {refusal}")),
        UploadError::Service(error) => refusal_of(error),
        other => crate::api::v2::service_errors::canonical_upload(
            other,
            &crate::core::upload::media::MediaCheck::default(),
        ),
    }
}
