//! Body formats: every message the API returns carries `html`, the body
//! rendered and sanitised, next to `body` exactly as sent; XSS vectors in
//! either format come out inert in the reply's response, one message's GET
//! and the thread's list.

use std::cell::RefCell;

use html5ever::tendril::StrTendril;
use html5ever::tokenizer::{
    BufferQueue, Tag, TagKind, Token, TokenSink, TokenSinkResult, Tokenizer, TokenizerOpts,
};
use reqwest::StatusCode;
use serde_json::{Value, json};

use super::BACKEND;
use crate::helpers::{TestApp, TestUser};

/// A reply body mixing Markdown with well-known XSS vectors.
const MARKDOWN_ATTACK: &str = "**Hi** <script>alert(1)</script> and <b onmouseover=alert(1)>x</b>

<img src=x onerror=alert(1)>

[a](javascript:alert(1)) [b](JaVaScRiPt:alert(1)) [c](data:text/html;base64,PHNjcmlwdD4=) [d](https://example.com/help) <vbscript:msgbox(1)>

<iframe src=\"https://evil.example\"></iframe>

<svg onload=alert(1)>

![x](https://evil.example/pixel.png)";

/// What [`MARKDOWN_ATTACK`] renders to.
const MARKDOWN_ATTACK_HTML: &str = "<p><strong>Hi</strong> &lt;script&gt;alert(1)&lt;/script&gt; and &lt;b onmouseover=alert(1)&gt;x&lt;/b&gt;</p>
<p>&lt;img src=x onerror=alert(1)&gt;</p>
<p><a rel=\"noopener noreferrer nofollow\">a</a> <a rel=\"noopener noreferrer nofollow\">b</a> <a rel=\"noopener noreferrer nofollow\">c</a> <a href=\"https://example.com/help\" rel=\"noopener noreferrer nofollow\">d</a> <a rel=\"noopener noreferrer nofollow\">vbscript:msgbox(1)</a></p>
<p>&lt;iframe src=\"https://evil.example\"&gt;&lt;/iframe&gt;</p>
<p>&lt;svg onload=alert(1)&gt;</p>
<p><a href=\"https://evil.example/pixel.png\" rel=\"noopener noreferrer nofollow\">x</a></p>
";

/// A plain reply body with markup in it.
const PLAIN_ATTACK: &str = "<script>alert(\"x\")</script>\n<a href=\"javascript:alert(1)\">click</a> & **not bold**\r\n\r\n<img src=x onerror=alert(1)>";

/// What [`PLAIN_ATTACK`] renders to.
const PLAIN_ATTACK_HTML: &str = "<p>&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;<br>
&lt;a href=&quot;javascript:alert(1)&quot;&gt;click&lt;/a&gt; &amp; **not bold**</p>
<p>&lt;img src=x onerror=alert(1)&gt;</p>
";

/// The elements the renderer may produce.
const ALLOWED_ELEMENTS: &[&str] = &[
    "a",
    "blockquote",
    "br",
    "code",
    "del",
    "em",
    "h1",
    "h2",
    "h3",
    "h4",
    "h5",
    "h6",
    "hr",
    "li",
    "ol",
    "p",
    "pre",
    "strong",
    "table",
    "tbody",
    "td",
    "th",
    "thead",
    "tr",
    "ul",
];

/// Collects the start tags and comments of a document.
#[derive(Default)]
struct Markup {
    start_tags: RefCell<Vec<Tag>>,
    comments: RefCell<Vec<String>>,
}

impl TokenSink for Markup {
    type Handle = ();

    fn process_token(&self, token: Token, _line: u64) -> TokenSinkResult<()> {
        match token {
            Token::TagToken(tag) if tag.kind == TagKind::StartTag => {
                self.start_tags.borrow_mut().push(tag);
            }
            Token::CommentToken(comment) => self.comments.borrow_mut().push(comment.to_string()),
            _ => {}
        }
        TokenSinkResult::Continue
    }
}

/// Parses `html` and lists whatever in it could run or load anything:
/// elements outside the allow-list, comments, attributes other than the
/// renderer's (so any event handler), links to anything but http, https
/// and mailto URLs, and links without their `rel`. (The text may well contain `onerror=` or `javascript:`,
/// escaped: it is what the sender typed.)
fn live_markup(html: &str) -> Vec<String> {
    let tokenizer = Tokenizer::new(Markup::default(), TokenizerOpts::default());
    let input = BufferQueue::default();
    input.push_back(StrTendril::from(html));
    let _ = tokenizer.feed(&input);
    tokenizer.end();
    let mut found: Vec<String> = tokenizer.sink.comments.take();
    for tag in tokenizer.sink.start_tags.take() {
        let element = &*tag.name;
        if !ALLOWED_ELEMENTS.contains(&element) {
            found.push(format!("<{element}>"));
        }
        for attribute in &tag.attrs {
            let (name, value) = (&*attribute.name.local, &*attribute.value);
            let allowed = match (element, name) {
                ("a", "href") => ["http://", "https://", "mailto:"]
                    .iter()
                    .any(|scheme| value.to_ascii_lowercase().starts_with(scheme)),
                ("a", "rel") => value == "noopener noreferrer nofollow",
                ("a", "title") | ("ol", "start") => true,
                ("code", "class") => value.starts_with("language-"),
                ("th" | "td", "style") => value.starts_with("text-align: "),
                _ => false,
            };
            if !allowed {
                found.push(format!("<{element} {name}={value:?}>"));
            }
        }
        if element == "a" && !tag.attrs.iter().any(|a| &*a.name.local == "rel") {
            found.push("<a> without rel".to_owned());
        }
    }
    found
}

#[track_caller]
fn assert_inert(html: &str) {
    let found = live_markup(html);
    assert!(found.is_empty(), "{found:?} in {html}");
}

#[test]
fn the_inertness_check_finds_live_markup() {
    assert_inert(
        "<p><a href=\"https://example.com\" rel=\"noopener noreferrer nofollow\">x</a> onerror=x javascript:</p>",
    );
    for live in [
        "<script>alert(1)</script>",
        "<p><img src=x onerror=alert(1)></p>",
        "<p onmouseover=\"alert(1)\">x</p>",
        "<a href=\"javascript:alert(1)\" rel=\"noopener noreferrer nofollow\">x</a>",
        "<a href=\"data:text/html,x\" rel=\"noopener noreferrer nofollow\">x</a>",
        "<a href=\"https://example.com\">no rel</a>",
        "<p style=\"background: url(x)\">x</p>",
        "<!-- hidden -->",
    ] {
        assert!(!live_markup(live).is_empty(), "missed {live}");
    }
}

/// Opens a ticket as the main customer and returns its `tkt_` id.
async fn customer_ticket(app: &TestApp) -> String {
    let ticket = app.open_ticket(&app.customer, "Formatting").await;
    ticket["id"].as_str().unwrap().to_owned()
}

/// Replies with `body`, asserts 201, and returns the created message and
/// its `Location`.
async fn reply(app: &TestApp, ticket: &str, user: &TestUser, body: &Value) -> (Value, String) {
    let response = app
        .post(
            &format!("/api/v2/support/tickets/{ticket}/messages"),
            user,
            body,
        )
        .await;
    assert_eq!(response.status, StatusCode::CREATED, "{}", response.text);
    let location = response.header("location").to_owned();
    (response.body, location)
}

/// The message with `id` as one GET and as the thread's list return it.
async fn read_back(app: &TestApp, ticket: &str, location: &str, id: &str) -> [Value; 2] {
    let one = app.get(location, &app.staff).await;
    assert_eq!(one.status, StatusCode::OK, "{}", one.text);
    let list = app
        .get(
            &format!("/api/v2/support/tickets/{ticket}/messages"),
            &app.staff,
        )
        .await;
    assert_eq!(list.status, StatusCode::OK, "{}", list.text);
    let listed = list.body["data"]
        .as_array()
        .unwrap()
        .iter()
        .find(|message| message["id"] == id)
        .unwrap_or_else(|| panic!("{id} not in {}", list.text))
        .clone();
    [one.body, listed]
}

/// Asserts that the reply, its GET and its list entry all carry `body` as
/// sent and `html` as expected.
async fn assert_rendered_everywhere(
    app: &TestApp,
    request: &Value,
    format: &str,
    expected_html: &str,
) {
    let ticket = customer_ticket(app).await;
    let (created, location) = reply(app, &ticket, &app.customer, request).await;
    let id = created["id"].as_str().unwrap().to_owned();
    let [one, listed] = read_back(app, &ticket, &location, &id).await;
    for (what, message) in [("reply", &created), ("GET", &one), ("list", &listed)] {
        assert_eq!(message["body"], request["message"], "{what}: {message}");
        assert_eq!(message["bodyFormat"], format, "{what}: {message}");
        assert_eq!(message["html"], expected_html, "{what}: {message}");
        assert_inert(message["html"].as_str().unwrap());
    }
}

#[tokio::test]
async fn markdown_replies_carry_sanitised_html_everywhere() {
    let Some(app) = TestApp::spawn(BACKEND).await else {
        return;
    };
    let request = json!({"message": MARKDOWN_ATTACK, "bodyFormat": "markdown"});
    assert_rendered_everywhere(&app, &request, "markdown", MARKDOWN_ATTACK_HTML).await;
    app.stop().await;
}

#[tokio::test]
async fn plain_replies_carry_escaped_html_everywhere() {
    let Some(app) = TestApp::spawn(BACKEND).await else {
        return;
    };
    // `plain` is the default: with and without saying so.
    for request in [
        json!({"message": PLAIN_ATTACK}),
        json!({"message": PLAIN_ATTACK, "bodyFormat": "plain"}),
    ] {
        assert_rendered_everywhere(&app, &request, "plain", PLAIN_ATTACK_HTML).await;
    }
    app.stop().await;
}

#[tokio::test]
async fn long_bodies_are_rendered_too() {
    let Some(app) = TestApp::spawn(BACKEND).await else {
        return;
    };
    // 18,000 bytes: past what is rendered on the request's own thread.
    let request = json!({"message": "**bold** ".repeat(2000), "bodyFormat": "markdown"});
    let expected = format!("<p>{}</p>\n", vec!["<strong>bold</strong>"; 2000].join(" "));
    assert_rendered_everywhere(&app, &request, "markdown", &expected).await;
    app.stop().await;
}

#[tokio::test]
async fn the_same_text_renders_by_its_format() {
    let Some(app) = TestApp::spawn(BACKEND).await else {
        return;
    };
    let ticket = customer_ticket(&app).await;
    let text = "# Steps\n\n1. Reboot\n2. Check `dmesg`";
    let (markdown, _) = reply(
        &app,
        &ticket,
        &app.staff,
        &json!({"message": text, "bodyFormat": "markdown"}),
    )
    .await;
    assert_eq!(
        markdown["html"],
        "<h1>Steps</h1>\n<ol>\n<li>Reboot</li>\n<li>Check <code>dmesg</code></li>\n</ol>\n"
    );
    let (plain, _) = reply(&app, &ticket, &app.staff, &json!({"message": text})).await;
    assert_eq!(
        plain["html"],
        "<p># Steps</p>\n<p>1. Reboot<br>\n2. Check `dmesg`</p>\n"
    );
    app.stop().await;
}

#[tokio::test]
async fn a_tickets_first_message_is_rendered_in_the_thread() {
    let Some(app) = TestApp::spawn(BACKEND).await else {
        return;
    };
    let response = app
        .post(
            "/api/v2/support/tickets",
            &app.customer,
            &json!({
                "subject": "Formatting",
                "message": MARKDOWN_ATTACK,
                "bodyFormat": "markdown",
            }),
        )
        .await;
    assert_eq!(response.status, StatusCode::CREATED, "{}", response.text);
    let ticket = response.body["id"].as_str().unwrap();
    let thread = app
        .get(
            &format!("/api/v2/support/tickets/{ticket}/messages"),
            &app.customer,
        )
        .await;
    assert_eq!(thread.status, StatusCode::OK, "{}", thread.text);
    let first = &thread.body["data"][0];
    assert_eq!(first["body"], MARKDOWN_ATTACK);
    assert_eq!(first["html"], MARKDOWN_ATTACK_HTML);
    app.stop().await;
}

#[tokio::test]
async fn encrypted_messages_are_rendered_from_the_text_readers_get() {
    let Some(app) = TestApp::spawn(BACKEND).await else {
        return;
    };
    let request = json!({
        "message": "My **new** password hint: `<blue>`",
        "bodyFormat": "markdown",
        "encrypted": true,
    });
    let ticket = customer_ticket(&app).await;
    let (created, location) = reply(&app, &ticket, &app.customer, &request).await;
    let id = created["id"].as_str().unwrap().to_owned();
    let [one, listed] = read_back(&app, &ticket, &location, &id).await;
    for message in [&created, &one, &listed] {
        assert_eq!(message["encrypted"], true, "{message}");
        assert_eq!(message["body"], request["message"], "{message}");
        assert_eq!(
            message["html"],
            "<p>My <strong>new</strong> password hint: <code>&lt;blue&gt;</code></p>\n",
            "{message}"
        );
    }
    app.stop().await;
}

/// The most a response carrying one message of `body` may weigh: its
/// body, escaped as JSON, and its HTML, at most eight times the body plus
/// 1 KiB; with the rest of the message and some slack.
fn max_response_bytes(body: &str) -> usize {
    2 * body.len() + ticketd::core::render::max_html_bytes(body.len()) + 4096
}

#[tokio::test]
async fn hostile_markdown_answers_responses_of_bounded_size() {
    let Some(app) = TestApp::spawn(BACKEND).await else {
        return;
    };
    let ticket = customer_ticket(&app).await;
    for (name, body) in ticketd::core::render::hostile::hostile_markdown() {
        // Keyed, so that its response is also kept for retries.
        let request = app
            .client
            .post(app.url(&format!("/api/v2/support/tickets/{ticket}/messages")))
            .bearer_auth(&app.customer.token)
            .header(
                "idempotency-key",
                format!("hostile-{}", name.replace(' ', "-")),
            )
            .json(&json!({"message": body, "bodyFormat": "markdown"}));
        let response = app.send(request).await;
        assert_eq!(
            response.status,
            StatusCode::CREATED,
            "{name}: {}",
            response.text
        );
        let bound = max_response_bytes(&body);
        assert!(
            response.text.len() <= bound,
            "{name}: reply of {} bytes",
            response.text.len()
        );
        let location = response.header("location").to_owned();
        let one = app.get(&location, &app.customer).await;
        assert_eq!(one.status, StatusCode::OK, "{name}: {}", one.text);
        assert!(
            one.text.len() <= bound,
            "{name}: GET of {} bytes",
            one.text.len()
        );
        assert_eq!(one.body["html"], response.body["html"], "{name}");
        assert_eq!(one.body["body"], body.as_str(), "{name}");
    }
    let page = app
        .get(
            &format!("/api/v2/support/tickets/{ticket}/messages?limit=100"),
            &app.customer,
        )
        .await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.text);
    let bound: usize = ticketd::core::render::hostile::hostile_markdown()
        .iter()
        .map(|(_, body)| max_response_bytes(body))
        .sum();
    assert!(
        page.text.len() <= bound,
        "a page of {} bytes",
        page.text.len()
    );
    app.stop().await;
}

#[tokio::test]
async fn a_page_of_long_html_stops_at_its_size_and_continues_from_there() {
    let Some(app) = TestApp::spawn(BACKEND).await else {
        return;
    };
    let ticket = customer_ticket(&app).await;
    let path = format!("/api/v2/support/tickets/{ticket}/messages");
    // About 177 KB of body and html each: 70 of them pass the 8 MiB a page
    // carries.
    let body = "<http://a> ".repeat(2_272);
    for _ in 0..70 {
        reply(
            &app,
            &ticket,
            &app.customer,
            &json!({"message": body, "bodyFormat": "markdown"}),
        )
        .await;
    }
    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    let mut pages = 0;
    loop {
        let query = match &cursor {
            Some(cursor) => format!("{path}?limit=100&cursor={cursor}"),
            None => format!("{path}?limit=100"),
        };
        let page = app.get(&query, &app.customer).await;
        assert_eq!(page.status, StatusCode::OK, "{}", page.text);
        // 8 MiB of text, one message past it, and the quotes JSON escapes.
        assert!(page.text.len() < 10 << 20, "{} bytes", page.text.len());
        pages += 1;
        for message in page.body["data"].as_array().unwrap() {
            seen.push(message["id"].as_str().unwrap().to_owned());
        }
        match page.body["nextCursor"].as_str() {
            Some(next) => cursor = Some(next.to_owned()),
            None => break,
        }
    }
    assert_eq!(pages, 2, "{} messages", seen.len());
    assert_eq!(seen.len(), 71, "the first message and 70 replies");
    let mut unique = seen.clone();
    unique.sort();
    unique.dedup();
    assert_eq!(unique.len(), 71, "no message twice");
    app.stop().await;
}
