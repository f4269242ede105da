//! Tickets and messages: the SQL behind the support API.

use rusqlite::types::Value;
use rusqlite::{Connection, OptionalExtension, params, params_from_iter};

use async_trait::async_trait;

use crate::core::access::Actor;
use crate::core::id::{MessageId, TicketId, UserId};
use crate::core::lifecycle::{LifecycleState, TicketAction};
use crate::core::message::{Message, MessageFilter, NewMessage};
use crate::core::page::{MessageCursor, Page, PageRequest, TicketCursor};
use crate::core::plan::{self, ActionPlan, NewTicketCustomer, OpenPlan, ReplyPlan, Thread};
use crate::core::ticket::{
    Category, MessagePreview, NewTicket, Ticket, TicketFilter, TicketRef, TicketRow,
    TicketRowQuery, TicketRows, TicketStatus, UserSummary, like_pattern,
};
use crate::core::time::Timestamp;
use crate::store::TicketStore;
use crate::store::idempotency::Completion;
use crate::store::sqlite::SqliteStore;
use crate::store::sqlite::map_error;
use crate::store::sqlite::rows::{
    self, MESSAGE_COLUMN_COUNT, MESSAGE_COLUMNS, TICKET_COLUMNS, TICKET_JOIN, optional_timestamp,
    parsed, timestamp,
};
use crate::store::{StoreError, Written};

/// The customer a visibility check is restricted to, as stored
/// ([`Actor::visible_customer`]).
fn restricted_to(actor: &Actor) -> Option<String> {
    actor.visible_customer().map(|customer| customer.key())
}

/// The query [`locate`] runs: the rule [`find_ticket`] applies, through the
/// same [`TICKET_JOIN`], so a ticket that neither finds nor lists (one naming
/// a customer of another workspace) is not located for a thread or a write.
fn locate_sql(reference: TicketRef) -> String {
    let by = match reference {
        TicketRef::Id(_) => "t.id = ?1",
        TicketRef::Number(_) => "t.number = ?1",
    };
    format!(
        "SELECT t.id, t.status, t.resolved_at, t.closed_at, t.message_count, t.last_message_at,
                t.attachment_count, t.attachment_bytes
         FROM {TICKET_JOIN}
         WHERE {by} AND t.workspace_id = ?2 AND (?3 IS NULL OR t.customer_id = ?3)"
    )
}

/// The ticket `reference` names in the actor's workspace, if the actor can
/// see it. Customers' lookups of other customers' tickets are `NotFound`,
/// exactly like lookups of tickets that do not exist.
fn locate(conn: &Connection, actor: &Actor, reference: TicketRef) -> Result<Thread, StoreError> {
    let sql = locate_sql(reference);
    let key = reference_value(reference);
    conn.prepare_cached(&sql)
        .and_then(|mut select| {
            select.query_row(
                params![key, actor.workspace_id.key(), restricted_to(actor)],
                |row| {
                    Ok(Thread {
                        id: parsed(row, 0, TicketId::from_key)?,
                        state: LifecycleState {
                            status: parsed(row, 1, TicketStatus::parse)?,
                            resolved_at: optional_timestamp(row, 2)?,
                            closed_at: optional_timestamp(row, 3)?,
                        },
                        message_count: row.get(4)?,
                        last_message_at: timestamp(row, 5)?,
                        attachment_count: row.get(6)?,
                        attachment_bytes: u64::try_from(row.get::<_, i64>(7)?).unwrap_or(0),
                    })
                },
            )
        })
        .map_err(map_error)
}

fn reference_value(reference: TicketRef) -> Value {
    match reference {
        TicketRef::Id(id) => Value::Text(id.key()),
        TicketRef::Number(number) => Value::Integer(number),
    }
}

fn ticket_by_id(conn: &Connection, actor: &Actor, id: TicketId) -> Result<Ticket, StoreError> {
    let sql = format!(
        "SELECT {TICKET_COLUMNS} FROM {TICKET_JOIN} WHERE t.id = ?1 AND t.workspace_id = ?2"
    );
    conn.prepare_cached(&sql)
        .and_then(|mut select| {
            select.query_row(params![id.key(), actor.workspace_id.key()], rows::ticket)
        })
        .map_err(map_error)
}

