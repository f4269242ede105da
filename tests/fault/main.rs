//! Fault tests against the real `ticketd` binary: SIGKILL under load loses
//! and duplicates nothing that was acknowledged, and SIGTERM under load
//! drains every accepted request.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "a failed unwrap is a failed test"
)]

mod idempotency;
mod postgres;
mod private_postgres;
mod process;
#[path = "../shared/test_postgres.rs"]
mod test_postgres;
#[path = "../shared/test_redis.rs"]
mod test_redis;
mod tls;
mod uploads;

use std::collections::{HashMap, HashSet};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use ticketd::core::access::{Actor, Role, Scopes, TicketScope};
use ticketd::core::id::{KeyId, MessageId, TicketId, UserId, WorkspaceId};
use ticketd::core::message::{BodyFormat, NewMessage};
use ticketd::core::text::{MessageBody, Subject};
use ticketd::core::ticket::{NewTicket, Priority};
use ticketd::core::time::Timestamp;
use ticketd::core::token::ApiToken;
use ticketd::core::workspace::{NewApiKey, NewUser, NewWorkspace, WorkspaceCode};
use ticketd::store::Store;
use ticketd::store::Written;
use ticketd::store::sqlite::SqliteStore;

use crate::process::Server;

/// Concurrent clients driving replies.
const CLIENTS: usize = 16;
/// Tickets the replies spread over.
const TICKETS: usize = 8;

/// A provisioned database: a customer's tickets, and tokens for the
/// customer and for staff.
struct Fixture {
    tickets: Vec<TicketId>,
    customer_token: String,
    staff_token: String,
}

/// A workspace with a customer's eight tickets and a staff key.
async fn provision(store: &dyn Store) -> Fixture {
    let workspace = store
        .create_workspace(NewWorkspace {
            id: WorkspaceId::generate(),
            name: "Faults".into(),
            code: WorkspaceCode::derive_from("Faults"),
            created_at: Timestamp::now(),
        })
        .await
        .unwrap();
    let mut actors = Vec::new();
    for (role, name) in [(Role::Customer, "Jane Example"), (Role::Staff, "Sam Staff")] {
        let user = store
            .create_user(NewUser {
                id: UserId::generate(),
                workspace_id: workspace.id,
                role,
                name: name.into(),
                email: None,
                created_at: Timestamp::now(),
            })
            .await
            .unwrap();
        actors.push(Actor {
            workspace_id: workspace.id,
            user_id: user.id,
            role,
            name: name.into(),
            scope: TicketScope::ByRole,
        });
    }
    let mut tokens = Vec::new();
    for actor in &actors {
        let token = ApiToken::generate(KeyId::generate()).unwrap();
        store
            .create_api_key(NewApiKey {
                id: token.key_id,
                user_id: actor.user_id,
                scopes: Scopes::all(),
                secret_hash: token.secret_hash(),
                created_at: Timestamp::now(),
            })
            .await
            .unwrap();
        tokens.push(token.expose());
    }
    let mut tickets = Vec::new();
    for i in 0..TICKETS {
        let new = NewTicket {
            id: TicketId::generate(),
            subject: Subject::parse(format!("Fault ticket {i}")).unwrap(),
            priority: Priority::Normal,
            category: None,
            booking_id: None,
            on_behalf_of: None,
            first_message: NewMessage {
                id: MessageId::generate(),
                body: MessageBody::parse("opening".into()).unwrap(),
                body_format: BodyFormat::Plain,
                encrypted: false,
                sent_at: Timestamp::now(),
                attachments: Vec::new(),
                attach_limits: Default::default(),
                task: None,
            },
        };
        tickets.push(
            store
                .create_ticket(&actors[0], new, None)
                .await
                .map(Written::into_value)
                .unwrap()
                .id,
        );
    }
    let staff_token = tokens.pop().unwrap();
    Fixture {
        tickets,
        customer_token: tokens.pop().unwrap(),
        staff_token,
    }
}

/// What one reply attempt came to.
#[derive(Debug, Clone)]
struct Attempt {
    body: String,
    started: Instant,
    finished: Instant,
    /// The status, or `None` if the request failed at the transport.
    status: Option<u16>,
    /// The message id from a 201.
    message_id: Option<String>,
}

