//! Tickets: status, priority, references and the ticket record.

use crate::core::id::{TicketId, UserId, WorkspaceId};
use crate::core::message::NewMessage;
use crate::core::text::Subject;
use crate::core::time::Timestamp;

/// What a ticket is about, as the API it was opened through classifies it
/// (`billing`, `technical_bug`, ...): 1 to [`Category::MAX_BYTES`] bytes of
/// lowercase ASCII letters, digits, `_` and `-`, starting with a letter.
/// Each API decides which categories it offers; all of them keep the
/// category with the ticket.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Category(String);

impl Category {
    /// The longest category, in bytes.
    pub const MAX_BYTES: usize = 64;

    /// Checks a category; `None` if it is not one.
    pub fn parse(text: &str) -> Option<Self> {
        let mut bytes = text.bytes();
        let first_is_letter = bytes.next().is_some_and(|byte| byte.is_ascii_lowercase());
        let rest_fits = bytes.all(|byte| {
            byte.is_ascii_lowercase() || byte.is_ascii_digit() || byte == b'_' || byte == b'-'
        });
        (first_is_letter && rest_fits && text.len() <= Self::MAX_BYTES)
            .then(|| Self(text.to_owned()))
    }

    /// The category.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// Where a ticket stands in its lifecycle (see [`crate::core::lifecycle`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TicketStatus {
    /// Waiting on staff.
    Open,
    /// Staff are working on it.
    InProgress,
    /// Waiting on the customer.
    AwaitingResponse,
    /// Staff consider it solved; a reply or reopen brings it back.
    Resolved,
    /// Done; replies are refused until it is reopened.
    Closed,
}

impl TicketStatus {
    /// Every status.
    pub const ALL: [TicketStatus; 5] = [
        TicketStatus::Open,
        TicketStatus::InProgress,
        TicketStatus::AwaitingResponse,
        TicketStatus::Resolved,
        TicketStatus::Closed,
    ];

    /// The wire and storage name.
    pub fn as_str(self) -> &'static str {
        match self {
            TicketStatus::Open => "open",
            TicketStatus::InProgress => "in_progress",
            TicketStatus::AwaitingResponse => "awaiting_response",
            TicketStatus::Resolved => "resolved",
            TicketStatus::Closed => "closed",
        }
    }

    /// Parses a wire or storage name.
    pub fn parse(text: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|status| status.as_str() == text)
    }
}

/// How urgent a ticket is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Priority {
    /// Can wait.
    Low,
    /// The default.
    #[default]
    Normal,
    /// Soon.
    High,
    /// Now.
    Urgent,
}

impl Priority {
    /// Every priority, lowest first.
    pub const ALL: [Priority; 4] = [
        Priority::Low,
        Priority::Normal,
        Priority::High,
        Priority::Urgent,
    ];

    /// The wire and storage name.
    pub fn as_str(self) -> &'static str {
        match self {
            Priority::Low => "low",
            Priority::Normal => "normal",
            Priority::High => "high",
            Priority::Urgent => "urgent",
        }
    }

    /// Parses a wire or storage name.
    pub fn parse(text: &str) -> Option<Self> {
        Self::ALL
            .into_iter()
            .find(|priority| priority.as_str() == text)
    }
}

/// How a client names a ticket: its public id, or its number within the
/// caller's workspace ("numeric ticket numbers are accepted during migration").
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TicketRef {
    /// A `tkt_` id.
    Id(TicketId),
    /// A per-workspace ticket number (1, 2, ...).
    Number(i64),
}

impl TicketRef {
    /// Parses a path segment; `None` for anything that cannot name a ticket
    /// (the API answers those with 404, as for an unknown ticket).
    pub fn parse(text: &str) -> Option<Self> {
        if text.starts_with(TicketId::PREFIX) {
            return TicketId::parse(text).map(TicketRef::Id);
        }
        let digits_only =
            !text.is_empty() && text.len() <= 18 && text.bytes().all(|b| b.is_ascii_digit());
        if !digits_only {
            return None;
        }
        text.parse::<i64>()
            .ok()
            .filter(|number| *number > 0)
            .map(TicketRef::Number)
    }
}

/// A user as shown inside another object: id and current display name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserSummary {
    /// The user's id.
    pub id: UserId,
    /// Their display name.
    pub name: String,
}

/// A ticket as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ticket {
    /// Its `tkt_` id, the same in every API and across export and import.
    pub id: TicketId,
    /// The workspace the ticket belongs to.
    pub workspace_id: WorkspaceId,
    /// Number within the workspace, from 1, never reused.
    pub number: i64,
    /// What the ticket is about, as its opener wrote it.
    pub subject: String,
    /// Where it is in its lifecycle ([`crate::core::lifecycle`]).
    pub status: TicketStatus,
    /// How urgent its opener said it is.
    pub priority: Priority,
    /// What it is about, if its opener said.
    pub category: Option<Category>,
    /// An integer the opener's system refers to the ticket's subject by
    /// (Daakey's booking id); opaque to ticketd.
    pub booking_id: Option<i64>,
    /// The customer who owns the ticket.
    pub customer: UserSummary,
    /// When it was opened.
    pub created_at: Timestamp,
    /// When anything about it last changed (its sort key in lists).
    pub updated_at: Timestamp,
    /// When its latest message was sent.
    pub last_message_at: Timestamp,
    /// How many messages it holds.
    pub message_count: i64,
    /// When it was resolved, while it is resolved.
    pub resolved_at: Option<Timestamp>,
    /// When it was closed, while it is closed.
    pub closed_at: Option<Timestamp>,
}

