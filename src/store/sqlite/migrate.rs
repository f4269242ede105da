//! SQLite schema migrations, embedded from `migrations/sqlite/`.
//!
//! Applied migrations are recorded in `schema_migration`; each pending one
//! runs in its own transaction, in file-name order.

use rusqlite::Connection;

use crate::core::time::Timestamp;
use crate::store::sqlite::map_error;
use crate::store::{Cause, StoreError};

/// Every migration: (file name, SQL), in order.
pub const MIGRATIONS: &[(&str, &str)] = &[
    (
        "0001_initial.sql",
        include_str!("../../../migrations/sqlite/0001_initial.sql"),
    ),
    (
        "0002_idempotency.sql",
        include_str!("../../../migrations/sqlite/0002_idempotency.sql"),
    ),
    (
        "0003_encryption.sql",
        include_str!("../../../migrations/sqlite/0003_encryption.sql"),
    ),
    (
        "0004_server_secret.sql",
        include_str!("../../../migrations/sqlite/0004_server_secret.sql"),
    ),
    (
        "0005_uploads.sql",
        include_str!("../../../migrations/sqlite/0005_uploads.sql"),
    ),
    (
        "0006_sealed_uploads.sql",
        include_str!("../../../migrations/sqlite/0006_sealed_uploads.sql"),
    ),
    (
        "0007_ticket_category.sql",
        include_str!("../../../migrations/sqlite/0007_ticket_category.sql"),
    ),
    (
        "0008_numeric_ids.sql",
        include_str!("../../../migrations/sqlite/0008_numeric_ids.sql"),
    ),
    (
        "0009_agency.sql",
        include_str!("../../../migrations/sqlite/0009_agency.sql"),
    ),
    (
        "0010_message_tasks.sql",
        include_str!("../../../migrations/sqlite/0010_message_tasks.sql"),
    ),
    (
        "0011_claim_holders.sql",
        include_str!("../../../migrations/sqlite/0011_claim_holders.sql"),
    ),
];

/// Applies every migration not yet applied; returns the names it applied.
pub(super) fn migrate(conn: &mut Connection) -> Result<Vec<&'static str>, StoreError> {
    conn.execute_batch(
        "CREATE TABLE IF NOT EXISTS schema_migration (
             name        TEXT    PRIMARY KEY,
             applied_at  INTEGER NOT NULL
         )",
    )
    .map_err(map_error)?;
    let mut applied = Vec::new();
    for (name, sql) in MIGRATIONS {
        let tx = conn
            .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
            .map_err(map_error)?;
        let done: bool = tx
            .query_row(
                "SELECT EXISTS (SELECT 1 FROM schema_migration WHERE name = ?1)",
                [name],
                |row| row.get(0),
            )
            .map_err(map_error)?;
        if !done {
            tx.execute_batch(sql).map_err(|error| {
                StoreError::Other(Cause::with_source(
                    format!("migration {name} failed: {error}"),
                    error,
                ))
            })?;
            tx.execute(
                "INSERT INTO schema_migration (name, applied_at) VALUES (?1, ?2)",
                rusqlite::params![name, Timestamp::now().millis()],
            )
            .map_err(map_error)?;
            applied.push(*name);
        }
        tx.commit().map_err(map_error)?;
    }
    Ok(applied)
}
