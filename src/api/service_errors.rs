//! How the canonical API words the service's refusals. Each API has its own
//! such function, so that none gets another's wording (field pointers,
//! routes) by a conversion it did not choose.

use crate::api::fields::field_error;
use crate::api::problem::{ApiError, ErrorCode, FieldCode, FieldError};
use crate::api::refusal::server_failure;
use crate::core::access::OnBehalfOfError;
use crate::core::upload::attach::{AttachRefusal, UploadProblem};
use crate::service::ServiceError;

/// The canonical API's refusal for `error`.
pub fn canonical(error: ServiceError) -> ApiError {
    match error {
        ServiceError::NotFound => ApiError::new(ErrorCode::NotFound),
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

/// Why the named uploads cannot be attached, entry by entry of
/// `attachments`.
fn attachments_refused(refusal: &AttachRefusal) -> ApiError {
    let whole = |detail: String| FieldError {
        pointer: "/attachments".into(),
        detail,
        code: FieldCode::InvalidValue,
    };
    let errors = match refusal {
        AttachRefusal::TooMany { limit } => {
            vec![whole(format!("A message may carry at most {limit} files."))]
        }
        AttachRefusal::TicketFull { limit } => vec![whole(format!(
            "The files of one ticket may hold at most {limit} bytes together."
        ))],
        AttachRefusal::Uploads(problems) => problems
            .iter()
            .map(|(index, problem)| FieldError {
                pointer: format!("/attachments/{index}"),
                detail: upload_problem(*problem).into(),
                code: FieldCode::InvalidValue,
            })
            .collect(),
    };
    ApiError::invalid(errors)
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
