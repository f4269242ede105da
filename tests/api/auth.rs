//! Authentication (bearer API keys) and authorization (key scopes).

use std::time::{Duration, Instant};

use reqwest::header::HeaderValue;
use reqwest::{Method, StatusCode};
use serde_json::json;
use ticketd::core::access::{Scope, Scopes};
use ticketd::core::id::{KeyId, TicketId};
use ticketd::core::time::Timestamp;
use ticketd::core::token::ApiToken;

use super::BACKEND;
use crate::helpers::{TestApp, TestOptions, TestResponse, TestUser, provision_key};

const TICKETS: &str = "/api/v2/support/tickets";

/// GETs the ticket list with `authorization` as the raw header value.
async fn list_with_authorization(app: &TestApp, authorization: HeaderValue) -> TestResponse {
    app.send(
        app.client
            .get(app.url(TICKETS))
            .header("authorization", authorization),
    )
    .await
}

/// Asserts a 401 problem for `path` that did not touch the rate limiter.
#[track_caller]
fn assert_unauthorized(response: &TestResponse, path: &str, case: &str) {
    assert_eq!(
        response.status,
        StatusCode::UNAUTHORIZED,
        "{case}: {}",
        response.text
    );
    let problem = response.assert_problem(401, "unauthorized");
    assert_eq!(problem["instance"], path, "{case}");
    assert_eq!(
        response.header("www-authenticate"),
        "Bearer realm=\"ticketd\"",
        "{case}"
    );
    assert!(
        response.headers.get("x-ratelimit-limit").is_none(),
        "{case}: {:?}",
        response.headers
    );
}

/// The same user with a new key holding `scopes`.
async fn with_key(app: &TestApp, user: &TestUser, scopes: &[Scope]) -> TestUser {
    let (key_id, token) =
        provision_key(&app.store, user.id, scopes.iter().copied().collect()).await;
    TestUser {
        key_id,
        token,
        ..user.clone()
    }
}

/// A token's `tkd_<key>` part and its secret.
fn split_token(token: &str) -> (&str, &str) {
    token.rsplit_once('_').unwrap()
}

#[tokio::test]
async fn a_request_without_credentials_is_unauthorized() {
    let Some(app) = TestApp::spawn(BACKEND).await else {
        return;
    };
    let ticket = app.open_ticket(&app.customer, "Private").await;
    let ticket = format!("{TICKETS}/{}", ticket["id"].as_str().unwrap());
    let unknown = format!("{TICKETS}/{}", TicketId::generate());
    let reply = json!({"message": "hi"});

    for (method, path, body) in [
        (Method::GET, TICKETS.to_owned(), None),
        (Method::POST, TICKETS.to_owned(), Some(&reply)),
        (Method::GET, ticket.clone(), None),
        (Method::GET, format!("{ticket}/messages"), None),
        (Method::POST, format!("{ticket}/messages"), Some(&reply)),
        (Method::POST, format!("{ticket}/actions/close"), None),
        // Authentication comes before lookup and validation.
        (Method::GET, unknown.clone(), None),
        (
            Method::POST,
            format!("{unknown}/messages"),
            Some(&json!({})),
        ),
    ] {
        let response = app.request(method.clone(), &path, None, body).await;
        assert_unauthorized(&response, &path, &format!("{method} {path}"));
    }
    let status = app.get(&ticket, &app.customer).await;
    assert_eq!(status.body["status"], "open");
    assert_eq!(status.body["messageCount"], 1);
}

#[tokio::test]
async fn a_malformed_authorization_header_is_unauthorized() {
    let Some(app) = TestApp::spawn(BACKEND).await else {
        return;
    };
    let token = app.customer.token.as_str();
    let (key, secret) = split_token(token);
    let key_id = app.customer.key_id.key();

    let cases: Vec<String> = vec![
        String::new(),
        "Bearer".to_owned(),
        "Bearer ".to_owned(),
        token.to_owned(),
        format!("Basic {token}"),
        format!("Token {token}"),
        format!("Bearer: {token}"),
        "Basic dXNlcjpwYXNzd29yZA==".to_owned(),
        "Bearer not-a-token".to_owned(),
        "Bearer tkd_".to_owned(),
        format!("Bearer {key}"),
        format!("Bearer {key}_"),
        format!("Bearer {key}_{}", secret.to_uppercase()),
        format!("Bearer {key}_{}", &secret[1..]),
        format!("Bearer {key}_{secret}0"),
        format!("Bearer {key_id}_{secret}"),
        format!("Bearer key_{key_id}_{secret}"),
        format!("Bearer TKD_{key_id}_{secret}"),
        format!("Bearer {token} {token}"),
        format!("Bearer {token}, Bearer {token}"),
    ];
    for case in cases {
        let response = list_with_authorization(&app, HeaderValue::from_str(&case).unwrap()).await;
        assert_unauthorized(&response, TICKETS, &case);
    }

    let not_ascii = HeaderValue::from_bytes(b"Bearer tkd_\xff\xfe").unwrap();
    let response = list_with_authorization(&app, not_ascii).await;
    assert_unauthorized(&response, TICKETS, "non-ASCII bytes");
}

