//! Which uploads a new message may attach: the rule both backends apply,
//! inside the transaction that writes the message, to the uploads they read
//! for it (a pure function of that snapshot, as the write plans are).

use crate::core::access::Actor;
use crate::core::id::{UploadId, UserId};
use crate::core::time::Timestamp;

/// An upload as the attaching transaction reads it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UploadState {
    /// The upload.
    pub id: UploadId,
    /// The user whose key sent it: only they may attach it.
    pub owner: UserId,
    /// Its size in bytes.
    pub size: u64,
    /// Whether its bytes are stored sealed.
    pub encrypted: bool,
    /// Whether its bytes are stored: one still arriving, or being deleted,
    /// cannot be attached.
    pub stored: bool,
    /// When it is swept unless attached.
    pub expires_at: Timestamp,
    /// Whether a message attaches it already.
    pub attached: bool,
}

/// How many files a message may carry, and how many bytes a ticket's files
/// may hold together.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AttachLimits {
    /// Files per message.
    pub per_message: usize,
    /// Bytes of all the files of one ticket.
    pub per_ticket_bytes: u64,
}

impl AttachLimits {
    /// These limits, lowered to at most `per_message` files a message (for
    /// an API that publishes a stricter one).
    #[must_use]
    pub fn narrowed(self, per_message: usize) -> Self {
        Self {
            per_message: self.per_message.min(per_message),
            ..self
        }
    }
}

impl Default for AttachLimits {
    fn default() -> Self {
        Self {
            per_message: 10,
            per_ticket_bytes: 1024 * 1024 * 1024,
        }
    }
}

/// Why one of the named uploads cannot be attached.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum UploadProblem {
    /// No such upload, or another user's (the two are not told apart).
    #[error("no such upload")]
    Unknown,
    /// It was not attached in time and is being swept.
    #[error("the upload has expired")]
    Expired,
    /// A message attaches it already (or an earlier entry of this list).
    #[error("the upload is attached already")]
    AlreadyAttached,
    /// Sealed for a plain message, or plain for an encrypted one.
    #[error("the upload's encryption does not match the message's")]
    EncryptionMismatch {
        /// Whether the message is marked encrypted.
        message_encrypted: bool,
    },
}

/// Why a message's attachments were refused; nothing is written.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AttachRefusal {
    /// More files than a message may carry.
    #[error("a message may carry at most {limit} files")]
    TooMany {
        /// The limit.
        limit: usize,
    },
    /// Some of the named uploads cannot be attached: each by its position
    /// in the list.
    #[error("some uploads cannot be attached")]
    Uploads(Vec<(usize, UploadProblem)>),
    /// The ticket's files would hold more than the limit.
    #[error("the ticket's files may hold at most {limit} bytes")]
    TicketFull {
        /// The limit, in bytes.
        limit: u64,
    },
}

/// Checks that a message names no more files than it may carry: the part
/// of [`check_attachments`] that needs no uploads read.
///
/// # Errors
/// `TooMany`.
pub fn check_count(named: &[UploadId], limits: AttachLimits) -> Result<(), AttachRefusal> {
    if named.len() > limits.per_message {
        return Err(AttachRefusal::TooMany {
            limit: limits.per_message,
        });
    }
    Ok(())
}

