//! `/api/v2/support/uploads`: files sent before a message attaches them,
//! and the pre-signed URLs that let a client send one without its API key.
//!
//! A file comes as the raw request body (its `Content-Type` is the file's
//! media type, `filename` a query parameter) or as `multipart/form-data`
//! with one part, named `file`. Either way its bytes stream through the
//! upload checks into the blob store as they arrive ([`Uploads::upload`]):
//! never whole in memory, refused as soon as they pass `max_upload_bytes`.
//! A client that stalls (nothing for `body_read_timeout_secs`) or sends
//! slower than [`MIN_UPLOAD_BYTES_PER_SEC`] once that long has passed is
//! cut off, so that an upload's turn ends in bounded time.
//!
//! [`Uploads::upload`]: crate::service::Uploads::upload

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use axum::extract::{Request, State};
use axum::http::{StatusCode, header};
use axum::response::Response;
use bytes::Bytes;
use futures_util::{Stream, StreamExt, stream};
use serde::Serialize;
use utoipa::ToSchema;

use crate::api::AppState;
use crate::api::auth::{Authed, ReadSupport, WriteSupport};
use crate::api::extract::{EmptyBody, PathParams, QueryParams};
use crate::api::fields::field_error;
use crate::api::idempotency::IdempotencyClaim;
use crate::api::problem::{ApiError, ErrorCode, FieldCode, Problem};
use crate::api::respond;
use crate::api::upload_body::{MIN_UPLOAD_BYTES_PER_SEC, declared_length, paced};
use crate::api::v2::service_errors::{canonical, canonical_upload};
use crate::blob::ByteStream;
use crate::core::access::Actor;
use crate::core::id::UploadId;
use crate::core::upload::{Filename, Upload};
use crate::service::{FileRules, IncomingFile, MalformedFile, ServiceError, UploadError};
use crate::store::Cause;
use crate::store::idempotency::{Completion, StoredResponse};

/// Where files are uploaded.
pub const UPLOADS_PATH: &str = "/api/v2/support/uploads";

/// Where the pre-signed upload URLs point, before their token.
pub const SIGNED_UPLOADS_PREFIX: &str = "/api/v2/support/uploads/signed/";

/// Bytes of a multipart body beyond its file that its `Content-Length`
/// may declare: the boundaries and the part's headers.
const MULTIPART_OVERHEAD_BYTES: u64 = 16 * 1024;

/// An uploaded file.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct UploadResponse {
    /// The upload's id: name it in a message's `attachments`.
    #[schema(example = "upl_01hxa3b4c5d6e7f8g9h0j1k2m3")]
    pub id: String,
    /// The file's name.
    #[schema(example = "screenshot.png")]
    pub filename: String,
    /// Its media type, as checked against its first bytes.
    #[schema(example = "image/png")]
    pub content_type: String,
    /// Its size in bytes.
    #[schema(example = 48213)]
    pub size: u64,
    /// The SHA-256 of its bytes, in lowercase hex.
    #[schema(example = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08")]
    pub sha256: String,
    /// Whether its bytes are stored sealed; only encrypted messages may
    /// attach it then.
    #[schema(example = false)]
    pub encrypted: bool,
    /// Whether a message attaches it.
    #[schema(example = false)]
    pub attached: bool,
    /// When it was uploaded.
    #[schema(example = "2026-04-27T12:00:00.000Z")]
    pub created_at: String,
    /// When it is deleted unless a message attaches it first.
    #[schema(example = "2026-04-28T12:00:00.000Z")]
    pub expires_at: String,
}

impl From<&Upload> for UploadResponse {
    fn from(upload: &Upload) -> Self {
        Self {
            id: upload.id.to_string(),
            filename: upload.filename.clone(),
            content_type: upload.content_type.clone(),
            size: upload.size,
            sha256: upload.sha256.clone(),
            encrypted: upload.encrypted(),
            attached: upload.attached,
            created_at: upload.created_at.to_string(),
            expires_at: upload.expires_at.to_string(),
        }
    }
}

