//! Encryption at rest of messages marked `encrypted`: what reaches the
//! database, what comes back, restarts, tampering, key files that are
//! missing or wrong, rotation, and dumps.

use std::process::Output;

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use ticketd::core::access::{Actor, Role, TicketScope};
use ticketd::core::crypto::ENVELOPE_PREFIX;
use ticketd::core::id::{MessageId, TicketId};
use ticketd::core::idempotency::{Fingerprint, FingerprintKey};
use ticketd::core::ticket::TicketRef;
use ticketd::store::Reseal;

use super::BACKEND;
use super::cli::{Scratch, refused, text};
use crate::helpers::{TestApp, TestUser};
use crate::test_postgres;

const TICKETS: &str = "/api/v2/support/tickets";

/// Every byte the database holds for its messages and idempotency records:
/// the SQLite file and its WAL, or, on PostgreSQL, those rows as text (and
/// the stored response bodies decoded).
async fn database_bytes(app: &TestApp) -> Vec<u8> {
    let url = app.database_url();
    if let Some(path) = url.strip_prefix("sqlite://") {
        let mut bytes = std::fs::read(path).unwrap();
        if let Ok(wal) = std::fs::read(format!("{path}-wal")) {
            bytes.extend(wal);
        }
        return bytes;
    }
    let client = test_postgres::connect(&url).await.unwrap();
    let rows = client
        .query(
            "SELECT m::text FROM message m
             UNION ALL
             SELECT r::text || coalesce(convert_from(r.response_body, 'UTF8'), '')
             FROM idempotency_record r",
            &[],
        )
        .await
        .unwrap();
    rows.iter()
        .flat_map(|row| row.get::<_, String>(0).into_bytes())
        .collect()
}

fn contains(haystack: &[u8], needle: &str) -> bool {
    contains_bytes(haystack, needle.as_bytes())
}

fn contains_bytes(haystack: &[u8], needle: &[u8]) -> bool {
    haystack
        .windows(needle.len())
        .any(|window| window == needle)
}

/// Whether the database's bytes hold `digest`: as itself (a SQLite blob)
/// or in hex (PostgreSQL's text form of `bytea`).
fn holds_digest(bytes: &[u8], digest: &[u8; 32]) -> bool {
    let hex: String = digest.iter().map(|byte| format!("{byte:02x}")).collect();
    contains_bytes(bytes, digest) || contains(bytes, &hex)
}

/// The idempotency fingerprint of a request as ticketd stored it before
/// fingerprints were keyed: SHA-256 of method, path and canonical body,
/// which anyone can compute to test a guess at the body.
fn unkeyed_fingerprint(method: &str, path: &str, body: &Value) -> [u8; 32] {
    use sha2::Digest;
    let mut digest = sha2::Sha256::new();
    digest.update(method.as_bytes());
    digest.update([0]);
    digest.update(path.as_bytes());
    digest.update([0]);
    digest.update(serde_json::to_vec(body).unwrap());
    digest.finalize().into()
}

/// The fingerprint key of the server secret in the key file at `path`.
fn fingerprint_key_in(path: &std::path::Path) -> FingerprintKey {
    let file = ticketd::encryption::key_file::read(path).unwrap().unwrap();
    FingerprintKey::derive(&file.secret.expect("the key file has a server secret"))
}

fn staff_actor(app: &TestApp) -> Actor {
    Actor {
        workspace_id: app.workspace,
        user_id: app.staff.id,
        role: Role::Staff,
        name: app.staff.name.clone(),
        scope: TicketScope::ByRole,
    }
}

async fn reply(app: &TestApp, ticket: &str, user: &TestUser, body: Value) -> Value {
    let response = app
        .post(&format!("{TICKETS}/{ticket}/messages"), user, &body)
        .await;
    assert_eq!(response.status, StatusCode::CREATED, "{}", response.text);
    response.body
}

