//! Files: `POST /api/v2/support/uploads` (raw and multipart), the
//! pre-signed upload URLs, `attachments` on new tickets and replies, and
//! downloads of a message's files.

use std::time::Duration;

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use super::BACKEND;
use crate::helpers::{TestApp, TestOptions, TestResponse, TestUser};

const UPLOADS: &str = "/api/v2/support/uploads";

/// A PNG of `len` bytes: the signature, then bytes that vary.
pub(super) fn png(len: usize) -> Vec<u8> {
    let mut data = b"\x89PNG\r\n\x1a\n".to_vec();
    data.extend((0..len.saturating_sub(8)).map(|i| (i * 31 + i / 7) as u8));
    data.truncate(len);
    data
}

fn sha256_hex(data: &[u8]) -> String {
    Sha256::digest(data)
        .iter()
        .map(|byte| format!("{byte:02x}"))
        .collect()
}

fn percent(text: &str) -> String {
    text.bytes()
        .map(|byte| match byte {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' => {
                (byte as char).to_string()
            }
            other => format!("%{other:02X}"),
        })
        .collect()
}

/// Uploads `data` as the raw body, declared as `content_type`.
async fn upload_raw(
    app: &TestApp,
    user: &TestUser,
    name: &str,
    content_type: &str,
    data: &[u8],
) -> TestResponse {
    app.send(
        app.client
            .post(app.url(&format!("{UPLOADS}?filename={}", percent(name))))
            .bearer_auth(&user.token)
            .header("content-type", content_type)
            .body(data.to_vec()),
    )
    .await
}

/// Uploads `data` as the raw body and asserts it was stored; the upload.
async fn uploaded(app: &TestApp, user: &TestUser, name: &str, data: &[u8]) -> Value {
    let response = upload_raw(app, user, name, "image/png", data).await;
    assert_eq!(response.status, StatusCode::CREATED, "{}", response.text);
    response.body
}

/// A multipart/form-data body with one part named `file`.
pub(super) fn multipart(name: &str, content_type: &str, data: &[u8]) -> (String, Vec<u8>) {
    let boundary = "ticketd-test-boundary-7d3f";
    let mut body = format!(
        "--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"{name}\"\r\n\
         Content-Type: {content_type}\r\n\r\n"
    )
    .into_bytes();
    body.extend_from_slice(data);
    body.extend_from_slice(format!("\r\n--{boundary}--\r\n").as_bytes());
    (format!("multipart/form-data; boundary={boundary}"), body)
}

fn messages_path(ticket: &str) -> String {
    format!("/api/v2/support/tickets/{ticket}/messages")
}

/// Opens a ticket as the main customer; its id.
async fn customer_ticket(app: &TestApp) -> String {
    let ticket = app.open_ticket(&app.customer, "Cracked screen").await;
    ticket["id"].as_str().unwrap().to_owned()
}

async fn reply_with(
    app: &TestApp,
    ticket: &str,
    user: &TestUser,
    attachments: &[&str],
) -> TestResponse {
    app.post(
        &messages_path(ticket),
        user,
        &json!({"message": "See the files", "attachments": attachments}),
    )
    .await
}

async fn download(
    app: &TestApp,
    url: &str,
    user: &TestUser,
    range: Option<&str>,
) -> (TestResponse, Vec<u8>) {
    let mut request = app.client.get(app.url(url)).bearer_auth(&user.token);
    if let Some(range) = range {
        request = request.header("range", range);
    }
    let response = request.send().await.unwrap();
    let status = response.status();
    let headers = response.headers().clone();
    let bytes = response.bytes().await.unwrap().to_vec();
    let text = String::from_utf8_lossy(&bytes).into_owned();
    let body = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
    (
        TestResponse {
            status,
            headers,
            text,
            body,
        },
        bytes,
    )
}