#[tokio::test]
async fn a_well_formed_token_for_an_unknown_key_is_unauthorized() {
    let Some(app) = TestApp::spawn(BACKEND).await else {
        return;
    };
    let stranger = ApiToken::generate(KeyId::generate()).unwrap().expose();

    let response = list_with_authorization(
        &app,
        HeaderValue::from_str(&format!("Bearer {stranger}")).unwrap(),
    )
    .await;

    assert_unauthorized(&response, TICKETS, "unknown key");
}

#[tokio::test]
async fn a_key_with_another_keys_secret_is_unauthorized() {
    let Some(app) = TestApp::spawn(BACKEND).await else {
        return;
    };
    let (customer_key, customer_secret) = split_token(&app.customer.token);
    let (staff_key, staff_secret) = split_token(&app.staff.token);
    let fresh = ApiToken::generate(app.customer.key_id).unwrap().expose();
    let (_, fresh_secret) = split_token(&fresh);

    for token in [
        format!("{customer_key}_{staff_secret}"),
        format!("{staff_key}_{customer_secret}"),
        format!("{customer_key}_{fresh_secret}"),
        format!("{customer_key}_{}", "0".repeat(64)),
    ] {
        let response = app.request(Method::GET, TICKETS, Some(&token), None).await;
        assert_unauthorized(&response, TICKETS, &token);
    }
    for user in [&app.customer, &app.staff] {
        assert_eq!(app.get(TICKETS, user).await.status, StatusCode::OK);
    }
}

#[tokio::test]
async fn the_scheme_is_case_insensitive() {
    let Some(app) = TestApp::spawn(BACKEND).await else {
        return;
    };

    for scheme in ["Bearer", "bearer", "BEARER", "bEaReR"] {
        let authorization =
            HeaderValue::from_str(&format!("{scheme} {}", app.customer.token)).unwrap();
        let response = list_with_authorization(&app, authorization).await;
        assert_eq!(
            response.status,
            StatusCode::OK,
            "{scheme}: {}",
            response.text
        );
        assert_eq!(response.body["data"], json!([]));
    }
}

#[tokio::test]
async fn a_revoked_key_is_unauthorized() {
    // Without the key cache, revocation takes effect at once.
    let options = TestOptions {
        api_key_cache: Duration::ZERO,
        ..TestOptions::default()
    };
    let Some(app) = TestApp::spawn_with(BACKEND, options).await else {
        return;
    };
    let ticket = app.open_ticket(&app.customer, "Before revocation").await;
    let ticket_id = ticket["id"].as_str().unwrap();
    let spare = with_key(&app, &app.customer, &Scope::ALL).await;
    assert_eq!(app.get(TICKETS, &spare).await.status, StatusCode::OK);

    app.store
        .revoke_api_key(spare.key_id, Timestamp::now())
        .await
        .unwrap();

    let list = app.get(TICKETS, &spare).await;
    assert_unauthorized(&list, TICKETS, "revoked GET");
    let path = format!("{TICKETS}/{ticket_id}/messages");
    let reply = app
        .post(&path, &spare, &json!({"message": "still here?"}))
        .await;
    assert_unauthorized(&reply, &path, "revoked POST");

    // Revoking one key leaves the user's other keys working.
    let other = app.get(&path, &app.customer).await;
    assert_eq!(other.status, StatusCode::OK, "{}", other.text);
    assert_eq!(other.body["data"].as_array().unwrap().len(), 1);
}