/// Runs `CLIENTS` reply loops against `base_url` until `stop` is raised;
/// each client uses a fresh connection per request.
async fn drive_replies(
    base_url: String,
    fixture: Arc<Fixture>,
    stop: Arc<AtomicBool>,
) -> Vec<Attempt> {
    let attempts = Arc::new(Mutex::new(Vec::new()));
    let mut clients = Vec::new();
    for client_index in 0..CLIENTS {
        let (base_url, fixture, stop, attempts) = (
            base_url.clone(),
            Arc::clone(&fixture),
            Arc::clone(&stop),
            Arc::clone(&attempts),
        );
        clients.push(tokio::spawn(async move {
            let client = reqwest::Client::builder()
                .pool_max_idle_per_host(0)
                .timeout(Duration::from_secs(20))
                .build()
                .unwrap();
            let mut n = 0usize;
            while !stop.load(Ordering::Acquire) {
                let ticket = fixture.tickets[(client_index + n) % TICKETS];
                let body = format!("client {client_index} reply {n}");
                n += 1;
                let started = Instant::now();
                let outcome = client
                    .post(format!(
                        "{base_url}/api/v2/support/tickets/{ticket}/messages"
                    ))
                    .bearer_auth(&fixture.staff_token)
                    .json(&json!({ "message": body }))
                    .send()
                    .await;
                let (status, message_id) = match outcome {
                    Ok(response) => {
                        let status = response.status().as_u16();
                        let value: Value = response.json().await.unwrap_or(Value::Null);
                        (Some(status), value["id"].as_str().map(str::to_owned))
                    }
                    Err(_) => (None, None),
                };
                let failed = status.is_none();
                attempts.lock().unwrap().push(Attempt {
                    body,
                    started,
                    finished: Instant::now(),
                    status,
                    message_id,
                });
                if failed {
                    // The server is gone; wait to be told to stop.
                    tokio::time::sleep(Duration::from_millis(5)).await;
                }
            }
        }));
    }
    for client in clients {
        client.await.unwrap();
    }
    Arc::try_unwrap(attempts).unwrap().into_inner().unwrap()
}

/// Every message body stored in the database, with how often it appears,
/// and whether each ticket's counter matches its rows.
fn stored_bodies(db: &Path) -> HashMap<String, usize> {
    let conn = rusqlite::Connection::open(db).unwrap();
    let integrity: String = conn
        .query_row("PRAGMA integrity_check", [], |row| row.get(0))
        .unwrap();
    assert_eq!(integrity, "ok", "the database must pass an integrity check");
    let mismatched: i64 = conn
        .query_row(
            "SELECT count(*) FROM ticket t
             WHERE t.message_count <> (SELECT count(*) FROM message m WHERE m.ticket_id = t.id)",
            [],
            |row| row.get(0),
        )
        .unwrap();
    assert_eq!(
        mismatched, 0,
        "every ticket's messageCount must equal its stored messages"
    );
    let mut statement = conn.prepare("SELECT body FROM message").unwrap();
    let mut bodies = HashMap::new();
    for body in statement
        .query_map([], |row| row.get::<_, String>(0))
        .unwrap()
    {
        *bodies.entry(body.unwrap()).or_insert(0) += 1;
    }
    bodies
}