#[tokio::test]
async fn a_file_is_uploaded_attached_listed_and_downloaded_by_whoever_may_read_it() {
    let Some(app) = TestApp::spawn(BACKEND).await else {
        return;
    };
    // Larger than max_body_bytes (1 MiB here): uploads have their own limit.
    let data = png(3 * 1024 * 1024 + 5);
    let response = upload_raw(&app, &app.customer, "screen.png", "image/png", &data).await;
    assert_eq!(response.status, StatusCode::CREATED, "{}", response.text);
    let upload = response.body.clone();
    let id = upload["id"].as_str().unwrap();
    assert!(id.starts_with("upl_"), "{id}");
    assert_eq!(upload["filename"], "screen.png");
    assert_eq!(upload["contentType"], "image/png");
    assert_eq!(upload["size"], data.len());
    assert_eq!(upload["sha256"], sha256_hex(&data));
    assert_eq!(upload["attached"], false);
    assert!(upload["createdAt"].as_str().unwrap() < upload["expiresAt"].as_str().unwrap());
    assert_eq!(response.header("location"), format!("{UPLOADS}/{id}"));
    // Its owner can look it up; nobody else can, in any workspace.
    let found = app.get(&format!("{UPLOADS}/{id}"), &app.customer).await;
    assert_eq!(found.body, upload);
    for other in [&app.other_customer, &app.staff, &app.foreign_customer] {
        app.get(&format!("{UPLOADS}/{id}"), other)
            .await
            .assert_problem(404, "not_found");
    }

    let ticket = customer_ticket(&app).await;
    let reply = reply_with(&app, &ticket, &app.customer, &[id]).await;
    assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.text);
    let message = reply.body["id"].as_str().unwrap();
    let url = format!("{}/{message}/attachments/{id}", messages_path(&ticket));
    assert_eq!(
        reply.body["attachments"],
        json!([{
            "id": id,
            "filename": "screen.png",
            "contentType": "image/png",
            "size": data.len(),
            "url": url,
        }])
    );
    // Every read of the thread lists it; the first message has none.
    let page = app.get(&messages_path(&ticket), &app.staff).await;
    assert_eq!(page.body["data"][0]["attachments"], json!([]));
    assert_eq!(
        page.body["data"][1]["attachments"],
        reply.body["attachments"]
    );
    let one = app
        .get(&format!("{}/{message}", messages_path(&ticket)), &app.staff)
        .await;
    assert_eq!(one.body["attachments"], reply.body["attachments"]);
    assert_eq!(
        app.get(&format!("{UPLOADS}/{id}"), &app.customer)
            .await
            .body["attached"],
        true
    );

    // Whole, to the customer and to staff.
    for reader in [&app.customer, &app.staff] {
        let (response, bytes) = download(&app, &url, reader, None).await;
        assert_eq!(response.status, StatusCode::OK);
        assert_eq!(bytes, data);
        assert_eq!(response.header("content-type"), "image/png");
        assert_eq!(response.header("content-length"), data.len().to_string());
        assert_eq!(
            response.header("etag"),
            format!("\"{}\"", sha256_hex(&data))
        );
        assert_eq!(response.header("x-content-type-options"), "nosniff");
        assert_eq!(response.header("content-security-policy"), "sandbox");
        assert_eq!(response.header("cache-control"), "private");
        assert_eq!(response.header("accept-ranges"), "bytes");
        assert!(
            response
                .header("content-disposition")
                .starts_with("attachment;"),
            "{}",
            response.header("content-disposition")
        );
    }
    // One range, a suffix, and one past the end.
    let (part, bytes) = download(&app, &url, &app.customer, Some("bytes=100-1123")).await;
    assert_eq!(part.status, StatusCode::PARTIAL_CONTENT);
    assert_eq!(bytes, data[100..=1123]);
    assert_eq!(
        part.header("content-range"),
        format!("bytes 100-1123/{}", data.len())
    );
    let (tail, bytes) = download(&app, &url, &app.customer, Some("bytes=-10")).await;
    assert_eq!(tail.status, StatusCode::PARTIAL_CONTENT);
    assert_eq!(bytes, data[data.len() - 10..]);
    let (past, bytes) = download(&app, &url, &app.customer, Some("bytes=999999999-")).await;
    assert_eq!(past.status, StatusCode::RANGE_NOT_SATISFIABLE);
    assert!(bytes.is_empty());
    assert_eq!(
        past.header("content-range"),
        format!("bytes */{}", data.len())
    );
    // A cached copy is not sent again; a range of another copy is the
    // whole file.
    let etag = format!("\"{}\"", sha256_hex(&data));
    let cached = app
        .send(
            app.client
                .get(app.url(&url))
                .bearer_auth(&app.customer.token)
                .header("if-none-match", &etag),
        )
        .await;
    assert_eq!(cached.status, StatusCode::NOT_MODIFIED);
    assert_eq!(cached.header("etag"), etag);
    assert!(cached.text.is_empty());
    for (if_range, status) in [
        (etag.as_str(), StatusCode::PARTIAL_CONTENT),
        ("\"another\"", StatusCode::OK),
    ] {
        let resumed = app
            .client
            .get(app.url(&url))
            .bearer_auth(&app.customer.token)
            .header("range", "bytes=10-")
            .header("if-range", if_range)
            .send()
            .await
            .unwrap();
        assert_eq!(resumed.status(), status, "{if_range}");
        let expected = if status == StatusCode::OK {
            &data[..]
        } else {
            &data[10..]
        };
        assert!(resumed.bytes().await.unwrap() == expected, "{if_range}");
    }
    // HEAD: the headers alone.
    let head = app
        .send(
            app.client
                .head(app.url(&url))
                .bearer_auth(&app.customer.token),
        )
        .await;
    assert_eq!(head.status, StatusCode::OK);
    assert_eq!(head.header("content-length"), data.len().to_string());
    assert!(head.text.is_empty());

    // Nobody who cannot read the ticket gets the file, nor learns it exists.
    for outsider in [
        &app.other_customer,
        &app.foreign_customer,
        &app.foreign_staff,
    ] {
        download(&app, &url, outsider, None)
            .await
            .0
            .assert_problem(404, "not_found");
    }
    // Nor does a path naming the file under another message.
    let first = page.body["data"][0]["id"].as_str().unwrap();
    let elsewhere = format!("{}/{first}/attachments/{id}", messages_path(&ticket));
    download(&app, &elsewhere, &app.customer, None)
        .await
        .0
        .assert_problem(404, "not_found");
}

