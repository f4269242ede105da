//! Refusals, whatever the wire format: what went wrong ([`ErrorCode`]),
//! the detail, the field errors, `Retry-After` and, for the log, the cause.
//!
//! Handlers, extractors and middleware return a [`Refusal`] (the canonical
//! handlers know it as [`crate::api::problem::ApiError`]). Rendering it
//! needs the request id and path, which only the outermost middleware
//! knows, so a `Refusal` becomes a response carrying a [`PendingRefusal`]
//! extension; [`crate::api::context`] has it written by the
//! [`RefusalRenderer`] of the API whose path it is under ([`Renderers`]),
//! by default the canonical RFC 9457 one.
//!
//! Whatever the request, a refusal stays small: its field errors are a
//! [`FieldErrors`], which stops listing entries at [`MAX_FIELD_ERRORS`] or
//! [`MAX_FIELD_ERRORS_BYTES`] and ends with one `too_many_errors` entry
//! counting the rest, and text taken from the request is cut short as it is
//! built ([`BoundedText`], [`quoted`]), never built whole and truncated.

use std::fmt;
use std::sync::Arc;

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use utoipa::ToSchema;

use crate::core::id::RequestId;
use crate::core::time::Timestamp;
use crate::service::ServiceError;

/// The most entries a problem's `errors[]` holds, the final
/// `too_many_errors` entry included: past it, the first 99 errors found are
/// listed and the 100th entry says how many more there are. A client fixing
/// a form needs far fewer; a request with 87,000 unknown members gets 100.
pub const MAX_FIELD_ERRORS: usize = 100;

/// The most bytes the entries of `errors[]` take as sent (JSON, escapes
/// included), the final `too_many_errors` entry aside. 100 entries about
/// short member names fit (about 9 KiB); long ones stop the list sooner,
/// so that a problem document stays under [`crate::api::problem::MAX_PROBLEM_BYTES`].
pub const MAX_FIELD_ERRORS_BYTES: usize = 12 * 1024;

/// The most bytes of an entry's `pointer` as sent (JSON-escaped). The API's
/// own members are a few dozen bytes deep at most; a longer pointer can
/// only come from a body nobody would send on purpose, and is cut short
/// with [`TRUNCATION_MARKER`] (so it no longer resolves).
pub const MAX_POINTER_BYTES: usize = 256;

/// The most bytes of text from the request (a member or parameter name)
/// that a `detail` quotes, as sent; longer text is cut short with
/// [`TRUNCATION_MARKER`]. Every name this API takes is under 20 bytes.
pub const MAX_QUOTED_BYTES: usize = 128;

/// The most bytes of a `detail`, the problem's or an entry's, as sent. The
/// longest one ticketd writes, invalid UTF-8 with its pointer, takes about
/// 400.
pub const MAX_DETAIL_BYTES: usize = 512;

/// What ends text that was cut short: `…` (U+2026), three bytes.
pub const TRUNCATION_MARKER: &str = "\u{2026}";

/// How many bytes `c` takes inside a JSON string as sent: serde_json's
/// escapes take two bytes for a quote, a backslash and the control
/// characters with a short escape (`\n`), six for the other control
/// characters (`\u0001`); everything else takes its UTF-8 bytes.
fn escaped_len(c: char) -> usize {
    match c {
        '"' | '\\' | '\u{8}' | '\u{c}' | '\n' | '\r' | '\t' => 2,
        '\0'..='\u{1f}' => 6,
        _ => c.len_utf8(),
    }
}

/// How many bytes `text` takes inside a JSON string as sent.
fn json_len(text: &str) -> usize {
    text.chars().map(escaped_len).sum()
}

/// The byte length of the longest prefix of `text` (ending on a character
/// boundary) that takes at most `max` bytes as sent, and whether that is
/// all of `text`. Looks at no more of `text` than it needs.
fn fitting_prefix(text: &str, max: usize) -> (usize, bool) {
    let mut sent = 0;
    for (at, c) in text.char_indices() {
        sent += escaped_len(c);
        if sent > max {
            return (at, false);
        }
    }
    (text.len(), true)
}

