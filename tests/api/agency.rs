//! The `agency` profile under `/api/v1/client`: the seed's curl example
//! against `ticketd serve`, agency signatures (minted by the CLI, checked
//! on every request, bound to the bearer key's workspace), integer ids,
//! the lifecycle, offset pagination, unread counts, attachments and
//! Daakey's envelope.

use std::process::Command;

use reqwest::StatusCode;
use serde_json::{Value, json};

use super::BACKEND;
use super::attachments::{multipart, png};
use super::cli::{Scratch, keys, text};
use crate::helpers::{TestApp, TestOptions, TestResponse, TestUser};

const TICKETS: &str = "/api/v1/client/tickets";

/// The seed's request example (seed 004), exactly as published.
const SEED_CURL: &str = r#"curl -X POST https://api.daakey.com/api/v1/client/tickets/1/messages \
  -H "Content-Type: application/json" \
  -H "Accept: application/json" \
  -H "Authorization: Bearer {token}" \
  -H "X-Agency-Signature: {signature}" \
  -d '{
    "message": "The technician arrived and fixed the issue. Thank you!",
    "attachments": []
  }'"#;

/// A time inside `data`, to the second, as the seed shows them.
#[track_caller]
fn assert_data_time(value: &Value) {
    let text = value
        .as_str()
        .unwrap_or_else(|| panic!("not a time: {value}"));
    assert_eq!(text.len(), 20, "{text}");
    assert!(text.ends_with('Z') && text.as_bytes()[10] == b'T', "{text}");
}

/// The envelope's `request_id` (a UUID) and `timestamp` (milliseconds).
#[track_caller]
fn assert_envelope_ids(body: &Value) {
    let id = body["request_id"].as_str().unwrap();
    let groups: Vec<usize> = id.split('-').map(str::len).collect();
    assert_eq!(groups, [8, 4, 4, 4, 12], "{id}");
    let timestamp = body["timestamp"].as_str().unwrap();
    assert!(
        timestamp.len() == 24 && timestamp.ends_with('Z'),
        "{timestamp}"
    );
}

/// Asserts a Daakey refusal: its status, message and envelope.
#[track_caller]
fn assert_refused(response: &TestResponse, status: u16, message: &str) {
    assert_eq!(response.status.as_u16(), status, "{}", response.text);
    assert_eq!(response.body["success"], false, "{}", response.text);
    assert_eq!(response.body["message"], message, "{}", response.text);
    assert_eq!(response.body["data"], Value::Null, "{}", response.text);
    assert_envelope_ids(&response.body);
    let expected: &[&str] = if status == 422 {
        &[
            "data",
            "errors",
            "message",
            "request_id",
            "success",
            "timestamp",
        ]
    } else {
        &["data", "message", "request_id", "success", "timestamp"]
    };
    assert_eq!(keys(&response.body), expected, "{}", response.text);
}

/// The client app's requests: bearer key and agency signature.
struct Client<'a> {
    app: &'a TestApp,
    token: String,
    signature: String,
}

impl<'a> Client<'a> {
    async fn of(app: &'a TestApp, user: &TestUser) -> Self {
        Self {
            app,
            token: user.token.clone(),
            signature: app.agency_signature(app.workspace, false).await,
        }
    }

    fn request(&self, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        self.app
            .client
            .request(method, self.app.url(path))
            .bearer_auth(&self.token)
            .header("accept", "application/json")
            .header("x-agency-signature", &self.signature)
    }

    async fn get(&self, path: &str) -> TestResponse {
        self.app
            .send(self.request(reqwest::Method::GET, path))
            .await
    }

    async fn post(&self, path: &str, body: &Value) -> TestResponse {
        self.app
            .send(self.request(reqwest::Method::POST, path).json(body))
            .await
    }

    /// Opens a ticket; its number.
    async fn open(&self, subject: &str) -> i64 {
        let created = self
            .post(
                TICKETS,
                &json!({"subject": subject, "message": "The car will not unlock.", "category": "vehicle_issue"}),
            )
            .await;
        assert_eq!(created.status, StatusCode::CREATED, "{}", created.text);
        created.body["data"]["id"].as_i64().unwrap()
    }

    async fn add_message(&self, ticket: i64, message: &str) -> TestResponse {
        self.post(
            &format!("{TICKETS}/{ticket}/messages"),
            &json!({"message": message, "attachments": []}),
        )
        .await
    }
}

