//! The records of a dump: one per stored row, with every column.
//!
//! Member names are the column names, except that the `principal` table's
//! rows are `user` records and `api_key.principal_id` is `user_id`, as in
//! the API and the command line.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::core::access::{Role, Scopes};
use crate::core::id::{KeyId, MessageId, TaskRef, TicketId, UploadId, UserId, WorkspaceId};
use crate::core::message::{BodyFormat, Message};
use crate::core::ticket::{Category, Priority, TicketStatus};
use crate::core::time::Timestamp;
use crate::core::token::SecretHash;

/// A row of the `workspace` table.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WorkspaceRecord {
    /// Public id.
    #[serde(with = "super::text_form::text")]
    pub id: WorkspaceId,
    /// Numeric id; the dump's order of workspaces.
    pub numeric_id: i64,
    /// Display name.
    pub name: String,
    /// Unique short code.
    pub code: String,
    /// Plan name.
    pub plan: String,
    /// The number of the workspace's latest ticket (0 before the first).
    pub last_ticket_number: i64,
    /// When it was created.
    #[serde(with = "super::text_form::text")]
    pub created_at: Timestamp,
    /// The generation of its agency signatures; absent when none was
    /// minted ([`crate::core::agency_signature`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub agency_signature_kid: Option<String>,
}

/// A row of the `principal` table: a customer, staff member or automation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UserRecord {
    /// Public id.
    #[serde(with = "super::text_form::text")]
    pub id: UserId,
    /// The workspace the user belongs to.
    #[serde(with = "super::text_form::text")]
    pub workspace_id: WorkspaceId,
    /// Role.
    #[serde(with = "super::text_form::text")]
    pub role: Role,
    /// Display name.
    pub name: String,
    /// Contact address, or `null`.
    // Through `deserialize_with` the member is required even when null.
    #[serde(deserialize_with = "Option::deserialize")]
    pub email: Option<String>,
    /// When the user was created.
    #[serde(with = "super::text_form::text")]
    pub created_at: Timestamp,
}

/// A row of the `api_key` table, with the digest of its secret (never the
/// secret itself), so that tokens issued before an export keep working
/// after an import.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ApiKeyRecord {
    /// Public id.
    #[serde(with = "super::text_form::text")]
    pub id: KeyId,
    /// The user the key acts as (`api_key.principal_id`).
    #[serde(with = "super::text_form::text")]
    pub user_id: UserId,
    /// SHA-256 of the token's secret, as 64 lowercase hex digits.
    #[serde(with = "super::text_form::text")]
    pub secret_hash: SecretHash,
    /// Scope names, in canonical order.
    #[serde(with = "super::text_form::scope_list")]
    pub scopes: Scopes,
    /// When it was created.
    #[serde(with = "super::text_form::text")]
    pub created_at: Timestamp,
    /// When it was revoked, or `null`.
    #[serde(with = "super::text_form::optional_text")]
    pub revoked_at: Option<Timestamp>,
}

/// A row of the `ticket` table.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TicketRecord {
    /// Public id.
    #[serde(with = "super::text_form::text")]
    pub id: TicketId,
    /// The workspace it belongs to.
    #[serde(with = "super::text_form::text")]
    pub workspace_id: WorkspaceId,
    /// Number within the workspace.
    pub number: i64,
    /// The customer who owns it.
    #[serde(with = "super::text_form::text")]
    pub customer_id: UserId,
    /// Subject line.
    pub subject: String,
    /// Lifecycle status.
    #[serde(with = "super::text_form::text")]
    pub status: TicketStatus,
    /// Priority.
    #[serde(with = "super::text_form::text")]
    pub priority: Priority,
    /// When it was opened.
    #[serde(with = "super::text_form::text")]
    pub created_at: Timestamp,
    /// When anything about it last changed.
    #[serde(with = "super::text_form::text")]
    pub updated_at: Timestamp,
    /// When its latest message was sent.
    #[serde(with = "super::text_form::text")]
    pub last_message_at: Timestamp,
    /// How many messages it holds (the `seq` of its latest).
    pub message_count: i64,
    /// When it was resolved, or `null`.
    #[serde(with = "super::text_form::optional_text")]
    pub resolved_at: Option<Timestamp>,
    /// When it was closed, or `null`.
    #[serde(with = "super::text_form::optional_text")]
    pub closed_at: Option<Timestamp>,
    /// What it is about, or `null` (absent from a version 1 dump).
    #[serde(default, with = "super::text_form::optional_text")]
    pub category: Option<Category>,
    /// The integer its opener's system refers to it by; absent when none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub booking_id: Option<i64>,
}

