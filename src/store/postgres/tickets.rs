//! Tickets and messages: the SQL behind the support API.
//!
//! Writes lock the rows they build on (`FOR UPDATE` on the ticket, an
//! `UPDATE … RETURNING` on the workspace's counter) inside one transaction,
//! so concurrent writers on any number of nodes take turns per ticket and
//! per workspace.

use deadpool_postgres::{GenericClient, Object};
use tokio_postgres::types::ToSql;

use crate::core::access::{Actor, Role};
use crate::core::id::{MessageId, TicketId};
use crate::core::lifecycle::{self, LifecycleState, TicketAction, TicketEvent, Transition};
use crate::core::message::{Message, NewMessage};
use crate::core::page::{MessageCursor, Page, PageRequest, TicketCursor};
use crate::core::ticket::{NewTicket, Ticket, TicketFilter, TicketRef, TicketStatus, UserSummary};
use crate::core::time::Timestamp;
use crate::store::StoreError;
use crate::store::postgres::rows::{
    self, MESSAGE_COLUMNS, TICKET_COLUMNS, TICKET_JOIN, get, optional_timestamp, parsed, timestamp,
    to_sql_time,
};
use crate::store::postgres::{execute, map_error, query, query_opt};

/// A ticket found for a write: what the lifecycle and the thread need.
struct Located {
    id: TicketId,
    state: LifecycleState,
    message_count: i64,
    last_message_at: Timestamp,
}

/// Whether a lookup only reads, or locks the ticket for the transaction.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Lock {
    None,
    ForUpdate,
}

/// The customer a visibility check is restricted to, as stored
/// ([`Actor::visible_customer`]).
fn restricted_to(actor: &Actor) -> Option<String> {
    actor.visible_customer().map(|customer| customer.key())
}

/// A ticket reference as a query argument.
enum Reference {
    Id(String),
    Number(i64),
}

impl Reference {
    fn new(reference: TicketRef) -> Self {
        match reference {
            TicketRef::Id(id) => Reference::Id(id.key()),
            TicketRef::Number(number) => Reference::Number(number),
        }
    }

    /// The condition on `column_prefix`'s id or number, as `$1`.
    fn condition(&self, column_prefix: &str) -> String {
        match self {
            Reference::Id(_) => format!("{column_prefix}id = $1"),
            Reference::Number(_) => format!("{column_prefix}number = $1"),
        }
    }

    fn argument(&self) -> &(dyn ToSql + Sync) {
        match self {
            Reference::Id(key) => key,
            Reference::Number(number) => number,
        }
    }
}

/// The ticket `reference` names in the actor's workspace, if the actor can
/// see it. Customers' lookups of other customers' tickets are `NotFound`,
/// exactly like lookups of tickets that do not exist.
async fn locate<C: GenericClient>(
    client: &C,
    actor: &Actor,
    reference: TicketRef,
    lock: Lock,
) -> Result<Located, StoreError> {
    let reference = Reference::new(reference);
    // The rule `find_ticket` applies, through the same join: a ticket that
    // neither finds nor lists (one naming a customer of another workspace)
    // is not located for a thread or a write. Only the ticket is locked.
    let for_update = if lock == Lock::ForUpdate {
        " FOR UPDATE OF t"
    } else {
        ""
    };
    let sql = format!(
        "SELECT t.id, t.status, t.resolved_at, t.closed_at, t.message_count, t.last_message_at
         FROM {TICKET_JOIN}
         WHERE {} AND t.workspace_id = $2 AND ($3::text IS NULL OR t.customer_id = $3){for_update}",
        reference.condition("t.")
    );
    let row = query_opt(
        client,
        &sql,
        &[
            reference.argument(),
            &actor.workspace_id.key(),
            &restricted_to(actor),
        ],
    )
    .await?
    .ok_or(StoreError::NotFound)?;
    Ok(Located {
        id: parsed(&row, 0, TicketId::from_key)?,
        state: LifecycleState {
            status: parsed(&row, 1, TicketStatus::parse)?,
            resolved_at: optional_timestamp(&row, 2)?,
            closed_at: optional_timestamp(&row, 3)?,
        },
        message_count: get(&row, 4)?,
        last_message_at: timestamp(&row, 5)?,
    })
}