/// A pre-signed upload URL.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct UploadUrlResponse {
    /// `POST` one file here, as to `/api/v2/support/uploads` but without
    /// an API key; it works once, until `expiresAt`.
    #[schema(example = "https://support.example.com/api/v2/support/uploads/signed/AQGWx2...")]
    pub upload_url: String,
    /// When the URL stops working.
    #[schema(example = "2026-04-27T12:15:00.000Z")]
    pub expires_at: String,
}

/// Where an upload is described.
pub fn upload_location(id: UploadId) -> String {
    format!("{UPLOADS_PATH}/{id}")
}

/// An upload's response: 201 with the upload and its `Location`.
fn upload_created(upload: &Upload) -> Result<StoredResponse, Cause> {
    respond::stored(
        StatusCode::CREATED,
        Some(upload_location(upload.id)),
        &UploadResponse::from(upload),
    )
}

/// Upload a file.
///
/// Send the file as the raw body, with its media type as `Content-Type`
/// and its name as `filename`, or as `multipart/form-data` with one part
/// named `file` (whose own `Content-Type` and filename are used unless the
/// query gives them). Name the returned `id` in a message's `attachments`
/// within `expiresAt` (a day unless configured); an upload no message
/// attaches is deleted then. Only you can attach your uploads.
#[utoipa::path(
    post,
    path = "/api/v2/support/uploads",
    tag = "Attachments",
    params(
        ("filename" = Option<String>, Query, description = "The file's name, 1 to 255 bytes without control characters. Required for a raw body."),
        ("encrypted" = Option<bool>, Query, description = "Store the file sealed, for an encrypted message. Defaults to false."),
    ),
    request_body(content = Vec<u8>, description = "The file: raw, with its media type as Content-Type, or as multipart/form-data with one part named `file`.", content_type = "application/octet-stream"),
    responses(
        (status = 201, description = "Stored upload.", body = UploadResponse,
            headers(("Location" = String, description = "The upload's URL"))),
        (status = 400, description = "Invalid request (`invalid_request`), or the file did not arrive whole (`upload_incomplete`).", body = Problem, content_type = "application/problem+json"),
        (status = 413, description = "The file is larger than `max_upload_bytes` (`upload_too_large`).", body = Problem, content_type = "application/problem+json"),
        (status = 415, description = "The media type is not allowed (`unsupported_media_type`), or the file's bytes are not of it (`upload_content_mismatch`).", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearerAuth" = ["write:support"]))
)]
pub async fn create_upload(
    State(state): State<AppState>,
    authed: Authed<WriteSupport>,
    claim: IdempotencyClaim,
    query: QueryParams,
    request: Request,
) -> Result<Response, ApiError> {
    let completion = claim.completion(Box::new(upload_created));
    let rules = state.uploads.policy().rules();
    let written = receive(
        &state,
        &authed.principal.actor,
        query,
        request,
        completion,
        &rules,
    )
    .await?;
    respond::written(written, upload_created)
}

