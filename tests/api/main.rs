//! The API integration suite: each test starts a real ticketd on a random
//! port with a fresh database and talks HTTP to it.
//!
//! Every test runs once per backend. The test files are written once and
//! included twice, into `sqlite` and into `postgres`, each of which sets the
//! `BACKEND` its tests spawn servers on; so every test is named
//! `sqlite::file::test` and `postgres::file::test`, and no list of tests is
//! kept by hand. Without a reachable PostgreSQL the `postgres` tests return
//! at once (outside CI), after a notice on stderr.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "a failed unwrap is a failed test"
)]
#![allow(
    clippy::duplicate_mod,
    reason = "each test file is compiled twice, once per backend module"
)]

mod helpers;
#[path = "../shared/test_postgres.rs"]
mod test_postgres;
#[path = "../shared/test_redis.rs"]
mod test_redis;

#[path = "."]
mod sqlite {
    const BACKEND: crate::helpers::Backend = crate::helpers::Backend::Sqlite;

    mod agency;
    mod attachments;
    mod auth;
    mod cli;
    mod encryption;
    mod errors;
    mod formatting;
    mod hostile_clients;
    mod idempotency;
    mod lifecycle;
    mod limits;
    mod messages;
    mod metrics;
    mod openapi;
    mod operator_cli;
    mod pagination;
    mod projects;
    mod rate_limit;
    mod teambattles;
    mod tickets;
    mod transfer;

    /// Tests of the SQLite file itself, which have no PostgreSQL counterpart.
    mod sqlite_file;
}

#[path = "."]
mod postgres {
    const BACKEND: crate::helpers::Backend = crate::helpers::Backend::Postgres;

    mod agency;
    mod attachments;
    mod auth;
    mod cli;
    mod encryption;
    mod errors;
    mod formatting;
    mod hostile_clients;
    mod idempotency;
    mod lifecycle;
    mod limits;
    mod messages;
    mod metrics;
    mod openapi;
    mod operator_cli;
    mod pagination;
    mod projects;
    mod rate_limit;
    mod teambattles;
    mod tickets;
    mod transfer;
}

/// A test file declared in only one of the modules above would quietly run
/// on one backend; this keeps the two lists the same.
#[test]
fn every_test_file_runs_on_both_backends() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/api");
    let main = std::fs::read_to_string(dir.join("main.rs")).unwrap();
    let mut files: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .filter(|path| path.extension().is_some_and(|ext| ext == "rs"))
        .map(|path| path.file_stem().unwrap().to_string_lossy().into_owned())
        .filter(|stem| !["main", "helpers", "sqlite_file"].contains(&stem.as_str()))
        .collect();
    files.sort();
    assert!(files.len() >= 8, "{files:?}");
    for file in files {
        let declared = main.matches(&format!("\n    mod {file};\n")).count();
        assert_eq!(
            declared, 2,
            "tests/api/{file}.rs must be in both `sqlite` and `postgres`"
        );
    }
}