async fn ticket_by_id<C: GenericClient>(
    client: &C,
    actor: &Actor,
    id: TicketId,
) -> Result<Ticket, StoreError> {
    let sql = format!(
        "SELECT {TICKET_COLUMNS} FROM {TICKET_JOIN} WHERE t.id = $1 AND t.workspace_id = $2"
    );
    let row = query_opt(client, &sql, &[&id.key(), &actor.workspace_id.key()])
        .await?
        .ok_or(StoreError::NotFound)?;
    rows::ticket(&row)
}

pub(super) async fn find_ticket(
    client: &Object,
    actor: &Actor,
    reference: TicketRef,
) -> Result<Ticket, StoreError> {
    let reference = Reference::new(reference);
    let sql = format!(
        "SELECT {TICKET_COLUMNS} FROM {TICKET_JOIN}
         WHERE {} AND t.workspace_id = $2 AND ($3::text IS NULL OR t.customer_id = $3)",
        reference.condition("t.")
    );
    let row = query_opt(
        client,
        &sql,
        &[
            reference.argument(),
            &actor.workspace_id.key(),
            &restricted_to(actor),
        ],
    )
    .await?
    .ok_or(StoreError::NotFound)?;
    rows::ticket(&row)
}

/// The keyset query for a ticket list. Each shape has an index whose
/// backward walk yields rows already in order (see the migration), so a page
/// costs one index seek plus `limit` steps however many tickets there are.
///
/// A customer's list is also restricted to the actor's workspace (`$1`): a
/// ticket of another workspace naming the customer (which only a damaged or
/// edited database holds) is not theirs to see.
fn list_tickets_sql(
    actor: &Actor,
    filter: TicketFilter,
    page: PageRequest<TicketCursor>,
) -> String {
    let owner = if restricted_to(actor).is_some() {
        "t.workspace_id = $1 AND t.customer_id = $2"
    } else {
        "t.workspace_id = $1"
    };
    let mut sql = format!("SELECT {TICKET_COLUMNS} FROM {TICKET_JOIN} WHERE {owner}");
    let mut next = if restricted_to(actor).is_some() { 3 } else { 2 };
    if filter.status.is_some() {
        sql.push_str(&format!(" AND t.status = ${next}"));
        next += 1;
    }
    if page.after.is_some() {
        sql.push_str(&format!(
            " AND (t.updated_at, t.id) < (${}, ${})",
            next,
            next + 1
        ));
        next += 2;
    }
    sql.push_str(&format!(
        " ORDER BY t.updated_at DESC, t.id DESC LIMIT ${next}"
    ));
    sql
}

pub(super) async fn list_tickets(
    client: &Object,
    actor: &Actor,
    filter: TicketFilter,
    page: PageRequest<TicketCursor>,
) -> Result<Page<Ticket, TicketCursor>, StoreError> {
    let sql = list_tickets_sql(actor, filter, page);
    let workspace = actor.workspace_id.key();
    let customer = restricted_to(actor);
    let status = filter.status.map(TicketStatus::as_str);
    let after = page
        .after
        .map(|cursor| (to_sql_time(cursor.updated_at), cursor.id.key()));
    let limit = i64::from(page.size.get()) + 1;
    let mut args: Vec<&(dyn ToSql + Sync)> = vec![&workspace];
    if let Some(customer) = &customer {
        args.push(customer);
    }
    if let Some(status) = &status {
        args.push(status);
    }
    if let Some((updated_at, id)) = &after {
        args.push(updated_at);
        args.push(id);
    }
    args.push(&limit);
    let tickets = query(client, &sql, &args)
        .await?
        .iter()
        .map(rows::ticket)
        .collect::<Result<Vec<_>, _>>()?;
    Ok(Page::from_overfetch(tickets, page.size, |ticket| {
        TicketCursor {
            updated_at: ticket.updated_at,
            id: ticket.id,
        }
    }))
}

pub(super) async fn create_ticket(
    client: &mut Object,
    actor: &Actor,
    new: NewTicket,
) -> Result<Ticket, StoreError> {
    let tx = client.transaction().await.map_err(map_error)?;
    let written = create_ticket_in(&tx, actor, new).await?;
    tx.commit().await.map_err(map_error)?;
    Ok(written)
}

