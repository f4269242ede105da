//! The `projects` profile under `/api/projects`: the seed's curl example
//! against `ticketd serve`, UUID ids in either case, human and agent
//! authors, task ids, `since`, and AppHandoff's error schema.

use std::process::Command;

use reqwest::StatusCode;
use serde_json::{Value, json};
use ticketd::core::id::{TicketId, WorkspaceId};

use super::BACKEND;
use super::cli::{Scratch, keys, text};
use crate::helpers::{TestApp, TestOptions, TestResponse, TestUser};

/// The seed's request example (seed 002), exactly as published.
const SEED_CURL: &str = r#"curl --request POST \
--url https://example.com/api/projects/2489E9AD-2EE2-8E00-8EC9-32D5F69181C0/tickets/2489E9AD-2EE2-8E00-8EC9-32D5F69181C0/messages \
--header 'Authorization: Bearer <token>' \
--header 'Content-Type: application/json' \
--data '{ "body": "example", "task_id": "2489E9AD-2EE2-8E00-8EC9-32D5F69181C0", "body_format": "markdown" }'"#;

/// The seed's placeholder id, as it appears in the example.
const SEED_ID: &str = "2489E9AD-2EE2-8E00-8EC9-32D5F69181C0";

/// The UUID form of a `ws_` or `tkt_` id.
fn project_uuid(id: &str) -> String {
    WorkspaceId::parse(id).unwrap().to_uuid()
}

fn ticket_uuid(id: &str) -> String {
    TicketId::parse(id).unwrap().to_uuid()
}

/// Asserts an AppHandoff refusal: its status, code and members.
#[track_caller]
fn assert_refused(response: &TestResponse, status: u16, code: &str) {
    assert_eq!(response.status.as_u16(), status, "{}", response.text);
    assert_eq!(response.body["code"], code, "{}", response.text);
    assert!(response.body["error"].is_string(), "{}", response.text);
}

/// The paths of a validation error's issues, checked against its
/// `fieldErrors`.
#[track_caller]
fn issue_paths(response: &TestResponse) -> Vec<String> {
    assert_refused(response, 400, "VALIDATION_ERROR");
    let issues = response.body["issues"].as_array().unwrap();
    for issue in issues {
        assert_eq!(keys(issue), ["message", "path"]);
        let path = issue["path"].as_str().unwrap();
        assert!(
            response.body["fieldErrors"][path].is_string(),
            "{}",
            response.text
        );
    }
    issues
        .iter()
        .map(|issue| issue["path"].as_str().unwrap().to_owned())
        .collect()
}

/// A ticket of `app.customer`, opened through the canonical API; its UUID.
async fn open(app: &TestApp) -> String {
    let created = app.open_ticket(&app.customer, "Schema mismatch").await;
    ticket_uuid(created["id"].as_str().unwrap())
}

fn messages_path(app: &TestApp, ticket: &str) -> String {
    format!(
        "/api/projects/{}/tickets/{ticket}/messages",
        app.workspace.to_uuid()
    )
}

