//! Whole tables in dump order, for `ticketd export` and `ticketd import`
//! (the format is [`crate::core::dump`]).
//!
//! Export pages are keyset queries on each table's primary key (or unique
//! index), compared bytewise like SQLite's, so both backends write the same
//! data as the same bytes. Imports insert rows exactly as given, one batch
//! per transaction.

use deadpool_postgres::{GenericClient, Object};
use tokio_postgres::Row;
use tokio_postgres::types::ToSql;

use async_trait::async_trait;

use crate::core::access::{Role, Scopes};
use crate::core::dump::{
    ApiKeyRecord, ExportCursor, MessageRecord, ReadMarkerRecord, Record, RecordKind, TicketRecord,
    UploadRecord, UserRecord, WorkspaceRecord,
};
use crate::core::id::{KeyId, MessageId, TaskRef, TicketId, UploadId, UserId, WorkspaceId};
use crate::core::message::{BodyFormat, Message};
use crate::core::ticket::{Category, Priority, TicketStatus};
use crate::core::token::SecretHash;
use crate::store::TransferStore;
use crate::store::postgres::PostgresStore;
use crate::store::postgres::rows::{get, optional_timestamp, parsed, timestamp, to_sql_time};
use crate::store::postgres::tickets::insert_message;
use crate::store::postgres::{execute, map_error, query, query_opt};
use crate::store::{Constraint, StoreError};

pub(super) async fn is_empty(client: &Object) -> Result<bool, StoreError> {
    let row = query_opt(
        client,
        "SELECT NOT EXISTS (SELECT 1 FROM workspace)
            AND NOT EXISTS (SELECT 1 FROM principal)
            AND NOT EXISTS (SELECT 1 FROM api_key)
            AND NOT EXISTS (SELECT 1 FROM ticket)
            AND NOT EXISTS (SELECT 1 FROM message)",
        &[],
    )
    .await?
    .ok_or_else(|| StoreError::Other("the emptiness check returned no row".into()))?;
    get(&row, 0)
}

/// One table's keyset query: its columns, the condition that starts a page
/// after a cursor, and the key order.
struct Keyset {
    select: &'static str,
    after: &'static str,
    order: &'static str,
    record: fn(&Row) -> Result<Record, StoreError>,
}

impl Keyset {
    fn of(kind: RecordKind) -> Self {
        match kind {
            RecordKind::Workspace => Keyset {
                select: "SELECT id, numeric_id, name, code, plan, last_ticket_number, created_at,
                                agency_signature_kid
                         FROM workspace",
                after: "numeric_id > $1",
                order: "numeric_id",
                record: workspace,
            },
            RecordKind::User => Keyset {
                select: "SELECT id, workspace_id, role, name, email, created_at FROM principal",
                after: "id > $1",
                order: "id",
                record: user,
            },
            RecordKind::ApiKey => Keyset {
                select: "SELECT id, principal_id, secret_hash, scopes, created_at, revoked_at
                         FROM api_key",
                after: "id > $1",
                order: "id",
                record: api_key,
            },
            RecordKind::Ticket => Keyset {
                select: "SELECT id, workspace_id, number, customer_id, subject, status, priority,
                                created_at, updated_at, last_message_at, message_count,
                                resolved_at, closed_at, category, booking_id
                         FROM ticket",
                after: "id > $1",
                order: "id",
                record: ticket,
            },
            RecordKind::Message => Keyset {
                select: "SELECT ticket_id, seq, id, sender_id, sender_role, sender_name, body,
                                body_format, encrypted, sent_at, numeric_id, task_id
                         FROM message",
                after: "(ticket_id, seq) > ($1, $2)",
                order: "ticket_id, seq",
                record: message,
            },
            RecordKind::ReadMarker => Keyset {
                select: "SELECT ticket_id, user_id, last_read_seq FROM ticket_read",
                after: "(ticket_id, user_id) > ($1, $2)",
                order: "ticket_id, user_id",
                record: read_marker,
            },
            // Only uploads whose bytes are stored: a pending or deleting one
            // is the sweep's.
            RecordKind::Upload => Keyset {
                select: "SELECT id, workspace_id, owner_id, filename, content_type, size, sha256,
                                encrypted, content_key, created_at, expires_at, message_id,
                                position, numeric_id
                         FROM (SELECT * FROM upload WHERE state = 'stored') AS upload",
                after: "id > $1",
                order: "id",
                record: upload,
            },
        }
    }

