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
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
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
use crate::core::message::{BodyFormat, Message, MessageFilter};
use crate::core::page::{MessageCursor, PageRequest, PageSize};
use crate::core::text::Counting;
use crate::core::ticket::{Category, Ticket, TicketRef, TicketRowQuery, TicketStatus};
use crate::core::time::Timestamp;
use crate::service::{Draft, OpenTicket};
use crate::store::Cause;
use crate::store::idempotency::StoredResponse;

use super::{BearerAuth, ProfileRoutes};
use errors::refusal_of;
use wire::{
    ErrorBody, ListedMessage, MessageCreated, MessageList, NewTicketView, RequestType,
    TicketCreated, TicketList, WireBodyFormat, WirePriority,
};

/// Where the profile is mounted.
pub const PREFIX: &str = "/api/projects";

/// Tickets a list shows unless `limit` says otherwise.
pub const DEFAULT_TICKETS: u32 = 1000;

/// The most tickets a list shows.
pub const MAX_TICKETS: u32 = 2000;

/// The largest `offset` a ticket list takes.
pub const MAX_OFFSET: u64 = 1_000_000_000;

/// The most characters of `q` a search uses.
pub const MAX_SEARCH_CHARS: usize = 200;

/// A new ticket's title, in UTF-16 code units.
pub const TITLE_CHARS: usize = 140;
/// The shortest title.
pub const MIN_TITLE_CHARS: usize = 5;
/// A new ticket's description, in UTF-16 code units.
pub const DESCRIPTION_CHARS: usize = 5000;
/// The shortest description.
pub const MIN_DESCRIPTION_CHARS: usize = 10;

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
    let limit = query.integer_in("limit", u64::from(DEFAULT_LIMIT), (1, u64::from(MAX_LIMIT)));
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

/// A list cursor: the offset of the next page, as base64url.
fn encode_cursor(offset: u64) -> String {
    URL_SAFE_NO_PAD.encode(format!("o:{offset}"))
}

/// The offset a `cursor` from [`encode_cursor`] names.
fn decode_cursor(text: &str) -> Option<u64> {
    let bytes = URL_SAFE_NO_PAD.decode(text).ok()?;
    std::str::from_utf8(&bytes)
        .ok()?
        .strip_prefix("o:")?
        .parse()
        .ok()
}

