//! SIGKILL in the middle of a burst of keyed replies: after a restart,
//! retrying every request with its key yields each reply exactly once,
//! whether the first attempt was acknowledged, cut off mid-write, or left
//! a claim behind. The restarted server releases the claims its killed
//! process left, so every retry is answered at once; with two PostgreSQL
//! nodes whose killed one never comes back, the retries go to the other,
//! and one that meets a claim of the dead node succeeds when its
//! `Retry-After` has passed.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use ticketd::core::id::TicketId;
use ticketd::store::DatabaseUrl;

use crate::process::Server;
use crate::test_postgres::{self, TestDatabase};
use crate::{CLIENTS, Fixture, TICKETS, provision};

/// Server flags: no rate limit, a 5-second request timeout, and the node
/// id the restarted server must have again (the default, host and port,
/// would change with the port).
const ARGS: [&str; 6] = [
    "--rate-limit-per-minute",
    "100000000",
    "--request-timeout-secs",
    "5",
    "--node-id",
    "fault-node",
];

/// One keyed reply: its key, ticket and body, and what came of it.
#[derive(Debug, Clone)]
struct Keyed {
    key: String,
    ticket: TicketId,
    body: String,
    /// The status, or `None` if the request failed at the transport.
    status: Option<u16>,
    /// Its `Retry-After`, in seconds.
    retry_after: Option<u64>,
    /// The response body as sent.
    text: String,
}

impl Keyed {
    fn new(client_index: usize, n: usize, fixture: &Fixture) -> Self {
        Self {
            key: format!("burst-{client_index}-{n}"),
            ticket: fixture.tickets[(client_index + n) % TICKETS],
            body: format!("keyed client {client_index} reply {n}"),
            status: None,
            retry_after: None,
            text: String::new(),
        }
    }

    /// Sends the reply with its key once.
    async fn send(&self, client: &reqwest::Client, base_url: &str, token: &str) -> Keyed {
        let outcome = client
            .post(format!(
                "{base_url}/api/v2/support/tickets/{}/messages",
                self.ticket
            ))
            .bearer_auth(token)
            .header("idempotency-key", &self.key)
            .json(&json!({ "message": self.body }))
            .send()
            .await;
        let mut sent = self.clone();
        if let Ok(response) = outcome {
            let status = response.status().as_u16();
            let replayed = response.headers().contains_key("idempotent-replayed");
            sent.retry_after = response
                .headers()
                .get("retry-after")
                .and_then(|value| value.to_str().ok()?.parse().ok());
            if let Ok(text) = response.text().await {
                sent.status = Some(status);
                // Replays are told apart by the header, not the body.
                sent.text = if replayed {
                    format!("replay:{text}")
                } else {
                    text
                };
            }
        }
        sent
    }

    fn replayed(&self) -> bool {
        self.text.starts_with("replay:")
    }

    fn message(&self) -> Value {
        serde_json::from_str(self.text.trim_start_matches("replay:")).unwrap_or(Value::Null)
    }
}

