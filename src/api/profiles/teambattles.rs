//! The `teambattles` profile: TeamBattles' API v1 for support tickets
//! (seed 003), under `/api/v1`, so that the published `teambattles-sdk`
//! works unchanged with `base_url="http://HOST/api/v1"`.
//!
//! A translation over the canonical core: TeamBattles' routes and wire
//! types ([`wire`]), its error envelope ([`errors`]), its names
//! (`content`, `images`, `storageId`, `medium`), and its published limits,
//! which narrow the server's through the core (150-character subjects,
//! 2000-character texts, 10 images of at most 5 MB, images only). Tickets
//! are owner-scoped as TeamBattles' are: whatever its role, a key sees and
//! writes only the tickets its user owns ([`TicketScope::Own`]).
//! Idempotency keys are scoped by API key and path, as TeamBattles scopes
//! them.
//!
//! [`TicketScope::Own`]: crate::core::access::TicketScope::Own

pub mod errors;
pub mod wire;

use std::sync::LazyLock;

use axum::extract::{Request, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use utoipa::OpenApi;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::api::AppState;
use crate::api::auth::{Authed, ReadSupport, WriteSupport};
use crate::api::extract::{EmptyBody, JsonBody, PathParams, QueryParams};
use crate::api::fields::Fields;
use crate::api::idempotency::IdempotencyClaim;
use crate::api::refusal::Refusal;
use crate::api::respond;
use crate::api::upload_body::request_body_stream;
use crate::core::access::Actor;
use crate::core::id::UploadId;
use crate::core::message::{BodyFormat, Message};
use crate::core::page::{Cursor, PageRequest, PageSize, TicketCursor};
use crate::core::ticket::{Category, Priority, Ticket, TicketFilter, TicketRef};
use crate::core::time::Timestamp;
use crate::core::upload::Filename;
use crate::core::upload::media::KnownType;
use crate::service::{Draft, IncomingFile, OpenTicket, Support};
use crate::store::Cause;
use crate::store::idempotency::StoredResponse;

use super::{BearerAuth, ProfileRoutes};
use errors::{refusal_of, upload_refusal};
use wire::{
    CreateCategory, ErrorBody, ReplyCreated, StoredImage, ThreadMessage, TicketCreated,
    TicketDetail, TicketList, TicketSummary, UploadUrl,
};

/// Where the profile is mounted.
pub const PREFIX: &str = "/api/v1";

/// Where its upload URLs point, before their token.
pub const SIGNED_UPLOADS_PREFIX: &str = "/api/v1/uploads/signed/";

/// The longest subject, in characters.
pub const SUBJECT_CHARS: usize = 150;

/// The longest description or reply, in characters.
pub const CONTENT_CHARS: usize = 2000;

/// The most images one message carries.
pub const IMAGES_PER_MESSAGE: usize = 10;

/// The largest image, in bytes (5 MB).
pub const IMAGE_BYTES: u64 = 5_000_000;

/// The media types an image may be of (SVG is not one: it can carry
/// script).
pub const IMAGE_TYPES: [KnownType; 5] = [
    KnownType::Png,
    KnownType::Jpeg,
    KnownType::Gif,
    KnownType::Webp,
    KnownType::Avif,
];

/// The most messages a ticket's detail lists: the latest, so that one
/// request costs a bounded read however long the thread.
pub const THREAD_MESSAGES: i64 = 500;

/// The most bytes of reply text a ticket's detail carries (the latest
/// replies that fit), as a page of the canonical thread does.
pub const THREAD_BYTES: usize = 8 * 1024 * 1024;

/// What an entry of `images` must be.
const STORAGE_ID: &str = "a storageId from the image upload URL";

/// The caller as this API lets it act: on its own tickets only.
fn actor_of(authed_actor: &Actor) -> Actor {
    authed_actor.clone().scoped_to_own_tickets()
}

/// The ticket the `{ticketId}` segment names; any segment that names none
/// is an unknown ticket.
fn ticket_of(params: &PathParams) -> Result<TicketRef, Refusal> {
    TicketRef::parse(params.get("ticketId"))
        .ok_or_else(|| refusal_of(crate::service::ServiceError::NotFound))
}

/// The use cases with TeamBattles' limit on images per message.
fn support(state: &AppState) -> Support {
    let limits = state.support.attach_limits().narrowed(IMAGES_PER_MESSAGE);
    state.support.clone().with_attach_limits(limits)
}

/// `body` as JSON, 200.
fn ok<T: serde::Serialize>(body: &T) -> Result<StoredResponse, Cause> {
    respond::stored(StatusCode::OK, None, body)
}

/// List your tickets, newest activity first.
#[utoipa::path(
    get,
    path = "/api/v1/tickets",
    tag = "Tickets",
    params(
        ("limit" = Option<String>, Query, description = "Page size, 1 to 100 (default 25)."),
        ("cursor" = Option<String>, Query, description = "`nextCursor` of the previous page."),
    ),
    responses(
        (status = 200, description = "A page of your tickets.", body = TicketList),
        (status = 400, description = "`INVALID_LIMIT` or `INVALID_CURSOR`.", body = ErrorBody),
        (status = 401, description = "No or unknown API key.", body = ErrorBody),
        (status = 403, description = "The key lacks `read:support`.", body = ErrorBody),
        Refusals,
    ),
    security(("bearerAuth" = []))
)]
pub async fn list_tickets(
    State(state): State<AppState>,
    authed: Authed<ReadSupport>,
    mut query: QueryParams,
) -> Result<Response, Refusal> {
    let size = query.page_size();
    let after = query.cursor::<TicketCursor>();
    query.finish()?;
    let page = state
        .support
        .list_tickets(
            &actor_of(&authed.principal.actor),
            TicketFilter::default(),
            PageRequest { size, after },
        )
        .await
        .map_err(refusal_of)?;
    let next_cursor = page.next.map(|cursor| cursor.encode());
    respond::json(
        StatusCode::OK,
        &TicketList {
            data: page.items.iter().map(TicketSummary::from).collect(),
            has_more: next_cursor.is_some(),
            next_cursor,
            timestamp: Timestamp::now().to_string(),
        },
    )
}