/// [`create_ticket`] inside the caller's transaction `tx`.
pub(super) async fn create_ticket_in<C: GenericClient>(
    tx: &C,
    actor: &Actor,
    new: NewTicket,
) -> Result<Ticket, StoreError> {
    let customer = match new.on_behalf_of {
        None if actor.role == Role::Customer => UserSummary {
            id: actor.user_id,
            name: actor.name.clone(),
        },
        None => return Err(StoreError::CustomerNotFound),
        Some(customer_id) => {
            let row = query_opt(
                tx,
                "SELECT name FROM principal WHERE id = $1 AND workspace_id = $2 AND role = 'customer'",
                &[&customer_id.key(), &actor.workspace_id.key()],
            )
            .await?
            .ok_or(StoreError::CustomerNotFound)?;
            UserSummary {
                id: customer_id,
                name: get(&row, 0)?,
            }
        }
    };
    // The counter's row lock is held to commit: concurrent creations in one
    // workspace, on any node, take consecutive numbers in turn.
    let number: i64 = query_opt(
        tx,
        "UPDATE workspace SET last_ticket_number = last_ticket_number + 1
         WHERE id = $1 RETURNING last_ticket_number",
        &[&actor.workspace_id.key()],
    )
    .await?
    .ok_or(StoreError::NotFound)
    .and_then(|row| get(&row, 0))?;
    let state = LifecycleState::opened_by(actor.role);
    let at = new.first_message.sent_at;
    execute(
        tx,
        "INSERT INTO ticket (id, workspace_id, number, customer_id, subject, status, priority,
                             created_at, updated_at, last_message_at, message_count)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $8, $8, 1)",
        &[
            &new.id.key(),
            &actor.workspace_id.key(),
            &number,
            &customer.id.key(),
            &new.subject.as_str(),
            &state.status.as_str(),
            &new.priority.as_str(),
            &to_sql_time(at),
        ],
    )
    .await?;
    insert_message(tx, actor, new.id, 1, &new.first_message, at).await?;
    Ok(Ticket {
        id: new.id,
        workspace_id: actor.workspace_id,
        number,
        subject: new.subject.into_string(),
        status: state.status,
        priority: new.priority,
        customer,
        created_at: at,
        updated_at: at,
        last_message_at: at,
        message_count: 1,
        resolved_at: None,
        closed_at: None,
    })
}

async fn insert_message<C: GenericClient>(
    client: &C,
    actor: &Actor,
    ticket_id: TicketId,
    seq: i64,
    new: &NewMessage,
    sent_at: Timestamp,
) -> Result<Message, StoreError> {
    execute(
        client,
        "INSERT INTO message (id, ticket_id, seq, sender_id, sender_role, sender_name,
                              body, body_format, encrypted, sent_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
        &[
            &new.id.key(),
            &ticket_id.key(),
            &seq,
            &actor.user_id.key(),
            &actor.role.as_str(),
            &actor.name,
            &new.body.as_str(),
            &new.body_format.as_str(),
            &new.encrypted,
            &to_sql_time(sent_at),
        ],
    )
    .await?;
    Ok(Message {
        id: new.id,
        ticket_id,
        seq,
        sent_at,
        body: new.body.as_str().to_owned(),
        body_format: new.body_format,
        encrypted: new.encrypted,
        sender_id: actor.user_id,
        sender_role: actor.role,
        sender_name: actor.name.clone(),
    })
}

pub(super) async fn append_message(
    client: &mut Object,
    actor: &Actor,
    reference: TicketRef,
    new: NewMessage,
) -> Result<Message, StoreError> {
    let tx = client.transaction().await.map_err(map_error)?;
    let written = append_message_in(&tx, actor, reference, new).await?;
    tx.commit().await.map_err(map_error)?;
    Ok(written)
}

