//! The canonical API's refusals: RFC 9457 problem details
//! (`application/problem+json`).
//!
//! Handlers return [`ApiError`], the protocol-neutral
//! [`crate::api::refusal::Refusal`]; [`Rfc9457`] is the renderer that turns
//! one into a problem document, for the `/api/v2` routes and every route
//! whose group selects no other renderer. What is canonical lives here:
//! each code's title, the `type` URI and its error page's explanation, and
//! the wording that quotes canonical paths.

use axum::http::HeaderValue;
use serde::Serialize;
use utoipa::ToSchema;

pub use crate::api::refusal::{
    BoundedText, ErrorCode, FieldCode, FieldError, FieldErrors, MAX_DETAIL_BYTES, MAX_FIELD_ERRORS,
    MAX_FIELD_ERRORS_BYTES, MAX_POINTER_BYTES, MAX_QUOTED_BYTES, PendingRefusal, Quoted, Refusal,
    RefusalRenderer, RequestFacts, TRUNCATION_MARKER, bounded, quoted, truncate,
};

/// Everything a canonical handler can fail with: a [`Refusal`], under the
/// name the handlers know.
pub type ApiError = Refusal;

/// The most bytes of `instance` (the request path) as sent. This API's
/// paths take at most about 100.
pub const MAX_INSTANCE_BYTES: usize = 512;

/// The most bytes of a whole problem document, whatever the request, given
/// a `public_url` of at most 1 KiB (which the configuration enforces,
/// [`crate::config::Config::MAX_PUBLIC_URL_BYTES`]): the limits above add
/// up to under 15 KiB with it.
pub const MAX_PROBLEM_BYTES: usize = 16 * 1024;

/// A short human title for `code`: the problem's `title`.
pub fn title(code: ErrorCode) -> &'static str {
    match code {
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
        ErrorCode::UploadTooLarge => "Upload too large",
        ErrorCode::UploadContentMismatch => "File content does not match its media type",
        ErrorCode::UploadIncomplete => "Upload incomplete",
        ErrorCode::TooManyAttachments => "Too many attachments",
        ErrorCode::TicketStorageExhausted => "Ticket storage exhausted",
        ErrorCode::UploadUrlInvalid => "Invalid upload URL",
        ErrorCode::UploadUrlExpired => "Upload URL expired",
        ErrorCode::UploadUrlUsed => "Upload URL already used",
    }
}

/// What `code` means and what a client should do, for its error page.
pub fn explanation(code: ErrorCode) -> &'static str {
    match code {
        ErrorCode::InvalidRequest => {
            "One or more fields or query parameters are missing, of the wrong type, out of range or not recognised. Each entry of errors[] names the field (a JSON pointer), what is wrong with it, and a field code: missing_required, invalid_type, too_short, too_long, invalid_value, unknown_field or invalid_encoding (a query or path parameter that is not valid percent-encoded UTF-8). errors[] holds at most 100 entries: when more errors were found, the last entry has the code too_many_errors and says how many more there are. Fix the request; retrying it unchanged will fail again."
        }
        ErrorCode::MalformedJson => {
            "The body could not be read whole, could not be parsed as JSON, or is not UTF-8. The detail says where parsing stopped. For invalid UTF-8, the detail gives the byte offset of the first invalid byte and errors[] holds one entry (code invalid_encoding) whose pointer names the member or element where it is (an empty pointer: the body itself)."
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
        ErrorCode::UnsupportedMediaType => {
            "JSON endpoints take their body with Content-Type: application/json. An upload (POST /api/v2/support/uploads, or a pre-signed upload URL) must be sent as one of the media types the server allows (upload_media_types: unless its operator changed it image/png, image/jpeg, image/gif, image/webp, application/pdf, application/zip, text/plain and text/x-log); the detail lists them. Nothing was stored."
        }
        ErrorCode::RateLimitExceeded => {
            "This API key sent more requests than its rate limit allows. Wait the number of seconds in Retry-After; X-RateLimit-Limit, X-RateLimit-Remaining and X-RateLimit-Reset describe the budget on every authenticated response."
        }
        ErrorCode::ConcurrencyLimitExceeded => {
            "This API key already has as many requests in progress as the server allows one key (max_concurrent_requests_per_key: unless its operator changed it, a sixteenth of max_concurrent_requests, which makes 64). Nothing was done. Wait for one of the key's requests to be answered, then retry; Retry-After says 1 second. Send fewer requests in parallel, or spread the work over several keys."
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
        ErrorCode::UploadTooLarge => {
            "The file is larger than the largest upload the server accepts (max_upload_bytes: 25 MiB unless its operator changed it; the detail gives the limit in bytes). The server stopped reading as soon as the file passed the limit, and nothing was stored. Send a smaller file, or split it."
        }
        ErrorCode::UploadContentMismatch => {
            "The file's first bytes are not those of the media type it was sent as (a PNG starts with the PNG signature, a PDF with %PDF-, text is UTF-8 without NUL bytes, and so on), so it was refused and nothing was stored. Send it with its real media type, if that one is allowed."
        }
        ErrorCode::UploadIncomplete => {
            "The connection ended, or the body's framing broke, before the whole file arrived, so nothing was stored. Send the file again."
        }
        ErrorCode::TooManyAttachments => {
            "A message may carry at most max_attachments_per_message files (10 unless the operator changed it; the detail gives the limit). Nothing was written. Send the others in another message."
        }
        ErrorCode::TicketStorageExhausted => {
            "The files of one ticket may hold at most max_ticket_attachment_bytes together (1 GiB unless the operator changed it; the detail gives the limit), and this message's files would pass it. Nothing was written. Open a new ticket for more files."
        }
        ErrorCode::UploadUrlInvalid => {
            "The pre-signed upload URL does not carry a token this server issued: it was altered, cut short, or signed with another server secret. Nothing was stored. Ask for a new URL with POST /api/v2/support/uploads/url."
        }
        ErrorCode::UploadUrlExpired => {
            "The pre-signed upload URL's time ran out (its expiresAt has passed). Nothing was stored. Ask for a new URL with POST /api/v2/support/uploads/url and send the file promptly."
        }
        ErrorCode::UploadUrlUsed => {
            "A pre-signed upload URL works once, and this one has been used already. Nothing was stored. Ask for a new URL for every file."
        }
    }
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
    /// What went wrong with this request. At most 512 bytes as sent: text
    /// quoted from the request is cut short, ending in `…` (U+2026).
    #[schema(example = "The request body failed validation.", max_length = 512)]
    pub detail: String,
    /// Stable machine-readable code. Branch on this field, not on `detail`.
    #[schema(example = "invalid_request")]
    pub code: String,
    /// The request path; one over 512 bytes is cut short, ending in `…`.
    #[schema(
        example = "/api/v2/support/tickets/tkt_01hxa3b4c5d6e7f8g9h0j1k2m3/messages",
        max_length = 512
    )]
    pub instance: String,
    /// The request's id, also in the `X-Request-Id` header and the server log.
    #[schema(example = "req_01hxa3b4c5d6e7f8g9h0j1k2m3")]
    pub request_id: String,
    /// When the error happened (RFC 3339, UTC, milliseconds).
    #[schema(example = "2026-04-27T12:34:56.000Z")]
    pub timestamp: String,
    /// Field-level validation errors when `code` is `invalid_request`; for
    /// `malformed_json`, where a body that is not UTF-8 goes wrong. At most
    /// 100 entries, taking at most 12 KiB (12,288 bytes) before the last:
    /// when more errors were found, the first are listed and a final entry
    /// with code `too_many_errors` says how many more there are.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    #[schema(max_items = 100)]
    pub errors: Vec<FieldError>,
}