/// The opening text and the latest [`THREAD_MESSAGES`] replies of a
/// ticket the actor can see, within [`THREAD_BYTES`] of text.
async fn thread_of(
    state: &AppState,
    actor: &Actor,
    ticket: &Ticket,
) -> Result<(String, Vec<ThreadMessage>), Refusal> {
    let one = PageSize::new(1).ok_or_else(|| Refusal::internal("a page of one"))?;
    let reference = TicketRef::Id(ticket.id);
    let first = state
        .support
        .list_messages(
            actor,
            reference,
            PageRequest {
                size: one,
                after: None,
            },
        )
        .await
        .map_err(refusal_of)?;
    let description = first
        .items
        .first()
        .map(|message| message.body.clone())
        .unwrap_or_default();
    let messages =
        super::latest_messages(&state.support, actor, ticket, THREAD_MESSAGES, THREAD_BYTES)
            .await
            .map_err(refusal_of)?
            .iter()
            // The opening message is the description.
            .filter(|message| message.seq > 1)
            .map(|message| ThreadMessage::of(message, actor.user_id))
            .collect();
    Ok((description, messages))
}

/// Get one of your tickets, with its thread.
#[utoipa::path(
    get,
    path = "/api/v1/tickets/{ticketId}",
    tag = "Tickets",
    params(("ticketId" = String, Path, description = "The ticket's id.")),
    responses(
        (status = 200, description = "The ticket.", body = TicketDetail),
        (status = 400, description = "Invalid request.", body = ErrorBody),
        (status = 401, description = "No or unknown API key.", body = ErrorBody),
        (status = 403, description = "The key lacks `read:support`.", body = ErrorBody),
        (status = 404, description = "`TICKET_NOT_FOUND`: no such ticket of yours.", body = ErrorBody),
        Refusals,
    ),
    security(("bearerAuth" = []))
)]
pub async fn get_ticket(
    State(state): State<AppState>,
    authed: Authed<ReadSupport>,
    params: PathParams,
    query: QueryParams,
) -> Result<Response, Refusal> {
    query.finish()?;
    let actor = actor_of(&authed.principal.actor);
    let ticket = state
        .support
        .find_ticket(&actor, ticket_of(&params)?)
        .await
        .map_err(refusal_of)?;
    let (description, messages) = thread_of(&state, &actor, &ticket).await?;
    respond::json(
        StatusCode::OK,
        &TicketDetail::new(&ticket, description, messages, Timestamp::now()),
    )
}

