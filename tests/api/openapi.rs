//! `/openapi.json`: the document is OpenAPI 3.1, lists exactly the operations
//! the router serves, and describes the shared error responses and schemas.

use std::collections::BTreeSet;

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use super::BACKEND;
use crate::helpers::TestApp;

/// Every operation the server serves, as `(METHOD, path template)`.
const OPERATIONS: [(&str, &str); 19] = [
    ("GET", "/api/v2/support/tickets"),
    ("POST", "/api/v2/support/tickets"),
    ("GET", "/api/v2/support/tickets/{id}"),
    ("GET", "/api/v2/support/tickets/{id}/messages"),
    ("POST", "/api/v2/support/tickets/{id}/messages"),
    ("GET", "/api/v2/support/tickets/{id}/messages/{messageId}"),
    ("POST", "/api/v2/support/tickets/{id}/actions/close"),
    ("POST", "/api/v2/support/tickets/{id}/actions/reopen"),
    ("POST", "/api/v2/support/tickets/{id}/actions/resolve"),
    (
        "POST",
        "/api/v2/support/tickets/{id}/actions/mark-in-progress",
    ),
    (
        "GET",
        "/api/v2/support/tickets/{id}/messages/{messageId}/attachments/{attachmentId}",
    ),
    ("POST", "/api/v2/support/uploads"),
    ("GET", "/api/v2/support/uploads/{uploadId}"),
    ("POST", "/api/v2/support/uploads/url"),
    ("POST", "/api/v2/support/uploads/signed/{token}"),
    ("GET", "/healthz"),
    ("GET", "/readyz"),
    ("GET", "/errors/{code}"),
    ("GET", "/openapi.json"),
];

const HTTP_METHODS: [&str; 8] = [
    "get", "put", "post", "delete", "options", "head", "patch", "trace",
];

const PROBLEM_REF: &str = "#/components/schemas/Problem";

/// Pre-signed upload URLs stand for an API key without carrying one.
const SIGNED_UPLOAD: &str = "/api/v2/support/uploads/signed/{token}";

/// Operations that take a file, not JSON.
const FILE_BODIES: [&str; 2] = ["/api/v2/support/uploads", SIGNED_UPLOAD];

/// Fetches the document, asserting how it is served.
async fn fetch_document(app: &TestApp) -> Value {
    let response = app.request(Method::GET, "/openapi.json", None, None).await;
    assert_eq!(response.status, StatusCode::OK, "{}", response.text);
    assert_eq!(response.header("content-type"), "application/json");
    assert!(
        response.body.is_object(),
        "not a JSON object: {}",
        response.text
    );
    response.body
}

/// The document's operations: `(METHOD, path, operation object)`.
fn operations(document: &Value) -> Vec<(String, String, Value)> {
    let paths = document["paths"].as_object().expect("`paths` is an object");
    let mut found = Vec::new();
    for (path, item) in paths {
        let item = item.as_object().expect("a path item is an object");
        for method in HTTP_METHODS {
            if let Some(operation) = item.get(method) {
                found.push((method.to_ascii_uppercase(), path.clone(), operation.clone()));
            }
        }
    }
    found
}

/// Resolves a local `$ref` (`#/components/schemas/Name`), or returns `schema`.
fn resolve<'a>(document: &'a Value, schema: &'a Value) -> &'a Value {
    match schema["$ref"].as_str() {
        Some(reference) => {
            let pointer = reference
                .strip_prefix('#')
                .unwrap_or_else(|| panic!("not a local reference: {reference}"));
            document
                .pointer(pointer)
                .unwrap_or_else(|| panic!("dangling reference {reference}"))
        }
        None => schema,
    }
}

/// Asserts that `operation` documents `status` as a problem document.
#[track_caller]
fn assert_problem_response(method: &str, path: &str, operation: &Value, status: &str) {
    let response = &operation["responses"][status];
    assert!(
        response.is_object(),
        "{method} {path} does not document {status}"
    );
    let content = response["content"]
        .as_object()
        .unwrap_or_else(|| panic!("{method} {path} {status} has no content"));
    let media_types: Vec<&String> = content.keys().collect();
    assert_eq!(
        media_types,
        ["application/problem+json"],
        "{method} {path} {status}"
    );
    assert_eq!(
        content["application/problem+json"]["schema"],
        json!({ "$ref": PROBLEM_REF }),
        "{method} {path} {status}"
    );
}