/// Where to cut `text` so that it and [`TRUNCATION_MARKER`] take at most
/// `max` bytes as sent; `None` if all of it fits.
fn cut_point(text: &str, max: usize) -> Option<usize> {
    let (_, whole) = fitting_prefix(text, max);
    (!whole).then(|| fitting_prefix(text, max.saturating_sub(TRUNCATION_MARKER.len())).0)
}

/// Cuts `text` on a character boundary so that it takes at most `max`
/// bytes as sent in a JSON string, ending in [`TRUNCATION_MARKER`] if
/// anything was cut. Costs at most `max` characters of work, however long
/// `text` is.
pub fn truncate(text: &mut String, max: usize) {
    if let Some(keep) = cut_point(text, max) {
        text.truncate(keep);
        text.push_str(TRUNCATION_MARKER);
    }
}

/// Text built piece by piece (with `write!` or [`BoundedText::push_str`])
/// that takes at most a number of bytes as sent in a JSON string: once a
/// piece passes the limit, the text is cut on a character boundary, ends
/// in [`TRUNCATION_MARKER`], and everything written after is dropped
/// unread. So quoting a megabyte costs as much as quoting the limit.
#[derive(Debug, Clone)]
pub struct BoundedText {
    text: String,
    max: usize,
    /// The bytes `text` takes as sent.
    sent: usize,
    /// The length of the longest prefix of `text` that leaves room for the
    /// marker.
    keep: usize,
    full: bool,
}

impl BoundedText {
    /// Empty text that will take at most `max` bytes as sent.
    pub fn new(max: usize) -> Self {
        Self {
            text: String::new(),
            max,
            sent: 0,
            keep: 0,
            full: false,
        }
    }

    /// Appends as much of `piece` as fits.
    pub fn push_str(&mut self, piece: &str) {
        if self.full {
            return;
        }
        let room = self.max.saturating_sub(TRUNCATION_MARKER.len());
        for c in piece.chars() {
            let len = escaped_len(c);
            if self.sent + len > self.max {
                self.text.truncate(self.keep);
                self.text.push_str(TRUNCATION_MARKER);
                self.full = true;
                return;
            }
            self.text.push(c);
            self.sent += len;
            if self.sent <= room {
                self.keep = self.text.len();
            }
        }
    }

    /// Whether the text was cut short: nothing more is taken.
    pub fn is_full(&self) -> bool {
        self.full
    }

    /// The text.
    pub fn into_string(self) -> String {
        self.text
    }
}

impl fmt::Write for BoundedText {
    fn write_str(&mut self, piece: &str) -> fmt::Result {
        self.push_str(piece);
        Ok(())
    }
}

/// Formats `args` into text of at most `max` bytes as sent, cut short as
/// it is built: `bounded(MAX_DETAIL_BYTES, format_args!(...))`.
pub fn bounded(max: usize, args: fmt::Arguments<'_>) -> String {
    let mut text = BoundedText::new(max);
    // Writing to a BoundedText never fails.
    let _ = fmt::Write::write_fmt(&mut text, args);
    text.into_string()
}

/// Text from the request, for quoting in a detail: displays at most
/// [`MAX_QUOTED_BYTES`] bytes of it (as sent), ending in
/// [`TRUNCATION_MARKER`] if it was longer.
pub fn quoted(text: &str) -> Quoted<'_> {
    Quoted(text)
}

/// See [`quoted`].
#[derive(Debug, Clone, Copy)]
pub struct Quoted<'a>(&'a str);

impl fmt::Display for Quoted<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match cut_point(self.0, MAX_QUOTED_BYTES) {
            None => f.write_str(self.0),
            Some(keep) => {
                f.write_str(&self.0[..keep])?;
                f.write_str(TRUNCATION_MARKER)
            }
        }
    }
}

/// What went wrong: the stable, machine-readable kinds of refusal. The
/// canonical API sends them as its `code`; a profile maps them to its own
/// vocabulary. Clients branch on these; details are for people.
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
    /// An uploaded file is larger than `max_upload_bytes`.
    UploadTooLarge,
    /// An uploaded file's bytes are not of the media type it was sent as.
    UploadContentMismatch,
    /// The uploaded file did not arrive whole.
    UploadIncomplete,
    /// A message names more files than one may carry.
    TooManyAttachments,
    /// The ticket's files would hold more than a ticket's files may.
    TicketStorageExhausted,
    /// A pre-signed upload URL that ticketd did not issue, or altered.
    UploadUrlInvalid,
    /// A pre-signed upload URL whose time ran out.
    UploadUrlExpired,
    /// A pre-signed upload URL that was used already.
    UploadUrlUsed,
}

