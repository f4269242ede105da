//! `/api/v2/support/tickets`: opening, reading and listing tickets, and who
//! may see which. The small helpers at the top are shared with the
//! lifecycle and pagination tests.

use reqwest::StatusCode;
use serde_json::{Value, json};
use ticketd::core::id::{TicketId, UserId};
use ticketd::core::time::Timestamp;

use super::BACKEND;
use crate::helpers::{TestApp, TestResponse, TestUser};

/// The ticket collection.
pub const TICKETS: &str = "/api/v2/support/tickets";

/// The path of one ticket, by `tkt_` id or number.
pub fn ticket_path(reference: impl std::fmt::Display) -> String {
    format!("{TICKETS}/{reference}")
}

/// The `id` member of an object.
pub fn id_of(object: &Value) -> &str {
    object["id"].as_str().unwrap()
}

/// The ids of a list response's `data`, in order.
pub fn ids(page: &Value) -> Vec<String> {
    page["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|item| id_of(item).to_owned())
        .collect()
}

/// Asserts the status of `response` and returns its body.
#[track_caller]
pub fn expect(response: TestResponse, status: StatusCode) -> Value {
    assert_eq!(response.status, status, "{}", response.text);
    response.body
}

/// Parses an RFC 3339 timestamp with milliseconds and `Z`, as the API writes them.
#[track_caller]
pub fn timestamp(value: &Value) -> Timestamp {
    let text = value
        .as_str()
        .unwrap_or_else(|| panic!("not a string: {value}"));
    let parsed = Timestamp::parse_rfc3339(text).unwrap_or_else(|| panic!("not RFC 3339: {text}"));
    assert_eq!(parsed.to_string(), text, "not in canonical form");
    parsed
}

/// Waits until the clock (the server runs in this process) has passed
/// `at`, so that the next write gets a later timestamp than `at`.
pub async fn wait_for_clock_after(at: &Value) {
    let at = timestamp(at);
    while Timestamp::now() <= at {
        tokio::task::yield_now().await;
    }
}

/// GET a ticket as `user`, expecting 200.
pub async fn get_ticket(app: &TestApp, reference: &str, user: &TestUser) -> Value {
    expect(app.get(&ticket_path(reference), user).await, StatusCode::OK)
}

/// GET a list page as `user`, expecting 200.
pub async fn list(app: &TestApp, path: &str, user: &TestUser) -> Value {
    expect(app.get(path, user).await, StatusCode::OK)
}

/// Staff or automation open a ticket on `customer`'s behalf.
async fn open_for(
    app: &TestApp,
    agent: &TestUser,
    customer: &UserId,
    subject: &str,
) -> TestResponse {
    let body = json!({"subject": subject, "message": "We noticed a problem.", "customerId": customer.to_string()});
    app.post(TICKETS, agent, &body).await
}

/// The messages of a ticket, oldest first, as `user` sees them.
async fn messages(app: &TestApp, ticket: &str, user: &TestUser) -> Vec<Value> {
    let page = list(app, &format!("{}/messages", ticket_path(ticket)), user).await;
    assert_eq!(page["nextCursor"], Value::Null);
    page["data"].as_array().unwrap().clone()
}

/// The `(pointer, code)` pairs of a 400 `invalid_request`, sorted.
#[track_caller]
pub fn invalid_fields(response: &TestResponse) -> Vec<(String, String)> {
    response.assert_problem(400, "invalid_request");
    let mut errors = response.field_errors();
    errors.sort();
    errors
}

/// Expected `(pointer, code)` pairs, sorted like [`invalid_fields`].
pub fn pairs(expected: &[(&str, &str)]) -> Vec<(String, String)> {
    let mut pairs: Vec<_> = expected
        .iter()
        .map(|(p, c)| ((*p).to_owned(), (*c).to_owned()))
        .collect();
    pairs.sort();
    pairs
}

fn sorted(mut items: Vec<String>) -> Vec<String> {
    items.sort();
    items
}

#[tokio::test]
async fn a_customer_opens_a_ticket_with_defaults() {
    let Some(app) = TestApp::spawn(BACKEND).await else {
        return;
    };
    let before = Timestamp::now();
    let response = app
        .post(
            TICKETS,
            &app.customer,
            &json!({"subject": "Cannot reach my server", "message": "It stopped at noon."}),
        )
        .await;
    let after = Timestamp::now();
    let location = response.header("location").to_owned();
    let ticket = expect(response, StatusCode::CREATED);

    let mut members: Vec<_> = ticket.as_object().unwrap().keys().cloned().collect();
    members.sort();
    let expected = [
        "closedAt",
        "createdAt",
        "customer",
        "id",
        "lastMessageAt",
        "messageCount",
        "number",
        "priority",
        "resolvedAt",
        "status",
        "subject",
        "updatedAt",
    ];
    assert_eq!(members, expected);
    let id = id_of(&ticket);
    assert!(
        TicketId::parse(id).is_some() && id == id.to_ascii_lowercase(),
        "{id}"
    );
    assert_eq!(ticket["number"], 1);
    assert_eq!(ticket["subject"], "Cannot reach my server");
    assert_eq!(ticket["status"], "open");
    assert_eq!(ticket["priority"], "normal");
    assert_eq!(
        ticket["customer"],
        json!({"id": app.customer.id.to_string(), "name": "Jane Example"})
    );
    let created = timestamp(&ticket["createdAt"]);
    assert!(
        before <= created && created <= after,
        "{created} not in [{before}, {after}]"
    );
    assert_eq!(ticket["updatedAt"], ticket["createdAt"]);
    assert_eq!(ticket["lastMessageAt"], ticket["createdAt"]);
    assert_eq!(ticket["messageCount"], 1);
    assert_eq!(ticket["resolvedAt"], Value::Null);
    assert_eq!(ticket["closedAt"], Value::Null);

    let path = ticket_path(id);
    assert_eq!(
        location.strip_prefix(&app.base_url).unwrap_or(&location),
        path
    );
    assert_eq!(get_ticket(&app, id, &app.customer).await, ticket);

    let thread = messages(&app, id, &app.customer).await;
    assert_eq!(thread.len(), 1);
    let first = &thread[0];
    assert!(first["id"].as_str().unwrap().starts_with("tmsg_"));
    assert_eq!(first["ticketId"], id);
    assert_eq!(first["body"], "It stopped at noon.");
    assert_eq!(first["sender"], "customer");
    assert_eq!(first["senderName"], "Jane Example");
    assert_eq!(first["encrypted"], false);
    assert_eq!(first["bodyFormat"], "plain");
    assert_eq!(first["attachments"], json!([]));
    assert_eq!(first["sentAt"], ticket["createdAt"]);
}

#[tokio::test]
async fn a_customer_chooses_priority_format_and_encryption() {
    let Some(app) = TestApp::spawn(BACKEND).await else {
        return;
    };
    let choices = [
        ("low", "markdown", true),
        ("normal", "plain", false),
        ("high", "markdown", false),
        ("urgent", "plain", true),
    ];
    for (priority, format, encrypted) in choices {
        let body = json!({
            "subject": format!("A {priority} problem"),
            "message": "**Details** inside",
            "priority": priority,
            "bodyFormat": format,
            "encrypted": encrypted,
        });
        let ticket = expect(
            app.post(TICKETS, &app.customer, &body).await,
            StatusCode::CREATED,
        );
        assert_eq!(ticket["priority"], priority);
        assert_eq!(ticket["status"], "open");
        let thread = messages(&app, id_of(&ticket), &app.customer).await;
        assert_eq!(thread[0]["bodyFormat"], format);
        assert_eq!(thread[0]["encrypted"], encrypted);
        assert_eq!(thread[0]["body"], "**Details** inside");
    }
}

#[tokio::test]
async fn a_category_is_kept_with_the_ticket_and_checked() {
    let Some(app) = TestApp::spawn(BACKEND).await else {
        return;
    };
    let body = json!({"subject": "Charged twice", "message": "Twice!", "category": "billing"});
    let ticket = expect(
        app.post(TICKETS, &app.customer, &body).await,
        StatusCode::CREATED,
    );
    assert_eq!(ticket["category"], "billing");
    let found = app
        .get(&format!("{TICKETS}/{}", id_of(&ticket)), &app.staff)
        .await;
    assert_eq!(found.body["category"], "billing");
    // A ticket opened without one has none, and says nothing of it.
    let plain = expect(
        app.post(
            TICKETS,
            &app.customer,
            &json!({"subject": "Hi", "message": "Hello"}),
        )
        .await,
        StatusCode::CREATED,
    );
    assert!(plain.get("category").is_none(), "{plain}");
    for bad in [json!("Billing"), json!(""), json!(7), json!("a b")] {
        let refused = app
            .post(
                TICKETS,
                &app.customer,
                &json!({"subject": "Hi", "message": "Hello", "category": bad}),
            )
            .await;
        refused.assert_problem(400, "invalid_request");
        assert_eq!(refused.body["errors"][0]["pointer"], "/category", "{bad}");
    }
}

#[tokio::test]
async fn text_at_the_length_limits_is_kept_exactly() {
    let Some(app) = TestApp::spawn(BACKEND).await else {
        return;
    };
    let cases = [
        ("é".repeat(200), "m".repeat(25_000)),
        ("  Spaces are kept  ".to_owned(), " \n body \n".to_owned()),
    ];
    for (subject, message) in cases {
        let ticket = expect(
            app.post(
                TICKETS,
                &app.customer,
                &json!({"subject": subject, "message": message}),
            )
            .await,
            StatusCode::CREATED,
        );
        assert_eq!(ticket["subject"], subject);
        assert_eq!(
            messages(&app, id_of(&ticket), &app.customer).await[0]["body"],
            message
        );
    }
}

#[tokio::test]
async fn tickets_are_numbered_from_one_in_each_workspace() {
    let Some(app) = TestApp::spawn(BACKEND).await else {
        return;
    };
    let mut numbers = Vec::new();
    for user in [&app.customer, &app.customer, &app.other_customer] {
        numbers.push(app.open_ticket(user, "Numbered").await["number"].clone());
    }
    assert_eq!(numbers, [1, 2, 3]);

    assert_eq!(
        app.open_ticket(&app.foreign_customer, "Elsewhere").await["number"],
        1
    );
    let foreign = expect(
        open_for(
            &app,
            &app.foreign_staff,
            &app.foreign_customer.id,
            "For them",
        )
        .await,
        StatusCode::CREATED,
    );
    assert_eq!(foreign["number"], 2);

    let staff_opened = expect(
        open_for(&app, &app.staff, &app.customer.id, "For Jane").await,
        StatusCode::CREATED,
    );
    assert_eq!(staff_opened["number"], 4);
    let bot_opened = expect(
        open_for(&app, &app.automation, &app.other_customer.id, "For John").await,
        StatusCode::CREATED,
    );
    assert_eq!(bot_opened["number"], 5);
}

#[tokio::test]
async fn staff_and_automation_open_tickets_on_a_customers_behalf() {
    let Some(app) = TestApp::spawn(BACKEND).await else {
        return;
    };
    for (agent, role) in [(&app.staff, "staff"), (&app.automation, "automation")] {
        let response = open_for(&app, agent, &app.customer.id, "Your invoice").await;
        let location = response.header("location").to_owned();
        let ticket = expect(response, StatusCode::CREATED);
        let id = id_of(&ticket);
        assert_eq!(
            location.strip_prefix(&app.base_url).unwrap_or(&location),
            ticket_path(id)
        );
        assert_eq!(ticket["status"], "awaiting_response");
        assert_eq!(ticket["priority"], "normal");
        assert_eq!(
            ticket["customer"],
            json!({"id": app.customer.id.to_string(), "name": "Jane Example"})
        );
        assert_eq!(ticket["messageCount"], 1);

        let first = &messages(&app, id, &app.customer).await[0];
        assert_eq!(first["sender"], role);
        assert_eq!(first["senderName"], agent.name);
        assert_eq!(get_ticket(&app, id, &app.customer).await, ticket);
        app.get(&ticket_path(id), &app.other_customer)
            .await
            .assert_problem(404, "not_found");
    }
    let customers_view = list(&app, TICKETS, &app.customer).await;
    assert_eq!(customers_view["data"].as_array().unwrap().len(), 2);
}

#[tokio::test]
async fn customers_cannot_open_tickets_for_anyone() {
    let Some(app) = TestApp::spawn(BACKEND).await else {
        return;
    };
    for customer in [&app.other_customer.id, &app.customer.id] {
        open_for(&app, &app.customer, customer, "On behalf")
            .await
            .assert_problem(403, "forbidden");
    }
    assert_eq!(list(&app, TICKETS, &app.staff).await["data"], json!([]));
}

#[tokio::test]
async fn agents_must_name_a_customer_of_their_workspace() {
    let Some(app) = TestApp::spawn(BACKEND).await else {
        return;
    };
    let without_customer = json!({"subject": "No customer", "message": "Hello"});
    for agent in [&app.staff, &app.automation] {
        let response = app.post(TICKETS, agent, &without_customer).await;
        assert_eq!(
            invalid_fields(&response),
            pairs(&[("/customerId", "missing_required")])
        );
    }

    let not_customers = [
        (&app.staff, app.foreign_customer.id.to_string()),
        (&app.staff, app.staff.id.to_string()),
        (&app.automation, app.automation.id.to_string()),
        (&app.staff, UserId::generate().to_string()),
        (&app.staff, "usr_xyz".to_owned()),
        (&app.staff, "Jane Example".to_owned()),
        (&app.foreign_staff, app.customer.id.to_string()),
    ];
    for (agent, customer) in not_customers {
        let body = json!({"subject": "Wrong customer", "message": "Hello", "customerId": customer});
        let response = app.post(TICKETS, agent, &body).await;
        assert_eq!(
            invalid_fields(&response),
            pairs(&[("/customerId", "invalid_value")]),
            "{customer}"
        );
    }

    let response = app
        .post(
            TICKETS,
            &app.staff,
            &json!({"subject": "S", "message": "M", "customerId": 42}),
        )
        .await;
    assert_eq!(
        invalid_fields(&response),
        pairs(&[("/customerId", "invalid_type")])
    );

    assert_eq!(list(&app, TICKETS, &app.staff).await["data"], json!([]));
    assert_eq!(
        list(&app, TICKETS, &app.foreign_staff).await["data"],
        json!([])
    );
}

#[tokio::test]
async fn invalid_tickets_are_refused_with_every_field_error() {
    let Some(app) = TestApp::spawn(BACKEND).await else {
        return;
    };
    let ok = |extra: Value| {
        let mut body = json!({"subject": "Subject", "message": "Message"});
        body.as_object_mut()
            .unwrap()
            .extend(extra.as_object().unwrap().clone());
        body
    };
    let cases: Vec<(Value, Vec<(&str, &str)>)> = vec![
        (
            json!({}),
            vec![
                ("/subject", "missing_required"),
                ("/message", "missing_required"),
            ],
        ),
        (
            json!({"message": "Message"}),
            vec![("/subject", "missing_required")],
        ),
        (
            json!({"subject": "Subject"}),
            vec![("/message", "missing_required")],
        ),
        (
            ok(json!({"subject": "s".repeat(201)})),
            vec![("/subject", "too_long")],
        ),
        (
            ok(json!({"subject": "é".repeat(201)})),
            vec![("/subject", "too_long")],
        ),
        (
            ok(json!({"message": "m".repeat(25_001)})),
            vec![("/message", "too_long")],
        ),
        (ok(json!({"subject": ""})), vec![("/subject", "too_short")]),
        (
            ok(json!({"subject": "   "})),
            vec![("/subject", "too_short")],
        ),
        (
            ok(json!({"message": "\n\t "})),
            vec![("/message", "too_short")],
        ),
        (
            ok(json!({"subject": 5})),
            vec![("/subject", "invalid_type")],
        ),
        (
            ok(json!({"message": {"text": "hi"}})),
            vec![("/message", "invalid_type")],
        ),
        (
            ok(json!({"encrypted": "yes"})),
            vec![("/encrypted", "invalid_type")],
        ),
        (
            ok(json!({"priority": 1})),
            vec![("/priority", "invalid_type")],
        ),
        (
            ok(json!({"bodyFormat": true})),
            vec![("/bodyFormat", "invalid_type")],
        ),
        (
            ok(json!({"priority": "critical"})),
            vec![("/priority", "invalid_value")],
        ),
        (
            ok(json!({"priority": "URGENT"})),
            vec![("/priority", "invalid_value")],
        ),
        (
            ok(json!({"bodyFormat": "html"})),
            vec![("/bodyFormat", "invalid_value")],
        ),
        (
            ok(json!({"sender": "staff"})),
            vec![("/sender", "unknown_field")],
        ),
        (
            ok(json!({"status": "closed"})),
            vec![("/status", "unknown_field")],
        ),
        (
            json!({"subject": 1, "mesage": "typo", "priority": "soon", "encrypted": 0}),
            vec![
                ("/subject", "invalid_type"),
                ("/message", "missing_required"),
                ("/priority", "invalid_value"),
                ("/encrypted", "invalid_type"),
                ("/mesage", "unknown_field"),
            ],
        ),
    ];
    for (body, expected) in cases {
        let response = app.post(TICKETS, &app.customer, &body).await;
        let shown: String = body.to_string().chars().take(120).collect();
        assert_eq!(invalid_fields(&response), pairs(&expected), "{shown}");
    }

    for not_an_object in [json!(["Subject", "Message"]), json!("Subject"), json!(null)] {
        let response = app.post(TICKETS, &app.customer, &not_an_object).await;
        assert_eq!(
            invalid_fields(&response),
            pairs(&[("", "invalid_type")]),
            "{not_an_object}"
        );
    }
    assert_eq!(list(&app, TICKETS, &app.customer).await["data"], json!([]));
}

#[tokio::test]
async fn a_ticket_is_found_by_id_and_by_number() {
    let Some(app) = TestApp::spawn(BACKEND).await else {
        return;
    };
    let first = app.open_ticket(&app.customer, "First").await;
    let second = app.open_ticket(&app.customer, "Second").await;
    for ticket in [&first, &second] {
        assert_eq!(
            get_ticket(&app, id_of(ticket), &app.customer).await,
            *ticket
        );
        assert_eq!(
            get_ticket(&app, &ticket["number"].to_string(), &app.customer).await,
            *ticket
        );
        assert_eq!(
            get_ticket(&app, &ticket["number"].to_string(), &app.staff).await,
            *ticket
        );
    }
}

#[tokio::test]
async fn only_the_owner_and_agents_of_the_workspace_see_a_ticket() {
    let Some(app) = TestApp::spawn(BACKEND).await else {
        return;
    };
    let ticket = app.open_ticket(&app.customer, "Mine").await;
    let foreign = app.open_ticket(&app.foreign_customer, "Theirs").await;
    let (id, foreign_id) = (id_of(&ticket), id_of(&foreign));
    assert_eq!(
        (&ticket["number"], &foreign["number"]),
        (&json!(1), &json!(1))
    );

    for user in [&app.customer, &app.staff, &app.automation] {
        for reference in [id, "1"] {
            assert_eq!(
                get_ticket(&app, reference, user).await,
                ticket,
                "{} reading {reference}",
                user.name
            );
        }
        assert_eq!(messages(&app, id, user).await.len(), 1);
        app.get(&ticket_path(foreign_id), user)
            .await
            .assert_problem(404, "not_found");
    }
    for user in [
        &app.other_customer,
        &app.foreign_customer,
        &app.foreign_staff,
    ] {
        app.get(&ticket_path(id), user)
            .await
            .assert_problem(404, "not_found");
        app.get(&format!("{}/messages", ticket_path(id)), user)
            .await
            .assert_problem(404, "not_found");
        app.reply(id, user, "Let me in")
            .await
            .assert_problem(404, "not_found");
    }
    // A number names a ticket of the caller's own workspace.
    app.get(&ticket_path(1), &app.other_customer)
        .await
        .assert_problem(404, "not_found");
    for user in [&app.foreign_customer, &app.foreign_staff] {
        assert_eq!(get_ticket(&app, "1", user).await, foreign);
    }
    assert_eq!(
        get_ticket(&app, id, &app.customer).await,
        ticket,
        "refused replies changed nothing"
    );
}

#[tokio::test]
async fn malformed_and_unknown_ticket_ids_are_not_found() {
    let Some(app) = TestApp::spawn(BACKEND).await else {
        return;
    };
    let ticket = app.open_ticket(&app.customer, "Exists").await;
    let real = id_of(&ticket);
    let unknown_id = TicketId::generate().to_string();
    let references = [
        "tkt_xyz",
        "0",
        "-1",
        "+1",
        "1.5",
        "abc",
        "tkt_",
        "99999999999999999999",
        "999999999999999999",
        "2",
        "tkt_uuuuuuuuuuuuuuuuuuuuuuuuuu",
        "tkt_zzzzzzzzzzzzzzzzzzzzzzzzzz",
        &real[..real.len() - 1],
        &format!("{real}0"),
        &real[4..],
        &unknown_id,
    ];
    for reference in references {
        for user in [&app.customer, &app.staff] {
            app.get(&ticket_path(reference), user)
                .await
                .assert_problem(404, "not_found");
            app.get(&format!("{}/messages", ticket_path(reference)), user)
                .await
                .assert_problem(404, "not_found");
            app.reply(reference, user, "Hello?")
                .await
                .assert_problem(404, "not_found");
            app.act(reference, "close", user)
                .await
                .assert_problem(404, "not_found");
        }
    }
    assert_eq!(get_ticket(&app, real, &app.customer).await, ticket);
}

#[tokio::test]
async fn each_role_lists_exactly_the_tickets_it_may_see() {
    let Some(app) = TestApp::spawn(BACKEND).await else {
        return;
    };
    for user in [&app.customer, &app.staff, &app.foreign_staff] {
        assert_eq!(
            list(&app, TICKETS, user).await,
            json!({"data": [], "nextCursor": null})
        );
    }
    let janes = [
        app.open_ticket(&app.customer, "Jane 1").await,
        app.open_ticket(&app.customer, "Jane 2").await,
    ];
    let johns = [
        app.open_ticket(&app.other_customer, "John 1").await,
        expect(
            open_for(&app, &app.staff, &app.other_customer.id, "John 2").await,
            StatusCode::CREATED,
        ),
    ];
    let foreign = app.open_ticket(&app.foreign_customer, "Fran 1").await;

    let id_list =
        |tickets: &[&Value]| sorted(tickets.iter().map(|t| id_of(t).to_owned()).collect());
    let everyone_here: Vec<&Value> = janes.iter().chain(johns.iter()).collect();
    let expectations = [
        (&app.customer, id_list(&janes.iter().collect::<Vec<_>>())),
        (
            &app.other_customer,
            id_list(&johns.iter().collect::<Vec<_>>()),
        ),
        (&app.staff, id_list(&everyone_here)),
        (&app.automation, id_list(&everyone_here)),
        (&app.foreign_customer, id_list(&[&foreign])),
        (&app.foreign_staff, id_list(&[&foreign])),
    ];
    for (user, expected) in expectations {
        let page = list(&app, TICKETS, user).await;
        assert_eq!(sorted(ids(&page)), expected, "{}", user.name);
        assert_eq!(page["nextCursor"], Value::Null);
        for listed in page["data"].as_array().unwrap() {
            assert_eq!(
                *listed,
                get_ticket(&app, id_of(listed), user).await,
                "a listed ticket is the ticket"
            );
        }
    }
}

#[tokio::test]
async fn lists_filter_by_status() {
    let Some(app) = TestApp::spawn(BACKEND).await else {
        return;
    };
    let open = app.open_ticket(&app.customer, "Open").await;
    let johns_open = app.open_ticket(&app.other_customer, "John's open").await;
    let in_progress = app.open_ticket(&app.customer, "In progress").await;
    expect(
        app.act(id_of(&in_progress), "mark-in-progress", &app.staff)
            .await,
        StatusCode::OK,
    );
    let awaiting = app.open_ticket(&app.customer, "Awaiting").await;
    expect(
        app.reply(id_of(&awaiting), &app.staff, "Can you check?")
            .await,
        StatusCode::CREATED,
    );
    let resolved = app.open_ticket(&app.customer, "Resolved").await;
    expect(
        app.act(id_of(&resolved), "resolve", &app.automation).await,
        StatusCode::OK,
    );
    let closed = app.open_ticket(&app.customer, "Closed").await;
    expect(
        app.act(id_of(&closed), "close", &app.customer).await,
        StatusCode::OK,
    );

    let expectations = [
        ("open", vec![&open, &johns_open]),
        ("in_progress", vec![&in_progress]),
        ("awaiting_response", vec![&awaiting]),
        ("resolved", vec![&resolved]),
        ("closed", vec![&closed]),
    ];
    for (status, tickets) in expectations {
        let page = list(&app, &format!("{TICKETS}?status={status}"), &app.staff).await;
        let expected = sorted(tickets.iter().map(|t| id_of(t).to_owned()).collect());
        assert_eq!(sorted(ids(&page)), expected, "status={status}");
        assert!(
            page["data"]
                .as_array()
                .unwrap()
                .iter()
                .all(|t| t["status"] == status)
        );
    }
    let janes_open = list(&app, &format!("{TICKETS}?status=open"), &app.customer).await;
    assert_eq!(ids(&janes_open), [id_of(&open)]);
    let johns_closed = list(
        &app,
        &format!("{TICKETS}?status=closed"),
        &app.other_customer,
    )
    .await;
    assert_eq!(johns_closed, json!({"data": [], "nextCursor": null}));
}