/// List the project's tickets you can see, most recent activity first.
///
/// `status` (`open`, `closed`), `q` (a subject's text, or a ticket
/// number), `limit` and `offset`, or the `cursor` of the previous page.
#[utoipa::path(
    get,
    path = "/api/projects/{id}/tickets",
    tag = "Tickets",
    params(
        ("id" = String, Path, format = "uuid", description = "Project UUID."),
        ("status" = Option<String>, Query, description = "`open` or `closed`."),
        ("q" = Option<String>, Query, description = "Text the title holds (ASCII letters in either case), or a ticket number."),
        ("limit" = Option<u32>, Query, minimum = 1, maximum = 2000, description = "Tickets per page, 1 to 2000 (default 1000)."),
        ("offset" = Option<u64>, Query, minimum = 0, maximum = 1000000000, description = "Tickets to skip (default 0)."),
        ("cursor" = Option<String>, Query, description = "`next_cursor` of the previous page (instead of `offset`)."),
    ),
    responses(
        (status = 200, description = "A page of tickets.", body = TicketList),
        (status = 400, description = "Invalid request (`VALIDATION_ERROR`).", body = ErrorBody),
        (status = 403, description = "Forbidden: the key lacks `read:support`.", body = ErrorBody),
        (status = 404, description = "Not found: another project.", body = ErrorBody),
        Refusals,
    ),
    security(("bearerAuth" = []))
)]
pub async fn list_tickets(
    State(state): State<AppState>,
    authed: Authed<ReadSupport>,
    params: PathParams,
    mut query: QueryParams,
) -> Result<Response, Refusal> {
    let statuses = match query.text("status").as_deref() {
        None => Vec::new(),
        Some("open") => vec![
            TicketStatus::Open,
            TicketStatus::InProgress,
            TicketStatus::AwaitingResponse,
            TicketStatus::Resolved,
        ],
        Some("closed") => vec![TicketStatus::Closed],
        Some(_) => {
            query.reject(field_error(
                "status",
                FieldCode::InvalidValue,
                "`status` must be one of: open, closed.",
            ));
            Vec::new()
        }
    };
    let search = query
        .text("q")
        .filter(|text| !text.is_empty())
        .map(|text| text.chars().take(MAX_SEARCH_CHARS).collect::<String>());
    let limit = query.integer_in(
        "limit",
        u64::from(DEFAULT_TICKETS),
        (1, u64::from(MAX_TICKETS)),
    );
    let limit = u32::try_from(limit).unwrap_or(DEFAULT_TICKETS);
    let mut offset = query.integer_in("offset", 0, (0, MAX_OFFSET));
    if let Some(cursor) = query.text("cursor") {
        match decode_cursor(&cursor).filter(|offset| *offset <= MAX_OFFSET) {
            Some(from_cursor) => offset = from_cursor,
            None => query.reject(field_error(
                "cursor",
                FieldCode::InvalidValue,
                "`cursor` must be a `next_cursor` this endpoint returned.",
            )),
        }
    }
    query.ignore_others();
    query.finish()?;
    let actor = actor_in(&params, &authed.principal)?;
    let rows = state
        .support
        .list_ticket_rows(
            &actor,
            &TicketRowQuery {
                statuses,
                search,
                offset,
                limit,
            },
        )
        .await
        .map_err(refusal_of)?;
    let project = actor.workspace_id.to_uuid();
    let code = &authed.principal.workspace.code;
    let next = offset + rows.rows.len() as u64;
    respond::json(
        StatusCode::OK,
        &TicketList {
            tickets: rows
                .rows
                .iter()
                .map(|row| wire::TicketRow::of(&row.ticket, &project, code))
                .collect(),
            next_cursor: (next < rows.total).then(|| encode_cursor(next)),
        },
    )
}

/// Members of AppHandoff's ticket that ticketd has no concept for: a new
/// ticket may leave them out or empty, and is refused if it gives one.
const UNKEPT_MEMBERS: [&str; 7] = [
    "roles",
    "evidence",
    "suggested_resolution",
    "implementation_notes",
    "actor_role",
    "actor_id",
    "source",
];

/// Whether `value` holds nothing (`null`, `""`, `[]`, `{}`).
fn is_empty_value(value: &serde_json::Value) -> bool {
    match value {
        serde_json::Value::Null => true,
        serde_json::Value::String(text) => text.is_empty(),
        serde_json::Value::Array(items) => items.is_empty(),
        serde_json::Value::Object(members) => members.is_empty(),
        _ => false,
    }
}

