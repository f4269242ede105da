//! The `projects` profile: AppHandoff's project ticket threads (seed 002),
//! under `/api/projects/{id}`, where people and AI agents post to a
//! ticket's thread.
//!
//! A translation over the canonical core: the project is the workspace,
//! and tickets, messages and users are shown as UUIDs (the same 128 bits
//! as their ULIDs, [`crate::core::id`]); a message's `author_type` is
//! `human` for customers and staff and `agent` for automations, always
//! from the key's user; `task_id` is the message's client task
//! ([`crate::core::id::TaskRef`]). Bodies are limited as Zod counts them,
//! in UTF-16 code units ([`Counting::Utf16Units`]). Errors are
//! AppHandoff's schema ([`errors`]). Visibility is the core's: a customer
//! sees only their own tickets. Unknown body members are ignored, as Zod
//! strips them.

pub mod errors;
pub mod wire;

use std::sync::LazyLock;

use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use utoipa::OpenApi;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::api::AppState;
use crate::api::auth::{Authed, ReadSupport, WriteSupport};
use crate::api::extract::{JsonBody, PathParams, QueryParams};
use crate::api::fields::{Fields, field_error};
use crate::api::idempotency::IdempotencyClaim;
use crate::api::refusal::{ErrorCode, FieldCode, Refusal};
use crate::api::respond;
use crate::core::access::{Actor, Principal};
use crate::core::id::{TaskRef, TicketId, WorkspaceId};
use crate::core::message::{Message, MessageFilter};
use crate::core::page::{MessageCursor, PageRequest, PageSize};
use crate::core::text::Counting;
use crate::core::ticket::TicketRef;
use crate::core::time::Timestamp;
use crate::service::Draft;
use crate::store::Cause;
use crate::store::idempotency::StoredResponse;

use super::BearerAuth;
use errors::refusal_of;
use wire::{ErrorBody, ListedMessage, MessageCreated, MessageList, WireBodyFormat};

/// Where the profile is mounted.
pub const PREFIX: &str = "/api/projects";

/// Messages a list shows unless `limit` says otherwise.
pub const DEFAULT_LIMIT: u32 = 50;

/// The most messages a list shows.
pub const MAX_LIMIT: u32 = 200;

/// A path's project: the caller's workspace, named by its UUID. A
/// malformed UUID is a validation error on `id`; any other project,
/// existing or not, is not found.
fn project_of(params: &PathParams, principal: &Principal) -> Result<(), Refusal> {
    let project = WorkspaceId::from_uuid(params.get("id")).ok_or_else(|| invalid_uuid("id"))?;
    if project == principal.actor.workspace_id {
        Ok(())
    } else {
        Err(Refusal::new(ErrorCode::NotFound))
    }
}

/// A path's ticket, named by its UUID.
fn ticket_of(params: &PathParams) -> Result<TicketRef, Refusal> {
    TicketId::from_uuid(params.get("ticketId"))
        .map(TicketRef::Id)
        .ok_or_else(|| invalid_uuid("ticketId"))
}

/// A validation error on the path parameter `name`.
fn invalid_uuid(name: &str) -> Refusal {
    Refusal::invalid(vec![field_error(
        name,
        FieldCode::InvalidValue,
        format!("`{name}` must be a UUID."),
    )])
}

/// The caller, in the project the path names.
fn actor_in(params: &PathParams, principal: &Principal) -> Result<Actor, Refusal> {
    project_of(params, principal)?;
    Ok(principal.actor.clone())
}

/// `body` as JSON with `status`, for an idempotency record.
fn stored<T: serde::Serialize>(status: StatusCode, body: &T) -> Result<StoredResponse, Cause> {
    respond::stored(status, None, body)
}

