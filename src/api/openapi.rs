//! The OpenAPI 3.1 document, generated from the handlers' annotations.
//!
//! Handlers declare their success and endpoint-specific error responses;
//! [`CommonResponses`] adds the ones every authenticated endpoint shares
//! (401, 403, 405 where relevant, 413/415 for bodies, 429, 500, 503), so no
//! operation can forget them.

use utoipa::openapi::path::Operation;
use utoipa::openapi::response::ResponseBuilder;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::openapi::{ContentBuilder, HttpMethod, OpenApi as Document, Ref};
use utoipa::{Modify, OpenApi};

use crate::api::problem::{FieldCode, FieldError, Problem};

/// The document's static parts; paths come from the router.
#[derive(OpenApi)]
#[openapi(
    info(
        title = "ticketd",
        description = "Self-hosted support tickets: customers, staff and automations open tickets and reply in them. Errors are RFC 9457 problem details; branch on `code`.",
    ),
    components(schemas(Problem, FieldError, FieldCode)),
    modifiers(&CommonResponses),
    tags(
        (name = "Support tickets", description = "The canonical `/api/v2` ticket API."),
        (name = "Operations", description = "Probes, the API document and error pages."),
    )
)]
pub struct ApiDoc;

/// Adds the bearer scheme and the shared error responses.
pub struct CommonResponses;

fn problem_response(description: &str) -> utoipa::openapi::Response {
    ResponseBuilder::new()
        .description(description)
        .content(
            "application/problem+json",
            ContentBuilder::new()
                .schema(Some(Ref::from_schema_name("Problem")))
                .build(),
        )
        .build()
}

fn add_if_missing(operation: &mut Operation, status: &str, description: &str) {
    operation
        .responses
        .responses
        .entry(status.to_owned())
        .or_insert_with(|| problem_response(description).into());
}

impl Modify for CommonResponses {
    fn modify(&self, document: &mut Document) {
        let components = document.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearerAuth",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some("An API key created with `ticketd key create`."))
                    .build(),
            ),
        );
        for item in document.paths.paths.values_mut() {
            let operations = [
                (HttpMethod::Get, item.get.as_mut()),
                (HttpMethod::Post, item.post.as_mut()),
            ];
            for (method, operation) in operations {
                let Some(operation) = operation else { continue };
                if method == HttpMethod::Post && operation.request_body.is_some() {
                    add_if_missing(operation, "400", "Invalid request or malformed JSON.");
                    add_if_missing(
                        operation,
                        "413",
                        "The body exceeds the configured size limit.",
                    );
                    add_if_missing(operation, "415", "The body is not `application/json`.");
                }
                if method == HttpMethod::Post
                    && operation.request_body.is_none()
                    && operation.security.is_some()
                {
                    add_if_missing(operation, "400", "The body must be empty or `{}`.");
                }
                if operation.security.is_some() {
                    add_if_missing(
                        operation,
                        "401",
                        "Unauthorized. Authentication is required.",
                    );
                    add_if_missing(
                        operation,
                        "403",
                        "Forbidden. The caller lacks a required scope or does not own the resource.",
                    );
                    add_if_missing(
                        operation,
                        "429",
                        "Rate limited. Retry after the limit resets; includes `Retry-After` and `X-RateLimit-*` headers.",
                    );
                }
                add_if_missing(
                    operation,
                    "500",
                    "Internal error. Retry later or contact support if the issue persists.",
                );
                add_if_missing(
                    operation,
                    "503",
                    "The database is unreachable or the request timed out; see `Retry-After`.",
                );
            }
        }
    }
}
