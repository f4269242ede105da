//! What only SQLite has: a database file, created where `--database` points
//! or, by default, under `./ticketd-data/`. Included in the `sqlite` module
//! only; every other CLI test runs on both backends in `cli`.

use serde_json::json;

use super::cli::{Scratch, one_json_line, refused};
use crate::helpers::Backend;

#[test]
fn migrate_creates_the_database_file() {
    let scratch = Scratch::new(Backend::Sqlite).expect("SQLite is always available");
    let file = scratch.dir.path().join("t.db");
    let migrate = || {
        let output = scratch
            .command()
            .arg("--database")
            .arg(format!("sqlite://{}", file.display()))
            .arg("migrate")
            .output()
            .unwrap();
        one_json_line(&output, &["migrate"])
    };

    assert!(!file.exists());
    assert_eq!(
        migrate(),
        json!({"applied": ["0001_initial.sql", "0002_idempotency.sql", "0003_encryption.sql", "0004_server_secret.sql"]})
    );
    assert!(file.is_file(), "migrate did not create {}", file.display());
    assert_eq!(migrate(), json!({"applied": []}));
}

#[test]
fn the_default_database_is_a_file_under_ticketd_data() {
    let scratch = Scratch::new(Backend::Sqlite).expect("SQLite is always available");
    let file = scratch.dir.path().join("ticketd-data").join("ticketd.db");

    // No --database and no TICKETD_DATABASE_URL: the default applies, and
    // its directory is created by whichever command comes first.
    let output = scratch.command().arg("migrate").output().unwrap();
    assert_eq!(
        one_json_line(&output, &["migrate"]),
        json!({"applied": ["0001_initial.sql", "0002_idempotency.sql", "0003_encryption.sql", "0004_server_secret.sql"]})
    );
    assert!(file.is_file(), "no database at {}", file.display());
    let args = ["workspace", "create", "--name", "Acme Hosting"];
    let output = scratch.command().args(args).output().unwrap();
    assert_eq!(one_json_line(&output, &args)["numericId"], 1);
    assert!(file.is_file(), "no database at {}", file.display());
    // The workspace is in that file.
    let output = scratch
        .command()
        .arg("--database")
        .arg(format!("sqlite://{}", file.display()))
        .args(args)
        .output()
        .unwrap();
    let stderr = refused(&output, &args);
    assert!(stderr.contains("taken"), "{stderr}");
}

#[test]
fn export_refuses_a_missing_database_file() {
    let scratch = Scratch::new(Backend::Sqlite).expect("SQLite is always available");
    let file = scratch.dir.path().join("missing.db");
    let args = ["export"];
    let output = scratch
        .command()
        .arg("--database")
        .arg(format!("sqlite://{}", file.display()))
        .args(args)
        .output()
        .unwrap();
    assert_eq!(
        refused(&output, &args),
        format!(
            "ticketd: no ticketd database at sqlite://{}\n",
            file.display()
        )
    );
    assert!(!file.exists(), "export created the file it was to read");
}
