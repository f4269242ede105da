//! Whole tables in dump order, for `ticketd export` and `ticketd import`
//! (the format is [`crate::core::dump`]).
//!
//! Export pages are keyset queries on each table's primary key (or unique
//! index), so a page costs one index seek plus `limit` steps however large
//! the table. Imports insert rows exactly as given.

use rusqlite::types::Value;
use rusqlite::{Connection, Row, params, params_from_iter};

use async_trait::async_trait;

use crate::core::access::{Role, Scopes};
use crate::core::dump::{
    ApiKeyRecord, ExportCursor, MessageRecord, ReadMarkerRecord, Record, RecordKind, TicketRecord,
    UploadRecord, UserRecord, WorkspaceRecord,
};
use crate::core::id::{KeyId, MessageId, TaskRef, TicketId, UploadId, UserId, WorkspaceId};
use crate::core::message::{BodyFormat, Message};
use crate::core::ticket::{Category, Priority, TicketStatus};
use crate::core::time::Timestamp;
use crate::core::token::SecretHash;
use crate::store::TransferStore;
use crate::store::sqlite::SqliteStore;
use crate::store::sqlite::map_error;
use crate::store::sqlite::rows::{optional_timestamp, parsed, timestamp};
use crate::store::sqlite::tickets::insert_message;
use crate::store::{Constraint, StoreError};

pub(super) fn is_empty(conn: &Connection) -> Result<bool, StoreError> {
    conn.query_row(
        "SELECT NOT EXISTS (SELECT 1 FROM workspace)
            AND NOT EXISTS (SELECT 1 FROM principal)
            AND NOT EXISTS (SELECT 1 FROM api_key)
            AND NOT EXISTS (SELECT 1 FROM ticket)
            AND NOT EXISTS (SELECT 1 FROM message)",
        [],
        |row| row.get(0),
    )
    .map_err(map_error)
}

/// One table's keyset query: its columns, the condition that starts a page
/// after a cursor, and the key order.
struct Keyset {
    select: &'static str,
    after: &'static str,
    order: &'static str,
    record: fn(&Row<'_>) -> rusqlite::Result<Record>,
}

impl Keyset {
    fn of(kind: RecordKind) -> Self {
        match kind {
            RecordKind::Workspace => Keyset {
                select: "SELECT id, numeric_id, name, code, plan, last_ticket_number, created_at,
                                agency_signature_kid
                         FROM workspace",
                after: "numeric_id > ?",
                order: "numeric_id",
                record: workspace,
            },
            RecordKind::User => Keyset {
                select: "SELECT id, workspace_id, role, name, email, created_at FROM principal",
                after: "id > ?",
                order: "id",
                record: user,
            },
            RecordKind::ApiKey => Keyset {
                select: "SELECT id, principal_id, secret_hash, scopes, created_at, revoked_at
                         FROM api_key",
                after: "id > ?",
                order: "id",
                record: api_key,
            },
            RecordKind::Ticket => Keyset {
                select: "SELECT id, workspace_id, number, customer_id, subject, status, priority,
                                created_at, updated_at, last_message_at, message_count,
                                resolved_at, closed_at, category, booking_id
                         FROM ticket",
                after: "id > ?",
                order: "id",
                record: ticket,
            },
            RecordKind::Message => Keyset {
                select: "SELECT ticket_id, seq, id, sender_id, sender_role, sender_name, body,
                                body_format, encrypted, sent_at, numeric_id, task_id
                         FROM message",
                after: "(ticket_id, seq) > (?, ?)",
                order: "ticket_id, seq",
                record: message,
            },
            RecordKind::ReadMarker => Keyset {
                select: "SELECT ticket_id, user_id, last_read_seq FROM ticket_read",
                after: "(ticket_id, user_id) > (?, ?)",
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
                after: "id > ?",
                order: "id",
                record: upload,
            },
        }
    }