#[tokio::test]
async fn encrypted_bodies_reach_the_database_only_sealed() {
    let Some(app) = TestApp::spawn(BACKEND).await else {
        return;
    };
    let secret = "card 4111-1111-1111-1111 exp 12/29";
    let opened = app
        .post(
            TICKETS,
            &app.customer,
            &json!({"subject": "Billing", "message": "first: IBAN DE89370400440532013000", "encrypted": true}),
        )
        .await;
    assert_eq!(opened.status, StatusCode::CREATED, "{}", opened.text);
    let ticket = text(&opened.body["id"]).to_owned();
    let sent = reply(
        &app,
        &ticket,
        &app.customer,
        json!({"message": secret, "encrypted": true}),
    )
    .await;
    // The sender gets the plaintext back, as with any reply.
    assert_eq!(sent["body"], secret);
    assert_eq!(sent["encrypted"], true);
    // A control: an unencrypted body is found in the raw bytes, so the
    // search below could fail.
    reply(
        &app,
        &ticket,
        &app.staff,
        json!({"message": "visible marker 7f3a9c", "encrypted": false}),
    )
    .await;

    // Authorised readers get the plaintext.
    for reader in [&app.customer, &app.staff] {
        let thread = app
            .get(&format!("{TICKETS}/{ticket}/messages"), reader)
            .await;
        assert_eq!(thread.status, StatusCode::OK, "{}", thread.text);
        let bodies: Vec<&str> = thread.body["data"]
            .as_array()
            .unwrap()
            .iter()
            .map(|message| text(&message["body"]))
            .collect();
        assert_eq!(
            bodies,
            [
                "first: IBAN DE89370400440532013000",
                secret,
                "visible marker 7f3a9c"
            ]
        );
        let one = app
            .get(
                &format!("{TICKETS}/{ticket}/messages/{}", text(&sent["id"])),
                reader,
            )
            .await;
        assert_eq!(one.body["body"], secret, "{}", one.text);
    }
    // Nobody else does: not found, exactly as before.
    let foreign = app
        .get(&format!("{TICKETS}/{ticket}/messages"), &app.other_customer)
        .await;
    foreign.assert_problem(404, "not_found");

    // The database holds the sealed form only.
    let ticket_id = TicketId::parse(&ticket).unwrap();
    let message_id = MessageId::parse(text(&sent["id"])).unwrap();
    let stored = app
        .raw_store
        .find_message(&staff_actor(&app), TicketRef::Id(ticket_id), message_id)
        .await
        .unwrap();
    assert!(stored.body.starts_with(ENVELOPE_PREFIX), "{}", stored.body);
    let bytes = database_bytes(&app).await;
    assert!(
        contains(&bytes, "visible marker 7f3a9c"),
        "the control is missing"
    );
    for plaintext in [secret, "4111-1111", "DE89370400440532013000"] {
        assert!(
            !contains(&bytes, plaintext),
            "{plaintext} is in the database"
        );
    }
    app.stop().await;
}

#[tokio::test]
async fn a_keyed_encrypted_reply_is_replayed_but_stored_sealed() {
    let Some(app) = TestApp::spawn(BACKEND).await else {
        return;
    };
    let opened = app
        .post(
            TICKETS,
            &app.customer,
            &json!({"subject": "Keys", "message": "hello"}),
        )
        .await;
    let ticket = text(&opened.body["id"]).to_owned();
    let secret = "recovery code 93-XK-17-QQ";
    let send = || {
        app.send(
            app.client
                .post(app.url(&format!("{TICKETS}/{ticket}/messages")))
                .bearer_auth(&app.customer.token)
                .header("Idempotency-Key", "encrypted-reply-1")
                .json(&json!({"message": secret, "encrypted": true})),
        )
    };
    let first = send().await;
    assert_eq!(first.status, StatusCode::CREATED, "{}", first.text);
    let replay = send().await;
    assert_eq!(replay.status, StatusCode::CREATED, "{}", replay.text);
    assert_eq!(replay.header("idempotent-replayed"), "true");
    assert_eq!(replay.text, first.text, "a replay is the original answer");
    assert_eq!(replay.body["body"], secret);

    let bytes = database_bytes(&app).await;
    assert!(
        contains(&bytes, "encrypted-reply-1"),
        "the record is missing from what was searched"
    );
    assert!(
        !contains(&bytes, secret),
        "the plaintext is in the database"
    );

    // A rotation keeps the key the record was sealed with, and the server
    // secret the fingerprint was made with, so a later retry still replays
    // and another request under the key is still told apart.
    let secret_before = fingerprint_key_in(&app.key_file);
    ticketd::encryption::rotate(app.raw_store.as_ref(), &app.key_file, true)
        .await
        .unwrap();
    let path = format!("{TICKETS}/{ticket}/messages");
    let body = json!({"message": secret, "encrypted": true});
    assert_eq!(
        Fingerprint::of_request(
            &fingerprint_key_in(&app.key_file),
            "POST",
            &path,
            &serde_json::to_vec(&body).unwrap()
        ),
        Fingerprint::of_request(
            &secret_before,
            "POST",
            &path,
            &serde_json::to_vec(&body).unwrap()
        ),
        "the rotated key file has the same server secret"
    );
    let after_rotation = send().await;
    assert_eq!(
        after_rotation.status,
        StatusCode::CREATED,
        "{}",
        after_rotation.text
    );
    assert_eq!(after_rotation.header("idempotent-replayed"), "true");
    assert_eq!(after_rotation.text, first.text);
    let changed = app
        .send(
            app.client
                .post(app.url(&path))
                .bearer_auth(&app.customer.token)
                .header("Idempotency-Key", "encrypted-reply-1")
                .json(&json!({"message": "another text", "encrypted": true})),
        )
        .await;
    changed.assert_problem(422, "idempotency_key_reused");
    app.stop().await;
}

