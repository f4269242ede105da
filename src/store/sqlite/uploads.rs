//! The records of uploads.

use async_trait::async_trait;
use rusqlite::{Connection, OptionalExtension, Row, params};

use crate::core::access::Actor;
use crate::core::id::{MessageId, TicketId, UploadId, UserId, WorkspaceId};
use crate::core::message::{Message, NewMessage};
use crate::core::time::Timestamp;
use crate::core::upload::attach::{UploadState, check_attachments, check_count};
use crate::core::upload::{Attachment, NewUpload, Upload};
use crate::store::idempotency::Completion;
use crate::store::sqlite::rows::{parsed, timestamp};
use crate::store::sqlite::{SqliteStore, map_error};
use crate::store::{StoreError, UploadStore, Written, distribute_attachments};

const UPLOAD_COLUMNS: &str = "id, workspace_id, owner_id, filename, content_type, size, sha256, \
                              content_key, state, created_at, expires_at, message_id IS NOT NULL, \
                              numeric_id";

fn upload(row: &Row<'_>) -> rusqlite::Result<Upload> {
    let size: i64 = row.get(5)?;
    let state: String = row.get(8)?;
    Ok(Upload {
        id: parsed(row, 0, UploadId::from_key)?,
        workspace_id: parsed(row, 1, WorkspaceId::from_key)?,
        owner_id: parsed(row, 2, UserId::from_key)?,
        filename: row.get(3)?,
        content_type: row.get(4)?,
        size: u64::try_from(size).unwrap_or(0),
        sha256: row.get(6)?,
        content_key: row.get(7)?,
        stored: state == "stored",
        created_at: timestamp(row, 9)?,
        expires_at: timestamp(row, 10)?,
        attached: row.get(11)?,
        numeric_id: row.get(12)?,
    })
}

fn select_upload(conn: &Connection, id: UploadId) -> Result<Upload, StoreError> {
    conn.prepare_cached(&format!(
        "SELECT {UPLOAD_COLUMNS} FROM upload WHERE id = ?1"
    ))
    .and_then(|mut select| select.query_row([id.key()], upload))
    .map_err(map_error)
}

fn create_upload(conn: &Connection, actor: &Actor, new: &NewUpload) -> Result<Upload, StoreError> {
    conn.prepare_cached(
        "INSERT INTO upload (id, workspace_id, owner_id, filename, content_type, size, sha256,
                             encrypted, content_key, state, created_at, expires_at, numeric_id)
         VALUES (?1, ?2, ?3, ?4, ?5, 0, '', ?6, ?7, 'pending', ?8, ?9,
                 (SELECT coalesce(max(numeric_id), 0) + 1 FROM upload))",
    )
    .and_then(|mut insert| {
        insert.execute(params![
            new.id.key(),
            actor.workspace_id.key(),
            actor.user_id.key(),
            new.filename.as_str(),
            new.content_type.as_str(),
            new.content_key.is_some(),
            new.content_key,
            new.created_at.millis(),
            new.expires_at.millis(),
        ])
    })
    .map_err(map_error)?;
    select_upload(conn, new.id)
}

fn store_upload(
    conn: &Connection,
    id: UploadId,
    size: u64,
    sha256: &str,
    expires_at: Timestamp,
) -> Result<Upload, StoreError> {
    let size = i64::try_from(size)
        .map_err(|_| StoreError::Other("an upload's size is out of range".into()))?;
    let updated = conn
        .prepare_cached(
            "UPDATE upload SET state = 'stored', size = ?2, sha256 = ?3, expires_at = ?4
             WHERE id = ?1 AND state = 'pending'",
        )
        .and_then(|mut update| update.execute(params![id.key(), size, sha256, expires_at.millis()]))
        .map_err(map_error)?;
    if updated == 0 {
        return Err(StoreError::NotFound);
    }
    select_upload(conn, id)
}

fn find_upload(conn: &Connection, actor: &Actor, id: UploadId) -> Result<Upload, StoreError> {
    conn.prepare_cached(&format!(
        "SELECT {UPLOAD_COLUMNS} FROM upload WHERE id = ?1 AND owner_id = ?2"
    ))
    .and_then(|mut select| {
        select
            .query_row(params![id.key(), actor.user_id.key()], upload)
            .optional()
    })
    .map_err(map_error)?
    .ok_or(StoreError::NotFound)
}

fn attached_upload(
    conn: &Connection,
    message: MessageId,
    id: UploadId,
) -> Result<Upload, StoreError> {
    conn.prepare_cached(&format!(
        "SELECT {UPLOAD_COLUMNS} FROM upload WHERE id = ?1 AND message_id = ?2"
    ))
    .and_then(|mut select| {
        select
            .query_row(params![id.key(), message.key()], upload)
            .optional()
    })
    .map_err(map_error)?
    .ok_or(StoreError::NotFound)
}