impl ErrorCode {
    /// Every code, for the error pages and the OpenAPI document.
    pub const ALL: [ErrorCode; 27] = [
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
        ErrorCode::UploadTooLarge,
        ErrorCode::UploadContentMismatch,
        ErrorCode::UploadIncomplete,
        ErrorCode::TooManyAttachments,
        ErrorCode::TicketStorageExhausted,
        ErrorCode::UploadUrlInvalid,
        ErrorCode::UploadUrlExpired,
        ErrorCode::UploadUrlUsed,
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
            ErrorCode::UploadTooLarge => "upload_too_large",
            ErrorCode::UploadContentMismatch => "upload_content_mismatch",
            ErrorCode::UploadIncomplete => "upload_incomplete",
            ErrorCode::TooManyAttachments => "too_many_attachments",
            ErrorCode::TicketStorageExhausted => "ticket_storage_exhausted",
            ErrorCode::UploadUrlInvalid => "upload_url_invalid",
            ErrorCode::UploadUrlExpired => "upload_url_expired",
            ErrorCode::UploadUrlUsed => "upload_url_used",
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
            | ErrorCode::IdempotencyKeyInvalid
            | ErrorCode::UploadIncomplete
            | ErrorCode::TooManyAttachments
            | ErrorCode::TicketStorageExhausted => StatusCode::BAD_REQUEST,
            ErrorCode::UploadTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            ErrorCode::UploadContentMismatch => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            ErrorCode::UploadUrlInvalid | ErrorCode::UploadUrlExpired => StatusCode::FORBIDDEN,
            ErrorCode::UploadUrlUsed => StatusCode::CONFLICT,
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
            ErrorCode::UploadTooLarge => "The file is larger than the server accepts.",
            ErrorCode::UploadContentMismatch => {
                "The file's content is not of the media type it was sent as."
            }
            ErrorCode::UploadIncomplete => "The file did not arrive whole.",
            ErrorCode::TooManyAttachments => "The message names more files than one may carry.",
            ErrorCode::TicketStorageExhausted => {
                "The ticket's files would hold more bytes than one ticket's may."
            }
            ErrorCode::UploadUrlInvalid => "The upload URL is not one this server issued.",
            ErrorCode::UploadUrlExpired => "The upload URL has expired.",
            ErrorCode::UploadUrlUsed => "The upload URL was used already.",
        }
    }
}

/// Why one field or parameter was refused; `too_many_errors` marks the
/// final entry of an `errors[]` that lists only the first errors found.
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
    /// Not an error of its own: the final entry of an `errors[]` that lists
    /// only the first errors found, saying how many more there are.
    TooManyErrors,
}

impl FieldCode {
    /// Every code.
    pub const ALL: [FieldCode; 8] = [
        FieldCode::MissingRequired,
        FieldCode::InvalidType,
        FieldCode::TooShort,
        FieldCode::TooLong,
        FieldCode::InvalidValue,
        FieldCode::UnknownField,
        FieldCode::InvalidEncoding,
        FieldCode::TooManyErrors,
    ];

    /// The code as sent in an entry's `code`.
    pub fn as_str(self) -> &'static str {
        match self {
            FieldCode::MissingRequired => "missing_required",
            FieldCode::InvalidType => "invalid_type",
            FieldCode::TooShort => "too_short",
            FieldCode::TooLong => "too_long",
            FieldCode::InvalidValue => "invalid_value",
            FieldCode::UnknownField => "unknown_field",
            FieldCode::InvalidEncoding => "invalid_encoding",
            FieldCode::TooManyErrors => "too_many_errors",
        }
    }
}