    /// The page query, with the cursor's `arguments` placeholders first and
    /// the limit last.
    fn sql(&self, arguments: usize) -> String {
        let Keyset {
            select,
            order,
            after,
            ..
        } = self;
        let limit = arguments + 1;
        if arguments > 0 {
            format!("{select} WHERE {after} ORDER BY {order} LIMIT ${limit}")
        } else {
            format!("{select} ORDER BY {order} LIMIT ${limit}")
        }
    }
}

/// A cursor's values, bound to its table's `after` condition.
enum CursorValues {
    Number(i64),
    Key(String),
    Thread(String, i64),
    Pair(String, String),
}

impl CursorValues {
    fn new(cursor: ExportCursor) -> Self {
        match cursor {
            ExportCursor::Workspace(numeric_id) => CursorValues::Number(numeric_id),
            ExportCursor::User(id) => CursorValues::Key(id.key()),
            ExportCursor::ApiKey(id) => CursorValues::Key(id.key()),
            ExportCursor::Ticket(id) => CursorValues::Key(id.key()),
            ExportCursor::Message(ticket_id, seq) => CursorValues::Thread(ticket_id.key(), seq),
            ExportCursor::ReadMarker(ticket_id, user_id) => {
                CursorValues::Pair(ticket_id.key(), user_id.key())
            }
            ExportCursor::Upload(id) => CursorValues::Key(id.key()),
        }
    }

    fn arguments(&self) -> Vec<&(dyn ToSql + Sync)> {
        match self {
            CursorValues::Number(number) => vec![number],
            CursorValues::Key(key) => vec![key],
            CursorValues::Thread(ticket_id, seq) => vec![ticket_id, seq],
            CursorValues::Pair(first, second) => vec![first, second],
        }
    }
}

pub(super) async fn export_page(
    client: &Object,
    kind: RecordKind,
    after: Option<ExportCursor>,
    limit: u32,
) -> Result<Vec<Record>, StoreError> {
    if let Some(cursor) = after
        && cursor.kind() != kind
    {
        return Err(StoreError::other(format!(
            "an export of {} records cannot start after {cursor}",
            kind.as_str()
        )));
    }
    let keyset = Keyset::of(kind);
    let values = after.map(CursorValues::new);
    let mut arguments = values
        .as_ref()
        .map(CursorValues::arguments)
        .unwrap_or_default();
    let limit = i64::from(limit);
    let sql = keyset.sql(arguments.len());
    arguments.push(&limit);
    query(client, &sql, &arguments)
        .await?
        .iter()
        .map(keyset.record)
        .collect()
}

fn workspace(row: &Row) -> Result<Record, StoreError> {
    Ok(Record::Workspace(WorkspaceRecord {
        id: parsed(row, 0, WorkspaceId::from_key)?,
        numeric_id: get(row, 1)?,
        name: get(row, 2)?,
        code: get(row, 3)?,
        plan: get(row, 4)?,
        last_ticket_number: get(row, 5)?,
        created_at: timestamp(row, 6)?,
        agency_signature_kid: get(row, 7)?,
    }))
}

fn read_marker(row: &Row) -> Result<Record, StoreError> {
    Ok(Record::ReadMarker(ReadMarkerRecord {
        ticket_id: parsed(row, 0, TicketId::from_key)?,
        user_id: parsed(row, 1, UserId::from_key)?,
        last_read_seq: get(row, 2)?,
    }))
}

fn user(row: &Row) -> Result<Record, StoreError> {
    Ok(Record::User(UserRecord {
        id: parsed(row, 0, UserId::from_key)?,
        workspace_id: parsed(row, 1, WorkspaceId::from_key)?,
        role: parsed(row, 2, Role::parse)?,
        name: get(row, 3)?,
        email: get(row, 4)?,
        created_at: timestamp(row, 5)?,
    }))
}

fn api_key(row: &Row) -> Result<Record, StoreError> {
    let hash: &[u8] = get(row, 2)?;
    Ok(Record::ApiKey(ApiKeyRecord {
        id: parsed(row, 0, KeyId::from_key)?,
        user_id: parsed(row, 1, UserId::from_key)?,
        secret_hash: SecretHash::from_slice(hash)
            .ok_or_else(|| StoreError::Other("a stored secret hash is not 32 bytes".into()))?,
        scopes: parsed(row, 3, |text| Scopes::parse_list(text).ok())?,
        created_at: timestamp(row, 4)?,
        revoked_at: optional_timestamp(row, 5)?,
    }))
}

