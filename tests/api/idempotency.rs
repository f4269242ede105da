//! `Idempotency-Key` on every POST: a retry of the same request replays the
//! original response instead of writing again; another request under the
//! same key is refused; a duplicate in flight is told to retry; keys belong
//! to their API key and expire.

use std::sync::Arc;
use std::time::{Duration, Instant};

use reqwest::StatusCode;
use reqwest::header::HeaderValue;
use serde_json::{Value, json};
use ticketd::core::access::Scopes;
use ticketd::core::idempotency::{ClaimToken, Fingerprint, IdempotencyKey};
use ticketd::core::time::Timestamp;
use ticketd::store::idempotency::{ClaimHolder, ClaimOutcome, ClaimRequest};
use tokio::task::JoinSet;

use super::BACKEND;
use crate::helpers::{TestApp, TestOptions, TestResponse, TestUser, provision_key};

const TICKETS: &str = "/api/v2/support/tickets";
const REPLAYED: &str = "idempotent-replayed";

fn messages_path(ticket: &str) -> String {
    format!("{TICKETS}/{ticket}/messages")
}

/// POSTs `body` (JSON, or nothing) to `path` as `token`, with each of
/// `keys` as an `Idempotency-Key` header line.
async fn post_keyed(
    app: &TestApp,
    path: &str,
    token: &str,
    keys: &[HeaderValue],
    body: Option<&Value>,
) -> TestResponse {
    let mut request = app.client.post(app.url(path)).bearer_auth(token);
    for key in keys {
        request = request.header("idempotency-key", key.clone());
    }
    if let Some(body) = body {
        request = request.json(body);
    }
    app.send(request).await
}

/// A reply to `ticket` as `user` with the key `key`.
async fn keyed_reply(
    app: &TestApp,
    ticket: &str,
    user: &TestUser,
    key: &str,
    message: &str,
) -> TestResponse {
    post_keyed(
        app,
        &messages_path(ticket),
        &user.token,
        &[HeaderValue::from_str(key).unwrap()],
        Some(&json!({ "message": message })),
    )
    .await
}

/// A lifecycle action on `ticket` as `user` with the key `key`.
async fn keyed_action(
    app: &TestApp,
    ticket: &str,
    action: &str,
    user: &TestUser,
    key: &str,
) -> TestResponse {
    post_keyed(
        app,
        &format!("{TICKETS}/{ticket}/actions/{action}"),
        &user.token,
        &[HeaderValue::from_str(key).unwrap()],
        None,
    )
    .await
}

/// Opens a ticket as the main customer; returns its id.
async fn open(app: &TestApp) -> String {
    let ticket = app.open_ticket(&app.customer, "Still broken").await;
    ticket["id"].as_str().unwrap().to_owned()
}