#[tokio::test]
async fn the_record_of_a_keyed_encrypted_reply_holds_neither_its_text_nor_its_digest() {
    let Some(app) = TestApp::spawn(BACKEND).await else {
        return;
    };
    let ticket = app.open_ticket(&app.customer, "Card").await;
    let path = format!("{TICKETS}/{}/messages", text(&ticket["id"]));
    let body = json!({"message": "My card PIN is 4821", "encrypted": true});
    let send = |body: &Value| {
        app.send(
            app.client
                .post(app.url(&path))
                .bearer_auth(&app.customer.token)
                .header("Idempotency-Key", "pin-reply-1")
                .json(body),
        )
    };
    let first = send(&body).await;
    assert_eq!(first.status, StatusCode::CREATED, "{}", first.text);
    assert_eq!(first.body["body"], "My card PIN is 4821");

    let bytes = database_bytes(&app).await;
    assert!(
        contains(&bytes, "pin-reply-1"),
        "the record was not searched"
    );
    assert!(
        !contains(&bytes, "4821"),
        "the plaintext is in the database"
    );
    // The old, unkeyed fingerprint would let anyone with the database try
    // all 10,000 PINs; it is not there. The keyed one is, exactly as the
    // key file's server secret makes it (so the search could find a digest).
    let unkeyed = unkeyed_fingerprint("POST", &path, &body);
    assert!(
        !holds_digest(&bytes, &unkeyed),
        "the unkeyed fingerprint is in the database"
    );
    let keyed = Fingerprint::of_request(
        &fingerprint_key_in(&app.key_file),
        "POST",
        &path,
        &serde_json::to_vec(&body).unwrap(),
    );
    assert!(
        holds_digest(&bytes, keyed.as_bytes()),
        "the keyed fingerprint is not in the database"
    );
    assert_eq!(
        keyed,
        Fingerprint::of_request(
            &app.fingerprint_key,
            "POST",
            &path,
            &serde_json::to_vec(&body).unwrap()
        )
    );

    // Keyed, the fingerprint still does its work: the same request is
    // replayed, another one under the same key refused.
    let retry = send(&body).await;
    assert_eq!(retry.status, StatusCode::CREATED, "{}", retry.text);
    assert_eq!(retry.header("idempotent-replayed"), "true");
    assert_eq!(retry.text, first.text);
    let changed = send(&json!({"message": "My card PIN is 4822", "encrypted": true})).await;
    changed.assert_problem(422, "idempotency_key_reused");
    let thread = app.get(&path, &app.staff).await;
    assert_eq!(
        thread.body["data"].as_array().unwrap().len(),
        2,
        "{}",
        thread.text
    );
    app.stop().await;
}

#[tokio::test]
async fn a_tampered_body_is_detected_and_never_returned() {
    let Some(app) = TestApp::spawn(BACKEND).await else {
        return;
    };
    let ticket = app.open_ticket(&app.customer, "Secrets").await;
    let ticket = text(&ticket["id"]).to_owned();
    let first = reply(
        &app,
        &ticket,
        &app.customer,
        json!({"message": "one", "encrypted": true}),
    )
    .await;
    let second = reply(
        &app,
        &ticket,
        &app.customer,
        json!({"message": "two", "encrypted": true}),
    )
    .await;
    let ticket_id = TicketId::parse(&ticket).unwrap();
    let stored = app
        .raw_store
        .encrypted_messages(None, None, 10)
        .await
        .unwrap();
    assert_eq!(stored.len(), 2);
    let (one, two) = (&stored[0], &stored[1]);
    assert_eq!(one.id.to_string(), text(&first["id"]));

    let message_path = |id: &Value| format!("{TICKETS}/{ticket}/messages/{}", text(id));
    let rewrite = |at: &ticketd::store::StoredBody, old: &str, new: String| Reseal {
        ticket_id,
        seq: at.seq,
        old: old.to_owned(),
        new,
    };
    // One character of the ciphertext changed; then the second message's
    // sealed body copied into the first; then plaintext put in its place.
    let at = one.body.len() - 12;
    let flipped = if &one.body[at..=at] == "A" { "B" } else { "A" };
    let altered = format!("{}{flipped}{}", &one.body[..at], &one.body[at + 1..]);
    let tampered_bodies = [altered, two.body.clone(), "forged plaintext".to_owned()];
    let mut current = one.body.clone();
    for tampered in tampered_bodies {
        let replaced = app
            .raw_store
            .reseal_messages(vec![rewrite(one, &current, tampered.clone())])
            .await
            .unwrap();
        assert_eq!(replaced, 1);
        current = tampered;
        for path in [
            message_path(&first["id"]),
            format!("{TICKETS}/{ticket}/messages"),
        ] {
            let response = app.get(&path, &app.staff).await;
            let problem = response.assert_problem(500, "internal_error");
            assert!(!response.text.contains("forged"), "{problem}");
            assert!(!response.text.contains("two"), "{problem}");
        }
        // The untouched message, and the ticket, are still served.
        let other = app.get(&message_path(&second["id"]), &app.staff).await;
        assert_eq!(other.body["body"], "two", "{}", other.text);
        let found = app.get(&format!("{TICKETS}/{ticket}"), &app.staff).await;
        assert_eq!(found.status, StatusCode::OK);
    }
    // Restored, it reads again.
    app.raw_store
        .reseal_messages(vec![rewrite(one, &current, one.body.clone())])
        .await
        .unwrap();
    let restored = app.get(&message_path(&first["id"]), &app.staff).await;
    assert_eq!(restored.body["body"], "one", "{}", restored.text);
    app.stop().await;
}

