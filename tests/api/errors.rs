//! How the API fails: problem documents for bad bodies, media types, sizes,
//! routes and methods; the pages problem types point to; rate limiting;
//! request ids; and the health probes.

use std::collections::HashSet;
use std::fmt::Write as _;
use std::time::Duration;

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use ticketd::core::access::{Scope, Scopes};
use ticketd::core::id::{RequestId, TicketId};
use ticketd::rate_limit::RatePolicy;

use super::BACKEND;
use crate::helpers::{
    RawConnection, RawResponse, TestApp, TestOptions, TestResponse, TestUser, provision_key,
};

const TICKETS: &str = "/api/v2/support/tickets";

/// The most bytes a problem document takes whatever the request (README,
/// "Errors"); written out rather than taken from the library, so that
/// raising the library's limit fails these tests.
const PROBLEM_BOUND: usize = 16 * 1024;

/// Opens a ticket as the main customer; returns the path of its messages.
async fn thread(app: &TestApp) -> String {
    let ticket = app.open_ticket(&app.customer, "Broken").await;
    format!("{TICKETS}/{}/messages", ticket["id"].as_str().unwrap())
}

/// POSTs raw `body` bytes to `path` as the main customer.
async fn post_raw(
    app: &TestApp,
    path: &str,
    content_type: Option<&str>,
    body: impl Into<reqwest::Body>,
) -> TestResponse {
    let mut request = app
        .client
        .post(app.url(path))
        .bearer_auth(&app.customer.token);
    if let Some(content_type) = content_type {
        request = request.header("content-type", content_type);
    }
    app.send(request.body(body)).await
}

/// How many messages the thread at `path` holds.
async fn message_count(app: &TestApp, path: &str) -> usize {
    let response = app.get(path, &app.customer).await;
    assert_eq!(response.status, StatusCode::OK, "{}", response.text);
    response.body["data"].as_array().unwrap().len()
}

/// Asserts a problem with no `errors[]` member, at `path`.
#[track_caller]
fn assert_plain_problem(response: &TestResponse, status: u16, code: &str, path: &str) {
    let problem = response.assert_problem(status, code);
    assert_eq!(problem["instance"], path, "{}", response.text);
    assert!(problem.get("errors").is_none(), "{}", response.text);
}

/// The `X-RateLimit-*` headers as (limit, remaining, reset).
#[track_caller]
fn rate_headers(response: &TestResponse) -> (u32, u32, u64) {
    let number = |name: &str| {
        response
            .header(name)
            .parse::<u64>()
            .unwrap_or_else(|_| panic!("{name}: {:?}", response.headers))
    };
    (
        u32::try_from(number("x-ratelimit-limit")).unwrap(),
        u32::try_from(number("x-ratelimit-remaining")).unwrap(),
        number("x-ratelimit-reset"),
    )
}

#[track_caller]
fn assert_no_rate_headers(response: &TestResponse) {
    for name in [
        "x-ratelimit-limit",
        "x-ratelimit-remaining",
        "x-ratelimit-reset",
        "retry-after",
    ] {
        assert!(
            response.headers.get(name).is_none(),
            "{name} on {}: {:?}",
            response.status,
            response.headers
        );
    }
}

/// A server allowing 3 requests at once per key, then one a second; `None`
/// when the backend is unavailable here.
async fn rate_limited_app() -> Option<TestApp> {
    TestApp::spawn_with(
        BACKEND,
        TestOptions {
            rate_limit: RatePolicy {
                per_minute: 60,
                burst: 3,
            },
            ..Default::default()
        },
    )
    .await
}

#[tokio::test]
async fn a_body_that_is_not_json_is_malformed_json() {
    let Some(app) = TestApp::spawn(BACKEND).await else {
        return;
    };
    let path = thread(&app).await;

    for body in [
        "{",
        "{\"message\": ",
        "{'message': 'hi'}",
        "message=hi",
        "{\"message\": \"hi\",}",
        "{\"message\": \"hi\"} trailing",
        "{\"message\": \"hi\"}{\"message\": \"again\"}",
    ] {
        let response = post_raw(&app, &path, Some("application/json"), body).await;
        assert_eq!(
            response.status,
            StatusCode::BAD_REQUEST,
            "{body}: {}",
            response.text
        );
        assert_plain_problem(&response, 400, "malformed_json", &path);
    }
    assert_eq!(message_count(&app, &path).await, 1);
}

