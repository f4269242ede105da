//! PostgreSQL: the database going away and coming back, and several nodes
//! sharing one database.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::{Value, json};
use ticketd::core::id::TicketId;
use ticketd::core::idempotency::{Fingerprint, FingerprintKey};
use ticketd::store::DatabaseUrl;
use tokio::task::JoinSet;

use crate::private_postgres::PrivateCluster;
use crate::process::Server;
use crate::provision;
use crate::test_postgres::{self, TestDatabase};
use crate::test_redis;

/// How long a request may take to fail while the database is down.
const FAIL_FAST: Duration = Duration::from_secs(3);

struct Reply {
    status: StatusCode,
    retry_after: Option<String>,
    content_type: Option<String>,
    body: Value,
    took: Duration,
}

async fn send(request: reqwest::RequestBuilder) -> Reply {
    let started = Instant::now();
    let response = request.send().await.unwrap();
    let header = |name: &str| {
        response
            .headers()
            .get(name)
            .and_then(|value| value.to_str().ok())
            .map(str::to_owned)
    };
    let (status, retry_after, content_type) = (
        response.status(),
        header("retry-after"),
        header("content-type"),
    );
    let body = response.json().await.unwrap_or(Value::Null);
    Reply {
        status,
        retry_after,
        content_type,
        body,
        took: started.elapsed(),
    }
}

fn assert_unavailable(what: &str, reply: &Reply) {
    assert_eq!(
        reply.status,
        StatusCode::SERVICE_UNAVAILABLE,
        "{what}: {:?}",
        reply.body
    );
    assert_eq!(
        reply.body["code"], "service_unavailable",
        "{what}: {:?}",
        reply.body
    );
    assert_eq!(
        reply.content_type.as_deref(),
        Some("application/problem+json"),
        "{what}"
    );
    assert!(reply.retry_after.is_some(), "{what}: no Retry-After");
    assert!(reply.took < FAIL_FAST, "{what} took {:?}", reply.took);
}

/// The [`provision`]ed fixture of the database at `url`.
async fn provision_at(url: &str) -> crate::Fixture {
    let store = ticketd::store::open(&DatabaseUrl::parse(url).unwrap())
        .await
        .unwrap();
    provision(store.as_ref()).await
}

/// Two `ticketd serve` nodes on the database at `url`, started one after
/// the other.
async fn two_nodes(url: &str, log_dir: &std::path::Path, args: &[&str]) -> [Server; 2] {
    [
        Server::start_on(url, log_dir, args).await,
        Server::start_on(url, log_dir, args).await,
    ]
}

