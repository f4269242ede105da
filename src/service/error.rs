//! Why a use case was refused, in no API's vocabulary: each API words it
//! in its own format.

use crate::core::access::OnBehalfOfError;
use crate::core::lifecycle::{LifecycleError, TicketAction};
use crate::core::upload::attach::AttachRefusal;
use crate::store::StoreError;

/// Why a use case did not succeed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ServiceError {
    /// No such ticket or message, or the actor may not see it.
    #[error("not found")]
    NotFound,
    /// The ticket is another user's, in the actor's workspace, and the
    /// actor is scoped to its own tickets (a write an owner-scoped API
    /// refuses as forbidden rather than not found).
    #[error("the ticket is another user's")]
    NotOwner,
    /// The ticket is closed; it must be reopened first.
    #[error("the ticket is closed")]
    TicketClosed,
    /// The actor may not open a ticket for the customer it named (or did
    /// not name).
    #[error(transparent)]
    OnBehalfOf(#[from] OnBehalfOfError),
    /// The named customer is not a customer of the actor's workspace.
    #[error("no such customer in this workspace")]
    CustomerNotFound,
    /// The uploads a message named cannot be attached to it.
    #[error(transparent)]
    Attachments(AttachRefusal),
    /// The actor's role may not take this action.
    #[error("the action {0:?} is not permitted for this role")]
    ActionNotPermitted(TicketAction),
    /// The idempotency claim the write ran under was taken over by a retry;
    /// nothing was written.
    #[error("the idempotency claim is no longer held")]
    ClaimLost,
    /// The database cannot be reached or is shutting down; worth retrying.
    #[error("storage unavailable: {0}")]
    Unavailable(String),
    /// A bug or a damaged database; the text is for the log only.
    #[error("{0}")]
    Internal(String),
}

impl From<StoreError> for ServiceError {
    fn from(error: StoreError) -> Self {
        match error {
            StoreError::NotFound => ServiceError::NotFound,
            StoreError::Lifecycle(LifecycleError::TicketClosed) => ServiceError::TicketClosed,
            StoreError::CustomerNotFound => ServiceError::CustomerNotFound,
            StoreError::Attachments(refusal) => ServiceError::Attachments(refusal),
            StoreError::ClaimLost => ServiceError::ClaimLost,
            StoreError::Unavailable(cause) => ServiceError::Unavailable(cause.to_string()),
            StoreError::Conflict(constraint) => {
                ServiceError::Internal(format!("unexpected conflict on {constraint}"))
            }
            StoreError::Other(cause) => ServiceError::Internal(cause.to_string()),
        }
    }
}
