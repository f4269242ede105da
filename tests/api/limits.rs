//! Hard limits and hostile clients: slow and idle connections, oversized
//! heads and bodies, the connection cap, configurable text limits, bytes
//! that are not UTF-8, and text that must come back exactly as sent.

use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::{Value, json};
use ticketd::core::text::TextLimits;
use ticketd::server::ConnectionLimits;

use super::BACKEND;
use crate::helpers::{RawConnection, TestApp, TestOptions, TestResponse, raw_get};

const TICKETS: &str = "/api/v2/support/tickets";

/// A server with these listener limits; `None` when the backend is
/// unavailable here.
async fn app_with(connections: ConnectionLimits) -> Option<TestApp> {
    TestApp::spawn_with(
        BACKEND,
        TestOptions {
            connections,
            ..Default::default()
        },
    )
    .await
}

fn timeouts(header_read_secs: u64, idle_secs: u64) -> ConnectionLimits {
    ConnectionLimits {
        header_read_timeout: Duration::from_secs(header_read_secs),
        idle_timeout: Duration::from_secs(idle_secs),
        ..ConnectionLimits::default()
    }
}

/// Opens a ticket as the main customer; returns the path of its messages.
async fn thread(app: &TestApp) -> String {
    let ticket = app.open_ticket(&app.customer, "Limits").await;
    format!("{TICKETS}/{}/messages", ticket["id"].as_str().unwrap())
}

