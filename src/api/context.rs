//! The outermost middleware: gives each request its id and one log line,
//! admits it to the router ([`crate::api::admit`]: body size, concurrency,
//! timeout), and turns pending problems into finished documents.
//!
//! The log line is written once the response is ready and carries everything
//! about the request (id, method, matched route, status, latency, API key,
//! and for a 5xx the cause), so no per-request span is needed.

use std::time::Instant;

use axum::body::Body;
use axum::extract::{MatchedPath, Request, State};
use axum::http::{HeaderName, HeaderValue, header};
use axum::middleware::Next;
use axum::response::Response;

use crate::api::AppState;
use crate::api::problem::{MAX_INSTANCE_BYTES, PendingProblem, Problem, bounded};
use crate::core::id::{KeyId, RequestId};
use crate::core::time::Timestamp;

/// The response header that carries the request id.
pub const REQUEST_ID_HEADER: HeaderName = HeaderName::from_static("x-request-id");

/// Media type of problem documents.
pub const PROBLEM_CONTENT_TYPE: &str = "application/problem+json";

/// Assigns the request id, admits the request, finishes any problem
/// document, and logs one line when the response is ready.
pub async fn track_request(
    State(state): State<AppState>,
    mut request: Request,
    next: Next,
) -> Response {
    let started = Instant::now();
    let request_id = RequestId::generate();
    // Cheap handles (reference-counted), read after the response is ready.
    let matched = request.extensions().get::<MatchedPath>().cloned();
    let method = request.method().clone();
    let uri = request.uri().clone();
    request.extensions_mut().insert(request_id);

    let mut response = crate::api::admit(&state, request, next).await;

    let key_id = response.extensions().get::<KeyId>().copied();
    let cause = response
        .extensions_mut()
        .remove::<PendingProblem>()
        .and_then(|mut pending| {
            let cause = pending.cause.take();
            finish_problem(
                &mut response,
                pending,
                &state.settings.public_url,
                uri.path(),
                request_id,
            );
            cause
        });
    if let Ok(value) = HeaderValue::from_str(&request_id.to_string()) {
        response.headers_mut().insert(REQUEST_ID_HEADER, value);
    }
    let status = response.status().as_u16();
    let latency_ms = started.elapsed().as_secs_f64() * 1000.0;
    let key_id = key_id.map(tracing::field::display);
    let route = matched.as_ref().map_or("(unmatched)", MatchedPath::as_str);
    if response.status().is_server_error() {
        tracing::error!(
            request_id = %request_id, method = %method, route, status, latency_ms, key_id,
            cause = cause.as_deref().unwrap_or("unknown"),
            "request failed"
        );
    } else {
        tracing::info!(request_id = %request_id, method = %method, route, status, latency_ms, key_id, "request");
    }
    response
}

/// The URI of the page that explains `code`.
pub fn problem_type_uri(public_url: &str, code: &str) -> String {
    format!("{}/errors/{code}", public_url.trim_end_matches('/'))
}

fn finish_problem(
    response: &mut Response,
    pending: PendingProblem,
    public_url: &str,
    path: &str,
    request_id: RequestId,
) {
    let status = response.status();
    // The path is the client's, up to the request head's limit in length.
    let instance = bounded(MAX_INSTANCE_BYTES, format_args!("{path}"));
    let problem = Problem {
        type_uri: problem_type_uri(public_url, pending.code.as_str()),
        title: pending.code.title().to_owned(),
        status: status.as_u16(),
        detail: pending.detail,
        code: pending.code.as_str().to_owned(),
        instance,
        request_id: request_id.to_string(),
        timestamp: Timestamp::now().to_string(),
        errors: pending.errors,
    };
    // Serialising a struct of strings cannot fail; fall back to an empty
    // object rather than panic if it ever did.
    let body = serde_json::to_vec(&problem).unwrap_or_else(|_| b"{}".to_vec());
    *response.body_mut() = Body::from(body);
    response.headers_mut().remove(header::CONTENT_LENGTH);
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(PROBLEM_CONTENT_TYPE),
    );
}

#[cfg(test)]
mod tests {
    use axum::body::to_bytes;
    use axum::http::StatusCode;
    use axum::response::IntoResponse;

    use super::*;
    use crate::api::problem::ApiError;