fn string_set(value: &Value) -> BTreeSet<String> {
    value
        .as_array()
        .unwrap_or_else(|| panic!("not an array: {value}"))
        .iter()
        .map(|item| item.as_str().expect("a string").to_owned())
        .collect()
}

#[tokio::test]
async fn document_is_openapi_3_1() {
    let Some(app) = TestApp::spawn(BACKEND).await else {
        return;
    };
    let document = fetch_document(&app).await;

    let version = document["openapi"].as_str().expect("`openapi` is a string");
    assert!(version.starts_with("3.1"), "openapi version {version}");
    assert_eq!(document["info"]["title"], "ticketd");
    // Its server is this deployment, so a generated client reaches it.
    assert_eq!(
        document["servers"],
        serde_json::json!([{"url": app.base_url}])
    );
    // Reads whose path may not decode say so, and no description names
    // the code's own functions.
    for path in [
        "/api/v2/support/tickets/{id}",
        "/api/v2/support/tickets/{id}/messages/{messageId}",
    ] {
        assert!(
            document["paths"][path]["get"]["responses"]["400"].is_object(),
            "{path}"
        );
    }
    assert!(!document.to_string().contains("read_reply"));
    // The document is served as generated, not re-rendered per request.
    let again = fetch_document(&app).await;
    assert_eq!(again, document);
    app.stop().await;
}

#[tokio::test]
async fn document_lists_exactly_the_served_operations() {
    let Some(app) = TestApp::spawn(BACKEND).await else {
        return;
    };
    let document = fetch_document(&app).await;

    let documented: BTreeSet<(String, String)> = operations(&document)
        .into_iter()
        .map(|(method, path, _)| (method, path))
        .collect();
    let expected: BTreeSet<(String, String)> = OPERATIONS
        .iter()
        .map(|(method, path)| ((*method).to_owned(), (*path).to_owned()))
        .collect();
    assert_eq!(documented, expected);
    app.stop().await;
}

#[tokio::test]
async fn support_operations_are_secured_by_bearer_auth() {
    let Some(app) = TestApp::spawn(BACKEND).await else {
        return;
    };
    let document = fetch_document(&app).await;

    for (method, path, operation) in operations(&document) {
        let secured = operation.get("security").is_some();
        assert_eq!(
            secured,
            path.starts_with("/api/v2/") && path != SIGNED_UPLOAD,
            "{method} {path}: security is {}",
            operation["security"]
        );
        if !secured {
            continue;
        }
        let requirements = operation["security"]
            .as_array()
            .expect("security is an array");
        assert_eq!(requirements.len(), 1, "{method} {path}");
        let scopes = string_set(&requirements[0]["bearerAuth"]);
        let scope = if method == "GET" {
            "read:support"
        } else {
            "write:support"
        };
        assert_eq!(
            scopes,
            BTreeSet::from([scope.to_owned()]),
            "{method} {path}"
        );
    }
    let scheme = &document["components"]["securitySchemes"]["bearerAuth"];
    assert_eq!(scheme["type"], "http", "{scheme}");
    assert_eq!(scheme["scheme"], "bearer", "{scheme}");
    app.stop().await;
}

#[tokio::test]
async fn secured_operations_document_the_shared_problem_responses() {
    let Some(app) = TestApp::spawn(BACKEND).await else {
        return;
    };
    let document = fetch_document(&app).await;

    let mut secured = 0;
    for (method, path, operation) in operations(&document) {
        if operation.get("security").is_none() {
            continue;
        }
        secured += 1;
        for status in ["401", "403", "429", "500"] {
            assert_problem_response(&method, &path, &operation, status);
        }
    }
    assert_eq!(
        secured, 14,
        "every /api/v2 operation is secured but the pre-signed upload"
    );
    app.stop().await;
}

