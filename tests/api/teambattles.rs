//! The `teambattles` profile under `/api/v1`: every endpoint, its error
//! envelope and codes, owner-scoped tickets, idempotency as TeamBattles
//! scopes it, images, pagination, and the JSON types the SDK parses.

use reqwest::StatusCode;
use serde_json::{Value, json};

use super::BACKEND;
use super::cli::{Scratch, text};
use crate::helpers::{TestApp, TestOptions, TestResponse, TestUser};

const TICKETS: &str = "/api/v1/tickets";

/// Asserts a TeamBattles error: its status, `error` code, and JSON.
fn assert_error(response: &TestResponse, status: u16, code: &str) {
    assert_eq!(response.status.as_u16(), status, "{}", response.text);
    assert_eq!(response.body["error"], code, "{}", response.text);
    assert!(response.body["details"].is_string(), "{}", response.text);
    assert!(
        response
            .header("content-type")
            .starts_with("application/json"),
        "{}",
        response.header("content-type")
    );
    let members: Vec<&String> = response.body.as_object().unwrap().keys().collect();
    assert_eq!(members, ["details", "error"], "{}", response.text);
}

fn is_time(value: &Value) -> bool {
    value
        .as_str()
        .is_some_and(|text| text.len() == 24 && text.ends_with('Z'))
}

/// Opens a ticket through the profile; its id and number.
async fn open(app: &TestApp, user: &TestUser, subject: &str) -> (String, i64) {
    let created = app
        .post(
            TICKETS,
            user,
            &json!({"subject": subject, "description": "It broke.", "category": "technical_bug"}),
        )
        .await;
    assert_eq!(created.status, StatusCode::OK, "{}", created.text);
    assert_eq!(created.body["success"], true);
    assert!(created.body["ticketNumber"].is_i64(), "{}", created.text);
    assert!(is_time(&created.body["timestamp"]));
    (
        created.body["ticketId"].as_str().unwrap().to_owned(),
        created.body["ticketNumber"].as_i64().unwrap(),
    )
}

fn messages_of(ticket: &str) -> String {
    format!("{TICKETS}/{ticket}/messages")
}

#[tokio::test]
async fn a_customer_opens_replies_and_reads_a_ticket_with_the_sdk_types() {
    let Some(app) = TestApp::spawn(BACKEND).await else {
        return;
    };
    let (ticket, number) = open(&app, &app.customer, "Match did not start").await;
    assert_eq!(number, 1);
    let reply = app
        .post(
            &messages_of(&ticket),
            &app.customer,
            &json!({"content": "Still seeing it \u{e9} \"q\""}),
        )
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
    assert_eq!(reply.body["success"], true);
    let message_id = reply.body["messageId"].as_str().unwrap().to_owned();
    assert!(message_id.starts_with("tmsg_"));
    assert!(is_time(&reply.body["timestamp"]));

    // Staff answer through the canonical API.
    let canonical = format!("/api/v2/support/tickets/{ticket}/messages");
    let answer = app
        .post(&canonical, &app.staff, &json!({"message": "Try again now"}))
        .await;
    assert_eq!(answer.status, StatusCode::CREATED, "{}", answer.text);

    let detail = app.get(&format!("{TICKETS}/{ticket}"), &app.customer).await;
    assert_eq!(detail.status, StatusCode::OK, "{}", detail.text);
    let body = &detail.body;
    assert_eq!(body["id"], ticket.as_str());
    assert_eq!(body["ticketNumber"], 1);
    assert!(body["ticketNumber"].is_i64());
    assert_eq!(body["subject"], "Match did not start");
    assert_eq!(body["description"], "It broke.");
    assert_eq!(body["category"], "technical_bug");
    // A staff reply leaves it awaiting the customer; `normal` is `medium`.
    assert_eq!(body["status"], "awaiting_response");
    assert_eq!(body["priority"], "medium");
    for member in ["createdAt", "updatedAt", "timestamp"] {
        assert!(is_time(&body[member]), "{member}: {body}");
    }
    assert!(body["resolvedAt"].is_null() && body["closedAt"].is_null());
    let thread = body["messages"].as_array().unwrap();
    assert_eq!(thread.len(), 2, "{body}");
    assert_eq!(thread[0]["id"], message_id.as_str());
    assert_eq!(thread[0]["content"], "Still seeing it \u{e9} \"q\"");
    assert_eq!(thread[0]["isOwnMessage"], true);
    assert_eq!(thread[0]["isSystem"], false);
    assert!(is_time(&thread[0]["createdAt"]));
    assert_eq!(thread[1]["isOwnMessage"], false);

    // The canonical API sees the same ticket, the sender the key's user.
    let seen = app.get(&canonical, &app.staff).await;
    assert_eq!(seen.body["data"][1]["sender"], "customer");
    assert_eq!(seen.body["data"][1]["senderName"], "Jane Example");
    assert_eq!(seen.body["data"][1]["body"], "Still seeing it \u{e9} \"q\"");
}