    /// The page query, with or without a starting point.
    fn sql(&self, after: bool) -> String {
        let Keyset {
            select,
            order,
            after: condition,
            ..
        } = self;
        if after {
            format!("{select} WHERE {condition} ORDER BY {order} LIMIT ?")
        } else {
            format!("{select} ORDER BY {order} LIMIT ?")
        }
    }
}

/// The values a cursor binds to its table's `after` condition.
fn cursor_values(cursor: ExportCursor) -> Vec<Value> {
    match cursor {
        ExportCursor::Workspace(numeric_id) => vec![Value::Integer(numeric_id)],
        ExportCursor::User(id) => vec![Value::Text(id.key())],
        ExportCursor::ApiKey(id) => vec![Value::Text(id.key())],
        ExportCursor::Ticket(id) => vec![Value::Text(id.key())],
        ExportCursor::Message(ticket_id, seq) => {
            vec![Value::Text(ticket_id.key()), Value::Integer(seq)]
        }
        ExportCursor::ReadMarker(ticket_id, user_id) => {
            vec![Value::Text(ticket_id.key()), Value::Text(user_id.key())]
        }
        ExportCursor::Upload(id) => vec![Value::Text(id.key())],
    }
}

pub(super) fn export_page(
    conn: &Connection,
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
    let mut args = after.map(cursor_values).unwrap_or_default();
    args.push(Value::Integer(i64::from(limit)));
    conn.prepare_cached(&keyset.sql(after.is_some()))
        .and_then(|mut select| {
            select
                .query_map(params_from_iter(args), keyset.record)?
                .collect::<rusqlite::Result<Vec<_>>>()
        })
        .map_err(map_error)
}

fn workspace(row: &Row<'_>) -> rusqlite::Result<Record> {
    Ok(Record::Workspace(WorkspaceRecord {
        id: parsed(row, 0, WorkspaceId::from_key)?,
        numeric_id: row.get(1)?,
        name: row.get(2)?,
        code: row.get(3)?,
        plan: row.get(4)?,
        last_ticket_number: row.get(5)?,
        created_at: timestamp(row, 6)?,
        agency_signature_kid: row.get(7)?,
    }))
}

fn read_marker(row: &Row<'_>) -> rusqlite::Result<Record> {
    Ok(Record::ReadMarker(ReadMarkerRecord {
        ticket_id: parsed(row, 0, TicketId::from_key)?,
        user_id: parsed(row, 1, UserId::from_key)?,
        last_read_seq: row.get(2)?,
    }))
}

fn user(row: &Row<'_>) -> rusqlite::Result<Record> {
    Ok(Record::User(UserRecord {
        id: parsed(row, 0, UserId::from_key)?,
        workspace_id: parsed(row, 1, WorkspaceId::from_key)?,
        role: parsed(row, 2, Role::parse)?,
        name: row.get(3)?,
        email: row.get(4)?,
        created_at: timestamp(row, 5)?,
    }))
}

fn api_key(row: &Row<'_>) -> rusqlite::Result<Record> {
    let hash: Vec<u8> = row.get(2)?;
    Ok(Record::ApiKey(ApiKeyRecord {
        id: parsed(row, 0, KeyId::from_key)?,
        user_id: parsed(row, 1, UserId::from_key)?,
        secret_hash: SecretHash::from_slice(&hash).ok_or_else(|| {
            rusqlite::Error::FromSqlConversionFailure(
                2,
                rusqlite::types::Type::Blob,
                "a stored secret hash is not 32 bytes".into(),
            )
        })?,
        scopes: parsed(row, 3, |text| Scopes::parse_list(text).ok())?,
        created_at: timestamp(row, 4)?,
        revoked_at: optional_timestamp(row, 5)?,
    }))
}

fn ticket(row: &Row<'_>) -> rusqlite::Result<Record> {
    Ok(Record::Ticket(TicketRecord {
        id: parsed(row, 0, TicketId::from_key)?,
        workspace_id: parsed(row, 1, WorkspaceId::from_key)?,
        number: row.get(2)?,
        customer_id: parsed(row, 3, UserId::from_key)?,
        subject: row.get(4)?,
        status: parsed(row, 5, TicketStatus::parse)?,
        priority: parsed(row, 6, Priority::parse)?,
        created_at: timestamp(row, 7)?,
        updated_at: timestamp(row, 8)?,
        last_message_at: timestamp(row, 9)?,
        message_count: row.get(10)?,
        resolved_at: optional_timestamp(row, 11)?,
        closed_at: optional_timestamp(row, 12)?,
        category: match row.get::<_, Option<String>>(13)? {
            Some(_) => Some(parsed(row, 13, Category::parse)?),
            None => None,
        },
        booking_id: row.get(14)?,
    }))
}

fn message(row: &Row<'_>) -> rusqlite::Result<Record> {
    Ok(Record::Message(MessageRecord {
        ticket_id: parsed(row, 0, TicketId::from_key)?,
        seq: row.get(1)?,
        id: parsed(row, 2, MessageId::from_key)?,
        sender_id: parsed(row, 3, UserId::from_key)?,
        sender_role: parsed(row, 4, Role::parse)?,
        sender_name: row.get(5)?,
        body: row.get(6)?,
        body_format: parsed(row, 7, BodyFormat::parse)?,
        encrypted: row.get(8)?,
        sent_at: timestamp(row, 9)?,
        numeric_id: Some(row.get(10)?),
        task_id: match row.get::<_, Option<String>>(11)? {
            Some(_) => Some(parsed(row, 11, TaskRef::from_key)?),
            None => None,
        },
    }))
}

fn upload(row: &Row<'_>) -> rusqlite::Result<Record> {
    let size: i64 = row.get(5)?;
    let message_id: Option<String> = row.get(11)?;
    Ok(Record::Upload(UploadRecord {
        id: parsed(row, 0, UploadId::from_key)?,
        workspace_id: parsed(row, 1, WorkspaceId::from_key)?,
        owner_id: parsed(row, 2, UserId::from_key)?,
        filename: row.get(3)?,
        content_type: row.get(4)?,
        size: u64::try_from(size).unwrap_or(0),
        sha256: row.get(6)?,
        encrypted: row.get(7)?,
        content_key: row.get(8)?,
        created_at: timestamp(row, 9)?,
        expires_at: timestamp(row, 10)?,
        message_id: match message_id {
            Some(_) => Some(parsed(row, 11, MessageId::from_key)?),
            None => None,
        },
        position: row.get(12)?,
        numeric_id: row.get(13)?,
    }))
}

/// Inserts an upload as stored and, if a message attaches it, counts it in
/// its ticket; the message must be its owner's and as encrypted as it.
fn insert_upload(conn: &Connection, upload: &UploadRecord) -> Result<(), StoreError> {
    let size = i64::try_from(upload.size)
        .map_err(|_| StoreError::other("an upload's size is out of range"))?;
    conn.prepare_cached(
        "INSERT INTO upload (id, workspace_id, owner_id, filename, content_type, size, sha256,
                             encrypted, content_key, state, created_at, expires_at, message_id,
                             position, numeric_id)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, 'stored', ?10, ?11, ?12, ?13, ?14)",
    )
    .and_then(|mut insert| {
        insert.execute(params![
            upload.id.key(),
            upload.workspace_id.key(),
            upload.owner_id.key(),
            upload.filename,
            upload.content_type,
            size,
            upload.sha256,
            upload.encrypted,
            upload.content_key,
            upload.created_at.millis(),
            upload.expires_at.millis(),
            upload.message_id.map(|id| id.key()),
            upload.position,
            upload.numeric_id,
        ])
    })
    .map_err(map_error)?;
    let Some(message) = upload.message_id else {
        return Ok(());
    };
    let counted = conn
        .prepare_cached(
            "UPDATE ticket SET attachment_count = attachment_count + 1,
                               attachment_bytes = attachment_bytes + ?2
             WHERE id = (SELECT ticket_id FROM message
                         WHERE id = ?1 AND sender_id = ?3 AND encrypted = ?4)",
        )
        .and_then(|mut update| {
            update.execute(params![
                message.key(),
                size,
                upload.owner_id.key(),
                upload.encrypted
            ])
        })
        .map_err(map_error)?;
    if counted == 1 {
        Ok(())
    } else {
        Err(StoreError::Conflict(Constraint::Named(
            "upload_message_check".into(),
        )))
    }
}

