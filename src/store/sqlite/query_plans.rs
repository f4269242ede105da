//! Test support: migrated in-memory databases and the plans SQLite chooses
//! for the store's queries, for the tests that pin those plans down.

use rusqlite::types::Value;
use rusqlite::{Connection, params_from_iter};

/// A fresh in-memory database with every migration applied.
pub(super) fn migrated() -> Connection {
    let mut conn = Connection::open_in_memory().expect("in-memory database");
    super::migrate::migrate(&mut conn).expect("migrations apply");
    conn
}

/// The plan SQLite chooses for `sql` with `args` bound, one line per step.
pub(super) fn plan(conn: &Connection, sql: &str, args: Vec<Value>) -> String {
    let mut explain = conn
        .prepare(&format!("EXPLAIN QUERY PLAN {sql}"))
        .expect("valid SQL");
    let steps = explain
        .query_map(params_from_iter(args), |row| row.get::<_, String>(3))
        .expect("explainable")
        .collect::<rusqlite::Result<Vec<_>>>()
        .expect("plan rows");
    steps.join("\n")
}