/// A row of the `message` table.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MessageRecord {
    /// The ticket it belongs to.
    #[serde(with = "super::text_form::text")]
    pub ticket_id: TicketId,
    /// Position in the ticket's thread, from 1.
    pub seq: i64,
    /// Public id.
    #[serde(with = "super::text_form::text")]
    pub id: MessageId,
    /// The sending user.
    #[serde(with = "super::text_form::text")]
    pub sender_id: UserId,
    /// The sender's role when they sent it.
    #[serde(with = "super::text_form::text")]
    pub sender_role: Role,
    /// The sender's display name when they sent it.
    pub sender_name: String,
    /// The text, exactly as stored.
    pub body: String,
    /// How the text is meant to be rendered.
    #[serde(with = "super::text_form::text")]
    pub body_format: BodyFormat,
    /// Whether the sender marked it sensitive.
    pub encrypted: bool,
    /// When it was sent.
    #[serde(with = "super::text_form::text")]
    pub sent_at: Timestamp,
    /// Its integer id (absent from a version 1 dump: the import gives it
    /// one).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub numeric_id: Option<i64>,
    /// The client's task it belongs to, as a UUID; absent when none.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        with = "super::text_form::optional_text"
    )]
    pub task_id: Option<TaskRef>,
}

impl From<MessageRecord> for Message {
    /// The message a record holds, column for column (the body as stored).
    fn from(record: MessageRecord) -> Self {
        let MessageRecord {
            ticket_id,
            seq,
            id,
            sender_id,
            sender_role,
            sender_name,
            body,
            body_format,
            encrypted,
            sent_at,
            numeric_id,
            task_id,
        } = record;
        Message {
            numeric_id: numeric_id.unwrap_or(0),
            id,
            ticket_id,
            seq,
            sent_at,
            body,
            body_format,
            encrypted,
            sender_id,
            sender_role,
            sender_name,
            // A message's files are upload records of their own.
            attachments: Vec::new(),
            task: task_id,
        }
    }
}

/// A row of the `ticket_read` table: how far into a ticket's thread a user
/// has read.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReadMarkerRecord {
    /// The ticket.
    #[serde(with = "super::text_form::text")]
    pub ticket_id: TicketId,
    /// The reader.
    #[serde(with = "super::text_form::text")]
    pub user_id: UserId,
    /// The `seq` of the last message they have read (0 for none).
    pub last_read_seq: i64,
}

/// A row of the `upload` table, for an upload whose bytes are stored; in
/// the dump its bytes follow it ([`super::DataLine`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UploadRecord {
    /// Public id.
    #[serde(with = "super::text_form::text")]
    pub id: UploadId,
    /// The workspace of its owner.
    #[serde(with = "super::text_form::text")]
    pub workspace_id: WorkspaceId,
    /// The user who uploaded it.
    #[serde(with = "super::text_form::text")]
    pub owner_id: UserId,
    /// The file's name.
    pub filename: String,
    /// Its media type.
    pub content_type: String,
    /// Its size in bytes (of the plaintext, for a sealed file).
    pub size: u64,
    /// The SHA-256 of its bytes (of the plaintext), as 64 lowercase hex
    /// digits.
    pub sha256: String,
    /// Whether it is stored sealed.
    pub encrypted: bool,
    /// The sealed content key of a file whose bytes follow sealed, as
    /// stored; `null` for a plain file, and for a sealed one whose bytes
    /// follow as plaintext (`export --decrypt`), which import seals anew.
    #[serde(deserialize_with = "Option::deserialize")]
    pub content_key: Option<String>,
    /// When it was uploaded.
    #[serde(with = "super::text_form::text")]
    pub created_at: Timestamp,
    /// When it is swept unless attached.
    #[serde(with = "super::text_form::text")]
    pub expires_at: Timestamp,
    /// The message that attaches it, or `null`.
    #[serde(with = "super::text_form::optional_text")]
    pub message_id: Option<MessageId>,
    /// Its place among that message's files, from 0, or `null`.
    #[serde(deserialize_with = "Option::deserialize")]
    pub position: Option<i64>,
    /// Its integer id.
    pub numeric_id: i64,
}

impl UploadRecord {
    /// How many bytes follow the record: the plaintext's size, or the
    /// sealed form's.
    pub fn data_len(&self) -> u64 {
        if self.content_key.is_some() {
            crate::core::crypto::stream::sealed_len(self.size)
        } else {
            self.size
        }
    }
}

/// One record of a dump; its `type` member names the kind. Read records
/// with [`super::parse_line`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Record {
    /// A workspace.
    Workspace(WorkspaceRecord),
    /// A user.
    User(UserRecord),
    /// An API key.
    ApiKey(ApiKeyRecord),
    /// A ticket.
    Ticket(TicketRecord),
    /// A message.
    Message(MessageRecord),
    /// A read marker.
    ReadMarker(ReadMarkerRecord),
    /// An upload (its bytes follow it).
    Upload(UploadRecord),
}

