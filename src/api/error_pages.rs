//! `/errors/{code}`: the human page each problem's `type` URI points to.

use axum::body::Body;
use axum::http::{HeaderValue, header};
use axum::response::Response;

use crate::api::extract::PathParams;
use crate::api::problem::{ApiError, ErrorCode, Problem, explanation, title};

fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// Explain an error code.
#[utoipa::path(
    get,
    path = "/errors/{code}",
    tag = "Operations",
    params(("code" = String, Path, description = "An error code, e.g. `ticket_closed`.", example = "ticket_closed")),
    responses(
        (status = 200, description = "A short page explaining the code.", body = String, content_type = "text/html"),
        (status = 404, description = "No such error code.", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn error_page(params: PathParams) -> Result<Response, ApiError> {
    let code =
        ErrorCode::parse(params.get("code")).ok_or_else(|| ApiError::new(ErrorCode::NotFound))?;
    let html = format!(
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>{title} ({code}) - ticketd</title></head>\n\
         <body><h1>{title}</h1>\n<p>HTTP status <strong>{status}</strong>, code <code>{code}</code>.</p>\n\
         <p>{explanation}</p>\n<p>Clients should branch on the problem's <code>code</code> member, not on its <code>detail</code>.</p></body></html>\n",
        title = escape(title(code)),
        code = code.as_str(),
        status = code.status().as_u16(),
        explanation = escape(explanation(code)),
    );
    let mut response = Response::new(Body::from(html));
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    Ok(response)
}
