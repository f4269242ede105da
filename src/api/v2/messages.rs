//! `/api/v2/support/tickets/{id}/messages`: the thread, and replying to it.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use axum::extract::{FromRequestParts, State};
use axum::http::StatusCode;
use axum::http::request::Parts;
use axum::response::Response;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::api::AppState;
use crate::api::auth::{Authed, ReadSupport, WriteSupport};
use crate::api::extract::{JsonBody, PathParams, QueryParams, TicketPath};
use crate::api::fields::Fields;
use crate::api::idempotency::{self, IdempotencyClaim};
use crate::api::problem::{ApiError, ErrorCode, Problem};
use crate::api::respond;
use crate::api::v2::service_errors::canonical;
use crate::api::v2::tickets::UPLOAD_ID;
use crate::api::v2::wire::{WireBodyFormat, WireRole};
use crate::core::id::{MessageId, TicketId, UploadId};
use crate::core::message::{BodyFormat, Message};
use crate::core::page::{Cursor, MessageCursor, PageRequest};
use crate::core::render::{self, HtmlCache};
use crate::core::text::TextLimits;
use crate::core::ticket::TicketRef;
use crate::core::upload::Attachment;
use crate::service::Draft;
use crate::store::Cause;
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
    /// `body` as sanitised HTML, safe to insert into a page as it is; `null`
    /// exactly when `body` is. `markdown` bodies are rendered as CommonMark
    /// with tables and strikethrough; raw HTML in them is shown as text and
    /// images as links to the image. The result holds only `p`, `br`, `em`,
    /// `strong`, `del`, `code`, `pre`, `blockquote`, `ul`, `ol`, `li`,
    /// `h1`-`h6`, `hr`, `table` (with `thead`, `tbody`, `tr`, `th`, `td`) and
    /// `a`; links keep only `http`, `https` and `mailto` URLs and carry
    /// `rel="noopener noreferrer nofollow"`. `plain` bodies are escaped:
    /// each paragraph (lines between blank lines) is a `p`, and line breaks
    /// within it are `br`. A `markdown` body that nests more than 64
    /// elements deep, holds more than 10,000 table cells, or would render
    /// to more than eight times its length plus 1 KiB is rendered as
    /// `plain` instead.
    #[schema(
        value_type = Option<String>,
        required = true,
        example = "<p>Here are the extra details you asked for.</p>\n"
    )]
    pub html: Option<Arc<str>>,
    /// The sender's role when they sent it.
    pub sender: WireRole,
    /// The sender's display name when they sent it.
    #[schema(required = true, example = "Jane Example")]
    pub sender_name: Option<String>,
    /// Whether the sender marked it sensitive.
    #[schema(example = false)]
    pub encrypted: bool,
    /// Files attached to the message, in the order they were named; empty
    /// when it has none.
    pub attachments: Vec<AttachmentResponse>,
    /// How `body` is meant to be rendered.
    pub body_format: WireBodyFormat,
}

/// A file a message carries.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct AttachmentResponse {
    /// The upload's id.
    #[schema(example = "upl_01hxa3b4c5d6e7f8g9h0j1k2m3")]
    pub id: String,
    /// The file's name, as its sender gave it.
    #[schema(example = "screenshot.png")]
    pub filename: String,
    /// Its media type.
    #[schema(example = "image/png")]
    pub content_type: String,
    /// Its size in bytes.
    #[schema(example = 48213)]
    pub size: u64,
    /// Where to download it (with the same API key): a path on this server.
    #[schema(
        example = "/api/v2/support/tickets/tkt_01hxa3b4c5d6e7f8g9h0j1k2m3/messages/tmsg_01hxa3b4c5d6e7f8g9h0j1k2m3/attachments/upl_01hxa3b4c5d6e7f8g9h0j1k2m3"
    )]
    pub url: String,
}

impl AttachmentResponse {
    fn of(ticket: TicketId, message: MessageId, file: &Attachment) -> Self {
        Self {
            id: file.id.to_string(),
            filename: file.filename.clone(),
            content_type: file.content_type.clone(),
            size: file.size,
            url: attachment_location(ticket, message, file.id),
        }
    }
}

/// Where a message's file is downloaded.
pub fn attachment_location(ticket: TicketId, message: MessageId, file: UploadId) -> String {
    format!("{}/attachments/{file}", message_location(ticket, message))
}