/// [`append_message`] inside the caller's transaction `tx`.
pub(super) async fn append_message_in<C: GenericClient>(
    tx: &C,
    actor: &Actor,
    reference: TicketRef,
    new: NewMessage,
) -> Result<Message, StoreError> {
    let ticket = locate(tx, actor, reference, Lock::ForUpdate).await?;
    // A thread's times never run backwards, even if clocks do.
    let sent_at = new.sent_at.max(ticket.last_message_at);
    let next = match lifecycle::transition(ticket.state, TicketEvent::Replied(actor.role), sent_at)?
    {
        Transition::To(next) => next,
        Transition::Unchanged => ticket.state,
    };
    let seq = ticket.message_count + 1;
    let message = insert_message(tx, actor, ticket.id, seq, &new, sent_at).await?;
    execute(
        tx,
        "UPDATE ticket SET status = $2, resolved_at = $3, closed_at = $4,
                updated_at = greatest(updated_at, $5), last_message_at = $5, message_count = $6
         WHERE id = $1",
        &[
            &ticket.id.key(),
            &next.status.as_str(),
            &next.resolved_at.map(to_sql_time),
            &next.closed_at.map(to_sql_time),
            &to_sql_time(sent_at),
            &seq,
        ],
    )
    .await?;
    Ok(message)
}

/// A page of a thread. The ticket was located in the actor's workspace;
/// the join keeps the page to that workspace all the same.
fn list_messages_sql() -> String {
    format!(
        "SELECT {MESSAGE_COLUMNS} FROM ticket t JOIN message m ON m.ticket_id = t.id
         WHERE t.id = $1 AND t.workspace_id = $4 AND m.seq > $2 ORDER BY m.seq LIMIT $3"
    )
}

pub(super) async fn list_messages(
    client: &Object,
    actor: &Actor,
    reference: TicketRef,
    page: PageRequest<MessageCursor>,
) -> Result<Page<Message, MessageCursor>, StoreError> {
    let ticket = locate(client, actor, reference, Lock::None).await?;
    let after = page.after.map_or(0, |cursor| cursor.seq);
    let limit = i64::from(page.size.get()) + 1;
    let messages = query(
        client,
        &list_messages_sql(),
        &[&ticket.id.key(), &after, &limit, &actor.workspace_id.key()],
    )
    .await?
    .iter()
    .map(rows::message)
    .collect::<Result<Vec<_>, _>>()?;
    Ok(Page::from_overfetch(messages, page.size, |message| {
        MessageCursor { seq: message.seq }
    }))
}

pub(super) async fn find_message(
    client: &Object,
    actor: &Actor,
    reference: TicketRef,
    message: MessageId,
) -> Result<Message, StoreError> {
    let ticket = locate(client, actor, reference, Lock::None).await?;
    let sql = format!(
        "SELECT {MESSAGE_COLUMNS} FROM ticket t JOIN message m ON m.ticket_id = t.id
         WHERE m.id = $1 AND t.id = $2 AND t.workspace_id = $3"
    );
    let row = query_opt(
        client,
        &sql,
        &[&message.key(), &ticket.id.key(), &actor.workspace_id.key()],
    )
    .await?
    .ok_or(StoreError::NotFound)?;
    rows::message(&row)
}

pub(super) async fn apply_action(
    client: &mut Object,
    actor: &Actor,
    reference: TicketRef,
    action: TicketAction,
    at: Timestamp,
) -> Result<Ticket, StoreError> {
    let tx = client.transaction().await.map_err(map_error)?;
    let written = apply_action_in(&tx, actor, reference, action, at).await?;
    tx.commit().await.map_err(map_error)?;
    Ok(written)
}

/// [`apply_action`] inside the caller's transaction `tx`.
pub(super) async fn apply_action_in<C: GenericClient>(
    tx: &C,
    actor: &Actor,
    reference: TicketRef,
    action: TicketAction,
    at: Timestamp,
) -> Result<Ticket, StoreError> {
    let ticket = locate(tx, actor, reference, Lock::ForUpdate).await?;
    // Like a reply, an action never predates the thread's last message.
    let at = at.max(ticket.last_message_at);
    if let Transition::To(next) = lifecycle::transition(ticket.state, action.event(), at)? {
        execute(
            tx,
            "UPDATE ticket SET status = $2, resolved_at = $3, closed_at = $4,
                    updated_at = greatest(updated_at, $5)
             WHERE id = $1",
            &[
                &ticket.id.key(),
                &next.status.as_str(),
                &next.resolved_at.map(to_sql_time),
                &next.closed_at.map(to_sql_time),
                &to_sql_time(at),
            ],
        )
        .await?;
    }
    ticket_by_id(tx, actor, ticket.id).await
}