#[tokio::test]
async fn every_write_documents_idempotency_keys() {
    let Some(app) = TestApp::spawn(BACKEND).await else {
        return;
    };
    let document = fetch_document(&app).await;

    let mut writes = 0;
    for (method, path, operation) in operations(&document) {
        // A pre-signed upload URL works once; it takes no key.
        if method != "POST" || path == SIGNED_UPLOAD {
            continue;
        }
        writes += 1;
        let parameters = operation["parameters"].as_array().unwrap_or_else(|| {
            panic!("{method} {path} has no parameters");
        });
        let keys: Vec<&Value> = parameters
            .iter()
            .filter(|parameter| parameter["name"] == "Idempotency-Key")
            .collect();
        assert_eq!(keys.len(), 1, "{method} {path}: {parameters:?}");
        assert_eq!(keys[0]["in"], "header", "{method} {path}");
        assert_eq!(keys[0]["required"], false, "{method} {path}");
        assert_eq!(keys[0]["schema"]["type"], "string", "{method} {path}");
        for status in ["409", "422"] {
            assert_problem_response(&method, &path, &operation, status);
        }
        let successes: Vec<(&String, &Value)> = operation["responses"]
            .as_object()
            .unwrap()
            .iter()
            .filter(|(status, _)| status.starts_with('2'))
            .collect();
        assert!(!successes.is_empty(), "{method} {path}");
        for (status, response) in successes {
            assert_eq!(
                response["headers"]["Idempotent-Replayed"]["schema"]["enum"],
                json!(["true"]),
                "{method} {path} {status}"
            );
        }
    }
    assert_eq!(writes, 8, "every POST of the API");
    app.stop().await;
}

#[tokio::test]
async fn operations_with_a_body_document_body_errors() {
    let Some(app) = TestApp::spawn(BACKEND).await else {
        return;
    };
    let document = fetch_document(&app).await;

    let mut with_body = BTreeSet::new();
    for (method, path, operation) in operations(&document) {
        let Some(body) = operation.get("requestBody") else {
            continue;
        };
        with_body.insert((method.clone(), path.clone()));
        let media_types: Vec<&String> = body["content"]
            .as_object()
            .expect("a request body has content")
            .keys()
            .collect();
        let expected = if FILE_BODIES.contains(&path.as_str()) {
            "application/octet-stream"
        } else {
            "application/json"
        };
        assert_eq!(media_types, [expected], "{method} {path}");
        for status in ["400", "408", "413", "415"] {
            assert_problem_response(&method, &path, &operation, status);
        }
    }
    assert_eq!(
        with_body,
        BTreeSet::from([
            ("POST".to_owned(), "/api/v2/support/tickets".to_owned()),
            (
                "POST".to_owned(),
                "/api/v2/support/tickets/{id}/messages".to_owned()
            ),
            ("POST".to_owned(), "/api/v2/support/uploads".to_owned()),
            ("POST".to_owned(), SIGNED_UPLOAD.to_owned()),
        ])
    );
    app.stop().await;
}

#[tokio::test]
async fn problem_schema_has_the_seed_members() {
    let Some(app) = TestApp::spawn(BACKEND).await else {
        return;
    };
    let document = fetch_document(&app).await;

    let problem = &document["components"]["schemas"]["Problem"];
    let properties: BTreeSet<String> = problem["properties"]
        .as_object()
        .expect("Problem has properties")
        .keys()
        .cloned()
        .collect();
    let expected: BTreeSet<String> = [
        "type",
        "title",
        "status",
        "detail",
        "code",
        "instance",
        "requestId",
        "timestamp",
        "errors",
    ]
    .into_iter()
    .map(str::to_owned)
    .collect();
    assert_eq!(properties, expected);
    // Every member but `errors` is always present.
    let required = string_set(&problem["required"]);
    let always: BTreeSet<String> = expected
        .iter()
        .filter(|m| *m != "errors")
        .cloned()
        .collect();
    assert_eq!(required, always);
    assert_eq!(problem["properties"]["errors"]["type"], "array");
    app.stop().await;
}

#[tokio::test]
async fn message_response_schema_requires_the_seed_fields() {
    let Some(app) = TestApp::spawn(BACKEND).await else {
        return;
    };
    let document = fetch_document(&app).await;

    let message = &document["components"]["schemas"]["MessageResponse"];
    assert!(message.is_object(), "no MessageResponse schema");
    let required = string_set(&message["required"]);
    let missing: Vec<&str> = [
        "id",
        "ticketId",
        "sentAt",
        "body",
        "html",
        "sender",
        "senderName",
        "encrypted",
        "attachments",
    ]
    .into_iter()
    .filter(|field| !required.contains(*field))
    .collect();
    assert!(
        missing.is_empty(),
        "MessageResponse does not require {missing:?}; required: {required:?}"
    );

    let sender = resolve(&document, &message["properties"]["sender"]);
    assert_eq!(sender["enum"], json!(["customer", "staff", "automation"]));
    assert_eq!(message["properties"]["attachments"]["type"], "array");
    assert_eq!(message["properties"]["encrypted"]["type"], "boolean");
    let html = &message["properties"]["html"];
    assert_eq!(html["type"], json!(["string", "null"]), "{html}");
    assert!(
        html["description"]
            .as_str()
            .is_some_and(|d| d.contains("sanitised HTML") && d.contains("noopener")),
        "{html}"
    );

    // The reply operation answers 201 with this schema.
    let created = &document["paths"]["/api/v2/support/tickets/{id}/messages"]["post"]["responses"]
        ["201"]["content"]["application/json"]["schema"];
    assert_eq!(
        created,
        &json!({ "$ref": "#/components/schemas/MessageResponse" })
    );
    app.stop().await;
}

