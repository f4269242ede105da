//! The records of uploads.

use async_trait::async_trait;
use tokio_postgres::Row;

use crate::core::access::Actor;
use crate::core::id::{UploadId, UserId, WorkspaceId};
use crate::core::time::Timestamp;
use crate::core::upload::{NewUpload, Upload};
use crate::store::postgres::rows::{get, parsed, timestamp, to_sql_time};
use crate::store::postgres::{PostgresStore, execute, query, query_opt};
use crate::store::{StoreError, UploadStore};

const UPLOAD_COLUMNS: &str = "id, workspace_id, owner_id, filename, content_type, size, sha256, \
                              encrypted, state, created_at, expires_at, message_id IS NOT NULL";

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
        encrypted: get(row, 7)?,
        stored: state == "stored",
        created_at: timestamp(row, 9)?,
        expires_at: timestamp(row, 10)?,
        attached: get(row, 11)?,
    })
}

#[async_trait]
impl UploadStore for PostgresStore {
    async fn create_upload(&self, actor: &Actor, new: NewUpload) -> Result<Upload, StoreError> {
        let client = self.client().await?;
        let row = query_opt(
            &client,
            &format!(
                "INSERT INTO upload (id, workspace_id, owner_id, filename, content_type, size,
                                     sha256, encrypted, state, created_at, expires_at)
                 VALUES ($1, $2, $3, $4, $5, 0, '', $6, 'pending', $7, $8)
                 RETURNING {UPLOAD_COLUMNS}"
            ),
            &[
                &new.id.key(),
                &actor.workspace_id.key(),
                &actor.user_id.key(),
                &new.filename.as_str(),
                &new.content_type.as_str(),
                &new.encrypted,
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
    ) -> Result<Upload, StoreError> {
        let size = i64::try_from(size)
            .map_err(|_| StoreError::other("an upload's size is out of range"))?;
        let client = self.client().await?;
        let row = query_opt(
            &client,
            &format!(
                "UPDATE upload SET state = 'stored', size = $2, sha256 = $3, expires_at = $4
                 WHERE id = $1 AND state = 'pending'
                 RETURNING {UPLOAD_COLUMNS}"
            ),
            &[&id.key(), &size, &sha256, &to_sql_time(expires_at)],
        )
        .await?
        .ok_or(StoreError::NotFound)?;
        upload(&row)
    }

    async fn find_upload(&self, actor: &Actor, id: UploadId) -> Result<Upload, StoreError> {
        let client = self.client().await?;
        let row = query_opt(
            &client,
            &format!("SELECT {UPLOAD_COLUMNS} FROM upload WHERE id = $1 AND owner_id = $2"),
            &[&id.key(), &actor.user_id.key()],
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
            &client,
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
            &client,
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
            &client,
            "UPDATE upload SET state = 'deleting' WHERE id = $1 AND message_id IS NULL",
            &[&id.key()],
        )
        .await?;
        Ok(updated > 0)
    }

    async fn delete_upload(&self, id: UploadId) -> Result<(), StoreError> {
        let client = self.client().await?;
        execute(
            &client,
            "DELETE FROM upload WHERE id = $1 AND state = 'deleting'",
            &[&id.key()],
        )
        .await?;
        Ok(())
    }

    async fn use_upload_url(&self, nonce: u128, expires_at: Timestamp) -> Result<bool, StoreError> {
        let client = self.client().await?;
        let inserted = execute(
            &client,
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
            &client,
            "DELETE FROM upload_url_use WHERE nonce IN
                 (SELECT nonce FROM upload_url_use WHERE expires_at <= $1 LIMIT $2)",
            &[&to_sql_time(now), &i64::from(limit)],
        )
        .await
    }
}