impl MessageResponse {
    /// The response for `message`, whose body renders as `html`.
    fn with_html(message: Message, html: Arc<str>) -> Self {
        Self {
            id: message.id.to_string(),
            ticket_id: message.ticket_id.to_string(),
            sent_at: Some(message.sent_at.to_string()),
            body: Some(message.body),
            html: Some(html),
            sender: message.sender_role.into(),
            sender_name: Some(message.sender_name),
            encrypted: message.encrypted,
            attachments: message
                .attachments
                .iter()
                .map(|file| AttachmentResponse::of(message.ticket_id, message.id, file))
                .collect(),
            body_format: message.body_format.into(),
        }
    }
}

/// Bodies of up to this many bytes in all are rendered on the request's
/// own thread. Rendering costs from a few microseconds for a short message
/// to a few milliseconds for a long one dense with markup, so a page that
/// carries more is rendered on the blocking pool, where it cannot hold up
/// the other requests sharing an async worker.
const INLINE_RENDER_BYTES: usize = 16 * 1024;

/// The most bytes of `body` and `html` that one page of messages carries.
/// A page of 100 of the longest ordinary messages carries about 5 MiB;
/// messages whose HTML is near its bound could make a page of 100 several
/// times that, so a page stops after the message that reaches this, and its
/// `nextCursor` continues from there.
const MAX_PAGE_TEXT_BYTES: usize = 8 << 20;

/// Converts messages to their responses, with each body's `html` from the
/// cache or rendered now (and cached), in order until their `body` and
/// `html` reach `max_bytes` (the message that reaches it included, so at
/// least one). Rendered on the blocking pool when the bodies not cached are
/// long (see [`INLINE_RENDER_BYTES`]); if the request is answered meanwhile
/// (it timed out), rendering stops at the next message.
///
/// # Errors
/// `internal_error` if rendering on the blocking pool failed to complete.
async fn message_responses(
    cache: &Arc<HtmlCache>,
    messages: Vec<Message>,
    max_bytes: usize,
) -> Result<Vec<MessageResponse>, ApiError> {
    let mut html: Vec<Option<Arc<str>>> = messages.iter().map(|m| cache.get(m.id)).collect();
    let uncached_bytes: usize = messages
        .iter()
        .zip(&html)
        .filter(|(_, html)| html.is_none())
        .map(|(message, _)| message.body.len())
        .sum();
    let (messages, included) = if uncached_bytes <= INLINE_RENDER_BYTES {
        let included = render_uncached(
            cache,
            &messages,
            &mut html,
            max_bytes,
            &AtomicBool::new(false),
        );
        (messages, included)
    } else {
        let abandoned = AbandonOnDrop::default();
        let flag = Arc::clone(&abandoned.0);
        let cache = Arc::clone(cache);
        let (messages, rendered, included) = tokio::task::spawn_blocking(move || {
            let included = render_uncached(&cache, &messages, &mut html, max_bytes, &flag);
            (messages, html, included)
        })
        .await
        .map_err(|error| ApiError::internal(format!("rendering messages: {error}")))?;
        html = rendered;
        (messages, included)
    };
    messages
        .into_iter()
        .zip(html)
        .take(included)
        .map(|(message, html)| {
            let html = html.ok_or_else(|| ApiError::internal("a message was not rendered"))?;
            Ok(MessageResponse::with_html(message, html))
        })
        .collect()
}

/// Fills in the `html` of each message that has none, in order, until the
/// messages' `body` and `html` reach `max_bytes`; returns how many
/// messages that covers. Stops at the next message once `abandoned` is set.
fn render_uncached(
    cache: &HtmlCache,
    messages: &[Message],
    html: &mut [Option<Arc<str>>],
    max_bytes: usize,
    abandoned: &AtomicBool,
) -> usize {
    let mut bytes = 0usize;
    for (index, (message, html)) in messages.iter().zip(html).enumerate() {
        if index > 0 && bytes >= max_bytes {
            return index;
        }
        let rendered = match html {
            Some(rendered) => rendered,
            None => {
                if abandoned.load(Ordering::Relaxed) {
                    return index;
                }
                html.insert(cache.html(message))
            }
        };
        bytes = bytes.saturating_add(message.body.len() + rendered.len());
    }
    messages.len()
}

/// Set when the request rendering on the blocking pool is dropped (it was
/// answered, by a timeout for instance), so that the rendering stops.
#[derive(Default)]
struct AbandonOnDrop(Arc<AtomicBool>);

impl Drop for AbandonOnDrop {
    fn drop(&mut self) {
        self.0.store(true, Ordering::Relaxed);
    }
}

