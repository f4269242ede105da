//! Cursor pagination of ticket lists (most recent activity first) and of
//! threads (oldest first): walking pages, writes racing a walk, and the
//! query parameters' errors.

use std::collections::HashSet;
use std::sync::Arc;

use reqwest::StatusCode;
use serde_json::Value;
use ticketd::core::access::{Actor, Role, TicketScope};
use ticketd::core::id::{MessageId, TicketId};
use ticketd::core::message::{BodyFormat, NewMessage};
use ticketd::core::text::{MessageBody, Subject};
use ticketd::core::ticket::{NewTicket, Priority};
use ticketd::core::time::Timestamp;
use ticketd::store::Written;

use super::BACKEND;
use super::tickets::{
    TICKETS, expect, get_ticket, id_of, ids, invalid_fields, list, pairs, ticket_path,
    wait_for_clock_after,
};
use crate::helpers::{TestApp, TestUser};

/// Joins a path and a query string (which may be empty).
fn with_query(path: &str, query: &str) -> String {
    if query.is_empty() {
        path.to_owned()
    } else {
        format!("{path}?{query}")
    }
}

fn messages_path(ticket: &str) -> String {
    format!("{}/messages", ticket_path(ticket))
}

/// Follows `nextCursor` from the first page of `path?query` to the last,
/// returning every page.
async fn walk(app: &TestApp, user: &TestUser, path: &str, query: &str) -> Vec<Value> {
    let mut pages = Vec::new();
    let mut url = with_query(path, query);
    loop {
        let page = list(app, &url, user).await;
        let next = page["nextCursor"].clone();
        pages.push(page);
        match next {
            Value::Null => return pages,
            Value::String(cursor) => {
                assert!(pages.len() < 100, "the walk does not end");
                let query = if query.is_empty() {
                    format!("cursor={cursor}")
                } else {
                    format!("{query}&cursor={cursor}")
                };
                url = with_query(path, &query);
            }
            other => panic!("nextCursor is neither null nor a string: {other}"),
        }
    }
}

fn all_ids(pages: &[Value]) -> Vec<String> {
    pages.iter().flat_map(ids).collect()
}

fn page_sizes(pages: &[Value]) -> Vec<usize> {
    pages
        .iter()
        .map(|page| page["data"].as_array().unwrap().len())
        .collect()
}

#[track_caller]
fn assert_no_duplicates(ids: &[String]) {
    let unique: HashSet<_> = ids.iter().collect();
    assert_eq!(unique.len(), ids.len(), "duplicates in {ids:?}");
}

/// Opens `count` tickets as the customer, each active later than the one
/// before; returns their ids, oldest first.
async fn open_in_order(app: &TestApp, count: usize) -> Vec<String> {
    let mut ids = Vec::new();
    for n in 1..=count {
        let ticket = app.open_ticket(&app.customer, &format!("Ticket {n}")).await;
        wait_for_clock_after(&ticket["updatedAt"]).await;
        ids.push(id_of(&ticket).to_owned());
    }
    ids
}

/// A ticket with `count` messages, customer and staff taking turns; returns
/// the ticket id and the message ids in order.
async fn thread_of(app: &TestApp, count: usize) -> (String, Vec<String>) {
    let ticket = app.open_ticket(&app.customer, "A long thread").await;
    let id = id_of(&ticket).to_owned();
    let first = list(app, &messages_path(&id), &app.customer).await;
    let mut messages = ids(&first);
    for n in 2..=count {
        let user = if n % 2 == 0 {
            &app.staff
        } else {
            &app.customer
        };
        let message = expect(
            app.reply(&id, user, &format!("Message {n}")).await,
            StatusCode::CREATED,
        );
        messages.push(id_of(&message).to_owned());
    }
    (id, messages)
}

fn reversed(ids: &[String]) -> Vec<String> {
    ids.iter().rev().cloned().collect()
}

