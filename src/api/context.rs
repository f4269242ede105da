//! The outermost middleware: gives each request its id and one log line,
//! admits it to the router ([`crate::api::admit`]: body size, concurrency,
//! timeout), and has refusals rendered by the renderer of the API whose
//! path they are under ([`Renderers`]).
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
use crate::api::refusal::{PendingRefusal, Renderers, RequestFacts};
use crate::core::id::{KeyId, RequestId};
use crate::core::time::Timestamp;

pub use crate::api::problem::{PROBLEM_CONTENT_TYPE, problem_type_uri};

/// The response header that carries the request id.
pub const REQUEST_ID_HEADER: HeaderName = HeaderName::from_static("x-request-id");

/// Assigns the request id, admits the request, finishes any refusal with
/// its API's renderer, and logs one line when the response is ready.
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
    let credentials_sent = request.headers().contains_key(header::AUTHORIZATION);
    request.extensions_mut().insert(request_id);

    let mut response = crate::api::admit(&state, request, next).await;

    let key_id = response.extensions().get::<KeyId>().copied();
    let cause = finish_refusal(
        &mut response,
        &state.renderers,
        &state.settings.public_url,
        uri.path(),
        request_id,
        credentials_sent,
    );
    if let Ok(value) = HeaderValue::from_str(&request_id.to_string()) {
        response.headers_mut().insert(REQUEST_ID_HEADER, value);
    }
    let status = response.status().as_u16();
    let took = started.elapsed();
    crate::metrics::record_request(
        matched.as_ref().map(MatchedPath::as_str),
        &method,
        status,
        took,
    );
    let latency_ms = latency_ms(took);
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

/// A request's latency for its log line, in milliseconds of whole
/// microseconds, so that it reads `0.031`, not `0.030994999999999998`.
fn latency_ms(elapsed: std::time::Duration) -> f64 {
    elapsed.as_micros() as f64 / 1000.0
}

/// Finishes a refused response: takes its [`PendingRefusal`] out, has the
/// renderer of the API `path` is under write the body and `Content-Type`,
/// and returns the refusal's cause for the log line. Leaves other
/// responses alone.
pub fn finish_refusal(
    response: &mut Response,
    renderers: &Renderers,
    public_url: &str,
    path: &str,
    request_id: RequestId,
    credentials_sent: bool,
) -> Option<String> {
    let mut refusal = response.extensions_mut().remove::<PendingRefusal>()?;
    let renderer = renderers.for_path(path);
    let cause = refusal.cause.take();
    let mut facts = RequestFacts {
        public_url,
        path,
        request_id,
        now: Timestamp::now(),
        status: response.status(),
        credentials_sent,
    };
    facts.status = renderer.status(&refusal, &facts);
    *response.status_mut() = facts.status;
    let (content_type, body) = renderer.render(refusal, &facts);
    *response.body_mut() = Body::from(body);
    response.headers_mut().remove(header::CONTENT_LENGTH);
    response
        .headers_mut()
        .insert(header::CONTENT_TYPE, content_type);
    cause
}

#[cfg(test)]
mod tests {
    #[test]
    fn latencies_are_logged_in_whole_microseconds() {
        let logged = |nanos| super::latency_ms(std::time::Duration::from_nanos(nanos)).to_string();
        assert_eq!(logged(30_995), "0.03");
        assert_eq!(logged(31_000), "0.031");
        assert_eq!(logged(12_345_678), "12.345");
    }

    use axum::body::to_bytes;
    use axum::http::StatusCode;
    use axum::response::IntoResponse;

    use super::*;
    use crate::api::problem::MAX_INSTANCE_BYTES;
    use crate::api::problem::{ApiError, Rfc9457};
    use crate::api::refusal::PendingRefusal as PendingProblem;
    use crate::api::refusal::RefusalRenderer;

    /// The finish step with the default renderer, as the tests below call it.
    fn finish_problem(
        response: &mut Response,
        pending: PendingProblem,
        public_url: &str,
        path: &str,
        request_id: RequestId,
    ) {
        response.extensions_mut().insert(pending);
        finish_refusal(
            response,
            &Renderers::new(Rfc9457),
            public_url,
            path,
            request_id,
            true,
        );
    }

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
    /// A profile's envelope, as a second renderer.
    struct Toy;

    impl RefusalRenderer for Toy {
        fn render(
            &self,
            refusal: PendingRefusal,
            facts: &RequestFacts<'_>,
        ) -> (HeaderValue, Vec<u8>) {
            let body = serde_json::json!({
                "error": refusal.code.as_str(),
                "message": refusal.detail(),
                "path": facts.path,
            });
            let body = serde_json::to_vec(&body).unwrap_or_default();
            (HeaderValue::from_static("application/vnd.toy+json"), body)
        }
    }

