//! The OpenAPI 3.1 document, generated from the handlers' annotations.
//!
//! Handlers declare their success and endpoint-specific error responses;
//! [`CommonResponses`] adds the ones every authenticated endpoint shares
//! (401, 403, 405 where relevant, 408/413/415 for bodies, 429, 500, 503), and
//! to every write the `Idempotency-Key` header with its responses (409, 422
//! and `Idempotent-Replayed`), so no operation can forget them.

use crate::core::upload::attach::AttachLimits;
use crate::service::UploadPolicy;
use utoipa::openapi::header::HeaderBuilder;
use utoipa::openapi::path::{Operation, ParameterBuilder, ParameterIn};
use utoipa::openapi::response::ResponseBuilder;
use utoipa::openapi::schema::{ObjectBuilder, Type};
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::openapi::{ContentBuilder, HttpMethod, OpenApi as Document, Ref, RefOr, Required};
use utoipa::{Modify, OpenApi};

use crate::core::idempotency::IdempotencyKey;

use crate::api::problem::{FieldCode, FieldError, Problem};
use crate::core::text::TextLimits;

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
        (name = "Attachments", description = "Files: uploading them, attaching them to messages, downloading them."),
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

/// Documents `Idempotency-Key` on a write: the header, the responses that
/// refuse it, and the header that marks a replayed success.
fn add_idempotency(operation: &mut Operation) {
    let parameter = ParameterBuilder::new()
        .name("Idempotency-Key")
        .parameter_in(ParameterIn::Header)
        .required(Required::False)
        .description(Some(
            "Makes retrying this request safe: the first request with a key is processed, and \
             a retry with the same key, method, path and body (JSON compared by value) gets the \
             original status and body again (with `Idempotent-Replayed: true`) instead of \
             writing twice. 1 to 255 visible ASCII characters, bare or as a quoted string \
             (`\"9f1c2b3a-reply-1\"`); scoped to the API key; kept 24 hours by default \
             (the server's `idempotency_ttl_secs`). Use a fresh key (a UUID, say) for every new \
             request. Failed requests are not recorded: their retry runs again. A malformed key is \
             `400 idempotency_key_invalid`.",
        ))
        .schema(Some(
            ObjectBuilder::new()
                .schema_type(Type::String)
                .min_length(Some(1))
                // The longest key, quoted.
                .max_length(Some(IdempotencyKey::MAX_LEN + 2))
                .examples(["9f1c2b3a-reply-1"]),
        ))
        .build();
    let parameters = operation.parameters.get_or_insert_with(Vec::new);
    if !parameters.iter().any(|known| known.name == parameter.name) {
        parameters.push(parameter);
    }
    add_if_missing(
        operation,
        "409",
        "A request with this `Idempotency-Key` is still being processed \
         (`idempotency_request_in_progress`); retry after `Retry-After` seconds.",
    );
    add_if_missing(
        operation,
        "422",
        "This `Idempotency-Key` was already used for a different request \
         (`idempotency_key_reused`).",
    );
    for (status, response) in operation.responses.responses.iter_mut() {
        if !status.starts_with('2') {
            continue;
        }
        if let RefOr::T(response) = response {
            response.headers.insert(
                "Idempotent-Replayed".to_owned(),
                HeaderBuilder::new()
                    .schema(ObjectBuilder::new().schema_type(Type::String).enum_values(Some(["true"])))
                    .description(Some(
                        "`true` when this is the stored response of an earlier request with the same `Idempotency-Key`.",
                    ))
                    .build(),
            );
        }
    }
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
                if method == HttpMethod::Post && operation.security.is_some() {
                    add_if_missing(
                        operation,
                        "408",
                        "The body did not arrive within the server's body timeout \
                         (`request_body_timeout`); the connection is closed.",
                    );
                    add_idempotency(operation);
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
                        "Rate limited: over the key's rate limit (`rate_limit_exceeded`, with \
                         `X-RateLimit-*` headers), too many of the key's requests in progress \
                         (`concurrency_limit_exceeded`), or too many failed authentications \
                         from the client's address (`auth_rate_limit_exceeded`). Retry after \
                         `Retry-After` seconds.",
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

/// The text members whose `maxLength` is a configurable limit: schema,
/// property, and which limit.
const TEXT_MEMBERS: [(&str, &str, TextLimit); 3] = [
    ("CreateTicketRequest", "subject", TextLimit::Subject),
    ("CreateTicketRequest", "message", TextLimit::Message),
    ("ReplyRequest", "message", TextLimit::Message),
];

#[derive(Clone, Copy)]
enum TextLimit {
    Subject,
    Message,
}

impl TextLimit {
    fn of(self, limits: TextLimits) -> usize {
        match self {
            TextLimit::Subject => limits.subject_chars(),
            TextLimit::Message => limits.message_chars(),
        }
    }
}

/// `document` (the pretty JSON generated for the published limits) with
/// the text members' `maxLength` and descriptions stating `limits` instead.
/// The published limits give `document` back unchanged.
pub fn with_text_limits(document: &str, limits: TextLimits) -> String {
    if limits == TextLimits::PUBLISHED {
        return document.to_owned();
    }
    let Ok(mut value) = serde_json::from_str::<serde_json::Value>(document) else {
        return document.to_owned();
    };
    for (schema, property, limit) in TEXT_MEMBERS {
        let pointer = format!("/components/schemas/{schema}/properties/{property}");
        let Some(member) = value.pointer_mut(&pointer) else {
            continue;
        };
        let (published, configured) = (limit.of(TextLimits::PUBLISHED), limit.of(limits));
        member["maxLength"] = configured.into();
        if let Some(description) = member["description"].as_str() {
            let description = description.replace(
                &format!("1 to {} characters", grouped(published)),
                &format!("1 to {} characters", grouped(configured)),
            );
            member["description"] = description.into();
        }
    }
    serde_json::to_string_pretty(&value).unwrap_or_else(|_| document.to_owned())
}

/// `document` with `public_url` as its one server, so that a client
/// generated from it reaches this deployment.
pub fn with_server(document: &str, public_url: &str) -> String {
    let Ok(mut value) = serde_json::from_str::<serde_json::Value>(document) else {
        return document.to_owned();
    };
    value["servers"] = serde_json::json!([{ "url": public_url }]);
    serde_json::to_string_pretty(&value).unwrap_or_else(|_| document.to_owned())
}

/// The configured limits on files, as the OpenAPI document publishes them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileLimits {
    /// `max_upload_bytes`.
    pub max_upload_bytes: u64,
    /// `upload_media_types`.
    pub media_types: Vec<&'static str>,
    /// `max_attachments_per_message`.
    pub per_message: usize,
    /// `max_ticket_attachment_bytes`.
    pub per_ticket_bytes: u64,
    /// `upload_ttl_secs`.
    pub upload_ttl_secs: u64,
    /// `upload_url_ttl_secs`.
    pub upload_url_ttl_secs: u64,
}

impl FileLimits {
    /// The limits of `policy` and `attach`.
    pub fn of(policy: &UploadPolicy, attach: AttachLimits) -> Self {
        Self {
            max_upload_bytes: policy.max_bytes,
            media_types: policy
                .media
                .allowed()
                .iter()
                .map(|known| known.as_str())
                .collect(),
            per_message: attach.per_message,
            per_ticket_bytes: attach.per_ticket_bytes,
            upload_ttl_secs: policy.ttl.as_secs(),
            upload_url_ttl_secs: policy.url_ttl.as_secs(),
        }
    }
}

/// The schemas whose `attachments` member names uploads.
const ATTACHING_SCHEMAS: [&str; 2] = ["ReplyRequest", "CreateTicketRequest"];

/// `document` with `limits` published: as `x-ticketd-file-limits` at its
/// top, and as `maxItems` of every `attachments` a request takes.
pub fn with_file_limits(document: &str, limits: &FileLimits) -> String {
    let Ok(mut value) = serde_json::from_str::<serde_json::Value>(document) else {
        return document.to_owned();
    };
    value["x-ticketd-file-limits"] = serde_json::json!({
        "maxUploadBytes": limits.max_upload_bytes,
        "uploadMediaTypes": limits.media_types,
        "maxAttachmentsPerMessage": limits.per_message,
        "maxTicketAttachmentBytes": limits.per_ticket_bytes,
        "uploadTtlSecs": limits.upload_ttl_secs,
        "uploadUrlTtlSecs": limits.upload_url_ttl_secs,
    });
    for schema in ATTACHING_SCHEMAS {
        let pointer = format!("/components/schemas/{schema}/properties/attachments");
        if let Some(member) = value.pointer_mut(&pointer) {
            member["maxItems"] = limits.per_message.into();
        }
    }
    serde_json::to_string_pretty(&value).unwrap_or_else(|_| document.to_owned())
}

/// `n` with a comma between groups of three digits, as the descriptions
/// write numbers (`25,000`).
fn grouped(n: usize) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, digit) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(digit);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_are_grouped_by_thousands() {
        assert_eq!(grouped(7), "7");
        assert_eq!(grouped(200), "200");
        assert_eq!(grouped(2000), "2,000");
        assert_eq!(grouped(25_000), "25,000");
        assert_eq!(grouped(1_234_567), "1,234,567");
    }

    #[test]
    fn lowered_limits_show_in_the_document() {
        let published = crate::api::openapi_json();
        assert_eq!(
            with_text_limits(published, TextLimits::PUBLISHED),
            published
        );
        let limits = TextLimits::new(80, 2000).expect("valid limits");
        let document: serde_json::Value =
            serde_json::from_str(&with_text_limits(published, limits)).expect("JSON");
        for (schema, property, max, description) in [
            ("CreateTicketRequest", "subject", 80, "1 to 80 characters"),
            (
                "CreateTicketRequest",
                "message",
                2000,
                "1 to 2,000 characters",
            ),
            ("ReplyRequest", "message", 2000, "1 to 2,000 characters"),
        ] {
            let member = &document["components"]["schemas"][schema]["properties"][property];
            assert_eq!(member["maxLength"], max, "{schema}.{property}");
            let text = member["description"].as_str().unwrap_or_default();
            assert!(text.contains(description), "{schema}.{property}: {text}");
        }
    }
}