/// One entry of a problem's `errors[]`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct FieldError {
    /// JSON pointer (RFC 6901) to the member in the request body, or
    /// `/name` for a query or path parameter; `""` for the final
    /// `too_many_errors` entry. At most 256 bytes as sent: a longer one is
    /// cut short and ends in `…` (U+2026).
    #[schema(max_length = 256)]
    pub pointer: String,
    /// What is wrong, for people. At most 512 bytes as sent.
    #[schema(max_length = 512)]
    pub detail: String,
    /// What is wrong, for programs.
    pub code: FieldCode,
}

impl FieldError {
    /// The field's name as the profiles with dotted paths write it: the
    /// pointer's segments, unescaped, joined with dots (`/attachments/0`
    /// is `attachments.0`).
    pub fn dotted_path(&self) -> String {
        self.pointer
            .trim_start_matches('/')
            .split('/')
            .map(|segment| segment.replace("~1", "/").replace("~0", "~"))
            .collect::<Vec<_>>()
            .join(".")
    }

    /// The detail without the field it starts with: the core words each
    /// detail as "`name` must be ..." or "Each entry of `name` must be
    /// ..."; `None` for a detail worded otherwise.
    pub fn detail_after_field(&self) -> Option<&str> {
        self.detail
            .split_once("` ")
            .filter(|(start, _)| start.starts_with('`') || start.starts_with("Each entry of `"))
            .map(|(_, rest)| rest)
    }

    /// The bytes this entry adds to `errors[]` as sent, its comma included.
    fn sent_len(&self) -> usize {
        const MEMBERS: usize = r#",{"pointer":"","detail":"","code":""}"#.len();
        MEMBERS + json_len(&self.pointer) + json_len(&self.detail) + self.code.as_str().len()
    }
}

/// The entries of a problem's `errors[]`, bounded as they are collected:
/// at most [`MAX_FIELD_ERRORS`] entries in [`MAX_FIELD_ERRORS_BYTES`]
/// bytes, each pointer and detail cut short to [`MAX_POINTER_BYTES`] and
/// [`MAX_DETAIL_BYTES`]. Errors past the limits are only counted, and
/// [`FieldErrors::into_vec`] ends the list with a `too_many_errors` entry
/// giving their number. Entries keep the order they were found in: once one
/// is left out, all that follow are too.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FieldErrors {
    entries: Vec<FieldError>,
    /// The bytes `entries` take as sent.
    sent: usize,
    /// Errors found but not listed.
    omitted: usize,
}

impl FieldErrors {
    /// No errors.
    pub fn new() -> Self {
        Self::default()
    }

    /// Whether no error was found.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty() && self.omitted == 0
    }

    /// Whether the list is closed: every error from now on is only counted.
    pub fn is_full(&self) -> bool {
        self.omitted > 0 || self.entries.len() >= MAX_FIELD_ERRORS
    }

    /// How many more entries may still be listed (fewer may fit, if long).
    pub fn room(&self) -> usize {
        if self.is_full() {
            0
        } else {
            MAX_FIELD_ERRORS - self.entries.len()
        }
    }

    /// Records an error.
    pub fn push(&mut self, error: FieldError) {
        self.push_with(|| error);
    }

    /// Records the error `make` builds, calling it only if the error can
    /// still be listed: a caller finding thousands of errors builds at most
    /// [`MAX_FIELD_ERRORS`] of them.
    pub fn push_with(&mut self, make: impl FnOnce() -> FieldError) {
        if self.is_full() {
            self.omitted += 1;
            return;
        }
        let mut error = make();
        truncate(&mut error.pointer, MAX_POINTER_BYTES);
        truncate(&mut error.detail, MAX_DETAIL_BYTES);
        let sent = error.sent_len();
        if self.sent + sent > MAX_FIELD_ERRORS_BYTES {
            self.omitted += 1;
        } else {
            self.sent += sent;
            self.entries.push(error);
        }
    }

    /// Counts `count` more errors found but not built, because there is no
    /// [`FieldErrors::room`] for them.
    pub fn omit(&mut self, count: usize) {
        self.omitted += count;
    }

    /// The entries to send: those listed and, if any were left out, a final
    /// `too_many_errors` entry counting them, in at most
    /// [`MAX_FIELD_ERRORS`] entries.
    pub fn into_vec(mut self) -> Vec<FieldError> {
        if self.omitted > 0 && self.entries.len() >= MAX_FIELD_ERRORS {
            let extra = self.entries.len() + 1 - MAX_FIELD_ERRORS;
            self.entries.truncate(MAX_FIELD_ERRORS - 1);
            self.omitted += extra;
        }
        if self.omitted > 0 {
            let more = match self.omitted {
                1 => "1 more error was found but is not listed".to_owned(),
                count => format!("{count} more errors were found but are not listed"),
            };
            self.entries.push(FieldError {
                pointer: String::new(),
                detail: format!(
                    "{more} (errors[] holds at most {MAX_FIELD_ERRORS} entries and \
                     {MAX_FIELD_ERRORS_BYTES} bytes)."
                ),
                code: FieldCode::TooManyErrors,
            });
        }
        self.entries
    }
}