#[tokio::test]
async fn tickets_are_owner_scoped_with_teambattles_codes() {
    let Some(app) = TestApp::spawn(BACKEND).await else {
        return;
    };
    let (ticket, _) = open(&app, &app.customer, "Mine").await;
    let path = format!("{TICKETS}/{ticket}");
    let reply = json!({"content": "me too"});
    // Another customer of the workspace: 404 to read, 403 to write.
    assert_error(
        &app.get(&path, &app.other_customer).await,
        404,
        "TICKET_NOT_FOUND",
    );
    assert_error(
        &app.post(&messages_of(&ticket), &app.other_customer, &reply)
            .await,
        403,
        "TICKET_ACCESS_DENIED",
    );
    // Staff too: this API shows a key only its own tickets.
    assert_error(&app.get(&path, &app.staff).await, 404, "TICKET_NOT_FOUND");
    let staff_list = app.get(TICKETS, &app.staff).await;
    assert_eq!(staff_list.body["data"], json!([]), "{}", staff_list.text);
    // Another workspace learns nothing: 404 both ways.
    for user in [&app.foreign_customer, &app.foreign_staff] {
        assert_error(&app.get(&path, user).await, 404, "TICKET_NOT_FOUND");
        assert_error(
            &app.post(&messages_of(&ticket), user, &reply).await,
            404,
            "TICKET_NOT_FOUND",
        );
    }
    for unknown in ["tkt_01hxa3b4c5d6e7f8g9h0j1k2m3", "nothing", "999"] {
        assert_error(
            &app.get(&format!("{TICKETS}/{unknown}"), &app.customer)
                .await,
            404,
            "TICKET_NOT_FOUND",
        );
    }
    // Nothing was written by the refusals.
    let detail = app.get(&path, &app.customer).await;
    assert_eq!(detail.body["messages"], json!([]));
}

#[tokio::test]
async fn a_closed_ticket_takes_no_reply_and_nothing_is_written() {
    let Some(app) = TestApp::spawn(BACKEND).await else {
        return;
    };
    let (ticket, _) = open(&app, &app.customer, "Done").await;
    let close = app
        .post(
            &format!("/api/v2/support/tickets/{ticket}/actions/close"),
            &app.staff,
            &json!({}),
        )
        .await;
    assert_eq!(close.status, StatusCode::OK, "{}", close.text);
    assert_error(
        &app.post(
            &messages_of(&ticket),
            &app.customer,
            &json!({"content": "hello?"}),
        )
        .await,
        400,
        "TICKET_CLOSED",
    );
    let detail = app.get(&format!("{TICKETS}/{ticket}"), &app.customer).await;
    assert_eq!(detail.body["status"], "closed");
    assert!(is_time(&detail.body["closedAt"]));
    assert_eq!(detail.body["messages"], json!([]));
}

#[tokio::test]
async fn invalid_input_is_a_400_naming_the_field_and_the_limit() {
    let Some(app) = TestApp::spawn(BACKEND).await else {
        return;
    };
    let (ticket, _) = open(&app, &app.customer, "Limits").await;
    let path = messages_of(&ticket);
    let too_long = "x".repeat(2001);
    let cases = [
        (json!({}), "error_invalid_request", "content: "),
        (json!({"content": ""}), "error_invalid_request", "content: "),
        (
            json!({"content": too_long}),
            "error_invalid_request",
            "2000",
        ),
        (json!({"content": 7}), "error_invalid_request", "content: "),
        (
            json!({"content": "ok", "sender": "x"}),
            "error_invalid_request",
            "sender",
        ),
        (
            json!({"content": "ok", "images": vec!["upl_01hxa3b4c5d6e7f8g9h0j1k2m3"; 11]}),
            "INVALID_INPUT",
            "at most 10",
        ),
        (
            json!({"content": "ok", "images": ["upl_01hxa3b4c5d6e7f8g9h0j1k2m3"]}),
            "INVALID_INPUT",
            "images[0]",
        ),
    ];
    for (body, code, mentions) in cases {
        let refused = app.post(&path, &app.customer, &body).await;
        assert_error(&refused, 400, code);
        let details = refused.body["details"].as_str().unwrap();
        assert!(details.contains(mentions), "{body}: {details}");
    }
    let bad_create = [
        (
            json!({"subject": "s", "description": "d", "category": "league"}),
            "INVALID_INPUT",
        ),
        (json!({"subject": "s", "description": "d"}), "INVALID_INPUT"),
        (
            json!({"subject": "x".repeat(151), "description": "d", "category": "other"}),
            "error_invalid_request",
        ),
    ];
    for (body, code) in bad_create {
        assert_error(&app.post(TICKETS, &app.customer, &body).await, 400, code);
    }
    let not_json = app
        .send(
            app.client
                .post(app.url(&path))
                .bearer_auth(&app.customer.token)
                .header("content-type", "application/json")
                .body("{nope"),
        )
        .await;
    assert_error(&not_json, 400, "error_invalid_request");
    let detail = app.get(&format!("{TICKETS}/{ticket}"), &app.customer).await;
    assert_eq!(detail.body["messages"], json!([]));
}