/// Reads `images`: at most [`IMAGES_PER_MESSAGE`] storage ids.
fn images(fields: &mut Fields) -> Option<Vec<UploadId>> {
    fields
        .optional_list("images", STORAGE_ID, UploadId::parse)
        .ok()
}

/// Open a ticket.
#[utoipa::path(
    post,
    path = "/api/v1/tickets",
    tag = "Tickets",
    request_body(content = wire::CreateTicketRequest, content_type = "application/json"),
    responses(
        (status = 200, description = "The ticket was opened.", body = TicketCreated),
        (status = 400, description = "`error_invalid_request` or `INVALID_INPUT` (a category or an image).", body = ErrorBody),
        (status = 401, description = "No or unknown API key.", body = ErrorBody),
        (status = 403, description = "The key lacks `write:support`, or is not a customer's.", body = ErrorBody),
        (status = 409, description = "`error_idempotency_key_conflict`.", body = ErrorBody),
        (status = 413, description = "The body is larger than `max_body_bytes`.", body = ErrorBody),
        (status = 415, description = "The body is not `application/json`.", body = ErrorBody),
        Refusals,
    ),
    security(("bearerAuth" = []))
)]
pub async fn create_ticket(
    State(state): State<AppState>,
    authed: Authed<WriteSupport>,
    claim: IdempotencyClaim,
    JsonBody(body): JsonBody,
) -> Result<Response, Refusal> {
    let limits = state
        .settings
        .text_limits
        .narrowed(SUBJECT_CHARS, CONTENT_CHARS);
    let command = Fields::read(body, |fields| {
        let subject = fields.required_text("subject", |text| limits.subject(text));
        let description = fields.required_text("description", |text| limits.message(text));
        let category =
            fields.required_choice("category", &CreateCategory::ALL, CreateCategory::as_str);
        let images = images(fields);
        Some(OpenTicket {
            subject: subject?,
            priority: Priority::default(),
            category: Category::parse(category?.as_str()),
            booking_id: None,
            customer: None,
            first_message: Draft {
                body: description?,
                body_format: BodyFormat::Plain,
                encrypted: false,
                attachments: images?,
                task: None,
            },
        })
    })
    .map_err(Refusal::invalid)?;
    let render = |ticket: &Ticket| {
        ok(&TicketCreated {
            success: true,
            ticket_id: ticket.id.to_string(),
            ticket_number: ticket.number,
            timestamp: Timestamp::now().to_string(),
        })
    };
    let written = support(&state)
        .open_ticket(
            &actor_of(&authed.principal.actor),
            command,
            claim.completion(Box::new(render)),
        )
        .await
        .map_err(refusal_of)?;
    respond::written(written, render)
}