/// The bodies of a ticket's messages, oldest first.
async fn thread(app: &TestApp, ticket: &str) -> Vec<String> {
    let response = app
        .get(&format!("{}?limit=100", messages_path(ticket)), &app.staff)
        .await;
    assert_eq!(response.status, StatusCode::OK, "{}", response.text);
    response.body["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|message| message["body"].as_str().unwrap().to_owned())
        .collect()
}

#[track_caller]
fn assert_original(response: &TestResponse, status: StatusCode) {
    assert_eq!(response.status, status, "{}", response.text);
    assert_eq!(response.header(REPLAYED), "", "not a replay");
}

#[track_caller]
fn assert_replay_of(response: &TestResponse, original: &TestResponse) {
    assert_eq!(response.status, original.status, "{}", response.text);
    assert_eq!(response.header(REPLAYED), "true");
    assert_eq!(
        response.text, original.text,
        "the original body, byte for byte"
    );
    assert_eq!(response.header("location"), original.header("location"));
    assert_eq!(response.header("content-type"), "application/json");
    // The replay is a response of its own: its own request id, and the
    // rate-limit headers of now.
    assert_ne!(
        response.header("x-request-id"),
        original.header("x-request-id")
    );
    assert!(!response.header("x-ratelimit-remaining").is_empty());
}

#[tokio::test]
async fn a_retried_reply_replays_the_original_response() {
    let Some(app) = TestApp::spawn(BACKEND).await else {
        return;
    };
    let ticket = open(&app).await;
    // Seed 003's header, bare.
    let text = "Still seeing the issue after a retry - here is a screenshot.";
    let first = keyed_reply(&app, &ticket, &app.customer, "9f1c2b3a-reply-1", text).await;
    assert_original(&first, StatusCode::CREATED);
    assert_eq!(first.body["body"], text);
    assert!(
        first
            .header("location")
            .ends_with(first.body["id"].as_str().unwrap())
    );

    let retry = keyed_reply(&app, &ticket, &app.customer, "9f1c2b3a-reply-1", text).await;
    assert_replay_of(&retry, &first);
    // The draft's form, a quoted string, names the same key; a body that
    // differs only in spelling (whitespace, member order) is the same request.
    let quoted = post_keyed(
        &app,
        &messages_path(&ticket),
        &app.customer.token,
        &[HeaderValue::from_static("\"9f1c2b3a-reply-1\"")],
        Some(&json!({ "encrypted": null, "message": text })),
    )
    .await;
    assert_eq!(
        quoted.status,
        StatusCode::UNPROCESSABLE_ENTITY,
        "`encrypted: null` is another body"
    );
    let respelled = app
        .send(
            app.client
                .post(app.url(&messages_path(&ticket)))
                .bearer_auth(&app.customer.token)
                .header("idempotency-key", "\"9f1c2b3a-reply-1\"")
                .header("content-type", "application/json")
                .body(format!("{{\n  \"message\" :  \"{text}\"\n}}")),
        )
        .await;
    assert_replay_of(&respelled, &first);

    assert_eq!(thread(&app, &ticket).await, ["First message", text]);
    app.stop().await;
}

#[tokio::test]
async fn fifty_concurrent_identical_requests_write_one_message() {
    let Some(app) = TestApp::spawn(BACKEND).await else {
        return;
    };
    let app = Arc::new(app);
    let ticket = open(&app).await;
    let mut requests = JoinSet::new();
    for _ in 0..50 {
        let (app, ticket) = (Arc::clone(&app), ticket.clone());
        requests.spawn(async move {
            keyed_reply(&app, &ticket, &app.customer, "burst-1", "Only once, please").await
        });
    }
    let mut originals = Vec::new();
    let mut replays = Vec::new();
    let mut in_progress = 0;
    while let Some(response) = requests.join_next().await {
        let response = response.unwrap();
        match (response.status, response.header(REPLAYED)) {
            (StatusCode::CREATED, "") => originals.push(response),
            (StatusCode::CREATED, "true") => replays.push(response),
            (StatusCode::CONFLICT, _) => {
                response.assert_problem(409, "idempotency_request_in_progress");
                // The time left on the first request's claim: at most its
                // lease, the 5 seconds a claim holds unless renewed.
                let seconds: u64 = response.header("retry-after").parse().unwrap();
                assert!((1..=5).contains(&seconds), "{seconds}");
                in_progress += 1;
            }
            (status, _) => panic!("unexpected {status}: {}", response.text),
        }
    }
    assert_eq!(originals.len(), 1, "exactly one request wrote");
    for replay in &replays {
        assert_replay_of(replay, &originals[0]);
    }
    assert_eq!(1 + replays.len() + in_progress, 50);
    assert_eq!(
        thread(&app, &ticket).await,
        ["First message", "Only once, please"]
    );
    // Once the first has finished, every retry gets its response.
    let late = keyed_reply(&app, &ticket, &app.customer, "burst-1", "Only once, please").await;
    assert_replay_of(&late, &originals[0]);
}

#[tokio::test]
async fn a_key_used_for_another_request_is_refused() {
    let Some(app) = TestApp::spawn(BACKEND).await else {
        return;
    };
    let ticket = open(&app).await;
    let other_ticket = open(&app).await;
    let first = keyed_reply(&app, &ticket, &app.customer, "key-1", "The first").await;
    assert_original(&first, StatusCode::CREATED);

    // Another body, another ticket, another endpoint: each is another
    // request, refused with nothing written.
    let other_body = keyed_reply(&app, &ticket, &app.customer, "key-1", "The second").await;
    let detail = other_body.assert_problem(422, "idempotency_key_reused")["detail"].clone();
    assert!(
        detail.as_str().unwrap().contains("different request"),
        "{detail}"
    );
    let other_path = keyed_reply(&app, &other_ticket, &app.customer, "key-1", "The first").await;
    other_path.assert_problem(422, "idempotency_key_reused");
    let other_endpoint = post_keyed(
        &app,
        &format!("{TICKETS}/{ticket}/actions/close"),
        &app.customer.token,
        &[HeaderValue::from_static("key-1")],
        None,
    )
    .await;
    other_endpoint.assert_problem(422, "idempotency_key_reused");

    assert_eq!(thread(&app, &ticket).await, ["First message", "The first"]);
    assert_eq!(thread(&app, &other_ticket).await, ["First message"]);
    let current = app.get(&format!("{TICKETS}/{ticket}"), &app.customer).await;
    assert_eq!(current.body["status"], "open");
    app.stop().await;
}

#[tokio::test]
async fn malformed_keys_are_refused_before_anything_is_written() {
    let Some(app) = TestApp::spawn(BACKEND).await else {
        return;
    };
    let ticket = open(&app).await;
    let cases: Vec<(&str, Vec<HeaderValue>)> = vec![
        ("empty", vec![HeaderValue::from_static("")]),
        ("empty quoted", vec![HeaderValue::from_static("\"\"")]),
        (
            "too long",
            vec![HeaderValue::from_str(&"k".repeat(256)).unwrap()],
        ),
        (
            "too long quoted",
            vec![HeaderValue::from_str(&format!("\"{}\"", "k".repeat(256))).unwrap()],
        ),
        ("a space", vec![HeaderValue::from_static("two words")]),
        ("a tab", vec![HeaderValue::from_static("a\tb")]),
        (
            "beyond ASCII",
            vec![HeaderValue::from_bytes("clé".as_bytes()).unwrap()],
        ),
        ("unterminated", vec![HeaderValue::from_static("\"abc")]),
        ("a list", vec![HeaderValue::from_static("\"a\", \"b\"")]),
        (
            "two header lines",
            vec![HeaderValue::from_static("a"), HeaderValue::from_static("b")],
        ),
    ];
    for (case, keys) in cases {
        let response = post_keyed(
            &app,
            &messages_path(&ticket),
            &app.customer.token,
            &keys,
            Some(&json!({ "message": case })),
        )
        .await;
        response.assert_problem(400, "idempotency_key_invalid");
        assert!(
            response.body["detail"]
                .as_str()
                .unwrap()
                .contains("Idempotency-Key"),
            "{case}: {}",
            response.text
        );
    }
    assert_eq!(thread(&app, &ticket).await, ["First message"]);

    // The longest key, and every visible ASCII character, are fine.
    let longest = keyed_reply(&app, &ticket, &app.customer, &"k".repeat(255), "longest").await;
    assert_original(&longest, StatusCode::CREATED);
    let visible: String = ('!'..='~').collect();
    let symbols = keyed_reply(&app, &ticket, &app.customer, &visible, "symbols").await;
    assert_original(&symbols, StatusCode::CREATED);
    let again = keyed_reply(&app, &ticket, &app.customer, &visible, "symbols").await;
    assert_replay_of(&again, &symbols);
    app.stop().await;
}

#[tokio::test]
async fn keys_belong_to_the_api_key_that_sent_them() {
    let Some(app) = TestApp::spawn(BACKEND).await else {
        return;
    };
    let ticket = open(&app).await;
    // A second key of the same customer.
    let (key_id, token) = provision_key(&app.store, app.customer.id, Scopes::all()).await;
    let second = TestUser {
        key_id,
        token,
        ..app.customer.clone()
    };
    let first = keyed_reply(&app, &ticket, &app.customer, "shared", "Same words").await;
    assert_original(&first, StatusCode::CREATED);
    let other_key = keyed_reply(&app, &ticket, &second, "shared", "Same words").await;
    assert_original(&other_key, StatusCode::CREATED);
    assert_ne!(other_key.body["id"], first.body["id"]);
    let staff = keyed_reply(&app, &ticket, &app.staff, "shared", "Same words").await;
    assert_original(&staff, StatusCode::CREATED);
    // Each key replays its own.
    let retry = keyed_reply(&app, &ticket, &second, "shared", "Same words").await;
    assert_replay_of(&retry, &other_key);
    assert_eq!(
        thread(&app, &ticket).await,
        ["First message", "Same words", "Same words", "Same words"]
    );
    app.stop().await;
}

#[tokio::test]
async fn every_write_endpoint_replays_instead_of_acting_again() {
    let Some(app) = TestApp::spawn(BACKEND).await else {
        return;
    };
    // Ticket creation.
    let body = json!({ "subject": "Keyed", "message": "Opened once" });
    let open_key = [HeaderValue::from_static("open-1")];
    let created = post_keyed(&app, TICKETS, &app.customer.token, &open_key, Some(&body)).await;
    assert_original(&created, StatusCode::CREATED);
    let again = post_keyed(&app, TICKETS, &app.customer.token, &open_key, Some(&body)).await;
    assert_replay_of(&again, &created);
    let listed = app.get(TICKETS, &app.customer).await;
    assert_eq!(listed.body["data"].as_array().unwrap().len(), 1);
    let ticket = created.body["id"].as_str().unwrap().to_owned();

    // Every action, each under its own key: a replay answers what the
    // action answered then, even though the ticket has moved on since.
    for (action, user, key, status) in [
        ("mark-in-progress", &app.staff, "act-1", "in_progress"),
        ("resolve", &app.staff, "act-2", "resolved"),
        ("reopen", &app.customer, "act-3", "open"),
        ("close", &app.customer, "act-4", "closed"),
    ] {
        let first = keyed_action(&app, &ticket, action, user, key).await;
        assert_original(&first, StatusCode::OK);
        assert_eq!(first.body["status"], status, "{action}");
        let replayed = keyed_action(&app, &ticket, action, user, key).await;
        assert_replay_of(&replayed, &first);
    }
    // Closed now; the earlier actions' replays still say what they said.
    let replayed = keyed_action(&app, &ticket, "reopen", &app.customer, "act-3").await;
    assert_eq!(replayed.body["status"], "open");
    assert_eq!(replayed.header(REPLAYED), "true");
    let current = app.get(&format!("{TICKETS}/{ticket}"), &app.customer).await;
    assert_eq!(
        current.body["status"], "closed",
        "the replay changed nothing"
    );
    app.stop().await;
}

#[tokio::test]
async fn failed_requests_are_not_recorded_so_their_retry_runs() {
    let Some(app) = TestApp::spawn(BACKEND).await else {
        return;
    };
    let ticket = open(&app).await;
    let closed = app.act(&ticket, "close", &app.customer).await;
    assert_eq!(closed.status, StatusCode::OK);
    let refused = keyed_reply(&app, &ticket, &app.customer, "after-reopen", "Hello?").await;
    refused.assert_problem(400, "ticket_closed");
    // The client fixes the cause and retries with the same key: it runs.
    let reopened = app.act(&ticket, "reopen", &app.customer).await;
    assert_eq!(reopened.status, StatusCode::OK);
    let retried = keyed_reply(&app, &ticket, &app.customer, "after-reopen", "Hello?").await;
    assert_original(&retried, StatusCode::CREATED);

    // A request that failed validation recorded nothing either: the key
    // still names no request, so a corrected body under it is accepted.
    let invalid = keyed_reply(&app, &ticket, &app.customer, "fixed", "   ").await;
    invalid.assert_problem(400, "invalid_request");
    let fixed = keyed_reply(&app, &ticket, &app.customer, "fixed", "Now with words").await;
    assert_original(&fixed, StatusCode::CREATED);
    // A key whose scope is missing, a ticket nobody can see: no record.
    let hidden = keyed_reply(&app, &ticket, &app.other_customer, "hidden", "Mine?").await;
    hidden.assert_problem(404, "not_found");
    let visible = keyed_reply(&app, &ticket, &app.customer, "hidden", "Mine?").await;
    assert_original(&visible, StatusCode::CREATED);

    assert_eq!(
        thread(&app, &ticket).await,
        ["First message", "Hello?", "Now with words", "Mine?"]
    );
    app.stop().await;
}

#[tokio::test]
async fn records_expire_after_the_configured_window() {
    let options = TestOptions {
        idempotency_ttl: Duration::from_secs(1),
        ..TestOptions::default()
    };
    let Some(app) = TestApp::spawn_with(BACKEND, options).await else {
        return;
    };
    let ticket = open(&app).await;
    let first = keyed_reply(&app, &ticket, &app.customer, "short-lived", "Once").await;
    assert_original(&first, StatusCode::CREATED);
    // Within the window the retry replays; after it, the key names nothing
    // and the same request writes again.
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut replays = 0;
    loop {
        let retry = keyed_reply(&app, &ticket, &app.customer, "short-lived", "Once").await;
        assert_eq!(retry.status, StatusCode::CREATED, "{}", retry.text);
        if retry.header(REPLAYED).is_empty() {
            assert_ne!(retry.body["id"], first.body["id"]);
            break;
        }
        assert_replay_of(&retry, &first);
        replays += 1;
        assert!(Instant::now() < deadline, "the record never expired");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(replays >= 1, "a retry within the window replays");
    assert_eq!(
        thread(&app, &ticket).await,
        ["First message", "Once", "Once"]
    );
    app.stop().await;
}

/// Claims `key` in the store for exactly the request `keyed_reply` sends,
/// as a node that then crashed would have left it.
async fn abandoned_claim(app: &TestApp, ticket: &str, key: &str, message: &str, lease_ms: i64) {
    let body = serde_json::to_vec(&json!({ "message": message })).unwrap();
    let now = Timestamp::now();
    let outcome = app
        .store
        .claim_idempotency_key(ClaimRequest {
            api_key: app.customer.key_id,
            key: IdempotencyKey::parse(key).unwrap(),
            fingerprint: Fingerprint::of_request(
                &app.fingerprint_key,
                "POST",
                &messages_path(ticket),
                &body,
            ),
            token: ClaimToken::generate(),
            holder: ClaimHolder {
                node: "a node that crashed".into(),
                instance: "gone".into(),
            },
            now,
            lease_until: Timestamp::from_millis(now.millis() + lease_ms),
            expires_at: Timestamp::from_millis(now.millis() + 86_400_000),
        })
        .await
        .unwrap();
    assert!(matches!(outcome, ClaimOutcome::Claimed(_)), "{outcome:?}");
}

#[tokio::test]
async fn a_claim_left_by_a_crash_is_taken_over_once_its_lease_ends() {
    let Some(app) = TestApp::spawn(BACKEND).await else {
        return;
    };
    let ticket = open(&app).await;
    // Claimed by a request still within its lease: retry when it ends,
    // which Retry-After says (in whole seconds, rounded up).
    abandoned_claim(&app, &ticket, "held", "Are you there?", 60_000).await;
    let busy = keyed_reply(&app, &ticket, &app.customer, "held", "Are you there?").await;
    busy.assert_problem(409, "idempotency_request_in_progress");
    assert_eq!(busy.header("retry-after"), "60");
    // Another request under that key is refused outright.
    let other = keyed_reply(&app, &ticket, &app.customer, "held", "Something else").await;
    other.assert_problem(422, "idempotency_key_reused");

    // Claimed by a request whose lease has ended (its node died before it
    // wrote): the retry takes the key over and writes, once.
    abandoned_claim(&app, &ticket, "orphaned", "Hello again", -1).await;
    let taken_over = keyed_reply(&app, &ticket, &app.customer, "orphaned", "Hello again").await;
    assert_original(&taken_over, StatusCode::CREATED);
    let retry = keyed_reply(&app, &ticket, &app.customer, "orphaned", "Hello again").await;
    assert_replay_of(&retry, &taken_over);
    assert_eq!(
        thread(&app, &ticket).await,
        ["First message", "Hello again"]
    );
    app.stop().await;
}

#[tokio::test]
async fn reads_ignore_idempotency_keys() {
    let Some(app) = TestApp::spawn(BACKEND).await else {
        return;
    };
    let ticket = open(&app).await;
    let response = app
        .send(
            app.client
                .get(app.url(&messages_path(&ticket)))
                .bearer_auth(&app.customer.token)
                .header("idempotency-key", "not a valid key"),
        )
        .await;
    assert_eq!(response.status, StatusCode::OK, "{}", response.text);
    assert_eq!(response.header(REPLAYED), "");
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_retry_after_a_server_restart_replays() {
    let Some(scratch) = super::cli::Scratch::new(BACKEND) else {
        return;
    };
    let workspace = scratch.create_workspace("Acme Hosting");
    let user = scratch.create_user(
        super::cli::text(&workspace["id"]),
        "customer",
        "Jane Example",
    );
    let key = scratch.create_key(super::cli::text(&user["id"]));
    let token = super::cli::text(&key["token"]).to_owned();
    let client = reqwest::Client::new();
    let post = |base: String, path: &'static str, body: Value| {
        client
            .post(format!("{base}{path}"))
            .bearer_auth(&token)
            .header("idempotency-key", "9f1c2b3a-open-1")
            .json(&body)
            .send()
    };
    let body = json!({ "subject": "Before the restart", "message": "Hello" });

    let mut server = scratch.serve().await;
    let first = post(server.base_url.clone(), TICKETS, body.clone())
        .await
        .unwrap();
    assert_eq!(first.status(), StatusCode::CREATED);
    assert!(first.headers().get(REPLAYED).is_none());
    let first_location = first.headers()["location"].clone();
    let first_text = first.text().await.unwrap();
    assert!(server.terminate().success(), "{}", server.log());

    let restarted = scratch.serve().await;
    let retry = post(restarted.base_url.clone(), TICKETS, body)
        .await
        .unwrap();
    assert_eq!(retry.status(), StatusCode::CREATED);
    assert_eq!(retry.headers()[REPLAYED], "true");
    assert_eq!(retry.headers()["location"], first_location);
    assert_eq!(retry.text().await.unwrap(), first_text);
    let (status, list) = restarted
        .call(reqwest::Method::GET, TICKETS, &token, None)
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(list["data"].as_array().unwrap().len(), 1, "one ticket");
}