#[tokio::test]
async fn an_empty_body_is_malformed_json() {
    let Some(app) = TestApp::spawn(BACKEND).await else {
        return;
    };
    let path = thread(&app).await;

    for body in ["", "   \r\n"] {
        let response = post_raw(&app, &path, Some("application/json"), body).await;
        assert_eq!(
            response.status,
            StatusCode::BAD_REQUEST,
            "{body:?}: {}",
            response.text
        );
        assert_plain_problem(&response, 400, "malformed_json", &path);
    }
    assert_eq!(message_count(&app, &path).await, 1);
}

#[tokio::test]
async fn invalid_utf8_is_malformed_json() {
    let Some(app) = TestApp::spawn(BACKEND).await else {
        return;
    };
    let path = thread(&app).await;

    // Bytes that are not UTF-8: errors[] points at the member holding them
    // (tests/api/limits.rs has more cases).
    for body in [
        &b"{\"message\": \"caf\xe9\"}"[..],
        &b"{\"message\": \"\xff\xfe\"}"[..],
    ] {
        let response = post_raw(&app, &path, Some("application/json"), body.to_vec()).await;
        assert_eq!(
            response.status,
            StatusCode::BAD_REQUEST,
            "{body:?}: {}",
            response.text
        );
        response.assert_problem(400, "malformed_json");
        assert_eq!(
            response.field_errors(),
            [("/message".to_owned(), "invalid_encoding".to_owned())]
        );
    }
    // A byte order mark is UTF-8, but JSON text does not start with one.
    let response = post_raw(
        &app,
        &path,
        Some("application/json"),
        b"\xef\xbb\xbf{\"message\": \"byte order mark\"}".to_vec(),
    )
    .await;
    assert_plain_problem(&response, 400, "malformed_json", &path);
    assert_eq!(message_count(&app, &path).await, 1);
}

#[tokio::test]
async fn a_body_that_is_not_an_object_is_invalid_type_at_the_root() {
    let Some(app) = TestApp::spawn(BACKEND).await else {
        return;
    };
    let path = thread(&app).await;

    for body in [
        json!([{"message": "hi"}]),
        json!([]),
        json!("hi"),
        json!(42),
        json!(null),
        json!(true),
    ] {
        let response = app.post(&path, &app.customer, &body).await;
        assert_eq!(
            response.status,
            StatusCode::BAD_REQUEST,
            "{body}: {}",
            response.text
        );
        response.assert_problem(400, "invalid_request");
        assert_eq!(
            response.field_errors(),
            [(String::new(), "invalid_type".to_owned())],
            "{body}"
        );
        assert_eq!(response.body["instance"], path);
    }
    assert_eq!(message_count(&app, &path).await, 1);
}

#[tokio::test]
async fn a_body_without_a_json_content_type_is_unsupported() {
    let Some(app) = TestApp::spawn(BACKEND).await else {
        return;
    };
    let path = thread(&app).await;
    let body = r#"{"message": "hi"}"#;

    for content_type in [
        None,
        Some("text/plain"),
        Some("text/json"),
        Some("application/x-www-form-urlencoded"),
        Some("multipart/form-data; boundary=x"),
        Some("application/xml"),
        Some("application/jsonp"),
    ] {
        let response = post_raw(&app, &path, content_type, body).await;
        assert_eq!(
            response.status,
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "{content_type:?}: {}",
            response.text
        );
        assert_plain_problem(&response, 415, "unsupported_media_type", &path);
    }
    assert_eq!(message_count(&app, &path).await, 1);
}