#[tokio::test]
async fn rotation_reseals_everything_while_the_server_runs() {
    let Some(app) = TestApp::spawn(BACKEND).await else {
        return;
    };
    let mut expected = Vec::new();
    for (subject, user) in [("One", &app.customer), ("Two", &app.other_customer)] {
        let ticket = app.open_ticket(user, subject).await;
        let ticket = text(&ticket["id"]).to_owned();
        for n in 0..3 {
            let body = format!("{subject} secret {n}");
            reply(
                &app,
                &ticket,
                user,
                json!({"message": body, "encrypted": true}),
            )
            .await;
        }
        reply(&app, &ticket, &app.staff, json!({"message": "not secret"})).await;
        expected.push(ticket);
    }
    let before = ticketd::encryption::status(app.raw_store.as_ref(), &app.key_file)
        .await
        .unwrap();
    assert_eq!(before.keys.len(), 1, "{before:?}");
    assert_eq!(before.keys[0].messages, 6);
    let old_key = before.current_key.clone();

    let report = ticketd::encryption::rotate(app.raw_store.as_ref(), &app.key_file, true)
        .await
        .unwrap();
    assert_eq!(report.resealed, 6);
    assert_eq!(report.retired_keys, vec![old_key.clone()]);
    assert_ne!(report.current_key, old_key);
    let after = ticketd::encryption::status(app.raw_store.as_ref(), &app.key_file)
        .await
        .unwrap();
    assert_eq!(after.current_key, report.current_key);
    assert_eq!(after.keys.len(), 1, "{after:?}");
    assert_eq!(after.keys[0].messages, 6);
    assert!(after.keys[0].registered && after.keys[0].in_key_file && !after.keys[0].retiring);
    let file = std::fs::read_to_string(&app.key_file).unwrap();
    assert!(
        !file.contains(&old_key),
        "the old key is still in the key file"
    );

    // The running server, which started with the old key, reads the
    // re-sealed bodies and seals new ones with the new key.
    for (ticket, (subject, user)) in expected
        .iter()
        .zip([("One", &app.customer), ("Two", &app.other_customer)])
    {
        let thread = app.get(&format!("{TICKETS}/{ticket}/messages"), user).await;
        assert_eq!(thread.status, StatusCode::OK, "{}", thread.text);
        assert_eq!(
            thread.body["data"][3]["body"],
            format!("{subject} secret 2")
        );
    }
    let late = reply(
        &app,
        &expected[0],
        &app.customer,
        json!({"message": "after the rotation", "encrypted": true}),
    )
    .await;
    assert_eq!(late["body"], "after the rotation");
    let status = ticketd::encryption::status(app.raw_store.as_ref(), &app.key_file)
        .await
        .unwrap();
    assert_eq!(status.keys.len(), 1, "{status:?}");
    assert_eq!(status.keys[0].id, report.current_key);
    assert_eq!(status.keys[0].messages, 7);

    // Nothing left to do on a second pass.
    let again = ticketd::encryption::rotate(app.raw_store.as_ref(), &app.key_file, false)
        .await
        .unwrap();
    assert_eq!(again.resealed, 0);
    assert!(again.retired_keys.is_empty());

    // A key added with one copy of the key file is not retired by a
    // rotation run with an older copy.
    let stale_copy = app.key_file.with_extension("old");
    std::fs::copy(&app.key_file, &stale_copy).unwrap();
    let added = ticketd::encryption::add_key(app.raw_store.as_ref(), &app.key_file)
        .await
        .unwrap();
    let refused = ticketd::encryption::rotate(app.raw_store.as_ref(), &stale_copy, false)
        .await
        .unwrap_err();
    assert!(
        refused.contains(&added.to_string()) && refused.contains("lacks"),
        "{refused}"
    );
    let finished = ticketd::encryption::rotate(app.raw_store.as_ref(), &app.key_file, false)
        .await
        .unwrap();
    assert_eq!(finished.current_key, added.to_string());
    assert_eq!(finished.resealed, 7);
    app.stop().await;
}

