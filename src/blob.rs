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
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::Arc;

use async_trait::async_trait;
use bytes::Bytes;
use futures_util::Stream;

use crate::core::id::UploadId;
use crate::store::DatabaseUrl;

/// Where a server keeps its blobs (`blob_store`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BlobLocation {
    /// Files in a local directory.
    Directory(PathBuf),
    /// The tables of the PostgreSQL database (shared by every node).
    Database,
}

impl BlobLocation {
    /// Where blobs go unless configured: into a PostgreSQL database, or
    /// into the directory `blobs` beside a SQLite file.
    pub fn default_for(database: &DatabaseUrl) -> Self {
        match database {
            DatabaseUrl::Postgres(_) => BlobLocation::Database,
            DatabaseUrl::Sqlite(path) => BlobLocation::Directory(
                path.parent()
                    .map_or_else(|| PathBuf::from("blobs"), |dir| dir.join("blobs")),
            ),
        }
    }

    /// Parses `database` or `file://DIR` (`file:///abs/DIR` for an absolute
    /// path).
    ///
    /// # Errors
    /// A message naming what is wrong.
    pub fn parse(text: &str, database: &DatabaseUrl) -> Result<Self, String> {
        if text == "database" {
            return match database {
                DatabaseUrl::Postgres(_) => Ok(BlobLocation::Database),
                DatabaseUrl::Sqlite(_) => {
                    Err("blob_store = \"database\" needs a PostgreSQL database; \
                     with SQLite use file://DIR"
                        .into())
                }
            };
        }
        match text.strip_prefix("file://") {
            Some("") | None => Err(format!(
                "blob_store must be \"database\" or file://DIR, not {text:?}"
            )),
            Some(dir) => Ok(BlobLocation::Directory(PathBuf::from(dir))),
        }
    }
}

/// Opens the blob store at `location`; `database` is the server's database
/// (whose tables hold blobs in the `Database` case, over a small pool of
/// their own).
///
/// # Errors
/// The directory cannot be created or read, or the pool cannot be built.
pub fn open(location: &BlobLocation, database: &DatabaseUrl) -> Result<Arc<dyn BlobStore>, String> {
    match (location, database) {
        (BlobLocation::Directory(dir), _) => local::LocalBlobs::open(dir)
            .map(|blobs| Arc::new(blobs) as Arc<dyn BlobStore>)
            .map_err(|error| format!("cannot open the blob directory {}: {error}", dir.display())),
        (BlobLocation::Database, DatabaseUrl::Postgres(url)) => {
            let options = crate::store::postgres::PoolOptions {
                max_connections: 4,
                ..crate::store::postgres::PoolOptions::default()
            };
            postgres::PostgresBlobs::connect(url, options)
                .map(|blobs| Arc::new(blobs) as Arc<dyn BlobStore>)
                .map_err(|error| error.to_string())
        }
        (BlobLocation::Database, DatabaseUrl::Sqlite(_)) => {
            Err("blob_store = \"database\" needs a PostgreSQL database".into())
        }
    }
}

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