/// Post a message to a ticket's thread, as the key's user.
///
/// `author_type` is `human` for a customer's or staff member's key and
/// `agent` for an automation's. A closed ticket takes no messages (400
/// `TICKET_CLOSED`).
#[utoipa::path(
    post,
    path = "/api/projects/{id}/tickets/{ticketId}/messages",
    tag = "Messages",
    params(
        ("id" = String, Path, format = "uuid", description = "Project UUID."),
        ("ticketId" = String, Path, format = "uuid", description = "Ticket UUID."),
    ),
    request_body(content = wire::PostMessageRequest, content_type = "application/json"),
    responses(
        (status = 201, description = "Created message.", body = MessageCreated),
        (status = 400, description = "Invalid request (`VALIDATION_ERROR`, `INVALID_JSON`), or a closed ticket (`TICKET_CLOSED`).", body = ErrorBody),
        (status = 403, description = "Forbidden: the key lacks `write:support`.", body = ErrorBody),
        (status = 404, description = "Not found: another project, or no such ticket of yours.", body = ErrorBody),
        (status = 409, description = "The `Idempotency-Key` was used for another request, or is in progress.", body = ErrorBody),
        (status = 413, description = "The body is larger than `max_body_bytes`.", body = ErrorBody),
        (status = 415, description = "The body is not `application/json`.", body = ErrorBody),
        Refusals,
    ),
    security(("bearerAuth" = []))
)]
pub async fn post_message(
    State(state): State<AppState>,
    authed: Authed<WriteSupport>,
    params: PathParams,
    claim: IdempotencyClaim,
    JsonBody(body): JsonBody,
) -> Result<Response, Refusal> {
    let actor = actor_in(&params, &authed.principal)?;
    let ticket = ticket_of(&params)?;
    let limits = state.settings.text_limits.counting(Counting::Utf16Units);
    let draft = Fields::read(body, |fields| {
        let body = fields.required_text("body", |text| limits.message(text));
        let task = fields.optional_parsed("task_id", "a UUID", TaskRef::from_uuid);
        let format =
            fields.optional_choice("body_format", &WireBodyFormat::ALL, WireBodyFormat::as_str);
        fields.ignore_others();
        Some(Draft {
            body: body?,
            body_format: format.ok()?.unwrap_or(WireBodyFormat::Plain).core(),
            encrypted: false,
            attachments: Vec::new(),
            task: task.ok()?,
        })
    })
    .map_err(Refusal::invalid)?;
    let render = |message: &Message| {
        stored(
            StatusCode::CREATED,
            &MessageCreated {
                message: message.into(),
            },
        )
    };
    let written = state
        .support
        .reply(&actor, ticket, draft, claim.completion(Box::new(render)))
        .await
        .map_err(refusal_of)?;
    respond::written(written, render)
}

/// A list's `limit`: 1 to [`MAX_LIMIT`], [`DEFAULT_LIMIT`] when absent.
fn limit_of(query: &mut QueryParams) -> u32 {
    let Some(text) = query.text("limit") else {
        return DEFAULT_LIMIT;
    };
    match text.parse::<u32>() {
        Ok(limit @ 1..=MAX_LIMIT) => limit,
        _ => {
            query.reject(field_error(
                "limit",
                FieldCode::InvalidValue,
                format!("`limit` must be an integer between 1 and {MAX_LIMIT}."),
            ));
            DEFAULT_LIMIT
        }
    }
}