/// Provisions a workspace, a customer with a key, and a staff user with a
/// key through the CLI; returns the two tokens.
fn provision(scratch: &Scratch) -> (String, String) {
    let workspace = scratch.create_workspace("Acme Hosting");
    let workspace = text(&workspace["id"]).to_owned();
    let jane = scratch.create_user(&workspace, "customer", "Jane Example");
    let jane = scratch.create_key(text(&jane["id"]));
    let sam = scratch.create_user(&workspace, "staff", "Sam Staff");
    let sam = scratch.create_key(text(&sam["id"]));
    (
        text(&jane["token"]).to_owned(),
        text(&sam["token"]).to_owned(),
    )
}

#[tokio::test]
async fn encrypted_messages_survive_a_restart_and_a_rotation_by_the_cli() {
    let Some(scratch) = Scratch::new(BACKEND) else {
        return;
    };
    let (jane, sam) = provision(&scratch);
    let secret = "the root password is correct-horse-battery";
    let mut server = scratch.serve().await;
    let (status, ticket) = server
        .call(
            Method::POST,
            TICKETS,
            &jane,
            Some(json!({"subject": "Access", "message": secret, "encrypted": true})),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{ticket}");
    let thread = format!("{TICKETS}/{}/messages", text(&ticket["id"]));
    assert_eq!(server.terminate().code(), Some(0));
    let log = server.log();
    let key_file = scratch.key_file();
    assert!(
        log.contains("generated an encryption key file") && log.contains("encryption.key"),
        "{log}"
    );
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&key_file).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
    }

    let rotated = scratch.json(&["encryption", "rotate"]);
    assert_eq!(rotated["resealed"], 1, "{rotated}");
    let status = scratch.json(&["encryption", "status"]);
    assert_eq!(status["currentKey"], rotated["currentKey"]);
    assert_eq!(status["keys"].as_array().unwrap().len(), 1, "{status}");
    assert_eq!(status["keys"][0]["messages"], 1);

    let mut server = scratch.serve().await;
    let (code, read) = server.call(Method::GET, &thread, &sam, None).await;
    assert_eq!(code, StatusCode::OK, "{read}");
    assert_eq!(read["data"][0]["body"], secret);
    assert_eq!(read["data"][0]["encrypted"], true);
    assert_eq!(server.terminate().code(), Some(0));
    assert!(!server.log().contains("correct-horse"), "{}", server.log());
    assert!(!log.contains("correct-horse"), "{log}");
}

/// Writes a key file as an operator would, readable by its owner only.
fn write_key_file(path: &std::path::Path, text: &str) {
    std::fs::write(path, text).unwrap();
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)).unwrap();
    }
}

/// Runs `ticketd serve` expecting it to refuse to start; returns stderr.
fn refused_to_serve(scratch: &Scratch) -> String {
    let args = ["serve", "--listen", "127.0.0.1:0"];
    let output: Output = scratch
        .command()
        .arg("--database")
        .arg(scratch.db_url())
        .args(args)
        .output()
        .unwrap();
    refused(&output, &args)
}