pub(super) fn find_ticket(
    conn: &Connection,
    actor: &Actor,
    reference: TicketRef,
) -> Result<Ticket, StoreError> {
    let by = match reference {
        TicketRef::Id(_) => "t.id = ?1",
        TicketRef::Number(_) => "t.number = ?1",
    };
    let sql = format!(
        "SELECT {TICKET_COLUMNS} FROM {TICKET_JOIN}
         WHERE {by} AND t.workspace_id = ?2 AND (?3 IS NULL OR t.customer_id = ?3)"
    );
    conn.prepare_cached(&sql)
        .and_then(|mut select| {
            select.query_row(
                params![
                    reference_value(reference),
                    actor.workspace_id.key(),
                    restricted_to(actor)
                ],
                rows::ticket,
            )
        })
        .map_err(map_error)
}

/// The keyset query for a ticket list, with its arguments. Each shape has an
/// index that yields rows already in order (see the migration), so a page
/// costs one index seek plus `limit` steps however many tickets there are.
///
/// A customer's list is also restricted to the actor's workspace: a ticket
/// of another workspace naming the customer (which only a damaged or
/// edited database holds) is not theirs to see.
fn list_tickets_query(
    actor: &Actor,
    filter: TicketFilter,
    page: PageRequest<TicketCursor>,
) -> (String, Vec<Value>) {
    let mut sql = format!("SELECT {TICKET_COLUMNS} FROM {TICKET_JOIN} WHERE t.workspace_id = ?");
    let mut args: Vec<Value> = Vec::with_capacity(6);
    args.push(Value::Text(actor.workspace_id.key()));
    if let Some(customer) = restricted_to(actor) {
        sql.push_str(" AND t.customer_id = ?");
        args.push(Value::Text(customer));
    }
    if let Some(status) = filter.status {
        sql.push_str(" AND t.status = ?");
        args.push(Value::Text(status.as_str().to_owned()));
    }
    if let Some(after) = page.after {
        sql.push_str(" AND (t.updated_at, t.id) < (?, ?)");
        args.push(Value::Integer(after.updated_at.millis()));
        args.push(Value::Text(after.id.key()));
    }
    sql.push_str(" ORDER BY t.updated_at DESC, t.id DESC LIMIT ?");
    args.push(Value::Integer(i64::from(page.size.get()) + 1));
    (sql, args)
}

pub(super) fn list_tickets(
    conn: &Connection,
    actor: &Actor,
    filter: TicketFilter,
    page: PageRequest<TicketCursor>,
) -> Result<Page<Ticket, TicketCursor>, StoreError> {
    let (sql, args) = list_tickets_query(actor, filter, page);
    let tickets = conn
        .prepare_cached(&sql)
        .and_then(|mut select| {
            select
                .query_map(params_from_iter(args), rows::ticket)?
                .collect::<rusqlite::Result<Vec<_>>>()
        })
        .map_err(map_error)?;
    Ok(Page::from_overfetch(tickets, page.size, |ticket| {
        TicketCursor {
            updated_at: ticket.updated_at,
            id: ticket.id,
        }
    }))
}

/// Where a row list's tickets are found, with its arguments: the
/// visibility rule of [`list_tickets_query`], and the statuses asked for.
fn ticket_rows_filter(actor: &Actor, query: &TicketRowQuery) -> (String, Vec<Value>) {
    let mut sql = String::from("t.workspace_id = ?");
    let mut args = vec![Value::Text(actor.workspace_id.key())];
    if let Some(customer) = restricted_to(actor) {
        sql.push_str(" AND t.customer_id = ?");
        args.push(Value::Text(customer));
    }
    if !query.statuses.is_empty() {
        let places = vec!["?"; query.statuses.len()].join(", ");
        sql.push_str(&format!(" AND t.status IN ({places})"));
        args.extend(
            query
                .statuses
                .iter()
                .map(|status| Value::Text(status.as_str().to_owned())),
        );
    }
    if let Some(search) = &query.search {
        sql.push_str(" AND (t.subject LIKE ? ESCAPE '\\' OR t.number = ?)");
        args.push(Value::Text(like_pattern(search)));
        args.push(Value::Integer(search.parse::<i64>().unwrap_or(-1)));
    }
    (sql, args)
}