/// Media type of problem documents.
pub const PROBLEM_CONTENT_TYPE: &str = "application/problem+json";

/// The URI of the page that explains `code`.
pub fn problem_type_uri(public_url: &str, code: &str) -> String {
    format!("{}/errors/{code}", public_url.trim_end_matches('/'))
}

/// The canonical detail for a refusal that kept its kind's default one,
/// where the canonical API says more than the neutral default.
fn canonical_detail(code: ErrorCode) -> Option<&'static str> {
    match code {
        ErrorCode::TicketClosed => Some(
            "This ticket is closed. Closed tickets must be reopened first: \
             POST /api/v2/support/tickets/{id}/actions/reopen, then retry.",
        ),
        _ => None,
    }
}

/// The canonical renderer: refusals as RFC 9457 problem documents.
#[derive(Debug, Clone, Copy, Default)]
pub struct Rfc9457;

impl RefusalRenderer for Rfc9457 {
    fn render(&self, refusal: PendingRefusal, facts: &RequestFacts<'_>) -> (HeaderValue, Vec<u8>) {
        // The path is the client's, up to the request head's limit in length.
        let instance = bounded(MAX_INSTANCE_BYTES, format_args!("{}", facts.path));
        let detail = match (refusal.detail, canonical_detail(refusal.code)) {
            (Some(given), _) => given,
            (None, Some(canonical)) => canonical.to_owned(),
            (None, None) => refusal.code.default_detail().to_owned(),
        };
        let problem = Problem {
            type_uri: problem_type_uri(facts.public_url, refusal.code.as_str()),
            title: title(refusal.code).to_owned(),
            status: facts.status.as_u16(),
            detail,
            code: refusal.code.as_str().to_owned(),
            instance,
            request_id: facts.request_id.to_string(),
            timestamp: facts.now.to_string(),
            errors: refusal.errors,
        };
        // Serialising a struct of strings cannot fail; fall back to an empty
        // object rather than panic if it ever did.
        let body = serde_json::to_vec(&problem).unwrap_or_else(|_| b"{}".to_vec());
        (HeaderValue::from_static(PROBLEM_CONTENT_TYPE), body)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_openapi_document_states_the_limits() {
        let document: serde_json::Value =
            serde_json::from_str(crate::api::openapi_json()).expect("the document is JSON");
        let schemas = &document["components"]["schemas"];
        let problem = &schemas["Problem"]["properties"];
        assert_eq!(problem["errors"]["maxItems"], MAX_FIELD_ERRORS);
        assert_eq!(problem["detail"]["maxLength"], MAX_DETAIL_BYTES);
        assert_eq!(problem["instance"]["maxLength"], MAX_INSTANCE_BYTES);
        let entry = &schemas["FieldError"]["properties"];
        assert_eq!(entry["pointer"]["maxLength"], MAX_POINTER_BYTES);
        assert_eq!(entry["detail"]["maxLength"], MAX_DETAIL_BYTES);
        let codes = schemas["FieldCode"]["enum"].as_array().expect("an enum");
        assert!(codes.contains(&"too_many_errors".into()), "{codes:?}");
    }

    #[test]
    fn every_code_has_a_title_and_an_explanation() {
        for code in ErrorCode::ALL {
            assert!(!title(code).is_empty() && !explanation(code).is_empty());
        }
    }
}