/// List a ticket's messages, oldest first.
#[utoipa::path(
    get,
    path = "/api/projects/{id}/tickets/{ticketId}/messages",
    tag = "Messages",
    params(
        ("id" = String, Path, format = "uuid", description = "Project UUID."),
        ("ticketId" = String, Path, format = "uuid", description = "Ticket UUID."),
        ("task_id" = Option<String>, Query, format = "uuid", description = "Only the messages of this task."),
        ("since" = Option<String>, Query, format = DateTime, description = "Only the messages sent after this time."),
        ("limit" = Option<u32>, Query, minimum = 1, maximum = 200, description = "The most messages to list, 1 to 200 (default 50): the oldest that match."),
    ),
    responses(
        (status = 200, description = "The messages, oldest first.", body = MessageList),
        (status = 400, description = "Invalid request (`VALIDATION_ERROR`).", body = ErrorBody),
        (status = 403, description = "Forbidden: the key lacks `read:support`.", body = ErrorBody),
        (status = 404, description = "Not found: another project, or no such ticket of yours.", body = ErrorBody),
        Refusals,
    ),
    security(("bearerAuth" = []))
)]
pub async fn list_messages(
    State(state): State<AppState>,
    authed: Authed<ReadSupport>,
    params: PathParams,
    mut query: QueryParams,
) -> Result<Response, Refusal> {
    let task = query.text("task_id").and_then(|text| {
        let task = TaskRef::from_uuid(&text);
        if task.is_none() {
            query.reject(field_error(
                "task_id",
                FieldCode::InvalidValue,
                "`task_id` must be a UUID.",
            ));
        }
        task
    });
    let since = query.text("since").and_then(|text| {
        let since = Timestamp::parse_rfc3339(&text);
        if since.is_none() {
            query.reject(field_error(
                "since",
                FieldCode::InvalidValue,
                "`since` must be an RFC 3339 date-time.",
            ));
        }
        since
    });
    let limit = limit_of(&mut query);
    query.ignore_others();
    query.finish()?;
    let actor = actor_in(&params, &authed.principal)?;
    let ticket = ticket_of(&params)?;
    let filter = MessageFilter { task, since };
    let mut messages = Vec::new();
    let mut after: Option<MessageCursor> = None;
    let wanted = usize::try_from(limit).unwrap_or(usize::MAX);
    // The core's pages hold at most PageSize::MAX; a longer list reads on.
    loop {
        let left = u32::try_from(wanted - messages.len()).unwrap_or(u32::MAX);
        let size = PageSize::new(left.min(PageSize::MAX))
            .ok_or_else(|| Refusal::internal("a page size"))?;
        let page = state
            .support
            .list_messages_where(&actor, ticket, filter, PageRequest { size, after })
            .await
            .map_err(refusal_of)?;
        messages.extend(page.items.iter().map(ListedMessage::from));
        after = page.next;
        if after.is_none() || messages.len() >= wanted {
            break;
        }
    }
    respond::json(StatusCode::OK, &MessageList { messages })
}

/// The refusals every operation of the profile may answer.
struct Refusals;

impl utoipa::IntoResponses for Refusals {
    fn responses()
    -> std::collections::BTreeMap<String, utoipa::openapi::RefOr<utoipa::openapi::Response>> {
        super::shared_refusals(&[
            ("401", "Not authenticated (`UNAUTHORIZED`)."),
            (
                "429",
                "Too many requests (`RATE_LIMITED`), with `retryAfter`.",
            ),
            ("500", "Internal server error (`INTERNAL_ERROR`)."),
            (
                "503",
                "The database cannot be reached, or the request timed out; retry.",
            ),
        ])
    }
}

/// This profile's OpenAPI 3.1 document.
#[utoipa::path(
    get,
    path = "/api/projects/openapi.json",
    tag = "Operations",
    responses((status = 200, description = "The OpenAPI document.", content_type = "application/json", body = Object))
)]
pub async fn serve_openapi() -> Response {
    ([(header::CONTENT_TYPE, "application/json")], openapi_json()).into_response()
}

/// The document's frame: title, version and security scheme.
#[derive(OpenApi)]
#[openapi(
    info(
        title = "ticketd: AppHandoff project tickets",
        description = "AppHandoff's project ticket threads served by ticketd as the `projects` compatibility profile. Ids are UUIDs. Errors are `{\"error\", \"code\", \"fieldErrors\"?, \"issues\"?, \"retryAfter\"?}`.",
        version = "1"
    ),
    modifiers(&BearerAuth)
)]
struct ProfileDoc;

/// The profile's routes: those behind an API key, and the open one; with
/// its OpenAPI document.
pub struct Routes {
    /// Behind authentication and idempotency keys.
    pub authenticated: axum::Router<AppState>,
    /// Open (its OpenAPI document).
    pub open: axum::Router<AppState>,
    /// The OpenAPI document.
    pub doc: utoipa::openapi::OpenApi,
}

/// Every route of the profile.
pub fn routes() -> Routes {
    let (authenticated, mut doc) = OpenApiRouter::<AppState>::with_openapi(ProfileDoc::openapi())
        .routes(routes!(post_message, list_messages))
        .split_for_parts();
    let (open, open_doc) = OpenApiRouter::<AppState>::new()
        .routes(routes!(serve_openapi))
        .split_for_parts();
    doc.merge(open_doc);
    Routes {
        authenticated,
        open,
        doc,
    }
}

static OPENAPI_JSON: LazyLock<String> = LazyLock::new(|| {
    routes()
        .doc
        .to_pretty_json()
        .unwrap_or_else(|_| "{}".to_owned())
});

/// The profile's OpenAPI document.
pub fn openapi_json() -> &'static str {
    &OPENAPI_JSON
}