/// A slice of the tickets the actor can see, by offset, with their unread
/// counts and previews, and how many there are; read in one snapshot.
pub(super) fn list_ticket_rows(
    conn: &Connection,
    actor: &Actor,
    query: &TicketRowQuery,
) -> Result<TicketRows, StoreError> {
    let (filter, filter_args) = ticket_rows_filter(actor, query);
    let preview_chars = i64::try_from(MessagePreview::CHARS + 1).unwrap_or(i64::MAX);
    let select = format!(
        "SELECT {TICKET_COLUMNS}, t.message_count - coalesce(r.last_read_seq, 0),
                lm.encrypted, substr(lm.body, 1, ?)
         FROM {TICKET_JOIN}
         LEFT JOIN ticket_read r ON r.ticket_id = t.id AND r.user_id = ?
         LEFT JOIN message lm ON lm.ticket_id = t.id AND lm.seq = t.message_count
         WHERE {filter}
         ORDER BY t.updated_at DESC, t.id DESC LIMIT ? OFFSET ?"
    );
    let mut args = vec![
        Value::Integer(preview_chars),
        Value::Text(actor.user_id.key()),
    ];
    args.extend(filter_args.iter().cloned());
    args.push(Value::Integer(i64::from(query.limit)));
    args.push(Value::Integer(
        i64::try_from(query.offset).unwrap_or(i64::MAX),
    ));
    let rows = conn
        .prepare_cached(&select)
        .and_then(|mut select| {
            select
                .query_map(params_from_iter(args), |row| {
                    let encrypted: Option<bool> = row.get(17)?;
                    Ok(TicketRow {
                        ticket: rows::ticket(row)?,
                        unread_count: row.get::<_, i64>(16)?.max(0),
                        last_message: if encrypted.unwrap_or(false) {
                            MessagePreview::Sealed
                        } else {
                            MessagePreview::Text(
                                row.get::<_, Option<String>>(18)?.unwrap_or_default(),
                            )
                        },
                    })
                })?
                .collect::<rusqlite::Result<Vec<_>>>()
        })
        .map_err(map_error)?;
    let total: i64 = conn
        .prepare_cached(&format!(
            "SELECT count(*) FROM {TICKET_JOIN} WHERE {filter}"
        ))
        .and_then(|mut count| count.query_row(params_from_iter(filter_args), |row| row.get(0)))
        .map_err(map_error)?;
    Ok(TicketRows {
        rows,
        total: u64::try_from(total).unwrap_or(0),
    })
}

pub(super) fn create_ticket(
    conn: &Connection,
    actor: &Actor,
    new: &NewTicket,
) -> Result<Ticket, StoreError> {
    let customer = match plan::customer_of_new_ticket(actor, new) {
        Some(NewTicketCustomer::Actor(customer)) => customer,
        Some(NewTicketCustomer::Named(customer_id)) => {
            let name: Option<String> = conn
                .prepare_cached(
                    "SELECT name FROM principal WHERE id = ?1 AND workspace_id = ?2 AND role = 'customer'",
                )
                .and_then(|mut select| {
                    select
                        .query_row(params![customer_id.key(), actor.workspace_id.key()], |row| row.get(0))
                        .optional()
                })
                .map_err(map_error)?;
            UserSummary {
                id: customer_id,
                name: name.ok_or(StoreError::CustomerNotFound)?,
            }
        }
        None => return Err(StoreError::CustomerNotFound),
    };
    let number: i64 = conn
        .prepare_cached(
            "UPDATE workspace SET last_ticket_number = last_ticket_number + 1
             WHERE id = ?1 RETURNING last_ticket_number",
        )
        .and_then(|mut update| update.query_row([actor.workspace_id.key()], |row| row.get(0)))
        .map_err(map_error)?;
    let OpenPlan {
        ticket,
        first_message,
    } = plan::plan_open(actor, new, customer, number);
    conn.prepare_cached(
        "INSERT INTO ticket (id, workspace_id, number, customer_id, subject, status, priority,
                             created_at, updated_at, last_message_at, message_count, category,
                             booking_id)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?8, ?8, ?9, ?10, ?11)",
    )
    .and_then(|mut insert| {
        insert.execute(params![
            ticket.id.key(),
            ticket.workspace_id.key(),
            ticket.number,
            ticket.customer.id.key(),
            ticket.subject,
            ticket.status.as_str(),
            ticket.priority.as_str(),
            ticket.created_at.millis(),
            ticket.message_count,
            ticket.category.as_ref().map(Category::as_str),
            ticket.booking_id,
        ])
    })
    .map_err(map_error)?;
    insert_message(conn, &first_message)?;
    mark_read(conn, ticket.id, actor.user_id, first_message.seq)?;
    super::uploads::attach(
        conn,
        actor,
        ticket.id,
        0,
        &first_message,
        &new.first_message,
    )?;
    Ok(ticket)
}

