//! PostgreSQL schema migrations, embedded from `migrations/postgres/`.
//!
//! Applied migrations are recorded in `schema_migration`; each pending one
//! runs in its own transaction, in file-name order, under an advisory lock
//! so that nodes starting at once apply each migration exactly once.

use deadpool_postgres::Object;

use crate::core::time::Timestamp;
use crate::store::postgres::map_error;
use crate::store::postgres::rows::to_sql_time;
use crate::store::{Cause, StoreError};

/// Every migration: (file name, SQL), in order. The names match the SQLite
/// backend's, one schema change per file on both.
pub const MIGRATIONS: &[(&str, &str)] = &[
    (
        "0001_initial.sql",
        include_str!("../../../migrations/postgres/0001_initial.sql"),
    ),
    (
        "0002_idempotency.sql",
        include_str!("../../../migrations/postgres/0002_idempotency.sql"),
    ),
    (
        "0003_encryption.sql",
        include_str!("../../../migrations/postgres/0003_encryption.sql"),
    ),
    (
        "0004_server_secret.sql",
        include_str!("../../../migrations/postgres/0004_server_secret.sql"),
    ),
    (
        "0005_uploads.sql",
        include_str!("../../../migrations/postgres/0005_uploads.sql"),
    ),
    (
        "0006_sealed_uploads.sql",
        include_str!("../../../migrations/postgres/0006_sealed_uploads.sql"),
    ),
    (
        "0007_ticket_category.sql",
        include_str!("../../../migrations/postgres/0007_ticket_category.sql"),
    ),
    (
        "0008_numeric_ids.sql",
        include_str!("../../../migrations/postgres/0008_numeric_ids.sql"),
    ),
    (
        "0009_agency.sql",
        include_str!("../../../migrations/postgres/0009_agency.sql"),
    ),
    (
        "0010_message_tasks.sql",
        include_str!("../../../migrations/postgres/0010_message_tasks.sql"),
    ),
    (
        "0011_claim_holders.sql",
        include_str!("../../../migrations/postgres/0011_claim_holders.sql"),
    ),
];

/// The advisory lock every node takes while migrating (an arbitrary
/// constant: "ticketd" in ASCII).
const MIGRATION_LOCK: i64 = 0x0074_6963_6b65_7464;

/// Applies every migration not yet applied; returns the names it applied.
pub(super) async fn migrate(client: &mut Object) -> Result<Vec<&'static str>, StoreError> {
    let mut applied = Vec::new();
    for (name, sql) in MIGRATIONS {
        let tx = client.transaction().await.map_err(map_error)?;
        tx.execute("SELECT pg_advisory_xact_lock($1)", &[&MIGRATION_LOCK])
            .await
            .map_err(map_error)?;
        // "already exists, skipping" notices are expected on every start.
        tx.batch_execute("SET LOCAL client_min_messages = warning")
            .await
            .map_err(map_error)?;
        tx.batch_execute(
            "CREATE TABLE IF NOT EXISTS schema_migration (
                 name        TEXT        PRIMARY KEY,
                 applied_at  TIMESTAMPTZ NOT NULL
             )",
        )
        .await
        .map_err(map_error)?;
        let done = tx
            .query_opt("SELECT 1 FROM schema_migration WHERE name = $1", &[name])
            .await
            .map_err(map_error)?
            .is_some();
        if !done {
            tx.batch_execute(sql).await.map_err(|error| {
                StoreError::Other(Cause::with_source(
                    format!("migration {name} failed: {error}"),
                    error,
                ))
            })?;
            tx.execute(
                "INSERT INTO schema_migration (name, applied_at) VALUES ($1, $2)",
                &[name, &to_sql_time(Timestamp::now())],
            )
            .await
            .map_err(map_error)?;
            applied.push(*name);
        }
        tx.commit().await.map_err(map_error)?;
    }
    Ok(applied)
}
