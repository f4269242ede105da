//! The ticket lifecycle through the HTTP API: replies and the
//! close / reopen / resolve / mark-in-progress actions, who may take them,
//! and the timestamps and counters they move.

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use super::BACKEND;
use super::tickets::{
    expect, get_ticket, id_of, invalid_fields, pairs, ticket_path, timestamp, wait_for_clock_after,
};
use crate::helpers::{TestApp, TestResponse, TestUser};

const STATUSES: [&str; 5] = [
    "open",
    "in_progress",
    "awaiting_response",
    "resolved",
    "closed",
];

/// A fresh ticket of the customer's, brought to `status` through the API.
async fn ticket_in(app: &TestApp, status: &str) -> Value {
    let ticket = app
        .open_ticket(&app.customer, &format!("Now {status}"))
        .await;
    let id = id_of(&ticket);
    match status {
        "open" => {}
        "in_progress" => {
            expect(
                app.act(id, "mark-in-progress", &app.staff).await,
                StatusCode::OK,
            );
        }
        "awaiting_response" => {
            expect(
                app.reply(id, &app.staff, "Which server?").await,
                StatusCode::CREATED,
            );
        }
        "resolved" => {
            expect(app.act(id, "resolve", &app.staff).await, StatusCode::OK);
        }
        "closed" => {
            expect(app.act(id, "close", &app.customer).await, StatusCode::OK);
        }
        other => panic!("no such status: {other}"),
    }
    let ticket = get_ticket(app, id, &app.staff).await;
    assert_eq!(ticket["status"], status);
    ticket
}

/// Takes `action` as `user`, expecting 200; checks the answer is what a
/// later GET shows, and returns it.
async fn act_ok(app: &TestApp, ticket: &str, action: &str, user: &TestUser) -> Value {
    let after = expect(app.act(ticket, action, user).await, StatusCode::OK);
    assert_eq!(get_ticket(app, ticket, &app.staff).await, after);
    after
}

/// POSTs `body` (raw bytes) to an action as `user`.
async fn act_with_body(
    app: &TestApp,
    ticket: &str,
    action: &str,
    user: &TestUser,
    body: &str,
) -> TestResponse {
    let request = app
        .client
        .request(
            Method::POST,
            app.url(&format!("{}/actions/{action}", ticket_path(ticket))),
        )
        .bearer_auth(&user.token)
        .header("content-type", "application/json")
        .body(body.to_owned());
    app.send(request).await
}

/// Asserts a 400 `ticket_closed` whose detail tells the client to reopen.
#[track_caller]
fn assert_ticket_closed(response: &TestResponse) {
    let problem = response.assert_problem(400, "ticket_closed");
    let detail = problem["detail"].as_str().unwrap();
    assert!(detail.to_lowercase().contains("reopen"), "{detail}");
}

/// `resolvedAt` and `closedAt` are set exactly while the status says so.
#[track_caller]
fn assert_status_timestamps(ticket: &Value) {
    let status = ticket["status"].as_str().unwrap();
    for (member, while_in) in [("resolvedAt", "resolved"), ("closedAt", "closed")] {
        if status == while_in {
            timestamp(&ticket[member]);
        } else {
            assert_eq!(ticket[member], Value::Null, "{member} while {status}");
        }
    }
}