/// Moves `user`'s read marker on `ticket` up to `seq` (never back).
pub(super) fn mark_read(
    conn: &Connection,
    ticket: TicketId,
    user: UserId,
    seq: i64,
) -> Result<(), StoreError> {
    conn.prepare_cached(
        "INSERT INTO ticket_read (ticket_id, user_id, last_read_seq) VALUES (?1, ?2, ?3)
         ON CONFLICT (ticket_id, user_id)
         DO UPDATE SET last_read_seq = excluded.last_read_seq
         WHERE excluded.last_read_seq > last_read_seq",
    )
    .and_then(|mut upsert| upsert.execute(params![ticket.key(), user.key(), seq]))
    .map(drop)
    .map_err(map_error)
}

/// Inserts one message row as given: a reply's, a new ticket's first
/// message, or an imported one; returns its integer id, the one it was
/// given or, for 0, the next one.
pub(super) fn insert_message(conn: &Connection, message: &Message) -> Result<i64, StoreError> {
    conn.prepare_cached(
        "INSERT INTO message (id, ticket_id, seq, sender_id, sender_role, sender_name,
                              body, body_format, encrypted, sent_at, numeric_id, task_id)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10,
                 coalesce(?11, (SELECT coalesce(max(numeric_id), 0) + 1 FROM message)), ?12)
         RETURNING numeric_id",
    )
    .and_then(|mut insert| {
        insert.query_row(
            params![
                message.id.key(),
                message.ticket_id.key(),
                message.seq,
                message.sender_id.key(),
                message.sender_role.as_str(),
                message.sender_name,
                message.body,
                message.body_format.as_str(),
                message.encrypted,
                message.sent_at.millis(),
                (message.numeric_id > 0).then_some(message.numeric_id),
                message.task.map(|task| task.key()),
            ],
            |row| row.get(0),
        )
    })
    .map_err(map_error)
}

pub(super) fn append_message(
    conn: &Connection,
    actor: &Actor,
    reference: TicketRef,
    new: &NewMessage,
) -> Result<Message, StoreError> {
    let thread = locate(conn, actor, reference)?;
    let ReplyPlan { mut message, next } = plan::plan_reply(&thread, actor, new)?;
    message.numeric_id = insert_message(conn, &message)?;
    // Writing in a thread is reading it: the sender's own message is never
    // unread to them.
    mark_read(conn, thread.id, actor.user_id, message.seq)?;
    message.attachments = super::uploads::attach(
        conn,
        actor,
        thread.id,
        thread.attachment_bytes,
        &message,
        new,
    )?;
    conn.prepare_cached(
        "UPDATE ticket SET status = ?2, resolved_at = ?3, closed_at = ?4,
                updated_at = max(updated_at, ?5), last_message_at = ?5, message_count = ?6
         WHERE id = ?1",
    )
    .and_then(|mut update| {
        update.execute(params![
            thread.id.key(),
            next.status.as_str(),
            next.resolved_at.map(Timestamp::millis),
            next.closed_at.map(Timestamp::millis),
            message.sent_at.millis(),
            message.seq,
        ])
    })
    .map_err(map_error)?;
    Ok(message)
}

/// A page of a thread, of the messages `filter` keeps: its task and the
/// time they must be sent after are the parameters after the fourth, in
/// that order, each only if the filter has it. The ticket was located in
/// the actor's workspace; the join keeps the page to that workspace all the
/// same. A task's messages are read through their own index.
fn list_messages_sql(filter: MessageFilter) -> String {
    // Without statistics the planner would walk the whole thread by its
    // primary key; a task's messages are few, and have their own index.
    let (index, task) = if filter.task.is_some() {
        (" INDEXED BY message_task_id_idx", " AND m.task_id = ?5")
    } else {
        ("", "")
    };
    let since = match (filter.task, filter.since) {
        (Some(_), Some(_)) => " AND m.sent_at > ?6",
        (None, Some(_)) => " AND m.sent_at > ?5",
        (_, None) => "",
    };
    format!(
        "SELECT {MESSAGE_COLUMNS}, t.attachment_count
         FROM ticket t JOIN message m{index} ON m.ticket_id = t.id
         WHERE t.id = ?1 AND t.workspace_id = ?4 AND m.seq > ?2{task}{since} ORDER BY m.seq LIMIT ?3"
    )
}

