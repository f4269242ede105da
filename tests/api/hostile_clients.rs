//! Clients that try to hold the server rather than use it: many
//! connections from one address, and idle connections without a key.
//!
//! Client addresses other than 127.0.0.1 are other loopback addresses
//! (127.0.0.2 and up), which Linux routes to the loopback interface.

use std::net::Ipv4Addr;
use std::time::{Duration, Instant};

use ticketd::core::id::KeyId;
use ticketd::core::token::ApiToken;
use ticketd::server::ConnectionLimits;

use super::BACKEND;
use crate::helpers::{RawConnection, TestApp, TestOptions, raw_get};

const TICKETS: &str = "/api/v2/support/tickets";

/// The loopback address 127.0.0.`n`.
fn loopback(n: u8) -> Ipv4Addr {
    Ipv4Addr::new(127, 0, 0, n)
}

/// `GET path` with `token`, keeping the connection open.
fn raw_get_as(path: &str, token: &str) -> Vec<u8> {
    format!("GET {path} HTTP/1.1\r\nHost: localhost\r\nAuthorization: Bearer {token}\r\n\r\n")
        .into_bytes()
}

#[tokio::test]
async fn connections_past_the_per_address_cap_are_closed_at_once() {
    let Some(app) = TestApp::spawn_with(
        BACKEND,
        TestOptions {
            connections: ConnectionLimits {
                max_connections_per_address: 3,
                // Idle connections stay open through the test.
                unauthenticated_idle_timeout: Duration::from_secs(75),
                ..ConnectionLimits::default()
            },
            ..Default::default()
        },
    )
    .await
    else {
        return;
    };
    let mut open = Vec::new();
    for _ in 0..3 {
        let mut connection = RawConnection::open_from(&app, loopback(2)).await;
        let response = connection.exchange(&raw_get("/healthz")).await.unwrap();
        assert_eq!(response.status, 200, "{}", response.head);
        open.push(connection);
    }

    let started = Instant::now();
    let mut fourth = RawConnection::open_from(&app, loopback(2)).await;
    assert!(
        fourth
            .closed_within(Duration::from_secs(5))
            .await
            .is_empty(),
        "a connection past the cap got an answer"
    );
    assert!(started.elapsed() < Duration::from_secs(2));

    // Other addresses are not affected, and the three are still served.
    let mut neighbour = RawConnection::open_from(&app, loopback(3)).await;
    let response = neighbour.exchange(&raw_get("/healthz")).await.unwrap();
    assert_eq!(response.status, 200, "{}", response.head);
    let again = open[2].exchange(&raw_get("/readyz")).await.unwrap();
    assert_eq!(again.status, 200, "{}", again.head);

    // Once one closes, the address may connect again.
    drop(open.remove(0));
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let mut connection = RawConnection::open_from(&app, loopback(2)).await;
        if let Some(response) = connection.exchange(&raw_get("/healthz")).await {
            assert_eq!(response.status, 200, "{}", response.head);
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the closed connection's place never came back"
        );
    }
}

#[tokio::test]
async fn a_connection_without_an_authenticated_request_gets_the_shorter_idle_timeout() {
    let Some(app) = TestApp::spawn_with(
        BACKEND,
        TestOptions {
            connections: ConnectionLimits {
                header_read_timeout: Duration::from_secs(10),
                idle_timeout: Duration::from_secs(30),
                unauthenticated_idle_timeout: Duration::from_secs(1),
                ..ConnectionLimits::default()
            },
            ..Default::default()
        },
    )
    .await
    else {
        return;
    };
    let unknown_key = ApiToken::generate(KeyId::generate()).unwrap().expose();
    for (request, status) in [
        (raw_get("/healthz"), 200),
        (raw_get_as(TICKETS, &unknown_key), 401),
    ] {
        let mut connection = RawConnection::open(&app).await;
        let response = connection.exchange(&request).await.unwrap();
        assert_eq!(response.status, status, "{}", response.head);
        let idle_since = Instant::now();
        assert!(
            connection
                .closed_within(Duration::from_secs(10))
                .await
                .is_empty()
        );
        let idle = idle_since.elapsed();
        assert!(
            idle >= Duration::from_millis(500) && idle < Duration::from_secs(5),
            "a {status} bought {idle:?} of keep-alive; the unauthenticated idle timeout is 1 s"
        );
    }

    // A connection that says nothing at all: the same.
    let mut silent = RawConnection::open(&app).await;
    let started = Instant::now();
    assert!(
        silent
            .closed_within(Duration::from_secs(10))
            .await
            .is_empty()
    );
    assert!(started.elapsed() < Duration::from_secs(5));

    // An authenticated request earns the full idle timeout.
    let mut connection = RawConnection::open(&app).await;
    let response = connection
        .exchange(&raw_get_as(TICKETS, &app.customer.token))
        .await
        .unwrap();
    assert_eq!(response.status, 200, "{}", response.head);
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let health = connection.exchange(&raw_get("/healthz")).await;
    let health = health.expect("an authenticated connection was closed after 2.5 s idle");
    assert_eq!(health.status, 200, "{}", health.head);
}