/// Reads an upload request's parameters and streams its file into the
/// upload use case, held to `rules` (the server's, or an API's narrower
/// ones).
pub(crate) async fn receive(
    state: &AppState,
    actor: &Actor,
    mut query: QueryParams,
    request: Request,
    completion: Option<Completion<Upload>>,
    rules: &FileRules,
) -> Result<crate::store::Written<Upload>, ApiError> {
    let filename = query.text("filename");
    let encrypted = query.flag("encrypted").unwrap_or(false);
    let content_type = request
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .map(str::to_owned);
    let boundary = content_type
        .as_deref()
        .filter(|value| is_multipart(value))
        .map(multer::parse_boundary);
    let declared = declared_length(request.headers());
    let limit = rules.max_bytes;
    let slack = if boundary.is_some() {
        MULTIPART_OVERHEAD_BYTES
    } else {
        0
    };
    if declared.is_some_and(|length| length > limit.saturating_add(slack)) {
        return Err(canonical_upload(
            UploadError::Refused(crate::blob::inspect::UploadRefusal::TooLarge { limit }),
            &rules.media,
        ));
    }
    let body = paced(
        request.into_body(),
        state.settings.body_read_timeout,
        MIN_UPLOAD_BYTES_PER_SEC,
    );
    let (file, bytes) = match boundary {
        Some(Ok(boundary)) => {
            let (part, bytes) = first_part(body, boundary).await?;
            let name = filename.or(part.filename);
            (described(&mut query, name, part.content_type), bytes)
        }
        Some(Err(_)) => {
            query.reject(field_error(
                "Content-Type",
                FieldCode::InvalidValue,
                "A multipart/form-data body needs a boundary parameter in its Content-Type.",
            ));
            query.finish()?;
            return Err(ApiError::new(ErrorCode::InvalidRequest));
        }
        None => (described(&mut query, filename, content_type), body),
    };
    query.finish()?;
    let file = IncomingFile {
        encrypted,
        ..file.ok_or_else(|| ApiError::new(ErrorCode::InvalidRequest))?
    };
    state
        .uploads
        .upload_within(actor, file, bytes, completion, rules)
        .await
        .map_err(|error| canonical_upload(error, &rules.media))
}

/// The file as a request names it: its filename (required) and media type
/// (`application/octet-stream` when none is given, which no allow-list
/// holds); `None` when the name is missing or refused, with the error
/// recorded in `query`.
fn described(
    query: &mut QueryParams,
    filename: Option<String>,
    content_type: Option<String>,
) -> Option<IncomingFile> {
    let filename = match filename.as_deref().map(Filename::parse) {
        Some(Ok(name)) => name,
        Some(Err(error)) => {
            query.reject(field_error(
                "filename",
                FieldCode::InvalidValue,
                format!("`filename` {error}."),
            ));
            return None;
        }
        None => {
            query.reject(field_error(
                "filename",
                FieldCode::MissingRequired,
                "`filename` is required: give the file's name as a query parameter.",
            ));
            return None;
        }
    };
    Some(IncomingFile {
        filename,
        content_type: content_type.unwrap_or_else(|| "application/octet-stream".into()),
        encrypted: false,
    })
}

fn is_multipart(content_type: &str) -> bool {
    content_type
        .split(';')
        .next()
        .is_some_and(|essence| essence.trim().eq_ignore_ascii_case("multipart/form-data"))
}

/// The `file` part of a multipart body as its headers describe it.
struct Part {
    filename: Option<String>,
    content_type: Option<String>,
}

/// The one part of a multipart body, `file`, and its bytes as a stream
/// that fails should anything follow the part (nothing is kept of an
/// upload whose stream fails).
///
/// # Errors
/// `invalid_request` when the body holds no part, or its first part is
/// not `file` (and, through the stream, when a second part follows);
/// `upload_incomplete` when it cannot be read.
async fn first_part(body: ByteStream, boundary: String) -> Result<(Part, ByteStream), ApiError> {
    let head_read = Arc::new(AtomicBool::new(false));
    let body = Metered {
        inner: body,
        handed: 0,
        head_read: Arc::clone(&head_read),
        yield_next: false,
    };
    let mut multipart = multer::Multipart::new(body, boundary);
    let first = multipart.next_field().await;
    head_read.store(true, Ordering::Relaxed);
    let field = match first {
        Ok(Some(field)) => field,
        Ok(None) => return Err(multipart_refusal("The multipart body holds no part.")),
        Err(error) => {
            if let Some(MalformedFile(reason)) = malformed_cause(&error) {
                return Err(multipart_refusal(reason));
            }
            return Err(ApiError::new(ErrorCode::UploadIncomplete)
                .with_detail(format!("The multipart body could not be read: {error}.")));
        }
    };
    if field.name() != Some("file") {
        return Err(multipart_refusal(
            "The multipart body must hold one part, named `file`.",
        ));
    }
    let part = Part {
        filename: field.file_name().map(str::to_owned),
        content_type: field.content_type().map(ToString::to_string),
    };
    let bytes = stream::unfold(
        (Some(field), Some(multipart)),
        |(field, multipart)| async move {
            if let Some(mut field) = field {
                match field.next().await {
                    Some(Ok(chunk)) => return Some((Ok(chunk), (Some(field), multipart))),
                    Some(Err(error)) => return Some((Err(io::Error::other(error)), (None, None))),
                    None => {}
                }
            }
            let mut multipart = multipart?;
            match multipart.next_field().await {
                Ok(None) => None,
                Ok(Some(_)) => Some((
                    Err(io::Error::other(MalformedFile(
                        "The multipart body must hold one part, named `file`; it holds more."
                            .into(),
                    ))),
                    (None, None),
                )),
                Err(error) => Some((Err(io::Error::other(error)), (None, None))),
            }
        },
    );
    Ok((part, Box::pin(bytes)))
}

