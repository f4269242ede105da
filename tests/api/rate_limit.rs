//! The rate limiter shared through Redis, over HTTP: the same limits and
//! headers as the in-process one, one limit per key (and one budget of
//! failed authentications per client address) across two servers, and a
//! 503 with `Retry-After` when Redis cannot be reached.
//!
//! Tests that need Redis use the one [`crate::test_redis`] names.

use redis::aio::MultiplexedConnection;
use reqwest::StatusCode;
use ticketd::core::access::Scopes;
use ticketd::core::id::KeyId;
use ticketd::core::time::Timestamp;
use ticketd::core::token::ApiToken;
use ticketd::core::workspace::NewApiKey;
use ticketd::rate_limit::redis::RedisUrl;
use ticketd::rate_limit::{RateLimitStore, RatePolicy};

use super::BACKEND;
use crate::helpers::{RawConnection, TestApp, TestOptions, TestResponse, TestUser};
use crate::test_redis;

const TICKETS: &str = "/api/v2/support/tickets";

/// A Redis limiter store under a prefix no other test run uses.
fn redis_store(url: &str) -> RateLimitStore {
    RateLimitStore::Redis {
        url: RedisUrl::parse(url).unwrap(),
        key_prefix: test_redis::fresh_prefix(),
    }
}

async fn delete_keys(redis: &mut MultiplexedConnection, store: &RateLimitStore) {
    if let RateLimitStore::Redis { key_prefix, .. } = store {
        test_redis::delete_keys(redis, key_prefix).await;
    }
}

/// A server allowing 3 requests at once per key, then one a minute (so no
/// refill happens during a test, however slow the machine); `None` when the
/// backend is unavailable here.
async fn spawn(store: &RateLimitStore) -> Option<TestApp> {
    TestApp::spawn_with(
        BACKEND,
        TestOptions {
            rate_limit: RatePolicy {
                per_minute: 1,
                burst: 3,
            },
            rate_limit_store: store.clone(),
            ..Default::default()
        },
    )
    .await
}

/// The `X-RateLimit-*` headers as (limit, remaining, reset).
#[track_caller]
fn rate_headers(response: &TestResponse) -> (&str, &str, &str) {
    (
        response.header("x-ratelimit-limit"),
        response.header("x-ratelimit-remaining"),
        response.header("x-ratelimit-reset"),
    )
}

#[tokio::test]
async fn an_unreachable_shared_limiter_answers_503_with_retry_after() {
    // Nothing listens on port 1: every connection is refused.
    let Some(app) = spawn(&redis_store("redis://127.0.0.1:1/0")).await else {
        return;
    };

    let refused = app.get(TICKETS, &app.customer).await;
    let problem = refused.assert_problem(503, "service_unavailable");
    assert_eq!(problem["instance"], TICKETS);
    assert_eq!(
        problem["detail"],
        "The service is temporarily unavailable. Retry later."
    );
    assert_eq!(refused.header("retry-after"), "1");
    assert!(
        refused.headers.get("x-ratelimit-limit").is_none(),
        "{:?}",
        refused.headers
    );

    // Authentication still comes first.
    let anonymous = app
        .send(app.client.get(app.url(TICKETS)))
        .await
        .assert_problem(401, "unauthorized")
        .clone();
    assert_eq!(anonymous["instance"], TICKETS);

    let not_ready = app.send(app.client.get(app.url("/readyz"))).await;
    not_ready.assert_problem(503, "service_unavailable");
    assert_eq!(not_ready.header("retry-after"), "1");
    assert_eq!(
        not_ready.body["detail"],
        "The rate limiter's shared store (Redis) cannot be reached."
    );
    let alive = app.send(app.client.get(app.url("/healthz"))).await;
    assert_eq!(alive.status, StatusCode::OK, "{}", alive.text);
    app.stop().await;
}

#[tokio::test]
async fn a_shared_limiter_answers_like_the_in_process_one() {
    let test = "a_shared_limiter_answers_like_the_in_process_one";
    let Some(mut redis) = test_redis::connect_or_skip(test).await else {
        return;
    };
    let store = redis_store(&test_redis::url());
    let Some(app) = spawn(&store).await else {
        return;
    };

    let ready = app.send(app.client.get(app.url("/readyz"))).await;
    assert_eq!(ready.status, StatusCode::OK, "{}", ready.text);
    assert_eq!(ready.body["status"], "ready");

    // As the in-process limiter answers: each request used takes a minute
    // to come back.
    for (remaining, reset) in [("2", "60"), ("1", "120"), ("0", "180")] {
        let response = app.get(TICKETS, &app.customer).await;
        assert_eq!(response.status, StatusCode::OK, "{}", response.text);
        assert_eq!(rate_headers(&response), ("3", remaining, reset));
    }
    let refused = app.get(TICKETS, &app.customer).await;
    assert_eq!(
        refused.assert_problem(429, "rate_limit_exceeded")["instance"],
        TICKETS
    );
    assert_eq!(refused.header("retry-after"), "60");
    assert_eq!(rate_headers(&refused), ("3", "0", "180"));

    // Another key has a bucket of its own.
    let staff = app.get(TICKETS, &app.staff).await;
    assert_eq!(staff.status, StatusCode::OK, "{}", staff.text);
    assert_eq!(rate_headers(&staff), ("3", "2", "60"));

    app.stop().await;
    delete_keys(&mut redis, &store).await;
}