#[tokio::test]
async fn ticket_pages_run_from_the_most_recent_activity_back() {
    let Some(app) = TestApp::spawn(BACKEND).await else {
        return;
    };
    let newest_first = reversed(&open_in_order(&app, 7).await);
    for user in [&app.customer, &app.staff] {
        let pages = walk(&app, user, TICKETS, "limit=3").await;
        assert_eq!(page_sizes(&pages), [3, 3, 1], "{}", user.name);
        assert!(pages[..2].iter().all(|page| page["nextCursor"].is_string()));
        assert_eq!(all_ids(&pages), newest_first, "{}", user.name);
    }
    for (limit, sizes) in [
        (7, vec![7]),
        (6, vec![6, 1]),
        (1, vec![1; 7]),
        (100, vec![7]),
    ] {
        let pages = walk(&app, &app.staff, TICKETS, &format!("limit={limit}")).await;
        assert_eq!(page_sizes(&pages), sizes, "limit={limit}");
        assert_eq!(all_ids(&pages), newest_first, "limit={limit}");
    }
}

#[tokio::test]
async fn message_pages_run_from_the_oldest_message_on() {
    let Some(app) = TestApp::spawn(BACKEND).await else {
        return;
    };
    let (ticket, messages) = thread_of(&app, 7).await;
    for user in [&app.customer, &app.staff, &app.automation] {
        let pages = walk(&app, user, &messages_path(&ticket), "limit=3").await;
        assert_eq!(page_sizes(&pages), [3, 3, 1], "{}", user.name);
        assert!(pages[..2].iter().all(|page| page["nextCursor"].is_string()));
        assert_eq!(all_ids(&pages), messages, "{}", user.name);
    }
    for (query, sizes) in [
        ("limit=7", vec![7]),
        ("limit=6", vec![6, 1]),
        ("limit=1", vec![1; 7]),
        ("", vec![7]),
    ] {
        let pages = walk(&app, &app.customer, &messages_path(&ticket), query).await;
        assert_eq!(page_sizes(&pages), sizes, "{query:?}");
        assert_eq!(all_ids(&pages), messages, "{query:?}");
    }
}

#[tokio::test]
async fn a_status_filter_holds_across_pages() {
    let Some(app) = TestApp::spawn(BACKEND).await else {
        return;
    };
    let created = open_in_order(&app, 7).await;
    for n in [2, 5] {
        let closed = expect(
            app.act(&created[n - 1], "close", &app.customer).await,
            StatusCode::OK,
        );
        wait_for_clock_after(&closed["updatedAt"]).await;
    }
    let open: Vec<String> = [7, 6, 4, 3, 1]
        .iter()
        .map(|n| created[n - 1].clone())
        .collect();
    let pages = walk(&app, &app.customer, TICKETS, "status=open&limit=2").await;
    assert_eq!(page_sizes(&pages), [2, 2, 1]);
    assert_eq!(all_ids(&pages), open);
    let pages = walk(&app, &app.staff, TICKETS, "limit=1&status=closed").await;
    assert_eq!(all_ids(&pages), [created[4].clone(), created[1].clone()]);
}

#[tokio::test]
async fn tickets_active_at_the_same_moment_are_paged_by_id() {
    let Some(app) = TestApp::spawn(BACKEND).await else {
        return;
    };
    // Through the store, to give every ticket exactly the same time.
    let actor = Actor {
        workspace_id: app.workspace,
        user_id: app.customer.id,
        role: Role::Customer,
        name: app.customer.name.clone(),
        scope: TicketScope::ByRole,
    };
    let at = Timestamp::now();
    let mut created = Vec::new();
    for n in 1..=7 {
        let new = NewTicket {
            id: TicketId::generate(),
            subject: Subject::parse(format!("Tied {n}")).unwrap(),
            priority: Priority::Normal,
            category: None,
            booking_id: None,
            on_behalf_of: None,
            first_message: NewMessage {
                id: MessageId::generate(),
                body: MessageBody::parse("Same moment".to_owned()).unwrap(),
                body_format: BodyFormat::Plain,
                encrypted: false,
                sent_at: at,
                attachments: Vec::new(),
                attach_limits: Default::default(),
                task: None,
            },
        };
        created.push(
            app.store
                .create_ticket(&actor, new, None)
                .await
                .map(Written::into_value)
                .unwrap()
                .id
                .to_string(),
        );
    }
    created.sort_unstable_by(|a, b| b.cmp(a));
    for user in [&app.customer, &app.staff] {
        let pages = walk(&app, user, TICKETS, "limit=3").await;
        assert_eq!(page_sizes(&pages), [3, 3, 1]);
        assert_eq!(
            all_ids(&pages),
            created,
            "ties are broken by id, highest first"
        );
        for ticket in pages
            .iter()
            .flat_map(|page| page["data"].as_array().unwrap())
        {
            assert_eq!(ticket["updatedAt"], at.to_string());
        }
    }
}

