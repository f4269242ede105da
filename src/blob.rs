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
pub mod s3;

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
    /// Objects in a bucket of an S3-compatible store (shared by every
    /// node), keyed `PREFIX/<upload id>`; reached as the standard AWS
    /// variables say (see [`s3::S3Blobs::from_env`]).
    S3 {
        /// The bucket's name.
        bucket: String,
        /// The key prefix, without leading or trailing `/`; empty for none.
        prefix: String,
    },
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

    /// The `blob_store` setting that names this location.
    pub fn as_setting(&self) -> String {
        match self {
            BlobLocation::Directory(dir) => format!("file://{}", dir.display()),
            BlobLocation::Database => "database".to_owned(),
            BlobLocation::S3 { bucket, prefix } if prefix.is_empty() => format!("s3://{bucket}"),
            BlobLocation::S3 { bucket, prefix } => format!("s3://{bucket}/{prefix}"),
        }
    }

    /// Parses `database`, `file://DIR` (`file:///abs/DIR` for an absolute
    /// path) or `s3://BUCKET[/PREFIX]`.
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
        if let Some(rest) = text.strip_prefix("s3://") {
            return parse_s3(rest).map_err(|why| format!("blob_store {text:?}: {why}"));
        }
        match text.strip_prefix("file://") {
            Some("") | None => Err(format!(
                "blob_store must be \"database\", file://DIR or s3://BUCKET[/PREFIX], \
                 not {text:?}"
            )),
            Some(dir) => Ok(BlobLocation::Directory(PathBuf::from(dir))),
        }
    }
}

/// The bucket and prefix of `s3://BUCKET[/PREFIX]`, given what follows
/// `s3://`. Bucket names are held to the characters every S3-compatible
/// store accepts; each part of the prefix must be a plain key segment.
fn parse_s3(rest: &str) -> Result<BlobLocation, String> {
    let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
    if bucket.is_empty() {
        return Err("the bucket is missing (s3://BUCKET[/PREFIX])".into());
    }
    let allowed = |c: char| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '.';
    if !(3..=63).contains(&bucket.len()) || !bucket.chars().all(allowed) {
        return Err(format!(
            "{bucket:?} is not a bucket name (3 to 63 lowercase letters, digits, '-' or '.')"
        ));
    }
    let prefix = prefix.trim_matches('/');
    if !prefix.is_empty() {
        object_store::path::Path::parse(prefix)
            .map_err(|_| format!("{prefix:?} is not a key prefix (empty, '.' or '..' parts)"))?;
    }
    Ok(BlobLocation::S3 {
        bucket: bucket.to_owned(),
        prefix: prefix.to_owned(),
    })
}

/// Opens the blob store at `location`; `database` is the server's database
/// (whose tables hold blobs in the `Database` case, over a small pool of
/// their own). Nothing is sent to an S3 store until the first request.
///
/// # Errors
/// The directory cannot be created or read, the pool cannot be built, or
/// the S3 settings in the environment are invalid.
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
        (BlobLocation::S3 { bucket, prefix }, _) => {
            let prefix = object_store::path::Path::parse(prefix)
                .map_err(|error| format!("blob_store: {error}"))?;
            s3::S3Blobs::from_env(bucket, prefix).map(|blobs| Arc::new(blobs) as Arc<dyn BlobStore>)
        }
    }
}

/// Opens the blob store at `location` to read what it holds, as
/// [`open`] does, except that a directory is neither created nor cleaned
/// (`ticketd export` changes nothing).
///
/// # Errors
/// As [`open`].
pub fn open_to_read(
    location: &BlobLocation,
    database: &DatabaseUrl,
) -> Result<Arc<dyn BlobStore>, String> {
    match location {
        BlobLocation::Directory(dir) => Ok(Arc::new(local::LocalBlobs::existing(dir))),
        other => open(other, database),
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

    /// Removes what a crash in the middle of a [`BlobStore::put`] left
    /// behind (a store whose writes leave nothing half-done has nothing to
    /// remove), once it is old enough that no `put` can still be writing
    /// it; returns how many pieces it removed.
    ///
    /// # Errors
    /// `Storage`.
    async fn remove_abandoned(&self) -> Result<u64, BlobError> {
        Ok(0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sqlite() -> DatabaseUrl {
        DatabaseUrl::Sqlite(PathBuf::from("/var/lib/ticketd/ticketd.db"))
    }

    fn s3(bucket: &str, prefix: &str) -> BlobLocation {
        BlobLocation::S3 {
            bucket: bucket.into(),
            prefix: prefix.into(),
        }
    }

    #[test]
    fn s3_locations_name_a_bucket_and_an_optional_prefix() {
        for (text, expected) in [
            ("s3://tickets", s3("tickets", "")),
            ("s3://tickets/", s3("tickets", "")),
            ("s3://tickets/uploads", s3("tickets", "uploads")),
            ("s3://tickets/uploads/", s3("tickets", "uploads")),
            ("s3://my.bucket-2/a/b/c", s3("my.bucket-2", "a/b/c")),
        ] {
            assert_eq!(BlobLocation::parse(text, &sqlite()), Ok(expected), "{text}");
        }
    }

    #[test]
    fn malformed_s3_locations_are_refused_with_the_reason() {
        for (text, reason) in [
            ("s3://", "the bucket is missing"),
            ("s3:///uploads", "the bucket is missing"),
            ("s3://ab", "is not a bucket name"),
            ("s3://Tickets", "is not a bucket name"),
            ("s3://tick_ets", "is not a bucket name"),
            ("s3://tickets/a//b", "is not a key prefix"),
            ("s3://tickets/a/../b", "is not a key prefix"),
        ] {
            let error = BlobLocation::parse(text, &sqlite()).expect_err(text);
            assert!(error.contains(reason), "{text}: {error}");
            assert!(error.contains(text), "{text}: {error}");
        }
    }

    #[test]
    fn other_locations_keep_their_meaning_and_the_message_lists_every_form() {
        assert_eq!(
            BlobLocation::parse("file:///srv/blobs", &sqlite()),
            Ok(BlobLocation::Directory(PathBuf::from("/srv/blobs")))
        );
        let error = BlobLocation::parse("ftp://blobs", &sqlite()).expect_err("refused");
        assert_eq!(
            error,
            "blob_store must be \"database\", file://DIR or s3://BUCKET[/PREFIX], \
             not \"ftp://blobs\""
        );
    }
}