/// The canonical id of the ticket numbered `number`.
async fn canonical_id(app: &TestApp, number: i64) -> String {
    let ticket = app
        .get(&format!("/api/v2/support/tickets/{number}"), &app.staff)
        .await;
    assert_eq!(ticket.status, StatusCode::OK, "{}", ticket.text);
    ticket.body["id"].as_str().unwrap().to_owned()
}

#[tokio::test]
async fn the_seed_example_runs_verbatim_against_ticketd_serve() {
    let curl = Command::new("curl").arg("--version").output();
    assert!(
        curl.is_ok_and(|output| output.status.success()),
        "curl is not installed; this test runs the seed's curl example and needs it"
    );
    let Some(scratch) = Scratch::new(BACKEND) else {
        return;
    };
    let workspace = scratch.json(&[
        "workspace",
        "create",
        "--name",
        "Agency 123",
        "--code",
        "AGENCY123",
    ]);
    let workspace_id = text(&workspace["id"]).to_owned();
    let user = scratch.create_user(&workspace_id, "customer", "John Doe");
    let token = text(&scratch.create_key(text(&user["id"]))["token"]).to_owned();
    let first = scratch.json(&["workspace", "agency-signature", &workspace_id]);
    assert_eq!(first["agencyId"], workspace["numericId"]);
    assert_eq!(first["agencyCode"], "AGENCY123");
    // The same generation until it is rotated.
    let again = scratch.json(&["workspace", "agency-signature", &workspace_id]);
    let rotated = scratch.json(&["workspace", "rotate-signature", &workspace_id]);
    let (old, signature) = (text(&first["signature"]), text(&rotated["signature"]));
    assert_ne!(old, signature);
    let mut server = scratch.serve().await;

    let client = reqwest::Client::new();
    let open = |signature: &str| {
        client
            .post(format!("{}{TICKETS}", server.base_url))
            .bearer_auth(&token)
            .header("x-agency-signature", signature)
            .json(&json!({"subject": "Door will not unlock", "message": "Stuck outside.", "category": "vehicle_issue"}))
            .send()
    };
    // Signatures of the rotated-out generation are refused.
    for stale in [old, text(&again["signature"])] {
        let refused = open(stale).await.unwrap();
        assert_eq!(refused.status(), StatusCode::UNAUTHORIZED);
    }
    let opened = open(signature).await.unwrap();
    assert_eq!(opened.status(), StatusCode::CREATED);
    let opened: Value = opened.json().await.unwrap();
    assert_eq!(opened["data"]["id"], 1);

    let command = format!(
        "{} -s -w '\\n%{{http_code}}'",
        SEED_CURL
            .replace("https://api.daakey.com", &server.base_url)
            .replace("{token}", &token)
            .replace("{signature}", signature)
    );
    let output = Command::new("sh").arg("-c").arg(&command).output().unwrap();
    let stdout = String::from_utf8(output.stdout).unwrap();
    assert!(output.status.success(), "curl failed: {stdout}");
    let (body, status) = stdout.rsplit_once('\n').unwrap();
    assert_eq!(status, "201", "{body}\n{}", server.log());
    let body: Value = serde_json::from_str(body).unwrap();
    assert_eq!(
        keys(&body),
        [
            "data",
            "message",
            "meta",
            "request_id",
            "success",
            "timestamp"
        ]
    );
    assert_eq!(body["success"], true);
    assert_eq!(body["message"], "Message added");
    let data = &body["data"];
    assert_eq!(
        keys(data),
        [
            "attachments",
            "created_at",
            "id",
            "message",
            "sender",
            "sender_name"
        ]
    );
    assert!(data["id"].is_i64(), "{data}");
    assert_eq!(
        data["message"],
        "The technician arrived and fixed the issue. Thank you!"
    );
    assert_eq!(data["sender"], "client");
    assert_eq!(data["sender_name"], "John Doe");
    assert_eq!(data["attachments"], json!([]));
    assert_data_time(&data["created_at"]);
    assert_eq!(
        body["meta"],
        json!({"agency_id": workspace["numericId"], "agency_code": "AGENCY123"})
    );
    assert_envelope_ids(&body);
    assert_eq!(server.terminate().code(), Some(0), "{}", server.log());
}

