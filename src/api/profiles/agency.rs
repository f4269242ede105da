//! The `agency` profile: Daakey's client ticket API (seed 004), under
//! `/api/v1/client`, so that an agency's white-label app works unchanged
//! against `http://HOST`.
//!
//! A translation over the canonical core: Daakey's routes and wire types
//! ([`wire`]), its envelope and Laravel-style validation errors
//! ([`errors`]), integer ids (a ticket's number in the agency, the
//! store-assigned integer ids of messages and uploads), and its spellings
//! of statuses, priorities and senders. The agency is the workspace: every
//! request carries the workspace's agency signature, checked by
//! [`check_signature`] after the bearer key, which must belong to the same
//! workspace. Like the client app it serves, a key sees and writes only
//! the tickets its user owns ([`TicketScope::Own`]). Unknown fields and
//! parameters are ignored, as Laravel ignores them.
//!
//! [`TicketScope::Own`]: crate::core::access::TicketScope::Own

pub mod errors;
pub mod wire;

use std::sync::LazyLock;

use axum::Extension;
use axum::extract::{Request, State};
use axum::http::{HeaderName, StatusCode, header};
use axum::middleware::Next;
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
use crate::core::id::{RequestId, UploadId};
use crate::core::message::{BodyFormat, Message};
use crate::core::ticket::{Category, MessagePreview, Ticket, TicketRef, TicketRow, TicketRowQuery};
use crate::core::upload::Upload;
use crate::core::upload::media::KnownType;
use crate::service::{Draft, OpenTicket, Support};
use crate::store::Cause;
use crate::store::idempotency::StoredResponse;

use super::{BearerAuth, ProfileRoutes};
use errors::{AGENCY_SIGNATURE, TICKET_NOT_FOUND, field_refusal, refusal_of};
use wire::{
    Envelope, ErrorBody, ListMeta, Meta, Status, TicketDetail, TicketListRow, WireMessage,
    WirePriority, WireUpload,
};

/// Where the profile is mounted.
pub const PREFIX: &str = "/api/v1/client";

/// Where files are uploaded.
pub const UPLOAD_PATH: &str = "/api/v1/client/upload";

/// Where an upload's URL points, before its id: what `attachments` takes.
pub const UPLOADS_PREFIX: &str = "/api/v1/client/uploads/";

/// The header that carries the agency signature.
pub const SIGNATURE_HEADER: HeaderName = HeaderName::from_static("x-agency-signature");

/// The longest subject, in characters.
pub const SUBJECT_CHARS: usize = 255;

/// Tickets per page unless `per_page` says otherwise.
pub const DEFAULT_PER_PAGE: u32 = 15;

/// The most tickets per page.
pub const MAX_PER_PAGE: u32 = 100;

/// The last page a list may ask for.
pub const MAX_PAGE: u32 = 1_000_000;

/// The most files one message carries.
pub const ATTACHMENTS_PER_MESSAGE: usize = 10;

/// The largest file, in bytes (5 MB).
pub const FILE_BYTES: u64 = 5_000_000;

/// The media types a file may be of.
pub const FILE_TYPES: [KnownType; 3] = [KnownType::Jpeg, KnownType::Png, KnownType::Pdf];

/// The most messages a ticket's detail lists: the latest.
pub const THREAD_MESSAGES: i64 = 500;

/// The most bytes of message text a ticket's detail carries.
pub const THREAD_BYTES: usize = 8 * 1024 * 1024;

/// Middleware, after authentication: a request under [`PREFIX`] must carry
/// a genuine agency signature of the current generation naming the bearer
/// key's workspace. Missing, malformed, forged, rotated-out and another
/// agency's signatures are all the same 401, so that nothing tells which
/// agencies exist.
pub async fn check_signature(
    State(state): State<AppState>,
    request: Request,
    next: Next,
) -> Response {
    if !owns(request.uri().path()) {
        return next.run(request).await;
    }
    let signed = request
        .headers()
        .get(SIGNATURE_HEADER)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| state.agency_signatures.verify(value));
    let principal = request.extensions().get::<Principal>();
    match (signed, principal) {
        (Some(signed), Some(principal)) if signed.names(&principal.workspace) => {
            next.run(request).await
        }
        _ => Refusal::new(ErrorCode::Unauthorized)
            .with_reason(AGENCY_SIGNATURE)
            .into_response(),
    }
}