#[tokio::test]
async fn pages_hold_25_items_unless_asked() {
    let Some(app) = TestApp::spawn(BACKEND).await else {
        return;
    };
    // Opened back to back, many of these share a millisecond: the id breaks ties.
    let mut tickets = HashSet::new();
    for n in 1..=26 {
        tickets.insert(
            id_of(&app.open_ticket(&app.customer, &format!("Ticket {n}")).await).to_owned(),
        );
    }
    let pages = walk(&app, &app.customer, TICKETS, "").await;
    assert_eq!(page_sizes(&pages), [25, 1]);
    let walked = all_ids(&pages);
    assert_no_duplicates(&walked);
    assert_eq!(walked.iter().cloned().collect::<HashSet<_>>(), tickets);
    assert_eq!(
        walked,
        ids(&list(&app, &format!("{TICKETS}?limit=100"), &app.customer).await)
    );

    let (ticket, messages) = thread_of(&app, 26).await;
    let pages = walk(&app, &app.customer, &messages_path(&ticket), "").await;
    assert_eq!(page_sizes(&pages), [25, 1]);
    assert_eq!(all_ids(&pages), messages);
}

#[tokio::test]
async fn limits_run_from_1_to_100() {
    let Some(app) = TestApp::spawn(BACKEND).await else {
        return;
    };
    let (ticket, _) = thread_of(&app, 2).await;
    app.open_ticket(&app.customer, "Another").await;
    for path in [TICKETS.to_owned(), messages_path(&ticket)] {
        for (limit, size) in [(1, 1), (100, 2)] {
            let page = list(&app, &format!("{path}?limit={limit}"), &app.customer).await;
            assert_eq!(
                page["data"].as_array().unwrap().len(),
                size,
                "{path}?limit={limit}"
            );
            assert_eq!(
                page["nextCursor"].is_string(),
                size == 1,
                "{path}?limit={limit}"
            );
        }
        for limit in [0, 101] {
            let response = app
                .get(&format!("{path}?limit={limit}"), &app.customer)
                .await;
            assert_eq!(
                invalid_fields(&response),
                pairs(&[("/limit", "invalid_value")])
            );
        }
    }
}