#[tokio::test]
async fn a_new_ticket_attaches_files_and_a_multipart_upload_keeps_a_unicode_name() {
    let Some(app) = TestApp::spawn(BACKEND).await else {
        return;
    };
    let name = "Überweisung März \u{1F4C4}.pdf";
    let data = b"%PDF-1.7\n1 0 obj\n<<>>\nendobj\ntrailer\n%%EOF\n".to_vec();
    let (content_type, body) = multipart(name, "application/pdf", &data);
    let response = app
        .send(
            app.client
                .post(app.url(UPLOADS))
                .bearer_auth(&app.customer.token)
                .header("content-type", content_type)
                .body(body),
        )
        .await;
    assert_eq!(response.status, StatusCode::CREATED, "{}", response.text);
    assert_eq!(response.body["filename"], name);
    assert_eq!(response.body["contentType"], "application/pdf");
    assert_eq!(response.body["size"], data.len());
    let id = response.body["id"].as_str().unwrap().to_owned();

    let opened = app
        .post(
            "/api/v2/support/tickets",
            &app.customer,
            &json!({"subject": "Invoice", "message": "Attached", "attachments": [id]}),
        )
        .await;
    assert_eq!(opened.status, StatusCode::CREATED, "{}", opened.text);
    let ticket = opened.body["id"].as_str().unwrap();
    let page = app.get(&messages_path(ticket), &app.customer).await;
    let url = page.body["data"][0]["attachments"][0]["url"]
        .as_str()
        .unwrap()
        .to_owned();
    let (response, bytes) = download(&app, &url, &app.staff, None).await;
    assert_eq!(bytes, data);
    let disposition = response.header("content-disposition");
    assert!(
        disposition.contains(&format!("filename*=UTF-8''{}", percent(name))),
        "{disposition}"
    );
    // A part whose headers never end is refused, not held in memory, and
    // so is a second part after the file: as invalid, naming `file`.
    let mut endless =
        b"--b\r\nContent-Disposition: form-data; name=\"file\"; filename=\"a.png\"\r\nX: ".to_vec();
    endless.extend(std::iter::repeat_n(b'x', 64 * 1024));
    let (_, mut two_parts) = multipart("a.txt", "text/plain", b"hello");
    let tail = two_parts.len() - b"--\r\n".len();
    two_parts.truncate(tail);
    two_parts.extend_from_slice(
        b"\r\nContent-Disposition: form-data; name=\"more\"\r\n\r\nx\r\n--ticketd-test-boundary-7d3f--\r\n",
    );
    for (content_type, body) in [
        ("multipart/form-data; boundary=b".to_owned(), endless),
        (
            "multipart/form-data; boundary=ticketd-test-boundary-7d3f".to_owned(),
            two_parts,
        ),
    ] {
        let refused = app
            .send(
                app.client
                    .post(app.url(UPLOADS))
                    .bearer_auth(&app.customer.token)
                    .header("content-type", content_type)
                    .body(body),
            )
            .await;
        refused.assert_problem(400, "invalid_request");
        assert_eq!(
            refused.body["errors"][0]["pointer"], "/file",
            "{}",
            refused.text
        );
    }
}