/// Inserts records as they are. Runs as one write job, so the batch is kept
/// or dropped as a whole.
pub(super) fn import_records(conn: &Connection, records: &[Record]) -> Result<(), StoreError> {
    for record in records {
        insert(conn, record)?;
    }
    Ok(())
}

fn insert(conn: &Connection, record: &Record) -> Result<(), StoreError> {
    let inserted = match record {
        Record::Workspace(workspace) => conn
            .prepare_cached(
                "INSERT INTO workspace (id, numeric_id, name, code, plan, last_ticket_number, created_at,
                                        agency_signature_kid)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
            )
            .and_then(|mut insert| {
                insert.execute(params![
                    workspace.id.key(),
                    workspace.numeric_id,
                    workspace.name,
                    workspace.code,
                    workspace.plan,
                    workspace.last_ticket_number,
                    workspace.created_at.millis(),
                    workspace.agency_signature_kid,
                ])
            }),
        Record::User(user) => conn
            .prepare_cached(
                "INSERT INTO principal (id, workspace_id, role, name, email, created_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            )
            .and_then(|mut insert| {
                insert.execute(params![
                    user.id.key(),
                    user.workspace_id.key(),
                    user.role.as_str(),
                    user.name,
                    user.email,
                    user.created_at.millis(),
                ])
            }),
        Record::ApiKey(key) => conn
            .prepare_cached(
                "INSERT INTO api_key (id, principal_id, secret_hash, scopes, created_at, revoked_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            )
            .and_then(|mut insert| {
                insert.execute(params![
                    key.id.key(),
                    key.user_id.key(),
                    key.secret_hash.0.as_slice(),
                    key.scopes.to_list(),
                    key.created_at.millis(),
                    key.revoked_at.map(Timestamp::millis),
                ])
            }),
        Record::Ticket(ticket) => conn
            .prepare_cached(
                "INSERT INTO ticket (id, workspace_id, number, customer_id, subject, status, priority,
                                     created_at, updated_at, last_message_at, message_count,
                                     resolved_at, closed_at, category, booking_id)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15)",
            )
            .and_then(|mut insert| {
                insert.execute(params![
                    ticket.id.key(),
                    ticket.workspace_id.key(),
                    ticket.number,
                    ticket.customer_id.key(),
                    ticket.subject,
                    ticket.status.as_str(),
                    ticket.priority.as_str(),
                    ticket.created_at.millis(),
                    ticket.updated_at.millis(),
                    ticket.last_message_at.millis(),
                    ticket.message_count,
                    ticket.resolved_at.map(Timestamp::millis),
                    ticket.closed_at.map(Timestamp::millis),
                    ticket.category.as_ref().map(Category::as_str),
                    ticket.booking_id,
                ])
            }),
        // The one message insert, shared with replies.
        Record::Message(message) => {
            return insert_message(conn, &Message::from(message.clone())).map(drop);
        }
        Record::ReadMarker(marker) => conn
            .prepare_cached(
                "INSERT INTO ticket_read (ticket_id, user_id, last_read_seq) VALUES (?1, ?2, ?3)
                 ON CONFLICT (ticket_id, user_id) DO UPDATE SET last_read_seq = excluded.last_read_seq",
            )
            .and_then(|mut upsert| {
                upsert.execute(params![
                    marker.ticket_id.key(),
                    marker.user_id.key(),
                    marker.last_read_seq
                ])
            }),
        Record::Upload(upload) => return insert_upload(conn, upload),
    };
    inserted.map(drop).map_err(map_error)
}

