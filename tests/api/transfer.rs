//! `ticketd export` and `ticketd import`: a database moved through a dump
//! answers the API exactly as before, and bad dumps or targets are refused.
//! Runs the real binary (with the process helpers of `cli`). Dumps come
//! from the embedded default, SQLite, and go into the module's backend: in
//! the `postgres` module this is the move from SQLite to PostgreSQL.

use std::io::Write;
use std::process::{Output, Stdio};
use std::sync::Arc;

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use ticketd::blob::local::LocalBlobs;
use ticketd::core::access::{Actor, Role, TicketScope};
use ticketd::core::crypto::{DataKey, Keyring};
use ticketd::core::id::{MessageId, TicketId, UserId, WorkspaceId};
use ticketd::core::message::{BodyFormat, NewMessage};
use ticketd::core::text::{MessageBody, Subject};
use ticketd::core::ticket::{NewTicket, Priority, TicketRef};
use ticketd::core::time::Timestamp;
use ticketd::core::workspace::{NewUser, NewWorkspace, WorkspaceCode};
use ticketd::encryption::ExportBodies;
use ticketd::store::Written;
use ticketd::store::{DatabaseUrl, Store};
use ticketd::transfer::{self, Batching, DumpFiles, EXPORT_PAGE_SIZE};

use super::BACKEND;
use super::cli::{Scratch, Server, one_json_line, refused, text};
use crate::helpers::Backend;

const TICKETS: &str = "/api/v2/support/tickets";

/// Someone holding an API key.
struct Caller {
    label: &'static str,
    token: String,
    /// The agency signature of the caller's workspace.
    signature: String,
}

/// A user created with the CLI, with one key; returns (user id, token).
fn user_with_key(scratch: &Scratch, workspace: &str, role: &str, name: &str) -> (String, String) {
    let user = scratch.create_user(workspace, role, name);
    let user_id = text(&user["id"]).to_owned();
    let key = scratch.create_key(&user_id);
    (user_id, text(&key["token"]).to_owned())
}

/// Sends a request that must succeed with `expected`; returns the body.
async fn expect(
    server: &Server,
    method: Method,
    path: &str,
    token: &str,
    body: Option<Value>,
    expected: StatusCode,
) -> Value {
    let (status, answer) = server.call(method, path, token, body).await;
    assert_eq!(status, expected, "{path}: {answer}");
    answer
}

/// Two workspaces of users and keys (one revoked, one read-only), and
/// tickets in every shape, made through the CLI and the HTTP API; with
/// `agency`, also agency signatures, a ticket with a booking and a ticket
/// read through the agency API (which dumps before version 3 cannot hold).
async fn populate(scratch: &Scratch, agency: bool) -> Vec<Caller> {
    let acme = scratch.create_workspace("Acme Hosting");
    let acme = text(&acme["id"]).to_owned();
    let other = scratch.create_workspace("Other Corp");
    let other = text(&other["id"]).to_owned();
    let jane = scratch.json(&[
        "user",
        "create",
        "--workspace",
        &acme,
        "--role",
        "customer",
        "--name",
        "Jane Example",
        "--email",
        "jane@example.com",
    ]);
    let jane_id = text(&jane["id"]).to_owned();
    let jane_token = text(&scratch.create_key(&jane_id)["token"]).to_owned();
    let old_key = scratch.create_key(&jane_id);
    scratch.json(&["key", "revoke", text(&old_key["id"])]);
    let (john_id, john_token) = user_with_key(scratch, &acme, "customer", "John Other");
    let (sam_id, sam_token) = user_with_key(scratch, &acme, "staff", "Sam Staff");
    let read_only = scratch.json(&[
        "key",
        "create",
        "--user",
        &sam_id,
        "--scopes",
        "read:support",
    ]);
    let (_, bot_token) = user_with_key(scratch, &acme, "automation", "Helper Bot");
    let (_, fran_token) = user_with_key(scratch, &other, "customer", "Fran Foreign");
    let (_, fred_token) = user_with_key(scratch, &other, "staff", "Fred Foreign");
    let signature_of = |workspace: &str| {
        if !agency {
            return String::new();
        }
        let minted = scratch.json(&["workspace", "agency-signature", workspace]);
        text(&minted["signature"]).to_owned()
    };
    let (acme_signature, other_signature) = (signature_of(&acme), signature_of(&other));

    let mut server = scratch.serve().await;
    let created = StatusCode::CREATED;
    let ok = StatusCode::OK;
    let first = expect(
        &server,
        Method::POST,
        TICKETS,
        &jane_token,
        Some(json!({"subject": "Cannot reach my server", "message": "It stopped at noon."})),
        created,
    )
    .await;
    let first = text(&first["id"]).to_owned();
    let thread = format!("{TICKETS}/{first}/messages");
    let replies = [
        (
            &sam_token,
            json!({"message": "**Rebooted** it.", "bodyFormat": "markdown"}),
        ),
        (
            &jane_token,
            json!({"message": "My password is hunter2", "encrypted": true}),
        ),
    ];
    for (token, reply) in replies {
        expect(&server, Method::POST, &thread, token, Some(reply), created).await;
    }
    let action = |ticket: &str, name: &str| format!("{TICKETS}/{ticket}/actions/{name}");
    expect(
        &server,
        Method::POST,
        &action(&first, "mark-in-progress"),
        &bot_token,
        None,
        ok,
    )
    .await;

    let second = expect(
        &server,
        Method::POST,
        TICKETS,
        &jane_token,
        Some(json!({
            "subject": "Billing",
            "message": "_Secret_ invoice question",
            "priority": "high",
            "bodyFormat": "markdown",
            "encrypted": true,
        })),
        created,
    )
    .await;
    expect(
        &server,
        Method::POST,
        &action(text(&second["id"]), "close"),
        &jane_token,
        None,
        ok,
    )
    .await;

    let third = expect(
        &server,
        Method::POST,
        TICKETS,
        &sam_token,
        Some(json!({
            "subject": "Your certificate expires",
            "message": "We noticed it expires soon.",
            "customerId": john_id,
            "priority": "urgent",
        })),
        created,
    )
    .await;
    expect(
        &server,
        Method::POST,
        &action(text(&third["id"]), "resolve"),
        &sam_token,
        None,
        ok,
    )
    .await;

    let foreign = expect(
        &server,
        Method::POST,
        TICKETS,
        &fran_token,
        Some(json!({"subject": "Hej", "message": "Något är fel 🙂"})),
        created,
    )
    .await;
    let foreign_thread = format!("{TICKETS}/{}/messages", text(&foreign["id"]));
    let reply = Some(json!({"message": "Vi tittar på det."}));
    expect(
        &server,
        Method::POST,
        &foreign_thread,
        &fred_token,
        reply,
        created,
    )
    .await;
    // Jane opens a ticket about a booking through the agency API and
    // reads her first ticket there, so that it has nothing unread.
    if agency {
        let jane_app = (jane_token.as_str(), acme_signature.as_str());
        let (status, _) = server
            .call_agency(Method::GET, "/api/v1/client/tickets/1", jane_app, None)
            .await;
        assert_eq!(status, ok);
        let booking = json!({"subject": "Scratched door", "message": "Photo to follow.", "category": "damage", "booking_id": 42});
        let (status, _) = server
            .call_agency(
                Method::POST,
                "/api/v1/client/tickets",
                jane_app,
                Some(booking),
            )
            .await;
        assert_eq!(status, created);
    }
    assert_eq!(server.terminate().code(), Some(0), "{}", server.log());

    let caller = |label, token: &str, signature: &str| Caller {
        label,
        token: token.to_owned(),
        signature: signature.to_owned(),
    };
    vec![
        caller("jane", &jane_token, &acme_signature),
        caller(
            "jane's revoked key",
            text(&old_key["token"]),
            &acme_signature,
        ),
        caller("john", &john_token, &acme_signature),
        caller("sam", &sam_token, &acme_signature),
        caller("sam read-only", text(&read_only["token"]), &acme_signature),
        caller("bot", &bot_token, &acme_signature),
        caller("fran", &fran_token, &other_signature),
        caller("fred", &fred_token, &other_signature),
    ]
}