/// Stops the node's database under it: every request fails fast with a 503
/// problem and `Retry-After`, `/readyz` says not ready, and once the
/// database is back the same process serves again, with nothing lost.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_database_outage_is_a_fast_503_and_the_node_recovers_by_itself() {
    let Some(cluster) = PrivateCluster::start() else {
        return;
    };
    let url = cluster.url();
    let fixture = provision_at(&url).await;
    let logs = tempfile::tempdir().unwrap();
    let server = Server::start_on(&url, logs.path(), &[]).await;
    let client = reqwest::Client::new();
    let ticket = fixture.tickets[0];
    let thread = format!(
        "{}/api/v2/support/tickets/{ticket}/messages",
        server.base_url
    );
    let reply = |text: &str| {
        client
            .post(&thread)
            .bearer_auth(&fixture.staff_token)
            .json(&json!({ "message": text }))
    };

    assert_eq!(
        send(reply("before the outage")).await.status,
        StatusCode::CREATED
    );

    cluster.stop();
    assert_unavailable("a reply", &send(reply("during the outage")).await);
    assert_unavailable(
        "a read",
        &send(client.get(&thread).bearer_auth(&fixture.staff_token)).await,
    );
    let not_ready = send(client.get(format!("{}/readyz", server.base_url))).await;
    assert_unavailable("/readyz", &not_ready);
    assert_eq!(
        not_ready.body["detail"], "The database cannot be reached.",
        "{:?}",
        not_ready.body
    );
    let live = send(client.get(format!("{}/healthz", server.base_url))).await;
    assert_eq!(
        live.status,
        StatusCode::OK,
        "the process itself stays alive"
    );

    cluster.resume();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let ready = send(client.get(format!("{}/readyz", server.base_url))).await;
        if ready.status == StatusCode::OK {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "not ready again: {:?}",
            ready.body
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(
        send(reply("after the outage")).await.status,
        StatusCode::CREATED
    );
    let thread_now = send(client.get(&thread).bearer_auth(&fixture.staff_token)).await;
    let bodies: Vec<&str> = thread_now.body["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|message| message["body"].as_str().unwrap())
        .collect();
    assert_eq!(
        bodies,
        ["opening", "before the outage", "after the outage"],
        "the refused reply left no trace; the others are all there"
    );
}

/// POSTs `body` (if any) with `token`; returns the status and JSON body.
async fn post(
    client: &reqwest::Client,
    url: String,
    token: &str,
    body: Option<Value>,
) -> (StatusCode, Value) {
    let request = client.post(url).bearer_auth(token);
    let request = match body {
        Some(body) => request.json(&body),
        None => request,
    };
    let response = request.send().await.unwrap();
    let status = response.status();
    (status, response.json().await.unwrap_or(Value::Null))
}

/// Two nodes on one database, driven at once: ticket numbers never
/// collide, every thread's count matches its messages, and a close racing
/// replies on the other node is the last word (no lost update, no reply
/// after it).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_nodes_on_one_database_keep_numbers_threads_and_lifecycle_consistent() {
    let Some(database) = TestDatabase::create().await else {
        return;
    };
    let fixture = provision_at(database.url()).await;
    let fixture = Arc::new(fixture);
    let logs = tempfile::tempdir().unwrap();
    let args = ["--rate-limit-per-minute", "100000000"];
    let nodes = two_nodes(database.url(), logs.path(), &args).await;
    let bases: Vec<String> = nodes.iter().map(|node| node.base_url.clone()).collect();
    let client = reqwest::Client::new();

    // Numbers: creations spread over both nodes, all at once.
    const CREATIONS: usize = 32;
    let mut creations = JoinSet::new();
    for i in 0..CREATIONS {
        let (client, base, fixture) = (client.clone(), bases[i % 2].clone(), Arc::clone(&fixture));
        creations.spawn(async move {
            let body = json!({ "subject": format!("Two nodes {i}"), "message": "hello" });
            post(
                &client,
                format!("{base}/api/v2/support/tickets"),
                &fixture.customer_token,
                Some(body),
            )
            .await
        });
    }
    let mut numbers = Vec::new();
    while let Some(outcome) = creations.join_next().await {
        let (status, ticket) = outcome.unwrap();
        assert_eq!(status, StatusCode::CREATED, "{ticket}");
        numbers.push(ticket["number"].as_i64().unwrap());
    }
    numbers.sort_unstable();
    let first = i64::try_from(fixture.tickets.len()).unwrap() + 1;
    let expected: Vec<i64> = (first..first + i64::try_from(CREATIONS).unwrap()).collect();
    assert_eq!(numbers, expected, "numbers are unique and leave no gaps");

    // Replies on both nodes racing a close on each ticket.
    const REPLIES: usize = 6;
    let mut writes = JoinSet::new();
    for (t, ticket) in fixture.tickets.iter().copied().enumerate() {
        for r in 0..=REPLIES {
            let (client, fixture) = (client.clone(), Arc::clone(&fixture));
            let base = bases[(t + r) % 2].clone();
            let url = format!("{base}/api/v2/support/tickets/{ticket}");
            writes.spawn(async move {
                let outcome = if r == REPLIES / 2 {
                    post(
                        &client,
                        format!("{url}/actions/close"),
                        &fixture.staff_token,
                        None,
                    )
                    .await
                } else {
                    // Customer and staff alternate, so replies move the status too.
                    let token = if r % 2 == 0 {
                        &fixture.customer_token
                    } else {
                        &fixture.staff_token
                    };
                    let body = json!({ "message": format!("reply {r}") });
                    post(&client, format!("{url}/messages"), token, Some(body)).await
                };
                (ticket, r == REPLIES / 2, outcome)
            });
        }
    }
    let mut accepted: HashMap<TicketId, Vec<Value>> = HashMap::new();
    while let Some(outcome) = writes.join_next().await {
        let (ticket, is_close, (status, body)) = outcome.unwrap();
        match (is_close, status) {
            (true, StatusCode::OK) => assert_eq!(body["status"], "closed"),
            (false, StatusCode::CREATED) => accepted.entry(ticket).or_default().push(body),
            (false, StatusCode::BAD_REQUEST) => assert_eq!(body["code"], "ticket_closed", "{body}"),
            _ => panic!("unexpected {status} for {ticket}: {body}"),
        }
    }

    for ticket in &fixture.tickets {
        let replies = accepted.remove(ticket).unwrap_or_default();
        for base in &bases {
            let url = format!("{base}/api/v2/support/tickets/{ticket}");
            let (status, current) = get(&client, &url, &fixture.staff_token).await;
            assert_eq!(status, StatusCode::OK);
            assert_eq!(
                current["status"], "closed",
                "the close is the last transition"
            );
            let count = usize::try_from(current["messageCount"].as_i64().unwrap()).unwrap();
            assert_eq!(
                count,
                1 + replies.len(),
                "messageCount counts every accepted reply"
            );
            let (_, thread) = get(
                &client,
                &format!("{url}/messages?limit=100"),
                &fixture.staff_token,
            )
            .await;
            let stored: Vec<&Value> = thread["data"].as_array().unwrap().iter().collect();
            assert_eq!(
                stored.len(),
                count,
                "messageCount matches the stored messages"
            );
            let closed_at = current["closedAt"].as_str().unwrap();
            for reply in &replies {
                assert!(
                    stored.iter().any(|message| message["id"] == reply["id"]),
                    "an acknowledged reply is stored"
                );
                assert!(
                    reply["sentAt"].as_str().unwrap() <= closed_at,
                    "no reply was accepted after the close"
                );
            }
        }
    }
}

