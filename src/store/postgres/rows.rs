//! Reading records out of PostgreSQL rows, and the conversions both ways.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tokio_postgres::Row;
use tokio_postgres::types::FromSql;

use crate::core::access::Role;
use crate::core::id::{MessageId, TaskRef, TicketId, UserId, WorkspaceId};
use crate::core::message::{BodyFormat, Message};
use crate::core::ticket::{Category, Priority, Ticket, TicketStatus, UserSummary};
use crate::core::time::Timestamp;
use crate::store::StoreError;
use crate::store::postgres::map_error;

/// A timestamp as PostgreSQL's `timestamptz` takes it.
pub(super) fn to_sql_time(at: Timestamp) -> SystemTime {
    let millis = at.millis();
    if millis >= 0 {
        UNIX_EPOCH + Duration::from_millis(millis.unsigned_abs())
    } else {
        UNIX_EPOCH - Duration::from_millis(millis.unsigned_abs())
    }
}

/// A `timestamptz` as a timestamp, to the millisecond (every stored time is
/// a whole millisecond).
pub(super) fn from_sql_time(at: SystemTime) -> Timestamp {
    let millis = match at.duration_since(UNIX_EPOCH) {
        Ok(after) => i64::try_from(after.as_millis()).unwrap_or(i64::MAX),
        Err(before) => -i64::try_from(before.duration().as_millis()).unwrap_or(i64::MAX),
    };
    Timestamp::from_millis(millis)
}

/// Reads column `index`, failing (not panicking) on a type mismatch.
pub(super) fn get<'a, T: FromSql<'a>>(row: &'a Row, index: usize) -> Result<T, StoreError> {
    row.try_get(index).map_err(map_error)
}

/// Reads column `index` as text and parses it, failing if the stored value
/// is not what the schema promises.
pub(super) fn parsed<T>(
    row: &Row,
    index: usize,
    parse: impl FnOnce(&str) -> Option<T>,
) -> Result<T, StoreError> {
    let text: &str = get(row, index)?;
    parse(text).ok_or_else(|| {
        StoreError::other(format!(
            "unexpected stored value {text:?} in column {index}"
        ))
    })
}

/// Reads a `timestamptz` column.
pub(super) fn timestamp(row: &Row, index: usize) -> Result<Timestamp, StoreError> {
    get(row, index).map(from_sql_time)
}

/// Reads a nullable `timestamptz` column.
pub(super) fn optional_timestamp(row: &Row, index: usize) -> Result<Option<Timestamp>, StoreError> {
    get::<Option<SystemTime>>(row, index).map(|at| at.map(from_sql_time))
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
pub(super) fn ticket(row: &Row) -> Result<Ticket, StoreError> {
    Ok(Ticket {
        id: parsed(row, 0, TicketId::from_key)?,
        workspace_id: parsed(row, 1, WorkspaceId::from_key)?,
        number: get(row, 2)?,
        subject: get(row, 3)?,
        status: parsed(row, 4, TicketStatus::parse)?,
        priority: parsed(row, 5, Priority::parse)?,
        customer: UserSummary {
            id: parsed(row, 6, UserId::from_key)?,
            name: get(row, 7)?,
        },
        created_at: timestamp(row, 8)?,
        updated_at: timestamp(row, 9)?,
        last_message_at: timestamp(row, 10)?,
        message_count: get(row, 11)?,
        resolved_at: optional_timestamp(row, 12)?,
        closed_at: optional_timestamp(row, 13)?,
        category: category(get(row, 14)?),
        booking_id: get(row, 15)?,
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
pub(super) fn message(row: &Row) -> Result<Message, StoreError> {
    Ok(Message {
        numeric_id: get(row, 10)?,
        id: parsed(row, 0, MessageId::from_key)?,
        ticket_id: parsed(row, 1, TicketId::from_key)?,
        seq: get(row, 2)?,
        sent_at: timestamp(row, 3)?,
        body: get(row, 4)?,
        body_format: parsed(row, 5, BodyFormat::parse)?,
        encrypted: get(row, 6)?,
        sender_id: parsed(row, 7, UserId::from_key)?,
        sender_role: parsed(row, 8, Role::parse)?,
        sender_name: get(row, 9)?,
        // Read apart, for the messages of tickets that have any.
        attachments: Vec::new(),
        task: match get::<Option<&str>>(row, 11)? {
            Some(_) => Some(parsed(row, 11, TaskRef::from_key)?),
            None => None,
        },
    })
}