/// The caller as this API lets it act: on its own tickets only.
fn actor_of(principal: &Principal) -> Actor {
    principal.actor.clone().scoped_to_own_tickets()
}

/// The ticket the `{ticket}` segment names: a positive decimal integer,
/// its number; anything else names no ticket.
fn ticket_of(params: &PathParams) -> Result<TicketRef, Refusal> {
    match TicketRef::parse(params.get("ticket")) {
        Some(number @ TicketRef::Number(_)) => Ok(number),
        _ => Err(Refusal::new(ErrorCode::NotFound).with_reason(TICKET_NOT_FOUND)),
    }
}

/// The use cases with this API's limit on files per message.
fn support(state: &AppState) -> Support {
    let limits = state
        .support
        .attach_limits()
        .narrowed(ATTACHMENTS_PER_MESSAGE);
    state.support.clone().with_attach_limits(limits)
}

/// `body` as JSON with `status`, for an idempotency record.
fn stored<T: serde::Serialize>(status: StatusCode, body: &T) -> Result<StoredResponse, Cause> {
    respond::stored(status, None, body)
}

/// List your tickets, most recent activity first.
#[utoipa::path(
    get,
    path = "/api/v1/client/tickets",
    tag = "Tickets",
    params(
        ("status" = Option<Status>, Query, description = "Only tickets in this status."),
        ("page" = Option<u32>, Query, minimum = 1, maximum = 1000000, description = "The page, 1 to 1,000,000 (default 1)."),
        ("per_page" = Option<u32>, Query, minimum = 1, maximum = 100, description = "Tickets per page, 1 to 100 (default 15)."),
        ("X-Agency-Signature" = String, Header, description = "Your agency's signature."),
    ),
    responses(
        (status = 200, description = "`Tickets retrieved`: a page of your tickets.", body = Envelope<Vec<TicketListRow>, ListMeta>),
        Refusals,
        (status = 403, description = "The key lacks `read:support`.", body = ErrorBody),
        (status = 422, description = "`Validation failed`: a parameter is invalid.", body = ErrorBody),
    ),
    security(("bearerAuth" = []))
)]
pub async fn list_tickets(
    State(state): State<AppState>,
    authed: Authed<ReadSupport>,
    Extension(request_id): Extension<RequestId>,
    mut query: QueryParams,
) -> Result<Response, Refusal> {
    let status = query.choice("status", &Status::ALL, Status::as_str);
    let page = query.integer_in("page", 1, (1, u64::from(MAX_PAGE)));
    let per_page = query.integer_in(
        "per_page",
        u64::from(DEFAULT_PER_PAGE),
        (1, u64::from(MAX_PER_PAGE)),
    );
    query.ignore_others();
    query.finish()?;
    let per_page = u32::try_from(per_page).unwrap_or(DEFAULT_PER_PAGE);
    let principal = &authed.principal;
    let rows = state
        .support
        .list_ticket_rows(
            &actor_of(principal),
            &TicketRowQuery {
                statuses: status.map(Status::core).unwrap_or_default(),
                search: None,
                offset: (page - 1).saturating_mul(u64::from(per_page)),
                limit: per_page,
            },
        )
        .await
        .map_err(refusal_of)?;
    let meta = ListMeta {
        agency_id: principal.workspace.numeric_id,
        agency_code: principal.workspace.code.clone(),
        current_page: page,
        last_page: rows.total.div_ceil(u64::from(per_page)).max(1),
        per_page,
        total: rows.total,
    };
    let data: Vec<TicketListRow> = rows.rows.iter().map(TicketListRow::from).collect();
    respond::json(
        StatusCode::OK,
        &Envelope::new("Tickets retrieved", data, meta, request_id),
    )
}