/// Checks that `actor` may attach `named` (in the order given) to a message
/// (`encrypted` or not) of a ticket whose files hold `ticket_bytes` already,
/// given the uploads the transaction found among them at `now`.
///
/// # Errors
/// The refusal, with every problem found.
pub fn check_attachments(
    actor: &Actor,
    named: &[UploadId],
    found: &[UploadState],
    encrypted: bool,
    ticket_bytes: u64,
    now: Timestamp,
    limits: AttachLimits,
) -> Result<(), AttachRefusal> {
    check_count(named, limits)?;
    let mut problems = Vec::new();
    let mut added = 0u64;
    for (index, id) in named.iter().enumerate() {
        let upload = found
            .iter()
            .find(|upload| upload.id == *id && upload.owner == actor.user_id);
        let problem = match upload {
            None => Some(UploadProblem::Unknown),
            Some(upload) if !upload.stored => Some(UploadProblem::Unknown),
            Some(_) if named[..index].contains(id) => Some(UploadProblem::AlreadyAttached),
            Some(upload) if upload.attached => Some(UploadProblem::AlreadyAttached),
            Some(upload) if upload.expires_at <= now => Some(UploadProblem::Expired),
            Some(upload) if upload.encrypted != encrypted => {
                Some(UploadProblem::EncryptionMismatch {
                    message_encrypted: encrypted,
                })
            }
            Some(upload) => {
                added = added.saturating_add(upload.size);
                None
            }
        };
        if let Some(problem) = problem {
            problems.push((index, problem));
        }
    }
    if !problems.is_empty() {
        return Err(AttachRefusal::Uploads(problems));
    }
    if ticket_bytes.saturating_add(added) > limits.per_ticket_bytes {
        return Err(AttachRefusal::TicketFull {
            limit: limits.per_ticket_bytes,
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::access::Role;
    use crate::core::access::TicketScope;
    use crate::core::id::WorkspaceId;

    fn actor() -> Actor {
        Actor {
            workspace_id: WorkspaceId::generate(),
            user_id: UserId::generate(),
            role: Role::Customer,
            name: "Ada".into(),
            scope: TicketScope::ByRole,
        }
    }

    fn upload(owner: UserId, size: u64) -> UploadState {
        UploadState {
            id: UploadId::generate(),
            owner,
            size,
            encrypted: false,
            stored: true,
            expires_at: Timestamp::from_millis(2_000),
            attached: false,
        }
    }

    const NOW: Timestamp = Timestamp::from_millis(1_000);

    fn check(
        actor: &Actor,
        named: &[UploadId],
        found: &[UploadState],
    ) -> Result<(), AttachRefusal> {
        check_attachments(actor, named, found, false, 0, NOW, AttachLimits::default())
    }

    #[test]
    fn the_owner_attaches_live_unattached_uploads() {
        let ada = actor();
        let files = [upload(ada.user_id, 10), upload(ada.user_id, 20)];
        let named: Vec<UploadId> = files.iter().map(|f| f.id).collect();
        assert_eq!(check(&ada, &named, &files), Ok(()));
        assert_eq!(check(&ada, &[], &[]), Ok(()));
    }

    #[test]
    fn every_problem_is_named_by_its_position() {
        let ada = actor();
        let theirs = upload(UserId::generate(), 1);
        let attached = UploadState {
            attached: true,
            ..upload(ada.user_id, 1)
        };
        let expired = UploadState {
            expires_at: NOW,
            ..upload(ada.user_id, 1)
        };
        let sealed = UploadState {
            encrypted: true,
            ..upload(ada.user_id, 1)
        };
        let fine = upload(ada.user_id, 1);
        let unstored = UploadState {
            stored: false,
            ..upload(ada.user_id, 1)
        };
        let named = [
            fine.id,
            UploadId::generate(),
            theirs.id,
            attached.id,
            expired.id,
            sealed.id,
            fine.id,
            unstored.id,
        ];
        let found = [theirs, attached, expired, sealed, fine, unstored];
        assert_eq!(
            check(&ada, &named, &found),
            Err(AttachRefusal::Uploads(vec![
                (1, UploadProblem::Unknown),
                (2, UploadProblem::Unknown),
                (3, UploadProblem::AlreadyAttached),
                (4, UploadProblem::Expired),
                (
                    5,
                    UploadProblem::EncryptionMismatch {
                        message_encrypted: false
                    }
                ),
                (6, UploadProblem::AlreadyAttached),
                (7, UploadProblem::Unknown),
            ]))
        );
    }

    #[test]
    fn the_limits_hold() {
        let ada = actor();
        let files: Vec<UploadState> = (0..11).map(|_| upload(ada.user_id, 1)).collect();
        let named: Vec<UploadId> = files.iter().map(|f| f.id).collect();
        assert_eq!(
            check(&ada, &named, &files),
            Err(AttachRefusal::TooMany { limit: 10 })
        );
        let limits = AttachLimits {
            per_message: 10,
            per_ticket_bytes: 100,
        };
        let big = [upload(ada.user_id, 60)];
        assert_eq!(
            check_attachments(&ada, &[big[0].id], &big, false, 40, NOW, limits),
            Ok(())
        );
        assert_eq!(
            check_attachments(&ada, &[big[0].id], &big, false, 41, NOW, limits),
            Err(AttachRefusal::TicketFull { limit: 100 })
        );
    }
}