#[tokio::test]
async fn json_content_types_with_parameters_are_accepted() {
    let Some(app) = TestApp::spawn(BACKEND).await else {
        return;
    };
    let path = thread(&app).await;

    for content_type in [
        "application/json; charset=utf-8",
        "Application/JSON",
        "application/json;charset=UTF-8",
    ] {
        let response = post_raw(&app, &path, Some(content_type), r#"{"message": "hi"}"#).await;
        assert_eq!(
            response.status,
            StatusCode::CREATED,
            "{content_type}: {}",
            response.text
        );
        assert_eq!(response.body["body"], "hi");
    }
    assert_eq!(message_count(&app, &path).await, 4);
}

#[tokio::test]
async fn a_body_over_the_limit_is_payload_too_large() {
    let Some(app) = TestApp::spawn_with(
        BACKEND,
        TestOptions {
            max_body_bytes: 2048,
            ..Default::default()
        },
    )
    .await
    else {
        return;
    };
    let path = thread(&app).await;

    let just_under = json!({"message": "x".repeat(2000)});
    assert!(serde_json::to_vec(&just_under).unwrap().len() <= 2048);
    let response = app.post(&path, &app.customer, &just_under).await;
    assert_eq!(response.status, StatusCode::CREATED, "{}", response.text);

    for size in [2049, 3000, 100_000] {
        let response = app
            .post(&path, &app.customer, &json!({"message": "x".repeat(size)}))
            .await;
        assert_eq!(
            response.status,
            StatusCode::PAYLOAD_TOO_LARGE,
            "{size}: {}",
            response.text
        );
        assert_plain_problem(&response, 413, "payload_too_large", &path);
    }
    assert_eq!(message_count(&app, &path).await, 2);
}

/// Asserts that `response` is a problem of at most [`PROBLEM_BOUND`] bytes.
#[track_caller]
fn assert_bounded<'a>(response: &'a TestResponse, status: u16, code: &str) -> &'a Value {
    let problem = response.assert_problem(status, code);
    assert!(
        response.text.len() <= PROBLEM_BOUND,
        "{} bytes: {:.2000}",
        response.text.len(),
        response.text
    );
    problem
}

/// The `errors[]` of `count` unknown members or parameters `u00000`,
/// `u00001`, ... (in the detail `what`), as listed: the first 99, then the
/// entry saying how many more there are.
fn unknown_entries(count: usize, what: &str) -> Value {
    let mut entries: Vec<Value> = (0..99)
        .map(|n| {
            json!({
                "pointer": format!("/u{n:05}"),
                "detail": format!("`u{n:05}` is not {what}."),
                "code": "unknown_field",
            })
        })
        .collect();
    entries.push(json!({
        "pointer": "",
        "detail": format!(
            "{} more errors were found but are not listed \
             (errors[] holds at most 100 entries and 12288 bytes).",
            count - 99
        ),
        "code": "too_many_errors",
    }));
    Value::Array(entries)
}

#[tokio::test]
async fn a_bad_byte_a_megabyte_deep_answers_a_short_pointer() {
    let Some(app) = TestApp::spawn(BACKEND).await else {
        return;
    };
    let path = thread(&app).await;

    // 1 MiB in all, the default max_body_bytes: a million nested arrays,
    // then a byte that is not UTF-8 (which once answered 6.3 MB, the
    // pointer `/0/0/...` two megabytes long and sent three times).
    let mut body = vec![b'['; 1024 * 1024 - 1];
    body.push(0xff);
    let response = post_raw(&app, &path, Some("application/json"), body).await;
    let problem = assert_bounded(&response, 400, "malformed_json");

    // 256 bytes: 126 whole `/0`, then a `/` and the marker.
    let pointer = format!("{}/…", "/0".repeat(126));
    assert_eq!(pointer.len(), 256);
    let detail = format!(
        "The request body is not valid UTF-8: byte 0xFF at offset 1048575 is not part of \
         a valid character (in the value at `{pointer}`)."
    );
    assert_eq!(problem["detail"], detail.as_str());
    assert_eq!(
        problem["errors"],
        json!([{"pointer": pointer, "detail": detail, "code": "invalid_encoding"}])
    );
    assert_eq!(message_count(&app, &path).await, 1);
}