#[tokio::test]
async fn every_refusal_under_the_prefix_is_in_the_teambattles_envelope() {
    let Some(app) = TestApp::spawn(BACKEND).await else {
        return;
    };
    let no_key = app.send(app.client.get(app.url(TICKETS))).await;
    assert_error(&no_key, 401, "error_api_key_required");
    let wrong_key = app
        .send(app.client.get(app.url(TICKETS)).bearer_auth("tb_not_a_key"))
        .await;
    assert_error(&wrong_key, 401, "error_api_key_invalid");
    assert_error(
        &app.get("/api/v1/nothing/here", &app.customer).await,
        404,
        "error_not_found",
    );
    let wrong_method = app
        .send(
            app.client
                .delete(app.url(TICKETS))
                .bearer_auth(&app.customer.token),
        )
        .await;
    assert_error(&wrong_method, 405, "error_method_not_allowed");
    let wrong_type = app
        .send(
            app.client
                .post(app.url(TICKETS))
                .bearer_auth(&app.customer.token)
                .header("content-type", "text/plain")
                .body("{}"),
        )
        .await;
    assert_error(&wrong_type, 415, "error_unsupported_media_type");
    // The request id and rate-limit headers are there, as everywhere.
    assert!(wrong_type.header("x-request-id").starts_with("req_"));
    let listed = app.get(TICKETS, &app.customer).await;
    for name in [
        "x-ratelimit-limit",
        "x-ratelimit-remaining",
        "x-ratelimit-reset",
    ] {
        assert!(!listed.header(name).is_empty(), "{name}");
    }
    // The canonical API keeps its problem documents.
    app.send(app.client.get(app.url("/api/v2/support/tickets")))
        .await
        .assert_problem(401, "unauthorized");
}

#[tokio::test]
async fn lists_page_newest_first_with_cursors() {
    let Some(app) = TestApp::spawn(BACKEND).await else {
        return;
    };
    let mut opened = Vec::new();
    for n in 0..5 {
        opened.push(open(&app, &app.customer, &format!("Ticket {n}")).await.0);
    }
    open(&app, &app.other_customer, "Not Jane's").await;
    let mut seen = Vec::new();
    let mut url = format!("{TICKETS}?limit=2");
    loop {
        let page = app.get(&url, &app.customer).await;
        assert_eq!(page.status, StatusCode::OK, "{}", page.text);
        assert!(is_time(&page.body["timestamp"]));
        for ticket in page.body["data"].as_array().unwrap() {
            assert!(ticket["ticketNumber"].is_i64());
            assert_eq!(ticket["category"], "technical_bug");
            assert!(is_time(&ticket["createdAt"]) && is_time(&ticket["updatedAt"]));
            seen.push(ticket["id"].as_str().unwrap().to_owned());
        }
        if page.body["hasMore"] == false {
            assert!(page.body["nextCursor"].is_null());
            break;
        }
        let cursor = page.body["nextCursor"].as_str().unwrap();
        assert!(!cursor.is_empty());
        url = format!("{TICKETS}?limit=2&cursor={cursor}");
    }
    opened.reverse();
    assert_eq!(seen, opened);
    for (query, code) in [
        ("limit=0", "INVALID_LIMIT"),
        ("limit=101", "INVALID_LIMIT"),
        ("limit=ten", "INVALID_LIMIT"),
        ("cursor=nope", "INVALID_CURSOR"),
    ] {
        assert_error(
            &app.get(&format!("{TICKETS}?{query}"), &app.customer).await,
            400,
            code,
        );
    }
}