/// The messages of the thread at `path`, as the customer sees them.
async fn bodies(app: &TestApp, path: &str) -> Vec<String> {
    let response = app.get(path, &app.customer).await;
    assert_eq!(response.status, StatusCode::OK, "{}", response.text);
    response.body["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|message| message["body"].as_str().unwrap().to_owned())
        .collect()
}

/// POSTs raw bytes as JSON to `path` as the main customer.
async fn post_bytes(app: &TestApp, path: &str, body: &[u8]) -> TestResponse {
    app.send(
        app.client
            .post(app.url(path))
            .bearer_auth(&app.customer.token)
            .header("content-type", "application/json")
            .body(body.to_vec()),
    )
    .await
}

/// Asserts a problem whose `errors[]` is exactly `expected` (pointer, code).
#[track_caller]
fn assert_errors(response: &TestResponse, status: u16, code: &str, expected: &[(&str, &str)]) {
    response.assert_problem(status, code);
    let expected: Vec<(String, String)> = expected
        .iter()
        .map(|(pointer, code)| ((*pointer).to_owned(), (*code).to_owned()))
        .collect();
    assert_eq!(response.field_errors(), expected, "{}", response.text);
}

#[tokio::test]
async fn a_request_head_sent_byte_by_byte_is_cut_off_at_the_header_read_timeout() {
    let Some(app) = app_with(timeouts(1, 30)).await else {
        return;
    };
    let mut connection = RawConnection::open(&app).await;
    let (mut reader, mut writer) = connection.stream.split();
    let started = Instant::now();
    let trickle = async {
        use tokio::io::AsyncWriteExt;
        let head = b"GET /healthz HTTP/1.1\r\nHost: localhost\r\nX-Slow: ";
        for byte in head.iter().chain(std::iter::repeat(&b'a')) {
            if writer.write_all(&[*byte]).await.is_err() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    };
    let closed = async {
        use tokio::io::AsyncReadExt;
        let mut received = Vec::new();
        let _ = reader.read_to_end(&mut received).await;
        received
    };
    tokio::select! {
        received = closed => {
            assert!(received.is_empty(), "{:?}", String::from_utf8_lossy(&received));
        }
        // A write failed: the server closed the connection.
        () = trickle => {}
        () = tokio::time::sleep(Duration::from_secs(10)) => {
            panic!("a head still trickling in after 10 s was not cut off")
        }
    }
    let elapsed = started.elapsed();
    assert!(
        elapsed >= Duration::from_millis(900) && elapsed < Duration::from_secs(5),
        "closed after {elapsed:?}; the header-read timeout is 1 s"
    );

    // A connection that never sends a byte is closed just the same.
    let mut silent = RawConnection::open(&app).await;
    let started = Instant::now();
    assert!(
        silent
            .closed_within(Duration::from_secs(10))
            .await
            .is_empty()
    );
    // Measured from after the connect, which may trail the server's accept.
    assert!(started.elapsed() >= Duration::from_millis(500));

    // A prompt client is served.
    let mut prompt = RawConnection::open(&app).await;
    let response = prompt.exchange(&raw_get("/healthz")).await.unwrap();
    assert_eq!(response.status, 200, "{}", response.head);
}

#[tokio::test]
async fn an_idle_keep_alive_connection_is_closed_after_the_idle_timeout() {
    // The idle timeout is the longer one: between requests it, not the
    // header-read timeout, applies.
    let Some(app) = app_with(timeouts(1, 3)).await else {
        return;
    };
    let mut connection = RawConnection::open(&app).await;
    let first = connection.exchange(&raw_get("/healthz")).await.unwrap();
    assert_eq!(first.status, 200, "{}", first.head);

    // Idle for longer than the header-read timeout, less than the idle one.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let second = connection.exchange(&raw_get("/readyz")).await;
    let second = second.expect("a connection idle for less than the idle timeout is kept");
    assert_eq!(second.status, 200, "{}", second.head);
    assert_eq!(second.json(), json!({"status": "ready"}));

    let idle_since = Instant::now();
    assert!(
        connection
            .closed_within(Duration::from_secs(10))
            .await
            .is_empty()
    );
    let idle = idle_since.elapsed();
    // The clock here starts once the response is read, a little after the
    // server's; well past the 1 s header-read timeout is what matters.
    assert!(
        idle >= Duration::from_secs(2) && idle < Duration::from_secs(8),
        "closed after {idle:?} idle; the idle timeout is 3 s"
    );
}

#[tokio::test]
async fn a_request_head_over_max_header_bytes_is_refused_with_431() {
    let Some(app) = app_with(ConnectionLimits {
        max_header_bytes: 2048,
        ..ConnectionLimits::default()
    })
    .await
    else {
        return;
    };
    let head = |padding: usize| {
        format!(
            "GET /healthz HTTP/1.1\r\nHost: localhost\r\nX-Padding: {}\r\n\r\n",
            "p".repeat(padding)
        )
    };
    let fits = head(2048 - head(0).len());
    assert_eq!(fits.len(), 2048);
    let mut connection = RawConnection::open(&app).await;
    let response = connection.exchange(fits.as_bytes()).await.unwrap();
    assert_eq!(response.status, 200, "{}", response.head);

    for too_big in [head(2049 - head(0).len()), head(10_000)] {
        let mut connection = RawConnection::open(&app).await;
        connection.send(too_big.as_bytes()).await.unwrap();
        let sent = connection.closed_within(Duration::from_secs(10)).await;
        let sent = String::from_utf8_lossy(&sent);
        assert!(
            sent.starts_with("HTTP/1.1 431 Request Header Fields Too Large\r\n"),
            "{} bytes: {sent:?}",
            too_big.len()
        );
    }

    // One long header counts the same as many short ones.
    let many: String = (0..100)
        .map(|n| format!("X-Header-{n:03}: 0123456789\r\n"))
        .collect();
    let mut connection = RawConnection::open(&app).await;
    connection
        .send(format!("GET /healthz HTTP/1.1\r\nHost: localhost\r\n{many}\r\n").as_bytes())
        .await
        .unwrap();
    let sent = connection.closed_within(Duration::from_secs(10)).await;
    assert!(
        sent.starts_with(b"HTTP/1.1 431 "),
        "{:?}",
        String::from_utf8_lossy(&sent)
    );
}

#[tokio::test]
async fn connections_past_the_cap_wait_until_one_closes() {
    let Some(app) = app_with(ConnectionLimits {
        max_connections: 4,
        // The four stay open through the test, unauthenticated as they are.
        unauthenticated_idle_timeout: Duration::from_secs(75),
        ..ConnectionLimits::default()
    })
    .await
    else {
        return;
    };
    let mut open = Vec::new();
    for _ in 0..4 {
        let mut connection = RawConnection::open(&app).await;
        let response = connection.exchange(&raw_get("/healthz")).await.unwrap();
        assert_eq!(response.status, 200, "{}", response.head);
        open.push(connection);
    }

    // The kernel completes the fifth connection, but ticketd does not take
    // it while four are open.
    let mut fifth = RawConnection::open(&app).await;
    fifth.send(&raw_get("/healthz")).await.unwrap();
    let waiting = tokio::time::timeout(Duration::from_millis(750), fifth.response()).await;
    assert!(waiting.is_err(), "served past the cap: {waiting:?}");

    // The four are still served meanwhile.
    let again = open[1].exchange(&raw_get("/readyz")).await.unwrap();
    assert_eq!(again.status, 200, "{}", again.head);

    drop(open.remove(0));
    let served = tokio::time::timeout(Duration::from_secs(10), fifth.response())
        .await
        .expect("the waiting connection is served once another closes")
        .unwrap();
    assert_eq!(served.status, 200, "{}", served.head);

    // Still four at most: a sixth waits too.
    let mut sixth = RawConnection::open(&app).await;
    sixth.send(&raw_get("/healthz")).await.unwrap();
    let waiting = tokio::time::timeout(Duration::from_millis(750), sixth.response()).await;
    assert!(waiting.is_err(), "served past the cap: {waiting:?}");
}

#[tokio::test]
async fn stopping_closes_idle_connections_at_once() {
    let Some(app) = app_with(timeouts(60, 60)).await else {
        return;
    };
    let mut idle = RawConnection::open(&app).await;
    let response = idle.exchange(&raw_get("/healthz")).await.unwrap();
    assert_eq!(response.status, 200, "{}", response.head);
    let mut fresh = RawConnection::open(&app).await;

    let started = Instant::now();
    tokio::time::timeout(Duration::from_secs(10), app.stop())
        .await
        .expect("the server stops without waiting out idle connections");
    assert!(started.elapsed() < Duration::from_secs(5));
    assert!(idle.closed_within(Duration::from_secs(1)).await.is_empty());
    assert!(fresh.closed_within(Duration::from_secs(1)).await.is_empty());
}

#[tokio::test]
async fn bodies_over_max_body_bytes_are_payload_too_large() {
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
    let request = |body: &str| {
        let mut request = format!(
            "POST {path} HTTP/1.1\r\nHost: localhost\r\nAuthorization: Bearer {}\r\n\
             Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n",
            app.customer.token
        );
        for chunk in body.as_bytes().chunks(500) {
            request.push_str(&format!("{:x}\r\n", chunk.len()));
            request.push_str(std::str::from_utf8(chunk).unwrap());
            request.push_str("\r\n");
        }
        request.push_str("0\r\n\r\n");
        request
    };

    let mut connection = RawConnection::open(&app).await;
    let fits = json!({"message": "x".repeat(2000)}).to_string();
    assert!(fits.len() <= 2048);
    let response = connection
        .exchange(request(&fits).as_bytes())
        .await
        .unwrap();
    assert_eq!(response.status, 201, "{}", response.head);

    let over = json!({"message": "x".repeat(2100)}).to_string();
    let mut connection = RawConnection::open(&app).await;
    let response = connection
        .exchange(request(&over).as_bytes())
        .await
        .unwrap();
    assert_eq!(response.status, 413, "{}", response.head);
    let problem = response.json();
    assert_eq!(problem["code"], "payload_too_large");
    assert_eq!(problem["status"], 413);
    assert_eq!(problem["instance"], path.as_str());

    // A declared length over the limit is refused before any of the body
    // arrives, not after the request timeout.
    let mut connection = RawConnection::open(&app).await;
    let head = format!(
        "POST {path} HTTP/1.1\r\nHost: localhost\r\nAuthorization: Bearer {}\r\n\
         Content-Type: application/json\r\nContent-Length: 2049\r\n\r\n{{\"message\": ",
        app.customer.token
    );
    let response = tokio::time::timeout(
        Duration::from_secs(10),
        connection.exchange(head.as_bytes()),
    )
    .await
    .expect("answered without waiting for the body")
    .unwrap();
    assert_eq!(response.status, 413, "{}", response.head);
    assert_eq!(response.json()["code"], "payload_too_large");

    assert_eq!(bodies(&app, &path).await.len(), 2);
}

#[tokio::test]
async fn lowered_text_limits_are_enforced_reported_and_documented() {
    let Some(app) = TestApp::spawn_with(
        BACKEND,
        TestOptions {
            text_limits: TextLimits::new(10, 50).unwrap(),
            ..Default::default()
        },
    )
    .await
    else {
        return;
    };
    // Characters are Unicode scalar values: "e" and a combining acute
    // accent are two.
    let subject = "ü".repeat(10);
    let message = "e\u{301}".repeat(25);
    let created = app
        .post(
            TICKETS,
            &app.customer,
            &json!({"subject": subject, "message": message}),
        )
        .await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.text);
    assert_eq!(created.body["subject"], subject.as_str());
    let path = format!(
        "{TICKETS}/{}/messages",
        created.body["id"].as_str().unwrap()
    );
    assert_eq!(bodies(&app, &path).await, [message.as_str()]);

    let longer = app
        .post(
            TICKETS,
            &app.customer,
            &json!({"subject": format!("{subject}!"), "message": format!("{message}!")}),
        )
        .await;
    assert_errors(
        &longer,
        400,
        "invalid_request",
        &[("/subject", "too_long"), ("/message", "too_long")],
    );
    assert_eq!(
        longer.body["errors"][0]["detail"],
        "`subject` must be at most 10 characters long (got 11)."
    );
    assert_eq!(
        longer.body["errors"][1]["detail"],
        "`message` must be at most 50 characters long (got 51)."
    );

    let reply = app
        .post(&path, &app.customer, &json!({"message": "🎉".repeat(51)}))
        .await;
    assert_errors(&reply, 400, "invalid_request", &[("/message", "too_long")]);
    let reply = app
        .post(&path, &app.customer, &json!({"message": "🎉".repeat(50)}))
        .await;
    assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.text);

    let document = app
        .send(app.client.get(app.url("/openapi.json")))
        .await
        .body;
    let schemas = &document["components"]["schemas"];
    assert_eq!(
        schemas["CreateTicketRequest"]["properties"]["subject"]["maxLength"],
        10
    );
    assert_eq!(
        schemas["CreateTicketRequest"]["properties"]["message"]["maxLength"],
        50
    );
    assert_eq!(
        schemas["ReplyRequest"]["properties"]["message"]["maxLength"],
        50
    );
    assert_eq!(
        schemas["ReplyRequest"]["properties"]["message"]["description"],
        "The reply, 1 to 50 characters."
    );
}