/// A message, and whether its ticket had files when it was read (in the
/// same statement, so the two agree: a file attached since the ticket was
/// located is not missed).
fn message_and_files(row: &rusqlite::Row<'_>) -> rusqlite::Result<(Message, bool)> {
    Ok((
        rows::message(row)?,
        row.get::<_, i64>(MESSAGE_COLUMN_COUNT)? > 0,
    ))
}

pub(super) fn list_messages(
    conn: &Connection,
    actor: &Actor,
    reference: TicketRef,
    filter: MessageFilter,
    page: PageRequest<MessageCursor>,
) -> Result<Page<Message, MessageCursor>, StoreError> {
    let ticket = locate(conn, actor, reference)?;
    let after = page.after.map_or(0, |cursor| cursor.seq);
    let sql = list_messages_sql(filter);
    let mut args = vec![
        Value::Text(ticket.id.key()),
        Value::Integer(after),
        Value::Integer(i64::from(page.size.get()) + 1),
        Value::Text(actor.workspace_id.key()),
    ];
    if let Some(task) = filter.task {
        args.push(Value::Text(task.key()));
    }
    if let Some(since) = filter.since {
        args.push(Value::Integer(since.millis()));
    }
    let read = conn
        .prepare_cached(&sql)
        .and_then(|mut select| {
            select
                .query_map(params_from_iter(args), message_and_files)?
                .collect::<rusqlite::Result<Vec<_>>>()
        })
        .map_err(map_error)?;
    let has_files = read.first().is_some_and(|(_, files)| *files);
    let mut messages: Vec<Message> = read.into_iter().map(|(message, _)| message).collect();
    // A thread without files is read without looking for them.
    if has_files {
        super::uploads::fill_attachments(conn, &mut messages)?;
    }
    Ok(Page::from_overfetch(messages, page.size, |message| {
        MessageCursor { seq: message.seq }
    }))
}

pub(super) fn find_message(
    conn: &Connection,
    actor: &Actor,
    reference: TicketRef,
    message: MessageId,
) -> Result<Message, StoreError> {
    let ticket = locate(conn, actor, reference)?;
    let sql = format!(
        "SELECT {MESSAGE_COLUMNS}, t.attachment_count FROM ticket t JOIN message m ON m.ticket_id = t.id
         WHERE m.id = ?1 AND t.id = ?2 AND t.workspace_id = ?3"
    );
    let (mut found, has_files) = conn
        .prepare_cached(&sql)
        .and_then(|mut select| {
            select.query_row(
                params![message.key(), ticket.id.key(), actor.workspace_id.key()],
                message_and_files,
            )
        })
        .map_err(map_error)?;
    if has_files {
        super::uploads::fill_attachments(conn, std::slice::from_mut(&mut found))?;
    }
    Ok(found)
}

pub(super) fn apply_action(
    conn: &Connection,
    actor: &Actor,
    reference: TicketRef,
    action: TicketAction,
    at: Timestamp,
) -> Result<Ticket, StoreError> {
    let thread = locate(conn, actor, reference)?;
    let ActionPlan { at, next } = plan::plan_action(&thread, action, at)?;
    if let Some(next) = next {
        conn.prepare_cached(
            "UPDATE ticket SET status = ?2, resolved_at = ?3, closed_at = ?4,
                    updated_at = max(updated_at, ?5)
             WHERE id = ?1",
        )
        .and_then(|mut update| {
            update.execute(params![
                thread.id.key(),
                next.status.as_str(),
                next.resolved_at.map(Timestamp::millis),
                next.closed_at.map(Timestamp::millis),
                at.millis(),
            ])
        })
        .map_err(map_error)?;
    }
    ticket_by_id(conn, actor, thread.id)
}