#[tokio::test]
async fn a_missing_or_wrong_key_file_stops_ticketd_at_startup() {
    let Some(scratch) = Scratch::new(BACKEND) else {
        return;
    };
    let (jane, _) = provision(&scratch);
    let mut server = scratch.serve().await;
    let (status, _) = server
        .call(
            Method::POST,
            TICKETS,
            &jane,
            Some(json!({"subject": "Access", "message": "secret", "encrypted": true})),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED);
    assert_eq!(server.terminate().code(), Some(0));

    let key_file = scratch.key_file();
    let original = std::fs::read_to_string(&key_file).unwrap();
    let line = original
        .lines()
        .find(|line| line.starts_with("key "))
        .unwrap();
    let id = line.split_whitespace().nth(1).unwrap().to_owned();

    std::fs::remove_file(&key_file).unwrap();
    let stderr = refused_to_serve(&scratch);
    assert!(
        stderr.contains("does not exist") && stderr.contains(&id),
        "{stderr}"
    );
    assert!(!key_file.exists(), "a new key file was generated");
    let stderr = refused(&scratch.run(&["export", "--decrypt"]), &["export"]);
    assert!(stderr.contains("does not exist"), "{stderr}");

    // The right id with other key material.
    let other = "A".repeat(43) + "=";
    write_key_file(&key_file, &format!("key {id} {other}\n"));
    let stderr = refused_to_serve(&scratch);
    assert!(stderr.contains("fails its check"), "{stderr}");
    assert!(!stderr.contains(&other), "key material in {stderr}");
    // Another database's key file.
    let foreign = "01aaaaaaaaaaaaaaaaaaaaaaaa";
    write_key_file(&key_file, &format!("key {foreign} {other}\n"));
    let stderr = refused_to_serve(&scratch);
    assert!(stderr.contains("belongs to another database"), "{stderr}");
    // Not a key file at all.
    write_key_file(&key_file, "hello\n");
    let stderr = refused_to_serve(&scratch);
    assert!(stderr.contains("is not valid"), "{stderr}");
    // The right keys with another server secret: its fingerprints would
    // match no other node's.
    let secret_line = original
        .lines()
        .find(|line| line.starts_with("secret "))
        .unwrap();
    let other_secret = format!("secret {other}");
    write_key_file(&key_file, &original.replace(secret_line, &other_secret));
    let stderr = refused_to_serve(&scratch);
    assert!(stderr.contains("server secret fails its check"), "{stderr}");
    assert!(!stderr.contains(&other), "key material in {stderr}");
    // The right keys without the server secret (a copy from before this
    // version), on a database that has one: not invented anew.
    let without_secret = original.replace(&format!("{secret_line}\n"), "");
    write_key_file(&key_file, &without_secret);
    let stderr = refused_to_serve(&scratch);
    assert!(stderr.contains("has no server secret"), "{stderr}");
    assert_eq!(std::fs::read_to_string(&key_file).unwrap(), without_secret);

    write_key_file(&key_file, &original);
    let server = scratch.serve().await;
    drop(server);
}

#[tokio::test]
async fn exports_keep_bodies_sealed_unless_decrypt_is_asked_for() {
    let Some(source) = Scratch::new(BACKEND) else {
        return;
    };
    let (jane, _) = provision(&source);
    let mut server = source.serve().await;
    let (status, _) = server
        .call(
            Method::POST,
            TICKETS,
            &jane,
            Some(json!({"subject": "Access", "message": "the vault code is 7788", "encrypted": true})),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED);
    assert_eq!(server.terminate().code(), Some(0));

    let sealed = source.dir.path().join("sealed.jsonl");
    source.json(&["export", "--output", sealed.to_str().unwrap()]);
    let sealed = std::fs::read_to_string(sealed).unwrap();
    assert!(!sealed.contains("7788"), "{sealed}");
    assert!(sealed.contains(ENVELOPE_PREFIX), "{sealed}");

    let plain = source.dir.path().join("plain.jsonl");
    let args = ["export", "--decrypt", "--output", plain.to_str().unwrap()];
    let output = source.run(&args);
    assert!(output.status.success(), "{output:?}");
    let stderr = String::from_utf8(output.stderr).unwrap();
    assert!(
        stderr.contains("warning") && stderr.contains("plaintext"),
        "{stderr}"
    );
    let plain_dump = std::fs::read_to_string(&plain).unwrap();
    assert!(
        plain_dump.contains(r#""body":"the vault code is 7788""#),
        "{plain_dump}"
    );
    // Dumps, with plaintext or without, are for the owner only.
    #[cfg(unix)]
    for dump in ["sealed.jsonl", "plain.jsonl"] {
        use std::os::unix::fs::PermissionsExt;
        let path = source.dir.path().join(dump);
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600, "{dump}");
    }
    assert!(!plain_dump.contains(ENVELOPE_PREFIX));

    // A plaintext dump imports into a new database with its own key file,
    // sealed again on the way in.
    let Some(target) = Scratch::new(BACKEND) else {
        return;
    };
    let imported = target.json(&["import", "--input", plain.to_str().unwrap()]);
    assert_eq!(imported["imported"]["messages"], 1, "{imported}");
    assert!(target.key_file().exists());
    let output = target.run(&["export"]);
    let resealed = String::from_utf8(output.stdout).unwrap();
    assert!(
        !resealed.contains("7788") && resealed.contains(ENVELOPE_PREFIX),
        "{resealed}"
    );
    let output = target.run(&["export", "--decrypt"]);
    let reopened = String::from_utf8(output.stdout).unwrap();
    assert!(reopened.contains("the vault code is 7788"), "{reopened}");

    // A sealed dump needs the key file it was sealed with.
    let Some(keyless) = Scratch::new(BACKEND) else {
        return;
    };
    let path = keyless.dir.path().join("sealed.jsonl");
    std::fs::write(&path, &sealed).unwrap();
    let args = ["import", "--input", path.to_str().unwrap()];
    let stderr = keyless.fails(&args);
    assert!(stderr.contains("lacks"), "{stderr}");
    assert!(!stderr.contains("7788"));
}