impl Record {
    /// The record's kind.
    pub fn kind(&self) -> RecordKind {
        match self {
            Record::Workspace(_) => RecordKind::Workspace,
            Record::User(_) => RecordKind::User,
            Record::ApiKey(_) => RecordKind::ApiKey,
            Record::Ticket(_) => RecordKind::Ticket,
            Record::Message(_) => RecordKind::Message,
            Record::ReadMarker(_) => RecordKind::ReadMarker,
            Record::Upload(_) => RecordKind::Upload,
        }
    }

    /// The record's position in the dump: export the next page after it.
    pub fn cursor(&self) -> ExportCursor {
        match self {
            Record::Workspace(workspace) => ExportCursor::Workspace(workspace.numeric_id),
            Record::User(user) => ExportCursor::User(user.id),
            Record::ApiKey(key) => ExportCursor::ApiKey(key.id),
            Record::Ticket(ticket) => ExportCursor::Ticket(ticket.id),
            Record::Message(message) => ExportCursor::Message(message.ticket_id, message.seq),
            Record::ReadMarker(marker) => {
                ExportCursor::ReadMarker(marker.ticket_id, marker.user_id)
            }
            Record::Upload(upload) => ExportCursor::Upload(upload.id),
        }
    }
}

/// The kinds of record, in dump order: each kind's records refer only to
/// kinds before it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum RecordKind {
    /// `workspace` rows, by `numeric_id`.
    Workspace,
    /// `principal` rows, by `id`.
    User,
    /// `api_key` rows, by `id`.
    ApiKey,
    /// `ticket` rows, by `id`.
    Ticket,
    /// `message` rows, by `(ticket_id, seq)`.
    Message,
    /// `ticket_read` rows, by `(ticket_id, user_id)`.
    ReadMarker,
    /// Stored `upload` rows, by `id`, each followed by its bytes.
    Upload,
}

impl RecordKind {
    /// Every kind, in dump order.
    pub const ALL: [RecordKind; 7] = [
        RecordKind::Workspace,
        RecordKind::User,
        RecordKind::ApiKey,
        RecordKind::Ticket,
        RecordKind::Message,
        RecordKind::ReadMarker,
        RecordKind::Upload,
    ];

    /// The kind's `type` member.
    pub fn as_str(self) -> &'static str {
        match self {
            RecordKind::Workspace => "workspace",
            RecordKind::User => "user",
            RecordKind::ApiKey => "api_key",
            RecordKind::Ticket => "ticket",
            RecordKind::Message => "message",
            RecordKind::ReadMarker => "read_marker",
            RecordKind::Upload => "upload",
        }
    }
}

/// The key of a record in dump order; an export page starts after one.
///
/// The derived order is the dump's order: by kind, then by key. Ids compare
/// as their lowercase text compares bytewise (their ULIDs' order).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum ExportCursor {
    /// After the workspace with this `numeric_id`.
    Workspace(i64),
    /// After this user.
    User(UserId),
    /// After this API key.
    ApiKey(KeyId),
    /// After this ticket.
    Ticket(TicketId),
    /// After this message, named by `(ticket_id, seq)`.
    Message(TicketId, i64),
    /// After this read marker, named by `(ticket_id, user_id)`.
    ReadMarker(TicketId, UserId),
    /// After this upload.
    Upload(UploadId),
}

impl ExportCursor {
    /// The kind of record the cursor points into.
    pub fn kind(self) -> RecordKind {
        match self {
            ExportCursor::Workspace(_) => RecordKind::Workspace,
            ExportCursor::User(_) => RecordKind::User,
            ExportCursor::ApiKey(_) => RecordKind::ApiKey,
            ExportCursor::Ticket(_) => RecordKind::Ticket,
            ExportCursor::Message(..) => RecordKind::Message,
            ExportCursor::ReadMarker(..) => RecordKind::ReadMarker,
            ExportCursor::Upload(_) => RecordKind::Upload,
        }
    }
}

impl fmt::Display for ExportCursor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ExportCursor::Workspace(numeric_id) => write!(f, "workspace {numeric_id}"),
            ExportCursor::User(id) => write!(f, "user {id}"),
            ExportCursor::ApiKey(id) => write!(f, "api_key {id}"),
            ExportCursor::Ticket(id) => write!(f, "ticket {id}"),
            ExportCursor::Message(ticket, seq) => write!(f, "message {seq} of {ticket}"),
            ExportCursor::ReadMarker(ticket, user) => {
                write!(f, "read marker of {user} on {ticket}")
            }
            ExportCursor::Upload(id) => write!(f, "upload {id}"),
        }
    }
}