#[async_trait]
impl TicketStore for SqliteStore {
    async fn create_ticket(
        &self,
        actor: &Actor,
        new: NewTicket,
        completion: Option<Completion<Ticket>>,
    ) -> Result<Written<Ticket>, StoreError> {
        let actor = actor.clone();
        self.writer
            .write(move |conn| {
                super::idempotency::completing(conn, completion.as_ref(), |conn| {
                    create_ticket(conn, &actor, &new)
                })
            })
            .await
    }

    async fn find_ticket(&self, actor: &Actor, ticket: TicketRef) -> Result<Ticket, StoreError> {
        self.readers.read(|conn| find_ticket(conn, actor, ticket))
    }

    async fn list_tickets(
        &self,
        actor: &Actor,
        filter: TicketFilter,
        page: PageRequest<TicketCursor>,
    ) -> Result<Page<Ticket, TicketCursor>, StoreError> {
        self.readers
            .read(|conn| list_tickets(conn, actor, filter, page))
    }

    async fn list_ticket_rows(
        &self,
        actor: &Actor,
        query: &TicketRowQuery,
    ) -> Result<TicketRows, StoreError> {
        self.readers
            .read_snapshot(|conn| list_ticket_rows(conn, actor, query))
    }

    async fn mark_read(&self, actor: &Actor, ticket: TicketId, seq: i64) -> Result<(), StoreError> {
        // A view that moves nothing (the marker is there already) does not
        // queue for the single writer.
        let user = actor.user_id;
        let marker: Option<i64> = self.readers.read(|conn| {
            conn.prepare_cached(
                "SELECT last_read_seq FROM ticket_read WHERE ticket_id = ?1 AND user_id = ?2",
            )
            .and_then(|mut select| {
                select
                    .query_row(params![ticket.key(), user.key()], |row| row.get(0))
                    .optional()
            })
            .map_err(map_error)
        })?;
        if marker.is_some_and(|marker| marker >= seq) {
            return Ok(());
        }
        self.writer
            .write(move |conn| mark_read(conn, ticket, user, seq))
            .await
    }

    async fn append_message(
        &self,
        actor: &Actor,
        ticket: TicketRef,
        new: NewMessage,
        completion: Option<Completion<Message>>,
    ) -> Result<Written<Message>, StoreError> {
        let actor = actor.clone();
        self.writer
            .write(move |conn| {
                super::idempotency::completing(conn, completion.as_ref(), |conn| {
                    append_message(conn, &actor, ticket, &new)
                })
            })
            .await
    }

    async fn list_messages_where(
        &self,
        actor: &Actor,
        ticket: TicketRef,
        filter: MessageFilter,
        page: PageRequest<MessageCursor>,
    ) -> Result<Page<Message, MessageCursor>, StoreError> {
        self.readers
            .read_snapshot(|conn| list_messages(conn, actor, ticket, filter, page))
    }

    async fn find_message(
        &self,
        actor: &Actor,
        ticket: TicketRef,
        message: MessageId,
    ) -> Result<Message, StoreError> {
        self.readers
            .read_snapshot(|conn| find_message(conn, actor, ticket, message))
    }

