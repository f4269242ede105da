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

mod import;

use std::io::Write;

use crate::core::dump::{self, DumpError, DumpOrder, RecordCounts, RecordKind};
use crate::store::{Store, StoreError};

pub use import::{Batching, check, import};

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
/// records at a time; returns what it wrote. Flushes `output` at the end.
///
/// The dump is consistent only if nothing writes to the database meanwhile
/// (each page is its own read).
///
/// # Errors
/// `Store` if reading fails, `Write` if writing does, `Export` if the
/// database lists records out of dump order or with no form in a dump.
pub async fn export<W: Write>(
    store: &dyn Store,
    output: &mut W,
    page_size: u32,
) -> Result<RecordCounts, TransferError> {
    let page_size = page_size.max(1);
    // The dump order is checked as it is written, so that a backend that
    // pages wrongly fails here rather than writing a dump import refuses.
    let mut order = DumpOrder::default();
    writeln!(output, "{}", dump::header_line()).map_err(TransferError::Write)?;
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
                let line = dump::record_line(record).map_err(export_error)?;
                output
                    .write_all(line.as_bytes())
                    .and_then(|()| output.write_all(b"\n"))
                    .map_err(TransferError::Write)?;
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

fn export_error(error: DumpError) -> TransferError {
    TransferError::Export(error.to_string())
}