    #[tokio::test]
    async fn each_api_renders_every_refusal_under_its_path_its_own_way() {
        use std::sync::{Arc, Mutex};

        use axum::Router;
        use axum::middleware::from_fn;
        use axum::routing::get;
        use tower::ServiceExt;

        use crate::api::problem::ErrorCode;

        async fn closed() -> ApiError {
            ApiError::new(ErrorCode::TicketClosed)
        }
        async fn broken() -> ApiError {
            ApiError::internal("disk on fire")
        }
        async fn not_found() -> ApiError {
            ApiError::new(ErrorCode::NotFound)
        }
        let causes = Arc::new(Mutex::new(Vec::new()));
        let logged = Arc::clone(&causes);
        let renderers = Renderers::new(Rfc9457).mount("/toy", Toy);
        let app = Router::new()
            .route("/api/v2/closed", get(closed))
            .route("/api/v2/broken", get(broken))
            .route("/toy/closed", get(closed))
            .route("/toy/broken", get(broken))
            .fallback(not_found)
            // An outer layer's refusal, before any route is matched (as
            // admission refuses a declared body too large).
            .layer(from_fn(|request: Request, next: Next| async move {
                if request.uri().path().ends_with("/outer") {
                    return ApiError::new(ErrorCode::PayloadTooLarge).into_response();
                }
                next.run(request).await
            }))
            .layer(from_fn(move |request: Request, next: Next| {
                let logged = Arc::clone(&logged);
                let renderers = renderers.clone();
                async move {
                    let path = request.uri().path().to_owned();
                    let mut response = next.run(request).await;
                    let cause = finish_refusal(
                        &mut response,
                        &renderers,
                        "https://t.example",
                        &path,
                        RequestId::generate(),
                        true,
                    );
                    logged.lock().expect("not poisoned").push(cause);
                    response
                }
            }));
        let call = |path: &'static str| {
            let app = app.clone();
            async move {
                let request = Request::get(path).body(Body::empty()).expect("a request");
                let response = app.oneshot(request).await.expect("a response");
                let status = response.status();
                let content_type = response.headers()[header::CONTENT_TYPE].clone();
                let bytes = to_bytes(response.into_body(), usize::MAX)
                    .await
                    .expect("a body");
                let body: serde_json::Value = serde_json::from_slice(&bytes).expect("JSON");
                (status, content_type, body)
            }
        };

        let (status, content_type, problem) = call("/api/v2/closed").await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        assert_eq!(content_type, PROBLEM_CONTENT_TYPE);
        assert_eq!(problem["code"], "ticket_closed");
        assert_eq!(
            problem["detail"],
            "This ticket is closed. Closed tickets must be reopened first: \
             POST /api/v2/support/tickets/{id}/actions/reopen, then retry."
        );
        let (status, content_type, toy) = call("/toy/closed").await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        assert_eq!(content_type, "application/vnd.toy+json");
        assert_eq!(
            toy,
            serde_json::json!({
                "error": "ticket_closed",
                "message": "Closed tickets must be reopened first.",
                "path": "/toy/closed",
            })
        );

        let (status, _, problem) = call("/api/v2/broken").await;
        assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);
        assert_eq!(problem["title"], "Internal server error");
        let (status, _, toy) = call("/toy/broken").await;
        assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);
        assert_eq!(toy["error"], "internal_error");
        assert!(!toy.to_string().contains("disk on fire"), "{toy}");

        // The router's fallback and an outer layer's refusal are written
        // by the API whose path they are under, too.
        for (path, code) in [
            ("/toy/nowhere", "not_found"),
            ("/toy/outer", "payload_too_large"),
        ] {
            let (_, content_type, toy) = call(path).await;
            assert_eq!(content_type, "application/vnd.toy+json", "{path}");
            assert_eq!(toy["error"], code, "{path}");
        }
        for path in ["/api/v2/nowhere", "/toyland/nowhere", "/api/v2/outer"] {
            let (_, content_type, _) = call(path).await;
            assert_eq!(content_type, PROBLEM_CONTENT_TYPE, "{path}");
        }

        // Both renderings leave the cause to the log line, and only to it.
        let causes = causes.lock().expect("not poisoned").clone();
        assert_eq!(
            causes[..4],
            [
                None,
                None,
                Some("disk on fire".to_owned()),
                Some("disk on fire".to_owned())
            ]
        );
    }
}
