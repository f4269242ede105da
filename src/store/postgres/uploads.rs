//! The records of uploads.

use async_trait::async_trait;
use deadpool_postgres::GenericClient;
use tokio_postgres::Row;

use crate::core::access::Actor;
use crate::core::id::{MessageId, TicketId, UploadId, UserId, WorkspaceId};
use crate::core::message::{Message, NewMessage};
use crate::core::time::Timestamp;
use crate::core::upload::attach::{UploadState, check_attachments, check_count};
use crate::core::upload::{Attachment, NewUpload, Upload};
use crate::store::idempotency::Completion;
use crate::store::postgres::idempotency;
use crate::store::postgres::rows::{get, parsed, timestamp, to_sql_time};
use crate::store::postgres::{PostgresStore, execute, query, query_opt};
use crate::store::{StoreError, UploadStore, Written, distribute_attachments};

const UPLOAD_COLUMNS: &str = "id, workspace_id, owner_id, filename, content_type, size, sha256, \
                              content_key, state, created_at, expires_at, message_id IS NOT NULL, \
                              numeric_id";

fn upload(row: &Row) -> Result<Upload, StoreError> {
    let size: i64 = get(row, 5)?;
    let state: &str = get(row, 8)?;
    Ok(Upload {
        id: parsed(row, 0, UploadId::from_key)?,
        workspace_id: parsed(row, 1, WorkspaceId::from_key)?,
        owner_id: parsed(row, 2, UserId::from_key)?,
        filename: get(row, 3)?,
        content_type: get(row, 4)?,
        size: u64::try_from(size).unwrap_or(0),
        sha256: get(row, 6)?,
        content_key: get(row, 7)?,
        stored: state == "stored",
        created_at: timestamp(row, 9)?,
        expires_at: timestamp(row, 10)?,
        attached: get(row, 11)?,
        numeric_id: get(row, 12)?,
    })
}

#[async_trait]
impl UploadStore for PostgresStore {
    async fn create_upload(&self, actor: &Actor, new: NewUpload) -> Result<Upload, StoreError> {
        let client = self.client().await?;
        let row = query_opt(
            &*client,
            &format!(
                "INSERT INTO upload (id, workspace_id, owner_id, filename, content_type, size,
                                     sha256, encrypted, content_key, state, created_at,
                                     expires_at)
                 VALUES ($1, $2, $3, $4, $5, 0, '', $6, $7, 'pending', $8, $9)
                 RETURNING {UPLOAD_COLUMNS}"
            ),
            &[
                &new.id.key(),
                &actor.workspace_id.key(),
                &actor.user_id.key(),
                &new.filename.as_str(),
                &new.content_type.as_str(),
                &new.content_key.is_some(),
                &new.content_key,
                &to_sql_time(new.created_at),
                &to_sql_time(new.expires_at),
            ],
        )
        .await?
        .ok_or_else(|| StoreError::other("the insert returned no row"))?;
        upload(&row)
    }

    async fn store_upload(
        &self,
        id: UploadId,
        size: u64,
        sha256: String,
        expires_at: Timestamp,
        completion: Option<Completion<Upload>>,
    ) -> Result<Written<Upload>, StoreError> {
        let size = i64::try_from(size)
            .map_err(|_| StoreError::other("an upload's size is out of range"))?;
        let mut client = self.client().await?;
        let tx = idempotency::begin(&mut client, completion.as_ref()).await?;
        let row = query_opt(
            &tx,
            &format!(
                "UPDATE upload SET state = 'stored', size = $2, sha256 = $3, expires_at = $4
                 WHERE id = $1 AND state = 'pending'
                 RETURNING {UPLOAD_COLUMNS}"
            ),
            &[&id.key(), &size, &sha256, &to_sql_time(expires_at)],
        )
        .await?
        .ok_or(StoreError::NotFound)?;
        let stored = upload(&row)?;
        idempotency::commit(tx, completion, stored).await
    }

    async fn find_upload(&self, actor: &Actor, id: UploadId) -> Result<Upload, StoreError> {
        let client = self.client().await?;
        let row = query_opt(
            &*client,
            &format!("SELECT {UPLOAD_COLUMNS} FROM upload WHERE id = $1 AND owner_id = $2"),
            &[&id.key(), &actor.user_id.key()],
        )
        .await?
        .ok_or(StoreError::NotFound)?;
        upload(&row)
    }

    async fn attached_upload(
        &self,
        message: MessageId,
        id: UploadId,
    ) -> Result<Upload, StoreError> {
        let client = self.client().await?;
        let row = query_opt(
            &*client,
            &format!("SELECT {UPLOAD_COLUMNS} FROM upload WHERE id = $1 AND message_id = $2"),
            &[&id.key(), &message.key()],
        )
        .await?
        .ok_or(StoreError::NotFound)?;
        upload(&row)
    }

    async fn uploads_to_sweep(
        &self,
        now: Timestamp,
        limit: u32,
    ) -> Result<Vec<UploadId>, StoreError> {
        let client = self.client().await?;
        query(
            &*client,
            "SELECT id FROM upload
             WHERE message_id IS NULL AND (expires_at <= $1 OR state = 'deleting')
             ORDER BY expires_at LIMIT $2",
            &[&to_sql_time(now), &i64::from(limit)],
        )
        .await?
        .iter()
        .map(|row| parsed(row, 0, UploadId::from_key))
        .collect()
    }

    async fn start_deleting_upload(
        &self,
        id: UploadId,
        now: Timestamp,
    ) -> Result<bool, StoreError> {
        let client = self.client().await?;
        let updated = execute(
            &*client,
            "UPDATE upload SET state = 'deleting'
             WHERE id = $1 AND message_id IS NULL AND (expires_at <= $2 OR state = 'deleting')",
            &[&id.key(), &to_sql_time(now)],
        )
        .await?;
        Ok(updated > 0)
    }

    async fn abandon_upload(&self, id: UploadId) -> Result<bool, StoreError> {
        let client = self.client().await?;
        let updated = execute(
            &*client,
            "UPDATE upload SET state = 'deleting' WHERE id = $1 AND message_id IS NULL",
            &[&id.key()],
        )
        .await?;
        Ok(updated > 0)
    }

    async fn delete_upload(&self, id: UploadId) -> Result<(), StoreError> {
        let client = self.client().await?;
        execute(
            &*client,
            "DELETE FROM upload WHERE id = $1 AND state = 'deleting'",
            &[&id.key()],
        )
        .await?;
        Ok(())
    }

    async fn use_upload_url(&self, nonce: u128, expires_at: Timestamp) -> Result<bool, StoreError> {
        let client = self.client().await?;
        let inserted = execute(
            &*client,
            "INSERT INTO upload_url_use (nonce, expires_at) VALUES ($1, $2)
             ON CONFLICT (nonce) DO NOTHING",
            &[&format!("{nonce:032x}"), &to_sql_time(expires_at)],
        )
        .await?;
        Ok(inserted > 0)
    }

    async fn sweep_upload_urls(&self, now: Timestamp, limit: u32) -> Result<u64, StoreError> {
        let client = self.client().await?;
        execute(
            &*client,
            "DELETE FROM upload_url_use WHERE nonce IN
                 (SELECT nonce FROM upload_url_use WHERE expires_at <= $1 LIMIT $2)",
            &[&to_sql_time(now), &i64::from(limit)],
        )
        .await
    }
}