/// A reply sent with an `Idempotency-Key`.
async fn keyed(app: &TestApp, path: &str, key: &str, body: &Value) -> TestResponse {
    app.send(
        app.client
            .post(app.url(path))
            .bearer_auth(&app.customer.token)
            .header("idempotency-key", key)
            .json(body),
    )
    .await
}

#[tokio::test]
async fn idempotency_keys_are_scoped_by_key_and_path() {
    let Some(app) = TestApp::spawn(BACKEND).await else {
        return;
    };
    let (first, _) = open(&app, &app.customer, "One").await;
    let (second, _) = open(&app, &app.customer, "Two").await;
    let body = json!({"content": "retry me"});
    let original = keyed(&app, &messages_of(&first), "k-1", &body).await;
    assert_eq!(original.status, StatusCode::OK, "{}", original.text);
    let replayed = keyed(&app, &messages_of(&first), "k-1", &body).await;
    assert_eq!(replayed.status, StatusCode::OK);
    assert_eq!(replayed.body["messageId"], original.body["messageId"]);
    assert_error(
        &keyed(
            &app,
            &messages_of(&first),
            "k-1",
            &json!({"content": "other"}),
        )
        .await,
        409,
        "error_idempotency_key_conflict",
    );
    // The same key on another path is another request.
    let elsewhere = keyed(&app, &messages_of(&second), "k-1", &body).await;
    assert_eq!(elsewhere.status, StatusCode::OK, "{}", elsewhere.text);
    assert_ne!(elsewhere.body["messageId"], original.body["messageId"]);

    // Five at once with one key: one message.
    let path = messages_of(&second);
    let racing = json!({"content": "once only"});
    let answers =
        futures_util::future::join_all((0..5).map(|_| keyed(&app, &path, "k-race", &racing))).await;
    let ok: Vec<&TestResponse> = answers
        .iter()
        .filter(|answer| answer.status == StatusCode::OK)
        .collect();
    assert!(!ok.is_empty());
    for answer in &answers {
        assert!(
            answer.status == StatusCode::OK || answer.status == StatusCode::CONFLICT,
            "{}",
            answer.text
        );
    }
    let again = keyed(&app, &path, "k-race", &racing).await;
    for answer in ok {
        assert_eq!(answer.body["messageId"], again.body["messageId"]);
    }
    let detail = app.get(&format!("{TICKETS}/{second}"), &app.customer).await;
    let contents: Vec<&str> = detail.body["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|message| message["content"].as_str().unwrap())
        .collect();
    assert_eq!(contents, ["retry me", "once only"]);
}

/// A PNG of `len` bytes.
fn png(len: usize) -> Vec<u8> {
    let mut data = b"\x89PNG\r\n\x1a\n".to_vec();
    data.resize(len, 7);
    data
}

/// Mints an upload URL for `user`; the URL.
async fn upload_url(app: &TestApp, user: &TestUser) -> String {
    // As the SDK sends it: no body, no Content-Type.
    let minted = app
        .send(
            app.client
                .post(app.url("/api/v1/uploads/image-url"))
                .bearer_auth(&user.token),
        )
        .await;
    assert_eq!(minted.status, StatusCode::OK, "{}", minted.text);
    let url = minted.body["uploadUrl"].as_str().unwrap().to_owned();
    assert!(
        url.starts_with(&app.url("/api/v1/uploads/signed/")),
        "{url}"
    );
    url
}

async fn send_image(app: &TestApp, url: &str, content_type: &str, data: Vec<u8>) -> TestResponse {
    app.send(
        app.client
            .post(url)
            .header("content-type", content_type)
            .body(data),
    )
    .await
}

#[tokio::test]
async fn images_go_through_a_single_use_url_and_teambattles_rules() {
    let Some(app) = TestApp::spawn(BACKEND).await else {
        return;
    };
    let (ticket, _) = open(&app, &app.customer, "Screenshot").await;
    let url = upload_url(&app, &app.customer).await;
    let stored = send_image(&app, &url, "image/png", png(2048)).await;
    assert_eq!(stored.status, StatusCode::OK, "{}", stored.text);
    let storage_id = stored.body["storageId"].as_str().unwrap().to_owned();
    assert!(storage_id.starts_with("upl_"));
    assert_error(
        &send_image(&app, &url, "image/png", png(2048)).await,
        409,
        "error_upload_url_used",
    );
    let svg = b"<svg xmlns=\"http://www.w3.org/2000/svg\"><script>alert(1)</script></svg>".to_vec();
    for (content_type, data) in [
        ("image/svg+xml", svg),
        ("image/png", png(5_000_001)),
        ("image/png", b"MZ\x90\0 an exe".to_vec()),
        ("application/pdf", b"%PDF-1.7\n".to_vec()),
    ] {
        let url = upload_url(&app, &app.customer).await;
        assert_error(
            &send_image(&app, &url, content_type, data).await,
            400,
            "INVALID_INPUT",
        );
    }
    // Someone else's storage id is not yours to attach.
    let other_url = upload_url(&app, &app.other_customer).await;
    let theirs = send_image(&app, &other_url, "image/png", png(100)).await;
    let theirs = theirs.body["storageId"].as_str().unwrap().to_owned();
    assert_error(
        &app.post(
            &messages_of(&ticket),
            &app.customer,
            &json!({"content": "look", "images": [theirs]}),
        )
        .await,
        400,
        "INVALID_INPUT",
    );
    let reply = app
        .post(
            &messages_of(&ticket),
            &app.customer,
            &json!({"content": "look", "images": [storage_id]}),
        )
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
    let detail = app.get(&format!("{TICKETS}/{ticket}"), &app.customer).await;
    assert_eq!(detail.body["messages"][0]["images"], json!([storage_id]));
    // A new ticket attaches images too, and staff see the file.
    let url = upload_url(&app, &app.customer).await;
    let second = send_image(&app, &url, "image/png", png(300)).await;
    let second = second.body["storageId"].as_str().unwrap().to_owned();
    let created = app
        .post(
            TICKETS,
            &app.customer,
            &json!({"subject": "With image", "description": "see", "category": "other", "images": [second]}),
        )
        .await;
    assert_eq!(created.status, StatusCode::OK, "{}", created.text);
    let thread = app
        .get(
            &format!(
                "/api/v2/support/tickets/{}/messages",
                created.body["ticketId"].as_str().unwrap()
            ),
            &app.staff,
        )
        .await;
    assert_eq!(
        thread.body["data"][0]["attachments"][0]["id"],
        second.as_str()
    );
}

#[tokio::test]
async fn the_profile_has_its_own_openapi_document() {
    let Some(app) = TestApp::spawn(BACKEND).await else {
        return;
    };
    let document = app
        .send(app.client.get(app.url("/api/v1/openapi.json")))
        .await;
    assert_eq!(document.status, StatusCode::OK);
    assert!(
        document.body["openapi"]
            .as_str()
            .unwrap()
            .starts_with("3.1")
    );
    let mut paths: Vec<&String> = document.body["paths"].as_object().unwrap().keys().collect();
    paths.sort();
    assert_eq!(
        paths,
        [
            "/api/v1/openapi.json",
            "/api/v1/tickets",
            "/api/v1/tickets/{ticketId}",
            "/api/v1/tickets/{ticketId}/messages",
            "/api/v1/uploads/image-url",
            "/api/v1/uploads/signed/{token}",
        ]
    );
}

#[tokio::test]
async fn the_published_sdk_works_unchanged_against_ticketd_serve() {
    let Some(python) =
        crate::helpers::python_venv("sdk-venv", "tests/sdk/teambattles-requirements.txt")
    else {
        return;
    };
    let Some(scratch) = Scratch::new(BACKEND) else {
        return;
    };
    let workspace = scratch.create_workspace("Acme Gaming");
    let workspace = text(&workspace["id"]).to_owned();
    let mut keys = Vec::new();
    for name in ["Jane Player", "John Player"] {
        let user = scratch.create_user(&workspace, "customer", name);
        let key = scratch.create_key(text(&user["id"]));
        keys.push(text(&key["token"]).to_owned());
    }
    let mut server = scratch.serve().await;
    let script = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/sdk/teambattles_sdk_check.py"
    );
    let base_url = format!("{}/api/v1", server.base_url);
    let output = tokio::task::spawn_blocking(move || {
        std::process::Command::new(python)
            .arg(script)
            .env("TB_BASE_URL", base_url)
            .env("TB_KEY", &keys[0])
            .env("TB_OTHER_KEY", &keys[1])
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "the SDK's checks failed:\n{stdout}\n{}\nserver log:\n{}",
        String::from_utf8_lossy(&output.stderr),
        server.log()
    );
    assert!(stdout.contains("teambattles-sdk checks passed"), "{stdout}");
    assert_eq!(server.terminate().code(), Some(0), "{}", server.log());
}

#[tokio::test]
async fn a_server_without_the_profile_serves_nothing_under_its_prefix() {
    let Some(app) = TestApp::spawn_with(
        BACKEND,
        TestOptions {
            profiles: Vec::new(),
            ..Default::default()
        },
    )
    .await
    else {
        return;
    };
    // The canonical API's 404, in its own format.
    app.get(TICKETS, &app.customer)
        .await
        .assert_problem(404, "not_found");
    app.send(app.client.get(app.url("/api/v1/openapi.json")))
        .await
        .assert_problem(404, "not_found");
}

#[tokio::test]
async fn limits_and_scopes_are_refused_in_the_teambattles_envelope() {
    let Some(app) = TestApp::spawn_with(
        BACKEND,
        TestOptions {
            rate_limit: ticketd::rate_limit::RatePolicy {
                per_minute: 1,
                burst: 4,
            },
            max_body_bytes: 4096,
            ..Default::default()
        },
    )
    .await
    else {
        return;
    };
    let (ticket, _) = open(&app, &app.customer, "Limits").await;
    // A body over max_body_bytes: 413, before anything is written.
    let large = json!({"content": "x".repeat(5000)});
    assert_error(
        &app.post(&messages_of(&ticket), &app.customer, &large).await,
        413,
        "error_payload_too_large",
    );
    // A key without write:support: 403 in TeamBattles' words.
    let scopes: ticketd::core::access::Scopes = [ticketd::core::access::Scope::ReadSupport]
        .into_iter()
        .collect();
    let (_, read_only) = crate::helpers::provision_key(&app.store, app.customer.id, scopes).await;
    let refused = app
        .send(
            app.client
                .post(app.url(&messages_of(&ticket)))
                .bearer_auth(&read_only)
                .json(&json!({"content": "hi"})),
        )
        .await;
    assert_error(&refused, 403, "error_api_key_permission_denied");
    // Past the key's rate limit: 429 with Retry-After, and nothing written.
    let mut limited = None;
    for _ in 0..10 {
        let answer = app
            .post(
                &messages_of(&ticket),
                &app.customer,
                &json!({"content": "again"}),
            )
            .await;
        if answer.status == StatusCode::TOO_MANY_REQUESTS {
            limited = Some(answer);
            break;
        }
    }
    let limited = limited.expect("the rate limit was never reached");
    assert_error(&limited, 429, "error_api_rate_limited");
    assert!(limited.header("retry-after").parse::<u64>().unwrap() >= 1);
}

#[tokio::test]
async fn a_long_thread_shows_its_latest_replies_within_a_bounded_read() {
    let Some(app) = TestApp::spawn(BACKEND).await else {
        return;
    };
    let (ticket, _) = open(&app, &app.customer, "Long").await;
    let ticket_ref = ticketd::core::ticket::TicketRef::parse(&ticket).unwrap();
    // Through the use cases, to write them fast: 505 replies of 20,000
    // characters (10 MB of text).
    let support = ticketd::service::Support::new(std::sync::Arc::clone(&app.store));
    let actor = ticketd::core::access::Actor {
        workspace_id: app.workspace,
        user_id: app.staff.id,
        role: ticketd::core::access::Role::Staff,
        name: "Sam Staff".into(),
        scope: ticketd::core::access::TicketScope::ByRole,
    };
    for n in 0..505 {
        let draft = ticketd::service::Draft {
            body: ticketd::core::text::MessageBody::parse(format!("{n:05}{}", "x".repeat(19_995)))
                .unwrap(),
            body_format: ticketd::core::message::BodyFormat::Plain,
            encrypted: false,
            attachments: Vec::new(),
            task: None,
        };
        support
            .reply(&actor, ticket_ref, draft, None)
            .await
            .unwrap();
    }
    let detail = app.get(&format!("{TICKETS}/{ticket}"), &app.customer).await;
    assert_eq!(detail.status, StatusCode::OK);
    let thread = detail.body["messages"].as_array().unwrap();
    // 8 MiB of 20,000-character replies: the latest 419.
    assert_eq!(thread.len(), 419);
    assert!(
        thread.last().unwrap()["content"]
            .as_str()
            .unwrap()
            .starts_with("00504")
    );
    assert!(thread[0]["content"].as_str().unwrap().starts_with("00086"));
    assert!(detail.text.len() < 9 * 1024 * 1024);
}
