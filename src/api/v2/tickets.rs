//! `/api/v2/support/tickets`: open, list, read and move tickets.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::api::AppState;
use crate::api::auth::{Authed, ReadSupport, WriteSupport};
use crate::api::extract::{EmptyBody, JsonBody, QueryParams, TicketPath};
use crate::api::fields::Fields;
use crate::api::idempotency::IdempotencyClaim;
use crate::api::problem::{ApiError, Problem};
use crate::api::respond;
use crate::api::v2::service_errors::canonical;
use crate::api::v2::wire::{WireBodyFormat, WirePriority, WireStatus};
use crate::core::id::{TicketId, UploadId, UserId};
use crate::core::lifecycle::TicketAction;
use crate::core::message::BodyFormat;
use crate::core::page::{Cursor, PageRequest, TicketCursor};
use crate::core::text::{MessageBody, Subject, TextLimits};
use crate::core::ticket::{Category, Priority, Ticket, TicketFilter, TicketStatus};
use crate::service::{Draft, OpenTicket};
use crate::store::Cause;
use crate::store::idempotency::StoredResponse;

/// The customer who owns a ticket.
#[derive(Debug, Serialize, ToSchema)]
pub struct CustomerResponse {
    /// The customer's user id.
    #[schema(example = "usr_01hxa3b4c5d6e7f8g9h0j1k2m3")]
    pub id: String,
    /// Their current display name.
    #[schema(example = "Jane Example")]
    pub name: String,
}

/// A support ticket.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct TicketResponse {
    /// Public ticket id.
    #[schema(example = "tkt_01hxa3b4c5d6e7f8g9h0j1k2m3")]
    pub id: String,
    /// Number within the workspace; accepted wherever a ticket id is.
    #[schema(example = 42)]
    pub number: i64,
    /// Subject line.
    #[schema(example = "Cannot reach my server")]
    pub subject: String,
    /// Lifecycle status.
    pub status: WireStatus,
    /// Priority.
    pub priority: WirePriority,
    /// What it is about, if its opener said (absent otherwise).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(example = "billing")]
    pub category: Option<String>,
    /// The customer who owns the ticket.
    pub customer: CustomerResponse,
    /// When it was opened.
    #[schema(example = "2026-04-27T12:00:00.000Z")]
    pub created_at: String,
    /// When anything about it last changed.
    #[schema(example = "2026-04-27T12:00:00.000Z")]
    pub updated_at: String,
    /// When its latest message was sent.
    #[schema(example = "2026-04-27T12:00:00.000Z")]
    pub last_message_at: String,
    /// How many messages it holds.
    #[schema(example = 1)]
    pub message_count: i64,
    /// When it was resolved, while it is resolved.
    #[schema(required = true)]
    pub resolved_at: Option<String>,
    /// When it was closed, while it is closed.
    #[schema(required = true)]
    pub closed_at: Option<String>,
}

impl From<Ticket> for TicketResponse {
    fn from(ticket: Ticket) -> Self {
        Self {
            id: ticket.id.to_string(),
            number: ticket.number,
            subject: ticket.subject,
            status: ticket.status.into(),
            priority: ticket.priority.into(),
            category: ticket.category.map(|category| category.as_str().to_owned()),
            customer: CustomerResponse {
                id: ticket.customer.id.to_string(),
                name: ticket.customer.name,
            },
            created_at: ticket.created_at.to_string(),
            updated_at: ticket.updated_at.to_string(),
            last_message_at: ticket.last_message_at.to_string(),
            message_count: ticket.message_count,
            resolved_at: ticket.resolved_at.map(|at| at.to_string()),
            closed_at: ticket.closed_at.map(|at| at.to_string()),
        }
    }
}

/// A page of tickets.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct TicketListResponse {
    /// Tickets, most recent activity first.
    pub data: Vec<TicketResponse>,
    /// Pass as `cursor` to get the next page; `null` on the last page.
    #[schema(required = true)]
    pub next_cursor: Option<String>,
}

