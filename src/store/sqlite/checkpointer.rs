//! Moves committed pages from the WAL into the database file in the
//! background, so that the writer never pauses to do it inside a commit.
//!
//! Passive checkpoints never block the writer or readers. Under a steady
//! stream of writes, though, the WAL never empties between two commits, so
//! SQLite never starts it over. Once it holds [`RESTART_FRAMES`] frames the
//! checkpointer raises [`RestartFlag`], and the writer restarts the log
//! between two groups (it holds the write lock anyway, so nobody waits for
//! it, and the passive checkpoints have already copied almost every frame).

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, RecvTimeoutError};
use std::thread;
use std::time::Duration;

use rusqlite::Connection;

use crate::store::StoreError;
use crate::store::sqlite::{Role, configure, map_error};

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
        Ok(_) => tracing::debug!(
            micros = started.elapsed().as_micros() as u64,
            "sqlite WAL restarted"
        ),
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
        let conn = Connection::open(path).map_err(map_error)?;
        configure(&conn, Role::Checkpointer)?;
        let (stop, stopped) = mpsc::channel::<()>();
        thread::Builder::new()
            .name("ticketd-sqlite-checkpointer".into())
            .spawn(move || {
                while let Err(RecvTimeoutError::Timeout) = stopped.recv_timeout(INTERVAL) {
                    // While a restart is pending the writer needs the
                    // checkpoint lock; stay out of its way.
                    if !restart.is_raised() {
                        checkpoint(&conn, &restart);
                    }
                }
            })
            .map_err(|error| {
                StoreError::Other(format!("cannot start the checkpoint thread: {error}"))
            })?;
        Ok(Self { _stop: stop })
    }
}

fn checkpoint(conn: &Connection, restart: &RestartFlag) {
    match run_checkpoint(conn, "PASSIVE") {
        Ok(frames) if frames >= RESTART_FRAMES => restart.raise(),
        Ok(_) => {}
        Err(error) => tracing::warn!(%error, "sqlite checkpoint failed"),
    }
}

/// Runs a checkpoint in `mode`; returns the frames the WAL held.
fn run_checkpoint(conn: &Connection, mode: &str) -> rusqlite::Result<i64> {
    let (busy, frames, copied) =
        conn.query_row(&format!("PRAGMA wal_checkpoint({mode})"), [], |row| {
            Ok((
                row.get::<_, i64>(0)?,
                row.get::<_, i64>(1)?,
                row.get::<_, i64>(2)?,
            ))
        })?;
    tracing::trace!(mode, busy, frames, copied, "sqlite checkpoint");
    Ok(frames)
}
