//! Hot backups of a SQLite database: a consistent copy taken while servers
//! read and write it (`ticketd backup`), and the checks a copy must pass
//! before it is restored (`ticketd restore`).
//!
//! The copy is `VACUUM INTO` on a read-only connection: one read
//! transaction, so it sees the database as of one commit, and in WAL mode
//! it never blocks the writer (nor does the writer block it). The WAL
//! cannot be reset past that snapshot until the copy ends, so it grows by
//! what is written meanwhile.

use std::path::Path;

use rusqlite::OpenFlags;

use crate::core::id::UploadId;
use crate::store::StoreError;
use crate::store::sqlite::rows::parsed;
use crate::store::sqlite::{BUSY_TIMEOUT_MS, map_error, open_file, plain_file_name};

/// Writes a consistent copy of the database at `source` to `target`, a
/// file that must not exist yet or be empty, while other connections (in this process
/// or others) go on reading and writing.
///
/// # Errors
/// `Unavailable` if either file cannot be opened or written.
pub fn copy_live(source: &Path, target: &Path) -> Result<(), StoreError> {
    // Read-only, but without `query_only`, which refuses VACUUM INTO.
    let conn = open_file(source, OpenFlags::SQLITE_OPEN_READ_ONLY)?;
    conn.busy_timeout(std::time::Duration::from_millis(u64::from(BUSY_TIMEOUT_MS)))
        .map_err(map_error)?;
    let target = plain_file_name(target);
    conn.execute("VACUUM INTO ?1", [target.to_string_lossy()])
        .map_err(map_error)?;
    Ok(())
}

/// The uploads whose bytes a database names as stored, and whether each
/// is attached to a message.
///
/// # Errors
/// If the database cannot be read.
pub fn stored_uploads(path: &Path) -> Result<Vec<(UploadId, bool)>, StoreError> {
    let conn = open_file(path, OpenFlags::SQLITE_OPEN_READ_ONLY)?;
    conn.prepare("SELECT id, message_id IS NOT NULL FROM upload WHERE state = 'stored' ORDER BY id")
        .and_then(|mut select| {
            select
                .query_map([], |row| {
                    Ok((parsed(row, 0, UploadId::from_key)?, row.get(1)?))
                })?
                .collect()
        })
        .map_err(map_error)
}

/// Forgets the unattached uploads `ids` of a copy: their bytes were swept
/// from the live database after the copy's snapshot.
///
/// # Errors
/// If the copy cannot be written.
pub fn forget_swept_uploads(path: &Path, ids: &[UploadId]) -> Result<(), StoreError> {
    let mut conn = open_file(path, OpenFlags::SQLITE_OPEN_READ_WRITE)?;
    let tx = conn.transaction().map_err(map_error)?;
    for id in ids {
        tx.execute(
            "DELETE FROM upload WHERE id = ?1 AND message_id IS NULL",
            [id.key()],
        )
        .map_err(map_error)?;
    }
    tx.commit().map_err(map_error)
}

/// Whether the file at `path` is a sound ticketd database: `Ok` if it has
/// ticketd's tables and `PRAGMA integrity_check` says `ok`, else what is
/// wrong.
///
/// # Errors
/// If the file cannot be read as a database.
pub fn integrity_check(path: &Path) -> Result<Result<(), String>, StoreError> {
    let conn = open_file(path, OpenFlags::SQLITE_OPEN_READ_ONLY)?;
    let tables: i64 = conn
        .query_row(
            "SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = 'workspace'",
            [],
            |row| row.get(0),
        )
        .map_err(map_error)?;
    if tables == 0 {
        return Ok(Err("it holds no ticketd tables".into()));
    }
    let found: Vec<String> = conn
        .prepare("PRAGMA integrity_check(10)")
        .and_then(|mut check| check.query_map([], |row| row.get(0))?.collect())
        .map_err(map_error)?;
    Ok(if found == ["ok"] {
        Ok(())
    } else {
        Err(found.join("; "))
    })
}