/// The body of `POST /api/v2/support/tickets`, as documented; requests are
/// validated member by member in `read_create_ticket`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CreateTicketRequest {
    /// Subject line, 1 to 200 characters.
    #[schema(
        min_length = 1,
        max_length = 200,
        pattern = "\\S",
        example = "Cannot reach my server"
    )]
    pub subject: String,
    /// The first message, 1 to 25,000 characters.
    #[schema(
        min_length = 1,
        max_length = 25000,
        pattern = "\\S",
        example = "It stopped answering at noon."
    )]
    pub message: String,
    /// Set true for sensitive content. Defaults to false.
    pub encrypted: Option<bool>,
    /// `plain` (default) or `markdown`.
    pub body_format: Option<WireBodyFormat>,
    /// `normal` unless given.
    pub priority: Option<WirePriority>,
    /// What the ticket is about, in your own words: 1 to 64 lowercase
    /// letters, digits, `_` and `-`, starting with a letter.
    #[schema(example = "billing", pattern = "^[a-z][a-z0-9_-]{0,63}$")]
    pub category: Option<String>,
    /// Staff and automation only: the customer to open the ticket for.
    #[schema(
        pattern = "^usr_[0-7][0-9a-hjkmnp-tv-z]{25}$",
        example = "usr_01hxa3b4c5d6e7f8g9h0j1k2m3"
    )]
    pub customer_id: Option<String>,
    /// Files for the first message: ids of your uploads
    /// (`POST /api/v2/support/uploads`), each attached once, at most 10 by
    /// default (`max_attachments_per_message`).
    #[schema(value_type = Option<Vec<String>>, example = json!(["upl_01hxa3b4c5d6e7f8g9h0j1k2m3"]))]
    pub attachments: Option<Vec<String>>,
}

/// A validated `POST /api/v2/support/tickets` body.
#[derive(Debug)]
pub struct CreateTicketInput {
    /// Subject line.
    pub subject: Subject,
    /// The first message.
    pub message: MessageBody,
    /// Whether the first message is marked sensitive.
    pub encrypted: bool,
    /// How the first message is meant to be rendered.
    pub body_format: BodyFormat,
    /// Priority.
    pub priority: Priority,
    /// What it is about, if given.
    pub category: Option<Category>,
    /// The customer to open the ticket for (staff and automation only).
    pub customer_id: Option<UserId>,
    /// The uploads the first message attaches, in order.
    pub attachments: Vec<UploadId>,
}

/// Validates a ticket-creation body, its text within `limits`, reporting
/// every field error at once.
///
/// # Errors
/// `invalid_request` with one entry per problem.
pub fn read_create_ticket(
    body: serde_json::Value,
    limits: TextLimits,
) -> Result<CreateTicketInput, ApiError> {
    Fields::read(body, |fields| {
        let subject = fields.required_text("subject", |text| limits.subject(text));
        let message = fields.required_text("message", |text| limits.message(text));
        let encrypted = fields.optional_bool("encrypted");
        let body_format =
            fields.optional_choice("bodyFormat", &BodyFormat::ALL, BodyFormat::as_str);
        let priority = fields.optional_choice("priority", &Priority::ALL, Priority::as_str);
        let category = fields.optional_parsed("category", CATEGORY, Category::parse);
        let customer_id = fields.optional_parsed("customerId", "a `usr_` id", UserId::parse);
        let attachments = fields.optional_list("attachments", UPLOAD_ID, UploadId::parse);
        Some(CreateTicketInput {
            subject: subject?,
            message: message?,
            encrypted: encrypted.ok()?.unwrap_or(false),
            body_format: body_format.ok()?.unwrap_or_default(),
            priority: priority.ok()?.unwrap_or_default(),
            category: category.ok()?,
            customer_id: customer_id.ok()?,
            attachments: attachments.ok()?,
        })
    })
    .map_err(ApiError::invalid)
}

/// What a `category` must be.
pub const CATEGORY: &str = "1 to 64 lowercase letters, digits, `_` and `-`, starting with a letter";

/// What an entry of `attachments` must be.
pub const UPLOAD_ID: &str = "the `upl_` id of one of your uploads";

/// Where a ticket lives.
pub fn ticket_location(id: TicketId) -> String {
    format!("/api/v2/support/tickets/{id}")
}