/// Open a ticket in the project, as the key's user (a customer: ticketd
/// files every ticket under its customer).
///
/// The title is the ticket's subject and the description its first
/// message; `request_type` is its category; `blocking` is kept as the
/// `urgent` priority. `roles`, `evidence`, `suggested_resolution`,
/// `implementation_notes`, `actor_role`, `actor_id` and `source` name
/// nothing ticketd keeps: a ticket that gives one is refused.
#[utoipa::path(
    post,
    path = "/api/projects/{id}/tickets",
    tag = "Tickets",
    params(("id" = String, Path, format = "uuid", description = "Project UUID.")),
    request_body(content = wire::CreateTicketRequest, content_type = "application/json"),
    responses(
        (status = 201, description = "Created ticket.", body = TicketCreated),
        (status = 400, description = "Invalid request (`VALIDATION_ERROR`, `INVALID_JSON`).", body = ErrorBody),
        (status = 403, description = "Forbidden: the key lacks `write:support`, or is not a customer's.", body = ErrorBody),
        (status = 404, description = "Not found: another project.", body = ErrorBody),
        (status = 409, description = "The `Idempotency-Key` was used for another request, or is in progress.", body = ErrorBody),
        (status = 413, description = "The body is larger than `max_body_bytes`.", body = ErrorBody),
        (status = 415, description = "The body is not `application/json`.", body = ErrorBody),
        Refusals,
    ),
    security(("bearerAuth" = []))
)]
pub async fn create_ticket(
    State(state): State<AppState>,
    authed: Authed<WriteSupport>,
    params: PathParams,
    claim: IdempotencyClaim,
    JsonBody(body): JsonBody,
) -> Result<Response, Refusal> {
    let actor = actor_in(&params, &authed.principal)?;
    let limits = state
        .settings
        .text_limits
        .counting(Counting::Utf16Units)
        .narrowed(TITLE_CHARS, DESCRIPTION_CHARS)
        .at_least(MIN_TITLE_CHARS, MIN_DESCRIPTION_CHARS);
    let unkept: Vec<&str> = match &body {
        serde_json::Value::Object(members) => UNKEPT_MEMBERS
            .into_iter()
            .filter(|name| {
                members
                    .get(*name)
                    .is_some_and(|value| !is_empty_value(value))
            })
            .collect(),
        _ => Vec::new(),
    };
    let command = Fields::read(body, |fields| {
        for name in &unkept {
            fields.reject(field_error(
                name,
                FieldCode::InvalidValue,
                format!("`{name}` is not kept by ticketd: leave it out."),
            ));
        }
        let title = fields.required_text("title", |text| limits.subject(text));
        let description = fields.required_text("description", |text| limits.message(text));
        let request_type =
            fields.required_choice("request_type", &RequestType::ALL, RequestType::as_str);
        let priority = fields.required_choice("priority", &WirePriority::ALL, WirePriority::as_str);
        let blocking = match fields.optional_bool("blocking") {
            Ok(None) => {
                fields.reject(field_error(
                    "blocking",
                    FieldCode::MissingRequired,
                    "`blocking` is required.",
                ));
                None
            }
            Ok(Some(blocking)) => Some(blocking),
            Err(_) => None,
        };
        fields.ignore_others();
        Some(OpenTicket {
            subject: title?,
            priority: priority?.core(blocking?),
            category: Category::parse(request_type?.as_str()),
            booking_id: None,
            customer: None,
            first_message: Draft {
                body: description?,
                body_format: BodyFormat::Plain,
                encrypted: false,
                attachments: Vec::new(),
                task: None,
            },
        })
    })
    .map_err(Refusal::invalid)?;
    let render = |ticket: &Ticket| {
        let board = wire::Board::of(ticket.status, ticket.priority);
        stored(
            StatusCode::CREATED,
            &TicketCreated {
                ticket: NewTicketView {
                    id: ticket.id.to_uuid(),
                    status: board.status.to_owned(),
                    stage: board.stage.to_owned(),
                    roles: Vec::new(),
                    created_at: ticket.created_at.to_string(),
                },
            },
        )
    };
    let written = state
        .support
        .open_ticket(&actor, command, claim.completion(Box::new(render)))
        .await
        .map_err(refusal_of)?;
    respond::written(written, render)
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

/// Every route of the profile.
pub fn routes() -> ProfileRoutes {
    let (authenticated, mut doc) = OpenApiRouter::<AppState>::with_openapi(ProfileDoc::openapi())
        .routes(routes!(list_tickets, create_ticket))
        .routes(routes!(post_message, list_messages))
        .split_for_parts();
    let (open, open_doc) = OpenApiRouter::<AppState>::new()
        .routes(routes!(serve_openapi))
        .split_for_parts();
    doc.merge(open_doc);
    ProfileRoutes {
        authenticated,
        signed: axum::Router::new(),
        open,
        doc,
    }
}

static OPENAPI_JSON: LazyLock<String> = LazyLock::new(|| super::document_json(&routes().doc));

/// The profile's OpenAPI document.
pub fn openapi_json() -> &'static str {
    &OPENAPI_JSON
}
