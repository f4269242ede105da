//! `ticketd migrate`: bring a database's schema up to date.

use super::{CliError, print_json};
use crate::store::{self, DatabaseUrl};

pub(super) async fn migrate(database: &DatabaseUrl) -> Result<(), CliError> {
    let applied = match database {
        DatabaseUrl::Sqlite(path) => {
            let path = path.clone();
            tokio::task::spawn_blocking(move || store::sqlite::SqliteStore::migrate(&path))
                .await
                .map_err(CliError::from_error)?
                .map_err(CliError::store)?
        }
        DatabaseUrl::Postgres(url) => store::postgres::PostgresStore::migrate(url)
            .await
            .map_err(CliError::store)?,
    };
    print_json(&serde_json::json!({ "applied": applied }))
}