/// A new ticket's response: 201 with the ticket and its `Location`.
fn ticket_created(ticket: &Ticket) -> Result<StoredResponse, Cause> {
    respond::stored(
        StatusCode::CREATED,
        Some(ticket_location(ticket.id)),
        &TicketResponse::from(ticket.clone()),
    )
}

/// A lifecycle action's response: 200 with the ticket as it now is.
fn ticket_acted_on(ticket: &Ticket) -> Result<StoredResponse, Cause> {
    respond::stored(StatusCode::OK, None, &TicketResponse::from(ticket.clone()))
}

/// Open a support ticket with its first message.
///
/// Customers open tickets for themselves; staff and automation pass
/// `customerId` to open one on a customer's behalf.
#[utoipa::path(
    post,
    path = "/api/v2/support/tickets",
    tag = "Support tickets",
    request_body(content = CreateTicketRequest, content_type = "application/json"),
    responses(
        (status = 201, description = "Created ticket.", body = TicketResponse,
            headers(("Location" = String, description = "The ticket's URL"))),
        (status = 400, description = "Invalid request.", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Missing `write:support`, or a customer passed `customerId`.", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearerAuth" = ["write:support"]))
)]
pub async fn create_ticket(
    State(state): State<AppState>,
    authed: Authed<WriteSupport>,
    claim: IdempotencyClaim,
    JsonBody(body): JsonBody,
) -> Result<Response, ApiError> {
    let input = read_create_ticket(body, state.settings.text_limits)?;
    let command = OpenTicket {
        subject: input.subject,
        priority: input.priority,
        category: input.category,
        booking_id: None,
        customer: input.customer_id,
        first_message: Draft {
            body: input.message,
            body_format: input.body_format,
            encrypted: input.encrypted,
            attachments: input.attachments,
            task: None,
        },
    };
    let written = state
        .support
        .open_ticket(
            &authed.principal.actor,
            command,
            claim.completion(Box::new(ticket_created)),
        )
        .await
        .map_err(canonical)?;
    respond::written(written, ticket_created)
}

/// List the caller's visible tickets, most recent activity first.
#[utoipa::path(
    get,
    path = "/api/v2/support/tickets",
    tag = "Support tickets",
    params(
        ("limit" = Option<u32>, Query, minimum = 1, maximum = 100, description = "Page size, 1 to 100 (default 25)."),
        ("cursor" = Option<String>, Query, description = "`nextCursor` from the previous page."),
        ("status" = Option<WireStatus>, Query, description = "Only tickets in this status."),
    ),
    responses(
        (status = 200, description = "A page of tickets.", body = TicketListResponse),
        (status = 400, description = "Invalid query parameter.", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearerAuth" = ["read:support"]))
)]
pub async fn list_tickets(
    State(state): State<AppState>,
    authed: Authed<ReadSupport>,
    mut query: QueryParams,
) -> Result<Response, ApiError> {
    let size = query.page_size();
    let after = query.cursor::<TicketCursor>();
    let status = query.choice("status", &TicketStatus::ALL, TicketStatus::as_str);
    query.finish()?;
    let page = state
        .support
        .list_tickets(
            &authed.principal.actor,
            TicketFilter { status },
            PageRequest { size, after },
        )
        .await
        .map_err(canonical)?;
    let body = TicketListResponse {
        data: page.items.into_iter().map(TicketResponse::from).collect(),
        next_cursor: page.next.map(|cursor| cursor.encode()),
    };
    respond::json(StatusCode::OK, &body)
}

/// Get one support ticket by `tkt_` id or number.
#[utoipa::path(
    get,
    path = "/api/v2/support/tickets/{id}",
    tag = "Support tickets",
    params(("id" = String, Path, description = "A `tkt_` id, or the ticket's number in your workspace.")),
    responses(
        (status = 200, description = "The ticket.", body = TicketResponse),
        (status = 400, description = "The path is not valid percent-encoded UTF-8 (`invalid_request`).", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such ticket visible to the caller.", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearerAuth" = ["read:support"]))
)]
pub async fn get_ticket(
    State(state): State<AppState>,
    authed: Authed<ReadSupport>,
    TicketPath(ticket): TicketPath,
) -> Result<Response, ApiError> {
    let ticket = state
        .support
        .find_ticket(&authed.principal.actor, ticket)
        .await
        .map_err(canonical)?;
    respond::json(StatusCode::OK, &TicketResponse::from(ticket))
}

