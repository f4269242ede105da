//! `GET /api/v2/support/tickets/{id}/messages/{messageId}/attachments/{attachmentId}`:
//! a message's file, streamed to whoever may read the message, whole or
//! one range of it, with the headers of [`download::head`].

use axum::body::Body;
use axum::extract::State;
use axum::http::{Method, StatusCode};
use axum::response::Response;

use crate::api::AppState;
use crate::api::auth::{Authed, ReadSupport};
use crate::api::download::{self, Conditions, FileFacts};
use crate::api::extract::{PathParams, QueryParams, TicketPath};
use crate::api::problem::{ApiError, ErrorCode, Problem};
use crate::api::v2::service_errors::{canonical, canonical_upload};
use crate::core::id::{MessageId, UploadId};

/// Download a file a message carries.
///
/// Streams the file with `Content-Disposition: attachment` (its name in
/// `filename*`, UTF-8), its sha256 as a strong `ETag`,
/// `X-Content-Type-Options: nosniff` and `Content-Security-Policy:
/// sandbox`, so a browser saves it and never runs it. One `Range`
/// (`bytes=first-last`, `first-` or `-suffix`) is answered 206; several
/// are answered with the whole file; a range past the end is 416. An
/// `If-None-Match` naming the `ETag` is answered 304, and a `Range` with an
/// `If-Range` that does not name it gets the whole file. `HEAD` answers
/// the headers alone.
#[utoipa::path(
    get,
    path = "/api/v2/support/tickets/{id}/messages/{messageId}/attachments/{attachmentId}",
    tag = "Attachments",
    params(
        ("id" = String, Path, description = "Public support ticket ID (`tkt_...`), or the ticket's number in your workspace."),
        ("messageId" = String, Path, description = "The message's id (`tmsg_...`)."),
        ("attachmentId" = String, Path, description = "The file's id (`upl_...`), from the message's `attachments`."),
        ("Range" = Option<String>, Header, description = "One byte range, as `bytes=0-1023`."),
        ("If-Range" = Option<String>, Header, description = "The `ETag` of the copy the range continues; another answers the whole file."),
        ("If-None-Match" = Option<String>, Header, description = "`ETag`s of copies the client holds: a match is answered 304."),
    ),
    responses(
        (status = 200, description = "The file.", content_type = "application/octet-stream", body = Vec<u8>),
        (status = 206, description = "The range asked for.", content_type = "application/octet-stream", body = Vec<u8>),
        (status = 304, description = "The copy `If-None-Match` names is this file."),
        (status = 404, description = "Not found, or not visible to the caller.", body = Problem, content_type = "application/problem+json"),
        (status = 416, description = "The range starts past the end of the file; `Content-Range` gives its length."),
    ),
    security(("bearerAuth" = ["read:support"]))
)]
pub async fn download_attachment(
    State(state): State<AppState>,
    authed: Authed<ReadSupport>,
    TicketPath(ticket): TicketPath,
    params: PathParams,
    query: QueryParams,
    method: Method,
    headers: axum::http::HeaderMap,
) -> Result<Response, ApiError> {
    query.finish()?;
    let not_found = || ApiError::new(ErrorCode::NotFound);
    let message = MessageId::parse(params.get("messageId")).ok_or_else(not_found)?;
    let file = UploadId::parse(params.get("attachmentId")).ok_or_else(not_found)?;
    // Whoever may read the message may read its files.
    let found = state
        .support
        .find_message(&authed.principal.actor, ticket, message)
        .await
        .map_err(canonical)?;
    if !found
        .attachments
        .iter()
        .any(|attachment| attachment.id == file)
    {
        return Err(not_found());
    }
    let media = &state.uploads.policy().media;
    let upload = state
        .uploads
        .attached(message, file)
        .await
        .map_err(|error| canonical_upload(error, media))?;
    let head = download::head(
        FileFacts {
            filename: &upload.filename,
            content_type: &upload.content_type,
            size: upload.size,
            sha256: &upload.sha256,
        },
        Conditions::of(&headers),
    );
    let body = match (&head.bytes, method == Method::HEAD) {
        (Some(bytes), false) => {
            let whole = head.status == StatusCode::OK;
            let part = (!whole).then(|| bytes.clone());
            let stream = state
                .uploads
                .read(&upload, part)
                .await
                .map_err(|error| canonical_upload(error, media))?;
            Body::from_stream(stream)
        }
        _ => Body::empty(),
    };
    let mut response = Response::new(body);
    *response.status_mut() = head.status;
    *response.headers_mut() = head.headers;
    Ok(response)
}