#[tokio::test]
async fn every_signature_failure_is_the_same_401() {
    // Keys (and their workspace's signature generation) are read anew on
    // every request, so that a rotation shows at once.
    let options = TestOptions {
        api_key_cache: std::time::Duration::ZERO,
        ..TestOptions::default()
    };
    let Some(app) = TestApp::spawn_with(BACKEND, options).await else {
        return;
    };
    let client = Client::of(&app, &app.customer).await;
    let number = client.open("Broken mirror").await;
    let path = format!("{TICKETS}/{number}");
    let genuine = client.signature.clone();
    let foreign = app.agency_signature(app.other_workspace, false).await;
    let (signed_part, _) = genuine.rsplit_once('.').unwrap();
    let long = "v1.".repeat(2000);
    let cases: Vec<(&str, Option<String>)> = vec![
        ("missing", None),
        ("empty", Some(String::new())),
        ("malformed", Some("{signature}".into())),
        (
            "forged",
            Some(format!(
                "{signed_part}.AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"
            )),
        ),
        ("too long", Some(long)),
        // Another agency's genuine signature with this agency's key.
        ("another agency's", Some(foreign.clone())),
    ];
    for (case, signature) in cases {
        let mut request = app
            .client
            .get(app.url(&path))
            .bearer_auth(&app.customer.token);
        if let Some(signature) = signature {
            request = request.header("x-agency-signature", signature);
        }
        let refused = app.send(request).await;
        assert_refused(&refused, 401, "Invalid agency signature.");
        assert!(!refused.text.contains("Other"), "{case}: {}", refused.text);
    }
    // The other agency's key with its own signature sees none of this
    // agency's tickets; with this agency's signature it is refused.
    let foreign_client = Client {
        app: &app,
        token: app.foreign_customer.token.clone(),
        signature: foreign,
    };
    assert_refused(&foreign_client.get(&path).await, 404, "Ticket not found");
    let crossed = Client {
        signature: genuine.clone(),
        ..foreign_client
    };
    assert_refused(&crossed.get(&path).await, 401, "Invalid agency signature.");
    // No key at all: the bearer key is checked first.
    let anonymous = app
        .send(
            app.client
                .get(app.url(&path))
                .header("x-agency-signature", &genuine),
        )
        .await;
    assert_refused(&anonymous, 401, "Unauthenticated.");
    // A rotation revokes the old generation (a server reads keys anew
    // within `api_key_cache_secs`; this one on every request).
    let rotated = app.agency_signature(app.workspace, true).await;
    assert_ne!(rotated, genuine);
    let fresh = Client {
        app: &app,
        token: app.customer.token.clone(),
        signature: rotated,
    };
    assert_eq!(fresh.get(&path).await.status, StatusCode::OK);
    assert_refused(&client.get(&path).await, 401, "Invalid agency signature.");
}

#[tokio::test]
async fn tickets_are_numbered_and_owner_scoped() {
    let Some(app) = TestApp::spawn(BACKEND).await else {
        return;
    };
    let jane = Client::of(&app, &app.customer).await;
    let john = Client::of(&app, &app.other_customer).await;
    let created = jane
        .post(
            TICKETS,
            &json!({
                "subject": "x".repeat(255),
                "message": "Scratch on the door.",
                "category": "damage",
                "priority": "critical",
                "booking_id": 5,
                "attachments": [],
                "unknown_field": "ignored"
            }),
        )
        .await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.text);
    assert_eq!(created.body["message"], "Ticket created successfully");
    let data = &created.body["data"];
    assert_eq!(data["id"], 1);
    let year = &data["created_at"].as_str().unwrap()[..4];
    assert_eq!(data["reference"], format!("TK-{year}-00001"));
    assert_eq!(data["status"], "open");
    assert_eq!(data["priority"], "critical");
    assert_eq!(data["category"], "damage");
    assert_eq!(data["last_message"], "Scratch on the door.");
    assert_eq!(data["unread_count"], 0);
    let shown = jane.get(&format!("{TICKETS}/1")).await;
    assert_eq!(shown.status, StatusCode::OK, "{}", shown.text);
    assert_eq!(shown.body["message"], "Ticket retrieved");
    assert_eq!(shown.body["data"]["booking"], json!({"id": 5}));
    assert_eq!(shown.body["data"]["messages"][0]["sender"], "client");
    // The core sees the same ticket: urgent, with the booking kept.
    let canonical = app.get("/api/v2/support/tickets/1", &app.staff).await;
    assert_eq!(canonical.body["priority"], "urgent", "{}", canonical.text);

    // Another customer's ticket is not found, as is a ticket that does
    // not exist and a path that is not an integer.
    for path in [
        "1",
        "999",
        "abc",
        "1.0",
        "-1",
        "tkt_01hxa3b4c5d6e7f8g9h0j1k2m3",
    ] {
        assert_refused(
            &john.get(&format!("{TICKETS}/{path}")).await,
            404,
            "Ticket not found",
        );
    }
    assert_refused(
        &john.add_message(1, "Mine now?").await,
        404,
        "Ticket not found",
    );
    let listed = john.get(TICKETS).await;
    assert_eq!(listed.body["data"], json!([]), "{}", listed.text);
    assert_eq!(listed.body["meta"]["total"], 0);
}