async fn get(client: &reqwest::Client, url: &str, token: &str) -> (StatusCode, Value) {
    let response = client.get(url).bearer_auth(token).send().await.unwrap();
    let status = response.status();
    (status, response.json().await.unwrap_or(Value::Null))
}

/// Two nodes sharing a Redis limiter and one database: one key's requests,
/// spread over both nodes at once, are allowed no more than the burst plus
/// what refills meanwhile; every refusal is a 429 with `Retry-After`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_nodes_enforce_one_rate_limit_per_key() {
    let test = "two_nodes_enforce_one_rate_limit_per_key";
    let (Some(mut redis), Some(database)) = (
        test_redis::connect_or_skip(test).await,
        TestDatabase::create().await,
    ) else {
        return;
    };
    let fixture = provision_at(database.url()).await;
    let prefix = test_redis::fresh_prefix();
    let url = test_redis::url();
    // 60 a minute (one a second) with a burst of 10.
    let args = [
        "--rate-limit-url",
        &url,
        "--rate-limit-key-prefix",
        &prefix,
        "--rate-limit-per-minute",
        "60",
        "--rate-limit-burst",
        "10",
    ];
    let logs = tempfile::tempdir().unwrap();
    let nodes = two_nodes(database.url(), logs.path(), &args).await;
    let client = reqwest::Client::new();

    const REQUESTS: usize = 40;
    let started = Instant::now();
    let mut requests = JoinSet::new();
    for i in 0..REQUESTS {
        let request = client
            .get(format!("{}/api/v2/support/tickets", nodes[i % 2].base_url))
            .bearer_auth(&fixture.staff_token);
        requests.spawn(send(request));
    }
    let mut allowed = 0;
    while let Some(reply) = requests.join_next().await {
        let reply = reply.unwrap();
        match reply.status {
            StatusCode::OK => allowed += 1,
            StatusCode::TOO_MANY_REQUESTS => {
                assert_eq!(
                    reply.body["code"], "rate_limit_exceeded",
                    "{:?}",
                    reply.body
                );
                assert!(reply.retry_after.is_some(), "a 429 without Retry-After");
            }
            other => panic!("unexpected {other}: {:?}", reply.body),
        }
    }
    let elapsed = started.elapsed().as_secs_f64();
    // The burst, plus one per second that passed while the requests ran.
    let most = 10 + elapsed.ceil() as usize;
    assert!(
        (10..=most).contains(&allowed),
        "{allowed} of {REQUESTS} allowed in {elapsed:.2} s across two nodes (at most {most})"
    );
    test_redis::delete_keys(&mut redis, &prefix).await;
}

/// Nodes started together on an empty database both come up, and each
/// migration is applied exactly once (they take turns on an advisory lock).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nodes_starting_together_migrate_once() {
    let Some(database) = TestDatabase::create().await else {
        return;
    };
    let logs = tempfile::tempdir().unwrap();
    let (_first, _second) = tokio::join!(
        Server::start_on(database.url(), logs.path(), &[]),
        Server::start_on(database.url(), logs.path(), &[]),
    );
    let client = test_postgres::connect(database.url()).await.unwrap();
    let applied: Vec<String> = client
        .query("SELECT name FROM schema_migration ORDER BY name", &[])
        .await
        .unwrap()
        .iter()
        .map(|row| row.get(0))
        .collect();
    let expected: Vec<&str> = ticketd::store::postgres::MIGRATIONS
        .iter()
        .map(|(name, _)| *name)
        .collect();
    assert_eq!(applied, expected);
}

