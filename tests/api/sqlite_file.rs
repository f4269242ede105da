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
        json!({"applied": ["0001_initial.sql", "0002_idempotency.sql", "0003_encryption.sql", "0004_server_secret.sql", "0005_uploads.sql", "0006_sealed_uploads.sql", "0007_ticket_category.sql", "0008_numeric_ids.sql", "0009_agency.sql", "0010_message_tasks.sql"]})
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
        json!({"applied": ["0001_initial.sql", "0002_idempotency.sql", "0003_encryption.sql", "0004_server_secret.sql", "0005_uploads.sql", "0006_sealed_uploads.sql", "0007_ticket_category.sql", "0008_numeric_ids.sql", "0009_agency.sql", "0010_message_tasks.sql"]})
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

/// `sqlite://` takes a file path, never a SQLite URI: a URI would set
/// SQLite options (here: no locking) behind the back of everything else
/// that takes the name for a path.
#[test]
fn a_sqlite_url_names_a_file_never_a_sqlite_uri() {
    let scratch = Scratch::new(Backend::Sqlite).expect("SQLite is always available");
    let migrate = |url: &str| {
        scratch
            .command()
            .arg("--database")
            .arg(url)
            .arg("migrate")
            .output()
            .unwrap()
    };

    let output = migrate("sqlite://file:x.db?nolock=1");
    assert_eq!(
        refused(&output, &["migrate"]),
        "ticketd: database: sqlite://file:x.db?nolock=1 is a SQLite URI; ticketd takes a file \
         path only (sqlite://PATH) and sets SQLite's options itself. A file whose name starts \
         with `file:` is sqlite://./file:x.db?nolock=1\n"
    );
    let output = migrate("sqlite://:memory:");
    assert_eq!(
        refused(&output, &["migrate"]),
        "ticketd: database: sqlite://:memory: names no file; ticketd keeps its data in a \
         database file\n"
    );
    assert_eq!(std::fs::read_dir(scratch.dir.path()).unwrap().count(), 0);

    // Asked for as a path, such a name is one file, named in full, which
    // every connection (writer, readers, checkpointer) opens.
    let url = "sqlite://./file:x.db?nolock=1";
    one_json_line(&migrate(url), &["migrate"]);
    let args = ["workspace", "create", "--name", "Acme Hosting"];
    let output = scratch
        .command()
        .arg("--database")
        .arg(url)
        .args(args)
        .output()
        .unwrap();
    one_json_line(&output, &args);
    let output = scratch
        .command()
        .args(["--database", url, "export"])
        .output()
        .unwrap();
    assert!(output.status.success(), "{output:?}");
    assert!(
        String::from_utf8(output.stdout)
            .unwrap()
            .contains("Acme Hosting")
    );
    let mut names: Vec<String> = std::fs::read_dir(scratch.dir.path())
        .unwrap()
        .map(|entry| entry.unwrap().file_name().into_string().unwrap())
        .filter(|name| !name.ends_with("-wal") && !name.ends_with("-shm"))
        .collect();
    names.sort();
    assert_eq!(names, ["file:x.db?nolock=1"]);
}

/// The data directory ticketd creates is owner-only, and so is every file
/// it creates there: the database (whose -wal and -shm SQLite creates with
/// the database's permissions), the key file and the directory of upload
/// bytes.
#[cfg(unix)]
#[test]
fn the_data_directory_and_its_files_are_owner_only() {
    use std::os::unix::fs::PermissionsExt;

    let source = Scratch::new(Backend::Sqlite).expect("SQLite is always available");
    source.create_workspace("Acme Hosting");
    let dump = source.dir.path().join("dump.jsonl");
    source.json(&["export", "--output", dump.to_str().unwrap()]);

    // Into the default database, which the import creates with its key file.
    let scratch = Scratch::new(Backend::Sqlite).expect("SQLite is always available");
    let args = ["import", "--input", dump.to_str().unwrap()];
    let output = scratch.command().args(args).output().unwrap();
    one_json_line(&output, &args);
    let mode = |path: &std::path::Path| {
        std::fs::symlink_metadata(path)
            .unwrap()
            .permissions()
            .mode()
            & 0o777
    };
    let data = scratch.dir.path().join("ticketd-data");
    assert_eq!(mode(&data), 0o700);
    let mut files: Vec<(String, u32)> = std::fs::read_dir(&data)
        .unwrap()
        .map(|entry| {
            let entry = entry.unwrap();
            (
                entry.file_name().into_string().unwrap(),
                mode(&entry.path()),
            )
        })
        .filter(|(name, _)| !name.ends_with("-wal") && !name.ends_with("-shm"))
        .collect();
    files.sort();
    assert_eq!(
        files,
        [
            ("blobs".to_owned(), 0o700),
            ("encryption.key".to_owned(), 0o600),
            ("ticketd.db".to_owned(), 0o600)
        ]
    );
}
