//! Tickets and messages: the SQL behind the support API.
//!
//! Writes lock the rows they build on (`FOR UPDATE` on the ticket, an
//! `UPDATE … RETURNING` on the workspace's counter) inside one transaction,
//! so concurrent writers on any number of nodes take turns per ticket and
//! per workspace.

use deadpool_postgres::{GenericClient, Object};
use tokio_postgres::types::ToSql;

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
use crate::store::postgres::PostgresStore;
use crate::store::postgres::idempotency;
use crate::store::postgres::rows::{
    self, MESSAGE_COLUMN_COUNT, MESSAGE_COLUMNS, TICKET_COLUMNS, TICKET_JOIN, get,
    optional_timestamp, parsed, timestamp, to_sql_time,
};
use crate::store::postgres::{execute, query, query_opt};
use crate::store::{StoreError, Written};

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
) -> Result<Thread, StoreError> {
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
        "SELECT t.id, t.status, t.resolved_at, t.closed_at, t.message_count, t.last_message_at,
                t.attachment_count, t.attachment_bytes
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
    Ok(Thread {
        id: parsed(&row, 0, TicketId::from_key)?,
        state: LifecycleState {
            status: parsed(&row, 1, TicketStatus::parse)?,
            resolved_at: optional_timestamp(&row, 2)?,
            closed_at: optional_timestamp(&row, 3)?,
        },
        message_count: get(&row, 4)?,
        last_message_at: timestamp(&row, 5)?,
        attachment_count: get(&row, 6)?,
        attachment_bytes: u64::try_from(get::<i64>(&row, 7)?).unwrap_or(0),
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

/// A slice of the tickets the actor can see, by offset, with their unread
/// counts and previews, and how many there are. The visibility rule is
/// [`list_tickets_sql`]'s; `$3` is every status asked for, or NULL for any.
pub(super) async fn list_ticket_rows(
    client: &Object,
    actor: &Actor,
    wanted: &TicketRowQuery,
) -> Result<TicketRows, StoreError> {
    let sql = format!(
        "SELECT {TICKET_COLUMNS}, t.message_count - coalesce(r.last_read_seq, 0),
                lm.encrypted, left(lm.body, $4)
         FROM {TICKET_JOIN}
         LEFT JOIN ticket_read r ON r.ticket_id = t.id AND r.user_id = $5
         LEFT JOIN message lm ON lm.ticket_id = t.id AND lm.seq = t.message_count
         WHERE t.workspace_id = $1 AND ($2::text IS NULL OR t.customer_id = $2)
           AND ($3::text[] IS NULL OR t.status = ANY($3))
           AND ($8::text IS NULL OR t.subject ILIKE $8 ESCAPE '\\' OR t.number = $9)
         ORDER BY t.updated_at DESC, t.id DESC LIMIT $6 OFFSET $7"
    );
    let statuses: Option<Vec<&str>> = (!wanted.statuses.is_empty()).then(|| {
        wanted
            .statuses
            .iter()
            .map(|status| status.as_str())
            .collect()
    });
    let preview_chars = i32::try_from(MessagePreview::CHARS + 1).unwrap_or(i32::MAX);
    let limit = i64::from(wanted.limit);
    let offset = i64::try_from(wanted.offset).unwrap_or(i64::MAX);
    let customer = restricted_to(actor);
    let search = Search::of(wanted);
    let rows = query(
        client,
        &sql,
        &[
            &actor.workspace_id.key(),
            &customer,
            &statuses,
            &preview_chars,
            &actor.user_id.key(),
            &limit,
            &offset,
            &search.pattern,
            &search.number,
        ],
    )
    .await?
    .iter()
    .map(|row| {
        let sealed: Option<bool> = get(row, 17)?;
        Ok(TicketRow {
            ticket: rows::ticket(row)?,
            unread_count: get::<i64>(row, 16)?.max(0),
            last_message: if sealed.unwrap_or(false) {
                MessagePreview::Sealed
            } else {
                MessagePreview::Text(get::<Option<String>>(row, 18)?.unwrap_or_default())
            },
        })
    })
    .collect::<Result<Vec<_>, StoreError>>()?;
    let total = count_visible(client, actor, statuses, &search).await?;
    Ok(TicketRows {
        rows,
        total: u64::try_from(total).unwrap_or(0),
    })
}

/// A row list's search, as query arguments: the `ILIKE` pattern (NULL for
/// no search) and the ticket number it may be.
struct Search {
    pattern: Option<String>,
    number: i64,
}

impl Search {
    fn of(query: &TicketRowQuery) -> Self {
        Self {
            pattern: query.search.as_deref().map(like_pattern),
            number: query
                .search
                .as_deref()
                .and_then(|text| text.parse().ok())
                .unwrap_or(-1),
        }
    }
}

/// How many tickets the actor can see in `statuses` (any, for `None`)
/// that `search` finds.
async fn count_visible(
    client: &Object,
    actor: &Actor,
    statuses: Option<Vec<&str>>,
    search: &Search,
) -> Result<i64, StoreError> {
    let row = query_opt(
        client,
        &format!(
            "SELECT count(*) FROM {TICKET_JOIN}
             WHERE t.workspace_id = $1 AND ($2::text IS NULL OR t.customer_id = $2)
               AND ($3::text[] IS NULL OR t.status = ANY($3))
               AND ($4::text IS NULL OR t.subject ILIKE $4 ESCAPE '\\' OR t.number = $5)"
        ),
        &[
            &actor.workspace_id.key(),
            &restricted_to(actor),
            &statuses,
            &search.pattern,
            &search.number,
        ],
    )
    .await?
    .ok_or_else(|| StoreError::other("a count returned no row"))?;
    get(&row, 0)
}

/// Opens a ticket, completing `completion`'s record if there is one, in
/// one transaction.
pub(super) async fn create_ticket(
    client: &mut Object,
    actor: &Actor,
    new: NewTicket,
    completion: Option<Completion<Ticket>>,
) -> Result<Written<Ticket>, StoreError> {
    let tx = idempotency::begin(client, completion.as_ref()).await?;
    let customer = match plan::customer_of_new_ticket(actor, &new) {
        Some(NewTicketCustomer::Actor(customer)) => customer,
        Some(NewTicketCustomer::Named(customer_id)) => {
            let row = query_opt(
                &tx,
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
        None => return Err(StoreError::CustomerNotFound),
    };
    // The counter's row lock is held to commit: concurrent creations in one
    // workspace, on any node, take consecutive numbers in turn.
    let number: i64 = query_opt(
        &tx,
        "UPDATE workspace SET last_ticket_number = last_ticket_number + 1
         WHERE id = $1 RETURNING last_ticket_number",
        &[&actor.workspace_id.key()],
    )
    .await?
    .ok_or(StoreError::NotFound)
    .and_then(|row| get(&row, 0))?;
    let OpenPlan {
        ticket,
        first_message,
    } = plan::plan_open(actor, &new, customer, number);
    execute(
        &tx,
        "INSERT INTO ticket (id, workspace_id, number, customer_id, subject, status, priority,
                             created_at, updated_at, last_message_at, message_count, category,
                             booking_id)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $8, $8, $9, $10, $11)",
        &[
            &ticket.id.key(),
            &ticket.workspace_id.key(),
            &ticket.number,
            &ticket.customer.id.key(),
            &ticket.subject,
            &ticket.status.as_str(),
            &ticket.priority.as_str(),
            &to_sql_time(ticket.created_at),
            &ticket.message_count,
            &ticket.category.as_ref().map(Category::as_str),
            &ticket.booking_id,
        ],
    )
    .await?;
    insert_message(&tx, &first_message).await?;
    mark_read(&tx, ticket.id, actor.user_id, first_message.seq).await?;
    super::uploads::attach(&tx, actor, ticket.id, 0, &first_message, &new.first_message).await?;
    idempotency::commit(tx, completion, ticket).await
}

/// Moves `user`'s read marker on `ticket` up to `seq` (never back).
pub(super) async fn mark_read<C: GenericClient>(
    client: &C,
    ticket: TicketId,
    user: UserId,
    seq: i64,
) -> Result<(), StoreError> {
    execute(
        client,
        "INSERT INTO ticket_read (ticket_id, user_id, last_read_seq) VALUES ($1, $2, $3)
         ON CONFLICT (ticket_id, user_id)
         DO UPDATE SET last_read_seq = excluded.last_read_seq
         WHERE excluded.last_read_seq > ticket_read.last_read_seq",
        &[&ticket.key(), &user.key(), &seq],
    )
    .await
    .map(drop)
}

/// Inserts one message row as given: a reply's, a new ticket's first
/// message, or an imported one; returns its integer id, the one it was
/// given or, for 0, the sequence's next.
pub(super) async fn insert_message<C: GenericClient>(
    client: &C,
    message: &Message,
) -> Result<i64, StoreError> {
    let row = query_opt(
        client,
        "INSERT INTO message (id, ticket_id, seq, sender_id, sender_role, sender_name,
                              body, body_format, encrypted, sent_at, numeric_id, task_id)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10,
                 coalesce($11, nextval('message_numeric_id_seq')), $12)
         RETURNING numeric_id",
        &[
            &message.id.key(),
            &message.ticket_id.key(),
            &message.seq,
            &message.sender_id.key(),
            &message.sender_role.as_str(),
            &message.sender_name,
            &message.body,
            &message.body_format.as_str(),
            &message.encrypted,
            &to_sql_time(message.sent_at),
            &(message.numeric_id > 0).then_some(message.numeric_id),
            &message.task.map(|task| task.key()),
        ],
    )
    .await?
    .ok_or_else(|| StoreError::other("the insert returned no row"))?;
    get(&row, 0)
}

/// Appends a message, completing `completion`'s record if there is one, in
/// one transaction.
pub(super) async fn append_message(
    client: &mut Object,
    actor: &Actor,
    reference: TicketRef,
    new: NewMessage,
    completion: Option<Completion<Message>>,
) -> Result<Written<Message>, StoreError> {
    let tx = idempotency::begin(client, completion.as_ref()).await?;
    let thread = locate(&tx, actor, reference, Lock::ForUpdate).await?;
    let ReplyPlan { mut message, next } = plan::plan_reply(&thread, actor, &new)?;
    message.numeric_id = insert_message(&tx, &message).await?;
    // Writing in a thread is reading it: the sender's own message is never
    // unread to them.
    mark_read(&tx, thread.id, actor.user_id, message.seq).await?;
    message.attachments = super::uploads::attach(
        &tx,
        actor,
        thread.id,
        thread.attachment_bytes,
        &message,
        &new,
    )
    .await?;
    execute(
        &tx,
        "UPDATE ticket SET status = $2, resolved_at = $3, closed_at = $4,
                updated_at = greatest(updated_at, $5), last_message_at = $5, message_count = $6
         WHERE id = $1",
        &[
            &thread.id.key(),
            &next.status.as_str(),
            &next.resolved_at.map(to_sql_time),
            &next.closed_at.map(to_sql_time),
            &to_sql_time(message.sent_at),
            &message.seq,
        ],
    )
    .await?;
    idempotency::commit(tx, completion, message).await
}

/// A page of a thread, of the messages `filter` keeps: its task and the
/// time they must be sent after are the parameters after the fourth, in
/// that order, each only if the filter has it. The ticket was located in
/// the actor's workspace; the join keeps the page to that workspace all the
/// same. A task's messages are read through their own index.
fn list_messages_sql(filter: MessageFilter) -> String {
    let task = if filter.task.is_some() {
        " AND m.task_id = $5"
    } else {
        ""
    };
    let since = match (filter.task, filter.since) {
        (Some(_), Some(_)) => " AND m.sent_at > $6",
        (None, Some(_)) => " AND m.sent_at > $5",
        (_, None) => "",
    };
    format!(
        "SELECT {MESSAGE_COLUMNS}, t.attachment_count FROM ticket t JOIN message m ON m.ticket_id = t.id
         WHERE t.id = $1 AND t.workspace_id = $4 AND m.seq > $2{task}{since} ORDER BY m.seq LIMIT $3"
    )
}

/// Whether a row of a message query says its ticket had files when it was
/// read (in the same statement as the message, so the two agree: a file
/// attached since the ticket was located is not missed).
fn ticket_has_files(row: &tokio_postgres::Row) -> Result<bool, StoreError> {
    Ok(get::<i64>(row, MESSAGE_COLUMN_COUNT)? > 0)
}

pub(super) async fn list_messages(
    client: &Object,
    actor: &Actor,
    reference: TicketRef,
    filter: MessageFilter,
    page: PageRequest<MessageCursor>,
) -> Result<Page<Message, MessageCursor>, StoreError> {
    let ticket = locate(client, actor, reference, Lock::None).await?;
    let after = page.after.map_or(0, |cursor| cursor.seq);
    let limit = i64::from(page.size.get()) + 1;
    let (ticket_key, workspace) = (ticket.id.key(), actor.workspace_id.key());
    let task = filter.task.map(|task| task.key());
    let since = filter.since.map(to_sql_time);
    let mut args: Vec<&(dyn ToSql + Sync)> = vec![&ticket_key, &after, &limit, &workspace];
    if let Some(task) = &task {
        args.push(task);
    }
    if let Some(since) = &since {
        args.push(since);
    }
    let read = query(client, &list_messages_sql(filter), &args).await?;
    let has_files = match read.first() {
        Some(row) => ticket_has_files(row)?,
        None => false,
    };
    let mut messages = read
        .iter()
        .map(rows::message)
        .collect::<Result<Vec<_>, _>>()?;
    // A thread without files is read without looking for them.
    if has_files {
        super::uploads::fill_attachments(client, &mut messages).await?;
    }
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
        "SELECT {MESSAGE_COLUMNS}, t.attachment_count FROM ticket t JOIN message m ON m.ticket_id = t.id
         WHERE m.id = $1 AND t.id = $2 AND t.workspace_id = $3"
    );
    let row = query_opt(
        client,
        &sql,
        &[&message.key(), &ticket.id.key(), &actor.workspace_id.key()],
    )
    .await?
    .ok_or(StoreError::NotFound)?;
    let mut found = rows::message(&row)?;
    if ticket_has_files(&row)? {
        super::uploads::fill_attachments(client, std::slice::from_mut(&mut found)).await?;
    }
    Ok(found)
}

