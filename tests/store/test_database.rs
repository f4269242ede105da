//! The per-test PostgreSQL databases themselves: each is created empty under
//! a unique name, reachable at its URL, and gone once dropped, even while a
//! connection to it is still open and from inside a test's runtime.

use crate::test_postgres::{TestDatabase, admin_url, connect, with_database};

/// Whether the test server has a database called `name`.
async fn exists(name: &str) -> bool {
    let admin = connect(&admin_url()).await.unwrap();
    let row = admin
        .query_one(
            "SELECT count(*) FROM pg_database WHERE datname = $1",
            &[&name],
        )
        .await
        .unwrap();
    row.get::<_, i64>(0) == 1
}

#[tokio::test]
async fn a_test_database_is_created_empty_and_dropped_with_connections_open() {
    let Some(database) = TestDatabase::create().await else {
        return;
    };
    let Some(other) = TestDatabase::create().await else {
        return;
    };
    let name = database.name().to_owned();
    assert!(name.starts_with("ticketd_test_"), "{name}");
    assert_ne!(name, other.name());
    assert_eq!(database.url(), with_database(&admin_url(), &name));
    assert!(exists(&name).await);

    let client = connect(database.url()).await.unwrap();
    let row = client
        .query_one(
            "SELECT current_database()::text, \
             (SELECT count(*) FROM pg_tables WHERE schemaname = 'public')",
            &[],
        )
        .await
        .unwrap();
    assert_eq!(row.get::<_, String>(0), name);
    assert_eq!(row.get::<_, i64>(1), 0, "a new database has no tables");

    // Dropped on this runtime's thread, with `client` still connected.
    drop(database);
    assert!(!exists(&name).await, "{name} is still there");
    assert!(client.simple_query("SELECT 1").await.is_err());
    assert!(exists(other.name()).await);
}

#[test]
fn a_test_database_can_be_made_and_dropped_outside_a_runtime() {
    let Some(database) = TestDatabase::create_blocking() else {
        return;
    };
    let name = database.name().to_owned();
    drop(database);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    assert!(!runtime.block_on(exists(&name)), "{name} is still there");
}

#[test]
fn urls_name_the_test_database_and_keep_their_options() {
    assert_eq!(
        with_database("postgres://postgres@127.0.0.1:5432/postgres", "t1"),
        "postgres://postgres@127.0.0.1:5432/t1"
    );
    assert_eq!(
        with_database("postgres://u:p@db.internal/admin?sslmode=disable", "t1"),
        "postgres://u:p@db.internal/t1?sslmode=disable"
    );
    assert_eq!(
        with_database("postgresql://localhost", "t1"),
        "postgresql://localhost/t1"
    );
}