impl From<Vec<FieldError>> for FieldErrors {
    fn from(errors: Vec<FieldError>) -> Self {
        let mut bounded = Self::new();
        for error in errors {
            bounded.push(error);
        }
        bounded
    }
}

impl From<FieldError> for FieldErrors {
    fn from(error: FieldError) -> Self {
        let mut bounded = Self::new();
        bounded.push(error);
        bounded
    }
}

/// A refusal on its way out: the extension a refused response carries until
/// the outermost middleware ([`crate::api::context`]) has it rendered by its
/// API's [`RefusalRenderer`] and logs its cause.
#[derive(Debug, Clone)]
pub struct PendingRefusal {
    /// What went wrong.
    pub code: ErrorCode,
    /// The detail given, at most [`MAX_DETAIL_BYTES`] as sent; `None` when
    /// none more specific than the kind's was given, so that a renderer
    /// may word it its own way ([`PendingRefusal::detail`] is the neutral
    /// wording).
    pub detail: Option<String>,
    /// Field errors, if any, as [`FieldErrors::into_vec`] lists them.
    pub errors: Vec<FieldError>,
    /// The `Retry-After` seconds, also sent as that header.
    pub retry_after_secs: Option<u64>,
    /// For 5xx: what actually happened, for the request's log line only.
    pub cause: Option<String>,
    /// A finer reason, in the vocabulary of the API whose handler refused
    /// (a compatibility profile's own error code); renderers of other APIs
    /// ignore it.
    pub reason: Option<&'static str>,
}

impl PendingRefusal {
    /// The detail given, or the kind's [`ErrorCode::default_detail`].
    pub fn detail(&self) -> &str {
        self.detail
            .as_deref()
            .unwrap_or_else(|| self.code.default_detail())
    }
}

/// Everything a handler, extractor or middleware can refuse a request
/// with, whatever the wire format its errors are rendered in.
#[derive(Debug)]
pub struct Refusal {
    code: ErrorCode,
    // Boxed strings keep the refusal, which every fallible handler returns,
    // small.
    detail: Option<Box<str>>,
    errors: FieldErrors,
    retry_after_secs: Option<u64>,
    /// For 5xx: what actually happened, for the log only.
    cause: Option<Box<str>>,
    reason: Option<&'static str>,
}

impl Refusal {
    /// An error with the code's default detail.
    pub fn new(code: ErrorCode) -> Self {
        Self {
            code,
            detail: None,
            errors: FieldErrors::new(),
            retry_after_secs: None,
            cause: None,
            reason: None,
        }
    }

    /// Replaces the detail, cut short to [`MAX_DETAIL_BYTES`]. A detail
    /// quoting the request should be built with [`quoted`] or [`bounded`],
    /// so that it is never long in the first place.
    pub fn with_detail(mut self, detail: impl Into<String>) -> Self {
        let mut detail = detail.into();
        truncate(&mut detail, MAX_DETAIL_BYTES);
        self.detail = Some(detail.into_boxed_str());
        self
    }

    /// Replaces the entries of `errors[]`.
    pub fn with_errors(mut self, errors: impl Into<FieldErrors>) -> Self {
        self.errors = errors.into();
        self
    }

    /// Names a finer reason in the refusing API's own vocabulary (see
    /// [`PendingRefusal::reason`]).
    pub fn with_reason(mut self, reason: &'static str) -> Self {
        self.reason = Some(reason);
        self
    }

