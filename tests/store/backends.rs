//! The backends the suite runs against, each on a fresh database.

use std::sync::Arc;

use tempfile::TempDir;
use ticketd::store::{DatabaseUrl, Store};

use crate::test_postgres::TestDatabase;

/// A store on a fresh database, removed when dropped. The database fields
/// come after `store`, so the database outlives the store's connections.
pub struct Backend {
    store: Arc<dyn Store>,
    /// The directory of a SQLite backend's file.
    _sqlite_dir: Option<TempDir>,
    /// A PostgreSQL backend's database.
    _postgres: Option<TestDatabase>,
}

impl Backend {
    /// SQLite in a temporary directory; always available.
    pub async fn sqlite() -> Option<Self> {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}", dir.path().join("ticketd.db").display());
        let store = open(&url).await;
        Some(Self {
            store,
            _sqlite_dir: Some(dir),
            _postgres: None,
        })
    }

    /// A uniquely named database on the test server; `None` when that is
    /// unreachable outside CI (see `test_postgres`).
    pub async fn postgres() -> Option<Self> {
        let database = TestDatabase::create().await?;
        let store = open(database.url()).await;
        Some(Self {
            store,
            _sqlite_dir: None,
            _postgres: Some(database),
        })
    }

    pub fn store(&self) -> &Arc<dyn Store> {
        &self.store
    }

    /// The URL of a PostgreSQL backend's database.
    pub fn url(&self) -> &str {
        self._postgres
            .as_ref()
            .map_or("", |database| database.url())
    }
}

/// Opens `url` as production does.
async fn open(url: &str) -> Arc<dyn Store> {
    let url =
        DatabaseUrl::parse(url).unwrap_or_else(|error| panic!("the test database's URL: {error}"));
    ticketd::store::open(&url).await.unwrap()
}