fn ticket(row: &Row) -> Result<Record, StoreError> {
    Ok(Record::Ticket(TicketRecord {
        id: parsed(row, 0, TicketId::from_key)?,
        workspace_id: parsed(row, 1, WorkspaceId::from_key)?,
        number: get(row, 2)?,
        customer_id: parsed(row, 3, UserId::from_key)?,
        subject: get(row, 4)?,
        status: parsed(row, 5, TicketStatus::parse)?,
        priority: parsed(row, 6, Priority::parse)?,
        created_at: timestamp(row, 7)?,
        updated_at: timestamp(row, 8)?,
        last_message_at: timestamp(row, 9)?,
        message_count: get(row, 10)?,
        resolved_at: optional_timestamp(row, 11)?,
        closed_at: optional_timestamp(row, 12)?,
        category: match get::<Option<&str>>(row, 13)? {
            Some(_) => Some(parsed(row, 13, Category::parse)?),
            None => None,
        },
        booking_id: get(row, 14)?,
    }))
}

fn message(row: &Row) -> Result<Record, StoreError> {
    Ok(Record::Message(MessageRecord {
        ticket_id: parsed(row, 0, TicketId::from_key)?,
        seq: get(row, 1)?,
        id: parsed(row, 2, MessageId::from_key)?,
        sender_id: parsed(row, 3, UserId::from_key)?,
        sender_role: parsed(row, 4, Role::parse)?,
        sender_name: get(row, 5)?,
        body: get(row, 6)?,
        body_format: parsed(row, 7, BodyFormat::parse)?,
        encrypted: get(row, 8)?,
        sent_at: timestamp(row, 9)?,
        numeric_id: Some(get(row, 10)?),
        task_id: match get::<Option<&str>>(row, 11)? {
            Some(_) => Some(parsed(row, 11, TaskRef::from_key)?),
            None => None,
        },
    }))
}

fn upload(row: &Row) -> Result<Record, StoreError> {
    let size: i64 = get(row, 5)?;
    let message_id: Option<&str> = get(row, 11)?;
    let position: Option<i32> = get(row, 12)?;
    Ok(Record::Upload(UploadRecord {
        id: parsed(row, 0, UploadId::from_key)?,
        workspace_id: parsed(row, 1, WorkspaceId::from_key)?,
        owner_id: parsed(row, 2, UserId::from_key)?,
        filename: get(row, 3)?,
        content_type: get(row, 4)?,
        size: u64::try_from(size).unwrap_or(0),
        sha256: get(row, 6)?,
        encrypted: get(row, 7)?,
        content_key: get(row, 8)?,
        created_at: timestamp(row, 9)?,
        expires_at: timestamp(row, 10)?,
        message_id: match message_id {
            Some(_) => Some(parsed(row, 11, MessageId::from_key)?),
            None => None,
        },
        position: position.map(i64::from),
        numeric_id: get(row, 13)?,
    }))
}

/// Inserts an upload as stored and, if a message attaches it, counts it in
/// its ticket; the message must be its owner's and as encrypted as it.
async fn insert_upload<C: GenericClient>(
    client: &C,
    upload: &UploadRecord,
) -> Result<(), StoreError> {
    let size = i64::try_from(upload.size)
        .map_err(|_| StoreError::other("an upload's size is out of range"))?;
    let position = upload
        .position
        .map(i32::try_from)
        .transpose()
        .map_err(|_| StoreError::other("an upload's position is out of range"))?;
    execute(
        client,
        "INSERT INTO upload (id, workspace_id, owner_id, filename, content_type, size, sha256,
                             encrypted, content_key, state, created_at, expires_at, message_id,
                             position, numeric_id)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, 'stored', $10, $11, $12, $13, $14)",
        &[
            &upload.id.key(),
            &upload.workspace_id.key(),
            &upload.owner_id.key(),
            &upload.filename,
            &upload.content_type,
            &size,
            &upload.sha256,
            &upload.encrypted,
            &upload.content_key,
            &to_sql_time(upload.created_at),
            &to_sql_time(upload.expires_at),
            &upload.message_id.map(|id| id.key()),
            &position,
            &upload.numeric_id,
        ],
    )
    .await?;
    let Some(message) = upload.message_id else {
        return Ok(());
    };
    let counted = execute(
        client,
        "UPDATE ticket SET attachment_count = attachment_count + 1,
                           attachment_bytes = attachment_bytes + $2
         WHERE id = (SELECT ticket_id FROM message
                     WHERE id = $1 AND sender_id = $3 AND encrypted = $4)",
        &[
            &message.key(),
            &size,
            &upload.owner_id.key(),
            &upload.encrypted,
        ],
    )
    .await?;
    if counted == 1 {
        Ok(())
    } else {
        Err(StoreError::Conflict(Constraint::Named(
            "upload_message_check".into(),
        )))
    }
}

