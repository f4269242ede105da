//! The bare baseline: an HTTP server on the same stack as ticketd (hyper via
//! axum, tokio) that parses each JSON body and answers with a prebuilt body
//! of the size ticketd would send, touching no storage. Uploads are read a
//! chunk at a time and discarded, as ticketd streams them (but without its
//! checks, hashing or writes). Its throughput is the ceiling each scenario
//! is measured against.

use axum::Router;
use axum::body::{Body, Bytes};
use axum::http::{Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use http_body_util::BodyExt;

async fn answer(method: Method, body: Bytes, prebuilt: Bytes) -> Response {
    if !body.is_empty() && serde_json::from_slice::<serde_json::Value>(&body).is_err() {
        return StatusCode::BAD_REQUEST.into_response();
    }
    let status = if method == Method::POST {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    (
        status,
        [(header::CONTENT_TYPE, "application/json")],
        prebuilt,
    )
        .into_response()
}

/// Reads an upload's body to its end, keeping nothing, and answers 201.
async fn discard(body: Body, prebuilt: Bytes) -> Response {
    let mut body = body;
    while let Some(frame) = body.frame().await {
        if frame.is_err() {
            return StatusCode::BAD_REQUEST.into_response();
        }
    }
    (
        StatusCode::CREATED,
        [(header::CONTENT_TYPE, "application/json")],
        prebuilt,
    )
        .into_response()
}

/// Serves until killed; every request gets a `response_bytes`-byte body.
pub async fn serve(listen: std::net::SocketAddr, response_bytes: usize) -> std::io::Result<()> {
    let mut text = String::from("{\"padding\":\"");
    while text.len() + 2 < response_bytes {
        text.push('x');
    }
    text.push_str("\"}");
    let prebuilt = Bytes::from(text);
    let for_uploads = prebuilt.clone();
    let app = Router::new()
        .route(
            "/api/v2/support/uploads",
            post(move |body: Body| discard(body, for_uploads.clone())),
        )
        .fallback(move |method: Method, body: Bytes| answer(method, body, prebuilt.clone()));
    let listener = tokio::net::TcpListener::bind(listen).await?;
    axum::serve(listener, app).await
}
