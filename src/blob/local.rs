//! Blobs as files in a local directory: the default with SQLite, under the
//! data directory.
//!
//! A blob is written to a new owner-only temporary file beside its final
//! name (see [`crate::private_file`]), synced, renamed to the upload's id
//! and the directory synced: a crash midway leaves at most a temporary file,
//! which nothing references and which is removed once it is an hour old
//! (by a later start, or by the upload sweep's hourly round), so that a
//! server never takes the uploads in progress of another one beside it.

use std::io;
use std::ops::RangeInclusive;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use async_trait::async_trait;
use futures_util::StreamExt;
use tokio::io::{AsyncReadExt, AsyncSeekExt, AsyncWriteExt};
use tokio_util::io::ReaderStream;

use crate::blob::{BlobError, BlobStore, ByteStream};
use crate::core::id::UploadId;
use crate::private_file;

/// Bytes read from a file per chunk of a download.
const READ_CHUNK: usize = 64 * 1024;

/// How old a temporary file must be to be removed as abandoned.
const ABANDONED_AFTER: std::time::Duration = std::time::Duration::from_secs(60 * 60);

/// Blobs as files named by their upload's id in one directory.
#[derive(Debug, Clone)]
pub struct LocalBlobs {
    dir: PathBuf,
}

impl LocalBlobs {
    /// Blobs in `dir`, created (owner-only, its name synced) if missing.
    /// Temporary files a crash left behind are removed once an hour old.
    ///
    /// # Errors
    /// If the directory cannot be created, synced or read.
    pub fn open(dir: &Path) -> io::Result<Self> {
        if !dir.exists() {
            private_file::create_dir_all(dir)?;
            private_file::sync_parent_or_fail(dir)?;
        }
        remove_abandoned_in(dir)?;
        Ok(Self {
            dir: dir.to_path_buf(),
        })
    }

    /// Blobs in `dir` to read, as they are: the directory is neither
    /// created nor cleaned (a missing one holds no blobs).
    pub fn existing(dir: &Path) -> Self {
        Self {
            dir: dir.to_path_buf(),
        }
    }

    fn path_of(&self, id: UploadId) -> PathBuf {
        self.dir.join(id.key())
    }
}

/// Removes the temporary files in `dir` that are [`ABANDONED_AFTER`] old;
/// returns how many.
fn remove_abandoned_in(dir: &Path) -> io::Result<u64> {
    let mut removed = 0;
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let abandoned = entry
            .metadata()
            .and_then(|meta| meta.modified())
            .ok()
            .and_then(|modified| modified.elapsed().ok())
            .is_some_and(|age| age >= ABANDONED_AFTER);
        if abandoned && entry.file_name().to_string_lossy().contains(".tmp-") {
            match std::fs::remove_file(entry.path()) {
                Ok(()) => removed += 1,
                // Removed meanwhile by another sweep.
                Err(error) if error.kind() == io::ErrorKind::NotFound => {}
                Err(error) => return Err(error),
            }
        }
    }
    Ok(removed)
}

#[async_trait]
impl BlobStore for LocalBlobs {
    async fn put(&self, id: UploadId, mut bytes: ByteStream) -> Result<u64, BlobError> {
        let path = self.path_of(id);
        if tokio::fs::symlink_metadata(&path).await.is_ok() {
            return Err(BlobError::Exists);
        }
        let target = path.clone();
        let (temporary, file) =
            tokio::task::spawn_blocking(move || private_file::create_temporary(&target))
                .await
                .map_err(|error| BlobError::storage(io::Error::other(error)))?
                .map_err(BlobError::storage)?;
        // Whatever goes wrong from here, the temporary file goes.
        let _discard = Discard(temporary.clone());
        let mut file = tokio::fs::File::from_std(file);
        let mut written = 0u64;
        while let Some(chunk) = bytes.next().await {
            let chunk = chunk.map_err(|error| BlobError::Source(Arc::new(error)))?;
            file.write_all(&chunk).await.map_err(BlobError::storage)?;
            written += chunk.len() as u64;
        }
        // A write that failed in the background is reported by the flush,
        // not by the sync; the length then confirms every byte is there.
        file.flush().await.map_err(BlobError::storage)?;
        file.sync_all().await.map_err(BlobError::storage)?;
        let length = file.metadata().await.map_err(BlobError::storage)?.len();
        if length != written {
            return Err(BlobError::storage(io::Error::other(format!(
                "wrote {written} bytes but the file holds {length}"
            ))));
        }
        drop(file);
        // A blob that appeared meanwhile is not replaced: hard-link the
        // temporary file to the final name, which fails if it exists.
        tokio::fs::hard_link(&temporary, &path)
            .await
            .map_err(|error| match error.kind() {
                io::ErrorKind::AlreadyExists => BlobError::Exists,
                _ => BlobError::storage(error),
            })?;
        tokio::task::spawn_blocking(move || private_file::sync_parent_or_fail(&path))
            .await
            .map_err(|error| BlobError::storage(io::Error::other(error)))?
            .map_err(BlobError::storage)?;
        Ok(written)
    }

    async fn get(
        &self,
        id: UploadId,
        range: Option<RangeInclusive<u64>>,
    ) -> Result<ByteStream, BlobError> {
        let mut file = match tokio::fs::File::open(self.path_of(id)).await {
            Ok(file) => file,
            Err(error) if error.kind() == io::ErrorKind::NotFound => {
                return Err(BlobError::NotFound);
            }
            Err(error) => return Err(BlobError::storage(error)),
        };
        let Some(range) = range else {
            return Ok(Box::pin(ReaderStream::with_capacity(file, READ_CHUNK)));
        };
        file.seek(io::SeekFrom::Start(*range.start()))
            .await
            .map_err(BlobError::storage)?;
        let length = range.end().saturating_sub(*range.start()).saturating_add(1);
        Ok(Box::pin(ReaderStream::with_capacity(
            file.take(length),
            READ_CHUNK,
        )))
    }

    async fn remove_abandoned(&self) -> Result<u64, BlobError> {
        let dir = self.dir.clone();
        tokio::task::spawn_blocking(move || remove_abandoned_in(&dir))
            .await
            .map_err(|error| BlobError::storage(io::Error::other(error)))?
            .map_err(BlobError::storage)
    }

    async fn delete(&self, id: UploadId) -> Result<(), BlobError> {
        let path = self.path_of(id);
        match tokio::fs::remove_file(&path).await {
            Ok(()) => {}
            Err(error) if error.kind() == io::ErrorKind::NotFound => return Ok(()),
            Err(error) => return Err(BlobError::storage(error)),
        }
        // The removal is durable before the record goes, so the bytes
        // cannot come back without one.
        tokio::task::spawn_blocking(move || private_file::sync_parent_or_fail(&path))
            .await
            .map_err(|error| BlobError::storage(io::Error::other(error)))?
            .map_err(BlobError::storage)
    }
}

/// Removes a temporary file when dropped: once its blob has its final name
/// (a second link to the same file), or when the write failed.
struct Discard(PathBuf);

impl Drop for Discard {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}
