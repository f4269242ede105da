//! Uploads: files a user sends before attaching them to a message. What
//! the file may be ([`media`]), which uploads a message may attach
//! ([`attach`]), how a download names it ([`disposition`]), and the
//! pre-signed URLs that let a client send one without its API key
//! ([`signed_url`]). No I/O here: the bytes live in a
//! blob store, the records in the [`crate::store`].

pub mod attach;
pub mod disposition;
pub mod media;
pub mod signed_url;

use crate::core::id::{UploadId, UserId, WorkspaceId};
use crate::core::time::Timestamp;
use crate::core::upload::media::KnownType;

/// A file's name as its sender gave it: at most [`Filename::MAX_BYTES`]
/// bytes of UTF-8, not empty, without control characters. It is only ever
/// shown (a download names the file with it); the bytes are stored under
/// the upload's id, so no name reaches a file system path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Filename(String);

/// Why a filename was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum FilenameError {
    /// Empty, or only whitespace.
    #[error("must not be empty")]
    Empty,
    /// Longer than the limit.
    #[error("must be at most {max} bytes long", max = Filename::MAX_BYTES)]
    TooLong,
    /// Holds a control character (a line break, a NUL, ...).
    #[error("must not contain control characters")]
    ControlCharacter,
}

impl Filename {
    /// The longest name kept, in bytes (what file systems commonly allow).
    pub const MAX_BYTES: usize = 255;

    /// Checks a name.
    ///
    /// # Errors
    /// Why it was refused.
    pub fn parse(name: &str) -> Result<Self, FilenameError> {
        if name.trim().is_empty() {
            return Err(FilenameError::Empty);
        }
        if name.len() > Self::MAX_BYTES {
            return Err(FilenameError::TooLong);
        }
        if name.chars().any(char::is_control) {
            return Err(FilenameError::ControlCharacter);
        }
        Ok(Self(name.to_owned()))
    }

    /// The name.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A file as a message carries it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attachment {
    /// The upload's id.
    pub id: UploadId,
    /// The file's name.
    pub filename: String,
    /// Its media type.
    pub content_type: String,
    /// Its size in bytes.
    pub size: u64,
}

/// An upload to record, before its bytes are stored.
#[derive(Debug, Clone)]
pub struct NewUpload {
    /// The id to give it (the blob store keeps its bytes under it).
    pub id: UploadId,
    /// The file's name.
    pub filename: Filename,
    /// Its media type, as declared and checked.
    pub content_type: KnownType,
    /// For an upload stored sealed, its content key, sealed under a data
    /// key ([`crate::core::crypto::seal_content_key`]); `None` for a plain
    /// one.
    pub content_key: Option<String>,
    /// When it is recorded.
    pub created_at: Timestamp,
    /// When it is swept unless a message attaches it by then.
    pub expires_at: Timestamp,
}

/// An upload as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Upload {
    /// Its `upl_` id.
    pub id: UploadId,
    /// The workspace of its owner.
    pub workspace_id: WorkspaceId,
    /// The user whose key sent it; only they may attach it.
    pub owner_id: UserId,
    /// The file's name.
    pub filename: String,
    /// Its media type.
    pub content_type: String,
    /// Its size in bytes (0 until stored).
    pub size: u64,
    /// The SHA-256 of its bytes in lowercase hex (empty until stored).
    pub sha256: String,
    /// For an upload stored sealed, its content key, sealed under a data
    /// key; `None` for a plain one.
    pub content_key: Option<String>,
    /// Whether its bytes are stored (and it may be attached).
    pub stored: bool,
    /// When it was recorded.
    pub created_at: Timestamp,
    /// When it is swept unless attached.
    pub expires_at: Timestamp,
    /// Whether a message attaches it.
    pub attached: bool,
    /// Its integer id, unique across the database and kept by export and
    /// import, for the APIs whose clients know only integers.
    pub numeric_id: i64,
}

impl Upload {
    /// Whether its bytes are stored sealed (only an encrypted message may
    /// attach it then).
    pub fn encrypted(&self) -> bool {
        self.content_key.is_some()
    }

    /// The upload as the attach rule reads it.
    pub fn state(&self) -> attach::UploadState {
        attach::UploadState {
            id: self.id,
            owner: self.owner_id,
            size: self.size,
            encrypted: self.encrypted(),
            stored: self.stored,
            expires_at: self.expires_at,
            attached: self.attached,
        }
    }

    /// The upload as a message carries it.
    pub fn attachment(&self) -> Attachment {
        Attachment {
            id: self.id,
            filename: self.filename.clone(),
            content_type: self.content_type.clone(),
            size: self.size,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filenames_are_kept_as_given_within_their_rules() {
        for name in [
            "a.png",
            "Überweisung März.pdf",
            "../../etc/passwd",
            " spaced .txt",
        ] {
            assert_eq!(
                Filename::parse(name).map(|n| n.as_str().to_owned()),
                Ok(name.to_owned())
            );
        }
        assert_eq!(Filename::parse(""), Err(FilenameError::Empty));
        assert_eq!(Filename::parse("  "), Err(FilenameError::Empty));
        assert_eq!(
            Filename::parse("a\nb"),
            Err(FilenameError::ControlCharacter)
        );
        assert_eq!(
            Filename::parse("a\0b"),
            Err(FilenameError::ControlCharacter)
        );
        assert_eq!(
            Filename::parse(&"é".repeat(128)),
            Err(FilenameError::TooLong)
        );
        assert!(Filename::parse(&"e".repeat(255)).is_ok());
    }
}
