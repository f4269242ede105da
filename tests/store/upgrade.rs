//! Upgrading a database of the previous version: idempotency records stored
//! with an unkeyed fingerprint (a plain SHA-256 of method, path and body)
//! have it erased by migration 0004, and are then answered as another
//! request's until they expire, never replayed or written again.

use std::sync::Arc;

use sha2::{Digest, Sha256};
use ticketd::core::access::{Role, Scopes};
use ticketd::core::idempotency::{ClaimToken, Fingerprint, FingerprintKey, IdempotencyKey};
use ticketd::core::server_secret::ServerSecret;
use ticketd::core::ticket::TicketRef;
use ticketd::core::time::Timestamp;
use ticketd::store::idempotency::{ClaimOutcome, ClaimRequest, Completion, StoredResponse};
use ticketd::store::{DatabaseUrl, Store};

use crate::fixtures::{actor, key, message, ticket, workspace};
use crate::test_postgres::{self, TestDatabase};

const UPGRADE: &str = "0004_server_secret.sql";

async fn open(url: &str) -> Arc<dyn Store> {
    ticketd::store::open(&DatabaseUrl::parse(url).unwrap())
        .await
        .unwrap()
}

/// The fingerprint the previous version stored for a request.
fn unkeyed(path: &str, body: &str) -> [u8; 32] {
    let mut digest = Sha256::new();
    digest.update(format!("POST\0{path}\0{body}"));
    digest.finalize().into()
}

fn request(
    api_key: ticketd::core::id::KeyId,
    key: &str,
    fingerprint: Fingerprint,
    now: Timestamp,
) -> ClaimRequest {
    ClaimRequest {
        api_key,
        key: IdempotencyKey::parse(key).unwrap(),
        fingerprint,
        token: ClaimToken::generate(),
        holder: ticketd::store::idempotency::ClaimHolder {
            node: "node".into(),
            instance: "before".into(),
        },
        now,
        lease_until: Timestamp::from_millis(now.millis() + 60_000),
        expires_at: Timestamp::from_millis(now.millis() + 86_400_000),
    }
}

/// Writes, as the previous version did, one completed and one in-progress
/// record with unkeyed fingerprints; has `downgrade` put the database back
/// as it was before migration 0004 and `fingerprints` read every stored
/// fingerprint; reopens it (which applies 0004) and checks what is left.
async fn upgrade_erases_unkeyed_fingerprints(
    url: &str,
    downgrade: impl AsyncFnOnce(),
    fingerprints: impl AsyncFn() -> Vec<Vec<u8>>,
) {
    let store = open(url).await;
    let ws = workspace(&store, "ACME").await;
    let jane = actor(&store, ws, Role::Customer, "Jane Example").await;
    let api_key = key(&store, jane.user_id, Scopes::all()).await.key_id;
    let thread = ticket(&store, &jane, "Before the upgrade").await;
    let path = format!("/api/v2/support/tickets/{}/messages", thread.id);
    let body = r#"{"encrypted":true,"message":"My card PIN is 4821"}"#;
    let legacy = Fingerprint::from_slice(&unkeyed(&path, body)).unwrap();
    let now = Timestamp::now();

    let ClaimOutcome::Claimed(claim) = store
        .claim_idempotency_key(request(api_key, "done", legacy, now))
        .await
        .unwrap()
    else {
        panic!("not claimed");
    };
    store
        .append_message(
            &jane,
            TicketRef::Id(thread.id),
            message("My card PIN is 4821", now),
            Some(Completion {
                claim,
                expires_at: Timestamp::from_millis(now.millis() + 86_400_000),
                render: Box::new(|_| {
                    Ok(StoredResponse {
                        status: 201,
                        location: None,
                        body: b"{}".to_vec(),
                    })
                }),
            }),
        )
        .await
        .map(|written| written.response.expect("a completed write"))
        .unwrap();
    let pending = store
        .claim_idempotency_key(request(api_key, "pending", legacy, now))
        .await
        .unwrap();
    assert!(matches!(pending, ClaimOutcome::Claimed(_)), "{pending:?}");
    assert!(
        fingerprints().await.contains(&legacy.as_bytes().to_vec()),
        "the record was not written as the previous version wrote it"
    );
    drop(store);

    downgrade().await;
    let store = open(url).await;
    assert_eq!(fingerprints().await, vec![vec![0u8; 32]; 2]);

    // Neither the request as it was nor as this version fingerprints it
    // gets the record: both are refused until the records expire.
    let keyed = Fingerprint::of_request(
        &FingerprintKey::derive(&ServerSecret::generate().unwrap()),
        "POST",
        &path,
        body.as_bytes(),
    );
    let later = Timestamp::from_millis(now.millis() + 120_000);
    for key in ["done", "pending"] {
        for fingerprint in [legacy, keyed] {
            let outcome = store
                .claim_idempotency_key(request(api_key, key, fingerprint, later))
                .await
                .unwrap();
            assert_eq!(outcome, ClaimOutcome::Mismatch, "{key}");
        }
    }
    let found = store
        .find_ticket(&jane, TicketRef::Id(thread.id))
        .await
        .unwrap();
    assert_eq!(found.message_count, 2, "nothing was written again");
    let expired = Timestamp::from_millis(now.millis() + 86_400_001);
    let outcome = store
        .claim_idempotency_key(request(api_key, "done", keyed, expired))
        .await
        .unwrap();
    assert!(matches!(outcome, ClaimOutcome::Claimed(_)), "{outcome:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_upgrade_erases_unkeyed_fingerprints() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("ticketd.db");
    let url = format!("sqlite://{}", file.display());
    let connect = || rusqlite::Connection::open(&file).unwrap();
    upgrade_erases_unkeyed_fingerprints(
        &url,
        async || {
            connect()
                .execute_batch(&format!(
                    "DROP TABLE server_secret;
                     DELETE FROM schema_migration WHERE name = '{UPGRADE}';"
                ))
                .unwrap();
        },
        async || {
            let conn = connect();
            let mut select = conn
                .prepare("SELECT fingerprint FROM idempotency_record ORDER BY key")
                .unwrap();
            select
                .query_map([], |row| row.get(0))
                .unwrap()
                .collect::<Result<_, _>>()
                .unwrap()
        },
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_upgrade_erases_unkeyed_fingerprints() {
    let Some(database) = TestDatabase::create().await else {
        return;
    };
    let client = test_postgres::connect(database.url()).await.unwrap();
    upgrade_erases_unkeyed_fingerprints(
        database.url(),
        async || {
            client
                .batch_execute(&format!(
                    "DROP TABLE server_secret;
                     DELETE FROM schema_migration WHERE name = '{UPGRADE}';"
                ))
                .await
                .unwrap();
        },
        async || {
            client
                .query(
                    "SELECT fingerprint FROM idempotency_record ORDER BY key",
                    &[],
                )
                .await
                .unwrap()
                .iter()
                .map(|row| row.get(0))
                .collect()
        },
    )
    .await;
}