fn uploads_to_sweep(
    conn: &Connection,
    now: Timestamp,
    limit: u32,
) -> Result<Vec<UploadId>, StoreError> {
    conn.prepare_cached(
        "SELECT id FROM upload
         WHERE message_id IS NULL AND (expires_at <= ?1 OR state = 'deleting')
         ORDER BY expires_at LIMIT ?2",
    )
    .and_then(|mut select| {
        select
            .query_map(params![now.millis(), limit], |row| {
                parsed(row, 0, UploadId::from_key)
            })?
            .collect()
    })
    .map_err(map_error)
}

fn start_deleting_upload(
    conn: &Connection,
    id: UploadId,
    now: Timestamp,
) -> Result<bool, StoreError> {
    let updated = conn
        .prepare_cached(
            "UPDATE upload SET state = 'deleting'
             WHERE id = ?1 AND message_id IS NULL AND (expires_at <= ?2 OR state = 'deleting')",
        )
        .and_then(|mut update| update.execute(params![id.key(), now.millis()]))
        .map_err(map_error)?;
    Ok(updated > 0)
}

fn abandon_upload(conn: &Connection, id: UploadId) -> Result<bool, StoreError> {
    let updated = conn
        .prepare_cached("UPDATE upload SET state = 'deleting' WHERE id = ?1 AND message_id IS NULL")
        .and_then(|mut update| update.execute([id.key()]))
        .map_err(map_error)?;
    Ok(updated > 0)
}

fn delete_upload(conn: &Connection, id: UploadId) -> Result<(), StoreError> {
    conn.prepare_cached("DELETE FROM upload WHERE id = ?1 AND state = 'deleting'")
        .and_then(|mut delete| delete.execute([id.key()]))
        .map_err(map_error)?;
    Ok(())
}

fn use_upload_url(
    conn: &Connection,
    nonce: u128,
    expires_at: Timestamp,
) -> Result<bool, StoreError> {
    let inserted = conn
        .prepare_cached(
            "INSERT INTO upload_url_use (nonce, expires_at) VALUES (?1, ?2)
             ON CONFLICT (nonce) DO NOTHING",
        )
        .and_then(|mut insert| {
            insert.execute(params![format!("{nonce:032x}"), expires_at.millis()])
        })
        .map_err(map_error)?;
    Ok(inserted > 0)
}

fn sweep_upload_urls(conn: &Connection, now: Timestamp, limit: u32) -> Result<u64, StoreError> {
    conn.prepare_cached(
        "DELETE FROM upload_url_use WHERE nonce IN
             (SELECT nonce FROM upload_url_use WHERE expires_at <= ?1 LIMIT ?2)",
    )
    .and_then(|mut delete| delete.execute(params![now.millis(), limit]))
    .map(|deleted| deleted as u64)
    .map_err(map_error)
}

#[async_trait]
impl UploadStore for SqliteStore {
    async fn create_upload(&self, actor: &Actor, new: NewUpload) -> Result<Upload, StoreError> {
        let actor = actor.clone();
        self.writer
            .write(move |conn| create_upload(conn, &actor, &new))
            .await
    }

    async fn store_upload(
        &self,
        id: UploadId,
        size: u64,
        sha256: String,
        expires_at: Timestamp,
        completion: Option<Completion<Upload>>,
    ) -> Result<Written<Upload>, StoreError> {
        self.writer
            .write(move |conn| {
                super::idempotency::completing(conn, completion.as_ref(), |conn| {
                    store_upload(conn, id, size, &sha256, expires_at)
                })
            })
            .await
    }

    async fn find_upload(&self, actor: &Actor, id: UploadId) -> Result<Upload, StoreError> {
        self.readers.read(|conn| find_upload(conn, actor, id))
    }

    async fn attached_upload(
        &self,
        message: MessageId,
        id: UploadId,
    ) -> Result<Upload, StoreError> {
        self.readers.read(|conn| attached_upload(conn, message, id))
    }

    async fn uploads_to_sweep(
        &self,
        now: Timestamp,
        limit: u32,
    ) -> Result<Vec<UploadId>, StoreError> {
        self.readers.read(|conn| uploads_to_sweep(conn, now, limit))
    }

    async fn start_deleting_upload(
        &self,
        id: UploadId,
        now: Timestamp,
    ) -> Result<bool, StoreError> {
        self.writer
            .write(move |conn| start_deleting_upload(conn, id, now))
            .await
    }

    async fn abandon_upload(&self, id: UploadId) -> Result<bool, StoreError> {
        self.writer
            .write(move |conn| abandon_upload(conn, id))
            .await
    }