/// Takes `action` on the ticket at `path`, as every action route does.
async fn take_action(
    state: &AppState,
    authed: &Authed<WriteSupport>,
    path: TicketPath,
    claim: IdempotencyClaim,
    action: TicketAction,
) -> Result<Response, ApiError> {
    let written = state
        .support
        .act(
            &authed.principal.actor,
            path.0,
            action,
            claim.completion(Box::new(ticket_acted_on)),
        )
        .await
        .map_err(canonical)?;
    respond::written(written, ticket_acted_on)
}

/// Close a support ticket (the owner or staff). Closing a closed ticket
/// changes nothing.
#[utoipa::path(
    post,
    path = "/api/v2/support/tickets/{id}/actions/close",
    tag = "Support tickets",
    params(("id" = String, Path, description = "A `tkt_` id, or the ticket's number in your workspace.")),
    responses(
        (status = 200, description = "The ticket, now closed.", body = TicketResponse),
        (status = 404, description = "No such ticket visible to the caller.", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearerAuth" = ["write:support"]))
)]
pub async fn close_ticket(
    State(state): State<AppState>,
    authed: Authed<WriteSupport>,
    path: TicketPath,
    claim: IdempotencyClaim,
    _: EmptyBody,
) -> Result<Response, ApiError> {
    take_action(&state, &authed, path, claim, TicketAction::Close).await
}

/// Reopen a resolved or closed support ticket (the owner or staff).
/// Reopening a ticket that is not resolved or closed changes nothing.
#[utoipa::path(
    post,
    path = "/api/v2/support/tickets/{id}/actions/reopen",
    tag = "Support tickets",
    params(("id" = String, Path, description = "A `tkt_` id, or the ticket's number in your workspace.")),
    responses(
        (status = 200, description = "The ticket, now open.", body = TicketResponse),
        (status = 404, description = "No such ticket visible to the caller.", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearerAuth" = ["write:support"]))
)]
pub async fn reopen_ticket(
    State(state): State<AppState>,
    authed: Authed<WriteSupport>,
    path: TicketPath,
    claim: IdempotencyClaim,
    _: EmptyBody,
) -> Result<Response, ApiError> {
    take_action(&state, &authed, path, claim, TicketAction::Reopen).await
}

/// Mark a support ticket resolved (staff and automation).
#[utoipa::path(
    post,
    path = "/api/v2/support/tickets/{id}/actions/resolve",
    tag = "Support tickets",
    params(("id" = String, Path, description = "A `tkt_` id, or the ticket's number in your workspace.")),
    responses(
        (status = 200, description = "The ticket, now resolved.", body = TicketResponse),
        (status = 400, description = "The ticket is closed (`ticket_closed`).", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Customers cannot resolve tickets.", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such ticket visible to the caller.", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearerAuth" = ["write:support"]))
)]
pub async fn resolve_ticket(
    State(state): State<AppState>,
    authed: Authed<WriteSupport>,
    path: TicketPath,
    claim: IdempotencyClaim,
    _: EmptyBody,
) -> Result<Response, ApiError> {
    take_action(&state, &authed, path, claim, TicketAction::Resolve).await
}

/// Mark a support ticket as being worked on (staff and automation).
#[utoipa::path(
    post,
    path = "/api/v2/support/tickets/{id}/actions/mark-in-progress",
    tag = "Support tickets",
    params(("id" = String, Path, description = "A `tkt_` id, or the ticket's number in your workspace.")),
    responses(
        (status = 200, description = "The ticket, now in progress.", body = TicketResponse),
        (status = 400, description = "The ticket is closed (`ticket_closed`).", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Customers cannot mark tickets in progress.", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such ticket visible to the caller.", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearerAuth" = ["write:support"]))
)]
pub async fn mark_ticket_in_progress(
    State(state): State<AppState>,
    authed: Authed<WriteSupport>,
    path: TicketPath,
    claim: IdempotencyClaim,
    _: EmptyBody,
) -> Result<Response, ApiError> {
    take_action(&state, &authed, path, claim, TicketAction::MarkInProgress).await
}