async fn post(app: &TestApp, user: &TestUser, path: &str, body: Value) -> TestResponse {
    app.post(path, user, &body).await
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
    let workspace = scratch.create_workspace("Handoff");
    let workspace_id = text(&workspace["id"]).to_owned();
    let user = scratch.create_user(&workspace_id, "staff", "Hana Human");
    let token = text(&scratch.create_key(text(&user["id"]))["token"]).to_owned();
    let customer = scratch.create_user(&workspace_id, "customer", "Cory Customer");
    let mut server = scratch.serve().await;
    let (status, ticket) = server
        .call(
            reqwest::Method::POST,
            "/api/v2/support/tickets",
            &token,
            Some(json!({"subject": "Mismatch", "message": "The API and the UI disagree.", "customerId": text(&customer["id"])})),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{ticket}");
    // The seed's placeholders: the project, the ticket and the task, each
    // in the example's upper case.
    let project = project_uuid(&workspace_id).to_uppercase();
    let ticket = ticket_uuid(text(&ticket["id"])).to_uppercase();
    let command = format!(
        "{} -s -w '\\n%{{http_code}}'",
        SEED_CURL
            .replace("https://example.com", &server.base_url)
            .replacen(SEED_ID, &project, 1)
            .replacen(SEED_ID, &ticket, 1)
            .replace("<token>", &token)
    );
    let output = Command::new("sh").arg("-c").arg(&command).output().unwrap();
    let stdout = String::from_utf8(output.stdout).unwrap();
    assert!(output.status.success(), "curl failed: {stdout}");
    let (body, status) = stdout.rsplit_once('\n').unwrap();
    assert_eq!(status, "201", "{body}\n{}", server.log());
    let body: Value = serde_json::from_str(body).unwrap();
    assert_eq!(keys(&body), ["message"]);
    let message = &body["message"];
    assert_eq!(
        keys(message),
        ["author_id", "author_type", "body", "created_at", "id"]
    );
    assert_eq!(message["body"], "example");
    assert_eq!(message["author_type"], "human");
    let author = ticketd::core::id::UserId::parse(text(&user["id"])).unwrap();
    assert_eq!(message["author_id"], author.to_uuid());
    let id = text(&message["id"]);
    assert!(
        ticketd::core::id::MessageId::from_uuid(id).is_some(),
        "{id}"
    );
    assert_eq!(id, id.to_lowercase());
    assert!(ticketd::core::time::Timestamp::parse_rfc3339(text(&message["created_at"])).is_some());
    // The task and the format were kept.
    let (status, listed) = server
        .call(
            reqwest::Method::GET,
            &format!(
                "/api/projects/{project}/tickets/{ticket}/messages?task_id={}",
                SEED_ID.to_lowercase()
            ),
            &token,
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{listed}");
    assert_eq!(listed["messages"][0]["body_format"], "markdown");
    assert_eq!(listed["messages"][0]["task_id"], SEED_ID.to_lowercase());
    assert_eq!(server.terminate().code(), Some(0), "{}", server.log());
}

#[tokio::test]
async fn messages_are_listed_oldest_first_by_task_and_time() {
    let Some(app) = TestApp::spawn(BACKEND).await else {
        return;
    };
    let ticket = open(&app).await;
    let path = messages_path(&app, &ticket);
    let task = "0190a5b6-7c8d-7e9f-8a0b-1c2d3e4f5a6b";
    let human = post(
        &app,
        &app.customer,
        &path,
        json!({"body": "Which field is right?", "task_id": task.to_uppercase()}),
    )
    .await;
    assert_eq!(human.status, StatusCode::CREATED, "{}", human.text);
    assert_eq!(human.body["message"]["author_type"], "human");
    // The later messages are sent in later milliseconds (`since` is strict).
    tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    let agent = post(&app, &app.automation, &path, json!({"body": "The API's, per the schema.", "task_id": task, "body_format": "markdown", "ignored": true})).await;
    assert_eq!(agent.status, StatusCode::CREATED, "{}", agent.text);
    assert_eq!(agent.body["message"]["author_type"], "agent");
    assert_eq!(
        agent.body["message"]["author_id"],
        app.automation.id.to_uuid()
    );
    let staff = post(&app, &app.staff, &path, json!({"body": "Agreed."})).await;
    assert_eq!(staff.body["message"]["author_type"], "human");

    let all = app.get(&path, &app.customer).await;
    assert_eq!(all.status, StatusCode::OK, "{}", all.text);
    let messages = all.body["messages"].as_array().unwrap();
    assert_eq!(messages.len(), 4);
    assert_eq!(
        keys(&messages[1]),
        [
            "author_id",
            "author_type",
            "body",
            "body_format",
            "created_at",
            "id",
            "task_id"
        ]
    );
    assert_eq!(messages[0]["task_id"], Value::Null);
    assert_eq!(messages[3]["body"], "Agreed.");
    let of_task = app
        .get(&format!("{path}?task_id={task}"), &app.customer)
        .await;
    let bodies: Vec<&str> = of_task.body["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|message| message["body"].as_str().unwrap())
        .collect();
    assert_eq!(
        bodies,
        ["Which field is right?", "The API's, per the schema."]
    );
    let since = human.body["message"]["created_at"].as_str().unwrap();
    let later = app
        .get(&format!("{path}?since={since}"), &app.customer)
        .await;
    assert_eq!(later.status, StatusCode::OK, "{}", later.text);
    let later = later.body["messages"].as_array().unwrap();
    // Strictly after: the human's own message is not among them.
    assert!(!later.is_empty());
    for message in later {
        assert!(message["created_at"].as_str().unwrap() > since, "{message}");
        assert_ne!(message["body"], "Which field is right?");
    }
    let one = app
        .get(&format!("{path}?since={since}&limit=1"), &app.customer)
        .await;
    assert_eq!(one.body["messages"].as_array().unwrap().len(), 1);
    // The ticket in upper case is the same ticket.
    let upper = messages_path(&app, &ticket.to_uppercase());
    assert_eq!(app.get(&upper, &app.customer).await.status, StatusCode::OK);
}

#[tokio::test]
async fn lists_longer_than_a_core_page_read_on() {
    let Some(app) = TestApp::spawn(BACKEND).await else {
        return;
    };
    let ticket = open(&app).await;
    let path = messages_path(&app, &ticket);
    for n in 0..130 {
        let posted = post(
            &app,
            &app.staff,
            &path,
            json!({"body": format!("Reply {n}")}),
        )
        .await;
        assert_eq!(posted.status, StatusCode::CREATED);
    }
    let listed = app.get(&format!("{path}?limit=200"), &app.staff).await;
    assert_eq!(listed.body["messages"].as_array().unwrap().len(), 131);
    let default = app.get(&path, &app.staff).await;
    assert_eq!(default.body["messages"].as_array().unwrap().len(), 50);
    let capped = app.get(&format!("{path}?limit=120"), &app.staff).await;
    assert_eq!(capped.body["messages"].as_array().unwrap().len(), 120);
}

#[tokio::test]
async fn bad_input_gets_the_schemas_error_members() {
    let Some(app) = TestApp::spawn(BACKEND).await else {
        return;
    };
    let ticket = open(&app).await;
    let path = messages_path(&app, &ticket);
    let cases = [
        (json!({"body": ""}), "body"),
        (json!({"body": "   "}), "body"),
        (json!({}), "body"),
        (json!({"body": 5}), "body"),
        (json!({"body": "x", "task_id": "not-a-uuid"}), "task_id"),
        (json!({"body": "x", "body_format": "html"}), "body_format"),
    ];
    for (body, field) in cases {
        let refused = post(&app, &app.customer, &path, body.clone()).await;
        assert_eq!(issue_paths(&refused), [field], "{body}: {}", refused.text);
    }
    // Counted as the seed's validator counts: in UTF-16 code units, so
    // 12,501 emoji (25,002 units) are too long, and 12,500 fit.
    let too_long = post(
        &app,
        &app.customer,
        &path,
        json!({"body": "😀".repeat(12_501)}),
    )
    .await;
    assert_eq!(issue_paths(&too_long), ["body"]);
    let fits = post(
        &app,
        &app.customer,
        &path,
        json!({"body": "😀".repeat(12_500)}),
    )
    .await;
    assert_eq!(fits.status, StatusCode::CREATED, "{}", fits.text);
    let plain_long = post(
        &app,
        &app.customer,
        &path,
        json!({"body": "x".repeat(25_001)}),
    )
    .await;
    assert_eq!(issue_paths(&plain_long), ["body"]);
    // Malformed path ids name their parameter.
    let bad_ticket = app
        .get(
            &format!(
                "/api/projects/{}/tickets/nope/messages",
                app.workspace.to_uuid()
            ),
            &app.customer,
        )
        .await;
    assert_eq!(issue_paths(&bad_ticket), ["ticketId"]);
    let bad_project = app
        .get(
            &format!("/api/projects/nope/tickets/{ticket}/messages"),
            &app.customer,
        )
        .await;
    assert_eq!(issue_paths(&bad_project), ["id"]);
    let bad_query = app
        .get(
            &format!("{path}?limit=201&since=yesterday&task_id=x"),
            &app.customer,
        )
        .await;
    let mut paths = issue_paths(&bad_query);
    paths.sort();
    assert_eq!(paths, ["limit", "since", "task_id"]);
    let malformed = app
        .send(
            app.client
                .post(app.url(&path))
                .bearer_auth(&app.customer.token)
                .header("content-type", "application/json")
                .body("{"),
        )
        .await;
    assert_refused(&malformed, 400, "INVALID_JSON");
    let anonymous = app.send(app.client.get(app.url(&path))).await;
    assert_refused(&anonymous, 401, "UNAUTHORIZED");
}

#[tokio::test]
async fn other_projects_and_tickets_are_not_found_and_closed_ones_refuse() {
    let Some(app) = TestApp::spawn(BACKEND).await else {
        return;
    };
    let ticket = open(&app).await;
    let path = messages_path(&app, &ticket);
    // Another project, existing or not, is not found; so is someone
    // else's ticket.
    for project in [
        app.other_workspace.to_uuid(),
        WorkspaceId::generate().to_uuid(),
    ] {
        let elsewhere = app
            .get(
                &format!("/api/projects/{project}/tickets/{ticket}/messages"),
                &app.customer,
            )
            .await;
        assert_refused(&elsewhere, 404, "NOT_FOUND");
    }
    assert_refused(&app.get(&path, &app.other_customer).await, 404, "NOT_FOUND");
    let foreign = app.get(&path, &app.foreign_customer).await;
    assert_refused(&foreign, 404, "NOT_FOUND");
    let unknown = messages_path(&app, &TicketId::generate().to_uuid());
    assert_refused(&app.get(&unknown, &app.customer).await, 404, "NOT_FOUND");

    let id = TicketId::from_uuid(&ticket).unwrap().to_string();
    assert_eq!(
        app.act(&id, "close", &app.staff).await.status,
        StatusCode::OK
    );
    let closed = post(&app, &app.customer, &path, json!({"body": "Hello?"})).await;
    assert_refused(&closed, 400, "TICKET_CLOSED");
}

#[tokio::test]
async fn a_rate_limited_request_says_when_to_retry() {
    let options = TestOptions {
        rate_limit: ticketd::rate_limit::RatePolicy {
            per_minute: 1,
            burst: 1,
        },
        ..TestOptions::default()
    };
    let Some(app) = TestApp::spawn_with(BACKEND, options).await else {
        return;
    };
    let path = messages_path(&app, &TicketId::generate().to_uuid());
    let first = app.get(&path, &app.customer).await;
    assert_refused(&first, 404, "NOT_FOUND");
    let limited = app.get(&path, &app.customer).await;
    assert_refused(&limited, 429, "RATE_LIMITED");
    let retry_after: u64 = limited.header("retry-after").parse().unwrap();
    assert_eq!(limited.body["retryAfter"], retry_after);
    assert!(retry_after >= 1);
}

fn tickets_path(app: &TestApp) -> String {
    format!("/api/projects/{}/tickets", app.workspace.to_uuid())
}

#[tokio::test]
async fn customers_open_tickets_and_fields_ticketd_does_not_keep_are_refused() {
    let Some(app) = TestApp::spawn(BACKEND).await else {
        return;
    };
    let path = tickets_path(&app);
    let new = json!({
        "title": "Login 500s",
        "description": "POST /login answers 500 since the deploy.",
        "request_type": "bug",
        "priority": "high",
        "blocking": true,
        "roles": [],
        "unknown": "ignored"
    });
    let created = post(&app, &app.customer, &path, new.clone()).await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.text);
    let ticket = &created.body["ticket"];
    assert_eq!(
        keys(ticket),
        ["created_at", "id", "roles", "stage", "status"]
    );
    assert_eq!(
        (ticket["status"].as_str(), ticket["stage"].as_str()),
        (Some("open"), Some("backlog"))
    );
    let id = TicketId::from_uuid(ticket["id"].as_str().unwrap()).unwrap();
    // The core keeps the title, description, category and, as urgency,
    // the blocking flag.
    let canonical = app
        .get(&format!("/api/v2/support/tickets/{id}"), &app.staff)
        .await;
    assert_eq!(canonical.body["subject"], "Login 500s");
    assert_eq!(canonical.body["priority"], "urgent");
    assert_eq!(canonical.body["category"], "bug");

    // Staff file no tickets of their own: every ticket has a customer.
    let by_staff = post(&app, &app.staff, &path, new.clone()).await;
    assert_refused(&by_staff, 403, "FORBIDDEN");
    let mut refused = new.clone();
    refused["roles"] = json!(["backend"]);
    refused["evidence"] = json!({"url": "https://example.com"});
    let unkept = post(&app, &app.customer, &path, refused).await;
    let mut paths = issue_paths(&unkept);
    paths.sort();
    assert_eq!(paths, ["evidence", "roles"]);
    let short = post(
        &app,
        &app.customer,
        &path,
        json!({"title": "😀😀", "description": "0123456789", "request_type": "bug", "priority": "low", "blocking": false}),
    )
    .await;
    // Two emoji are four UTF-16 code units: one short of five.
    assert_eq!(issue_paths(&short), ["title"]);
    let missing = post(&app, &app.customer, &path, json!({})).await;
    let mut paths = issue_paths(&missing);
    paths.sort();
    assert_eq!(
        paths,
        [
            "blocking",
            "description",
            "priority",
            "request_type",
            "title"
        ]
    );
}

#[tokio::test]
async fn ticket_lists_filter_search_and_page() {
    let Some(app) = TestApp::spawn(BACKEND).await else {
        return;
    };
    let path = tickets_path(&app);
    for n in 1..=5 {
        let new = json!({"title": format!("Ticket number {n}"), "description": "Something to fix here.", "request_type": "feature_request", "priority": "medium", "blocking": false});
        assert_eq!(
            post(&app, &app.customer, &path, new).await.status,
            StatusCode::CREATED
        );
    }
    let all = app.get(&path, &app.customer).await;
    assert_eq!(all.status, StatusCode::OK, "{}", all.text);
    let tickets = all.body["tickets"].as_array().unwrap();
    assert_eq!(tickets.len(), 5);
    assert_eq!(all.body["next_cursor"], Value::Null);
    let row = &tickets[0];
    assert_eq!(row["number"], 5);
    assert_eq!(row["project_id"], app.workspace.to_uuid());
    assert_eq!(row["stage"], "backlog");
    assert_eq!(row["priority"], "medium");
    assert_eq!(row["request_type"], "feature_request");
    assert!(row["ref"].as_str().unwrap().starts_with("HO-5-"));
    // Pages: two at a time, by offset and by cursor.
    let first = app.get(&format!("{path}?limit=2"), &app.customer).await;
    let cursor = first.body["next_cursor"].as_str().unwrap().to_owned();
    let second = app
        .get(&format!("{path}?limit=2&cursor={cursor}"), &app.customer)
        .await;
    let by_offset = app
        .get(&format!("{path}?limit=2&offset=2"), &app.customer)
        .await;
    assert_eq!(second.body["tickets"], by_offset.body["tickets"]);
    assert_eq!(second.body["tickets"][0]["number"], 3);
    // Search by title, in either case, or by number.
    let found = app
        .get(&format!("{path}?q=NUMBER%203"), &app.customer)
        .await;
    assert_eq!(
        found.body["tickets"].as_array().unwrap().len(),
        1,
        "{}",
        found.text
    );
    let by_number = app.get(&format!("{path}?q=4"), &app.customer).await;
    assert!(
        by_number.body["tickets"]
            .as_array()
            .unwrap()
            .iter()
            .any(|ticket| ticket["number"] == 4)
    );
    // Status: closed tickets apart.
    let closed_id = TicketId::from_uuid(tickets[0]["id"].as_str().unwrap()).unwrap();
    assert_eq!(
        app.act(&closed_id.to_string(), "close", &app.staff)
            .await
            .status,
        StatusCode::OK
    );
    let closed = app
        .get(&format!("{path}?status=closed"), &app.customer)
        .await;
    assert_eq!(closed.body["tickets"].as_array().unwrap().len(), 1);
    assert_eq!(closed.body["tickets"][0]["stage"], "live");
    let open = app.get(&format!("{path}?status=open"), &app.customer).await;
    assert_eq!(open.body["tickets"].as_array().unwrap().len(), 4);
    // Another customer sees none of them; bad parameters are named.
    let theirs = app.get(&path, &app.other_customer).await;
    assert_eq!(theirs.body["tickets"], json!([]));
    let bad = app
        .get(
            &format!("{path}?status=done&limit=0&cursor=zzz&offset=-1"),
            &app.customer,
        )
        .await;
    let mut paths = issue_paths(&bad);
    paths.sort();
    assert_eq!(paths, ["cursor", "limit", "offset", "status"]);
}