#[tokio::test]
async fn the_published_text_limits_are_the_default() {
    let Some(app) = TestApp::spawn(BACKEND).await else {
        return;
    };
    let document = app
        .send(app.client.get(app.url("/openapi.json")))
        .await
        .body;
    let schemas = &document["components"]["schemas"];
    assert_eq!(
        schemas["CreateTicketRequest"]["properties"]["subject"]["maxLength"],
        200
    );
    assert_eq!(
        schemas["ReplyRequest"]["properties"]["message"]["maxLength"],
        25_000
    );
    // The published document, with this deployment as its server.
    let mut without_server = document.clone();
    without_server.as_object_mut().unwrap().remove("servers");
    assert_eq!(without_server.to_string(), {
        let published: Value = serde_json::from_str(ticketd::api::openapi_json()).unwrap();
        published.to_string()
    });

    let path = thread(&app).await;
    let reply = app
        .post(
            &path,
            &app.customer,
            &json!({"message": "x".repeat(25_001)}),
        )
        .await;
    assert_errors(&reply, 400, "invalid_request", &[("/message", "too_long")]);
    assert_eq!(
        reply.body["errors"][0]["detail"],
        "`message` must be at most 25000 characters long (got 25001)."
    );
}

#[tokio::test]
async fn a_body_that_is_not_utf8_is_refused_with_where() {
    let Some(app) = TestApp::spawn(BACKEND).await else {
        return;
    };
    let path = thread(&app).await;

    let cases: [(&[u8], &str, &str); 6] = [
        (
            b"{\"message\": \"caf\xe9\"}",
            "/message",
            "byte 0xE9 at offset 16 is not part of a valid character (in the value at `/message`)",
        ),
        (
            b"{\"encrypted\": false, \"message\": \"ok \xff\xfe\"}",
            "/message",
            "byte 0xFF at offset 36",
        ),
        (
            b"{\"message\": \"\xed\xa0\x80 an encoded surrogate\"}",
            "/message",
            "byte 0xED at offset 13",
        ),
        (
            b"{\"mess\xc3age\": \"hi\"}",
            "",
            "byte 0xC3 at offset 6 is not part of a valid character (in a member name of the body)",
        ),
        (
            b"{\"message\": [\"a\", \"\xc0\xaf\"]}",
            "/message/1",
            "byte 0xC0 at offset 19",
        ),
        (
            b"{\"message\": \"cut \xe2\x82",
            "/message",
            "the body ends at offset 17 in the middle of a character",
        ),
    ];
    for (body, pointer, detail) in cases {
        let response = post_bytes(&app, &path, body).await;
        assert_errors(
            &response,
            400,
            "malformed_json",
            &[(pointer, "invalid_encoding")],
        );
        let problem_detail = response.body["detail"].as_str().unwrap();
        assert!(
            problem_detail.starts_with("The request body is not valid UTF-8: ")
                && problem_detail.contains(detail),
            "{body:?}: {problem_detail}"
        );
        assert_eq!(response.body["errors"][0]["detail"], problem_detail);
    }

    // Creating a ticket: the same, pointing at the subject.
    let response = post_bytes(
        &app,
        TICKETS,
        b"{\"subject\": \"\xa0Hello\", \"message\": \"hi\"}",
    )
    .await;
    assert_errors(
        &response,
        400,
        "malformed_json",
        &[("/subject", "invalid_encoding")],
    );

    // An escaped lone surrogate decodes to no character at all.
    let response = post_bytes(&app, &path, br#"{"message": "\ud800"}"#).await;
    response.assert_problem(400, "malformed_json");

    assert_eq!(bodies(&app, &path).await, ["First message"]);
}

#[tokio::test]
async fn query_strings_and_paths_must_be_percent_encoded_utf8() {
    let Some(app) = TestApp::spawn(BACKEND).await else {
        return;
    };
    let path = thread(&app).await;
    let ticket = path.trim_end_matches("/messages").to_owned();

    for (query, expected) in [
        ("limit=%FF", vec![("/limit", "invalid_encoding")]),
        ("cursor=caf%E9", vec![("/cursor", "invalid_encoding")]),
        ("status=%zz", vec![("/status", "invalid_encoding")]),
        ("status=open%", vec![("/status", "invalid_encoding")]),
        ("%FF=1", vec![("", "invalid_encoding")]),
        (
            "limit=%C0%AF&status=%ED%A0%80",
            vec![
                ("/limit", "invalid_encoding"),
                ("/status", "invalid_encoding"),
            ],
        ),
    ] {
        let response = app.get(&format!("{TICKETS}?{query}"), &app.customer).await;
        assert_errors(&response, 400, "invalid_request", &expected);
        assert_eq!(
            response.body["detail"],
            "The request URL is not valid percent-encoded UTF-8."
        );
    }
    // Valid escapes still decode: `+` and `%20` are spaces, `%6F` is "o".
    let response = app
        .get(
            &format!("{TICKETS}?status=%6Fpen&limit=1%30"),
            &app.customer,
        )
        .await;
    assert_eq!(response.status, StatusCode::OK, "{}", response.text);
    let response = app.get(&format!("{path}?limit=+5"), &app.customer).await;
    assert_errors(
        &response,
        400,
        "invalid_request",
        &[("/limit", "invalid_type")],
    );

    for (url, pointer) in [
        (format!("{TICKETS}/%FF"), "/id"),
        (format!("{TICKETS}/tkt_%zz"), "/id"),
        (format!("{TICKETS}/%E9/messages"), "/id"),
        (format!("{path}/tmsg_%C3"), "/messageId"),
        ("/errors/not_%FFfound".to_owned(), "/code"),
    ] {
        let response = app.get(&url, &app.customer).await;
        assert_errors(
            &response,
            400,
            "invalid_request",
            &[(pointer, "invalid_encoding")],
        );
        assert_eq!(response.body["instance"], url.as_str());
    }
    // Percent-encoded valid UTF-8 that names nothing is still not found.
    app.get(&format!("{TICKETS}/%C3%A9"), &app.customer)
        .await
        .assert_problem(404, "not_found");
    app.get(&format!("{ticket}%31"), &app.customer)
        .await
        .assert_problem(404, "not_found");

    // Raw bytes that are not even ASCII never reach the application; the
    // HTTP layer refuses the request line.
    let mut connection = RawConnection::open(&app).await;
    let response = connection
        .exchange(b"GET /api/v2/support/tickets?status=\xff HTTP/1.1\r\nHost: localhost\r\n\r\n")
        .await;
    let status = response.map(|response| response.status);
    assert_eq!(status, Some(400));

    // A header value that is not text is simply not a credential.
    let mut connection = RawConnection::open(&app).await;
    let response = connection
        .exchange(b"GET /api/v2/support/tickets HTTP/1.1\r\nHost: localhost\r\nAuthorization: Bearer \xff\xfe\r\n\r\n")
        .await
        .unwrap();
    assert_eq!(response.status, 401, "{}", response.head);
    assert_eq!(response.json()["code"], "unauthorized");
}

#[tokio::test]
async fn text_round_trips_exactly_as_sent() {
    let Some(app) = TestApp::spawn(BACKEND).await else {
        return;
    };
    let subject = "\u{200f}  שלום: café vs cafe\u{301} 🇸🇪 \t";
    let message = concat!(
        "\u{feff}  leading spaces, a BOM and trailing ones  \r\n",
        "CRLF\r\nlone CR\rLF\n\n",
        "combining: e\u{301} a\u{308}\u{304} 각 (\u{1100}\u{1161}\u{11a8})\n",
        "emoji: 🎉 👩🏽‍💻 👨‍👩‍👧‍👦 🏳️‍🌈 𝄞\n",
        "RTL: \u{200f}مرحبا\u{200e} \u{202e}reversed\u{202c} \u{2067}isolate\u{2069}\n",
        "separators:\u{2028}\u{2029} nbsp:\u{a0} zwsp:\u{200b} zwj:\u{200d}\n",
        "controls: \u{1}\u{1b}[31m\u{7f} replacement: \u{fffd} private: \u{e000} last: \u{10ffff}\n",
        "   ",
    );
    let created = app
        .post(
            TICKETS,
            &app.customer,
            &json!({"subject": subject, "message": message}),
        )
        .await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.text);
    assert_eq!(created.body["subject"], subject);
    let id = created.body["id"].as_str().unwrap();
    let path = format!("{TICKETS}/{id}/messages");

    // The same text sent with every character escaped arrives the same.
    let escaped: String = message
        .encode_utf16()
        .map(|unit| format!("\\u{unit:04x}"))
        .collect();
    let reply = post_bytes(
        &app,
        &path,
        format!("{{\"message\": \"{escaped}\"}}").as_bytes(),
    )
    .await;
    assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.text);
    assert_eq!(reply.body["body"], message);

    assert_eq!(bodies(&app, &path).await, [message, message]);
    let fetched = app.get(&format!("{TICKETS}/{id}"), &app.customer).await;
    assert_eq!(fetched.body["subject"], subject);
    let listed = app.get(TICKETS, &app.staff).await;
    assert_eq!(listed.body["data"][0]["subject"], subject);
    let message_id = reply.body["id"].as_str().unwrap();
    let one = app
        .get(&format!("{path}/{message_id}"), &app.customer)
        .await;
    assert_eq!(one.body["body"], message);
    assert_eq!(
        one.body["body"].as_str().unwrap().as_bytes(),
        message.as_bytes()
    );
}