    async fn delete_upload(&self, id: UploadId) -> Result<(), StoreError> {
        self.writer.write(move |conn| delete_upload(conn, id)).await
    }

    async fn use_upload_url(&self, nonce: u128, expires_at: Timestamp) -> Result<bool, StoreError> {
        self.writer
            .write(move |conn| use_upload_url(conn, nonce, expires_at))
            .await
    }

    async fn sweep_upload_urls(&self, now: Timestamp, limit: u32) -> Result<u64, StoreError> {
        self.writer
            .write(move |conn| sweep_upload_urls(conn, now, limit))
            .await
    }
}

/// Attaches the uploads `new` names to `message` (inserted already from
/// `new`) of the ticket `ticket`, whose files hold `ticket_bytes` so far,
/// as `actor`, within `new`'s limits, at its sending time: [`check_attachments`] on the uploads read here, then the links
/// and the ticket's counts, in the caller's transaction. Returns the
/// attachments in the order named.
pub(super) fn attach(
    conn: &Connection,
    actor: &Actor,
    ticket: TicketId,
    ticket_bytes: u64,
    message: &Message,
    new: &NewMessage,
) -> Result<Vec<Attachment>, StoreError> {
    let (named, limits, now) = (&new.attachments, new.attach_limits, new.sent_at);
    if named.is_empty() {
        return Ok(Vec::new());
    }
    // Refused before a single upload is read, however many are named.
    check_count(named, limits)?;
    let mut found = Vec::with_capacity(named.len());
    for id in named {
        if let Some(upload) = find_any_upload(conn, *id)? {
            found.push(upload);
        }
    }
    let states: Vec<UploadState> = found.iter().map(Upload::state).collect();
    check_attachments(
        actor,
        named,
        &states,
        message.encrypted,
        ticket_bytes,
        now,
        limits,
    )?;
    let mut attachments = Vec::with_capacity(named.len());
    let mut bytes = 0u64;
    for (position, id) in named.iter().enumerate() {
        let linked = conn
            .prepare_cached(
                "UPDATE upload SET message_id = ?2, position = ?3
                 WHERE id = ?1 AND message_id IS NULL AND state = 'stored'",
            )
            .and_then(|mut update| update.execute(params![id.key(), message.id.key(), position]))
            .map_err(map_error)?;
        // The rule passed on what was read in this transaction; a link that
        // does not take means the two disagree, and nothing is kept.
        if linked != 1 {
            return Err(StoreError::other("an upload changed while it was attached"));
        }
        if let Some(upload) = found.iter().find(|upload| upload.id == *id) {
            bytes = bytes.saturating_add(upload.size);
            attachments.push(upload.attachment());
        }
    }
    conn.prepare_cached(
        "UPDATE ticket SET attachment_count = attachment_count + ?2,
                           attachment_bytes = attachment_bytes + ?3
         WHERE id = ?1",
    )
    .and_then(|mut update| {
        update.execute(params![
            ticket.key(),
            attachments.len(),
            i64::try_from(bytes).unwrap_or(i64::MAX)
        ])
    })
    .map_err(map_error)?;
    Ok(attachments)
}

/// Fills in the attachments of `messages`, all of one ticket, in one
/// query.
pub(super) fn fill_attachments(
    conn: &Connection,
    messages: &mut [Message],
) -> Result<(), StoreError> {
    let keys: Vec<String> = messages.iter().map(|message| message.id.key()).collect();
    let keys =
        serde_json::to_string(&keys).map_err(|error| StoreError::other(error.to_string()))?;
    let found = conn
        .prepare_cached(
            "SELECT message_id, id, filename, content_type, size FROM upload
             WHERE message_id IN (SELECT value FROM json_each(?1))
             ORDER BY message_id, position",
        )
        .and_then(|mut select| {
            select
                .query_map([keys], |row| {
                    let size: i64 = row.get(4)?;
                    Ok((
                        parsed(row, 0, MessageId::from_key)?,
                        Attachment {
                            id: parsed(row, 1, UploadId::from_key)?,
                            filename: row.get(2)?,
                            content_type: row.get(3)?,
                            size: u64::try_from(size).unwrap_or(0),
                        },
                    ))
                })?
                .collect::<rusqlite::Result<Vec<_>>>()
        })
        .map_err(map_error)?;
    distribute_attachments(messages, found);
    Ok(())
}

/// Any upload, whoever's (the rule tells owners apart).
fn find_any_upload(conn: &Connection, id: UploadId) -> Result<Option<Upload>, StoreError> {
    conn.prepare_cached(&format!(
        "SELECT {UPLOAD_COLUMNS} FROM upload WHERE id = ?1"
    ))
    .and_then(|mut select| select.query_row([id.key()], upload).optional())
    .map_err(map_error)
}