    /// Adds a `Retry-After` header.
    pub fn with_retry_after(mut self, secs: u64) -> Self {
        self.retry_after_secs = Some(secs);
        self
    }

    /// A validation failure listing the field errors.
    pub fn invalid(errors: impl Into<FieldErrors>) -> Self {
        Self {
            errors: errors.into(),
            ..Self::new(ErrorCode::InvalidRequest)
        }
    }

    /// An internal error; `cause` goes to the log, never to the client.
    pub fn internal(cause: impl Into<String>) -> Self {
        Self {
            cause: Some(cause.into().into_boxed_str()),
            ..Self::new(ErrorCode::InternalError)
        }
    }

    /// The 503 for a backing service (the database, a shared rate limiter)
    /// that cannot be reached; `cause` is logged.
    pub fn unavailable(cause: impl Into<String>) -> Self {
        Self {
            cause: Some(cause.into().into_boxed_str()),
            ..Self::new(ErrorCode::ServiceUnavailable).with_retry_after(1)
        }
    }

    /// The error's code.
    pub fn code(&self) -> ErrorCode {
        self.code
    }
}

impl IntoResponse for Refusal {
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
        response.extensions_mut().insert(PendingRefusal {
            code: self.code,
            detail: self.detail.map(String::from),
            errors: self.errors.into_vec(),
            retry_after_secs: self.retry_after_secs,
            cause: self.cause.map(String::from),
            reason: self.reason,
        });
        response
    }
}

/// The refusal for a use case that failed through no fault of the request
/// (its storage is unreachable or broken), the same in every API. The
/// refusals of a request itself are each API's to word.
pub fn server_failure(error: ServiceError) -> Refusal {
    match error {
        ServiceError::Unavailable(cause) => Refusal::unavailable(cause),
        other => Refusal::internal(other.to_string()),
    }
}

/// What a renderer knows about the request besides the refusal.
#[derive(Debug, Clone, Copy)]
pub struct RequestFacts<'a> {
    /// Base URL clients reach the server at.
    pub public_url: &'a str,
    /// The request path, as the client sent it (any length).
    pub path: &'a str,
    /// The request's id, also in the `X-Request-Id` header and the log.
    pub request_id: RequestId,
    /// When the request was refused.
    pub now: Timestamp,
    /// The response's status.
    pub status: StatusCode,
    /// Whether the request carried an `Authorization` header (a 401 may
    /// tell a missing key from a wrong one).
    pub credentials_sent: bool,
}

/// Writes refusals in one wire format: the canonical API's RFC 9457
/// problem documents ([`crate::api::problem::Rfc9457`]) or a compatibility
/// profile's own envelope.
pub trait RefusalRenderer: Send + Sync + 'static {
    /// The status to send the refusal with, if this API's differs from the
    /// code's ([`ErrorCode::status`], in `facts.status`).
    fn status(&self, _refusal: &PendingRefusal, facts: &RequestFacts<'_>) -> StatusCode {
        facts.status
    }

    /// The body of the refused response and its `Content-Type`. The status
    /// (as [`RefusalRenderer::status`] chose it, in `facts.status`) and the
    /// `Retry-After` and `WWW-Authenticate` headers are already set; the
    /// cause has been taken out for the log.
    fn render(&self, refusal: PendingRefusal, facts: &RequestFacts<'_>) -> (HeaderValue, Vec<u8>);
}

/// Which renderer writes the refusals under which path. Each API is
/// mounted at a path prefix, and every refusal under it is written in its
/// format: its routes', its router fallbacks' (404, 405) and the outer
/// layers' (a declared body too large, a timeout, a panic), which run
/// before or after any route is matched. Paths under no mount get the
/// default renderer.
#[derive(Clone)]
pub struct Renderers {
    default: Arc<dyn RefusalRenderer>,
    /// Longest prefix first, so that a nested mount wins over its parent.
    mounts: Vec<(String, Arc<dyn RefusalRenderer>)>,
}

impl Renderers {
    /// `default` everywhere.
    pub fn new(default: impl RefusalRenderer) -> Self {
        Self {
            default: Arc::new(default),
            mounts: Vec::new(),
        }
    }

