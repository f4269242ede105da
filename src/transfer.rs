//! Streaming a whole database to and from a dump (the format is
//! [`crate::core::dump`]), for `ticketd export` and `ticketd import`.
//!
//! [`export`] holds one page of [`EXPORT_PAGE_SIZE`] records at a time,
//! read with keyset paging ([`Store::export_page`]) and written line by
//! line through the caller's buffered writer, so its memory stays bounded
//! however large the database. [`check`] and [`import`] read one line at a
//! time (at most [`MAX_LINE_BYTES`]) and check each record as it comes
//! ([`crate::core::dump::DumpCheck`]: references, text, numbers), keeping a
//! few dozen bytes per user and ticket for that; [`import`] writes batches
//! of at most [`Batching::records`] records or [`Batching::bytes`] of dump
//! text, each in one transaction ([`Store::import_records`]).
//!
//! The bytes of uploads stream between the blob store and the dump
//! ([`DumpFiles`]), one [`dump::DATA_CHUNK_BYTES`] line at a time, never
//! whole in memory.

mod import;

use std::io::Write;
use std::sync::Arc;

use bytes::BytesMut;
use futures_util::StreamExt;

use crate::blob::{BlobStore, ByteStream};
use crate::core::crypto::stream;
use crate::core::dump::{
    self, DumpError, DumpOrder, EncryptedBodies, Record, RecordCounts, RecordKind, UploadRecord,
};
use crate::encryption::ExportBodies;
use crate::service::ContentKeys;
use crate::store::{Store, StoreError};

pub use import::{Batching, check, import};

/// Where the bytes of a dump's uploads come from and go to.
pub struct DumpFiles {
    /// The blob store of the database.
    pub blobs: Arc<dyn BlobStore>,
    /// The content keys of sealed uploads, under the database's key file:
    /// needed to export them opened, or to import ones exported so.
    pub keys: Option<Arc<dyn ContentKeys>>,
}

/// Records per export page.
pub const EXPORT_PAGE_SIZE: u32 = 500;

/// The longest line an import reads: far more than the largest record (a
/// 25,000-character message body with every character escaped).
pub const MAX_LINE_BYTES: usize = 4 << 20;

/// Why an export or import failed.
#[derive(Debug, thiserror::Error)]
pub enum TransferError {
    /// The import's target holds data already.
    #[error("the database is not empty: import only into a new, empty database")]
    NotEmpty,
    /// The dump is malformed, truncated or of another version.
    #[error("line {line}: {error}")]
    Dump {
        /// The line at fault, from 1.
        line: u64,
        /// What is wrong with it.
        error: DumpError,
    },
    /// Reading the dump failed.
    #[error("cannot read the dump: {0}")]
    Read(std::io::Error),
    /// Writing the dump failed.
    #[error("cannot write the dump: {0}")]
    Write(std::io::Error),
    /// The database listed records that do not make a valid dump.
    #[error("the database cannot be exported: {0}")]
    Export(String),
    /// The bytes of an upload could not be read or stored.
    #[error("{0}")]
    Files(String),
    /// The database failed.
    #[error(transparent)]
    Store(StoreError),
    /// The database refused a batch of records.
    #[error("lines {first}-{last} were refused: {error}")]
    Batch {
        /// The batch's first line.
        first: u64,
        /// The batch's last line.
        last: u64,
        /// Why.
        error: StoreError,
    },
    /// An import failed after some batches were committed.
    #[error(
        "{error}; {written} records were imported before this: discard the database and import into an empty one"
    )]
    Partial {
        /// Records already committed.
        written: u64,
        /// What went wrong.
        error: Box<TransferError>,
    },
}