/// What the API answers each caller to every read it can make (and to a
/// write the read-only key may not make): full bodies for successes, the
/// status and `code` for problems (whose ids and times differ per request).
async fn snapshot(server: &Server, callers: &[Caller]) -> Vec<(String, u16, Value)> {
    let mut answers = Vec::new();
    for caller in callers {
        // The agency API's tickets, with their messages' integer ids, then
        // its list, with unread counts (viewed first, so that the views
        // change nothing the second time); its request ids and times
        // differ per request.
        for number in 1..=5 {
            let (status, body) = server
                .call_agency(
                    Method::GET,
                    &format!("/api/v1/client/tickets/{number}"),
                    (&caller.token, &caller.signature),
                    None,
                )
                .await;
            answers.push((
                format!("{}: agency ticket {number}", caller.label),
                status.as_u16(),
                json!({"data": body["data"], "message": body["message"]}),
            ));
        }
        let (status, body) = server
            .call_agency(
                Method::GET,
                "/api/v1/client/tickets?per_page=100",
                (&caller.token, &caller.signature),
                None,
            )
            .await;
        let kept = json!({"data": body["data"], "meta": body["meta"], "message": body["message"]});
        answers.push((
            format!("{}: agency list", caller.label),
            status.as_u16(),
            kept,
        ));
        let mut get = async |path: String| -> Value {
            let (status, body) = server.call(Method::GET, &path, &caller.token, None).await;
            let kept = if status.is_success() {
                body.clone()
            } else {
                body["code"].clone()
            };
            answers.push((
                format!("{}: GET {path}", caller.label),
                status.as_u16(),
                kept,
            ));
            body
        };
        let list = get(format!("{TICKETS}?limit=100")).await;
        let page = get(format!("{TICKETS}?limit=2")).await;
        if let Some(cursor) = page["nextCursor"].as_str() {
            get(format!("{TICKETS}?limit=2&cursor={cursor}")).await;
        }
        get(format!("{TICKETS}?status=closed")).await;
        for ticket in list["data"].as_array().into_iter().flatten() {
            let id = text(&ticket["id"]);
            get(format!("{TICKETS}/{id}")).await;
            get(format!("{TICKETS}/{}", ticket["number"])).await;
            let thread = get(format!("{TICKETS}/{id}/messages")).await;
            let page = get(format!("{TICKETS}/{id}/messages?limit=1")).await;
            if let Some(cursor) = page["nextCursor"].as_str() {
                get(format!("{TICKETS}/{id}/messages?limit=1&cursor={cursor}")).await;
            }
            for message in thread["data"].as_array().into_iter().flatten() {
                get(format!("{TICKETS}/{id}/messages/{}", text(&message["id"]))).await;
            }
        }
        if caller.label == "sam read-only" {
            let reply = Some(json!({"message": "x"}));
            let path = format!("{TICKETS}/1/messages");
            let (status, body) = server.call(Method::POST, &path, &caller.token, reply).await;
            answers.push((
                format!("{}: reply", caller.label),
                status.as_u16(),
                body["code"].clone(),
            ));
        }
    }
    answers
}

/// Runs `ticketd --database <scratch's> ARGS` with `input` on stdin.
fn run_with_stdin(scratch: &Scratch, args: &[&str], input: &[u8]) -> Output {
    let mut child = scratch
        .command()
        .arg("--database")
        .arg(scratch.db_url())
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let input = input.to_vec();
    // The child may stop reading early (a refused dump); a broken pipe is
    // then expected.
    let writer = std::thread::spawn(move || {
        let _ = stdin.write_all(&input);
    });
    let output = child.wait_with_output().unwrap();
    writer.join().unwrap();
    output
}