#[tokio::test]
async fn eighty_seven_thousand_unknown_members_answer_a_hundred_entries() {
    let Some(app) = TestApp::spawn(BACKEND).await else {
        return;
    };
    let path = thread(&app).await;
    let ticket = path.trim_end_matches("/messages").to_owned();

    // 87,000 members nobody takes (once 8.6 MB of errors), within 1 MiB.
    let mut members = String::new();
    for n in 0..87_000 {
        write!(members, ",\"u{n:05}\":0").unwrap();
    }
    let reply = format!("{{\"message\":\"hi\"{members}}}");
    let action = format!("{{{}}}", &members[1..]);
    assert!(reply.len() <= 1024 * 1024, "{}", reply.len());

    let response = post_raw(&app, &path, Some("application/json"), reply).await;
    let problem = assert_bounded(&response, 400, "invalid_request");
    assert_eq!(
        problem["errors"],
        unknown_entries(87_000, "a field of this request")
    );
    assert_eq!(problem["detail"], "The request body failed validation.");

    // An action's body takes no member at all.
    let response = post_raw(
        &app,
        &format!("{ticket}/actions/close"),
        Some("application/json"),
        action,
    )
    .await;
    let problem = assert_bounded(&response, 400, "invalid_request");
    assert_eq!(
        problem["errors"],
        unknown_entries(87_000, "a field of this request")
    );

    // Query parameters nobody takes, as many as a request head holds.
    let query: Vec<String> = (0..1500).map(|n| format!("u{n:05}=1")).collect();
    let response = app
        .get(&format!("{TICKETS}?{}", query.join("&")), &app.customer)
        .await;
    let problem = assert_bounded(&response, 400, "invalid_request");
    assert_eq!(
        problem["errors"],
        unknown_entries(1500, "a parameter of this endpoint")
    );

    assert_eq!(message_count(&app, &path).await, 1);
    let ticket = app.get(&ticket, &app.customer).await;
    assert_eq!(ticket.body["status"], "open", "{}", ticket.text);
}

#[tokio::test]
async fn long_member_names_are_cut_short_and_fill_errors_sooner() {
    let Some(app) = TestApp::spawn(BACKEND).await else {
        return;
    };
    let path = thread(&app).await;

    // 40 names of 20,000 characters, and one of 300 control characters
    // (each sent as `\u0001`, six bytes), which sorts first.
    let long = |n: usize| format!("{n:02}{}", "x".repeat(20_000));
    let mut body = String::from("{\"message\":\"hi\",\"");
    body.push_str(&"\\u0001".repeat(300));
    body.push_str("\":0");
    for n in 0..40 {
        write!(body, ",\"{}\":0", long(n)).unwrap();
    }
    body.push('}');
    let response = post_raw(&app, &path, Some("application/json"), body).await;
    let problem = assert_bounded(&response, 400, "invalid_request");
    let errors = problem["errors"].as_array().unwrap();

    // Pointers take at most 256 bytes as sent, names quoted in a detail 128.
    let control = "\u{1}";
    let mut expected = vec![json!({
        "pointer": format!("/{}…", control.repeat(42)),
        "detail": format!("`{}…` is not a field of this request.", control.repeat(20)),
        "code": "unknown_field",
    })];
    for n in 0..40 {
        let name = long(n);
        expected.push(json!({
            "pointer": format!("/{}…", &name[..252]),
            "detail": format!("`{}…` is not a field of this request.", &name[..125]),
            "code": "unknown_field",
        }));
    }
    // Fewer than 100 such entries fit in errors[]'s 12,288 bytes.
    let listed = errors.len() - 1;
    assert!((10..41).contains(&listed), "{listed}: {}", response.text);
    assert_eq!(errors[..listed], expected[..listed]);
    assert_eq!(
        errors[listed],
        json!({
            "pointer": "",
            "detail": format!(
                "{} more errors were found but are not listed \
                 (errors[] holds at most 100 entries and 12288 bytes).",
                41 - listed
            ),
            "code": "too_many_errors",
        })
    );
    for entry in &errors[..listed] {
        let sent = |member: &str| serde_json::to_string(&entry[member]).unwrap().len() - 2;
        assert!(sent("pointer") <= 256, "{entry}");
    }
    assert_eq!(message_count(&app, &path).await, 1);
}

