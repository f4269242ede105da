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
}
