//! Replying to a ticket and reading its messages:
//! `POST|GET /api/v2/support/tickets/{id}/messages` and
//! `GET /api/v2/support/tickets/{id}/messages/{messageId}`.

use std::collections::BTreeSet;

use reqwest::StatusCode;
use serde_json::{Value, json};
use ticketd::core::id::{MessageId, TicketId};
use ticketd::core::time::Timestamp;

use super::BACKEND;
use crate::helpers::{TestApp, TestResponse, TestUser};

fn messages_path(ticket: &str) -> String {
    format!("/api/v2/support/tickets/{ticket}/messages")
}

/// Opens a ticket as the main customer and returns its `tkt_` id.
async fn customer_ticket(app: &TestApp) -> String {
    let ticket = app
        .open_ticket(&app.customer, "Cannot reach my server")
        .await;
    ticket["id"].as_str().unwrap().to_owned()
}

/// Posts `body` as a reply to `ticket`.
async fn post_reply(app: &TestApp, ticket: &str, user: &TestUser, body: &Value) -> TestResponse {
    app.post(&messages_path(ticket), user, body).await
}

/// Posts `body` as a reply and asserts it was created; returns the message.
async fn created_reply(app: &TestApp, ticket: &str, user: &TestUser, body: &Value) -> Value {
    let response = post_reply(app, ticket, user, body).await;
    assert_eq!(response.status, StatusCode::CREATED, "{}", response.text);
    response.body
}