#[tokio::test]
async fn every_refused_file_gets_its_own_code_and_leaves_nothing() {
    let Some(app) = TestApp::spawn_with(
        BACKEND,
        TestOptions {
            max_upload_bytes: 64 * 1024,
            ..TestOptions::default()
        },
    )
    .await
    else {
        return;
    };
    // Over the limit: declared, and streamed without a length.
    let too_large = upload_raw(
        &app,
        &app.customer,
        "big.png",
        "image/png",
        &png(64 * 1024 + 1),
    )
    .await;
    let problem = too_large.assert_problem(413, "upload_too_large");
    assert!(
        problem["detail"].as_str().unwrap().contains("65536 bytes"),
        "{problem}"
    );
    // Chunked, without a Content-Length: refused once past the limit.
    let chunks: Vec<Result<http_body::Frame<bytes::Bytes>, std::io::Error>> = png(200 * 1024)
        .chunks(8192)
        .map(|chunk| Ok(http_body::Frame::data(bytes::Bytes::copy_from_slice(chunk))))
        .collect();
    let streamed = app
        .send(
            app.client
                .post(app.url(&format!("{UPLOADS}?filename=big.png")))
                .bearer_auth(&app.customer.token)
                .header("content-type", "image/png")
                .body(reqwest::Body::wrap(http_body_util::StreamBody::new(
                    futures_util::stream::iter(chunks),
                ))),
        )
        .await;
    streamed.assert_problem(413, "upload_too_large");
    // A type not allowed, and a type the bytes are not of.
    let svg = upload_raw(&app, &app.customer, "x.svg", "image/svg+xml", b"<svg/>").await;
    let problem = svg.assert_problem(415, "unsupported_media_type");
    assert!(
        problem["detail"].as_str().unwrap().contains("image/png"),
        "{problem}"
    );
    let exe = upload_raw(
        &app,
        &app.customer,
        "x.png",
        "image/png",
        b"MZ\x90\x00\x03rest",
    )
    .await;
    exe.assert_problem(415, "upload_content_mismatch");
    // No name.
    let unnamed = app
        .send(
            app.client
                .post(app.url(UPLOADS))
                .bearer_auth(&app.customer.token)
                .header("content-type", "image/png")
                .body(png(100)),
        )
        .await;
    unnamed.assert_problem(400, "invalid_request");
    assert_eq!(
        unnamed.field_errors(),
        [("/filename".to_owned(), "missing_required".to_owned())]
    );
    // Nothing of any of them was kept: only a real upload is there to sweep.
    let kept = uploaded(&app, &app.customer, "ok.png", &png(10)).await;
    let far = ticketd::core::time::Timestamp::now().plus(Duration::from_secs(30 * 86_400));
    let sweepable = app.store.uploads_to_sweep(far, 100).await.unwrap();
    assert_eq!(
        sweepable
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>(),
        [kept["id"].as_str().unwrap()]
    );
}