#[async_trait]
impl TransferStore for SqliteStore {
    async fn is_empty(&self) -> Result<bool, StoreError> {
        self.readers.read(is_empty)
    }

    async fn export_page(
        &self,
        kind: RecordKind,
        after: Option<ExportCursor>,
        limit: u32,
    ) -> Result<Vec<Record>, StoreError> {
        self.readers
            .read(|conn| export_page(conn, kind, after, limit))
    }

    async fn import_records(&self, records: Vec<Record>) -> Result<(), StoreError> {
        self.writer
            .write(move |conn| import_records(conn, &records))
            .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::sqlite::query_plans::{migrated, plan};

    /// Every export page walks its table's key in order: no sort, and with a
    /// cursor a seek rather than a scan.
    #[test]
    fn every_export_page_is_an_ordered_key_walk() {
        let conn = migrated();
        let cursors = [
            ExportCursor::Workspace(1),
            ExportCursor::User(UserId::generate()),
            ExportCursor::ApiKey(KeyId::generate()),
            ExportCursor::Ticket(TicketId::generate()),
            ExportCursor::Message(TicketId::generate(), 1),
            ExportCursor::Upload(UploadId::generate()),
        ];
        for cursor in cursors {
            let keyset = Keyset::of(cursor.kind());
            let first = plan(&conn, &keyset.sql(false), vec![Value::Integer(10)]);
            assert!(!first.contains("TEMP B-TREE"), "{cursor}: {first}");
            let mut args = cursor_values(cursor);
            args.push(Value::Integer(10));
            let next = plan(&conn, &keyset.sql(true), args);
            assert!(!next.contains("TEMP B-TREE"), "{cursor}: {next}");
            assert!(next.starts_with("SEARCH"), "{cursor} scans: {next}");
        }
    }
}
