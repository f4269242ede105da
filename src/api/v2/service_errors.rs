//! How the canonical API words the service's refusals. Each API has its own
//! such function, so that none gets another's wording (field pointers,
//! routes) by a conversion it did not choose.

use crate::api::fields::field_error;
use crate::api::problem::{ApiError, ErrorCode, FieldCode, FieldError};
use crate::api::refusal::server_failure;
use crate::blob::inspect::UploadRefusal;
use crate::core::access::OnBehalfOfError;
use crate::core::upload::attach::{AttachRefusal, UploadProblem};
use crate::core::upload::media::{MediaCheck, MediaError};
use crate::core::upload::signed_url::SignedUrlError;
use crate::service::{ServiceError, UploadError};

/// The canonical API's refusal for `error`.
pub fn canonical(error: ServiceError) -> ApiError {
    match error {
        ServiceError::NotFound | ServiceError::NotOwner => ApiError::new(ErrorCode::NotFound),
        // The canonical renderer words it, naming its reopen route.
        ServiceError::TicketClosed => ApiError::new(ErrorCode::TicketClosed),
        ServiceError::OnBehalfOf(OnBehalfOfError::CustomerMayNotName) => ApiError::new(
            ErrorCode::Forbidden,
        )
        .with_detail("Only staff and automation users can open a ticket on a customer's behalf."),
        ServiceError::OnBehalfOf(OnBehalfOfError::CustomerRequired) => {
            ApiError::invalid(vec![field_error(
                "customerId",
                FieldCode::MissingRequired,
                "`customerId` is required when staff or automation open a ticket.",
            )])
        }
        ServiceError::CustomerNotFound => ApiError::invalid(vec![FieldError {
            pointer: "/customerId".into(),
            detail: "`customerId` must be the id of a customer in your workspace.".into(),
            code: FieldCode::InvalidValue,
        }]),
        ServiceError::Attachments(refusal) => attachments_refused(&refusal),
        ServiceError::ActionNotPermitted(_) => ApiError::new(ErrorCode::Forbidden)
            .with_detail("Only staff and automation users can take this action."),
        ServiceError::ClaimLost => {
            ApiError::new(ErrorCode::IdempotencyRequestInProgress).with_retry_after(1)
        }
        error @ (ServiceError::Unavailable(_) | ServiceError::Internal(_)) => server_failure(error),
    }
}

/// Why the named uploads cannot be attached: a problem of its own for a
/// limit, `invalid_request` for uploads that cannot be, entry by entry of
/// `attachments`.
fn attachments_refused(refusal: &AttachRefusal) -> ApiError {
    let whole = |code: ErrorCode, detail: String| {
        ApiError::new(code)
            .with_detail(detail.clone())
            .with_errors(vec![FieldError {
                pointer: "/attachments".into(),
                detail,
                code: FieldCode::InvalidValue,
            }])
    };
    match refusal {
        AttachRefusal::TooMany { limit } => whole(
            ErrorCode::TooManyAttachments,
            format!("A message may carry at most {limit} files (max_attachments_per_message)."),
        ),
        AttachRefusal::TicketFull { limit } => whole(
            ErrorCode::TicketStorageExhausted,
            format!(
                "The files of one ticket may hold at most {limit} bytes together \
                 (max_ticket_attachment_bytes)."
            ),
        ),
        AttachRefusal::Uploads(problems) => ApiError::invalid(
            problems
                .iter()
                .map(|(index, problem)| FieldError {
                    pointer: format!("/attachments/{index}"),
                    detail: upload_problem(*problem).into(),
                    code: FieldCode::InvalidValue,
                })
                .collect::<Vec<_>>(),
        ),
    }
}

/// The canonical API's refusal of an upload, under the media types
/// `media` allows.
pub fn canonical_upload(error: UploadError, media: &MediaCheck) -> ApiError {
    match error {
        UploadError::Refused(UploadRefusal::TooLarge { limit }) => {
            ApiError::new(ErrorCode::UploadTooLarge).with_detail(format!(
                "The file is larger than {limit} bytes, the largest upload this server accepts \
                 (max_upload_bytes)."
            ))
        }
        UploadError::Refused(UploadRefusal::Media(MediaError::NotAllowed)) => {
            let allowed: Vec<&str> = media.allowed().iter().map(|known| known.as_str()).collect();
            ApiError::new(ErrorCode::UnsupportedMediaType).with_detail(format!(
                "Uploads may be of these media types only: {} (upload_media_types).",
                allowed.join(", ")
            ))
        }
        UploadError::Refused(UploadRefusal::Media(MediaError::ContentMismatch(declared))) => {
            ApiError::new(ErrorCode::UploadContentMismatch).with_detail(format!(
                "The file's content is not {}, the media type it was sent as.",
                declared.as_str()
            ))
        }
        UploadError::Incomplete => ApiError::new(ErrorCode::UploadIncomplete),
        UploadError::Malformed(reason) => {
            ApiError::invalid(vec![field_error("file", FieldCode::InvalidValue, &reason)])
                .with_detail(reason)
        }
        UploadError::TooSlow => ApiError::new(ErrorCode::RequestBodyTimeout).with_detail(format!(
            "The file stopped arriving, or arrived slower than {} KiB/s; send it again.",
            crate::api::upload_body::MIN_UPLOAD_BYTES_PER_SEC / 1024
        )),
        UploadError::Url(SignedUrlError::Expired) => ApiError::new(ErrorCode::UploadUrlExpired),
        UploadError::Url(SignedUrlError::Malformed | SignedUrlError::Forged) => {
            ApiError::new(ErrorCode::UploadUrlInvalid)
        }
        UploadError::UrlUsed => ApiError::new(ErrorCode::UploadUrlUsed),
        UploadError::Service(error) => canonical(error),
    }
}

fn upload_problem(problem: UploadProblem) -> &'static str {
    match problem {
        UploadProblem::Unknown => "No such upload of yours.",
        UploadProblem::Expired => "This upload has expired; upload the file again.",
        UploadProblem::AlreadyAttached => "This upload is attached to a message already.",
        UploadProblem::EncryptionMismatch {
            message_encrypted: true,
        } => "An encrypted message takes only uploads sent with encrypted=true.",
        UploadProblem::EncryptionMismatch {
            message_encrypted: false,
        } => "A message that is not encrypted takes only uploads sent without encrypted=true.",
    }
}