#[tokio::test]
async fn attachments_that_cannot_be_attached_are_refused_by_pointer_or_limit() {
    let Some(app) = TestApp::spawn_with(
        BACKEND,
        TestOptions {
            attach_limits: ticketd::core::upload::attach::AttachLimits {
                per_message: 2,
                per_ticket_bytes: 900,
            },
            ..TestOptions::default()
        },
    )
    .await
    else {
        return;
    };
    let ticket = customer_ticket(&app).await;
    let mine = uploaded(&app, &app.customer, "a.png", &png(400)).await;
    let mine = mine["id"].as_str().unwrap();
    let theirs = uploaded(&app, &app.other_customer, "b.png", &png(10)).await;
    let theirs = theirs["id"].as_str().unwrap();
    let foreign = uploaded(&app, &app.foreign_customer, "c.png", &png(10)).await;
    let foreign = foreign["id"].as_str().unwrap();
    let unknown = "upl_01hxa3b4c5d6e7f8g9h0j1k2m3";

    // Another user's upload, in any workspace, is as unknown as none.
    let refused = reply_with(&app, &ticket, &app.customer, &[mine, theirs]).await;
    refused.assert_problem(400, "invalid_request");
    assert_eq!(
        refused.field_errors(),
        [("/attachments/1".to_owned(), "invalid_value".to_owned())]
    );
    for other in [foreign, unknown, "not-an-id"] {
        let refused = reply_with(&app, &ticket, &app.customer, &[other]).await;
        refused.assert_problem(400, "invalid_request");
        assert_eq!(
            refused.field_errors(),
            [("/attachments/0".to_owned(), "invalid_value".to_owned())],
            "{other}"
        );
    }
    let wrong_type = app
        .post(
            &messages_path(&ticket),
            &app.customer,
            &json!({"message": "x", "attachments": "upl_x"}),
        )
        .await;
    assert_eq!(
        wrong_type.field_errors(),
        [("/attachments".to_owned(), "invalid_type".to_owned())]
    );
    // Nothing was written by the refusals: the upload attaches once.
    let sent = reply_with(&app, &ticket, &app.customer, &[mine]).await;
    assert_eq!(sent.status, StatusCode::CREATED, "{}", sent.text);
    let again = reply_with(&app, &ticket, &app.customer, &[mine]).await;
    assert_eq!(
        again.field_errors(),
        [("/attachments/0".to_owned(), "invalid_value".to_owned())]
    );
    // The limits: files per message, bytes per ticket.
    let more: Vec<String> = {
        let mut ids = Vec::new();
        for name in ["d.png", "e.png", "f.png"] {
            let upload = uploaded(&app, &app.customer, name, &png(300)).await;
            ids.push(upload["id"].as_str().unwrap().to_owned());
        }
        ids
    };
    let all: Vec<&str> = more.iter().map(String::as_str).collect();
    let problem = reply_with(&app, &ticket, &app.customer, &all).await;
    let body = problem.assert_problem(400, "too_many_attachments");
    assert!(
        body["detail"].as_str().unwrap().contains("at most 2 files"),
        "{body}"
    );
    let full = reply_with(&app, &ticket, &app.customer, &all[..2]).await;
    let body = full.assert_problem(400, "ticket_storage_exhausted");
    assert!(
        body["detail"].as_str().unwrap().contains("900 bytes"),
        "{body}"
    );
    let fits = reply_with(&app, &ticket, &app.customer, &all[..1]).await;
    assert_eq!(fits.status, StatusCode::CREATED, "{}", fits.text);
    assert_eq!(
        app.get(&messages_path(&ticket), &app.customer).await.body["data"]
            .as_array()
            .unwrap()
            .len(),
        3
    );
}