    #[tokio::test]
    async fn internal_errors_render_the_seed_problem_without_their_cause() {
        let mut response =
            ApiError::internal("connection string postgres://admin:hunter2@db failed")
                .into_response();
        let pending = response
            .extensions_mut()
            .remove::<PendingProblem>()
            .expect("a pending problem");
        let request_id = RequestId::generate();
        finish_problem(
            &mut response,
            pending,
            "https://tickets.example.com/",
            "/api/v2/resource",
            request_id,
        );

        assert_eq!(response.status(), StatusCode::INTERNAL_SERVER_ERROR);
        assert_eq!(
            response.headers()[header::CONTENT_TYPE],
            PROBLEM_CONTENT_TYPE
        );
        let bytes = to_bytes(response.into_body(), usize::MAX)
            .await
            .expect("a body");
        let text = String::from_utf8(bytes.to_vec()).expect("UTF-8");
        assert!(
            !text.contains("hunter2") && !text.contains("postgres"),
            "{text}"
        );
        let problem: serde_json::Value = serde_json::from_str(&text).expect("JSON");
        let members: Vec<&str> = problem
            .as_object()
            .expect("an object")
            .keys()
            .map(String::as_str)
            .collect();
        assert_eq!(
            members,
            [
                "code",
                "detail",
                "instance",
                "requestId",
                "status",
                "timestamp",
                "title",
                "type"
            ]
        );
        assert_eq!(
            problem["type"],
            "https://tickets.example.com/errors/internal_error"
        );
        assert_eq!(problem["title"], "Internal server error");
        assert_eq!(problem["status"], 500);
        assert_eq!(
            problem["detail"],
            "An unexpected error occurred. Retry later or contact support if the issue persists."
        );
        assert_eq!(problem["code"], "internal_error");
        assert_eq!(problem["instance"], "/api/v2/resource");
        assert_eq!(problem["requestId"], request_id.to_string());
        let timestamp = problem["timestamp"].as_str().expect("a timestamp");
        assert!(Timestamp::parse_rfc3339(timestamp).is_some(), "{timestamp}");
    }

    #[tokio::test]
    async fn no_problem_document_exceeds_its_bound_whatever_the_request() {
        use crate::api::problem::{
            FieldCode, FieldError, MAX_FIELD_ERRORS, MAX_PROBLEM_BYTES, quoted,
        };

        // The longest of everything: control characters take six bytes
        // each as sent, so they are the worst text a client can send.
        let worst = "\u{1}".repeat(10_000);
        let errors: Vec<FieldError> = (0..200)
            .map(|n| FieldError {
                pointer: format!("/{n}{worst}"),
                detail: format!("`{}` {worst}", quoted(&worst)),
                code: FieldCode::InvalidEncoding,
            })
            .collect();
        let mut response = ApiError::invalid(errors)
            .with_detail(worst.clone())
            .into_response();
        let pending = response
            .extensions_mut()
            .remove::<PendingProblem>()
            .expect("a pending problem");
        let public_url = format!("https://{}.example.com", "t".repeat(1000));
        let path = format!("/{}", "%01".repeat(10_000));
        finish_problem(
            &mut response,
            pending,
            &public_url,
            &path,
            RequestId::generate(),
        );
        let bytes = to_bytes(response.into_body(), usize::MAX)
            .await
            .expect("a body");
        assert!(bytes.len() <= MAX_PROBLEM_BYTES, "{} bytes", bytes.len());
        let problem: serde_json::Value = serde_json::from_slice(&bytes).expect("JSON");
        let errors = problem["errors"].as_array().expect("errors[]");
        assert!(errors.len() < MAX_FIELD_ERRORS, "{}", errors.len());
        assert_eq!(
            errors.last().map(|e| &e["code"]),
            Some(&"too_many_errors".into())
        );
        let instance = problem["instance"].as_str().expect("an instance");
        assert!(instance.starts_with("/%01%01") && instance.ends_with('…'));
        assert!(instance.len() <= MAX_INSTANCE_BYTES);

        // Short entries: a hundred of them, still within the bound.
        let mut response = ApiError::invalid(
            (0..10_000)
                .map(|n| FieldError {
                    pointer: format!("/u{n:05}"),
                    detail: format!("`u{n:05}` is not a field of this request."),
                    code: FieldCode::UnknownField,
                })
                .collect::<Vec<_>>(),
        )
        .into_response();
        let pending = response
            .extensions_mut()
            .remove::<PendingProblem>()
            .expect("a pending problem");
        assert_eq!(pending.errors.len(), MAX_FIELD_ERRORS);
        finish_problem(
            &mut response,
            pending,
            &public_url,
            &path,
            RequestId::generate(),
        );
        let bytes = to_bytes(response.into_body(), usize::MAX)
            .await
            .expect("a body");
        assert!(bytes.len() <= MAX_PROBLEM_BYTES, "{} bytes", bytes.len());
    }
}