#[tokio::test]
async fn resolved_tickets_reopen_and_closed_ones_refuse_messages() {
    let Some(app) = TestApp::spawn(BACKEND).await else {
        return;
    };
    let client = Client::of(&app, &app.customer).await;
    let number = client.open("Fuel card").await;
    let id = canonical_id(&app, number).await;
    assert_eq!(
        app.act(&id, "resolve", &app.staff).await.status,
        StatusCode::OK
    );
    let reopened = client.add_message(number, "It happened again.").await;
    assert_eq!(reopened.status, StatusCode::CREATED, "{}", reopened.text);
    let shown = client.get(&format!("{TICKETS}/{number}")).await;
    assert_eq!(shown.body["data"]["status"], "open", "{}", shown.text);

    assert_eq!(
        app.act(&id, "close", &app.staff).await.status,
        StatusCode::OK
    );
    let before = app
        .get(&format!("/api/v2/support/tickets/{id}"), &app.staff)
        .await;
    let refused = client.add_message(number, "Hello?").await;
    assert_refused(&refused, 400, "Cannot add message to closed ticket");
    let after = app
        .get(&format!("/api/v2/support/tickets/{id}"), &app.staff)
        .await;
    assert_eq!(before.body["messageCount"], after.body["messageCount"]);
    assert_eq!(after.body["status"], "closed");
}

#[tokio::test]
async fn statuses_priorities_and_senders_are_daakeys() {
    let Some(app) = TestApp::spawn(BACKEND).await else {
        return;
    };
    let client = Client::of(&app, &app.customer).await;
    let number = client.open("Charging cable").await;
    let id = canonical_id(&app, number).await;
    // Staff answer: the core's awaiting_response is Daakey's in_progress.
    let answered = app
        .reply(&id, &app.staff, "A technician is on the way.")
        .await;
    assert_eq!(answered.status, StatusCode::CREATED, "{}", answered.text);
    let shown = client.get(&format!("{TICKETS}/{number}")).await;
    let data = &shown.body["data"];
    assert_eq!(data["status"], "in_progress", "{}", shown.text);
    assert_eq!(data["messages"][1]["sender"], "support");
    assert_eq!(data["messages"][1]["sender_name"], "Sam Staff");
    let in_progress = client.get(&format!("{TICKETS}?status=in_progress")).await;
    assert_eq!(in_progress.body["meta"]["total"], 1, "{}", in_progress.text);
    let open = client.get(&format!("{TICKETS}?status=open")).await;
    assert_eq!(open.body["meta"]["total"], 0, "{}", open.text);

    let invalid = client
        .get(&format!(
            "{TICKETS}?status=awaiting_response&per_page=101&page=0"
        ))
        .await;
    assert_refused(&invalid, 422, "Validation failed");
    assert_eq!(
        keys(&invalid.body["errors"]),
        ["page", "per_page", "status"],
        "{}",
        invalid.text
    );
}

#[tokio::test]
async fn offset_pagination_reports_its_totals() {
    let Some(app) = TestApp::spawn(BACKEND).await else {
        return;
    };
    let client = Client::of(&app, &app.customer).await;
    for n in 1..=7 {
        client.open(&format!("Ticket {n}")).await;
    }
    let page = client.get(&format!("{TICKETS}?page=2&per_page=3")).await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.text);
    let meta = &page.body["meta"];
    assert_eq!(meta["current_page"], 2);
    assert_eq!(meta["last_page"], 3);
    assert_eq!(meta["per_page"], 3);
    assert_eq!(meta["total"], 7);
    assert!(meta["agency_id"].is_i64());
    // Most recent activity first: page 2 holds tickets 4, 3 and 2.
    let ids: Vec<i64> = page.body["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|row| row["id"].as_i64().unwrap())
        .collect();
    assert_eq!(ids, [4, 3, 2]);
    let last = client.get(&format!("{TICKETS}?page=3&per_page=3")).await;
    assert_eq!(last.body["data"].as_array().unwrap().len(), 1);
    let past = client.get(&format!("{TICKETS}?page=99&per_page=3")).await;
    assert_eq!(past.body["data"], json!([]));
    assert_eq!(past.body["meta"]["total"], 7);
    let default = client.get(TICKETS).await;
    assert_eq!(default.body["meta"]["per_page"], 15);
    assert_eq!(default.body["data"].as_array().unwrap().len(), 7);
}