/// Renders one body's `html`, on the blocking pool if it is long (see
/// [`INLINE_RENDER_BYTES`]). The write that stores it is still to come,
/// so it is not cached yet.
///
/// # Errors
/// `internal_error` if rendering on the blocking pool failed to complete.
async fn render_html(body: String, format: BodyFormat) -> Result<Arc<str>, ApiError> {
    if body.len() <= INLINE_RENDER_BYTES {
        return Ok(render::to_html(&body, format).into());
    }
    tokio::task::spawn_blocking(move || render::to_html(&body, format).into())
        .await
        .map_err(|error| ApiError::internal(format!("rendering a message: {error}")))
}

/// Converts one message to its response; see [`message_responses`].
///
/// # Errors
/// `internal_error` if rendering on the blocking pool failed to complete.
async fn message_response(
    cache: &Arc<HtmlCache>,
    message: Message,
) -> Result<MessageResponse, ApiError> {
    message_responses(cache, vec![message], usize::MAX)
        .await?
        .pop()
        .ok_or_else(|| ApiError::internal("rendering a message returned nothing"))
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

/// The body of a reply; each member is checked on its own, and every
/// error is reported at once.
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
    /// Files for the reply: ids of your uploads
    /// (`POST /api/v2/support/uploads`), each attached once, at most 10 by
    /// default (`max_attachments_per_message`). An encrypted reply takes
    /// only uploads sent with `encrypted=true`, a plain one only plain ones.
    #[schema(value_type = Option<Vec<String>>, example = json!(["upl_01hxa3b4c5d6e7f8g9h0j1k2m3"]))]
    pub attachments: Option<Vec<String>>,
}

/// Validates a reply body into a message to append, its text within
/// `limits`, reporting every field error at once.
///
/// # Errors
/// `invalid_request` with one entry per problem.
pub fn read_reply(body: serde_json::Value, limits: TextLimits) -> Result<Draft, ApiError> {
    Fields::read(body, |fields| {
        let message = fields.required_text("message", |text| limits.message(text));
        let encrypted = fields.optional_bool("encrypted");
        let body_format =
            fields.optional_choice("bodyFormat", &BodyFormat::ALL, BodyFormat::as_str);
        let attachments = fields.optional_list("attachments", UPLOAD_ID, UploadId::parse);
        Some(Draft {
            body: message?,
            body_format: body_format.ok()?.unwrap_or_default(),
            encrypted: encrypted.ok()?.unwrap_or(false),
            attachments: attachments.ok()?,
            task: None,
        })
    })
    .map_err(ApiError::invalid)
}

/// Where a message lives.
pub fn message_location(ticket: TicketId, message: MessageId) -> String {
    format!("/api/v2/support/tickets/{ticket}/messages/{message}")
}