    /// `renderer` for `prefix` (such as `/api/v1`) and every path below it.
    pub fn mount(mut self, prefix: &str, renderer: impl RefusalRenderer) -> Self {
        let prefix = prefix.trim_end_matches('/').to_owned();
        let at = self
            .mounts
            .iter()
            .position(|(other, _)| other.len() < prefix.len())
            .unwrap_or(self.mounts.len());
        self.mounts.insert(at, (prefix, Arc::new(renderer)));
        self
    }

    /// The renderer of the mount `path` is under (whole segments only:
    /// `/api/v1` holds `/api/v1/tickets`, not `/api/v10`).
    pub fn for_path(&self, path: &str) -> &dyn RefusalRenderer {
        self.mounts
            .iter()
            .find(|(prefix, _)| {
                path.strip_prefix(prefix.as_str())
                    .is_some_and(|rest| rest.is_empty() || rest.starts_with('/'))
            })
            .map_or(&*self.default, |(_, renderer)| &**renderer)
    }
}

impl fmt::Debug for Renderers {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let prefixes: Vec<&str> = self
            .mounts
            .iter()
            .map(|(prefix, _)| prefix.as_str())
            .collect();
        f.debug_struct("Renderers")
            .field("mounts", &prefixes)
            .finish()
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
    fn field_codes_are_sent_as_their_names() {
        for code in FieldCode::ALL {
            let sent = serde_json::to_string(&code).expect("a code serialises");
            assert_eq!(sent, format!("\"{}\"", code.as_str()));
        }
    }

    #[test]
    fn truncation_cuts_on_a_char_boundary_and_marks_the_cut() {
        // Within the limit: untouched, however close.
        let mut fits = "é".repeat(8);
        truncate(&mut fits, 16);
        assert_eq!(fits, "é".repeat(8));

        // "é" is two bytes: 16 bytes less the marker's 3 leave 13, which
        // would split the seventh "é"; six are kept.
        let mut text = "é".repeat(9);
        truncate(&mut text, 16);
        assert_eq!(text, format!("{}…", "é".repeat(6)));
        assert_eq!(text.len(), 15);

        // Four-byte characters, and a limit that falls inside one.
        let mut emoji = "🎉".repeat(10);
        truncate(&mut emoji, 12);
        assert_eq!(emoji, "🎉🎉…");

        // Sizes are as sent: a control character takes six bytes, a quote two.
        let mut control = "\u{1}".repeat(10);
        truncate(&mut control, 20);
        assert_eq!(control, "\u{1}\u{1}…");
        let mut quotes = "\"".repeat(10);
        truncate(&mut quotes, 10);
        assert_eq!(quotes, "\"\"\"…");
        assert_eq!(json_len(&quotes), 9);
        assert_eq!(
            serde_json::to_string(&control).expect("a string").len() - 2,
            json_len(&control)
        );
    }

    #[test]
    fn bounded_text_stops_taking_input_at_its_limit() {
        let huge = "ü".repeat(1_000_000);
        let detail = bounded(40, format_args!("`{huge}` is unknown, {}.", "really"));
        // 40 bytes less the marker: 18 two-byte characters after the tick.
        assert_eq!(detail, format!("`{}…", "ü".repeat(18)));
        assert!(detail.len() <= 40);

        let mut text = BoundedText::new(10);
        text.push_str("/abc");
        assert!(!text.is_full());
        text.push_str("/defghij");
        assert!(text.is_full());
        text.push_str("/more");
        assert_eq!(text.into_string(), "/abc/de…");

        assert_eq!(quoted("mesage").to_string(), "mesage");
        let long = quoted(&huge).to_string();
        assert_eq!(long, format!("{}…", "ü".repeat(62)));
        assert!(long.len() <= MAX_QUOTED_BYTES);
    }

    fn unknown(n: usize) -> FieldError {
        FieldError {
            pointer: format!("/m{n}"),
            detail: format!("`m{n}` is unknown."),
            code: FieldCode::UnknownField,
        }
    }