/// Attaches the uploads `new` names to `message` (inserted already from
/// `new`) of the ticket `ticket`, whose files hold `ticket_bytes` so far,
/// as `actor`, within `new`'s limits, at its sending time: the uploads are read and locked (`FOR UPDATE`: two messages
/// naming one upload take turns, and the second finds it attached), then
/// [`check_attachments`], the links and the ticket's counts, all in the
/// caller's transaction. Returns the attachments in the order named.
pub(super) async fn attach<C: GenericClient>(
    client: &C,
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
    // In id order, so that concurrent messages lock shared uploads in one
    // order and never deadlock.
    let mut in_order = named.to_vec();
    in_order.sort();
    in_order.dedup();
    for id in &in_order {
        let row = query_opt(
            client,
            // Only the actor's own are locked; anyone else's counts as
            // unknown, as a missing one does.
            &format!(
                "SELECT {UPLOAD_COLUMNS} FROM upload WHERE id = $1 AND owner_id = $2 FOR UPDATE"
            ),
            &[&id.key(), &actor.user_id.key()],
        )
        .await?;
        if let Some(row) = row {
            found.push(upload(&row)?);
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
        let position = i32::try_from(position).unwrap_or(i32::MAX);
        let linked = execute(
            client,
            "UPDATE upload SET message_id = $2, position = $3
             WHERE id = $1 AND message_id IS NULL AND state = 'stored'",
            &[&id.key(), &message.id.key(), &position],
        )
        .await?;
        // The rule passed on the rows locked above; a link that does not
        // take means the two disagree, and nothing is kept.
        if linked != 1 {
            return Err(StoreError::other("an upload changed while it was attached"));
        }
        if let Some(upload) = found.iter().find(|upload| upload.id == *id) {
            bytes = bytes.saturating_add(upload.size);
            attachments.push(upload.attachment());
        }
    }
    let count = i64::try_from(attachments.len()).unwrap_or(i64::MAX);
    let bytes = i64::try_from(bytes).unwrap_or(i64::MAX);
    execute(
        client,
        "UPDATE ticket SET attachment_count = attachment_count + $2,
                           attachment_bytes = attachment_bytes + $3
         WHERE id = $1",
        &[&ticket.key(), &count, &bytes],
    )
    .await?;
    Ok(attachments)
}

/// Fills in the attachments of `messages`, all of one ticket, in one
/// query.
pub(super) async fn fill_attachments<C: GenericClient>(
    client: &C,
    messages: &mut [Message],
) -> Result<(), StoreError> {
    let keys: Vec<String> = messages.iter().map(|message| message.id.key()).collect();
    let found = query(
        client,
        "SELECT message_id, id, filename, content_type, size FROM upload
         WHERE message_id = ANY($1) ORDER BY message_id, position",
        &[&keys],
    )
    .await?
    .iter()
    .map(|row| {
        Ok((
            parsed(row, 0, MessageId::from_key)?,
            Attachment {
                id: parsed(row, 1, UploadId::from_key)?,
                filename: get(row, 2)?,
                content_type: get(row, 3)?,
                size: u64::try_from(get::<i64>(row, 4)?).unwrap_or(0),
            },
        ))
    })
    .collect::<Result<Vec<_>, StoreError>>()?;
    distribute_attachments(messages, found);
    Ok(())
}