/// Reply to one of your tickets.
///
/// The sender is always the key's user. A reply to a ticket of another
/// user is 403 `TICKET_ACCESS_DENIED`; to a closed ticket, 400.
#[utoipa::path(
    post,
    path = "/api/v1/tickets/{ticketId}/messages",
    tag = "Tickets",
    params(("ticketId" = String, Path, description = "The ticket's id.")),
    request_body(content = wire::ReplyRequest, content_type = "application/json"),
    responses(
        (status = 200, description = "The reply was added.", body = ReplyCreated),
        (status = 400, description = "Invalid reply, an image refused (`INVALID_INPUT`), or a closed ticket (`TICKET_CLOSED`).", body = ErrorBody),
        (status = 401, description = "No or unknown API key.", body = ErrorBody),
        (status = 403, description = "`TICKET_ACCESS_DENIED`, or the key lacks `write:support`.", body = ErrorBody),
        (status = 404, description = "`TICKET_NOT_FOUND`.", body = ErrorBody),
        (status = 409, description = "`error_idempotency_key_conflict`.", body = ErrorBody),
        (status = 413, description = "The body is larger than `max_body_bytes`.", body = ErrorBody),
        (status = 415, description = "The body is not `application/json`.", body = ErrorBody),
        Refusals,
    ),
    security(("bearerAuth" = []))
)]
pub async fn reply_to_ticket(
    State(state): State<AppState>,
    authed: Authed<WriteSupport>,
    params: PathParams,
    claim: IdempotencyClaim,
    JsonBody(body): JsonBody,
) -> Result<Response, Refusal> {
    let ticket = ticket_of(&params)?;
    let limits = state
        .settings
        .text_limits
        .narrowed(SUBJECT_CHARS, CONTENT_CHARS);
    let draft = Fields::read(body, |fields| {
        let content = fields.required_text("content", |text| limits.message(text));
        let images = images(fields);
        Some(Draft {
            body: content?,
            body_format: BodyFormat::Plain,
            encrypted: false,
            attachments: images?,
            task: None,
        })
    })
    .map_err(Refusal::invalid)?;
    let render = |message: &Message| {
        ok(&ReplyCreated {
            success: true,
            message_id: message.id.to_string(),
            timestamp: Timestamp::now().to_string(),
        })
    };
    let written = support(&state)
        .reply(
            &actor_of(&authed.principal.actor),
            ticket,
            draft,
            claim.completion(Box::new(render)),
        )
        .await
        .map_err(refusal_of)?;
    respond::written(written, render)
}

/// Get a URL to upload one image to.
///
/// `POST` the image's bytes to `uploadUrl` with its `Content-Type` and no
/// API key; it answers `{"storageId"}`. The URL works once.
#[utoipa::path(
    post,
    path = "/api/v1/uploads/image-url",
    tag = "Uploads",
    responses(
        (status = 200, description = "The URL.", body = UploadUrl),
        (status = 400, description = "A body was sent: this takes none.", body = ErrorBody),
        (status = 401, description = "No or unknown API key.", body = ErrorBody),
        (status = 403, description = "The key lacks `write:support`.", body = ErrorBody),
        (status = 413, description = "The body is larger than `max_body_bytes`.", body = ErrorBody),
        Refusals,
    ),
    security(("bearerAuth" = []))
)]
pub async fn create_image_url(
    State(state): State<AppState>,
    authed: Authed<WriteSupport>,
    _body: EmptyBody,
) -> Result<Response, Refusal> {
    let (token, _) = state.uploads.sign_url(&authed.principal);
    respond::json(
        StatusCode::OK,
        &UploadUrl {
            upload_url: format!(
                "{}{SIGNED_UPLOADS_PREFIX}{token}",
                state.settings.public_url
            ),
        },
    )
}

/// Upload an image to its URL.
///
/// The raw bytes, with the image's `Content-Type` (PNG, JPEG, GIF, WebP or
/// AVIF, at most 5 MB); no API key. `PUT` works as well.
#[utoipa::path(
    post,
    path = "/api/v1/uploads/signed/{token}",
    tag = "Uploads",
    params(("token" = String, Path, description = "The token `uploadUrl` ends with.")),
    request_body(content = Vec<u8>, description = "The image.", content_type = "application/octet-stream"),
    responses(
        (status = 200, description = "The image was stored.", body = StoredImage),
        (status = 400, description = "`INVALID_INPUT`: not an image TeamBattles takes, or too large.", body = ErrorBody),
        (status = 403, description = "The URL is not one this server made, or expired.", body = ErrorBody),
        (status = 408, description = "The image stopped arriving, or arrived too slowly.", body = ErrorBody),
        (status = 409, description = "The URL was used already.", body = ErrorBody),
        Refusals,
    )
)]
pub async fn upload_image(
    State(state): State<AppState>,
    authed: Authed<WriteSupport>,
    params: PathParams,
    request: Request,
) -> Result<Response, Refusal> {
    state
        .uploads
        .redeem_url(params.get("token"))
        .await
        .map_err(upload_refusal)?;
    let rules = state.uploads.policy().narrowed(IMAGE_BYTES, &IMAGE_TYPES);
    let content_type = request
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .unwrap_or("application/octet-stream")
        .to_owned();
    let extension = KnownType::parse(&content_type).map_or("bin", |known| {
        known.as_str().rsplit('/').next().unwrap_or("bin")
    });
    let filename = Filename::parse(&format!("image.{extension}"))
        .map_err(|error| Refusal::internal(error.to_string()))?;
    let bytes = request_body_stream(&state, request, rules.max_bytes).map_err(upload_refusal)?;
    let file = IncomingFile {
        filename,
        content_type,
        encrypted: false,
    };
    let upload = state
        .uploads
        .upload_within(&authed.principal.actor, file, bytes, None, &rules)
        .await
        .map_err(upload_refusal)?
        .value;
    respond::json(
        StatusCode::OK,
        &StoredImage {
            storage_id: upload.id.to_string(),
        },
    )
}