/// Writes the whole database to `output` as a dump, reading `page_size`
/// records at a time, each upload followed by its bytes from `files`
/// (sealed ones as `bodies` says; its header says so too); returns what it wrote. Flushes `output`
/// at the end.
///
/// The dump is consistent only if nothing writes to the database meanwhile
/// (each page is its own read).
///
/// # Errors
/// `Store` if reading fails, `Write` if writing does, `Export` if the
/// database lists records out of dump order or with no form in a dump,
/// `Files` if an upload's bytes cannot be read.
pub async fn export<W: Write>(
    store: &dyn Store,
    files: &DumpFiles,
    bodies: ExportBodies,
    output: &mut W,
    page_size: u32,
) -> Result<RecordCounts, TransferError> {
    let page_size = page_size.max(1);
    // The dump order is checked as it is written, so that a backend that
    // pages wrongly fails here rather than writing a dump import refuses.
    let mut order = DumpOrder::default();
    let header = dump::header_line(match bodies {
        ExportBodies::Sealed => EncryptedBodies::Sealed,
        ExportBodies::Decrypted => EncryptedBodies::Decrypted,
    });
    writeln!(output, "{header}").map_err(TransferError::Write)?;
    for kind in RecordKind::ALL {
        let mut after = None;
        loop {
            let page = store
                .export_page(kind, after, page_size)
                .await
                .map_err(TransferError::Store)?;
            for record in &page {
                if record.kind() != kind {
                    return Err(TransferError::Export(format!(
                        "asked for {} records, it listed {}",
                        kind.as_str(),
                        record.cursor()
                    )));
                }
                order.accept(record).map_err(export_error)?;
                let Record::Upload(upload) = record else {
                    write_line(output, &dump::record_line(record).map_err(export_error)?)?;
                    continue;
                };
                let (upload, bytes) = file_of(files, bodies, upload).await?;
                let line = dump::record_line(&Record::Upload(upload.clone()));
                write_line(output, &line.map_err(export_error)?)?;
                write_data(output, &upload, bytes).await?;
            }
            match page.last() {
                Some(last) if page.len() >= page_size as usize => after = Some(last.cursor()),
                _ => break,
            }
        }
    }
    writeln!(output, "{}", dump::trailer_line(order.counts())).map_err(TransferError::Write)?;
    output.flush().map_err(TransferError::Write)?;
    Ok(order.counts())
}

fn write_line<W: Write>(output: &mut W, line: &str) -> Result<(), TransferError> {
    output
        .write_all(line.as_bytes())
        .and_then(|()| output.write_all(b"\n"))
        .map_err(TransferError::Write)
}

/// An upload's record as the dump has it, and the bytes that follow it.
async fn file_of(
    files: &DumpFiles,
    bodies: ExportBodies,
    upload: &UploadRecord,
) -> Result<(UploadRecord, ByteStream), TransferError> {
    let unreadable = |reason: String| {
        TransferError::Files(format!(
            "the bytes of upload {} cannot be read: {reason}",
            upload.id
        ))
    };
    let stored = files
        .blobs
        .get(upload.id, None)
        .await
        .map_err(|error| unreadable(error.to_string()))?;
    match (&upload.content_key, bodies) {
        (Some(content_key), ExportBodies::Decrypted) => {
            let keys = files
                .keys
                .as_ref()
                .ok_or_else(|| unreadable("no key file is at hand to open it".into()))?;
            let key = keys
                .open(upload.id, content_key)
                .await
                .map_err(|error| unreadable(error.to_string()))?;
            let plan =
                stream::plan(upload.size, None).map_err(|error| unreadable(error.to_string()))?;
            let opened = UploadRecord {
                content_key: None,
                ..upload.clone()
            };
            Ok((
                opened,
                Box::pin(stream::open(&key, upload.id, &plan, stored)),
            ))
        }
        _ => Ok((upload.clone(), stored)),
    }
}

/// Writes `bytes` as `upload_data` lines; they must be as many as the
/// record says.
async fn write_data<W: Write>(
    output: &mut W,
    upload: &UploadRecord,
    mut bytes: ByteStream,
) -> Result<(), TransferError> {
    let mut pending = BytesMut::new();
    let mut written = 0u64;
    loop {
        let chunk = bytes.next().await.transpose().map_err(|error| {
            TransferError::Files(format!(
                "the bytes of upload {} cannot be read: {error}",
                upload.id
            ))
        })?;
        let end = chunk.is_none();
        if let Some(chunk) = chunk {
            pending.extend_from_slice(&chunk);
        }
        while pending.len() >= dump::DATA_CHUNK_BYTES || (end && !pending.is_empty()) {
            let line = pending.split_to(pending.len().min(dump::DATA_CHUNK_BYTES));
            written += line.len() as u64;
            write_line(output, &dump::data_line(&line))?;
        }
        if end {
            break;
        }
    }
    if written != upload.data_len() {
        return Err(TransferError::Files(format!(
            "upload {} holds {written} bytes in the blob store, not the {} its record says",
            upload.id,
            upload.data_len()
        )));
    }
    Ok(())
}

fn export_error(error: DumpError) -> TransferError {
    TransferError::Export(error.to_string())
}