/// The bodies of a ticket's messages, oldest first, as `user` sees them.
async fn message_bodies(app: &TestApp, ticket: &str, user: &TestUser) -> Vec<String> {
    let response = app.get(&messages_path(ticket), user).await;
    assert_eq!(response.status, StatusCode::OK, "{}", response.text);
    response.body["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|message| message["body"].as_str().unwrap().to_owned())
        .collect()
}

/// Asserts a 400 `invalid_request` whose `errors[]` are exactly `expected`
/// (in any order), each with a pointer, a human detail and a code.
#[track_caller]
fn assert_field_errors(response: &TestResponse, expected: &[(&str, &str)]) {
    let problem = response.assert_problem(400, "invalid_request");
    for error in problem["errors"].as_array().unwrap() {
        let keys: BTreeSet<&str> = error
            .as_object()
            .unwrap()
            .keys()
            .map(String::as_str)
            .collect();
        assert_eq!(
            keys,
            BTreeSet::from(["pointer", "detail", "code"]),
            "{error}"
        );
        assert!(
            error["detail"]
                .as_str()
                .is_some_and(|detail| !detail.is_empty()),
            "{error}"
        );
    }
    let mut actual = response.field_errors();
    actual.sort();
    let mut expected: Vec<(String, String)> = expected
        .iter()
        .map(|(pointer, code)| ((*pointer).to_owned(), (*code).to_owned()))
        .collect();
    expected.sort();
    assert_eq!(actual, expected, "{}", response.text);
}

#[tokio::test]
async fn a_reply_is_created_with_the_documented_shape() {
    let Some(app) = TestApp::spawn(BACKEND).await else {
        return;
    };
    let ticket = customer_ticket(&app).await;

    let response = post_reply(
        &app,
        &ticket,
        &app.customer,
        &json!({"message": "Here are the extra details you asked for."}),
    )
    .await;

    assert_eq!(response.status, StatusCode::CREATED, "{}", response.text);
    assert_eq!(response.header("content-type"), "application/json");
    let message = &response.body;
    let keys: BTreeSet<&str> = message
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    assert_eq!(
        keys,
        BTreeSet::from([
            "id",
            "ticketId",
            "sentAt",
            "body",
            "html",
            "sender",
            "senderName",
            "encrypted",
            "attachments",
            "bodyFormat",
        ])
    );
    let id = message["id"].as_str().unwrap();
    assert!(id.starts_with("tmsg_"), "{id}");
    assert!(MessageId::parse(id).is_some(), "{id}");
    assert_eq!(message["ticketId"], ticket);
    assert!(Timestamp::parse_rfc3339(message["sentAt"].as_str().unwrap()).is_some());
    assert_eq!(message["body"], "Here are the extra details you asked for.");
    assert_eq!(
        message["html"],
        "<p>Here are the extra details you asked for.</p>\n"
    );
    assert_eq!(message["sender"], "customer");
    assert_eq!(message["senderName"], "Jane Example");
    assert_eq!(message["encrypted"], false);
    assert_eq!(message["attachments"], json!([]));
    assert_eq!(message["bodyFormat"], "plain");
}

#[tokio::test]
async fn the_sender_is_the_keys_user_for_every_role() {
    let Some(app) = TestApp::spawn(BACKEND).await else {
        return;
    };
    let ticket = customer_ticket(&app).await;

    for (user, role, name) in [
        (&app.customer, "customer", "Jane Example"),
        (&app.staff, "staff", "Sam Staff"),
        (&app.automation, "automation", "Helper Bot"),
    ] {
        let message = created_reply(&app, &ticket, user, &json!({"message": "Hello"})).await;
        assert_eq!(message["sender"], role, "{message}");
        assert_eq!(message["senderName"], name, "{message}");
        assert_eq!(user.name, name);
    }
}

#[tokio::test]
async fn the_location_header_gets_the_same_message() {
    let Some(app) = TestApp::spawn(BACKEND).await else {
        return;
    };
    let ticket = customer_ticket(&app).await;

    let response = post_reply(
        &app,
        &ticket,
        &app.customer,
        &json!({"message": "Where am I?"}),
    )
    .await;

    assert_eq!(response.status, StatusCode::CREATED, "{}", response.text);
    let id = response.body["id"].as_str().unwrap();
    let location = response.header("location");
    assert_eq!(
        location,
        format!("/api/v2/support/tickets/{ticket}/messages/{id}")
    );
    for user in [&app.customer, &app.staff] {
        let fetched = app.get(location, user).await;
        assert_eq!(fetched.status, StatusCode::OK, "{}", fetched.text);
        assert_eq!(fetched.body, response.body);
    }
}

#[tokio::test]
async fn a_ticket_number_works_in_place_of_its_id() {
    let Some(app) = TestApp::spawn(BACKEND).await else {
        return;
    };
    let ticket = app.open_ticket(&app.customer, "By number").await;
    let number = ticket["number"].as_i64().unwrap();

    let response = post_reply(
        &app,
        &number.to_string(),
        &app.customer,
        &json!({"message": "By number"}),
    )
    .await;

    assert_eq!(response.status, StatusCode::CREATED, "{}", response.text);
    assert_eq!(response.body["ticketId"], ticket["id"]);
    let id = response.body["id"].as_str().unwrap();
    assert_eq!(
        response.header("location"),
        format!(
            "/api/v2/support/tickets/{}/messages/{id}",
            ticket["id"].as_str().unwrap()
        )
    );
    let by_number = app
        .get(
            &format!("{}/{id}", messages_path(&number.to_string())),
            &app.customer,
        )
        .await;
    assert_eq!(by_number.status, StatusCode::OK, "{}", by_number.text);
    assert_eq!(by_number.body, response.body);
    assert_eq!(
        message_bodies(&app, &number.to_string(), &app.customer).await,
        ["First message", "By number"]
    );
}

#[tokio::test]
async fn encrypted_replies_are_returned_and_stored_as_encrypted() {
    let Some(app) = TestApp::spawn(BACKEND).await else {
        return;
    };
    let ticket = customer_ticket(&app).await;

    let secret = created_reply(
        &app,
        &ticket,
        &app.customer,
        &json!({"message": "My password is hunter2", "encrypted": true}),
    )
    .await;
    let plain = created_reply(
        &app,
        &ticket,
        &app.customer,
        &json!({"message": "Not secret", "encrypted": false}),
    )
    .await;

    assert_eq!(secret["encrypted"], true);
    assert_eq!(plain["encrypted"], false);
    let fetched = app
        .get(
            &format!(
                "{}/{}",
                messages_path(&ticket),
                secret["id"].as_str().unwrap()
            ),
            &app.staff,
        )
        .await;
    assert_eq!(fetched.status, StatusCode::OK, "{}", fetched.text);
    assert_eq!(fetched.body["encrypted"], true);
    let list = app.get(&messages_path(&ticket), &app.customer).await;
    let flags: Vec<&Value> = list.body["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| &m["encrypted"])
        .collect();
    assert_eq!(flags, [&json!(false), &json!(true), &json!(false)]);
}

#[tokio::test]
async fn markdown_replies_keep_their_body_format() {
    let Some(app) = TestApp::spawn(BACKEND).await else {
        return;
    };
    let ticket = customer_ticket(&app).await;

    let markdown = created_reply(
        &app,
        &ticket,
        &app.staff,
        &json!({"message": "**Fixed**, see `nginx.conf`.", "bodyFormat": "markdown"}),
    )
    .await;
    let plain = created_reply(
        &app,
        &ticket,
        &app.staff,
        &json!({"message": "*not emphasis*", "bodyFormat": "plain"}),
    )
    .await;

    assert_eq!(markdown["bodyFormat"], "markdown");
    assert_eq!(markdown["body"], "**Fixed**, see `nginx.conf`.");
    assert_eq!(plain["bodyFormat"], "plain");
    let fetched = app
        .get(
            &format!(
                "{}/{}",
                messages_path(&ticket),
                markdown["id"].as_str().unwrap()
            ),
            &app.customer,
        )
        .await;
    assert_eq!(fetched.body["bodyFormat"], "markdown");
    let list = app.get(&messages_path(&ticket), &app.customer).await;
    let formats: Vec<&str> = list.body["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["bodyFormat"].as_str().unwrap())
        .collect();
    assert_eq!(formats, ["plain", "markdown", "plain"]);
}

#[tokio::test]
async fn text_is_stored_exactly_as_sent() {
    let Some(app) = TestApp::spawn(BACKEND).await else {
        return;
    };
    let ticket = customer_ticket(&app).await;
    let text = "  Line one\r\nLine two\twith a tab 🎉 café 日本語\n\n  ";

    let message = created_reply(&app, &ticket, &app.customer, &json!({"message": text})).await;

    assert_eq!(message["body"], text);
    let fetched = app
        .get(
            &format!(
                "{}/{}",
                messages_path(&ticket),
                message["id"].as_str().unwrap()
            ),
            &app.customer,
        )
        .await;
    assert_eq!(fetched.body["body"], text);
    assert_eq!(
        message_bodies(&app, &ticket, &app.staff).await,
        ["First message", text]
    );
}

#[tokio::test]
async fn length_limits_count_characters_not_bytes() {
    let Some(app) = TestApp::spawn(BACKEND).await else {
        return;
    };
    let ticket = customer_ticket(&app).await;

    // 25,000 two-byte characters are 50,000 bytes but within the limit.
    let longest = "é".repeat(25_000);
    let message = created_reply(&app, &ticket, &app.customer, &json!({"message": longest})).await;
    assert_eq!(message["body"].as_str().unwrap().chars().count(), 25_000);
    assert_eq!(message["body"], longest);
    created_reply(
        &app,
        &ticket,
        &app.customer,
        &json!({"message": "x".repeat(25_000)}),
    )
    .await;
    created_reply(&app, &ticket, &app.customer, &json!({"message": "x"})).await;

    for too_long in ["x".repeat(25_001), "é".repeat(25_001), "🎉".repeat(25_001)] {
        let response =
            post_reply(&app, &ticket, &app.customer, &json!({"message": too_long})).await;
        assert_field_errors(&response, &[("/message", "too_long")]);
    }
    assert_eq!(message_bodies(&app, &ticket, &app.customer).await.len(), 4);
}

#[tokio::test]
async fn a_nul_character_is_refused() {
    let Some(app) = TestApp::spawn(BACKEND).await else {
        return;
    };
    let ticket = customer_ticket(&app).await;

    for text in ["a\u{0}b", "\u{0}", "trailing\u{0}"] {
        let response = post_reply(&app, &ticket, &app.customer, &json!({"message": text})).await;
        assert_field_errors(&response, &[("/message", "invalid_value")]);
    }
    assert_eq!(
        message_bodies(&app, &ticket, &app.customer).await,
        ["First message"]
    );
}

#[tokio::test]
async fn every_field_error_has_its_code_and_pointer() {
    let Some(app) = TestApp::spawn(BACKEND).await else {
        return;
    };
    let ticket = customer_ticket(&app).await;
    let cases: Vec<(Value, Vec<(&str, &str)>)> = vec![
        (json!({}), vec![("/message", "missing_required")]),
        (
            json!({"message": null}),
            vec![("/message", "missing_required")],
        ),
        (
            json!({"encrypted": true}),
            vec![("/message", "missing_required")],
        ),
        (json!({"message": 5}), vec![("/message", "invalid_type")]),
        (
            json!({"message": ["hi"]}),
            vec![("/message", "invalid_type")],
        ),
        (
            json!({"message": {"text": "hi"}}),
            vec![("/message", "invalid_type")],
        ),
        (json!({"message": ""}), vec![("/message", "too_short")]),
        (
            json!({"message": " \r\n\t "}),
            vec![("/message", "too_short")],
        ),
        (
            json!({"message": "x".repeat(25_001)}),
            vec![("/message", "too_long")],
        ),
        (
            json!({"message": "a\u{0}b"}),
            vec![("/message", "invalid_value")],
        ),
        (
            json!({"message": "hi", "encrypted": "yes"}),
            vec![("/encrypted", "invalid_type")],
        ),
        (
            json!({"message": "hi", "encrypted": 1}),
            vec![("/encrypted", "invalid_type")],
        ),
        (
            json!({"message": "hi", "bodyFormat": "html"}),
            vec![("/bodyFormat", "invalid_value")],
        ),
        (
            json!({"message": "hi", "bodyFormat": "Markdown"}),
            vec![("/bodyFormat", "invalid_value")],
        ),
        (
            json!({"message": "hi", "bodyFormat": true}),
            vec![("/bodyFormat", "invalid_type")],
        ),
        (
            json!({"mesage": "hi"}),
            vec![
                ("/message", "missing_required"),
                ("/mesage", "unknown_field"),
            ],
        ),
        (
            json!({"message": "hi", "sender": "staff"}),
            vec![("/sender", "unknown_field")],
        ),
        (
            json!({"message": "hi", "senderName": "Sam Staff"}),
            vec![("/senderName", "unknown_field")],
        ),
        (
            json!({"message": "hi", "body_format": "markdown"}),
            vec![("/body_format", "unknown_field")],
        ),
        (
            json!({"message": "hi", "a/b~c": 1}),
            vec![("/a~1b~0c", "unknown_field")],
        ),
        (
            json!({"message": "", "encrypted": "no", "bodyFormat": "rtf", "sender": "staff"}),
            vec![
                ("/message", "too_short"),
                ("/encrypted", "invalid_type"),
                ("/bodyFormat", "invalid_value"),
                ("/sender", "unknown_field"),
            ],
        ),
    ];

    for (body, expected) in cases {
        let response = post_reply(&app, &ticket, &app.customer, &body).await;
        assert_eq!(
            response.status,
            StatusCode::BAD_REQUEST,
            "{body}: {}",
            response.text
        );
        assert_field_errors(&response, &expected);
        assert_eq!(response.body["instance"], messages_path(&ticket));
    }
    assert_eq!(
        message_bodies(&app, &ticket, &app.customer).await,
        ["First message"]
    );
}

#[tokio::test]
async fn replying_to_a_ticket_the_caller_cannot_see_is_not_found() {
    let Some(app) = TestApp::spawn(BACKEND).await else {
        return;
    };
    let ticket = app.open_ticket(&app.customer, "Mine").await;
    let id = ticket["id"].as_str().unwrap();
    let number = ticket["number"].as_i64().unwrap().to_string();
    let foreign = app.open_ticket(&app.foreign_customer, "Elsewhere").await;
    let foreign_id = foreign["id"].as_str().unwrap();

    for (user, target) in [
        (&app.other_customer, id),
        (&app.other_customer, number.as_str()),
        (&app.foreign_customer, id),
        (&app.foreign_staff, id),
        (&app.customer, foreign_id),
        (&app.staff, foreign_id),
        (&app.automation, foreign_id),
    ] {
        let response = post_reply(&app, target, user, &json!({"message": "Let me in"})).await;
        assert_eq!(
            response.status,
            StatusCode::NOT_FOUND,
            "{} -> {target}: {}",
            user.name,
            response.text
        );
        response.assert_problem(404, "not_found");
        assert_eq!(response.body["instance"], messages_path(target));
    }

    assert_eq!(
        message_bodies(&app, id, &app.customer).await,
        ["First message"]
    );
    assert_eq!(
        message_bodies(&app, foreign_id, &app.foreign_customer).await,
        ["First message"]
    );
}

#[tokio::test]
async fn replying_to_a_ticket_that_does_not_exist_is_not_found() {
    let Some(app) = TestApp::spawn(BACKEND).await else {
        return;
    };
    customer_ticket(&app).await;
    let unknown = TicketId::generate().to_string();

    for target in [
        unknown.as_str(),
        "999",
        "0",
        "-1",
        "tkt_nope",
        "not-a-ticket",
        "tmsg_01hxa3b4c5d6e7f8g9h0j1k2m3",
    ] {
        let response = post_reply(&app, target, &app.staff, &json!({"message": "Hello?"})).await;
        assert_eq!(
            response.status,
            StatusCode::NOT_FOUND,
            "{target}: {}",
            response.text
        );
        response.assert_problem(404, "not_found");
    }
}

#[tokio::test]
async fn getting_a_message_through_the_wrong_path_is_not_found() {
    let Some(app) = TestApp::spawn(BACKEND).await else {
        return;
    };
    let ticket = customer_ticket(&app).await;
    let other_ticket = customer_ticket(&app).await;
    let message = created_reply(
        &app,
        &ticket,
        &app.customer,
        &json!({"message": "Only here"}),
    )
    .await;
    let message_id = message["id"].as_str().unwrap();
    let unknown_message = MessageId::generate().to_string();
    let unknown_ticket = TicketId::generate().to_string();

    let cases = [
        (&app.customer, other_ticket.as_str(), message_id),
        (&app.customer, unknown_ticket.as_str(), message_id),
        (&app.customer, ticket.as_str(), unknown_message.as_str()),
        (&app.customer, ticket.as_str(), "tmsg_nope"),
        (&app.customer, ticket.as_str(), "nope"),
        (&app.customer, ticket.as_str(), "1"),
        (&app.customer, ticket.as_str(), ticket.as_str()),
        (&app.other_customer, ticket.as_str(), message_id),
        (&app.foreign_staff, ticket.as_str(), message_id),
    ];
    for (user, ticket, message) in cases {
        let path = format!("{}/{message}", messages_path(ticket));
        let response = app.get(&path, user).await;
        assert_eq!(
            response.status,
            StatusCode::NOT_FOUND,
            "{} GET {path}: {}",
            user.name,
            response.text
        );
        response.assert_problem(404, "not_found");
        assert_eq!(response.body["instance"], path);
    }

    let found = app
        .get(
            &format!("{}/{message_id}", messages_path(&ticket)),
            &app.customer,
        )
        .await;
    assert_eq!(found.status, StatusCode::OK, "{}", found.text);
}

#[tokio::test]
async fn messages_are_listed_oldest_first() {
    let Some(app) = TestApp::spawn(BACKEND).await else {
        return;
    };
    let ticket = customer_ticket(&app).await;
    let mut sent = vec![];
    for (user, text) in [
        (&app.customer, "one"),
        (&app.staff, "two"),
        (&app.automation, "three"),
        (&app.customer, "four"),
    ] {
        sent.push(created_reply(&app, &ticket, user, &json!({"message": text})).await);
    }

    let response = app.get(&messages_path(&ticket), &app.customer).await;

    assert_eq!(response.status, StatusCode::OK, "{}", response.text);
    let keys: BTreeSet<&str> = response
        .body
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    assert_eq!(keys, BTreeSet::from(["data", "nextCursor"]));
    assert_eq!(response.body["nextCursor"], Value::Null);
    let data = response.body["data"].as_array().unwrap();
    assert_eq!(data.len(), 5);
    assert_eq!(data[0]["body"], "First message");
    assert_eq!(data[0]["sender"], "customer");
    assert_eq!(&data[1..], &sent[..]);
    let senders: Vec<&str> = data.iter().map(|m| m["sender"].as_str().unwrap()).collect();
    assert_eq!(
        senders,
        ["customer", "customer", "staff", "automation", "customer"]
    );
    let sent_at: Vec<&str> = data.iter().map(|m| m["sentAt"].as_str().unwrap()).collect();
    assert!(sent_at.is_sorted(), "{sent_at:?}");
}