#[tokio::test]
async fn a_pre_signed_url_takes_one_file_without_a_key_once_before_it_expires() {
    let Some(app) = TestApp::spawn_with(
        BACKEND,
        TestOptions {
            upload_url_ttl: Duration::from_secs(2),
            ..TestOptions::default()
        },
    )
    .await
    else {
        return;
    };
    let issued = app
        .request(
            Method::POST,
            &format!("{UPLOADS}/url"),
            Some(&app.customer.token),
            None,
        )
        .await;
    assert_eq!(issued.status, StatusCode::OK, "{}", issued.text);
    let url = issued.body["uploadUrl"].as_str().unwrap().to_owned();
    assert!(
        url.starts_with(&app.url("/api/v2/support/uploads/signed/")),
        "{url}"
    );
    assert!(issued.body["expiresAt"].is_string());
    let send = |url: String, data: Vec<u8>| {
        let client = app.client.clone();
        async move {
            client
                .post(format!("{url}?filename=photo.png"))
                .header("content-type", "image/png")
                .body(data)
                .send()
                .await
                .unwrap()
        }
    };
    // An altered token is refused before anything is stored.
    let mut altered = url.clone();
    let last = altered.pop().unwrap();
    altered.push(if last == 'A' { 'B' } else { 'A' });
    let response = crate::helpers::read(send(altered, png(10)).await).await;
    response.assert_problem(403, "upload_url_invalid");

    let data = png(5000);
    let response = crate::helpers::read(send(url.clone(), data.clone()).await).await;
    assert_eq!(response.status, StatusCode::CREATED, "{}", response.text);
    assert_eq!(response.body["sha256"], sha256_hex(&data));
    let id = response.body["id"].as_str().unwrap().to_owned();
    // The upload is the customer's: they attach it.
    let ticket = customer_ticket(&app).await;
    let reply = reply_with(&app, &ticket, &app.customer, &[&id]).await;
    assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.text);
    // Used once.
    let replayed = crate::helpers::read(send(url, png(10)).await).await;
    replayed.assert_problem(409, "upload_url_used");
    // Expired.
    let issued = app
        .request(
            Method::POST,
            &format!("{UPLOADS}/url"),
            Some(&app.customer.token),
            None,
        )
        .await;
    let late = issued.body["uploadUrl"].as_str().unwrap().to_owned();
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let expired = crate::helpers::read(send(late, png(10)).await).await;
    expired.assert_problem(403, "upload_url_expired");
}

#[tokio::test]
async fn an_upload_with_an_idempotency_key_is_stored_once() {
    let Some(app) = TestApp::spawn(BACKEND).await else {
        return;
    };
    let data = png(2048);
    let send = || {
        app.send(
            app.client
                .post(app.url(&format!("{UPLOADS}?filename=once.png")))
                .bearer_auth(&app.customer.token)
                .header("content-type", "image/png")
                .header("idempotency-key", "upload-once-1")
                .body(data.clone()),
        )
    };
    let first = send().await;
    assert_eq!(first.status, StatusCode::CREATED, "{}", first.text);
    let second = send().await;
    assert_eq!(second.status, StatusCode::CREATED, "{}", second.text);
    assert_eq!(second.header("idempotent-replayed"), "true");
    assert_eq!(second.body, first.body);
    // Another file under the same key is another request.
    let other = app
        .send(
            app.client
                .post(app.url(&format!("{UPLOADS}?filename=other.png")))
                .bearer_auth(&app.customer.token)
                .header("content-type", "image/png")
                .header("idempotency-key", "upload-once-1")
                .body(data.clone()),
        )
        .await;
    other.assert_problem(422, "idempotency_key_reused");
}