#[tokio::test]
async fn viewing_a_ticket_marks_its_messages_read() {
    let Some(app) = TestApp::spawn(BACKEND).await else {
        return;
    };
    let client = Client::of(&app, &app.customer).await;
    let number = client.open("Wrong invoice").await;
    let id = canonical_id(&app, number).await;
    let unread = || async {
        let listed = client.get(TICKETS).await;
        assert_eq!(listed.status, StatusCode::OK, "{}", listed.text);
        (
            listed.body["data"][0]["unread_count"].as_i64().unwrap(),
            listed.body["data"][0]["last_message"].clone(),
        )
    };
    // The opener's own message is never unread to them.
    assert_eq!(unread().await.0, 0);
    let long = "é".repeat(150);
    for message in ["We are checking.", long.as_str()] {
        assert_eq!(
            app.reply(&id, &app.staff, message).await.status,
            StatusCode::CREATED
        );
    }
    let (count, last) = unread().await;
    assert_eq!(count, 2);
    assert_eq!(last, format!("{}...", "é".repeat(100)));
    let viewed = client.get(&format!("{TICKETS}/{number}")).await;
    assert_eq!(viewed.status, StatusCode::OK);
    assert_eq!(unread().await.0, 0);
    // Writing in the thread leaves nothing unread either.
    assert_eq!(
        app.reply(&id, &app.staff, "Fixed.").await.status,
        StatusCode::CREATED
    );
    assert_eq!(unread().await.0, 1);
    assert_eq!(
        client.add_message(number, "Thanks!").await.status,
        StatusCode::CREATED
    );
    assert_eq!(unread().await.0, 0);
    // Markers are per user: staff read through the canonical API, not here.
    let staff = Client::of(&app, &app.staff).await;
    assert_eq!(staff.get(TICKETS).await.body["data"], json!([]));
}

#[tokio::test]
async fn message_ids_are_integers_unique_across_tickets() {
    let Some(app) = TestApp::spawn(BACKEND).await else {
        return;
    };
    let client = Client::of(&app, &app.customer).await;
    let mut seen = std::collections::HashSet::new();
    for subject in ["First", "Second"] {
        let number = client.open(subject).await;
        for text in ["One", "Two"] {
            let added = client.add_message(number, text).await;
            assert_eq!(added.status, StatusCode::CREATED, "{}", added.text);
            assert!(seen.insert(added.body["data"]["id"].as_i64().unwrap()));
        }
        let shown = client.get(&format!("{TICKETS}/{number}")).await;
        for message in shown.body["data"]["messages"].as_array().unwrap() {
            assert!(message["id"].as_i64().unwrap() >= 1);
        }
    }
    assert_eq!(seen.len(), 4);
}

/// Uploads `bytes` as multipart `file`.
async fn upload(client: &Client<'_>, name: &str, media_type: &str, bytes: &[u8]) -> TestResponse {
    let (content_type, body) = multipart(name, media_type, bytes);
    client
        .app
        .send(
            client
                .request(reqwest::Method::POST, "/api/v1/client/upload")
                .header("content-type", content_type)
                .body(body),
        )
        .await
}