#[tokio::test]
async fn invalid_query_parameters_are_refused_with_every_error() {
    let Some(app) = TestApp::spawn(BACKEND).await else {
        return;
    };
    let (ticket, _) = thread_of(&app, 2).await;
    app.open_ticket(&app.customer, "Another").await;
    let cursor_of = |page: Value| page["nextCursor"].as_str().unwrap().to_owned();
    let ticket_cursor = cursor_of(list(&app, &format!("{TICKETS}?limit=1"), &app.customer).await);
    let message_cursor = cursor_of(
        list(
            &app,
            &format!("{}?limit=1", messages_path(&ticket)),
            &app.customer,
        )
        .await,
    );

    let common = |own: &str, foreign: &str| -> Vec<(String, Vec<(&'static str, &'static str)>)> {
        let truncated = &own[..own.len() - 2];
        vec![
            ("limit=0".into(), vec![("/limit", "invalid_value")]),
            ("limit=-1".into(), vec![("/limit", "invalid_value")]),
            ("limit=101".into(), vec![("/limit", "invalid_value")]),
            ("limit=abc".into(), vec![("/limit", "invalid_type")]),
            ("limit=2.5".into(), vec![("/limit", "invalid_type")]),
            ("limit=1&limit=2".into(), vec![("/limit", "invalid_value")]),
            (
                "cursor=not-a-cursor".into(),
                vec![("/cursor", "invalid_value")],
            ),
            (
                format!("cursor={foreign}"),
                vec![("/cursor", "invalid_value")],
            ),
            (
                format!("cursor={truncated}"),
                vec![("/cursor", "invalid_value")],
            ),
            (
                format!("cursor={own}&cursor={own}"),
                vec![("/cursor", "invalid_value")],
            ),
            ("foo=1".into(), vec![("/foo", "unknown_field")]),
            ("Limit=5".into(), vec![("/Limit", "unknown_field")]),
            (
                "limit=0&foo=1".into(),
                vec![("/foo", "unknown_field"), ("/limit", "invalid_value")],
            ),
        ]
    };
    let mut ticket_cases = common(&ticket_cursor, &message_cursor);
    ticket_cases.extend([
        ("status=pending".into(), vec![("/status", "invalid_value")]),
        ("status=OPEN".into(), vec![("/status", "invalid_value")]),
        (
            "status=open&status=closed".into(),
            vec![("/status", "invalid_value")],
        ),
        (
            "limit=101&status=bogus&page=2".into(),
            vec![
                ("/limit", "invalid_value"),
                ("/page", "unknown_field"),
                ("/status", "invalid_value"),
            ],
        ),
    ]);
    let mut message_cases = common(&message_cursor, &ticket_cursor);
    message_cases.push(("status=open".into(), vec![("/status", "unknown_field")]));

    for (path, cases) in [
        (TICKETS.to_owned(), ticket_cases),
        (messages_path(&ticket), message_cases),
    ] {
        for (query, expected) in cases {
            let response = app.get(&format!("{path}?{query}"), &app.customer).await;
            assert_eq!(
                invalid_fields(&response),
                pairs(&expected),
                "{path}?{query}"
            );
            // The detail speaks of the query, not of a body.
            assert_eq!(
                response.body["detail"], "The query parameters failed validation.",
                "{path}?{query}"
            );
        }
    }
}

#[tokio::test]
async fn activity_moves_a_ticket_to_the_front() {
    let Some(app) = TestApp::spawn(BACKEND).await else {
        return;
    };
    let created = open_in_order(&app, 3).await;
    let order = |positions: [usize; 3]| -> Vec<String> {
        positions.iter().map(|n| created[n - 1].clone()).collect()
    };
    for user in [&app.customer, &app.staff] {
        assert_eq!(ids(&list(&app, TICKETS, user).await), order([3, 2, 1]));
    }
    let steps = [
        (1, "reply", &app.customer, [1, 3, 2]),
        (2, "reply", &app.staff, [2, 1, 3]),
        (3, "close", &app.customer, [3, 2, 1]),
        (1, "resolve", &app.automation, [1, 3, 2]),
        // Closing a closed ticket is no activity.
        (3, "close", &app.staff, [1, 3, 2]),
    ];
    for (n, how, user, expected) in steps {
        let id = &created[n - 1];
        let at = if how == "reply" {
            expect(app.reply(id, user, "Any news?").await, StatusCode::CREATED)["sentAt"].clone()
        } else {
            expect(app.act(id, how, user).await, StatusCode::OK)["updatedAt"].clone()
        };
        for viewer in [&app.customer, &app.staff] {
            assert_eq!(
                ids(&list(&app, TICKETS, viewer).await),
                order(expected),
                "after {how} on ticket {n}"
            );
        }
        let first = list(&app, &format!("{TICKETS}?limit=1"), &app.staff).await;
        assert_eq!(ids(&first), order(expected)[..1]);
        wait_for_clock_after(&at).await;
    }
}