#[tokio::test]
async fn the_sweep_deletes_an_unattached_upload_while_a_message_attaches_another() {
    let Some(app) = TestApp::spawn_with(
        BACKEND,
        TestOptions {
            upload_ttl: Duration::from_secs(3),
            ..TestOptions::default()
        },
    )
    .await
    else {
        return;
    };
    let ticket = customer_ticket(&app).await;
    let forgotten = uploaded(&app, &app.customer, "forgotten.png", &png(100)).await;
    let forgotten = forgotten["id"].as_str().unwrap().to_owned();
    tokio::time::sleep(Duration::from_millis(2000)).await;
    let wanted = uploaded(&app, &app.customer, "wanted.png", &png(200)).await;
    let wanted = wanted["id"].as_str().unwrap().to_owned();
    tokio::time::sleep(Duration::from_millis(1200)).await;
    // The first has expired, the second has not: one is swept while the
    // other is attached.
    let attaching = [wanted.as_str()];
    let (swept, reply) = tokio::join!(
        app.uploads.sweep_once(),
        reply_with(&app, &ticket, &app.customer, &attaching)
    );
    assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.text);
    assert_eq!(swept.unwrap(), 1);
    app.get(&format!("{UPLOADS}/{forgotten}"), &app.customer)
        .await
        .assert_problem(404, "not_found");
    let late = reply_with(&app, &ticket, &app.customer, &[&forgotten]).await;
    assert_eq!(
        late.field_errors(),
        [("/attachments/0".to_owned(), "invalid_value".to_owned())]
    );
    // The attached one stays, through later sweeps, and downloads whole.
    tokio::time::sleep(Duration::from_millis(2000)).await;
    assert_eq!(app.uploads.sweep_once().await.unwrap(), 0);
    let url = reply.body["attachments"][0]["url"].as_str().unwrap();
    let (response, bytes) = download(&app, url, &app.staff, None).await;
    assert_eq!(response.status, StatusCode::OK);
    assert_eq!(bytes, png(200));
}

#[tokio::test]
async fn an_upload_that_stops_arriving_is_cut_off_and_leaves_nothing() {
    let Some(app) = TestApp::spawn_with(
        BACKEND,
        TestOptions {
            body_read_timeout: Duration::from_secs(1),
            ..TestOptions::default()
        },
    )
    .await
    else {
        return;
    };
    let mut connection = crate::helpers::RawConnection::open(&app).await;
    let mut request = format!(
        "POST {UPLOADS}?filename=slow.png HTTP/1.1\r\nHost: localhost\r\n\
         Authorization: Bearer {}\r\nContent-Type: image/png\r\n\
         Content-Length: 100000\r\n\r\n",
        app.customer.token
    )
    .into_bytes();
    request.extend_from_slice(&png(1000));
    let started = std::time::Instant::now();
    let response = tokio::time::timeout(Duration::from_secs(10), connection.exchange(&request))
        .await
        .expect("the stalled upload was not cut off")
        .unwrap();
    assert_eq!(response.status, 408, "{}", response.head);
    assert_eq!(response.json()["code"], "request_body_timeout");
    assert!(started.elapsed() < Duration::from_secs(5));
    let far = ticketd::core::time::Timestamp::now().plus(Duration::from_secs(30 * 86_400));
    assert_eq!(app.store.uploads_to_sweep(far, 100).await.unwrap(), []);
}

/// The bytes the blob store holds for upload `id`, as stored.
async fn stored_bytes(app: &TestApp, id: &str) -> Vec<u8> {
    let id = ticketd::core::id::UploadId::parse(id).unwrap();
    let mut stream = app.blobs.get(id, None).await.unwrap();
    let mut out = Vec::new();
    while let Some(chunk) = futures_util::StreamExt::next(&mut stream).await {
        out.extend_from_slice(&chunk.unwrap());
    }
    out
}