#[tokio::test]
async fn a_body_that_cannot_be_read_is_refused_in_ticketds_words() {
    let Some(app) = TestApp::spawn(BACKEND).await else {
        return;
    };
    let path = thread(&app).await;
    let head = format!(
        "POST {path} HTTP/1.1\r\nHost: localhost\r\nAuthorization: Bearer {}\r\n\
         Content-Type: application/json\r\n",
        app.customer.token
    );
    #[track_caller]
    fn assert_unreadable(response: Option<RawResponse>) {
        let response = response.expect("a response");
        assert_eq!(response.status, 400, "{}", response.head);
        let problem = response.json();
        assert_eq!(problem["code"], "malformed_json", "{problem}");
        // Once "Failed to buffer the request body: error reading a body
        // from connection", the HTTP library's words.
        assert_eq!(
            problem["detail"],
            "The request body could not be read: the connection ended early or the body's \
             framing (Content-Length or chunked encoding) is broken.",
        );
        assert!(problem.get("errors").is_none(), "{problem}");
    }

    // A chunk size that is not hexadecimal: the HTTP library fails the
    // body halfway through.
    let mut connection = RawConnection::open(&app).await;
    let request = format!(
        "{head}Transfer-Encoding: chunked\r\n\r\n4\r\n{{\"me\r\nzz\r\nssage\": \"hi\"}}\r\n0\r\n\r\n"
    );
    let response = tokio::time::timeout(
        Duration::from_secs(10),
        connection.exchange(request.as_bytes()),
    )
    .await
    .expect("answered at once");
    assert_unreadable(response);

    // A declared length the client never sends: it stops writing (a half
    // close) after 12 bytes of 100.
    let mut connection = RawConnection::open(&app).await;
    let request = format!("{head}Content-Length: 100\r\n\r\n{{\"message\": ");
    connection.send(request.as_bytes()).await.unwrap();
    tokio::io::AsyncWriteExt::shutdown(&mut connection.stream)
        .await
        .unwrap();
    let response = tokio::time::timeout(Duration::from_secs(10), connection.response())
        .await
        .expect("answered at once");
    assert_unreadable(response);

    assert_eq!(message_count(&app, &path).await, 1);
}

#[tokio::test]
async fn an_unknown_route_is_a_not_found_problem() {
    let Some(app) = TestApp::spawn(BACKEND).await else {
        return;
    };

    for (method, path) in [
        (Method::GET, "/api/v2/nope"),
        (Method::GET, "/api/v2/support/ticket"),
        (Method::POST, "/api/v2/support/tickets/1/replies"),
        (Method::GET, "/api/v3/support/tickets"),
        (Method::GET, "/"),
        (Method::DELETE, "/no/such/thing"),
    ] {
        for token in [Some(app.customer.token.as_str()), None] {
            let response = app.request(method.clone(), path, token, None).await;
            assert_eq!(
                response.status,
                StatusCode::NOT_FOUND,
                "{method} {path}: {}",
                response.text
            );
            assert_plain_problem(&response, 404, "not_found", path);
        }
    }
}

#[tokio::test]
async fn a_wrong_method_is_method_not_allowed_with_allow() {
    let Some(app) = TestApp::spawn(BACKEND).await else {
        return;
    };
    let ticket = app.open_ticket(&app.customer, "Methods").await;
    let ticket = format!("{TICKETS}/{}", ticket["id"].as_str().unwrap());

    for (method, path, allowed) in [
        (Method::DELETE, TICKETS.to_owned(), "GET,HEAD,POST"),
        (Method::PUT, format!("{ticket}/messages"), "GET,HEAD,POST"),
        (Method::PATCH, ticket.clone(), "GET,HEAD"),
        (Method::GET, format!("{ticket}/actions/close"), "POST"),
        (Method::POST, "/healthz".to_owned(), "GET,HEAD"),
    ] {
        let response = app
            .request(method.clone(), &path, Some(&app.customer.token), None)
            .await;
        assert_eq!(
            response.status,
            StatusCode::METHOD_NOT_ALLOWED,
            "{method} {path}: {}",
            response.text
        );
        assert_plain_problem(&response, 405, "method_not_allowed", &path);
        let mut allow: Vec<&str> = response.header("allow").split(',').map(str::trim).collect();
        allow.sort_unstable();
        assert_eq!(allow.join(","), allowed, "{method} {path}");
    }
}

