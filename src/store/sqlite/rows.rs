//! Reading records out of SQLite rows.

use rusqlite::Row;
use rusqlite::types::Type;

use crate::core::access::Role;
use crate::core::id::{MessageId, TaskRef, TicketId, UserId, WorkspaceId};
use crate::core::message::{BodyFormat, Message};
use crate::core::ticket::{Category, Priority, Ticket, TicketStatus, UserSummary};
use crate::core::time::Timestamp;

/// Reads column `index` as text and parses it, failing the row (not
/// panicking) if the stored value is not what the schema promises.
pub(super) fn parsed<T>(
    row: &Row<'_>,
    index: usize,
    parse: impl FnOnce(&str) -> Option<T>,
) -> rusqlite::Result<T> {
    let text: String = row.get(index)?;
    parse(&text).ok_or_else(|| {
        rusqlite::Error::FromSqlConversionFailure(
            index,
            Type::Text,
            format!("unexpected stored value {text:?}").into(),
        )
    })
}

/// Reads an integer-millisecond column as a timestamp.
pub(super) fn timestamp(row: &Row<'_>, index: usize) -> rusqlite::Result<Timestamp> {
    row.get(index).map(Timestamp::from_millis)
}

/// Reads a nullable integer-millisecond column.
pub(super) fn optional_timestamp(
    row: &Row<'_>,
    index: usize,
) -> rusqlite::Result<Option<Timestamp>> {
    row.get::<_, Option<i64>>(index)
        .map(|millis| millis.map(Timestamp::from_millis))
}

/// The tables [`TICKET_COLUMNS`] are read from: a ticket and its customer,
/// who must be of the ticket's workspace (a ticket naming a user of another
/// workspace, which only a damaged or edited database holds, is not read).
pub(super) const TICKET_JOIN: &str =
    "ticket t JOIN principal c ON c.id = t.customer_id AND c.workspace_id = t.workspace_id";

/// The columns [`ticket`] reads, for `FROM` [`TICKET_JOIN`].
pub(super) const TICKET_COLUMNS: &str = "t.id, t.workspace_id, t.number, t.subject, t.status, t.priority, \
     t.customer_id, c.name, t.created_at, t.updated_at, t.last_message_at, t.message_count, \
     t.resolved_at, t.closed_at, t.category, t.booking_id";

/// A ticket from a row of [`TICKET_COLUMNS`].
pub(super) fn ticket(row: &Row<'_>) -> rusqlite::Result<Ticket> {
    Ok(Ticket {
        id: parsed(row, 0, TicketId::from_key)?,
        workspace_id: parsed(row, 1, WorkspaceId::from_key)?,
        number: row.get(2)?,
        subject: row.get(3)?,
        status: parsed(row, 4, TicketStatus::parse)?,
        priority: parsed(row, 5, Priority::parse)?,
        customer: UserSummary {
            id: parsed(row, 6, UserId::from_key)?,
            name: row.get(7)?,
        },
        created_at: timestamp(row, 8)?,
        updated_at: timestamp(row, 9)?,
        last_message_at: timestamp(row, 10)?,
        message_count: row.get(11)?,
        resolved_at: optional_timestamp(row, 12)?,
        closed_at: optional_timestamp(row, 13)?,
        category: category(row.get(14)?),
        booking_id: row.get(15)?,
    })
}

/// A stored category; one that is not a category (which only an edited
/// database holds) is read as none.
fn category(stored: Option<String>) -> Option<Category> {
    stored.as_deref().and_then(Category::parse)
}

/// The columns [`message`] reads, for `FROM message m` (or a join naming
/// it `m`).
pub(super) const MESSAGE_COLUMNS: &str = "m.id, m.ticket_id, m.seq, m.sent_at, m.body, m.body_format, \
     m.encrypted, m.sender_id, m.sender_role, m.sender_name, m.numeric_id, m.task_id";

/// How many columns [`MESSAGE_COLUMNS`] names: a query's next column is at
/// this index.
pub(super) const MESSAGE_COLUMN_COUNT: usize = 12;

/// A message from a row of [`MESSAGE_COLUMNS`].
pub(super) fn message(row: &Row<'_>) -> rusqlite::Result<Message> {
    Ok(Message {
        numeric_id: row.get(10)?,
        id: parsed(row, 0, MessageId::from_key)?,
        ticket_id: parsed(row, 1, TicketId::from_key)?,
        seq: row.get(2)?,
        sent_at: timestamp(row, 3)?,
        body: row.get(4)?,
        body_format: parsed(row, 5, BodyFormat::parse)?,
        encrypted: row.get(6)?,
        sender_id: parsed(row, 7, UserId::from_key)?,
        sender_role: parsed(row, 8, Role::parse)?,
        sender_name: row.get(9)?,
        // Read apart, for the messages of tickets that have any.
        attachments: Vec::new(),
        task: match row.get::<_, Option<String>>(11)? {
            Some(_) => Some(parsed(row, 11, TaskRef::from_key)?),
            None => None,
        },
    })
}
