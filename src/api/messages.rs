//! `/api/v2/support/tickets/{id}/messages`: the thread, and replying to it.

use axum::extract::{FromRequestParts, Path, State};
use axum::http::StatusCode;
use axum::http::request::Parts;
use axum::response::Response;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::api::AppState;
use crate::api::auth::{Authed, ReadSupport, WriteSupport};
use crate::api::extract::{JsonBody, QueryParams, TicketPath};
use crate::api::fields::Fields;
use crate::api::idempotency::{self, Keyed};
use crate::api::problem::{ApiError, ErrorCode, Problem};
use crate::api::respond;
use crate::api::wire::{WireBodyFormat, WireRole};
use crate::core::id::{MessageId, TicketId};
use crate::core::message::{BodyFormat, Message, NewMessage};
use crate::core::page::{Cursor, MessageCursor, PageRequest};
use crate::core::text::MessageBody;
use crate::core::ticket::TicketRef;
use crate::core::time::Timestamp;
use crate::store::idempotency::StoredResponse;

/// A message in a ticket's thread: the seed's schema plus `bodyFormat`.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct MessageResponse {
    /// Public message id.
    #[schema(example = "tmsg_01hxa3b4c5d6e7f8g9h0j1k2m3")]
    pub id: String,
    /// The ticket it belongs to.
    #[schema(example = "tkt_01hxa3b4c5d6e7f8g9h0j1k2m3")]
    pub ticket_id: String,
    /// When it was sent.
    #[schema(required = true, example = "2026-04-27T12:00:00.000Z")]
    pub sent_at: Option<String>,
    /// The text, exactly as sent.
    #[schema(required = true, example = "Here are the extra details you asked for.")]
    pub body: Option<String>,
    /// The sender's role when they sent it.
    pub sender: WireRole,
    /// The sender's display name when they sent it.
    #[schema(required = true, example = "Jane Example")]
    pub sender_name: Option<String>,
    /// Whether the sender marked it sensitive.
    #[schema(example = false)]
    pub encrypted: bool,
    /// Files attached to the message. The canonical API has no upload
    /// endpoint, so this is always empty here.
    #[schema(value_type = Vec<Object>, example = json!([]))]
    pub attachments: Vec<serde_json::Value>,
    /// How `body` is meant to be rendered.
    pub body_format: WireBodyFormat,
}

impl From<Message> for MessageResponse {
    fn from(message: Message) -> Self {
        Self {
            id: message.id.to_string(),
            ticket_id: message.ticket_id.to_string(),
            sent_at: Some(message.sent_at.to_string()),
            body: Some(message.body),
            sender: message.sender_role.into(),
            sender_name: Some(message.sender_name),
            encrypted: message.encrypted,
            attachments: Vec::new(),
            body_format: message.body_format.into(),
        }
    }
}

/// A page of messages.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct MessageListResponse {
    /// Messages, oldest first.
    pub data: Vec<MessageResponse>,
    /// Pass as `cursor` to get the next page; `null` on the last page.
    #[schema(required = true)]
    pub next_cursor: Option<String>,
}

/// The body of a reply, as documented; requests are validated member by
/// member in `read_reply`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ReplyRequest {
    /// The reply, 1 to 25,000 characters.
    #[schema(
        min_length = 1,
        max_length = 25000,
        pattern = "\\S",
        example = "Here are the extra details you asked for."
    )]
    pub message: String,
    /// Set true for sensitive replies. Defaults to false when omitted.
    #[schema(example = false)]
    pub encrypted: Option<bool>,
    /// `plain` (default) or `markdown`.
    pub body_format: Option<WireBodyFormat>,
}

/// Validates a reply body into a message to append, reporting every field
/// error at once.
///
/// # Errors
/// `invalid_request` with one entry per problem.
pub fn read_reply(body: serde_json::Value) -> Result<NewMessage, ApiError> {
    Fields::read(body, |fields| {
        let message = fields.required_text("message", MessageBody::parse);
        let encrypted = fields.optional_bool("encrypted");
        let body_format =
            fields.optional_choice("bodyFormat", &BodyFormat::ALL, BodyFormat::as_str);
        Some(NewMessage {
            id: MessageId::generate(),
            body: message?,
            body_format: body_format.ok()?.unwrap_or_default(),
            encrypted: encrypted.ok()?.unwrap_or(false),
            sent_at: Timestamp::now(),
        })
    })
    .map_err(ApiError::invalid)
}

/// Where a message lives.
pub fn message_location(ticket: TicketId, message: MessageId) -> String {
    format!("/api/v2/support/tickets/{ticket}/messages/{message}")
}

/// A reply's response: 201 with the message and its `Location`.
fn reply_created(message: &Message) -> Result<StoredResponse, String> {
    respond::stored(
        StatusCode::CREATED,
        Some(message_location(message.ticket_id, message.id)),
        &MessageResponse::from(message.clone()),
    )
}