#[tokio::test]
async fn problem_types_resolve_to_pages_describing_the_code() {
    let Some(app) = TestApp::spawn(BACKEND).await else {
        return;
    };
    let response = app
        .get(
            &format!("{TICKETS}/{}", TicketId::generate()),
            &app.customer,
        )
        .await;
    let problem = response.assert_problem(404, "not_found");
    assert_eq!(problem["type"], app.url("/errors/not_found"));

    let codes = [
        ("invalid_request", 400),
        ("malformed_json", 400),
        ("ticket_closed", 400),
        ("unauthorized", 401),
        ("forbidden", 403),
        ("not_found", 404),
        ("method_not_allowed", 405),
        ("payload_too_large", 413),
        ("unsupported_media_type", 415),
        ("rate_limit_exceeded", 429),
        ("concurrency_limit_exceeded", 429),
        ("auth_rate_limit_exceeded", 429),
        ("request_body_timeout", 408),
        ("internal_error", 500),
        ("service_unavailable", 503),
        ("request_timeout", 503),
        ("idempotency_key_invalid", 400),
        ("idempotency_key_reused", 422),
        ("idempotency_request_in_progress", 409),
    ];
    for (code, status) in codes {
        let page = app
            .send(app.client.get(app.url(&format!("/errors/{code}"))))
            .await;
        assert_eq!(page.status, StatusCode::OK, "{code}: {}", page.text);
        assert!(
            page.header("content-type").starts_with("text/html"),
            "{code}: {:?}",
            page.headers
        );
        assert!(
            page.text.contains(&format!("<code>{code}</code>")),
            "{code}: {}",
            page.text
        );
        assert!(
            page.text.contains(&status.to_string()),
            "{code}: {}",
            page.text
        );
    }

    let unknown = app
        .send(app.client.get(app.url("/errors/unknown_code")))
        .await;
    assert_plain_problem(&unknown, 404, "not_found", "/errors/unknown_code");
}

#[tokio::test]
async fn requests_over_the_burst_are_rate_limited() {
    let Some(app) = rate_limited_app().await else {
        return;
    };

    // GCRA with a 1 s interval: each allowed request pushes the reset one
    // second further out, until the 3-request bucket is empty.
    for (remaining, reset) in [(2, 1), (1, 2), (0, 3)] {
        let response = app.get(TICKETS, &app.customer).await;
        assert_eq!(response.status, StatusCode::OK, "{}", response.text);
        assert_eq!(rate_headers(&response), (3, remaining, reset));
    }

    let refused = app.get(TICKETS, &app.customer).await;
    assert_plain_problem(&refused, 429, "rate_limit_exceeded", TICKETS);
    assert_eq!(refused.header("retry-after"), "1");
    assert_eq!(rate_headers(&refused), (3, 0, 3));

    let also_refused = app
        .post(
            TICKETS,
            &app.customer,
            &json!({"subject": "Hi", "message": "Hi"}),
        )
        .await;
    assert_plain_problem(&also_refused, 429, "rate_limit_exceeded", TICKETS);
    let retry_after: u64 = also_refused.header("retry-after").parse().unwrap();
    assert!(retry_after >= 1, "{retry_after}");
}

#[tokio::test]
async fn rate_limits_are_per_key() {
    let Some(app) = rate_limited_app().await else {
        return;
    };
    for _ in 0..3 {
        assert_eq!(app.get(TICKETS, &app.customer).await.status, StatusCode::OK);
    }
    app.get(TICKETS, &app.customer)
        .await
        .assert_problem(429, "rate_limit_exceeded");

    let (_, token) = provision_key(&app.store, app.customer.id, Scopes::all()).await;
    let second_key = TestUser {
        token,
        ..app.customer.clone()
    };
    for user in [&app.staff, &app.other_customer, &second_key] {
        let response = app.get(TICKETS, user).await;
        assert_eq!(
            response.status,
            StatusCode::OK,
            "{}: {}",
            user.name,
            response.text
        );
        assert_eq!(rate_headers(&response), (3, 2, 1), "{}", user.name);
    }
    app.get(TICKETS, &app.customer)
        .await
        .assert_problem(429, "rate_limit_exceeded");
}

#[tokio::test]
async fn every_authenticated_response_carries_rate_limit_headers() {
    let Some(app) = rate_limited_app().await else {
        return;
    };
    let unknown_ticket = format!("{TICKETS}/{}", TicketId::generate());

    let not_found = app.get(&unknown_ticket, &app.customer).await;
    not_found.assert_problem(404, "not_found");
    assert_eq!(rate_headers(&not_found), (3, 2, 1));

    let invalid = app
        .post(
            &format!("{unknown_ticket}/messages"),
            &app.customer,
            &json!({}),
        )
        .await;
    invalid.assert_problem(400, "invalid_request");
    assert_eq!(rate_headers(&invalid), (3, 1, 2));

    let (_, token) = provision_key(
        &app.store,
        app.staff.id,
        [Scope::ReadSupport].into_iter().collect(),
    )
    .await;
    let read_only = TestUser {
        token,
        ..app.staff.clone()
    };
    let forbidden = app
        .post(
            TICKETS,
            &read_only,
            &json!({"subject": "Hi", "message": "Hi"}),
        )
        .await;
    forbidden.assert_problem(403, "forbidden");
    assert_eq!(rate_headers(&forbidden), (3, 2, 1));

    let unauthenticated = app.request(Method::GET, TICKETS, None, None).await;
    unauthenticated.assert_problem(401, "unauthorized");
    assert_no_rate_headers(&unauthenticated);

    for path in ["/healthz", "/readyz", "/errors/not_found", "/api/v2/nope"] {
        let response = app
            .request(Method::GET, path, Some(&app.customer.token), None)
            .await;
        assert_no_rate_headers(&response);
    }
    // None of the above counted against the customer's key.
    assert_eq!(
        rate_headers(&app.get(TICKETS, &app.customer).await),
        (3, 0, 3)
    );
}