/// Runs `CLIENTS` loops of keyed replies, each key used once, until `stop`.
async fn burst(base_url: String, fixture: Arc<Fixture>, stop: Arc<AtomicBool>) -> Vec<Keyed> {
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
                .timeout(Duration::from_secs(20))
                .build()
                .unwrap();
            let mut n = 0;
            while !stop.load(Ordering::Acquire) {
                let attempt = Keyed::new(client_index, n, &fixture)
                    .send(&client, &base_url, &fixture.customer_token)
                    .await;
                n += 1;
                let failed = attempt.status.is_none();
                attempts.lock().unwrap().push(attempt);
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

/// Retries `attempt` once; if that meets a claim still held (409), once
/// more when its `Retry-After` has passed, which must succeed. Returns the
/// answer and whether it took the second try.
async fn retry_at_most_twice(attempt: &Keyed, base_url: &str, token: &str) -> (Keyed, bool) {
    let client = reqwest::Client::new();
    let first = attempt.send(&client, base_url, token).await;
    match first.status {
        Some(201) => (first, false),
        Some(409) => {
            let wait = first.retry_after.expect("a 409 says when to retry");
            assert!((1..=5).contains(&wait), "Retry-After: {wait}");
            tokio::time::sleep(Duration::from_secs(wait)).await;
            let second = attempt.send(&client, base_url, token).await;
            assert_eq!(
                second.status,
                Some(201),
                "{} on its second try: {}",
                attempt.key,
                second.text
            );
            (second, true)
        }
        other => panic!("{} retried: {other:?} {}", attempt.key, first.text),
    }
}

/// Retries every attempt at `base_url`, those that meet a claim still held
/// all at once after their `Retry-After`; each retry's answer, in order,
/// and how many took a second try.
async fn retry_all(attempts: &[Keyed], base_url: &str, token: &str) -> (Vec<Keyed>, usize) {
    // As many in flight at once as the clients that sent them.
    let turns = Arc::new(tokio::sync::Semaphore::new(CLIENTS));
    let mut retries = Vec::new();
    for attempt in attempts {
        let (attempt, base_url, token) = (attempt.clone(), base_url.to_owned(), token.to_owned());
        let turns = Arc::clone(&turns);
        retries.push(tokio::spawn(async move {
            let _turn = turns.acquire_owned().await.unwrap();
            retry_at_most_twice(&attempt, &base_url, &token).await
        }));
    }
    let mut answers = Vec::new();
    let mut second_tries = 0;
    for retry in retries {
        let (answer, second) = retry.await.unwrap();
        answers.push(answer);
        second_tries += usize::from(second);
    }
    (answers, second_tries)
}

/// How often each reply body is stored, from the server's own API (so the
/// same check serves both backends); every thread read whole.
async fn stored_bodies(server: &Server, fixture: &Fixture) -> HashMap<String, usize> {
    let mut bodies = HashMap::new();
    for ticket in &fixture.tickets {
        let mut cursor: Option<String> = None;
        loop {
            let mut path = format!("/api/v2/support/tickets/{ticket}/messages?limit=100");
            if let Some(cursor) = &cursor {
                path.push_str(&format!("&cursor={cursor}"));
            }
            let (status, page) = server.get_json(&path, &fixture.staff_token).await;
            assert_eq!(status, 200, "{page}");
            for message in page["data"].as_array().unwrap() {
                *bodies
                    .entry(message["body"].as_str().unwrap().to_owned())
                    .or_insert(0) += 1;
            }
            match page["nextCursor"].as_str() {
                Some(next) => cursor = Some(next.to_owned()),
                None => break,
            }
        }
    }
    bodies
}

/// Where the killed server's requests are retried.
enum Retried {
    /// On the same server, restarted with its node id.
    OnTheRestartedServer,
    /// On a second node of the same PostgreSQL database, started (with a
    /// node id of its own) before the first was killed; the killed one
    /// never comes back.
    OnAnotherNode,
}

/// Starts a server on `database`, bursts keyed replies at it, kills it
/// once `stored` says enough are in, and retries every request where
/// `retried` says.
async fn kill_and_retry(
    database: &str,
    fixture: Fixture,
    stored: impl AsyncFn() -> i64,
    logs: &std::path::Path,
    retried: Retried,
) {
    let fixture = Arc::new(fixture);
    let mut server = Server::start_on(database, logs, &ARGS).await;
    let other = match retried {
        Retried::OnTheRestartedServer => None,
        Retried::OnAnotherNode => {
            let mut args = ARGS;
            args[5] = "fault-node-b";
            Some(Server::start_on(database, logs, &args).await)
        }
    };
    let stop = Arc::new(AtomicBool::new(false));
    let load = tokio::spawn(burst(
        server.base_url.clone(),
        Arc::clone(&fixture),
        Arc::clone(&stop),
    ));
    let deadline = Instant::now() + Duration::from_secs(60);
    while stored().await < 300 {
        assert!(
            Instant::now() < deadline,
            "the burst never stored 300 replies"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    server.kill();
    let killed_at = Instant::now();
    stop.store(true, Ordering::Release);
    let attempts = load.await.unwrap();
    assert!(
        attempts
            .iter()
            .all(|a| matches!(a.status, None | Some(201))),
        "only 201s or transport errors before the kill"
    );
    let acknowledged = attempts.iter().filter(|a| a.status == Some(201)).count();
    let cut_off = attempts.len() - acknowledged;
    assert!(acknowledged >= 200, "only {acknowledged} acknowledged");
    assert!(
        cut_off > 0,
        "no request was cut off by the kill; the test proved nothing"
    );

    let retrying = match other {
        Some(other) => other,
        None => Server::start_on(database, logs, &ARGS).await,
    };
    // The requests that got no answer are retried first, as their clients
    // would (right after the kill, while a dead node's claims still hold),
    // then the acknowledged ones, whose retries must replay.
    let mut attempts = attempts;
    attempts.sort_by_key(|attempt| attempt.status.is_some());
    let (retries, second_tries) =
        retry_all(&attempts, &retrying.base_url, &fixture.customer_token).await;
    let (mut replayed_unacknowledged, mut written_on_retry) = (0, 0);
    for (attempt, retry) in attempts.iter().zip(&retries) {
        assert_eq!(
            retry.message()["body"],
            attempt.body.as_str(),
            "{}",
            attempt.key
        );
        if attempt.status == Some(201) {
            // Acknowledged: the retry is that very answer.
            assert!(retry.replayed(), "{} was written again", attempt.key);
            assert_eq!(retry.message(), attempt.message(), "{}", attempt.key);
        } else if retry.replayed() {
            replayed_unacknowledged += 1;
        } else {
            written_on_retry += 1;
        }
        // And from now on, every retry replays that answer.
        let (again, second) =
            retry_at_most_twice(attempt, &retrying.base_url, &fixture.customer_token).await;
        assert!(!second && again.replayed(), "{}", attempt.key);
        assert_eq!(again.message(), retry.message(), "{}", attempt.key);
    }
    eprintln!(
        "{} keyed replies: {acknowledged} acknowledged before the kill, {cut_off} cut off \
         ({replayed_unacknowledged} had been committed, {written_on_retry} written by their \
         retry); {second_tries} retries took a second try; all done {:.1} s after the kill",
        attempts.len(),
        killed_at.elapsed().as_secs_f64()
    );
    if let Retried::OnTheRestartedServer = retried {
        assert_eq!(
            second_tries, 0,
            "the restarted server released the killed process's claims: every retry is answered at once"
        );
    }

    let stored = stored_bodies(&retrying, &fixture).await;
    for attempt in &attempts {
        assert_eq!(
            stored.get(&attempt.body),
            Some(&1),
            "{:?} must be stored exactly once",
            attempt.body
        );
    }
    let total: usize = stored.values().sum();
    assert_eq!(
        total,
        TICKETS + attempts.len(),
        "nothing but the openings and one reply per key"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_during_a_keyed_burst_then_retries_store_each_reply_once_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("ticketd.db");
    let database = format!("sqlite://{}", db.display());
    let fixture = {
        let store = ticketd::store::open(&DatabaseUrl::parse(&database).unwrap())
            .await
            .unwrap();
        provision(store.as_ref()).await
    };
    let count = async || {
        rusqlite::Connection::open(&db)
            .and_then(|conn| conn.query_row("SELECT count(*) FROM message", [], |row| row.get(0)))
            .unwrap_or(0)
    };
    kill_and_retry(
        &database,
        fixture,
        count,
        dir.path(),
        Retried::OnTheRestartedServer,
    )
    .await;
    let conn = rusqlite::Connection::open(&db).unwrap();
    let integrity: String = conn
        .query_row("PRAGMA integrity_check", [], |row| row.get(0))
        .unwrap();
    assert_eq!(integrity, "ok");
}

/// [`kill_and_retry`] on a fresh PostgreSQL database.
async fn kill_and_retry_on_postgres(retried: Retried) {
    let Some(database) = TestDatabase::create().await else {
        return;
    };
    let fixture = {
        let store = ticketd::store::open(&DatabaseUrl::parse(database.url()).unwrap())
            .await
            .unwrap();
        provision(store.as_ref()).await
    };
    let client = test_postgres::connect(database.url()).await.unwrap();
    let count = async || {
        client
            .query_one("SELECT count(*) FROM message", &[])
            .await
            .map(|row| row.get::<_, i64>(0))
            .unwrap_or(0)
    };
    let logs = tempfile::tempdir().unwrap();
    kill_and_retry(database.url(), fixture, count, logs.path(), retried).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_during_a_keyed_burst_then_retries_store_each_reply_once_postgres() {
    kill_and_retry_on_postgres(Retried::OnTheRestartedServer).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_of_one_of_two_nodes_then_retries_on_the_other_store_each_reply_once() {
    kill_and_retry_on_postgres(Retried::OnAnotherNode).await;
}