/// Applies an action, completing `completion`'s record if there is one, in
/// one transaction.
pub(super) async fn apply_action(
    client: &mut Object,
    actor: &Actor,
    reference: TicketRef,
    action: TicketAction,
    at: Timestamp,
    completion: Option<Completion<Ticket>>,
) -> Result<Written<Ticket>, StoreError> {
    let tx = idempotency::begin(client, completion.as_ref()).await?;
    let thread = locate(&tx, actor, reference, Lock::ForUpdate).await?;
    let ActionPlan { at, next } = plan::plan_action(&thread, action, at)?;
    if let Some(next) = next {
        execute(
            &tx,
            "UPDATE ticket SET status = $2, resolved_at = $3, closed_at = $4,
                    updated_at = greatest(updated_at, $5)
             WHERE id = $1",
            &[
                &thread.id.key(),
                &next.status.as_str(),
                &next.resolved_at.map(to_sql_time),
                &next.closed_at.map(to_sql_time),
                &to_sql_time(at),
            ],
        )
        .await?;
    }
    let ticket = ticket_by_id(&tx, actor, thread.id).await?;
    idempotency::commit(tx, completion, ticket).await
}

#[async_trait]
impl TicketStore for PostgresStore {
    async fn create_ticket(
        &self,
        actor: &Actor,
        new: NewTicket,
        completion: Option<Completion<Ticket>>,
    ) -> Result<Written<Ticket>, StoreError> {
        let mut client = self.client().await?;
        create_ticket(&mut client, actor, new, completion).await
    }