/// A multipart body as the parser reads it: one chunk per poll (the
/// parser reads on while chunks are ready, so it would otherwise buffer
/// as much as the client manages to send ahead of the blob store), and at
/// most [`MULTIPART_OVERHEAD_BYTES`] before the first part's headers are
/// read (a preamble or a header without end is refused, not held).
struct Metered {
    inner: ByteStream,
    handed: u64,
    head_read: Arc<AtomicBool>,
    yield_next: bool,
}

impl Stream for Metered {
    type Item = io::Result<Bytes>;

    fn poll_next(
        mut self: Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Self::Item>> {
        use std::task::Poll;
        if self.yield_next {
            self.yield_next = false;
            cx.waker().wake_by_ref();
            return Poll::Pending;
        }
        let polled = self.inner.as_mut().poll_next(cx);
        if let Poll::Ready(Some(Ok(chunk))) = &polled {
            self.yield_next = true;
            self.handed = self.handed.saturating_add(chunk.len() as u64);
            if !self.head_read.load(Ordering::Relaxed) && self.handed > MULTIPART_OVERHEAD_BYTES {
                return Poll::Ready(Some(Err(io::Error::other(MalformedFile(format!(
                    "The multipart body's first part must begin within \
                     {MULTIPART_OVERHEAD_BYTES} bytes and its headers end there."
                ))))));
            }
        }
        polled
    }
}

/// The [`MalformedFile`] a parser's error was caused by, if any.
fn malformed_cause<'e>(error: &'e (dyn std::error::Error + 'static)) -> Option<&'e MalformedFile> {
    let mut cause = Some(error);
    while let Some(error) = cause {
        if let Some(malformed) = error.downcast_ref::<MalformedFile>() {
            return Some(malformed);
        }
        // An I/O error's source is its inner error's source: look inside.
        if let Some(inner) = error
            .downcast_ref::<io::Error>()
            .and_then(io::Error::get_ref)
            && let Some(malformed) = inner.downcast_ref::<MalformedFile>()
        {
            return Some(malformed);
        }
        cause = error.source();
    }
    None
}

fn multipart_refusal(detail: &str) -> ApiError {
    ApiError::invalid(vec![field_error("file", FieldCode::InvalidValue, detail)])
        .with_detail(detail.to_owned())
}

/// Describe one of your uploads.
#[utoipa::path(
    get,
    path = "/api/v2/support/uploads/{uploadId}",
    tag = "Attachments",
    params(("uploadId" = String, Path, description = "The upload's id (`upl_...`).", example = "upl_01hxa3b4c5d6e7f8g9h0j1k2m3")),
    responses(
        (status = 200, description = "The upload.", body = UploadResponse),
        (status = 404, description = "Not found, or not yours.", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearerAuth" = ["read:support"]))
)]
pub async fn get_upload(
    State(state): State<AppState>,
    authed: Authed<ReadSupport>,
    params: PathParams,
    query: QueryParams,
) -> Result<Response, ApiError> {
    query.finish()?;
    let id = UploadId::parse(params.get("uploadId"))
        .ok_or_else(|| ApiError::new(ErrorCode::NotFound))?;
    let upload = state
        .store
        .find_upload(&authed.principal.actor, id)
        .await
        .map_err(|error| canonical(ServiceError::from(error)))?;
    respond::json(StatusCode::OK, &UploadResponse::from(&upload))
}

/// Get a pre-signed upload URL.
///
/// Returns a URL that takes one file, exactly as
/// `POST /api/v2/support/uploads` does, but without an API key: for a
/// browser or device that should not hold the key. It works once, within
/// 15 minutes, and the upload belongs to the user of the key that asked.
#[utoipa::path(
    post,
    path = "/api/v2/support/uploads/url",
    tag = "Attachments",
    responses(
        (status = 200, description = "The URL and when it expires.", body = UploadUrlResponse),
    ),
    security(("bearerAuth" = ["write:support"]))
)]
pub async fn create_upload_url(
    State(state): State<AppState>,
    authed: Authed<WriteSupport>,
    _body: EmptyBody,
) -> Result<Response, ApiError> {
    let (token, expires_at) = state.uploads.sign_url(&authed.principal);
    let response = UploadUrlResponse {
        upload_url: format!(
            "{}{SIGNED_UPLOADS_PREFIX}{token}",
            state.settings.public_url
        ),
        expires_at: expires_at.to_string(),
    };
    respond::json(StatusCode::OK, &response)
}