/// A ticket to open, with its first message.
#[derive(Debug, Clone)]
pub struct NewTicket {
    /// The id to give it.
    pub id: TicketId,
    /// What the ticket is about, validated.
    pub subject: Subject,
    /// How urgent its opener says it is.
    pub priority: Priority,
    /// What it is about, if its opener says.
    pub category: Option<Category>,
    /// An integer the opener's system refers to its subject by.
    pub booking_id: Option<i64>,
    /// The owning customer when staff or automation open it on a customer's
    /// behalf; `None` when a customer opens their own.
    pub on_behalf_of: Option<UserId>,
    /// The first message; its `sent_at` is the ticket's creation time.
    pub first_message: NewMessage,
}

/// Which tickets a list shows besides the visibility rules.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct TicketFilter {
    /// Only tickets in this status.
    pub status: Option<TicketStatus>,
}

/// Which of the tickets a user can see an offset-paginated list shows,
/// and which slice of them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TicketRowQuery {
    /// Only tickets in one of these statuses; every status when empty.
    pub statuses: Vec<TicketStatus>,
    /// Only tickets whose subject holds this text (ASCII letters in either
    /// case) or whose number it is.
    pub search: Option<String>,
    /// How many of the matching tickets (most recent activity first) to
    /// skip.
    pub offset: u64,
    /// The most rows to return.
    pub limit: u32,
}

/// `text` as a `LIKE` pattern matching any text that holds it: `%`, `_`
/// and the escape character `\` stand for themselves.
pub fn like_pattern(text: &str) -> String {
    let mut pattern = String::with_capacity(text.len() + 2);
    pattern.push('%');
    for c in text.chars() {
        if matches!(c, '%' | '_' | '\\') {
            pattern.push('\\');
        }
        pattern.push(c);
    }
    pattern.push('%');
    pattern
}

/// The opening of a ticket's latest message, as a list previews it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MessagePreview {
    /// At most [`MessagePreview::CHARS`] + 1 characters of its body (one
    /// more than shown, so that a preview can tell it was cut).
    Text(String),
    /// The body is sealed: a list does not open it.
    Sealed,
}

impl MessagePreview {
    /// The characters of a body a preview shows.
    pub const CHARS: usize = 100;
}

/// A ticket as a list shows it to one user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TicketRow {
    /// The ticket.
    pub ticket: Ticket,
    /// How many of its messages the user has not read: those after their
    /// read marker (viewing a ticket and writing in it move the marker).
    pub unread_count: i64,
    /// Its latest message's opening.
    pub last_message: MessagePreview,
}

/// A slice of a ticket list, with how many tickets match in all.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TicketRows {
    /// The rows, most recent activity first.
    pub rows: Vec<TicketRow>,
    /// How many tickets match the query, whatever its offset and limit.
    pub total: u64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn categories_are_lowercase_tokens() {
        for good in ["billing", "technical_bug", "feature-request", "a", "v2"] {
            assert_eq!(Category::parse(good).map(|c| c.0), Some(good.to_owned()));
        }
        let long = "a".repeat(Category::MAX_BYTES + 1);
        for bad in ["", "Billing", "_x", "2fa", "tech bug", "é", long.as_str()] {
            assert_eq!(Category::parse(bad), None, "{bad}");
        }
    }

    #[test]
    fn ticket_refs_accept_ids_and_numbers() {
        let id = TicketId::generate();
        assert_eq!(TicketRef::parse(&id.to_string()), Some(TicketRef::Id(id)));
        assert_eq!(TicketRef::parse("42"), Some(TicketRef::Number(42)));
        assert_eq!(TicketRef::parse("007"), Some(TicketRef::Number(7)));
    }

    #[test]
    fn malformed_refs_name_no_ticket() {
        for text in [
            "",
            "0",
            "-1",
            "+1",
            "1.5",
            "1e3",
            "abc",
            "tkt_",
            "tkt_123",
            "9999999999999999999",
            "1234567890123456789",
            " 1",
        ] {
            assert_eq!(TicketRef::parse(text), None, "{text:?}");
        }
    }

    #[test]
    fn statuses_and_priorities_round_trip() {
        for status in TicketStatus::ALL {
            assert_eq!(TicketStatus::parse(status.as_str()), Some(status));
        }
        for priority in Priority::ALL {
            assert_eq!(Priority::parse(priority.as_str()), Some(priority));
        }
        assert_eq!(TicketStatus::parse("OPEN"), None);
    }
}
