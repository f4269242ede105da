//! Blobs in PostgreSQL: the default with a PostgreSQL database, so every
//! node shares the bytes with nothing else to run.
//!
//! A blob is stored as chunks of [`CHUNK_BYTES`] (the last may be shorter)
//! in `upload_blob_chunk`, each written by its own short statement, so a
//! slow client never holds a connection for its whole upload; the
//! `upload_blob` row, written last, says the blob is whole. The store has a
//! pool of its own, so large transfers never wait for, or starve, the
//! connections the API's requests use.

use std::io;
use std::ops::RangeInclusive;

use async_trait::async_trait;
use bytes::{Bytes, BytesMut};
use deadpool_postgres::{Object, Pool};
use futures_util::StreamExt;

use crate::blob::{BlobError, BlobStore, ByteStream};
use crate::core::id::UploadId;
use crate::store::StoreError;
use crate::store::postgres::{PoolOptions, pool};

/// Bytes per stored chunk.
pub const CHUNK_BYTES: usize = 256 * 1024;

/// Blobs in the tables of a PostgreSQL database (migration 0005).
#[derive(Clone)]
pub struct PostgresBlobs {
    pool: Pool,
}

impl std::fmt::Debug for PostgresBlobs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("PostgresBlobs")
    }
}

fn storage(error: impl std::error::Error + Send + Sync + 'static) -> BlobError {
    BlobError::storage(io::Error::other(error))
}

impl PostgresBlobs {
    /// Blobs in the database at `url` (migrated already), over a pool of
    /// `options.max_connections` connections of its own.
    ///
    /// # Errors
    /// If the URL or the pool's settings are invalid.
    pub fn connect(url: &str, options: PoolOptions) -> Result<Self, StoreError> {
        Ok(Self {
            pool: pool(url, options)?,
        })
    }

    async fn client(&self) -> Result<Object, BlobError> {
        self.pool.get().await.map_err(storage)
    }

    /// The size of a whole blob; `None` if there is none.
    async fn size(&self, id: UploadId) -> Result<Option<u64>, BlobError> {
        let client = self.client().await?;
        let row = client
            .query_opt(
                "SELECT size FROM upload_blob WHERE upload_id = $1",
                &[&id.key()],
            )
            .await
            .map_err(storage)?;
        row.map(|row| row.try_get::<_, i64>(0).map(|size| size.max(0) as u64))
            .transpose()
            .map_err(storage)
    }

    async fn write_chunk(&self, id: UploadId, seq: i32, bytes: &[u8]) -> Result<(), BlobError> {
        let client = self.client().await?;
        client
            .execute(
                "INSERT INTO upload_blob_chunk (upload_id, seq, bytes) VALUES ($1, $2, $3)",
                &[&id.key(), &seq, &bytes],
            )
            .await
            .map_err(|error| {
                if error.code() == Some(&tokio_postgres::error::SqlState::UNIQUE_VIOLATION) {
                    BlobError::Exists
                } else {
                    storage(error)
                }
            })?;
        Ok(())
    }

    async fn write(&self, id: UploadId, mut bytes: ByteStream) -> Result<u64, BlobError> {
        let mut pending = BytesMut::with_capacity(CHUNK_BYTES);
        let mut seq = 0i32;
        let mut size = 0u64;
        while let Some(chunk) = bytes.next().await {
            let mut chunk = chunk.map_err(|error| BlobError::Source(std::sync::Arc::new(error)))?;
            size += chunk.len() as u64;
            while !chunk.is_empty() {
                let take = chunk.len().min(CHUNK_BYTES - pending.len());
                pending.extend_from_slice(&chunk.split_to(take));
                if pending.len() == CHUNK_BYTES {
                    self.write_chunk(id, seq, &pending).await?;
                    pending.clear();
                    seq += 1;
                }
            }
        }
        // The last chunk, shorter (and the only one, empty, of an empty blob).
        if !pending.is_empty() || seq == 0 {
            self.write_chunk(id, seq, &pending).await?;
        }
        let size_column = i64::try_from(size).map_err(storage_overflow)?;
        let client = self.client().await?;
        client
            .execute(
                "INSERT INTO upload_blob (upload_id, size) VALUES ($1, $2)",
                &[&id.key(), &size_column],
            )
            .await
            .map_err(storage)?;
        Ok(size)
    }

    async fn remove(&self, id: UploadId, whole: bool) -> Result<(), BlobError> {
        let client = self.client().await?;
        if whole {
            client
                .execute("DELETE FROM upload_blob WHERE upload_id = $1", &[&id.key()])
                .await
                .map_err(storage)?;
        }
        client
            .execute(
                "DELETE FROM upload_blob_chunk WHERE upload_id = $1",
                &[&id.key()],
            )
            .await
            .map_err(storage)?;
        Ok(())
    }
}

fn storage_overflow(_: std::num::TryFromIntError) -> BlobError {
    BlobError::storage(io::Error::other("a blob's size is out of range"))
}

#[async_trait]
impl BlobStore for PostgresBlobs {
    async fn put(&self, id: UploadId, bytes: ByteStream) -> Result<u64, BlobError> {
        if self.size(id).await?.is_some() {
            return Err(BlobError::Exists);
        }
        match self.write(id, bytes).await {
            Ok(size) => Ok(size),
            // Another write holds the id: its chunks are not ours to drop.
            Err(BlobError::Exists) => Err(BlobError::Exists),
            Err(error) => {
                // Best effort: chunks left by a failure are never read (no
                // upload_blob row says they are whole), and the sweep
                // deletes them with the upload.
                let _ = self.remove(id, false).await;
                Err(error)
            }
        }
    }

    async fn get(
        &self,
        id: UploadId,
        range: Option<RangeInclusive<u64>>,
    ) -> Result<ByteStream, BlobError> {
        let size = self.size(id).await?.ok_or(BlobError::NotFound)?;
        if size == 0 {
            return Ok(Box::pin(futures_util::stream::empty()));
        }
        let range = range.unwrap_or(0..=size - 1);
        let (first, last) = (*range.start(), (*range.end()).min(size - 1));
        let chunk = CHUNK_BYTES as u64;
        let seqs = (first / chunk)..=(last / chunk);
        let blobs = self.clone();
        let stream = futures_util::stream::iter(seqs).then(move |seq| {
            let blobs = blobs.clone();
            async move {
                let client = blobs.client().await.map_err(io::Error::other)?;
                let seq_column = i32::try_from(seq).map_err(io::Error::other)?;
                let row = client
                    .query_one(
                        "SELECT bytes FROM upload_blob_chunk WHERE upload_id = $1 AND seq = $2",
                        &[&id.key(), &seq_column],
                    )
                    .await
                    .map_err(io::Error::other)?;
                let bytes: Vec<u8> = row.try_get(0).map_err(io::Error::other)?;
                let start = seq * chunk;
                let from = first.saturating_sub(start) as usize;
                let to = ((last - start) as usize + 1).min(bytes.len());
                Ok(Bytes::from(bytes).slice(from.min(to)..to))
            }
        });
        Ok(Box::pin(stream))
    }

    async fn delete(&self, id: UploadId) -> Result<(), BlobError> {
        self.remove(id, true).await
    }
}