#[tokio::test]
async fn attachments_are_uploaded_first_and_only_ticketds_urls_count() {
    let Some(app) = TestApp::spawn(BACKEND).await else {
        return;
    };
    let client = Client::of(&app, &app.customer).await;
    let number = client.open("Damage photo").await;
    let image = png(64);
    let uploaded = upload(&client, "damage.png", "image/png", &image).await;
    assert_eq!(uploaded.status, StatusCode::CREATED, "{}", uploaded.text);
    assert_eq!(uploaded.body["message"], "File uploaded");
    let file = &uploaded.body["data"];
    assert!(file["id"].is_i64(), "{file}");
    assert_eq!(file["mime_type"], "image/png");
    assert_eq!(file["original_filename"], "damage.png");
    assert_eq!(file["size"], image.len());
    let url = file["url"].as_str().unwrap().to_owned();
    assert!(
        url.starts_with(&app.url("/api/v1/client/uploads/upl_")),
        "{url}"
    );
    let described = client.get(url.strip_prefix(&app.base_url).unwrap()).await;
    assert_eq!(described.status, StatusCode::OK, "{}", described.text);

    let added = client
        .post(
            &format!("{TICKETS}/{number}/messages"),
            &json!({"message": "See the photo.", "attachments": [url]}),
        )
        .await;
    assert_eq!(added.status, StatusCode::CREATED, "{}", added.text);
    let download = added.body["data"]["attachments"][0].as_str().unwrap();
    let fetched = app
        .send(app.client.get(download).bearer_auth(&app.customer.token))
        .await;
    assert_eq!(fetched.status, StatusCode::OK);

    // Foreign URLs, another user's upload, and the same file twice.
    let other = Client::of(&app, &app.other_customer).await;
    let theirs = upload(&other, "theirs.png", "image/png", &image).await;
    let their_url = theirs.body["data"]["url"].as_str().unwrap().to_owned();
    for (attachments, field) in [
        (json!(["https://evil.example/x.png"]), "attachments.0"),
        (
            json!([format!("{}/api/v1/client/uploads/nope", app.base_url)]),
            "attachments.0",
        ),
        (json!([their_url]), "attachments.0"),
        (json!([url]), "attachments.0"),
        (json!("not a list"), "attachments"),
    ] {
        let refused = client
            .post(
                &format!("{TICKETS}/{number}/messages"),
                &json!({"message": "Again.", "attachments": attachments}),
            )
            .await;
        assert_refused(&refused, 422, "Validation failed");
        assert!(
            refused.body["errors"][field][0]
                .as_str()
                .unwrap()
                .starts_with(&format!("The {field} field ")),
            "{}",
            refused.text
        );
    }
    // A file of a type the API does not take.
    let text_file = upload(&client, "notes.txt", "text/plain", b"hello").await;
    assert_refused(&text_file, 422, "Validation failed");
    assert!(
        text_file.body["errors"]["file"].is_array(),
        "{}",
        text_file.text
    );
}

#[tokio::test]
async fn its_refusals_use_the_envelope() {
    let Some(app) = TestApp::spawn(BACKEND).await else {
        return;
    };
    let client = Client::of(&app, &app.customer).await;
    let number = client.open("Envelope").await;
    let blank = client
        .post(
            &format!("{TICKETS}/{number}/messages"),
            &json!({"message": "  "}),
        )
        .await;
    assert_refused(&blank, 422, "Validation failed");
    assert_eq!(
        blank.body["errors"],
        json!({"message": ["The message field is required."]})
    );
    let missing = client.post(TICKETS, &json!({})).await;
    assert_refused(&missing, 422, "Validation failed");
    assert_eq!(
        keys(&missing.body["errors"]),
        ["category", "message", "subject"]
    );
    let too_long = client
        .post(
            TICKETS,
            &json!({"subject": "x".repeat(256), "message": "m", "category": "billing"}),
        )
        .await;
    assert_refused(&too_long, 422, "Validation failed");
    let read_only = Client {
        token: crate::helpers::provision_key(
            &app.store,
            app.customer.id,
            ticketd::core::access::Scopes::parse_list("read:support").unwrap(),
        )
        .await
        .1,
        ..Client::of(&app, &app.customer).await
    };
    assert_refused(
        &read_only.add_message(number, "Hi").await,
        403,
        "This action is unauthorized.",
    );
    assert_refused(
        &client.get("/api/v1/client/nowhere").await,
        404,
        "Not found",
    );
    let malformed = app
        .send(
            client
                .request(reqwest::Method::POST, TICKETS)
                .header("content-type", "application/json")
                .body("{"),
        )
        .await;
    assert_refused(&malformed, 422, "Validation failed");
}

#[tokio::test]
async fn its_openapi_document_is_served() {
    let Some(app) = TestApp::spawn(BACKEND).await else {
        return;
    };
    let document = app
        .send(app.client.get(app.url("/api/v1/client/openapi.json")))
        .await;
    assert_eq!(document.status, StatusCode::OK);
    assert_eq!(document.body["openapi"], "3.1.0");
    let paths = keys(&document.body["paths"]);
    assert_eq!(
        paths,
        [
            "/api/v1/client/openapi.json",
            "/api/v1/client/tickets",
            "/api/v1/client/tickets/{ticket}",
            "/api/v1/client/tickets/{ticket}/messages",
            "/api/v1/client/upload",
            "/api/v1/client/uploads/{upload}",
        ]
    );
}