/// Forgets the server secret's check value, as a database of the version
/// before server secrets is.
async fn forget_server_secret(scratch: &Scratch) {
    let url = scratch.db_url();
    let sql = "DELETE FROM server_secret";
    match url.strip_prefix("sqlite://") {
        Some(path) => {
            rusqlite::Connection::open(path)
                .unwrap()
                .execute(sql, [])
                .unwrap();
        }
        None => {
            let client = test_postgres::connect(&url).await.unwrap();
            client.execute(sql, &[]).await.unwrap();
        }
    }
}

#[tokio::test]
async fn a_key_file_from_before_the_server_secret_gets_one_that_other_nodes_must_copy() {
    let Some(scratch) = Scratch::new(BACKEND) else {
        return;
    };
    let (jane, _) = provision(&scratch);
    let mut server = scratch.serve().await;
    let (status, ticket) = server
        .call(
            Method::POST,
            TICKETS,
            &jane,
            Some(json!({"subject": "Access", "message": "secret", "encrypted": true})),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{ticket}");
    assert_eq!(server.terminate().code(), Some(0));

    // The key file and the database as the previous version left them.
    let key_file = scratch.key_file();
    let generated = std::fs::read_to_string(&key_file).unwrap();
    let old: String = generated
        .lines()
        .filter(|line| !line.starts_with("secret "))
        .map(|line| format!("{line}\n"))
        .collect();
    assert_ne!(old, generated);
    write_key_file(&key_file, &old);
    forget_server_secret(&scratch).await;

    // The first node to start adds a secret to its key file and says so.
    let mut server = scratch.serve().await;
    let thread = format!("{TICKETS}/{}/messages", text(&ticket["id"]));
    let (status, read) = server.call(Method::GET, &thread, &jane, None).await;
    assert_eq!(status, StatusCode::OK, "{read}");
    assert_eq!(read["data"][0]["body"], "secret");
    assert_eq!(server.terminate().code(), Some(0));
    assert!(
        server.log().contains("added a server secret"),
        "{}",
        server.log()
    );
    let upgraded = std::fs::read_to_string(&key_file).unwrap();
    let secret_line = upgraded
        .lines()
        .find(|line| line.starts_with("secret "))
        .unwrap();
    assert!(!generated.contains(secret_line), "a new secret");
    assert!(
        upgraded.contains(old.lines().last().unwrap()),
        "the keys are kept"
    );
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&key_file).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
    }

    // Another node still holding the old copy is refused until it gets
    // the new one; it does not add a secret of its own.
    write_key_file(&key_file, &old);
    let stderr = refused_to_serve(&scratch);
    assert!(stderr.contains("has no server secret"), "{stderr}");
    assert_eq!(std::fs::read_to_string(&key_file).unwrap(), old);
    write_key_file(&key_file, &upgraded);
    let server = scratch.serve().await;
    drop(server);
    // Rotations keep the secret.
    scratch.json(&["encryption", "rotate"]);
    let rotated = std::fs::read_to_string(&key_file).unwrap();
    assert!(rotated.contains(secret_line), "{rotated}");
    let server = scratch.serve().await;
    drop(server);
}

/// Plaintexts that read like sealed bodies: a bare prefix, one naming a
/// key id, and one whole in form.
fn lookalike_plaintexts() -> Vec<String> {
    vec![
        ENVELOPE_PREFIX.to_owned(),
        format!(
            "{ENVELOPE_PREFIX}{}:AAAA",
            ticketd::core::crypto::DataKeyId::generate()
        ),
        format!("{ENVELOPE_PREFIX}01KBQ4Z3N6V2XJ8W5T7Y9R0M1P:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"),
    ]
}