/// Writes that race a page fetch: two new tickets and, when there is one, a
/// staff reply to a ticket the walk has already passed (which moves it to
/// the front). Returns the new tickets' ids.
async fn race_ticket_walk(app: Arc<TestApp>, passed: Option<String>) -> Vec<String> {
    let reply = async {
        if let Some(id) = &passed {
            expect(
                app.reply(id, &app.staff, "Bumping").await,
                StatusCode::CREATED,
            );
        }
    };
    let (first, second, ()) = tokio::join!(
        app.open_ticket(&app.other_customer, "Racing 1"),
        app.open_ticket(&app.customer, "Racing 2"),
        reply
    );
    vec![id_of(&first).to_owned(), id_of(&second).to_owned()]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn tickets_opened_during_a_walk_neither_repeat_nor_hide_others() {
    let Some(app) = TestApp::spawn(BACKEND).await else {
        return;
    };
    let app = Arc::new(app);
    let existing = open_in_order(&app, 7).await;
    let mut seen: Vec<Value> = Vec::new();
    let mut writers = Vec::new();
    let mut url = format!("{TICKETS}?limit=3");
    loop {
        let passed = seen.first().map(|ticket| id_of(ticket).to_owned());
        writers.push(tokio::spawn(race_ticket_walk(Arc::clone(&app), passed)));
        let page = list(&app, &url, &app.staff).await;
        seen.extend(page["data"].as_array().unwrap().iter().cloned());
        match page["nextCursor"].as_str() {
            Some(cursor) => url = format!("{TICKETS}?limit=3&cursor={cursor}"),
            None => break,
        }
        assert!(writers.len() < 50, "the walk does not end");
    }
    let mut racing = Vec::new();
    for writer in writers {
        racing.extend(writer.await.unwrap());
    }

    let seen_ids: Vec<String> = seen.iter().map(|ticket| id_of(ticket).to_owned()).collect();
    assert_no_duplicates(&seen_ids);
    for id in &existing {
        assert!(seen_ids.contains(id), "existing ticket {id} was skipped");
    }
    for id in &seen_ids {
        assert!(
            existing.contains(id) || racing.contains(id),
            "{id} came from nowhere"
        );
    }
    let keys: Vec<(&str, &str)> = seen
        .iter()
        .map(|t| (t["updatedAt"].as_str().unwrap(), id_of(t)))
        .collect();
    assert!(
        keys.windows(2).all(|pair| pair[0] > pair[1]),
        "not most recent first: {keys:?}"
    );

    let everything = list(&app, &format!("{TICKETS}?limit=100"), &app.staff).await;
    let mut numbers: Vec<i64> = everything["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["number"].as_i64().unwrap())
        .collect();
    numbers.sort_unstable();
    let total = existing.len() + racing.len();
    assert_eq!(
        numbers,
        (1..=i64::try_from(total).unwrap()).collect::<Vec<_>>()
    );
}

/// Two replies racing a page fetch; returns their message ids.
async fn race_message_walk(app: Arc<TestApp>, ticket: String) -> Vec<String> {
    let (first, second) = tokio::join!(
        app.reply(&ticket, &app.customer, "Racing customer"),
        app.reply(&ticket, &app.automation, "Racing bot")
    );
    [first, second]
        .into_iter()
        .map(|reply| id_of(&expect(reply, StatusCode::CREATED)).to_owned())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn replies_sent_during_a_walk_neither_repeat_nor_hide_others() {
    let Some(app) = TestApp::spawn(BACKEND).await else {
        return;
    };
    let app = Arc::new(app);
    let (ticket, existing) = thread_of(&app, 7).await;
    let path = messages_path(&ticket);
    let mut seen = Vec::new();
    let mut writers = Vec::new();
    let mut url = format!("{path}?limit=3");
    loop {
        writers.push(tokio::spawn(race_message_walk(
            Arc::clone(&app),
            ticket.clone(),
        )));
        let page = list(&app, &url, &app.customer).await;
        seen.extend(ids(&page));
        match page["nextCursor"].as_str() {
            Some(cursor) => url = format!("{path}?limit=3&cursor={cursor}"),
            None => break,
        }
        assert!(writers.len() < 100, "the walk does not end");
    }
    let mut racing = Vec::new();
    for writer in writers {
        racing.extend(writer.await.unwrap());
    }

    assert_no_duplicates(&seen);
    assert_eq!(
        seen[..existing.len()],
        existing[..],
        "the existing thread comes first, in order"
    );
    let thread = ids(&list(&app, &format!("{path}?limit=100"), &app.customer).await);
    assert_eq!(thread.len(), existing.len() + racing.len());
    assert_eq!(
        thread[..seen.len()],
        seen[..],
        "the walk saw a prefix of the final thread"
    );
    assert_eq!(
        thread[existing.len()..].iter().collect::<HashSet<_>>(),
        racing.iter().collect::<HashSet<_>>()
    );
    let count = get_ticket(&app, &ticket, &app.customer).await["messageCount"].clone();
    assert_eq!(count, thread.len());
}