    async fn apply_action(
        &self,
        actor: &Actor,
        ticket: TicketRef,
        action: TicketAction,
        at: Timestamp,
        completion: Option<Completion<Ticket>>,
    ) -> Result<Written<Ticket>, StoreError> {
        let actor = actor.clone();
        self.writer
            .write(move |conn| {
                super::idempotency::completing(conn, completion.as_ref(), |conn| {
                    apply_action(conn, &actor, ticket, action, at)
                })
            })
            .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::access::Role;
    use crate::core::access::TicketScope;
    use crate::core::id::{UserId, WorkspaceId};
    use crate::core::page::PageSize;
    use crate::store::sqlite::query_plans::{migrated, plan};

    /// A cached keyset query runs again with another page size without
    /// being prepared again.
    #[test]
    fn a_new_limit_does_not_prepare_a_cached_query_again() {
        let conn = migrated();
        crate::store::sqlite::configure(&conn, crate::store::sqlite::Role::Reader)
            .expect("configured");
        let sql = list_messages_sql(MessageFilter::default());
        for limit in [26, 11, 101, 26] {
            let mut select = conn.prepare_cached(&sql).expect("valid SQL");
            let rows = select
                .query_map(params!["x", 0, limit, "w"], |_| Ok(()))
                .expect("a query")
                .count();
            assert_eq!(rows, 0);
            assert_eq!(
                select.get_status(rusqlite::StatementStatus::RePrepare),
                0,
                "prepared again for LIMIT {limit}"
            );
        }
    }

    /// Every list shape walks an index in order: no table scan, no sort.
    #[test]
    fn every_list_query_is_an_ordered_index_walk() {
        let conn = migrated();
        let cursor = TicketCursor {
            updated_at: Timestamp::from_millis(1),
            id: TicketId::generate(),
        };
        for role in [Role::Customer, Role::Staff] {
            let actor = Actor {
                workspace_id: WorkspaceId::generate(),
                user_id: UserId::generate(),
                role,
                name: "x".into(),
                scope: TicketScope::ByRole,
            };
            for status in [None, Some(TicketStatus::Open)] {
                for after in [None, Some(cursor)] {
                    let page = PageRequest {
                        size: PageSize::DEFAULT,
                        after,
                    };
                    let (sql, args) = list_tickets_query(&actor, TicketFilter { status }, page);
                    let plan = plan(&conn, &sql, args);
                    // A customer's list walks their own tickets, not the
                    // workspace's, though it filters by workspace too.
                    let index = match role {
                        Role::Customer => "USING INDEX ticket_customer_id_",
                        _ => "USING INDEX ticket_workspace_id_",
                    };
                    assert!(plan.contains(index), "{role:?} {status:?}: {plan}");
                    assert!(
                        !plan.contains("TEMP B-TREE"),
                        "{role:?} {status:?} sorts: {plan}"
                    );
                    assert!(
                        !plan.contains("SCAN t"),
                        "{role:?} {status:?} scans: {plan}"
                    );
                }
            }
        }
        let messages = plan(
            &conn,
            &list_messages_sql(MessageFilter::default()),
            vec![
                Value::Text("x".into()),
                Value::Integer(0),
                Value::Integer(26),
                Value::Text("w".into()),
            ],
        );
        assert!(
            messages.contains("USING PRIMARY KEY (ticket_id=? AND seq>?)"),
            "{messages}"
        );
        assert!(!messages.contains("TEMP B-TREE"), "{messages}");
        // A task's messages come through their own index, in order.
        let task = ticketd_task();
        let tasks = plan(
            &conn,
            &list_messages_sql(MessageFilter {
                task: Some(task),
                since: None,
            }),
            vec![
                Value::Text("x".into()),
                Value::Integer(0),
                Value::Integer(26),
                Value::Text("w".into()),
                Value::Text(task.key()),
            ],
        );
        assert!(tasks.contains("message_task_id_idx"), "{tasks}");
        assert!(!tasks.contains("TEMP B-TREE"), "{tasks}");
    }

    fn ticketd_task() -> crate::core::id::TaskRef {
        crate::core::id::TaskRef::from_uuid("0190a5b6-7c8d-7e9f-8a0b-1c2d3e4f5a6b").expect("a UUID")
    }

    /// Locating a ticket for a thread or a write, with the customer join,
    /// seeks the ticket by its key and its customer by theirs: no scan.
    #[test]
    fn locating_a_ticket_seeks_it_and_its_customer() {
        let conn = migrated();
        for (reference, index) in [
            (
                TicketRef::Id(TicketId::generate()),
                "SEARCH t USING INDEX sqlite_autoindex_ticket_1 (id=?)",
            ),
            (
                TicketRef::Number(1),
                "SEARCH t USING INDEX sqlite_autoindex_ticket_2 (workspace_id=? AND number=?)",
            ),
        ] {
            for customer in [Value::Null, Value::Text("c".into())] {
                let plan = plan(
                    &conn,
                    &locate_sql(reference),
                    vec![
                        reference_value(reference),
                        Value::Text("w".into()),
                        customer,
                    ],
                );
                assert!(plan.contains(index), "{reference:?}: {plan}");
                assert!(
                    plan.contains("SEARCH c USING INDEX sqlite_autoindex_principal_1 (id=?)"),
                    "{reference:?}: {plan}"
                );
                assert!(!plan.contains("SCAN"), "{reference:?} scans: {plan}");
            }
        }
    }
}