/// Get one of your tickets with its messages (the latest 500, oldest
/// first). Viewing it marks its messages read.
#[utoipa::path(
    get,
    path = "/api/v1/client/tickets/{ticket}",
    tag = "Tickets",
    params(
        ("ticket" = i64, Path, description = "The ticket's id (its number)."),
        ("X-Agency-Signature" = String, Header, description = "Your agency's signature."),
    ),
    responses(
        (status = 200, description = "`Ticket retrieved`.", body = Envelope<TicketDetail, Meta>),
        Refusals,
        (status = 403, description = "The key lacks `read:support`.", body = ErrorBody),
        (status = 404, description = "`Ticket not found`.", body = ErrorBody),
    ),
    security(("bearerAuth" = []))
)]
pub async fn get_ticket(
    State(state): State<AppState>,
    authed: Authed<ReadSupport>,
    Extension(request_id): Extension<RequestId>,
    params: PathParams,
) -> Result<Response, Refusal> {
    let reference = ticket_of(&params)?;
    let actor = actor_of(&authed.principal);
    let ticket = state
        .support
        .view_ticket(&actor, reference)
        .await
        .map_err(refusal_of)?;
    let public_url = &state.settings.public_url;
    let messages = super::latest_messages(
        &state.support,
        &actor,
        &ticket,
        THREAD_MESSAGES,
        THREAD_BYTES,
    )
    .await
    .map_err(refusal_of)?
    .iter()
    .map(|message| WireMessage::of(message, public_url))
    .collect();
    respond::json(
        StatusCode::OK,
        &Envelope::new(
            "Ticket retrieved",
            TicketDetail::new(&ticket, messages),
            Meta::from(&authed.principal.workspace),
            request_id,
        ),
    )
}

/// Reads `attachments`: URLs of the caller's uploads, as the upload
/// endpoint answers them (never fetched; anything else is refused).
fn attachments(fields: &mut Fields, uploads_url: &str) -> Option<Vec<UploadId>> {
    fields
        .optional_list("attachments", "a URL the upload endpoint returned", |url| {
            url.strip_prefix(uploads_url).and_then(UploadId::parse)
        })
        .ok()
}

/// The URL uploads' ids follow.
fn uploads_url(state: &AppState) -> String {
    format!("{}{UPLOADS_PREFIX}", state.settings.public_url)
}

/// Open a ticket.
#[utoipa::path(
    post,
    path = "/api/v1/client/tickets",
    tag = "Tickets",
    params(("X-Agency-Signature" = String, Header, description = "Your agency's signature.")),
    request_body(content = wire::CreateTicketRequest, content_type = "application/json"),
    responses(
        (status = 201, description = "`Ticket created successfully`: the ticket as the list shows it.", body = Envelope<TicketListRow, Meta>),
        Refusals,
        (status = 403, description = "The key lacks `write:support`, or is not a customer's.", body = ErrorBody),
        (status = 409, description = "The `Idempotency-Key` was used for another request, or is in progress.", body = ErrorBody),
        (status = 413, description = "The body is larger than `max_body_bytes`.", body = ErrorBody),
        (status = 415, description = "The body is not `application/json`.", body = ErrorBody),
        (status = 422, description = "`Validation failed`.", body = ErrorBody),
    ),
    security(("bearerAuth" = []))
)]
pub async fn create_ticket(
    State(state): State<AppState>,
    authed: Authed<WriteSupport>,
    Extension(request_id): Extension<RequestId>,
    claim: IdempotencyClaim,
    JsonBody(body): JsonBody,
) -> Result<Response, Refusal> {
    let limits = state
        .settings
        .text_limits
        .with_published_subject(SUBJECT_CHARS);
    let uploads_url = uploads_url(&state);
    let command = Fields::read(body, |fields| {
        let subject = fields.required_text("subject", |text| limits.subject(text));
        let message = fields.required_text("message", |text| limits.message(text));
        let category = fields.optional_parsed(
            "category",
            "a lowercase token such as `vehicle_issue`",
            Category::parse,
        );
        let category = match category {
            Ok(None) => {
                fields.reject(field_error(
                    "category",
                    FieldCode::MissingRequired,
                    "`category` is required.",
                ));
                None
            }
            Ok(Some(category)) => Some(category),
            Err(_) => None,
        };
        let priority = fields.optional_choice("priority", &WirePriority::ALL, WirePriority::as_str);
        let booking_id = fields.optional_positive_integer("booking_id");
        let attachments = attachments(fields, &uploads_url);
        fields.ignore_others();
        Some(OpenTicket {
            subject: subject?,
            priority: priority.ok()?.unwrap_or(WirePriority::Normal).core(),
            category: Some(category?),
            booking_id: booking_id.ok()?,
            customer: None,
            first_message: Draft {
                body: message?,
                body_format: BodyFormat::Plain,
                encrypted: false,
                attachments: attachments?,
                task: None,
            },
        })
    })
    .map_err(Refusal::invalid)?;
    let preview = MessagePreview::Text(
        command
            .first_message
            .body
            .as_str()
            .chars()
            .take(MessagePreview::CHARS + 1)
            .collect(),
    );
    let meta = Meta::from(&authed.principal.workspace);
    let render = move |ticket: &Ticket| {
        let row = TicketRow {
            ticket: ticket.clone(),
            unread_count: 0,
            last_message: preview.clone(),
        };
        stored(
            StatusCode::CREATED,
            &Envelope::new(
                "Ticket created successfully",
                TicketListRow::from(&row),
                meta.clone(),
                request_id,
            ),
        )
    };
    let written = support(&state)
        .open_ticket(
            &actor_of(&authed.principal),
            command,
            claim.completion(Box::new(render.clone())),
        )
        .await
        .map_err(refusal_of)?;
    respond::written(written, render)
}

