//! The backends the suite runs against, each on a fresh database.

use std::sync::Arc;

use tempfile::TempDir;
use ticketd::store::Store;
use ticketd::store::sqlite::SqliteStore;

/// A store on a fresh database, removed when dropped.
pub struct Backend {
    store: Arc<dyn Store>,
    _dir: TempDir,
}

impl Backend {
    /// SQLite in a temporary directory.
    pub async fn sqlite() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(dir.path().join("ticketd.db"))
            .await
            .unwrap();
        Self {
            store: Arc::new(store),
            _dir: dir,
        }
    }

    pub fn store(&self) -> &Arc<dyn Store> {
        &self.store
    }
}