/// Fills a documented path template with real values.
fn concrete_path(template: &str, ticket: &str, message: &str, file: &Value) -> String {
    let token = file["token"].as_str().unwrap_or_default();
    let upload = file["upload"].as_str().unwrap_or_default();
    template
        .replace("{id}", ticket)
        .replace("{messageId}", message)
        .replace("{attachmentId}", upload)
        .replace("{uploadId}", upload)
        .replace("{token}", token)
        .replace("{code}", "ticket_closed")
}

/// A ticket of the customer's whose second message, by staff, carries one
/// file: the ticket, that message, and `{upload, token}` (the file, and a
/// fresh pre-signed upload URL's token).
async fn ticket_with_a_file(app: &TestApp) -> (String, String, Value) {
    let ticket = app.open_ticket(&app.customer, "Router check").await;
    let ticket = ticket["id"].as_str().unwrap().to_owned();
    let upload = app
        .send(
            app.client
                .post(app.url("/api/v2/support/uploads?filename=a.txt"))
                .bearer_auth(&app.staff.token)
                .header("content-type", "text/plain")
                .body("log line\n"),
        )
        .await;
    assert_eq!(upload.status, StatusCode::CREATED, "{}", upload.text);
    let upload = upload.body["id"].as_str().unwrap().to_owned();
    let reply = app
        .post(
            &format!("/api/v2/support/tickets/{ticket}/messages"),
            &app.staff,
            &json!({"message": "The log", "attachments": [upload]}),
        )
        .await;
    assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.text);
    let issued = app
        .request(
            Method::POST,
            "/api/v2/support/uploads/url",
            Some(&app.staff.token),
            None,
        )
        .await;
    let url = issued.body["uploadUrl"].as_str().unwrap();
    let token = url.rsplit('/').next().unwrap().to_owned();
    let message = reply.body["id"].as_str().unwrap().to_owned();
    (ticket, message, json!({"upload": upload, "token": token}))
}

#[tokio::test]
async fn router_serves_every_documented_operation() {
    let Some(app) = TestApp::spawn(BACKEND).await else {
        return;
    };
    let document = fetch_document(&app).await;

    let documented = operations(&document);
    assert_eq!(documented.len(), OPERATIONS.len());
    for (method, template, _) in documented {
        // A fresh open ticket per operation, so every action is allowed.
        let (ticket, message, file) = ticket_with_a_file(&app).await;
        let path = concrete_path(&template, &ticket, &message, &file);
        let (body, expected) = match (method.as_str(), template.as_str()) {
            ("POST", "/api/v2/support/tickets") => (
                Some(json!({
                    "subject": "Opened for a customer",
                    "message": "Staff opened this.",
                    "customerId": app.customer.id.to_string(),
                })),
                StatusCode::CREATED,
            ),
            ("POST", "/api/v2/support/tickets/{id}/messages") => (
                Some(json!({ "message": "A staff reply." })),
                StatusCode::CREATED,
            ),
            // Routed, and refused for the file they lack.
            ("POST", "/api/v2/support/uploads" | SIGNED_UPLOAD) => (None, StatusCode::BAD_REQUEST),
            _ => (None, StatusCode::OK),
        };
        let method = Method::from_bytes(method.as_bytes()).unwrap();
        let response = app
            .request(method.clone(), &path, Some(&app.staff.token), body.as_ref())
            .await;
        assert_ne!(
            response.body["code"], "not_found",
            "{method} {path} fell through to the 404 fallback: {}",
            response.text
        );
        assert_eq!(
            response.status, expected,
            "{method} {path}: {}",
            response.text
        );
    }

    // The control: a path the document does not list is the 404 fallback.
    let unknown = app
        .request(
            Method::GET,
            "/api/v2/support/undocumented",
            Some(&app.staff.token),
            None,
        )
        .await;
    unknown.assert_problem(404, "not_found");
    app.stop().await;
}