    async fn find_ticket(&self, actor: &Actor, ticket: TicketRef) -> Result<Ticket, StoreError> {
        let client = self.client().await?;
        find_ticket(&client, actor, ticket).await
    }

    async fn list_ticket_rows(
        &self,
        actor: &Actor,
        query: &TicketRowQuery,
    ) -> Result<TicketRows, StoreError> {
        let client = self.client().await?;
        list_ticket_rows(&client, actor, query).await
    }

    async fn mark_read(&self, actor: &Actor, ticket: TicketId, seq: i64) -> Result<(), StoreError> {
        let client = self.client().await?;
        mark_read(&*client, ticket, actor.user_id, seq).await
    }

    async fn list_tickets(
        &self,
        actor: &Actor,
        filter: TicketFilter,
        page: PageRequest<TicketCursor>,
    ) -> Result<Page<Ticket, TicketCursor>, StoreError> {
        let client = self.client().await?;
        list_tickets(&client, actor, filter, page).await
    }

    async fn append_message(
        &self,
        actor: &Actor,
        ticket: TicketRef,
        new: NewMessage,
        completion: Option<Completion<Message>>,
    ) -> Result<Written<Message>, StoreError> {
        let mut client = self.client().await?;
        append_message(&mut client, actor, ticket, new, completion).await
    }

    async fn list_messages_where(
        &self,
        actor: &Actor,
        ticket: TicketRef,
        filter: MessageFilter,
        page: PageRequest<MessageCursor>,
    ) -> Result<Page<Message, MessageCursor>, StoreError> {
        let client = self.client().await?;
        list_messages(&client, actor, ticket, filter, page).await
    }

    async fn find_message(
        &self,
        actor: &Actor,
        ticket: TicketRef,
        message: MessageId,
    ) -> Result<Message, StoreError> {
        let client = self.client().await?;
        find_message(&client, actor, ticket, message).await
    }

    async fn apply_action(
        &self,
        actor: &Actor,
        ticket: TicketRef,
        action: TicketAction,
        at: Timestamp,
        completion: Option<Completion<Ticket>>,
    ) -> Result<Written<Ticket>, StoreError> {
        let mut client = self.client().await?;
        apply_action(&mut client, actor, ticket, action, at, completion).await
    }
}