#[tokio::test]
async fn health_probes_answer_without_authentication() {
    let Some(app) = TestApp::spawn(BACKEND).await else {
        return;
    };

    for (path, body) in [
        ("/healthz", json!({"status": "ok"})),
        ("/readyz", json!({"status": "ready"})),
    ] {
        let response = app.request(Method::GET, path, None, None).await;
        assert_eq!(response.status, StatusCode::OK, "{path}: {}", response.text);
        assert_eq!(response.header("content-type"), "application/json");
        assert_eq!(response.body, body);
        assert_no_rate_headers(&response);
    }
}

#[tokio::test]
async fn every_response_has_a_unique_request_id() {
    let Some(app) = TestApp::spawn(BACKEND).await else {
        return;
    };
    let path = thread(&app).await;

    let responses: Vec<TestResponse> = vec![
        app.request(Method::GET, "/healthz", None, None).await,
        app.request(Method::GET, "/healthz", None, None).await,
        app.request(Method::GET, "/readyz", None, None).await,
        app.request(Method::GET, "/errors/not_found", None, None)
            .await,
        app.get(TICKETS, &app.customer).await,
        app.get(&path, &app.customer).await,
        app.post(&path, &app.customer, &json!({"message": "hello"}))
            .await,
        app.post(&path, &app.customer, &json!({})).await,
        app.request(Method::GET, TICKETS, None, None).await,
        app.request(Method::GET, "/api/v2/nope", None, None).await,
        app.request(Method::DELETE, TICKETS, Some(&app.customer.token), None)
            .await,
        post_raw(&app, &path, Some("text/plain"), "hi").await,
    ];

    let statuses: Vec<u16> = responses.iter().map(|r| r.status.as_u16()).collect();
    assert_eq!(
        statuses,
        [200, 200, 200, 200, 200, 200, 201, 400, 401, 404, 405, 415]
    );
    let mut seen = HashSet::new();
    for response in &responses {
        let id = response.header("x-request-id");
        assert!(
            RequestId::parse(id).is_some(),
            "{id:?} on {}",
            response.status
        );
        assert!(seen.insert(id.to_owned()), "{id} repeated");
        if response.status.is_client_error() {
            assert_eq!(response.body["requestId"], id);
        }
    }
}

#[tokio::test]
async fn problem_members_are_exactly_the_documented_ones() {
    let Some(app) = TestApp::spawn(BACKEND).await else {
        return;
    };
    let path = thread(&app).await;

    let plain = app
        .get(
            &format!("{TICKETS}/{}", TicketId::generate()),
            &app.customer,
        )
        .await;
    let invalid = app
        .post(&path, &app.customer, &json!({"mesage": "hi"}))
        .await;

    let members = |response: &TestResponse| -> Vec<String> {
        let mut keys: Vec<String> = response.body.as_object().unwrap().keys().cloned().collect();
        keys.sort();
        keys
    };
    assert_eq!(
        members(&plain),
        [
            "code",
            "detail",
            "instance",
            "requestId",
            "status",
            "timestamp",
            "title",
            "type"
        ]
    );
    assert_eq!(
        members(&invalid),
        [
            "code",
            "detail",
            "errors",
            "instance",
            "requestId",
            "status",
            "timestamp",
            "title",
            "type"
        ]
    );
    assert_eq!(plain.body["title"], "Not found");
    assert_eq!(invalid.body["title"], "Invalid request");
    assert_eq!(invalid.body["type"], app.url("/errors/invalid_request"));
    assert!(
        invalid.body["errors"]
            .as_array()
            .is_some_and(|errors| errors.len() == 2)
    );
}
