//! Moves committed pages from the WAL into the database file in the
//! background, so that the writer never pauses to do it inside a commit.
//!
//! Passive checkpoints never block the writer or readers. Under a steady
//! stream of writes, though, the WAL never empties between two commits, so
//! SQLite never starts it over. Once it holds [`RESTART_FRAMES`] frames the
//! checkpointer raises [`RestartFlag`], and the writer restarts the log
//! between two groups (it holds the write lock anyway, so nobody waits for
//! it, and the passive checkpoints have already copied almost every frame).
//!
//! SQLite fsyncs the database file only after a checkpoint that reaches the
//! end of the WAL, which under a steady stream of writes only the writer's
//! restart does. The pages the passive checkpoints copied would then all be
//! flushed inside the restart, with the writer waiting (4 to 15 ms at 400
//! MB/s of WAL). So after each pass that copied pages the checkpointer
//! flushes the database file itself, through a handle of its own, and the
//! restart finds little left to write. The durability of acknowledged writes
//! does not depend on this flush: they are in the fsynced WAL.

use std::fs::File;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, RecvTimeoutError};
use std::thread;
use std::time::Duration;

use rusqlite::{Connection, OpenFlags};

use crate::store::sqlite::{Role, configure, open_file};
use crate::store::{Cause, StoreError};

/// How often the WAL is checkpointed.
const INTERVAL: Duration = Duration::from_millis(250);

/// WAL frames (pages) after which the log is restarted: 128 MiB of 4 KiB pages.
const RESTART_FRAMES: i64 = 32_768;

/// Raised when the WAL should be restarted by the writer.
#[derive(Clone, Default)]
pub(super) struct RestartFlag(Arc<AtomicBool>);

impl RestartFlag {
    /// Whether a restart is wanted; clears the request.
    pub(super) fn take(&self) -> bool {
        self.0.swap(false, Ordering::AcqRel)
    }

    fn raise(&self) {
        self.0.store(true, Ordering::Release);
    }

    fn is_raised(&self) -> bool {
        self.0.load(Ordering::Acquire)
    }
}

/// Restarts the WAL from the writer's connection, between transactions.
pub(super) fn restart_wal(conn: &Connection) {
    let started = std::time::Instant::now();
    match run_checkpoint(conn, "RESTART") {
        Ok(_) => {
            crate::metrics::count(crate::metrics::SQLITE_WAL_RESTARTS, None, 1);
            tracing::debug!(
                micros = started.elapsed().as_micros() as u64,
                "sqlite WAL restarted"
            );
        }
        Err(error) => tracing::warn!(%error, "sqlite WAL restart failed"),
    }
}

/// Handle to the checkpoint thread; dropping it stops the thread.
pub(super) struct Checkpointer {
    _stop: mpsc::Sender<()>,
}

impl Checkpointer {
    /// Starts checkpointing the database at `path`, raising `restart` when
    /// the WAL has grown large.
    pub(super) fn start(path: &Path, restart: RestartFlag) -> Result<Self, StoreError> {
        let conn = open_file(path, OpenFlags::SQLITE_OPEN_READ_WRITE)?;
        configure(&conn, Role::Checkpointer)?;
        let database = File::open(path).map_err(|error| {
            StoreError::Unavailable(Cause::with_source(
                format!("cannot open {}: {error}", path.display()),
                error,
            ))
        })?;
        let (stop, stopped) = mpsc::channel::<()>();
        let mut wal_path = path.as_os_str().to_owned();
        wal_path.push("-wal");
        thread::Builder::new()
            .name("ticketd-sqlite-checkpointer".into())
            .spawn(move || {
                let mut flushed = 0;
                while let Err(RecvTimeoutError::Timeout) = stopped.recv_timeout(INTERVAL) {
                    if crate::metrics::enabled()
                        && let Ok(wal) = std::fs::metadata(&wal_path)
                    {
                        crate::metrics::set_gauge(
                            crate::metrics::SQLITE_WAL_BYTES,
                            wal.len() as f64,
                        );
                    }
                    // While a restart is pending the writer needs the
                    // checkpoint lock; stay out of its way.
                    if !restart.is_raised() {
                        checkpoint(&conn, &database, &mut flushed, &restart);
                    }
                }
            })
            .map_err(|error| {
                StoreError::Other(Cause::with_source(
                    format!("cannot start the checkpoint thread: {error}"),
                    error,
                ))
            })?;
        Ok(Self { _stop: stop })
    }
}

/// One passive pass: copies what it can, flushes the database file if the
/// WAL's copied count moved since the last flush (`flushed`), and asks for
/// a restart once the WAL is long.
fn checkpoint(conn: &Connection, database: &File, flushed: &mut i64, restart: &RestartFlag) {
    match run_checkpoint(conn, "PASSIVE") {
        Ok(progress) => {
            crate::metrics::count(crate::metrics::SQLITE_CHECKPOINTS, None, 1);
            if progress.copied != *flushed {
                match database.sync_data() {
                    Ok(()) => *flushed = progress.copied,
                    Err(error) => tracing::warn!(%error, "flushing the database file failed"),
                }
            }
            if progress.frames >= RESTART_FRAMES {
                restart.raise();
            }
        }
        Err(error) => tracing::warn!(%error, "sqlite checkpoint failed"),
    }
}

/// What a checkpoint reports.
struct Progress {
    /// Frames in the WAL.
    frames: i64,
    /// Frames of the WAL copied into the database file so far.
    copied: i64,
}

/// Runs a checkpoint in `mode`.
fn run_checkpoint(conn: &Connection, mode: &str) -> rusqlite::Result<Progress> {
    let (busy, frames, copied) =
        conn.query_row(&format!("PRAGMA wal_checkpoint({mode})"), [], |row| {
            Ok((
                row.get::<_, i64>(0)?,
                row.get::<_, i64>(1)?,
                row.get::<_, i64>(2)?,
            ))
        })?;
    tracing::trace!(mode, busy, frames, copied, "sqlite checkpoint");
    Ok(Progress { frames, copied })
}