/// Opens a ticket of encrypted messages holding `texts`; returns its id.
async fn encrypted_thread(scratch: &Scratch, jane: &str, texts: &[String]) -> String {
    let mut server = scratch.serve().await;
    let (status, ticket) = server
        .call(
            Method::POST,
            TICKETS,
            jane,
            Some(json!({"subject": "Lookalikes", "message": texts[0], "encrypted": true})),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{ticket}");
    let id = text(&ticket["id"]).to_owned();
    for body in &texts[1..] {
        let (status, reply) = server
            .call(
                Method::POST,
                &format!("{TICKETS}/{id}/messages"),
                jane,
                Some(json!({"message": body, "encrypted": true})),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{reply}");
    }
    assert_eq!(server.terminate().code(), Some(0));
    id
}

/// The message bodies of ticket `id`, oldest first, as `jane` reads them.
async fn thread_bodies(scratch: &Scratch, jane: &str, id: &str) -> Vec<String> {
    let mut server = scratch.serve().await;
    let (status, page) = server
        .call(Method::GET, &format!("{TICKETS}/{id}/messages"), jane, None)
        .await;
    assert_eq!(status, StatusCode::OK, "{page}");
    assert_eq!(server.terminate().code(), Some(0));
    page["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|message| text(&message["body"]).to_owned())
        .collect()
}

#[tokio::test]
async fn a_decrypted_dump_says_so_and_its_plaintext_round_trips_whatever_it_begins_with() {
    let Some(source) = Scratch::new(BACKEND) else {
        return;
    };
    let (jane, _) = provision(&source);
    let texts = lookalike_plaintexts();
    let ticket = encrypted_thread(&source, &jane, &texts).await;

    let output = source.run(&["export", "--decrypt"]);
    assert!(output.status.success(), "{output:?}");
    let dump = String::from_utf8(output.stdout).unwrap();
    assert_eq!(
        dump.lines().next(),
        Some(r#"{"format":"ticketd-dump","version":4,"decrypted":true}"#)
    );
    let sealed = String::from_utf8(source.run(&["export"]).stdout).unwrap();
    assert_eq!(
        sealed.lines().next(),
        Some(r#"{"format":"ticketd-dump","version":4,"decrypted":false}"#)
    );

    let Some(target) = Scratch::new(BACKEND) else {
        return;
    };
    let path = target.dir.path().join("decrypted.jsonl");
    std::fs::write(&path, &dump).unwrap();
    let imported = target.json(&["import", "--input", path.to_str().unwrap()]);
    assert_eq!(imported["imported"]["messages"], 3, "{imported}");
    assert_eq!(thread_bodies(&target, &jane, &ticket).await, texts);
    // Stored sealed, and exported again exactly.
    let resealed = String::from_utf8(target.run(&["export"]).stdout).unwrap();
    for plaintext in &texts[1..] {
        assert!(!resealed.contains(plaintext.as_str()), "{resealed}");
    }
    let again = String::from_utf8(target.run(&["export", "--decrypt"]).stdout).unwrap();
    assert_eq!(again, dump);
}

/// Puts the encrypted bodies of `scratch`'s database back as plaintext
/// `texts`, in thread order, and forgets its keys and server secret: a
/// database from before encryption at rest.
async fn store_as_before_encryption(scratch: &Scratch, texts: &[String]) {
    let url = scratch.db_url();
    let updates: Vec<(String, i64)> = texts
        .iter()
        .enumerate()
        .map(|(index, text)| (text.clone(), index as i64 + 1))
        .collect();
    match url.strip_prefix("sqlite://") {
        Some(path) => {
            let db = rusqlite::Connection::open(path).unwrap();
            // The trigger refuses a body with the envelope's prefix under no
            // registered key; no version before encryption had it.
            let trigger: String = db
                .query_row(
                    "SELECT sql FROM sqlite_master WHERE name = 'message_sealed_key_update'",
                    [],
                    |row| row.get(0),
                )
                .unwrap();
            db.execute_batch("DROP TRIGGER message_sealed_key_update")
                .unwrap();
            for (text, seq) in &updates {
                db.execute(
                    "UPDATE message SET body = ?1 WHERE encrypted = 1 AND seq = ?2",
                    rusqlite::params![text, seq],
                )
                .unwrap();
            }
            db.execute_batch(&format!(
                "{trigger}; DELETE FROM encryption_key; DELETE FROM server_secret;"
            ))
            .unwrap();
        }
        None => {
            let client = test_postgres::connect(&url).await.unwrap();
            client
                .batch_execute("ALTER TABLE message DISABLE TRIGGER message_sealed_key_check")
                .await
                .unwrap();
            for (text, seq) in &updates {
                client
                    .execute(
                        "UPDATE message SET body = $1 WHERE encrypted AND seq = $2",
                        &[text, seq],
                    )
                    .await
                    .unwrap();
            }
            client
                .batch_execute(
                    "ALTER TABLE message ENABLE TRIGGER message_sealed_key_check;
                     DELETE FROM encryption_key; DELETE FROM server_secret;",
                )
                .await
                .unwrap();
        }
    }
    std::fs::remove_file(scratch.key_file()).unwrap();
}

#[tokio::test]
async fn the_first_start_seals_plaintext_from_before_encryption_whatever_it_begins_with() {
    let Some(scratch) = Scratch::new(BACKEND) else {
        return;
    };
    let (jane, _) = provision(&scratch);
    let mut texts = lookalike_plaintexts();
    texts.push("the door code is 4455".to_owned());
    let ticket = encrypted_thread(&scratch, &jane, &texts).await;
    store_as_before_encryption(&scratch, &texts).await;

    assert_eq!(thread_bodies(&scratch, &jane, &ticket).await, texts);
    let status = scratch.json(&["encryption", "status"]);
    assert_eq!(status["unsealedMessages"], 0, "{status}");
    let sealed = String::from_utf8(scratch.run(&["export"]).stdout).unwrap();
    assert!(!sealed.contains("4455"), "{sealed}");
}