/// Upload a file to a pre-signed URL.
///
/// Takes the file as `POST /api/v2/support/uploads` does, with no API key:
/// the URL stands for the key that asked for it. It works once.
#[utoipa::path(
    post,
    path = "/api/v2/support/uploads/signed/{token}",
    tag = "Attachments",
    params(
        ("token" = String, Path, description = "The token `uploadUrl` ends with."),
        ("filename" = Option<String>, Query, description = "The file's name. Required for a raw body."),
        ("encrypted" = Option<bool>, Query, description = "Store the file sealed, for an encrypted message."),
    ),
    request_body(content = Vec<u8>, description = "The file, as for `POST /api/v2/support/uploads`.", content_type = "application/octet-stream"),
    responses(
        (status = 201, description = "Stored upload.", body = UploadResponse,
            headers(("Location" = String, description = "The upload's URL"))),
        (status = 403, description = "The URL is not one this server issued (`upload_url_invalid`), or expired (`upload_url_expired`).", body = Problem, content_type = "application/problem+json"),
        (status = 408, description = "The file stopped arriving, or arrived too slowly (`request_body_timeout`).", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "The URL was used already (`upload_url_used`).", body = Problem, content_type = "application/problem+json"),
        (status = 413, description = "The file is larger than `max_upload_bytes` (`upload_too_large`).", body = Problem, content_type = "application/problem+json"),
        (status = 415, description = "The media type is not allowed, or the file's bytes are not of it.", body = Problem, content_type = "application/problem+json"),
        (status = 429, description = "The key the URL stands for is over its rate limit, or has too many requests in progress.", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn upload_to_url(
    State(state): State<AppState>,
    authed: Authed<WriteSupport>,
    params: PathParams,
    query: QueryParams,
    request: Request,
) -> Result<Response, ApiError> {
    state
        .uploads
        .redeem_url(params.get("token"))
        .await
        .map_err(|error| canonical_upload(error, &state.uploads.policy().media))?;
    let rules = state.uploads.policy().rules();
    let written = receive(
        &state,
        &authed.principal.actor,
        query,
        request,
        None,
        &rules,
    )
    .await?;
    respond::written(written, upload_created)
}
