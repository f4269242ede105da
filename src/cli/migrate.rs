//! `ticketd migrate`: bring a database's schema up to date.

use super::print_json;
use crate::encryption::describe;
use crate::store::{self, DatabaseUrl};

pub(super) async fn migrate(database: &DatabaseUrl) -> Result<(), String> {
    let applied = match database {
        DatabaseUrl::Sqlite(path) => {
            let path = path.clone();
            tokio::task::spawn_blocking(move || store::sqlite::SqliteStore::migrate(&path))
                .await
                .map_err(|error| error.to_string())?
                .map_err(describe)?
        }
        DatabaseUrl::Postgres(url) => store::postgres::PostgresStore::migrate(url)
            .await
            .map_err(describe)?,
    };
    print_json(&serde_json::json!({ "applied": applied }))
}