/// A reply's response: 201 with the message (whose body renders as
/// `html`) and its `Location`.
fn reply_created(message: &Message, html: Arc<str>) -> Result<StoredResponse, Cause> {
    respond::stored(
        StatusCode::CREATED,
        Some(message_location(message.ticket_id, message.id)),
        &MessageResponse::with_html(message.clone(), html),
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
    claim: IdempotencyClaim,
    JsonBody(body): JsonBody,
) -> Result<Response, ApiError> {
    let draft = read_reply(body, state.settings.text_limits)?;
    let actor = &authed.principal.actor;
    // A keyed reply's response is serialised inside the write's
    // transaction; its html is rendered here, beforehand, so the
    // transaction never waits on a long Markdown body.
    let html = if claim.is_keyed() {
        Some(render_html(draft.body.as_str().to_owned(), draft.body_format).await?)
    } else {
        None
    };
    let completion = html.as_ref().and_then(|html| {
        let rendered = Arc::clone(html);
        claim.completion(Box::new(move |message: &Message| {
            reply_created(message, Arc::clone(&rendered))
        }))
    });
    let written = state
        .support
        .reply(actor, ticket, draft, completion)
        .await
        .map_err(canonical)?;
    let message = written.value;
    if let Some(stored) = written.response {
        if let Some(html) = html {
            state.html_cache.insert(message.id, html);
        }
        return idempotency::completed(stored);
    }
    let location = message_location(message.ticket_id, message.id);
    let response = message_response(&state.html_cache, message).await?;
    respond::from_stored(
        respond::stored(StatusCode::CREATED, Some(location), &response)
            .map_err(|cause| ApiError::internal(cause.to_string()))?,
    )
}

/// List a ticket's messages, oldest first.
#[utoipa::path(
    get,
    path = "/api/v2/support/tickets/{id}/messages",
    tag = "Support tickets",
    params(
        ("id" = String, Path, description = "A `tkt_` id, or the ticket's number in your workspace."),
        ("limit" = Option<u32>, Query, minimum = 1, maximum = 100, description = "Page size, 1 to 100 (default 25). A page stops early, with a `nextCursor`, after the message that brings its `body` and `html` to 8 MiB."),
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
        .support
        .list_messages(&authed.principal.actor, ticket, PageRequest { size, after })
        .await
        .map_err(canonical)?;
    let positions: Vec<i64> = page.items.iter().map(|message| message.seq).collect();
    let data = message_responses(&state.html_cache, page.items, MAX_PAGE_TEXT_BYTES).await?;
    let next = match data
        .len()
        .checked_sub(1)
        .and_then(|last| positions.get(last))
    {
        // Cut short by its size: the next page starts after its last message.
        Some(&seq) if data.len() < positions.len() => Some(MessageCursor { seq }),
        _ => page.next,
    };
    let body = MessageListResponse {
        data,
        next_cursor: next.map(|cursor| cursor.encode()),
    };
    respond::json(StatusCode::OK, &body)
}

/// The `{id}` and `{messageId}` path segments.
pub struct MessagePath(pub TicketRef, pub MessageId);

impl<S: Send + Sync> FromRequestParts<S> for MessagePath {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        let params = PathParams::from_request_parts(parts, state).await?;
        match (
            TicketRef::parse(params.get("id")),
            MessageId::parse(params.get("messageId")),
        ) {
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
        (status = 400, description = "The path is not valid percent-encoded UTF-8 (`invalid_request`).", body = Problem, content_type = "application/problem+json"),
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
        .support
        .find_message(&authed.principal.actor, ticket, message)
        .await
        .map_err(canonical)?;
    respond::json(
        StatusCode::OK,
        &message_response(&state.html_cache, message).await?,
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::access::Role;
    use crate::core::id::UserId;
    use crate::core::time::Timestamp;

    fn message(body: &str) -> Message {
        Message {
            numeric_id: 1,
            id: MessageId::generate(),
            ticket_id: TicketId::generate(),
            seq: 1,
            sent_at: Timestamp::now(),
            body: body.to_owned(),
            body_format: BodyFormat::Markdown,
            encrypted: false,
            sender_id: UserId::generate(),
            sender_role: Role::Customer,
            sender_name: "Jane Example".to_owned(),
            attachments: Vec::new(),
            task: None,
        }
    }

    #[test]
    fn rendering_stops_once_its_request_is_abandoned() {
        let cache = HtmlCache::new(1 << 20);
        let messages = [message("*a*"), message("*b*")];
        let mut html = vec![None, None];
        render_uncached(
            &cache,
            &messages,
            &mut html,
            usize::MAX,
            &AtomicBool::new(true),
        );
        assert_eq!(html, vec![None, None]);
        assert!(cache.get(messages[0].id).is_none());
        let abandoned = AbandonOnDrop::default();
        let flag = Arc::clone(&abandoned.0);
        render_uncached(&cache, &messages, &mut html, usize::MAX, &flag);
        assert_eq!(html[1].as_deref(), Some("<p><em>b</em></p>\n"));
        drop(abandoned);
        assert!(flag.load(Ordering::Relaxed));
    }

    #[tokio::test]
    async fn cached_html_is_used_and_misses_are_cached() {
        let cache = Arc::new(HtmlCache::new(1 << 20));
        let cached = message("*a*");
        cache.insert(cached.id, "<p>from the cache</p>".into());
        let fresh = message("*b*");
        let fresh_id = fresh.id;
        let responses = message_responses(&cache, vec![cached, fresh], usize::MAX)
            .await
            .expect("rendered");
        assert_eq!(responses[0].html.as_deref(), Some("<p>from the cache</p>"));
        assert_eq!(responses[1].html.as_deref(), Some("<p><em>b</em></p>\n"));
        assert_eq!(cache.get(fresh_id).as_deref(), Some("<p><em>b</em></p>\n"));
    }

    #[test]
    fn a_page_stops_after_the_message_that_reaches_its_size() {
        let cache = HtmlCache::new(1 << 20);
        let messages: Vec<Message> = (0..4).map(|_| message("abcd")).collect();
        // Each message carries 4 bytes of body and 12 of html.
        let mut html = vec![None; 4];
        let never = AtomicBool::new(false);
        assert_eq!(render_uncached(&cache, &messages, &mut html, 32, &never), 2);
        assert_eq!(render_uncached(&cache, &messages, &mut html, 33, &never), 3);
        assert_eq!(render_uncached(&cache, &messages, &mut html, 1, &never), 1);
        assert_eq!(render_uncached(&cache, &messages, &mut html, 0, &never), 1);
        assert_eq!(
            render_uncached(&cache, &messages, &mut html, usize::MAX, &never),
            4
        );
    }
}