#[derive(Debug, Clone, Copy)]
enum Outcome {
    /// The ticket moves to this status, and its `updatedAt` moves on.
    Moves(&'static str),
    /// Nothing about the ticket changes.
    NoOp,
    /// 400 `ticket_closed`, nothing changes.
    Refused,
}

#[tokio::test]
async fn actions_follow_the_lifecycle_table() {
    use Outcome::{Moves, NoOp, Refused};
    let Some(app) = TestApp::spawn(BACKEND).await else {
        return;
    };
    let table = [
        ("open", "close", Moves("closed")),
        ("open", "reopen", NoOp),
        ("open", "resolve", Moves("resolved")),
        ("open", "mark-in-progress", Moves("in_progress")),
        ("in_progress", "close", Moves("closed")),
        ("in_progress", "reopen", NoOp),
        ("in_progress", "resolve", Moves("resolved")),
        ("in_progress", "mark-in-progress", NoOp),
        ("awaiting_response", "close", Moves("closed")),
        ("awaiting_response", "reopen", NoOp),
        ("awaiting_response", "resolve", Moves("resolved")),
        (
            "awaiting_response",
            "mark-in-progress",
            Moves("in_progress"),
        ),
        ("resolved", "close", Moves("closed")),
        ("resolved", "reopen", Moves("open")),
        ("resolved", "resolve", NoOp),
        ("resolved", "mark-in-progress", Moves("in_progress")),
        ("closed", "close", NoOp),
        ("closed", "reopen", Moves("open")),
        ("closed", "resolve", Refused),
        ("closed", "mark-in-progress", Refused),
    ];
    for (round, (from, action, outcome)) in table.into_iter().enumerate() {
        let actor = if round % 2 == 0 {
            &app.staff
        } else {
            &app.automation
        };
        let before = ticket_in(&app, from).await;
        let id = id_of(&before);
        wait_for_clock_after(&before["updatedAt"]).await;
        let response = app.act(id, action, actor).await;
        let case = format!("{action} on {from} by {}", actor.name);
        match outcome {
            Moves(to) => {
                let after = expect(response, StatusCode::OK);
                assert_eq!(after["status"], to, "{case}");
                assert!(
                    timestamp(&after["updatedAt"]) > timestamp(&before["updatedAt"]),
                    "{case}"
                );
                assert_status_timestamps(&after);
                for (member, while_in) in [("resolvedAt", "resolved"), ("closedAt", "closed")] {
                    if to == while_in {
                        assert_eq!(after[member], after["updatedAt"], "{case}");
                    }
                }
                for unchanged in [
                    "id",
                    "number",
                    "subject",
                    "priority",
                    "customer",
                    "createdAt",
                    "lastMessageAt",
                    "messageCount",
                ] {
                    assert_eq!(after[unchanged], before[unchanged], "{case}: {unchanged}");
                }
                assert_eq!(get_ticket(&app, id, &app.customer).await, after, "{case}");
            }
            NoOp => {
                assert_eq!(expect(response, StatusCode::OK), before, "{case}");
                assert_eq!(get_ticket(&app, id, &app.customer).await, before, "{case}");
            }
            Refused => {
                assert_ticket_closed(&response);
                assert_eq!(get_ticket(&app, id, &app.customer).await, before, "{case}");
            }
        }
    }
}

#[tokio::test]
async fn replies_follow_the_lifecycle_table() {
    let Some(app) = TestApp::spawn(BACKEND).await else {
        return;
    };
    for from in &STATUSES[..4] {
        for (replier, to) in [
            (&app.customer, "open"),
            (&app.staff, "awaiting_response"),
            (&app.automation, "awaiting_response"),
        ] {
            let before = ticket_in(&app, from).await;
            let id = id_of(&before);
            wait_for_clock_after(&before["updatedAt"]).await;
            let message = expect(
                app.reply(id, replier, "An update").await,
                StatusCode::CREATED,
            );
            let after = get_ticket(&app, id, &app.staff).await;
            let case = format!("{} replying to {from}", replier.name);
            assert_eq!(after["status"], to, "{case}");
            assert_eq!(after["resolvedAt"], Value::Null, "{case}");
            assert_eq!(after["closedAt"], Value::Null, "{case}");
            assert_eq!(
                after["messageCount"],
                before["messageCount"].as_i64().unwrap() + 1,
                "{case}"
            );
            assert_eq!(after["lastMessageAt"], message["sentAt"], "{case}");
            assert_eq!(after["updatedAt"], message["sentAt"], "{case}");
        }
    }
}

#[tokio::test]
async fn closed_tickets_refuse_replies_until_reopened() {
    let Some(app) = TestApp::spawn(BACKEND).await else {
        return;
    };
    let closed = ticket_in(&app, "closed").await;
    let id = id_of(&closed);
    for user in [&app.customer, &app.staff, &app.automation] {
        assert_ticket_closed(&app.reply(id, user, "Still there?").await);
    }
    assert_eq!(
        get_ticket(&app, id, &app.customer).await,
        closed,
        "refused replies change nothing"
    );
    let thread = expect(
        app.get(&format!("{}/messages", ticket_path(id)), &app.customer)
            .await,
        StatusCode::OK,
    );
    assert_eq!(thread["data"].as_array().unwrap().len(), 1);

    let reopened = act_ok(&app, id, "reopen", &app.customer).await;
    assert_eq!(reopened["status"], "open");
    assert_eq!(reopened["closedAt"], Value::Null);
    expect(
        app.reply(id, &app.customer, "Still there?").await,
        StatusCode::CREATED,
    );
    let after = get_ticket(&app, id, &app.customer).await;
    assert_eq!(
        (&after["status"], &after["messageCount"]),
        (&json!("open"), &json!(2))
    );
}

#[tokio::test]
async fn closing_a_closed_ticket_changes_nothing() {
    let Some(app) = TestApp::spawn(BACKEND).await else {
        return;
    };
    let ticket = app.open_ticket(&app.customer, "Close me twice").await;
    let id = id_of(&ticket);
    let closed = act_ok(&app, id, "close", &app.customer).await;
    assert_eq!(closed["status"], "closed");
    for user in [&app.customer, &app.staff, &app.automation] {
        wait_for_clock_after(&closed["updatedAt"]).await;
        assert_eq!(
            act_ok(&app, id, "close", user).await,
            closed,
            "closing again as {}",
            user.name
        );
    }
}

#[tokio::test]
async fn reopening_an_open_ticket_changes_nothing() {
    let Some(app) = TestApp::spawn(BACKEND).await else {
        return;
    };
    let ticket = ticket_in(&app, "closed").await;
    let id = id_of(&ticket);
    wait_for_clock_after(&ticket["updatedAt"]).await;
    let reopened = act_ok(&app, id, "reopen", &app.customer).await;
    assert_eq!(reopened["status"], "open");
    assert!(timestamp(&reopened["updatedAt"]) > timestamp(&ticket["updatedAt"]));
    for user in [&app.customer, &app.staff, &app.automation] {
        wait_for_clock_after(&reopened["updatedAt"]).await;
        assert_eq!(
            act_ok(&app, id, "reopen", user).await,
            reopened,
            "reopening again as {}",
            user.name
        );
    }
}

#[tokio::test]
async fn resolved_and_closed_timestamps_are_set_only_while_they_apply() {
    let Some(app) = TestApp::spawn(BACKEND).await else {
        return;
    };
    let mut last = app.open_ticket(&app.customer, "Timestamps").await;
    let id = &id_of(&last).to_owned();
    for (user, action, status) in [
        (&app.staff, "resolve", "resolved"),
        (&app.customer, "close", "closed"),
        (&app.customer, "reopen", "open"),
        (&app.automation, "resolve", "resolved"),
        (&app.staff, "reopen", "open"),
        (&app.staff, "close", "closed"),
        (&app.staff, "reopen", "open"),
    ] {
        wait_for_clock_after(&last["updatedAt"]).await;
        let after = act_ok(&app, id, action, user).await;
        assert_eq!(after["status"], status, "{action}");
        assert_status_timestamps(&after);
        if status != "open" {
            let at = if status == "resolved" {
                &after["resolvedAt"]
            } else {
                &after["closedAt"]
            };
            assert_eq!(
                *at, after["updatedAt"],
                "{action} stamps the moment it happened"
            );
        }
        last = after;
    }

    // A reply to a resolved ticket reopens it and clears resolvedAt.
    act_ok(&app, id, "resolve", &app.staff).await;
    expect(
        app.reply(id, &app.customer, "Not fixed yet").await,
        StatusCode::CREATED,
    );
    let replied = get_ticket(&app, id, &app.customer).await;
    assert_eq!(
        (&replied["status"], &replied["resolvedAt"]),
        (&json!("open"), &Value::Null)
    );
}

#[tokio::test]
async fn customers_cannot_resolve_or_mark_in_progress() {
    let Some(app) = TestApp::spawn(BACKEND).await else {
        return;
    };
    let ticket = app
        .open_ticket(&app.customer, "Let me resolve it myself")
        .await;
    let id = id_of(&ticket);
    for action in ["resolve", "mark-in-progress"] {
        for reference in [id, "1"] {
            app.act(reference, action, &app.customer)
                .await
                .assert_problem(403, "forbidden");
        }
    }
    assert_eq!(get_ticket(&app, id, &app.customer).await, ticket);
}

#[tokio::test]
async fn only_the_owner_and_agents_of_the_workspace_close_and_reopen() {
    let Some(app) = TestApp::spawn(BACKEND).await else {
        return;
    };
    let ticket = app.open_ticket(&app.customer, "Mine to close").await;
    let id = id_of(&ticket);
    let strangers = [
        &app.other_customer,
        &app.foreign_customer,
        &app.foreign_staff,
    ];

    for user in strangers {
        app.act(id, "close", user)
            .await
            .assert_problem(404, "not_found");
    }
    for action in ["resolve", "mark-in-progress"] {
        app.act(id, action, &app.foreign_staff)
            .await
            .assert_problem(404, "not_found");
    }
    assert_eq!(get_ticket(&app, id, &app.customer).await, ticket);

    let closed = act_ok(&app, id, "close", &app.customer).await;
    for user in strangers {
        app.act(id, "reopen", user)
            .await
            .assert_problem(404, "not_found");
    }
    assert_eq!(get_ticket(&app, id, &app.customer).await, closed);

    for (user, action, status) in [
        (&app.staff, "reopen", "open"),
        (&app.automation, "close", "closed"),
        (&app.automation, "reopen", "open"),
        (&app.staff, "close", "closed"),
        (&app.customer, "reopen", "open"),
    ] {
        assert_eq!(
            act_ok(&app, id, action, user).await["status"],
            status,
            "{action} by {}",
            user.name
        );
    }
}

#[tokio::test]
async fn action_bodies_must_be_empty_or_an_empty_object() {
    let Some(app) = TestApp::spawn(BACKEND).await else {
        return;
    };
    let ticket = app.open_ticket(&app.customer, "Bodies").await;
    let id = id_of(&ticket);

    for (action, user) in [
        ("close", &app.customer),
        ("reopen", &app.customer),
        ("resolve", &app.staff),
        ("mark-in-progress", &app.staff),
    ] {
        let unknown = [
            (r#"{"x":1}"#, vec![("/x", "unknown_field")]),
            (
                r#"{"reason": "done", "x": 1}"#,
                vec![("/reason", "unknown_field"), ("/x", "unknown_field")],
            ),
        ];
        for (body, expected) in unknown {
            let response = act_with_body(&app, id, action, user, body).await;
            assert_eq!(
                invalid_fields(&response),
                pairs(&expected),
                "{action} with {body}"
            );
        }
        for body in ["[]", "true", r#""close""#] {
            act_with_body(&app, id, action, user, body)
                .await
                .assert_problem(400, "invalid_request");
        }
    }
    assert_eq!(
        get_ticket(&app, id, &app.customer).await,
        ticket,
        "refused actions change nothing"
    );

    for (action, user, status) in [
        ("mark-in-progress", &app.staff, "in_progress"),
        ("resolve", &app.automation, "resolved"),
        ("close", &app.customer, "closed"),
        ("reopen", &app.customer, "open"),
    ] {
        for body in ["{}", " { } "] {
            let after = expect(
                act_with_body(&app, id, action, user, body).await,
                StatusCode::OK,
            );
            assert_eq!(after["status"], status, "{action} with {body:?}");
        }
    }
}

#[tokio::test]
async fn replies_update_the_message_count_and_last_message_time() {
    let Some(app) = TestApp::spawn(BACKEND).await else {
        return;
    };
    let ticket = app.open_ticket(&app.customer, "Counting").await;
    let id = id_of(&ticket);
    assert_eq!(ticket["messageCount"], 1);
    assert_eq!(ticket["lastMessageAt"], ticket["createdAt"]);

    let mut last = ticket.clone();
    let mut sent = vec![ticket["createdAt"].clone()];
    for (count, user) in (2..).zip([&app.staff, &app.customer, &app.automation, &app.customer]) {
        wait_for_clock_after(&last["updatedAt"]).await;
        let message = expect(
            app.reply(id, user, &format!("Message {count}")).await,
            StatusCode::CREATED,
        );
        let after = get_ticket(&app, id, &app.customer).await;
        assert_eq!(after["messageCount"], count);
        assert_eq!(after["lastMessageAt"], message["sentAt"]);
        assert!(timestamp(&after["lastMessageAt"]) > timestamp(&last["lastMessageAt"]));
        assert_eq!(after["createdAt"], ticket["createdAt"]);
        sent.push(message["sentAt"].clone());
        last = after;
    }

    // Actions are activity but not messages.
    wait_for_clock_after(&last["updatedAt"]).await;
    let resolved = act_ok(&app, id, "resolve", &app.staff).await;
    assert_eq!(
        (&resolved["messageCount"], &resolved["lastMessageAt"]),
        (&last["messageCount"], &last["lastMessageAt"])
    );
    assert!(timestamp(&resolved["updatedAt"]) > timestamp(&last["lastMessageAt"]));

    let thread = expect(
        app.get(&format!("{}/messages", ticket_path(id)), &app.customer)
            .await,
        StatusCode::OK,
    );
    let data = thread["data"].as_array().unwrap();
    let senders: Vec<_> = data.iter().map(|m| m["sender"].as_str().unwrap()).collect();
    assert_eq!(
        senders,
        ["customer", "staff", "customer", "automation", "customer"]
    );
    let times: Vec<_> = data.iter().map(|m| m["sentAt"].clone()).collect();
    assert_eq!(times, sent);
}