/// Add a message to one of your tickets.
///
/// A message on a `resolved` ticket reopens it; a `closed` ticket takes
/// none (400): open a new ticket instead.
#[utoipa::path(
    post,
    path = "/api/v1/client/tickets/{ticket}/messages",
    tag = "Tickets",
    params(
        ("ticket" = i64, Path, description = "The ticket's id (its number)."),
        ("X-Agency-Signature" = String, Header, description = "Your agency's signature."),
    ),
    request_body(content = wire::AddMessageRequest, content_type = "application/json"),
    responses(
        (status = 201, description = "`Message added`.", body = Envelope<WireMessage, Meta>),
        (status = 400, description = "`Cannot add message to closed ticket`.", body = ErrorBody),
        Refusals,
        (status = 403, description = "The key lacks `write:support`.", body = ErrorBody),
        (status = 404, description = "`Ticket not found`.", body = ErrorBody),
        (status = 409, description = "The `Idempotency-Key` was used for another request, or is in progress.", body = ErrorBody),
        (status = 413, description = "The body is larger than `max_body_bytes`.", body = ErrorBody),
        (status = 415, description = "The body is not `application/json`.", body = ErrorBody),
        (status = 422, description = "`Validation failed`.", body = ErrorBody),
    ),
    security(("bearerAuth" = []))
)]
pub async fn add_message(
    State(state): State<AppState>,
    authed: Authed<WriteSupport>,
    Extension(request_id): Extension<RequestId>,
    params: PathParams,
    claim: IdempotencyClaim,
    JsonBody(body): JsonBody,
) -> Result<Response, Refusal> {
    let ticket = ticket_of(&params)?;
    let limits = state.settings.text_limits;
    let uploads_url = uploads_url(&state);
    let draft = Fields::read(body, |fields| {
        let message = fields.required_text("message", |text| limits.message(text));
        let attachments = attachments(fields, &uploads_url);
        fields.ignore_others();
        Some(Draft {
            body: message?,
            body_format: BodyFormat::Plain,
            encrypted: false,
            attachments: attachments?,
            task: None,
        })
    })
    .map_err(Refusal::invalid)?;
    let meta = Meta::from(&authed.principal.workspace);
    let public_url = state.settings.public_url.clone();
    let render = move |message: &Message| {
        stored(
            StatusCode::CREATED,
            &Envelope::new(
                "Message added",
                WireMessage::of(message, &public_url),
                meta.clone(),
                request_id,
            ),
        )
    };
    let written = support(&state)
        .reply(
            &actor_of(&authed.principal),
            ticket,
            draft,
            claim.completion(Box::new(render.clone())),
        )
        .await
        .map_err(refusal_of)?;
    respond::written(written, render)
}