/// Runs `ticketd export` to stdout; returns the dump.
#[track_caller]
fn export_stdout(scratch: &Scratch) -> String {
    let output = scratch.run(&["export"]);
    assert!(
        output.status.success(),
        "export failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&output.stderr), "");
    String::from_utf8(output.stdout).unwrap()
}

/// A scratch directory with a SQLite database: where dumps come from.
fn source() -> Scratch {
    Scratch::new(Backend::Sqlite).expect("SQLite is always available")
}

/// The scratch's database, opened in-process.
async fn open(scratch: &Scratch) -> Arc<dyn Store> {
    let url = DatabaseUrl::parse(&scratch.db_url()).unwrap();
    ticketd::store::open(&url).await.unwrap()
}

async fn is_empty(scratch: &Scratch) -> bool {
    open(scratch).await.is_empty().await.unwrap()
}

#[tokio::test]
async fn a_moved_database_answers_exactly_as_before() {
    let source = source();
    let callers = populate(&source, true).await;
    let mut server = source.serve().await;
    let before = snapshot(&server, &callers).await;
    assert_eq!(server.terminate().code(), Some(0), "{}", server.log());

    let dump_path = source.dir.path().join("dump.jsonl");
    let dump_arg = dump_path.to_str().unwrap();
    let counts = json!({"workspaces": 2, "users": 6, "apiKeys": 8, "tickets": 5, "messages": 8, "readMarkers": 8, "uploads": 0});
    assert_eq!(
        source.json(&["export", "--output", dump_arg]),
        json!({"exported": counts})
    );
    let dump = std::fs::read_to_string(&dump_path).unwrap();
    assert_eq!(export_stdout(&source), dump, "stdout and file dumps differ");
    let lines: Vec<&str> = dump.lines().collect();
    assert_eq!(lines.len(), 1 + 37 + 1);
    assert_eq!(
        lines[0],
        r#"{"format":"ticketd-dump","version":4,"decrypted":false}"#
    );
    assert_eq!(
        lines[38],
        r#"{"type":"end","workspaces":2,"users":6,"api_keys":8,"tickets":5,"messages":8,"read_markers":8,"uploads":0}"#
    );
    assert_eq!(dump.matches(r#""agency_signature_kid":""#).count(), 2);
    assert_eq!(dump.matches(r#""booking_id":42"#).count(), 1);
    // Encrypted bodies are written sealed, as stored.
    for secret in ["hunter2", "invoice question"] {
        assert!(!dump.contains(secret), "{secret} in {dump}");
    }
    assert_eq!(dump.matches(r#""body":"tkdenc:v1:"#).count(), 2, "{dump}");
    assert_eq!(dump.matches(r#""encrypted":true"#).count(), 2, "{dump}");

    let Some(target) = Scratch::new(BACKEND) else {
        return;
    };
    // The key file goes along with the dump.
    target.copy_key_file(&source.key_file());
    assert_eq!(
        target.json(&["import", "--input", dump_arg]),
        json!({"imported": counts})
    );
    assert_eq!(
        export_stdout(&target),
        dump,
        "the round trip changed the dump"
    );

    let mut server = target.serve().await;
    let after = snapshot(&server, &callers).await;
    assert_eq!(after.len(), before.len());
    for (before, after) in before.iter().zip(&after) {
        assert_eq!(before, after);
    }
    let answered = |label: &str, status: u16| {
        before
            .iter()
            .filter(|(what, code, _)| what.starts_with(label) && *code == status)
            .count()
    };
    // Lists: all, two per page (and the next page when there is one), the
    // closed ones. Each ticket: by id, by number, its thread, one message per
    // page (and the next page), each message: 8 reads for the three-message
    // thread, 7 for two messages, 5 for one.
    assert_eq!(answered("sam: GET", 200), 4 + 8 + 5 + 5 + 5, "{before:#?}");
    assert_eq!(answered("jane: GET", 200), 4 + 8 + 5 + 5, "{before:#?}");
    assert_eq!(answered("fran: GET", 200), 3 + 7, "{before:#?}");
    // And the agency API's five tickets and its list.
    assert_eq!(
        answered("jane's revoked key", 401),
        3 + 5 + 1,
        "{before:#?}"
    );
    let agency_ticket = &before
        .iter()
        .find(|(what, _, _)| what == "jane: agency ticket 1")
        .unwrap()
        .2;
    let message_ids: Vec<i64> = agency_ticket["data"]["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|message| message["id"].as_i64().unwrap())
        .collect();
    assert_eq!(message_ids.len(), 3, "{agency_ticket}");
    assert!(
        before.contains(&("sam read-only: reply".to_owned(), 403, json!("forbidden"))),
        "{before:#?}"
    );

    // Numbers and threads go on where they were.
    let jane = &callers[0].token;
    let next = expect(
        &server,
        Method::POST,
        TICKETS,
        jane,
        Some(json!({"subject": "After the move", "message": "Still here?"})),
        StatusCode::CREATED,
    )
    .await;
    assert_eq!(next["number"], 5);
    let reply = Some(json!({"message": "One more thing"}));
    let path = format!("{TICKETS}/1/messages");
    expect(
        &server,
        Method::POST,
        &path,
        jane,
        reply,
        StatusCode::CREATED,
    )
    .await;
    let thread = expect(&server, Method::GET, &path, jane, None, StatusCode::OK).await;
    let bodies: Vec<&str> = thread["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|message| text(&message["body"]))
        .collect();
    assert_eq!(
        bodies,
        [
            "It stopped at noon.",
            "**Rebooted** it.",
            "My password is hunter2",
            "One more thing"
        ]
    );
    assert_eq!(server.terminate().code(), Some(0), "{}", server.log());
}

/// A small database's dump, written to the scratch directory.
fn small_dump(scratch: &Scratch) -> (String, String) {
    let workspace = scratch.create_workspace("Acme Hosting");
    let workspace = text(&workspace["id"]).to_owned();
    user_with_key(scratch, &workspace, "customer", "Jane Example");
    user_with_key(scratch, &workspace, "staff", "Sam Staff");
    let path = scratch.dir.path().join("dump.jsonl");
    let path = path.to_str().unwrap().to_owned();
    scratch.json(&["export", "--output", &path]);
    let dump = std::fs::read_to_string(&path).unwrap();
    (path, dump)
}

#[tokio::test]
async fn import_refuses_a_database_that_is_not_empty() {
    let source = source();
    let (path, dump) = small_dump(&source);
    let Some(target) = Scratch::new(BACKEND) else {
        return;
    };
    target.create_workspace("Already Here");
    let stderr = target.fails(&["import", "--input", &path]);
    assert_eq!(
        stderr,
        format!(
            "ticketd: {} is not empty: import only into a new, empty database\n",
            DatabaseUrl::parse(&target.db_url()).unwrap().redacted()
        )
    );
    let stderr = refused(
        &run_with_stdin(&target, &["import"], dump.as_bytes()),
        &["import"],
    );
    assert!(stderr.contains("is not empty"), "{stderr}");
    let kept = export_stdout(&target);
    assert!(
        kept.contains("Already Here") && !kept.contains("Jane Example"),
        "{kept}"
    );

    // A database that was imported into is not empty either.
    let Some(fresh) = Scratch::new(BACKEND) else {
        return;
    };
    fresh.json(&["import", "--input", &path]);
    let stderr = fresh.fails(&["import", "--input", &path]);
    assert!(stderr.contains("is not empty"), "{stderr}");
    assert_eq!(export_stdout(&fresh), dump);
}

#[tokio::test]
async fn import_refuses_a_truncated_or_edited_dump() {
    let source = source();
    let (_, dump) = small_dump(&source);
    let lines: Vec<&str> = dump.lines().collect();
    assert_eq!(lines.len(), 7, "{dump}");
    let joined = |lines: &[&str]| {
        lines
            .iter()
            .map(|line| format!("{line}\n"))
            .collect::<String>()
    };
    let without_trailer = joined(&lines[..6]);
    // A key's line: nothing refers to keys, so only the trailer tells.
    let mut without_a_key = lines.clone();
    without_a_key.remove(4);
    // A user's line: the first key of that user refers to no user.
    let mut without_a_user = lines.clone();
    let user: Value = serde_json::from_str(without_a_user.remove(2)).unwrap();
    let (orphan_line, orphan_key) = without_a_user
        .iter()
        .enumerate()
        .find_map(|(index, line)| {
            let record: Value = serde_json::from_str(line).ok()?;
            (record["user_id"] == user["id"]).then(|| (index + 1, record["id"].clone()))
        })
        .unwrap();
    let wrong_count = dump.replace(r#""users":2"#, r#""users":3"#);
    let cut_mid_line = &dump[..dump.len() - 40];
    let mut reordered = lines.clone();
    reordered.swap(2, 3);
    let with_extra = format!("{dump}\n");
    let unknown_member = dump.replacen(
        r#""plan":"standard""#,
        r#""plan":"standard","color":"red""#,
        1,
    );
    let cases: Vec<(&str, String, String)> =
        vec![
        (
            "no trailer",
            without_trailer,
            "line 7: the dump ends without its trailer line: it is truncated".into(),
        ),
        (
            "a record missing",
            joined(&without_a_key),
            "line 6: the trailer counts 1 workspaces, 2 users, 2 api keys, 0 tickets, 0 messages, \
             0 read markers, 0 uploads but the dump holds 1 workspaces, 2 users, 1 api keys, \
             0 tickets, 0 messages, 0 read markers, 0 uploads: it is incomplete or edited"
                .into(),
        ),
        (
            "a referenced record missing",
            joined(&without_a_user),
            format!(
                "line {orphan_line}: api_key {}: user_id: no user {} comes before it in the dump\n",
                text(&orphan_key),
                text(&user["id"])
            ),
        ),
        (
            "a wrong count",
            wrong_count,
            "line 7: the trailer counts 1 workspaces, 3 users".into(),
        ),
        ("cut mid-line", cut_mid_line.to_owned(), "line 7: column ".into()),
        ("reordered", joined(&reordered), "line 4: user usr_".into()),
        ("after the trailer", with_extra, "line 8: nothing may follow the trailer line".into()),
        (
            "an unknown member",
            unknown_member,
            "line 2: unknown field `color`".into(),
        ),
    ];
    let Some(target) = Scratch::new(BACKEND) else {
        return;
    };
    for (case, bad, expected) in &cases {
        let path = target.dir.path().join("bad.jsonl");
        std::fs::write(&path, bad).unwrap();
        let stderr = target.fails(&["import", "--input", path.to_str().unwrap()]);
        assert!(
            stderr.starts_with(&format!("ticketd: {expected}")),
            "{case}: {stderr}"
        );
        let stderr = refused(
            &run_with_stdin(&target, &["import"], bad.as_bytes()),
            &[case],
        );
        assert!(
            stderr.starts_with(&format!("ticketd: {expected}")),
            "{case} on stdin: {stderr}"
        );
        assert!(is_empty(&target).await, "{case} left records behind");
    }
    // The refusals left the target empty: the intact dump imports.
    let output = run_with_stdin(&target, &["import"], dump.as_bytes());
    one_json_line(&output, &["import"]);
    assert_eq!(export_stdout(&target), dump);
}

/// A dump of two workspaces, each with a customer who opened a ticket,
/// and (workspace id, customer id) of each.
async fn two_workspaces_dump(scratch: &Scratch) -> (String, [(String, String); 2]) {
    let mut owners = Vec::new();
    let mut tokens = Vec::new();
    for (workspace, customer) in [("Acme Hosting", "Ann Acme"), ("Bolt Corp", "Bob Bolt")] {
        let workspace = scratch.create_workspace(workspace);
        let workspace = text(&workspace["id"]).to_owned();
        let (customer, token) = user_with_key(scratch, &workspace, "customer", customer);
        owners.push((workspace, customer));
        tokens.push(token);
    }
    let mut server = scratch.serve().await;
    for token in &tokens {
        let ticket = json!({"subject": "Help", "message": "It broke."});
        expect(
            &server,
            Method::POST,
            TICKETS,
            token,
            Some(ticket),
            StatusCode::CREATED,
        )
        .await;
    }
    assert_eq!(server.terminate().code(), Some(0), "{}", server.log());
    (export_stdout(scratch), owners.try_into().unwrap())
}

/// The dump with the record on the first line `pick` accepts replaced by
/// `edit`'s version of it; returns the new dump and that line's number.
fn edited(dump: &str, pick: impl Fn(&Value) -> bool, edit: impl Fn(&mut Value)) -> (String, usize) {
    let mut line = 0;
    let lines: Vec<String> = dump
        .lines()
        .enumerate()
        .map(|(index, text)| {
            let mut record: Value = serde_json::from_str(text).unwrap();
            if line == 0 && pick(&record) {
                line = index + 1;
                edit(&mut record);
                return record.to_string();
            }
            text.to_owned()
        })
        .collect();
    assert_ne!(line, 0, "nothing to edit in {dump}");
    (lines.iter().map(|line| format!("{line}\n")).collect(), line)
}

/// The finding: a dump edited so that a ticket of one workspace names a
/// customer of another, or with a message of 3,000,000 characters and a
/// NUL, is refused with the record and its line, and nothing is imported
/// (from a file or from stdin). Afterwards the intact dump still imports.
#[tokio::test]
async fn import_refuses_references_across_workspaces_and_text_the_api_refuses() {
    let source = source();
    let (dump, [(acme, ann), (bolt, _)]) = two_workspaces_dump(&source).await;
    let (crossed, crossed_line) = edited(
        &dump,
        |record| record["type"] == "ticket" && record["workspace_id"] == bolt.as_str(),
        |record| record["customer_id"] = json!(ann),
    );
    let crossed_ticket: Value =
        serde_json::from_str(crossed.lines().nth(crossed_line - 1).unwrap()).unwrap();
    let long_body = format!("{}\0", "x".repeat(2_999_999));
    let (oversized, oversized_line) = edited(
        &dump,
        |record| record["type"] == "message",
        |record| record["body"] = json!(long_body),
    );
    assert!(oversized.contains("\\u0000"), "the NUL is in the dump");
    let message: Value =
        serde_json::from_str(oversized.lines().nth(oversized_line - 1).unwrap()).unwrap();
    let cases = [
        (
            crossed,
            format!(
                "ticketd: line {crossed_line}: ticket {}: customer_id: {ann} is a user of \
                 workspace {acme}, not of the ticket's workspace {bolt}\n",
                text(&crossed_ticket["id"])
            ),
        ),
        (
            oversized,
            format!(
                "ticketd: line {oversized_line}: message {} (1 of {}): body: must be at most \
                 25000 characters long (got 3000000)\n",
                text(&message["id"]),
                text(&message["ticket_id"])
            ),
        ),
    ];
    let Some(target) = Scratch::new(BACKEND) else {
        return;
    };
    for (bad, expected) in &cases {
        let path = target.dir.path().join("edited.jsonl");
        std::fs::write(&path, bad).unwrap();
        assert_eq!(
            &target.fails(&["import", "--input", path.to_str().unwrap()]),
            expected
        );
        assert!(is_empty(&target).await, "a refused dump left records");
        let stderr = refused(
            &run_with_stdin(&target, &["import"], bad.as_bytes()),
            &["import"],
        );
        assert_eq!(&stderr, expected, "on stdin");
        assert!(is_empty(&target).await, "a refused dump left records");
    }
    let output = run_with_stdin(&target, &["import"], dump.as_bytes());
    one_json_line(&output, &["import"]);
    assert_eq!(export_stdout(&target), dump);
}

#[tokio::test]
async fn import_refuses_another_version_or_format() {
    let source = source();
    let (_, dump) = small_dump(&source);
    let Some(target) = Scratch::new(BACKEND) else {
        return;
    };
    let newer = dump.replacen(r#""version":4"#, r#""version":5"#, 1);
    let headerless = dump
        .lines()
        .skip(1)
        .map(|line| format!("{line}\n"))
        .collect::<String>();
    let cases = [
        (
            newer,
            "ticketd: line 1: unsupported dump version 5: this ticketd reads versions 1 to 4\n",
        ),
        (
            headerless,
            "ticketd: line 1: not a ticketd dump: the first line must be {\"format\":\"ticketd-dump\",\"version\":4,\"decrypted\":false}\n",
        ),
        (
            "id,name\n1,Acme\n".to_owned(),
            "ticketd: line 1: not a ticketd dump: the first line must be {\"format\":\"ticketd-dump\",\"version\":4,\"decrypted\":false}\n",
        ),
        (String::new(), "ticketd: line 1: the dump is empty\n"),
    ];
    for (bad, expected) in cases {
        let stderr = refused(
            &run_with_stdin(&target, &["import"], bad.as_bytes()),
            &["import"],
        );
        assert_eq!(stderr, expected);
    }
    assert!(is_empty(&target).await);
}

#[test]
fn export_refuses_a_database_ticketd_never_created() {
    let Some(scratch) = Scratch::new(BACKEND) else {
        return;
    };
    let output = scratch.dir.path().join("dump.jsonl");
    let args = ["export", "--output", output.to_str().unwrap()];
    let expected = "ticketd: no ticketd database at ";
    assert!(scratch.fails(&args).starts_with(expected));
    // Nothing was created: not the schema (the same refusal again), not a file.
    assert!(scratch.fails(&args).starts_with(expected));
    assert_eq!(std::fs::read_dir(scratch.dir.path()).unwrap().count(), 0);
}

/// Export writes to an owner-only file of its own and renames it over the
/// output: links placed at the output or at the name exports once wrote
/// through (`F.partial`) are not followed, and what they point to is left
/// alone.
#[cfg(unix)]
#[test]
fn export_never_writes_through_a_link() {
    use std::os::unix::fs::{PermissionsExt, symlink};

    let Some(scratch) = Scratch::new(BACKEND) else {
        return;
    };
    scratch.create_workspace("Acme Hosting");
    let dir = scratch.dir.path();
    let unrelated = dir.join("unrelated.txt");
    let other = dir.join("other.txt");
    std::fs::write(&unrelated, "not a dump").unwrap();
    std::fs::write(&other, "not a dump either").unwrap();
    let output = dir.join("dump.jsonl");
    let partial = dir.join("dump.jsonl.partial");
    symlink(&unrelated, &partial).unwrap();
    symlink(&other, &output).unwrap();

    let exported = scratch.json(&["export", "--output", output.to_str().unwrap()]);
    assert_eq!(exported["exported"]["workspaces"], 1, "{exported}");
    assert_eq!(std::fs::read_to_string(&unrelated).unwrap(), "not a dump");
    assert_eq!(
        std::fs::read_to_string(&other).unwrap(),
        "not a dump either"
    );
    assert_eq!(std::fs::read_link(&partial).unwrap(), unrelated);
    let meta = std::fs::symlink_metadata(&output).unwrap();
    assert!(meta.is_file(), "the link was replaced by the dump");
    assert_eq!(meta.permissions().mode() & 0o777, 0o600);
    assert_eq!(
        std::fs::read_to_string(&output).unwrap(),
        export_stdout(&scratch)
    );
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|entry| entry.unwrap().file_name().into_string().unwrap())
        .collect();
    names.sort();
    assert_eq!(
        names,
        [
            "dump.jsonl",
            "dump.jsonl.partial",
            "other.txt",
            "unrelated.txt"
        ],
        "no temporary file is left behind"
    );

    // An export that cannot create its file leaves nothing either.
    let missing = dir.join("no-such-dir").join("dump.jsonl");
    let stderr = scratch.fails(&["export", "--output", missing.to_str().unwrap()]);
    assert!(
        stderr.starts_with(&format!(
            "ticketd: cannot create a file beside {}: ",
            missing.display()
        )),
        "{stderr}"
    );
}

#[test]
fn import_refuses_a_missing_dump_file() {
    let Some(target) = Scratch::new(BACKEND) else {
        return;
    };
    let stderr = target.fails(&["import", "--input", "no-such-dump.jsonl"]);
    assert!(
        stderr.starts_with("ticketd: cannot open no-such-dump.jsonl: "),
        "{stderr}"
    );
}

/// A database with a few thousand messages, made through the store.
async fn busy_database(scratch: &Scratch) -> Arc<dyn Store> {
    let store = open(scratch).await;
    let workspace = store
        .create_workspace(NewWorkspace {
            id: WorkspaceId::generate(),
            name: "Busy".into(),
            code: WorkspaceCode::parse("BUSY").unwrap(),
            created_at: Timestamp::now(),
        })
        .await
        .unwrap();
    let customer = store
        .create_user(NewUser {
            id: UserId::generate(),
            workspace_id: workspace.id,
            role: Role::Customer,
            name: "Chatty".into(),
            email: None,
            created_at: Timestamp::now(),
        })
        .await
        .unwrap();
    let actor = Actor {
        workspace_id: workspace.id,
        user_id: customer.id,
        role: Role::Customer,
        name: customer.name,
        scope: TicketScope::ByRole,
    };
    let message = |text: String| NewMessage {
        id: MessageId::generate(),
        body: MessageBody::parse(text).unwrap(),
        body_format: BodyFormat::Plain,
        encrypted: false,
        sent_at: Timestamp::now(),
        attachments: Vec::new(),
        attach_limits: Default::default(),
        task: None,
    };
    let mut replies = Vec::new();
    for number in 0..3 {
        let ticket = store
            .create_ticket(
                &actor,
                NewTicket {
                    id: TicketId::generate(),
                    subject: Subject::parse(format!("Ticket {number}")).unwrap(),
                    priority: Priority::Normal,
                    category: None,
                    booking_id: None,
                    on_behalf_of: None,
                    first_message: message("First".into()),
                },
                None,
            )
            .await
            .map(Written::into_value)
            .unwrap();
        for i in 0..700 {
            let store = Arc::clone(&store);
            let actor = actor.clone();
            let new = message(format!("Reply {i} to {number}"));
            replies.push(tokio::spawn(async move {
                store
                    .append_message(&actor, TicketRef::Id(ticket.id), new, None)
                    .await
                    .map(Written::into_value)
            }));
        }
    }
    for reply in replies {
        reply.await.unwrap().unwrap();
    }
    store
}

/// The keys an in-process import opens sealed bodies with (these dumps
/// hold none).
fn keys() -> Keyring {
    Keyring::new(vec![DataKey::generate().unwrap()]).unwrap()
}

/// The blob store of a scratch directory (these dumps hold no files).
fn files(scratch: &Scratch) -> DumpFiles {
    let blobs = LocalBlobs::open(&scratch.dir.path().join("blobs")).unwrap();
    DumpFiles {
        blobs: Arc::new(blobs),
        keys: None,
    }
}

async fn export_bytes(store: &dyn Store, files: &DumpFiles, page_size: u32) -> Vec<u8> {
    let mut dump = Vec::new();
    transfer::export(store, files, ExportBodies::Sealed, &mut dump, page_size)
        .await
        .unwrap();
    dump
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn large_dumps_stream_in_pages_and_batches() {
    let source = source();
    let store = busy_database(&source).await;
    let source_files = files(&source);
    let dump = export_bytes(store.as_ref(), &source_files, EXPORT_PAGE_SIZE).await;
    // Pages of 7 cross every kind's boundaries and hundreds of message pages.
    assert!(
        export_bytes(store.as_ref(), &source_files, 7).await == dump,
        "paging changed the dump"
    );
    let text_dump = String::from_utf8(dump.clone()).unwrap();
    assert!(text_dump.ends_with(
        "{\"type\":\"end\",\"workspaces\":1,\"users\":1,\"api_keys\":0,\"tickets\":3,\"messages\":2103,\"read_markers\":3,\"uploads\":0}\n"
    ));

    for batching in [
        Batching {
            records: 13,
            bytes: 1 << 20,
        },
        Batching {
            records: 1000,
            bytes: 4096,
        },
    ] {
        let Some(target) = Scratch::new(BACKEND) else {
            return;
        };
        let store = open(&target).await;
        let target_files = files(&target);
        let counts = transfer::import(
            store.as_ref(),
            &target_files,
            dump.as_slice(),
            batching,
            &keys(),
        )
        .await
        .unwrap();
        assert_eq!(counts.total(), 2111);
        assert!(
            export_bytes(store.as_ref(), &target_files, EXPORT_PAGE_SIZE).await == dump,
            "{batching:?}"
        );
    }

    // A bad line near the end of a large dump: from a file the whole dump is
    // checked before anything is written.
    let lines: Vec<&str> = text_dump.lines().collect();
    let bad_line = lines.len() - 1;
    let mut damaged = lines.clone();
    let truncated_record = &lines[bad_line - 1][..20];
    damaged[bad_line - 1] = truncated_record;
    let damaged: String = damaged.iter().map(|line| format!("{line}\n")).collect();
    let Some(target) = Scratch::new(BACKEND) else {
        return;
    };
    let path = source.dir.path().join("damaged.jsonl");
    std::fs::write(&path, &damaged).unwrap();
    let stderr = target.fails(&["import", "--input", path.to_str().unwrap()]);
    assert!(
        stderr.starts_with(&format!("ticketd: line {bad_line}: column ")),
        "{stderr}"
    );
    assert!(is_empty(&target).await, "a checked dump wrote records");

    // So is a well-formed record near the end that may not be imported
    // (the last message, before the tickets' read markers).
    let markers = lines
        .iter()
        .filter(|line| line.starts_with(r#"{"type":"read_marker","#))
        .count();
    let last_message = lines.len() - 1 - markers;
    let target_record: Value = serde_json::from_str(lines[last_message - 1]).unwrap();
    let (misattributed, line) = edited(
        &text_dump,
        |record| *record == target_record,
        |record| record["sender_role"] = json!("staff"),
    );
    assert_eq!(line, last_message);
    std::fs::write(&path, &misattributed).unwrap();
    let stderr = target.fails(&["import", "--input", path.to_str().unwrap()]);
    assert!(
        stderr.starts_with(&format!("ticketd: line {line}: message tmsg_"))
            && stderr.ends_with(": sender_role: the sender is customer, not staff\n"),
        "{stderr}"
    );
    assert!(is_empty(&target).await, "a checked dump wrote records");

    // From stdin too: the dump is kept aside and checked whole first.
    let output = run_with_stdin(&target, &["import"], damaged.as_bytes());
    let stderr = refused(&output, &["import"]);
    assert!(
        stderr.starts_with(&format!("ticketd: line {bad_line}: column ")),
        "{stderr}"
    );
    assert!(!stderr.contains("were imported before this"), "{stderr}");
    assert!(is_empty(&target).await, "a checked dump wrote records");
}

/// A PNG of `len` bytes whose content depends on `seed`.
fn png(len: usize, seed: u8) -> Vec<u8> {
    let mut data = b"\x89PNG\r\n\x1a\n".to_vec();
    data.extend((0..len - 8).map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed)));
    data
}

/// Uploads `data` as a PNG (sealed if `encrypted`); the upload's id.
async fn upload(server: &Server, token: &str, data: &[u8], encrypted: bool) -> String {
    let response = reqwest::Client::new()
        .post(format!(
            "{}/api/v2/support/uploads?filename=f.png&encrypted={encrypted}",
            server.base_url
        ))
        .bearer_auth(token)
        .header("content-type", "image/png")
        .body(data.to_vec())
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::CREATED);
    let upload: Value = response.json().await.unwrap();
    text(&upload["id"]).to_owned()
}

async fn download(server: &Server, token: &str, url: &str) -> Vec<u8> {
    let response = reqwest::Client::new()
        .get(format!("{}{url}", server.base_url))
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK, "{url}");
    response.bytes().await.unwrap().to_vec()
}

#[tokio::test]
async fn a_moved_database_keeps_every_file_byte_for_byte() {
    let source = source();
    let workspace = source.create_workspace("Acme Hosting");
    let workspace = text(&workspace["id"]).to_owned();
    let (_, jane) = user_with_key(&source, &workspace, "customer", "Jane Example");
    let (plain, sealed, waiting) = (png(150_000, 1), png(200_000, 2), png(1_000, 3));
    let mut server = source.serve().await;
    let ticket = expect(
        &server,
        Method::POST,
        TICKETS,
        &jane,
        Some(json!({"subject": "Files", "message": "See below", "category": "billing"})),
        StatusCode::CREATED,
    )
    .await;
    let thread = format!("{TICKETS}/{}/messages", text(&ticket["id"]));
    let mut urls = Vec::new();
    for (data, encrypted) in [(&plain, false), (&sealed, true)] {
        let id = upload(&server, &jane, data, encrypted).await;
        let reply = expect(
            &server,
            Method::POST,
            &thread,
            &jane,
            Some(json!({"message": "a file", "encrypted": encrypted, "attachments": [id]})),
            StatusCode::CREATED,
        )
        .await;
        urls.push(text(&reply["attachments"][0]["url"]).to_owned());
    }
    let waiting_id = upload(&server, &jane, &waiting, false).await;
    assert_eq!(server.terminate().code(), Some(0), "{}", server.log());

    let dump_path = source.dir.path().join("dump.jsonl");
    let dump_arg = dump_path.to_str().unwrap();
    let counts = json!({"workspaces": 1, "users": 1, "apiKeys": 1, "tickets": 1, "messages": 3, "readMarkers": 1, "uploads": 3});
    assert_eq!(
        source.json(&["export", "--output", dump_arg]),
        json!({"exported": counts})
    );
    let dump = std::fs::read_to_string(&dump_path).unwrap();
    // Each file's bytes follow its record; the sealed one as stored.
    assert_eq!(dump.matches(r#"{"type":"upload","#).count(), 3);
    assert_eq!(dump.matches(r#""content_key":"tkdupl:v1:"#).count(), 1);
    let data_lines = dump.matches(r#"{"type":"upload_data","#).count();
    let chunk = ticketd::core::dump::DATA_CHUNK_BYTES;
    let sealed_len = ticketd::core::crypto::stream::sealed_len(sealed.len() as u64) as usize;
    assert_eq!(
        data_lines,
        plain.len().div_ceil(chunk) + sealed_len.div_ceil(chunk) + 1
    );
    assert!(
        dump.ends_with(",\"uploads\":3}\n"),
        "{}",
        &dump[dump.len() - 120..]
    );

    let Some(target) = Scratch::new(BACKEND) else {
        return;
    };
    target.copy_key_file(&source.key_file());
    assert_eq!(
        target.json(&["import", "--input", dump_arg]),
        json!({"imported": counts})
    );
    assert!(
        export_stdout(&target) == dump,
        "the round trip changed the dump"
    );
    let mut server = target.serve().await;
    assert!(download(&server, &jane, &urls[0]).await == plain);
    assert!(download(&server, &jane, &urls[1]).await == sealed);
    // The unattached upload moved too, and is attached after the move; the
    // ticket's files are counted as before.
    let reply = expect(
        &server,
        Method::POST,
        &thread,
        &jane,
        Some(json!({"message": "one more", "attachments": [waiting_id]})),
        StatusCode::CREATED,
    )
    .await;
    let url = text(&reply["attachments"][0]["url"]).to_owned();
    assert!(download(&server, &jane, &url).await == waiting);
    assert_eq!(server.terminate().code(), Some(0), "{}", server.log());

    // A decrypted dump holds the sealed file as plaintext; a database with
    // a key file of its own seals it anew on import.
    let decrypted = source.run(&["export", "--decrypt"]);
    assert!(decrypted.status.success());
    let decrypted = String::from_utf8(decrypted.stdout).unwrap();
    assert_eq!(decrypted.matches(r#""content_key":null"#).count(), 3);
    let Some(other) = Scratch::new(BACKEND) else {
        return;
    };
    let path = source.dir.path().join("decrypted.jsonl");
    std::fs::write(&path, &decrypted).unwrap();
    assert_eq!(
        other.json(&["import", "--input", path.to_str().unwrap()]),
        json!({"imported": counts})
    );
    let resealed = export_stdout(&other);
    assert_eq!(resealed.matches(r#""content_key":"tkdupl:v1:"#).count(), 1);
    let server = other.serve().await;
    assert!(download(&server, &jane, &urls[1]).await == sealed);
    assert!(download(&server, &jane, &urls[0]).await == plain);
}

#[tokio::test]
async fn import_refuses_a_file_whose_bytes_do_not_match_its_record() {
    let source = source();
    let workspace = source.create_workspace("Acme Hosting");
    let workspace = text(&workspace["id"]).to_owned();
    let (_, jane) = user_with_key(&source, &workspace, "customer", "Jane Example");
    let mut server = source.serve().await;
    upload(&server, &jane, &png(70_000, 9), false).await;
    assert_eq!(server.terminate().code(), Some(0), "{}", server.log());
    let dump = export_stdout(&source);
    let Some(target) = Scratch::new(BACKEND) else {
        return;
    };
    let lines: Vec<&str> = dump.lines().collect();
    let record = lines
        .iter()
        .position(|line| line.starts_with(r#"{"type":"upload","#))
        .unwrap();
    let path = source.dir.path().join("edited.jsonl");
    // One byte changed, a line dropped, a line added.
    let mut changed: Value = serde_json::from_str(lines[record + 1]).unwrap();
    let data = changed["data"].as_str().unwrap().to_owned();
    changed["data"] = json!(format!("A{}", &data[1..]));
    let cases = [
        (
            record + 1,
            changed.to_string(),
            "sha256: its bytes have the digest ",
        ),
        (record + 2, String::new(), "bytes follow it, not the 70000"),
        (
            record + 2,
            format!("{}\n{}", lines[record + 2], lines[record + 2]),
            "more than its 70000 bytes follow it",
        ),
    ];
    for (index, replacement, expected) in cases {
        let mut edited: Vec<String> = lines.iter().map(|line| (*line).to_owned()).collect();
        edited[index] = replacement;
        let text: String = edited
            .iter()
            .filter(|line| !line.is_empty())
            .map(|line| format!("{line}\n"))
            .collect();
        std::fs::write(&path, text).unwrap();
        let stderr = target.fails(&["import", "--input", path.to_str().unwrap()]);
        assert!(
            stderr.contains(": upload upl_") && stderr.contains(expected),
            "{expected}: {stderr}"
        );
        assert!(is_empty(&target).await);
    }
}

#[tokio::test]
async fn dumps_of_versions_1_to_3_still_import() {
    let source = source();
    populate(&source, false).await;
    let dump = export_stdout(&source);
    // What a ticketd from before the header said how encrypted bodies
    // follow wrote for the same database, one from before read markers
    // (each user had read up to their own latest message, which the
    // import gives them back), and one from before uploads.
    let version_3 = dump.replacen(r#""version":4,"decrypted":false"#, r#""version":3"#, 1);
    assert_ne!(version_3, dump);
    let markers = dump.matches(r#"{"type":"read_marker","#).count();
    assert!(markers > 0);
    let version_2 = version_3
        .lines()
        .filter(|line| !line.starts_with(r#"{"type":"read_marker","#))
        .map(|line| format!("{line}\n"))
        .collect::<String>()
        .replacen(r#""version":3"#, r#""version":2"#, 1)
        .replacen(&format!(r#","read_markers":{markers}"#), "", 1);
    let version_1 = version_2
        .replacen(r#""version":2"#, r#""version":1"#, 1)
        .replace(r#","category":null"#, "")
        .replacen(r#","uploads":0}"#, "}", 1);
    assert!(!version_1.contains("category") && !version_2.contains("read_marker"));
    for old in [version_3, version_2, version_1] {
        let Some(target) = Scratch::new(BACKEND) else {
            return;
        };
        target.copy_key_file(&source.key_file());
        let output = run_with_stdin(&target, &["import"], old.as_bytes());
        assert!(
            output.status.success(),
            "{}",
            String::from_utf8_lossy(&output.stderr)
        );
        // Exported again, it is the version 4 dump of the same data.
        assert!(export_stdout(&target) == dump);
    }
}