#[tokio::test]
async fn a_sealed_upload_is_stored_only_sealed_attached_only_to_encrypted_messages_and_outlives_a_rotation()
 {
    let Some(app) = TestApp::spawn(BACKEND).await else {
        return;
    };
    // Four records of the sealed stream, the last one short.
    let data = png(3 * 64 * 1024 + 1000);
    let sealed = app
        .send(
            app.client
                .post(app.url(&format!("{UPLOADS}?filename=scan.png&encrypted=true")))
                .bearer_auth(&app.customer.token)
                .header("content-type", "image/png")
                .body(data.clone()),
        )
        .await;
    assert_eq!(sealed.status, StatusCode::CREATED, "{}", sealed.text);
    assert_eq!(sealed.body["encrypted"], true);
    assert_eq!(sealed.body["size"], data.len());
    assert_eq!(sealed.body["sha256"], sha256_hex(&data));
    let sealed_id = sealed.body["id"].as_str().unwrap().to_owned();
    let plain = uploaded(&app, &app.customer, "plain.png", &png(100)).await;
    let plain_id = plain["id"].as_str().unwrap().to_owned();
    assert_eq!(plain["encrypted"], false);

    // The blob store holds records and tags, and no run of the plaintext.
    let raw = stored_bytes(&app, &sealed_id).await;
    assert_eq!(
        raw.len() as u64,
        ticketd::core::crypto::stream::sealed_len(data.len() as u64)
    );
    for start in [0, 1000, 64 * 1024 + 7, data.len() - 64] {
        assert!(
            !raw.windows(32)
                .any(|window| window == &data[start..start + 32]),
            "plaintext at {start} reached the blob store"
        );
    }

    // A plain message takes only plain uploads, an encrypted one only
    // sealed ones.
    let ticket = customer_ticket(&app).await;
    for (encrypted, wrong) in [(false, &sealed_id), (true, &plain_id)] {
        let refused = app
            .post(
                &messages_path(&ticket),
                &app.customer,
                &json!({"message": "files", "encrypted": encrypted, "attachments": [wrong]}),
            )
            .await;
        refused.assert_problem(400, "invalid_request");
        assert_eq!(
            refused.body["errors"][0]["pointer"], "/attachments/0",
            "{}",
            refused.text
        );
    }
    let reply = app
        .post(
            &messages_path(&ticket),
            &app.customer,
            &json!({"message": "the scan", "encrypted": true, "attachments": [sealed_id]}),
        )
        .await;
    assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.text);
    let url = reply.body["attachments"][0]["url"]
        .as_str()
        .unwrap()
        .to_owned();

    // Readers get the plaintext, whole or any range of it.
    let check_downloads = |label: &'static str| {
        let (app, url, data) = (&app, url.clone(), data.clone());
        async move {
            let (whole, bytes) = download(app, &url, &app.staff, None).await;
            assert_eq!(whole.status, StatusCode::OK, "{label}");
            assert_eq!(whole.header("content-length"), data.len().to_string());
            assert!(bytes == data, "{label}: the download differs");
            for (first, last) in [(0, 0), (65_530, 65_545), (100, 3 * 64 * 1024 + 999)] {
                let (part, bytes) = download(
                    app,
                    &url,
                    &app.customer,
                    Some(&format!("bytes={first}-{last}")),
                )
                .await;
                assert_eq!(part.status, StatusCode::PARTIAL_CONTENT, "{label}");
                assert!(
                    bytes == data[first..=last],
                    "{label}: range {first}-{last} differs"
                );
            }
        }
    };
    check_downloads("before the rotation").await;

    // A rotation re-seals the content key, not the bytes; the running
    // server, started with the old key, still opens them.
    let before = ticketd::encryption::status(app.raw_store.as_ref(), &app.key_file)
        .await
        .unwrap();
    assert_eq!((before.keys[0].messages, before.keys[0].uploads), (1, 1));
    let report = ticketd::encryption::rotate(app.raw_store.as_ref(), &app.key_file, true)
        .await
        .unwrap();
    assert_eq!(report.resealed, 2, "{report:?}");
    assert_eq!(report.retired_keys, vec![before.current_key.clone()]);
    let after = ticketd::encryption::status(app.raw_store.as_ref(), &app.key_file)
        .await
        .unwrap();
    assert_eq!(after.keys.len(), 1, "{after:?}");
    assert_eq!((after.keys[0].messages, after.keys[0].uploads), (1, 1));
    assert_eq!(stored_bytes(&app, &sealed_id).await, raw);
    check_downloads("after the rotation").await;
    app.stop().await;
}
