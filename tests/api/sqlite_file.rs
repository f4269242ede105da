//! What only SQLite has: a database file, created where `--database` points
//! or, by default, under `./ticketd-data/`. Included in the `sqlite` module
//! only; every other CLI test runs on both backends in `cli`.

use serde_json::json;

use super::cli::{Scratch, one_json_line, refused, text};
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
        json!({"applied": ["0001_initial.sql", "0002_idempotency.sql", "0003_encryption.sql", "0004_server_secret.sql", "0005_uploads.sql", "0006_sealed_uploads.sql", "0007_ticket_category.sql", "0008_numeric_ids.sql", "0009_agency.sql", "0010_message_tasks.sql", "0011_claim_holders.sql"]})
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
        json!({"applied": ["0001_initial.sql", "0002_idempotency.sql", "0003_encryption.sql", "0004_server_secret.sql", "0005_uploads.sql", "0006_sealed_uploads.sql", "0007_ticket_category.sql", "0008_numeric_ids.sql", "0009_agency.sql", "0010_message_tasks.sql", "0011_claim_holders.sql"]})
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

/// Every message body of ticket `id`, oldest first, following pages.
async fn thread_bodies(server: &super::cli::Server, token: &str, id: &str) -> Vec<String> {
    let mut bodies = Vec::new();
    let mut cursor = String::new();
    loop {
        let path = format!("/api/v2/support/tickets/{id}/messages?limit=100{cursor}");
        let (status, page) = server.call(reqwest::Method::GET, &path, token, None).await;
        assert_eq!(status, reqwest::StatusCode::OK, "{page}");
        for message in page["data"].as_array().unwrap() {
            bodies.push(text(&message["body"]).to_owned());
        }
        match page["nextCursor"].as_str() {
            Some(next) => cursor = format!("&cursor={next}"),
            None => return bodies,
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backup_taken_under_a_reply_load_restores_every_reply_acknowledged_before_it() {
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::{Arc, Mutex};

    let source = Scratch::new(Backend::Sqlite).unwrap();
    let workspace = source.create_workspace("Acme Hosting");
    let jane = source.create_user(text(&workspace["id"]), "customer", "Jane Example");
    let token = text(&source.create_key(text(&jane["id"]))["token"]).to_owned();
    let server = source.serve().await;
    let mut file = b"\x89PNG\r\n\x1a\n".to_vec();
    file.extend((0..70_000u32).map(|i| (i % 251) as u8));
    let uploaded: serde_json::Value = reqwest::Client::new()
        .post(format!(
            "{}/api/v2/support/uploads?filename=screen.png",
            server.base_url
        ))
        .bearer_auth(&token)
        .header("content-type", "image/png")
        .body(file.clone())
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let (status, ticket) = server
        .call(
            reqwest::Method::POST,
            "/api/v2/support/tickets",
            &token,
            Some(
                json!({"subject": "Backups", "message": "first", "attachments": [uploaded["id"]]}),
            ),
        )
        .await;
    assert_eq!(status, reqwest::StatusCode::CREATED, "{ticket}");
    let ticket_id = text(&ticket["id"]).to_owned();

    // Four clients reply as fast as they are answered, noting each reply
    // acknowledged, until told to stop.
    let server = Arc::new(server);
    let acknowledged = Arc::new(Mutex::new(vec!["first".to_owned()]));
    let stop = Arc::new(AtomicBool::new(false));
    let mut clients = Vec::new();
    for client in 0..4 {
        let (server, acknowledged, stop) = (
            Arc::clone(&server),
            Arc::clone(&acknowledged),
            Arc::clone(&stop),
        );
        let (token, ticket_id) = (token.clone(), ticket_id.clone());
        clients.push(tokio::spawn(async move {
            let path = format!("/api/v2/support/tickets/{ticket_id}/messages");
            let mut sent = 0;
            while !stop.load(Ordering::Relaxed) {
                let body = format!("reply {client}-{sent}");
                let (status, reply) = server
                    .call(
                        reqwest::Method::POST,
                        &path,
                        &token,
                        Some(json!({"message": body})),
                    )
                    .await;
                assert_eq!(status, reqwest::StatusCode::CREATED, "{reply}");
                acknowledged.lock().unwrap().push(body);
                sent += 1;
            }
        }));
    }
    while acknowledged.lock().unwrap().len() < 200 {
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    let before_backup = acknowledged.lock().unwrap().clone();
    let backup_dir = source.dir.path().join("backup");
    let args = ["backup", "--to", backup_dir.to_str().unwrap()];
    // Run beside the load, which goes on meanwhile.
    let mut command = source.command();
    command.arg("--database").arg(source.db_url()).args(args);
    let output = tokio::task::spawn_blocking(move || command.output().unwrap())
        .await
        .unwrap();
    let during_backup = acknowledged.lock().unwrap().len() - before_backup.len();
    stop.store(true, Ordering::Relaxed);
    for client in clients {
        client.await.unwrap();
    }
    let report = one_json_line(&output, &args);
    assert_eq!(report["uploadFiles"], 1, "{report}");
    assert!(
        during_backup > 0 || report["tookMs"].as_u64().unwrap() < 50,
        "{report}"
    );

    // Restored into an empty data directory, with the key file copied.
    let target = Scratch::new(Backend::Sqlite).unwrap();
    let args = ["restore", "--from", backup_dir.to_str().unwrap()];
    let restored = one_json_line(&target.run(&args), &args);
    assert_eq!(restored["uploadFiles"], 1, "{restored}");
    let path = target
        .db_url()
        .strip_prefix("sqlite://")
        .unwrap()
        .to_owned();
    let check: String = rusqlite::Connection::open(&path)
        .unwrap()
        .query_row("PRAGMA integrity_check", [], |row| row.get(0))
        .unwrap();
    assert_eq!(check, "ok");
    target.copy_key_file(&source.key_file());
    let restored_server = target.serve().await;
    let bodies = thread_bodies(&restored_server, &token, &ticket_id).await;
    for body in &before_backup {
        assert!(
            bodies.contains(body),
            "{body} was acknowledged before the backup"
        );
    }
    let all = acknowledged.lock().unwrap().len();
    assert!(bodies.len() <= all, "{} restored of {all}", bodies.len());
    let (_, first) = restored_server
        .call(
            reqwest::Method::GET,
            &format!("/api/v2/support/tickets/{ticket_id}/messages?limit=1"),
            &token,
            None,
        )
        .await;
    let url = text(&first["data"][0]["attachments"][0]["url"]).to_owned();
    let downloaded = reqwest::Client::new()
        .get(format!("{}{url}", restored_server.base_url))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();
    assert_eq!(downloaded.to_vec(), file);

    // A backup needs a new directory; a restore an empty data directory.
    let args = ["backup", "--to", backup_dir.to_str().unwrap()];
    assert!(refused(&source.run(&args), &args).contains("exists: back up into a new directory"));
    let args = ["restore", "--from", backup_dir.to_str().unwrap()];
    assert!(refused(&target.run(&args), &args).contains("restore into an empty data directory"));
}