    #[test]
    fn errors_list_a_hundred_entries_and_count_the_rest() {
        let exactly: FieldErrors = (0..MAX_FIELD_ERRORS)
            .map(unknown)
            .collect::<Vec<_>>()
            .into();
        assert_eq!(exactly.clone().into_vec().len(), MAX_FIELD_ERRORS);
        assert!(exactly.is_full());

        let mut built = 0;
        let mut errors = FieldErrors::new();
        for n in 0..87_000 {
            errors.push_with(|| {
                built += 1;
                unknown(n)
            });
        }
        assert_eq!(built, MAX_FIELD_ERRORS);
        let listed = errors.into_vec();
        assert_eq!(listed.len(), MAX_FIELD_ERRORS);
        assert_eq!(listed[..99], (0..99).map(unknown).collect::<Vec<_>>()[..]);
        assert_eq!(
            listed[99],
            FieldError {
                pointer: String::new(),
                detail: "86901 more errors were found but are not listed \
                         (errors[] holds at most 100 entries and 12288 bytes)."
                    .into(),
                code: FieldCode::TooManyErrors,
            }
        );

        let mut one_more = FieldErrors::from(unknown(0));
        one_more.omit(1);
        assert!(one_more.is_full() && one_more.room() == 0);
        assert_eq!(
            one_more.into_vec()[1].detail,
            "1 more error was found but is not listed \
             (errors[] holds at most 100 entries and 12288 bytes)."
        );
        assert!(FieldErrors::new().into_vec().is_empty());
    }

    #[test]
    fn long_entries_are_cut_short_and_end_the_list_sooner() {
        let long = |n: usize| FieldError {
            pointer: format!("/{n:02}{}", "\u{1}".repeat(10_000)),
            detail: format!("{n:02}{}", "\"".repeat(10_000)),
            code: FieldCode::UnknownField,
        };
        let listed = FieldErrors::from((0..50).map(long).collect::<Vec<_>>()).into_vec();
        let (last, entries) = listed.split_last().expect("entries");
        assert_eq!(last.code, FieldCode::TooManyErrors);
        let sent = serde_json::to_string(entries).expect("entries serialise");
        assert!(sent.len() <= MAX_FIELD_ERRORS_BYTES, "{}", sent.len());
        // Every entry is cut to the same size: as many as fit are listed.
        let mut cut = long(0);
        truncate(&mut cut.pointer, MAX_POINTER_BYTES);
        truncate(&mut cut.detail, MAX_DETAIL_BYTES);
        assert_eq!((json_len(&cut.pointer), json_len(&cut.detail)), (252, 511));
        assert_eq!(entries.len(), MAX_FIELD_ERRORS_BYTES / cut.sent_len());
        for (n, entry) in entries.iter().enumerate() {
            assert!(json_len(&entry.pointer) <= MAX_POINTER_BYTES);
            assert!(json_len(&entry.detail) <= MAX_DETAIL_BYTES);
            assert!(entry.pointer.starts_with(&format!("/{n:02}\u{1}")));
            assert!(entry.pointer.ends_with(TRUNCATION_MARKER));
        }
        assert_eq!(
            last.detail,
            format!(
                "{} more errors were found but are not listed \
                 (errors[] holds at most 100 entries and 12288 bytes).",
                50 - entries.len()
            )
        );
    }

    #[test]
    fn a_detail_is_cut_short() {
        let response = Refusal::new(ErrorCode::MalformedJson)
            .with_detail("x".repeat(100_000))
            .into_response();
        let pending = response.extensions().get::<PendingRefusal>().cloned();
        let pending = pending.expect("a problem");
        assert_eq!(
            pending.detail(),
            format!("{}…", "x".repeat(MAX_DETAIL_BYTES - 3))
        );
    }

    #[test]
    fn internal_errors_never_carry_their_cause_to_the_client() {
        let response = Refusal::internal("disk on fire at /var/lib/secret").into_response();
        assert_eq!(response.status(), StatusCode::INTERNAL_SERVER_ERROR);
        let pending = response.extensions().get::<PendingRefusal>().cloned();
        let pending = pending.expect("an ApiError response carries its problem");
        assert_eq!(pending.code, ErrorCode::InternalError);
        assert!(!pending.detail().contains("disk on fire"));
        assert_eq!(pending.detail(), ErrorCode::InternalError.default_detail());
    }
}
