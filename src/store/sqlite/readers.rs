//! Read connections, one per thread that reads, used inline.
//!
//! Reads are short indexed lookups (a page is at most 100 rows), so they run
//! directly on the calling thread instead of being handed to a blocking
//! pool: a handoff costs two thread wake-ups, more than the query itself.
//! Each thread keeps its own read-only connection per open store; WAL mode
//! lets these run beside the writer, each seeing the last committed state.

use std::cell::RefCell;
use std::path::PathBuf;
use std::sync::{Arc, Weak};

use rusqlite::Connection;

use crate::store::StoreError;

thread_local! {
    /// This thread's read connections, each tagged with its store's liveness
    /// token so that connections of dropped stores are closed.
    static CONNECTIONS: RefCell<Vec<(Weak<PathBuf>, Connection)>> = const { RefCell::new(Vec::new()) };
}

/// Read access to one database file.
pub(super) struct Readers {
    /// The database path; its `Arc` doubles as the store's liveness token.
    path: Arc<PathBuf>,
}

impl Readers {
    /// Readers of the database at `path`.
    pub(super) fn new(path: PathBuf) -> Self {
        Self {
            path: Arc::new(path),
        }
    }

    /// Runs `op` on this thread's read connection to the database.
    pub(super) fn read<T>(
        &self,
        op: impl FnOnce(&Connection) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        let _timer = crate::metrics::OperationTimer::start("sqlite", "read");
        CONNECTIONS.with_borrow_mut(|connections| {
            connections.retain(|(owner, _)| owner.strong_count() > 0);
            let position = connections
                .iter()
                .position(|(owner, _)| std::ptr::eq(owner.as_ptr(), Arc::as_ptr(&self.path)));
            let index = match position {
                Some(index) => index,
                None => {
                    let conn = super::open_reader(&self.path)?;
                    connections.push((Arc::downgrade(&self.path), conn));
                    connections.len() - 1
                }
            };
            op(&connections[index].1)
        })
    }

    /// Runs `op`, which reads with more than one statement, in one read
    /// transaction: its statements see the same committed state, and the
    /// connection takes its place in the WAL once instead of per statement
    /// (each time costs a lock on memory shared with every other connection).
    pub(super) fn read_snapshot<T>(
        &self,
        op: impl FnOnce(&Connection) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        self.read(|conn| {
            super::run_transaction_statement(conn, "BEGIN")?;
            let outcome = op(conn);
            // A read transaction has nothing to keep or undo: ending it
            // only gives the snapshot back. It must end, or this thread's
            // later reads would keep seeing this snapshot.
            if super::run_transaction_statement(conn, "COMMIT").is_err() {
                let _ = conn.execute_batch("ROLLBACK");
            }
            if !conn.is_autocommit() {
                return Err(StoreError::Other(
                    "a read transaction could not be ended".into(),
                ));
            }
            outcome
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn count(conn: &Connection) -> Result<i64, StoreError> {
        conn.query_row("SELECT count(*) FROM item", [], |row| row.get(0))
            .map_err(super::super::map_error)
    }

    #[test]
    fn a_snapshot_ends_with_its_read_even_when_the_read_fails() {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let path = dir.path().join("snapshot.db");
        let writer = Connection::open(&path).expect("a database");
        writer
            .execute_batch("PRAGMA journal_mode = WAL; CREATE TABLE item (n INTEGER);")
            .expect("a table");
        let readers = Readers::new(path);

        let failed: Result<(), StoreError> = readers.read_snapshot(|conn| {
            count(conn)?;
            Err(StoreError::NotFound)
        });
        assert!(matches!(failed, Err(StoreError::NotFound)));

        // Had the snapshot stayed open, this thread would not see the row.
        writer
            .execute("INSERT INTO item (n) VALUES (1)", [])
            .expect("a row");
        assert_eq!(readers.read(count).expect("a count"), 1);
        assert_eq!(readers.read_snapshot(count).expect("a count"), 1);
    }
}