#[tokio::test]
async fn a_cached_key_is_refused_once_its_cache_entry_expires() {
    let lifetime = Duration::from_millis(600);
    let options = TestOptions {
        api_key_cache: lifetime,
        ..TestOptions::default()
    };
    let Some(app) = TestApp::spawn_with(BACKEND, options).await else {
        return;
    };
    let spare = with_key(&app, &app.customer, &Scope::ALL).await;
    // The server reads the key between these two instants.
    let read_before = Instant::now();
    assert_eq!(app.get(TICKETS, &spare).await.status, StatusCode::OK);
    let read_after = Instant::now();
    app.store
        .revoke_api_key(spare.key_id, Timestamp::now())
        .await
        .unwrap();

    // Within the lifetime the key's cached credentials still admit it...
    let cached = app.get(TICKETS, &spare).await;
    if read_before.elapsed() < lifetime {
        assert_eq!(cached.status, StatusCode::OK, "{}", cached.text);
    }
    // ...and once the entry is older than that, the revocation is seen.
    tokio::time::sleep(lifetime.saturating_sub(read_after.elapsed())).await;
    assert_unauthorized(&app.get(TICKETS, &spare).await, TICKETS, "expired entry");
    // Other keys are unaffected: a new one works at once.
    let fresh = with_key(&app, &app.customer, &Scope::ALL).await;
    assert_eq!(app.get(TICKETS, &fresh).await.status, StatusCode::OK);
}

#[tokio::test]
async fn a_read_only_key_can_read_but_not_write() {
    let Some(app) = TestApp::spawn(BACKEND).await else {
        return;
    };
    let ticket = app.open_ticket(&app.customer, "Scopes").await;
    let ticket = format!("{TICKETS}/{}", ticket["id"].as_str().unwrap());
    let reader = with_key(&app, &app.customer, &[Scope::ReadSupport]).await;

    for path in [
        TICKETS.to_owned(),
        ticket.clone(),
        format!("{ticket}/messages"),
    ] {
        let response = app.get(&path, &reader).await;
        assert_eq!(
            response.status,
            StatusCode::OK,
            "GET {path}: {}",
            response.text
        );
    }
    for (path, body) in [
        (format!("{ticket}/messages"), Some(json!({"message": "hi"}))),
        (
            TICKETS.to_owned(),
            Some(json!({"subject": "New", "message": "hi"})),
        ),
        (format!("{ticket}/actions/close"), None),
        (
            format!("{TICKETS}/{}/messages", TicketId::generate()),
            Some(json!({"message": "hi"})),
        ),
    ] {
        let response = app
            .request(Method::POST, &path, Some(&reader.token), body.as_ref())
            .await;
        assert_eq!(
            response.status,
            StatusCode::FORBIDDEN,
            "POST {path}: {}",
            response.text
        );
        response.assert_problem(403, "forbidden");
        assert_eq!(response.body["instance"], path);
    }

    let unchanged = app.get(&ticket, &app.customer).await;
    assert_eq!(unchanged.body["status"], "open");
    assert_eq!(unchanged.body["messageCount"], 1);
    assert_eq!(
        app.get(TICKETS, &app.customer).await.body["data"]
            .as_array()
            .unwrap()
            .len(),
        1
    );
}

#[tokio::test]
async fn a_write_only_key_can_write_but_not_read() {
    let Some(app) = TestApp::spawn(BACKEND).await else {
        return;
    };
    let ticket = app.open_ticket(&app.customer, "Scopes").await;
    let ticket = format!("{TICKETS}/{}", ticket["id"].as_str().unwrap());
    let writer = with_key(&app, &app.customer, &[Scope::WriteSupport]).await;

    let reply = app
        .post(
            &format!("{ticket}/messages"),
            &writer,
            &json!({"message": "written"}),
        )
        .await;
    assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.text);
    assert_eq!(reply.body["sender"], "customer");
    assert_eq!(reply.body["senderName"], "Jane Example");
    let location = reply.header("location").to_owned();

    for path in [
        TICKETS.to_owned(),
        ticket.clone(),
        format!("{ticket}/messages"),
        location,
    ] {
        let response = app.get(&path, &writer).await;
        assert_eq!(
            response.status,
            StatusCode::FORBIDDEN,
            "GET {path}: {}",
            response.text
        );
        response.assert_problem(403, "forbidden");
    }
    let thread = app.get(&format!("{ticket}/messages"), &app.customer).await;
    assert_eq!(thread.body["data"][1]["body"], "written");
}

#[tokio::test]
async fn a_key_without_scopes_can_do_nothing() {
    let Some(app) = TestApp::spawn(BACKEND).await else {
        return;
    };
    let ticket = app.open_ticket(&app.customer, "Scopes").await;
    let messages = format!("{TICKETS}/{}/messages", ticket["id"].as_str().unwrap());
    let (key_id, token) = provision_key(&app.store, app.customer.id, Scopes::default()).await;
    let nobody = TestUser {
        key_id,
        token,
        ..app.customer.clone()
    };

    app.get(&messages, &nobody)
        .await
        .assert_problem(403, "forbidden");
    app.post(&messages, &nobody, &json!({"message": "hi"}))
        .await
        .assert_problem(403, "forbidden");
}