/// Reply to support ticket.
///
/// Adds a reply from the key's user to a ticket they can see. Use `id` from
/// `GET /api/v2/support/tickets` `data[].id`; numeric ticket numbers are
/// accepted during migration. Closed tickets must be reopened first.
#[utoipa::path(
    post,
    path = "/api/v2/support/tickets/{id}/messages",
    tag = "Support tickets",
    params(("id" = String, Path, description = "Public support ticket ID (`tkt_...`), or the ticket's number in your workspace.", example = "tkt_01hxa3b4c5d6e7f8g9h0j1k2m3")),
    request_body(content = ReplyRequest, content_type = "application/json"),
    responses(
        (status = 201, description = "Created ticket message.", body = MessageResponse,
            headers(("Location" = String, description = "The message's URL"))),
        (status = 400, description = "Invalid request, or the ticket is closed (`ticket_closed`).", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "Not found. The ticket does not exist or is not owned by the caller.", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearerAuth" = ["write:support"]))
)]
pub async fn reply_to_ticket(
    State(state): State<AppState>,
    authed: Authed<WriteSupport>,
    TicketPath(ticket): TicketPath,
    keyed: Keyed,
    JsonBody(body): JsonBody,
) -> Result<Response, ApiError> {
    let new = read_reply(body)?;
    let actor = &authed.principal.actor;
    match keyed.completion(Box::new(reply_created)) {
        Some(completion) => {
            let stored = state
                .store
                .append_message_once(actor, ticket, new, completion)
                .await?;
            idempotency::completed(stored)
        }
        None => {
            let message = state.store.append_message(actor, ticket, new).await?;
            respond::from_stored(reply_created(&message).map_err(ApiError::internal)?)
        }
    }
}

/// List a ticket's messages, oldest first.
#[utoipa::path(
    get,
    path = "/api/v2/support/tickets/{id}/messages",
    tag = "Support tickets",
    params(
        ("id" = String, Path, description = "A `tkt_` id, or the ticket's number in your workspace."),
        ("limit" = Option<u32>, Query, minimum = 1, maximum = 100, description = "Page size, 1 to 100 (default 25)."),
        ("cursor" = Option<String>, Query, description = "`nextCursor` from the previous page."),
    ),
    responses(
        (status = 200, description = "A page of messages.", body = MessageListResponse),
        (status = 400, description = "Invalid query parameter.", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such ticket visible to the caller.", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearerAuth" = ["read:support"]))
)]
pub async fn list_messages(
    State(state): State<AppState>,
    authed: Authed<ReadSupport>,
    TicketPath(ticket): TicketPath,
    mut query: QueryParams,
) -> Result<Response, ApiError> {
    let size = query.page_size();
    let after = query.cursor::<MessageCursor>();
    query.finish()?;
    let page = state
        .store
        .list_messages(&authed.principal.actor, ticket, PageRequest { size, after })
        .await?;
    let body = MessageListResponse {
        data: page.items.into_iter().map(MessageResponse::from).collect(),
        next_cursor: page.next.map(|cursor| cursor.encode()),
    };
    respond::json(StatusCode::OK, &body)
}

/// The `{id}` and `{messageId}` path segments.
pub struct MessagePath(pub TicketRef, pub MessageId);

impl<S: Send + Sync> FromRequestParts<S> for MessagePath {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        let Path((ticket, message)) = Path::<(String, String)>::from_request_parts(parts, state)
            .await
            .map_err(|_| ApiError::new(ErrorCode::NotFound))?;
        match (TicketRef::parse(&ticket), MessageId::parse(&message)) {
            (Some(ticket), Some(message)) => Ok(MessagePath(ticket, message)),
            _ => Err(ApiError::new(ErrorCode::NotFound)),
        }
    }
}

/// Get one message of a ticket.
#[utoipa::path(
    get,
    path = "/api/v2/support/tickets/{id}/messages/{messageId}",
    tag = "Support tickets",
    params(
        ("id" = String, Path, description = "A `tkt_` id, or the ticket's number in your workspace."),
        ("messageId" = String, Path, description = "A `tmsg_` id."),
    ),
    responses(
        (status = 200, description = "The message.", body = MessageResponse),
        (status = 404, description = "No such message visible to the caller.", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearerAuth" = ["read:support"]))
)]
pub async fn get_message(
    State(state): State<AppState>,
    authed: Authed<ReadSupport>,
    MessagePath(ticket, message): MessagePath,
) -> Result<Response, ApiError> {
    let message = state
        .store
        .find_message(&authed.principal.actor, ticket, message)
        .await?;
    respond::json(StatusCode::OK, &MessageResponse::from(message))
}