#[tokio::test]
async fn two_servers_sharing_redis_enforce_one_limit_per_key() {
    let test = "two_servers_sharing_redis_enforce_one_limit_per_key";
    let Some(mut redis) = test_redis::connect_or_skip(test).await else {
        return;
    };
    let store = redis_store(&test_redis::url());
    let (Some(first), Some(second)) = (spawn(&store).await, spawn(&store).await) else {
        return;
    };
    let nodes = [first, second];

    // One API key known to both servers, as if they shared one database.
    let token = ApiToken::generate(KeyId::generate()).unwrap();
    let mut users = Vec::new();
    for node in &nodes {
        node.store
            .create_api_key(NewApiKey {
                id: token.key_id,
                user_id: node.customer.id,
                scopes: Scopes::all(),
                secret_hash: token.secret_hash(),
                created_at: Timestamp::now(),
            })
            .await
            .unwrap();
        users.push(TestUser {
            key_id: token.key_id,
            token: token.expose(),
            ..node.customer.clone()
        });
    }

    let mut answers = Vec::new();
    for turn in 0..6 {
        let node = turn % 2;
        let response = nodes[node].get(TICKETS, &users[node]).await;
        answers.push((
            node,
            response.status.as_u16(),
            response.header("x-ratelimit-remaining").to_owned(),
        ));
    }
    assert_eq!(
        answers,
        [
            (0, 200, "2".to_owned()),
            (1, 200, "1".to_owned()),
            (0, 200, "0".to_owned()),
            (1, 429, "0".to_owned()),
            (0, 429, "0".to_owned()),
            (1, 429, "0".to_owned()),
        ]
    );

    for node in nodes {
        node.stop().await;
    }
    delete_keys(&mut redis, &store).await;
}

#[tokio::test]
async fn two_servers_sharing_redis_count_an_address_s_failed_authentications_together() {
    let test = "two_servers_sharing_redis_count_an_address_s_failed_authentications_together";
    let Some(mut redis) = test_redis::connect_or_skip(test).await else {
        return;
    };
    let store = redis_store(&test_redis::url());
    let spawn_node = || {
        TestApp::spawn_with(
            BACKEND,
            TestOptions {
                rate_limit_store: store.clone(),
                // Two failures per address, then one a minute.
                auth_failure_limit: Some(RatePolicy {
                    per_minute: 1,
                    burst: 2,
                }),
                ..Default::default()
            },
        )
    };
    let (Some(first), Some(second)) = (spawn_node().await, spawn_node().await) else {
        return;
    };
    let nodes = [first, second];
    let guess = ApiToken::generate(KeyId::generate()).unwrap().expose();
    let request = format!(
        "GET {TICKETS} HTTP/1.1\r\nHost: localhost\r\nAuthorization: Bearer {guess}\r\n\r\n"
    );
    // The guesses come from 127.0.0.2 (a loopback address like 127.0.0.1).
    let guesser = std::net::Ipv4Addr::new(127, 0, 0, 2);
    let mut connections = [
        RawConnection::open_from(&nodes[0], guesser).await,
        RawConnection::open_from(&nodes[1], guesser).await,
    ];

    let mut answers = Vec::new();
    for turn in 0..4 {
        let response = connections[turn % 2]
            .exchange(request.as_bytes())
            .await
            .unwrap();
        answers.push((
            turn % 2,
            response.json()["code"].as_str().unwrap().to_owned(),
        ));
        if response.status == 429 {
            assert!(
                response.head.contains("\r\nretry-after: 60\r\n")
                    || response.head.contains("\r\nretry-after: 59\r\n"),
                "{}",
                response.head
            );
        }
    }
    let code = |node: usize, code: &str| (node, code.to_owned());
    assert_eq!(
        answers,
        [
            code(0, "unauthorized"),
            code(1, "unauthorized"),
            code(0, "auth_rate_limit_exceeded"),
            code(1, "auth_rate_limit_exceeded"),
        ]
    );
    // Other addresses, and keys, are unaffected.
    let allowed = nodes[1].get(TICKETS, &nodes[1].customer).await;
    assert_eq!(allowed.status, StatusCode::OK, "{}", allowed.text);

    for node in nodes {
        node.stop().await;
    }
    delete_keys(&mut redis, &store).await;
}
