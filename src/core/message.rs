//! Messages: the replies that make up a ticket's thread.

use crate::core::access::Role;
use crate::core::id::{MessageId, TaskRef, TicketId, UploadId, UserId};
use crate::core::text::MessageBody;
use crate::core::time::Timestamp;
use crate::core::upload::Attachment;
use crate::core::upload::attach::AttachLimits;

/// How a body is meant to be rendered.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum BodyFormat {
    /// Plain text (the default).
    #[default]
    Plain,
    /// CommonMark Markdown.
    Markdown,
}

impl BodyFormat {
    /// Every format.
    pub const ALL: [BodyFormat; 2] = [BodyFormat::Plain, BodyFormat::Markdown];

    /// The wire and storage name.
    pub fn as_str(self) -> &'static str {
        match self {
            BodyFormat::Plain => "plain",
            BodyFormat::Markdown => "markdown",
        }
    }

    /// Parses a wire or storage name.
    pub fn parse(text: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|format| format.as_str() == text)
    }
}

/// A message as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    /// Its `msg_` id, the same in every API and across export and import.
    pub id: MessageId,
    /// Its integer id, unique across the database and kept by export and
    /// import, for the APIs whose clients know only integers; given by the
    /// store when the message is written (0 before).
    pub numeric_id: i64,
    /// The ticket it belongs to.
    pub ticket_id: TicketId,
    /// Position in the ticket's thread, from 1: the thread's order.
    pub seq: i64,
    /// When it was sent (committed).
    pub sent_at: Timestamp,
    /// The text, exactly as sent.
    pub body: String,
    /// How the text is meant to be rendered.
    pub body_format: BodyFormat,
    /// Whether the sender marked it sensitive.
    pub encrypted: bool,
    /// The user whose key sent it.
    pub sender_id: UserId,
    /// The sender's role when they sent it.
    pub sender_role: Role,
    /// The sender's display name when they sent it.
    pub sender_name: String,
    /// The files it carries, in the order its sender named them.
    pub attachments: Vec<Attachment>,
    /// The client's task it belongs to, if its sender said.
    pub task: Option<TaskRef>,
}

/// Which messages of a thread a list shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct MessageFilter {
    /// Only those of this client task.
    pub task: Option<TaskRef>,
    /// Only those sent after this time.
    pub since: Option<Timestamp>,
}

/// A message to append.
#[derive(Debug, Clone)]
pub struct NewMessage {
    /// The id to give it.
    pub id: MessageId,
    /// The validated text.
    pub body: MessageBody,
    /// How the text is meant to be rendered.
    pub body_format: BodyFormat,
    /// Whether the sender marked it sensitive.
    pub encrypted: bool,
    /// The time to record as its sending time.
    pub sent_at: Timestamp,
    /// The sender's uploads to attach, in order (see
    /// [`crate::core::upload::attach`]).
    pub attachments: Vec<UploadId>,
    /// How many files it may carry, and what its ticket's files may hold.
    pub attach_limits: AttachLimits,
    /// The client's task it belongs to, if its sender says.
    pub task: Option<TaskRef>,
}