/// Inserts records as they are, in one transaction: the batch is kept or
/// dropped as a whole.
pub(super) async fn import_records(
    client: &mut Object,
    records: &[Record],
) -> Result<(), StoreError> {
    let tx = client.transaction().await.map_err(map_error)?;
    for record in records {
        insert(&tx, record).await?;
    }
    // New messages and uploads are numbered after the imported ones.
    execute(
        &tx,
        "SELECT setval('message_numeric_id_seq',
                       greatest((SELECT max(numeric_id) FROM message), 0) + 1, false),
                setval('upload_numeric_id_seq',
                       greatest((SELECT max(numeric_id) FROM upload), 0) + 1, false)",
        &[],
    )
    .await?;
    tx.commit().await.map_err(map_error)
}

async fn insert<C: GenericClient>(client: &C, record: &Record) -> Result<(), StoreError> {
    match record {
        Record::Workspace(workspace) => {
            execute(
                client,
                "INSERT INTO workspace (id, numeric_id, name, code, plan, last_ticket_number, created_at,
                                        agency_signature_kid)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
                &[
                    &workspace.id.key(),
                    &workspace.numeric_id,
                    &workspace.name,
                    &workspace.code,
                    &workspace.plan,
                    &workspace.last_ticket_number,
                    &to_sql_time(workspace.created_at),
                    &workspace.agency_signature_kid,
                ],
            )
            .await?;
        }
        Record::User(user) => {
            execute(
                client,
                "INSERT INTO principal (id, workspace_id, role, name, email, created_at)
                 VALUES ($1, $2, $3, $4, $5, $6)",
                &[
                    &user.id.key(),
                    &user.workspace_id.key(),
                    &user.role.as_str(),
                    &user.name,
                    &user.email,
                    &to_sql_time(user.created_at),
                ],
            )
            .await?;
        }
        Record::ApiKey(key) => {
            execute(
                client,
                "INSERT INTO api_key (id, principal_id, secret_hash, scopes, created_at, revoked_at)
                 VALUES ($1, $2, $3, $4, $5, $6)",
                &[
                    &key.id.key(),
                    &key.user_id.key(),
                    &key.secret_hash.0.as_slice(),
                    &key.scopes.to_list(),
                    &to_sql_time(key.created_at),
                    &key.revoked_at.map(to_sql_time),
                ],
            )
            .await?;
        }
        Record::Ticket(ticket) => {
            execute(
                client,
                "INSERT INTO ticket (id, workspace_id, number, customer_id, subject, status, priority,
                                     created_at, updated_at, last_message_at, message_count,
                                     resolved_at, closed_at, category, booking_id)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15)",
                &[
                    &ticket.id.key(),
                    &ticket.workspace_id.key(),
                    &ticket.number,
                    &ticket.customer_id.key(),
                    &ticket.subject,
                    &ticket.status.as_str(),
                    &ticket.priority.as_str(),
                    &to_sql_time(ticket.created_at),
                    &to_sql_time(ticket.updated_at),
                    &to_sql_time(ticket.last_message_at),
                    &ticket.message_count,
                    &ticket.resolved_at.map(to_sql_time),
                    &ticket.closed_at.map(to_sql_time),
                    &ticket.category.as_ref().map(Category::as_str),
                    &ticket.booking_id,
                ],
            )
            .await?;
        }
        // The one message insert, shared with replies.
        Record::Message(message) => {
            insert_message(client, &Message::from(message.clone())).await?;
        }
        Record::ReadMarker(marker) => {
            execute(
                client,
                "INSERT INTO ticket_read (ticket_id, user_id, last_read_seq) VALUES ($1, $2, $3)
                 ON CONFLICT (ticket_id, user_id) DO UPDATE SET last_read_seq = excluded.last_read_seq",
                &[
                    &marker.ticket_id.key(),
                    &marker.user_id.key(),
                    &marker.last_read_seq,
                ],
            )
            .await?;
        }
        Record::Upload(upload) => insert_upload(client, upload).await?,
    }
    Ok(())
}

#[async_trait]
impl TransferStore for PostgresStore {
    async fn is_empty(&self) -> Result<bool, StoreError> {
        let client = self.client().await?;
        is_empty(&client).await
    }

    async fn export_page(
        &self,
        kind: RecordKind,
        after: Option<ExportCursor>,
        limit: u32,
    ) -> Result<Vec<Record>, StoreError> {
        let client = self.client().await?;
        export_page(&client, kind, after, limit).await
    }

    async fn import_records(&self, records: Vec<Record>) -> Result<(), StoreError> {
        let mut client = self.client().await?;
        import_records(&mut client, &records).await
    }
}
