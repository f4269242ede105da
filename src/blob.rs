//! Where the bytes of uploads live: one trait, [`BlobStore`], apart from
//! the [`crate::store::Store`] that keeps their records. Bytes travel as
//! streams of chunks ([`ByteStream`]) both ways, so no file is ever whole in
//! memory, and they never pass through the SQL stores' readers or writer.
//!
//! A blob is written once under its upload's id and is durable when
//! [`BlobStore::put`] returns; a crash midway leaves nothing under the id.
//! Checking what is written (its size, its media type, its sha256) is the
//! caller's, on the stream it hands over, so every backend gets the same
//! checks.

pub mod inspect;
pub mod local;
pub mod postgres;

use std::io;
use std::ops::RangeInclusive;
use std::pin::Pin;
use std::sync::Arc;

use async_trait::async_trait;
use bytes::Bytes;
use futures_util::Stream;

use crate::core::id::UploadId;

/// Bytes in chunks, as read from a request or from a blob.
pub type ByteStream = Pin<Box<dyn Stream<Item = io::Result<Bytes>> + Send>>;

/// Why a blob operation did not succeed.
#[derive(Debug, Clone, thiserror::Error)]
pub enum BlobError {
    /// No blob is stored under the id.
    #[error("no such blob")]
    NotFound,
    /// A blob is stored under the id already; nothing was written.
    #[error("a blob is stored under this id already")]
    Exists,
    /// The stream handed to [`BlobStore::put`] failed (the client went away,
    /// or the caller's checks refused the bytes); nothing was kept.
    #[error("the bytes to store failed: {0}")]
    Source(Arc<io::Error>),
    /// The storage failed or cannot be reached.
    #[error("blob storage failed: {0}")]
    Storage(Arc<io::Error>),
}

impl BlobError {
    /// A storage failure caused by `error`.
    pub fn storage(error: io::Error) -> Self {
        BlobError::Storage(Arc::new(error))
    }
}

/// Stores, reads and deletes blobs by upload id.
#[async_trait]
pub trait BlobStore: Send + Sync + 'static {
    /// Stores `bytes` under `id`; returns how many were stored. When it
    /// returns, the blob is durable. If the stream fails or the store does,
    /// nothing is kept under `id`.
    ///
    /// # Errors
    /// `Exists` if a blob is stored under `id`; `Source` if `bytes` failed;
    /// `Storage`.
    async fn put(&self, id: UploadId, bytes: ByteStream) -> Result<u64, BlobError>;

    /// The blob's bytes, or only those in `range` (first and last
    /// inclusive, within the blob).
    ///
    /// # Errors
    /// `NotFound`; `Storage`.
    async fn get(
        &self,
        id: UploadId,
        range: Option<RangeInclusive<u64>>,
    ) -> Result<ByteStream, BlobError>;

    /// Deletes the blob under `id`; deleting one that is not there succeeds.
    ///
    /// # Errors
    /// `Storage`.
    async fn delete(&self, id: UploadId) -> Result<(), BlobError>;
}