/// Waits (bounded) until the database holds at least `count` messages.
async fn wait_for_stored_messages(db: &Path, count: i64) {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let stored = rusqlite::Connection::open(db)
            .and_then(|conn| {
                conn.query_row("SELECT count(*) FROM message", [], |row| {
                    row.get::<_, i64>(0)
                })
            })
            .unwrap_or(0);
        if stored >= count {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "the load never stored {count} messages"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// A server on a fresh database with reply load running against it.
struct LoadedServer {
    _dir: tempfile::TempDir,
    db: std::path::PathBuf,
    fixture: Arc<Fixture>,
    server: Server,
    stop: Arc<AtomicBool>,
    load: tokio::task::JoinHandle<Vec<Attempt>>,
}

impl LoadedServer {
    /// Starts the server and the load, and returns once the database holds
    /// at least `stored` messages, so that the load is mid-stream.
    async fn start(stored: i64) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("ticketd.db");
        let store = SqliteStore::open(db.clone()).await.unwrap();
        let fixture = Arc::new(provision(&store).await);
        drop(store);
        let server = Server::start(&db).await;
        let stop = Arc::new(AtomicBool::new(false));
        let load = tokio::spawn(drive_replies(
            server.base_url.clone(),
            Arc::clone(&fixture),
            Arc::clone(&stop),
        ));
        wait_for_stored_messages(&db, stored).await;
        Self {
            _dir: dir,
            db,
            fixture,
            server,
            stop,
            load,
        }
    }

    /// Stops the clients and returns every attempt they made.
    async fn finish_load(&mut self) -> Vec<Attempt> {
        self.stop.store(true, Ordering::Release);
        (&mut self.load).await.unwrap()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_under_load_loses_and_duplicates_no_acknowledged_reply() {
    // Kill once a few hundred replies have been acknowledged, mid-stream.
    let mut run = LoadedServer::start(300).await;
    run.server.kill();
    let attempts = run.finish_load().await;
    let (db, fixture) = (run.db.clone(), Arc::clone(&run.fixture));

    let acknowledged: Vec<&Attempt> = attempts.iter().filter(|a| a.status == Some(201)).collect();
    assert!(
        acknowledged.len() >= 200,
        "only {} replies were acknowledged",
        acknowledged.len()
    );
    assert!(
        attempts
            .iter()
            .all(|a| matches!(a.status, None | Some(201))),
        "only 201s or transport errors"
    );

    // Restart on the same database: every acknowledged reply is served again.
    let restarted = Server::start(&db).await;
    for attempt in &acknowledged {
        let id = attempt.message_id.as_deref().unwrap();
        let path = format!(
            "/api/v2/support/tickets/{}/messages/{id}",
            ticket_of(&fixture, attempt)
        );
        let (status, message) = restarted.get_json(&path, &fixture.staff_token).await;
        assert_eq!(status, 200, "{path}");
        assert_eq!(message["body"], attempt.body.as_str());
    }
    let mut restarted = restarted;
    restarted.terminate();

    let stored = stored_bodies(&db);
    for attempt in &acknowledged {
        assert_eq!(
            stored.get(&attempt.body),
            Some(&1),
            "{:?} must be stored exactly once",
            attempt.body
        );
    }
    let duplicates: Vec<_> = stored
        .iter()
        .filter(|(body, count)| **count > 1 && *body != "opening")
        .collect();
    assert!(duplicates.is_empty(), "duplicated messages: {duplicates:?}");
    let sent: HashSet<&str> = attempts.iter().map(|a| a.body.as_str()).collect();
    let unexpected: Vec<_> = stored
        .keys()
        .filter(|body| *body != "opening" && !sent.contains(body.as_str()))
        .collect();
    assert!(
        unexpected.is_empty(),
        "messages nobody sent: {unexpected:?}"
    );
}

/// The ticket an attempt replied to, from its body (`client C reply N`).
fn ticket_of(fixture: &Fixture, attempt: &Attempt) -> TicketId {
    let numbers: Vec<usize> = attempt
        .body
        .split(' ')
        .filter_map(|part| part.parse().ok())
        .collect();
    fixture.tickets[(numbers[0] + numbers[1]) % TICKETS]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_under_load_finishes_every_accepted_request() {
    let mut run = LoadedServer::start(200).await;
    let signalled = Instant::now();
    let status = run.server.terminate();
    let attempts = run.finish_load().await;
    let db = run.db.clone();
    assert!(
        status.success(),
        "ticketd must exit cleanly on SIGTERM, got {status}"
    );

    let stored = stored_bodies(&db);
    let mut drained = 0;
    for attempt in &attempts {
        match attempt.status {
            Some(201) => {
                assert_eq!(
                    stored.get(&attempt.body),
                    Some(&1),
                    "{:?} was acknowledged",
                    attempt.body
                );
                if attempt.started < signalled && attempt.finished > signalled {
                    drained += 1;
                }
            }
            Some(other) => panic!(
                "{:?} got {other}; a draining server answers or refuses",
                attempt.body
            ),
            // Refused or cut before it was accepted: it must have had no effect.
            None => assert_eq!(
                stored.get(&attempt.body),
                None,
                "{:?} failed yet was stored",
                attempt.body
            ),
        }
    }
    assert!(
        drained > 0,
        "no request was in flight at SIGTERM; the test proved nothing"
    );
}