/// Upload an image to its URL (as `POST`).
///
/// The same as `POST`, for clients that follow the one place TeamBattles'
/// documents call the upload step a `PUT`.
#[utoipa::path(
    put,
    path = "/api/v1/uploads/signed/{token}",
    tag = "Uploads",
    params(("token" = String, Path, description = "The token `uploadUrl` ends with.")),
    request_body(content = Vec<u8>, description = "The image.", content_type = "application/octet-stream"),
    responses(
        (status = 200, description = "The image was stored.", body = StoredImage),
        (status = 400, description = "`INVALID_INPUT`: not an image TeamBattles takes, or too large.", body = ErrorBody),
        (status = 403, description = "The URL is not one this server made, or expired.", body = ErrorBody),
        (status = 408, description = "The image stopped arriving, or arrived too slowly.", body = ErrorBody),
        (status = 409, description = "The URL was used already.", body = ErrorBody),
        Refusals,
    )
)]
pub async fn put_image(
    state: State<AppState>,
    authed: Authed<WriteSupport>,
    params: PathParams,
    request: Request,
) -> Result<Response, Refusal> {
    upload_image(state, authed, params, request).await
}

/// The refusals every operation of the profile may answer.
struct Refusals;

impl utoipa::IntoResponses for Refusals {
    fn responses()
    -> std::collections::BTreeMap<String, utoipa::openapi::RefOr<utoipa::openapi::Response>> {
        super::shared_refusals(&[
            ("429", "Rate limited."),
            ("500", "Server fault."),
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
    path = "/api/v1/openapi.json",
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
        title = "ticketd: TeamBattles API v1 (support tickets)",
        description = "The TeamBattles support API served by ticketd as a compatibility profile. Errors are `{\"error\": CODE, \"details\": TEXT}`.",
        version = "1"
    ),
    modifiers(&BearerAuth)
)]
struct ProfileDoc;

/// Every route of the profile.
pub fn routes() -> ProfileRoutes {
    let (authenticated, mut doc) = OpenApiRouter::<AppState>::with_openapi(ProfileDoc::openapi())
        .routes(routes!(list_tickets, create_ticket))
        .routes(routes!(get_ticket))
        .routes(routes!(reply_to_ticket))
        .routes(routes!(create_image_url))
        .split_for_parts();
    let (signed, signed_doc) = OpenApiRouter::<AppState>::new()
        .routes(routes!(upload_image, put_image))
        .split_for_parts();
    let (open, open_doc) = OpenApiRouter::<AppState>::new()
        .routes(routes!(serve_openapi))
        .split_for_parts();
    doc.merge(signed_doc);
    doc.merge(open_doc);
    ProfileRoutes {
        authenticated,
        signed,
        open,
        doc,
    }
}

static OPENAPI_JSON: LazyLock<String> = LazyLock::new(|| super::document_json(&routes().doc));

/// The profile's OpenAPI document.
pub fn openapi_json() -> &'static str {
    &OPENAPI_JSON
}

/// Whether requests to `path` stream their bodies (its upload URLs).
pub fn streams_body(path: &str) -> bool {
    path.starts_with(SIGNED_UPLOADS_PREFIX)
}

/// Whether `path` is this profile's.
pub fn owns(path: &str) -> bool {
    path.strip_prefix(PREFIX)
        .is_some_and(|rest| rest.is_empty() || rest.starts_with('/'))
        && !path.starts_with("/api/v1/client")
}