/// Upload a file to attach to a message: multipart with one `file` part
/// (JPEG, PNG or PDF, at most 5 MB). Put the answered `url` in a
/// message's `attachments` within 24 hours.
#[utoipa::path(
    post,
    path = "/api/v1/client/upload",
    tag = "Media",
    params(("X-Agency-Signature" = String, Header, description = "Your agency's signature.")),
    request_body(content = Vec<u8>, description = "`multipart/form-data` with one part, `file`.", content_type = "multipart/form-data"),
    responses(
        (status = 201, description = "`File uploaded`.", body = Envelope<WireUpload, Meta>),
        (status = 400, description = "The upload is incomplete.", body = ErrorBody),
        Refusals,
        (status = 403, description = "The key lacks `write:support`.", body = ErrorBody),
        (status = 408, description = "The file stopped arriving, or arrived too slowly.", body = ErrorBody),
        (status = 409, description = "The `Idempotency-Key` was used for another request, or is in progress.", body = ErrorBody),
        (status = 422, description = "`Validation failed`: no `file`, or a file this API does not take.", body = ErrorBody),
    ),
    security(("bearerAuth" = []))
)]
pub async fn upload_file(
    State(state): State<AppState>,
    authed: Authed<WriteSupport>,
    Extension(request_id): Extension<RequestId>,
    claim: IdempotencyClaim,
    query: QueryParams,
    request: Request,
) -> Result<Response, Refusal> {
    let rules = state.uploads.policy().narrowed(FILE_BYTES, &FILE_TYPES);
    let meta = Meta::from(&authed.principal.workspace);
    let uploads_url = uploads_url(&state);
    let render = move |upload: &Upload| {
        stored(
            StatusCode::CREATED,
            &Envelope::new(
                "File uploaded",
                WireUpload::of(upload, &uploads_url),
                meta.clone(),
                request_id,
            ),
        )
    };
    let written = crate::api::v2::uploads::receive(
        &state,
        &authed.principal.actor,
        query,
        request,
        claim.completion(Box::new(render.clone())),
        &rules,
    )
    .await
    .map_err(|refusal| match refusal.code() {
        ErrorCode::UploadTooLarge
        | ErrorCode::UploadContentMismatch
        | ErrorCode::UnsupportedMediaType => field_refusal(
            "/file",
            FieldCode::InvalidValue,
            format!(
                "The file field must be a JPEG, PNG or PDF file of at most {} kilobytes.",
                FILE_BYTES / 1000
            ),
        ),
        _ => refusal,
    })?;
    respond::written(written, render)
}

/// Describe one of your uploads.
#[utoipa::path(
    get,
    path = "/api/v1/client/uploads/{upload}",
    tag = "Media",
    params(
        ("upload" = String, Path, description = "The upload's id (`upl_...`), as its `url` ends."),
        ("X-Agency-Signature" = String, Header, description = "Your agency's signature."),
    ),
    responses(
        (status = 200, description = "`File retrieved`.", body = Envelope<WireUpload, Meta>),
        Refusals,
        (status = 403, description = "The key lacks `read:support`.", body = ErrorBody),
        (status = 404, description = "No such upload of yours.", body = ErrorBody),
    ),
    security(("bearerAuth" = []))
)]
pub async fn get_upload(
    State(state): State<AppState>,
    authed: Authed<ReadSupport>,
    Extension(request_id): Extension<RequestId>,
    params: PathParams,
) -> Result<Response, Refusal> {
    let id =
        UploadId::parse(params.get("upload")).ok_or_else(|| Refusal::new(ErrorCode::NotFound))?;
    let upload = state
        .store
        .find_upload(&authed.principal.actor, id)
        .await
        .map_err(|error| refusal_of(error.into()))?;
    respond::json(
        StatusCode::OK,
        &Envelope::new(
            "File retrieved",
            WireUpload::of(&upload, &uploads_url(&state)),
            Meta::from(&authed.principal.workspace),
            request_id,
        ),
    )
}

/// The refusals every operation of the profile may answer.
struct Refusals;

impl utoipa::IntoResponses for Refusals {
    fn responses()
    -> std::collections::BTreeMap<String, utoipa::openapi::RefOr<utoipa::openapi::Response>> {
        super::shared_refusals(&[
            ("401", "`Unauthenticated.`, or `Invalid agency signature.`"),
            ("429", "`Too Many Attempts.`"),
            ("500", "`Server Error`"),
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
    path = "/api/v1/client/openapi.json",
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
        title = "ticketd: Daakey client API (support tickets)",
        description = "Daakey's client ticket API served by ticketd as the `agency` compatibility profile. Every request carries `Authorization: Bearer <API key>` and the agency's `X-Agency-Signature`. Errors are `{\"success\": false, \"message\", \"errors\"?, \"data\": null, \"request_id\", \"timestamp\"}`.",
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
        .routes(routes!(add_message))
        .routes(routes!(upload_file))
        .routes(routes!(get_upload))
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

/// Whether requests to `path` stream their bodies (its upload endpoint).
pub fn streams_body(path: &str) -> bool {
    path == UPLOAD_PATH
}

/// Whether `path` is this profile's.
pub fn owns(path: &str) -> bool {
    path.strip_prefix(PREFIX)
        .is_some_and(|rest| rest.is_empty() || rest.starts_with('/'))
}