/// Two nodes on one database take the same keyed requests at once: for
/// each key exactly one reply is written, and every answer, from either
/// node, is that reply (an original or a replay) or a 409 telling the
/// client to retry. Both fingerprint requests under the server secret of
/// the key file they share.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_nodes_write_each_keyed_request_once() {
    let Some(database) = TestDatabase::create().await else {
        return;
    };
    let fixture = provision_at(database.url()).await;
    let fixture = Arc::new(fixture);
    let logs = tempfile::tempdir().unwrap();
    // All 144 requests go out at once, 72 to each node, from one address
    // with one API key: past the default caps per address (64 connections)
    // and per key (64 requests in progress), which this test is not about.
    let args = [
        "--rate-limit-per-minute",
        "100000000",
        "--max-connections-per-address",
        "0",
        "--max-concurrent-requests-per-key",
        "1000",
    ];
    let nodes = two_nodes(database.url(), logs.path(), &args).await;
    let bases: Vec<String> = nodes.iter().map(|node| node.base_url.clone()).collect();
    let client = reqwest::Client::new();

    const KEYS: usize = 24;
    const COPIES: usize = 6;
    let keyed = |key: usize, base: &str| {
        let ticket = fixture.tickets[key % fixture.tickets.len()];
        client
            .post(format!("{base}/api/v2/support/tickets/{ticket}/messages"))
            .bearer_auth(&fixture.customer_token)
            .header("idempotency-key", format!("two-nodes-{key}"))
            .json(&json!({ "message": format!("keyed reply {key}") }))
    };
    let mut requests = JoinSet::new();
    for key in 0..KEYS {
        for copy in 0..COPIES {
            let request = keyed(key, &bases[copy % 2]);
            requests.spawn(async move {
                let response = request.send().await.unwrap();
                let status = response.status();
                let replayed = response.headers().contains_key("idempotent-replayed");
                let retry_after = response.headers().contains_key("retry-after");
                (
                    key,
                    status,
                    replayed,
                    retry_after,
                    response.text().await.unwrap(),
                )
            });
        }
    }
    let mut originals: HashMap<usize, String> = HashMap::new();
    let mut replays: Vec<(usize, String)> = Vec::new();
    while let Some(outcome) = requests.join_next().await {
        let (key, status, replayed, retry_after, text) = outcome.unwrap();
        match (status, replayed) {
            (StatusCode::CREATED, false) => {
                assert!(
                    originals.insert(key, text).is_none(),
                    "key {key} was written twice"
                );
            }
            (StatusCode::CREATED, true) => replays.push((key, text)),
            (StatusCode::CONFLICT, _) => {
                assert!(retry_after, "a 409 without Retry-After");
                assert!(text.contains("idempotency_request_in_progress"), "{text}");
            }
            _ => panic!("key {key}: unexpected {status}: {text}"),
        }
    }
    assert_eq!(originals.len(), KEYS, "every key was written once");
    for (key, text) in &replays {
        assert_eq!(
            &originals[key], text,
            "a replay is the original, byte for byte"
        );
    }
    // Afterwards both nodes replay every key's original, and refuse another
    // request under it: they fingerprint alike, under the server secret of
    // the key file they share.
    for key in 0..KEYS {
        for base in &bases {
            let response = keyed(key, base).send().await.unwrap();
            assert_eq!(response.status(), StatusCode::CREATED);
            assert_eq!(response.headers()["idempotent-replayed"], "true");
            assert_eq!(response.text().await.unwrap(), originals[&key]);
            let ticket = fixture.tickets[key % fixture.tickets.len()];
            let other = client
                .post(format!("{base}/api/v2/support/tickets/{ticket}/messages"))
                .bearer_auth(&fixture.customer_token)
                .header("idempotency-key", format!("two-nodes-{key}"))
                .json(&json!({ "message": "another reply" }))
                .send()
                .await
                .unwrap();
            assert_eq!(other.status(), StatusCode::UNPROCESSABLE_ENTITY);
            assert!(
                other
                    .text()
                    .await
                    .unwrap()
                    .contains("idempotency_key_reused")
            );
        }
    }
    let key_file = ticketd::encryption::key_file::read(&logs.path().join("encryption.key"))
        .unwrap()
        .unwrap();
    let fingerprint_key = FingerprintKey::derive(&key_file.secret.unwrap());
    let client = test_postgres::connect(database.url()).await.unwrap();
    for key in 0..KEYS {
        let ticket = fixture.tickets[key % fixture.tickets.len()];
        let body = serde_json::to_vec(&json!({ "message": format!("keyed reply {key}") })).unwrap();
        let expected = Fingerprint::of_request(
            &fingerprint_key,
            "POST",
            &format!("/api/v2/support/tickets/{ticket}/messages"),
            &body,
        );
        let stored: Vec<u8> = client
            .query_one(
                "SELECT fingerprint FROM idempotency_record WHERE key = $1",
                &[&format!("two-nodes-{key}")],
            )
            .await
            .unwrap()
            .get(0);
        assert_eq!(stored, expected.as_bytes(), "key {key}");
    }
    let duplicates: i64 = client
        .query_one(
            "SELECT count(*) - count(DISTINCT body) FROM message WHERE body LIKE 'keyed reply %'",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(duplicates, 0);
    let written: i64 = client
        .query_one(
            "SELECT count(*) FROM message WHERE body LIKE 'keyed reply %'",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(written, i64::try_from(KEYS).unwrap());
}
