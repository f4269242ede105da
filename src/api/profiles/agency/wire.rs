//! Daakey's wire types: its envelope (`success`, `message`, `data`,
//! `meta`, `request_id`, `timestamp`), integer ids, snake_case names, and
//! its spellings of statuses, priorities and senders.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::core::access::{KeyWorkspace, Role};
use crate::core::id::RequestId;
use crate::core::message::Message;
use crate::core::ticket::{MessagePreview, Priority, Ticket, TicketRow, TicketStatus};
use crate::core::time::Timestamp;
use crate::core::upload::Upload;

/// A ticket's status as Daakey spells it: ticketd's `awaiting_response`
/// (support replied, waiting on the client) is `in_progress`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    /// New, awaiting a response.
    Open,
    /// Being handled.
    InProgress,
    /// Solved; a client message reopens it.
    Resolved,
    /// Done; messages are refused.
    Closed,
}

impl Status {
    /// Every status, as the list's `status` filter takes them.
    pub const ALL: [Status; 4] = [
        Status::Open,
        Status::InProgress,
        Status::Resolved,
        Status::Closed,
    ];

    /// Its wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Open => "open",
            Status::InProgress => "in_progress",
            Status::Resolved => "resolved",
            Status::Closed => "closed",
        }
    }

    /// The ticketd statuses it stands for.
    pub fn core(self) -> Vec<TicketStatus> {
        match self {
            Status::Open => vec![TicketStatus::Open],
            Status::InProgress => vec![TicketStatus::InProgress, TicketStatus::AwaitingResponse],
            Status::Resolved => vec![TicketStatus::Resolved],
            Status::Closed => vec![TicketStatus::Closed],
        }
    }
}

impl From<TicketStatus> for Status {
    fn from(status: TicketStatus) -> Self {
        match status {
            TicketStatus::Open => Status::Open,
            TicketStatus::InProgress | TicketStatus::AwaitingResponse => Status::InProgress,
            TicketStatus::Resolved => Status::Resolved,
            TicketStatus::Closed => Status::Closed,
        }
    }
}

/// A priority as Daakey spells it: ticketd's `urgent` is `critical`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum WirePriority {
    /// `low`.
    Low,
    /// `normal`, the default.
    Normal,
    /// `high`.
    High,
    /// `critical` (ticketd's `urgent`).
    Critical,
}

impl WirePriority {
    /// Every priority.
    pub const ALL: [WirePriority; 4] = [
        WirePriority::Low,
        WirePriority::Normal,
        WirePriority::High,
        WirePriority::Critical,
    ];

    /// Its wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            WirePriority::Low => "low",
            WirePriority::Normal => "normal",
            WirePriority::High => "high",
            WirePriority::Critical => "critical",
        }
    }

    /// The ticketd priority.
    pub fn core(self) -> Priority {
        match self {
            WirePriority::Low => Priority::Low,
            WirePriority::Normal => Priority::Normal,
            WirePriority::High => Priority::High,
            WirePriority::Critical => Priority::Urgent,
        }
    }
}

impl From<Priority> for WirePriority {
    fn from(priority: Priority) -> Self {
        match priority {
            Priority::Low => WirePriority::Low,
            Priority::Normal => WirePriority::Normal,
            Priority::High => WirePriority::High,
            Priority::Urgent => WirePriority::Critical,
        }
    }
}

/// Who sent a message: the client (a customer) or support (staff, or an
/// automation acting for the agency).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Sender {
    /// The customer.
    Client,
    /// Staff or automation.
    Support,
}

impl From<Role> for Sender {
    fn from(role: Role) -> Self {
        match role {
            Role::Customer => Sender::Client,
            Role::Staff | Role::Automation => Sender::Support,
        }
    }
}

/// A time inside `data`, to the second: `2024-01-15T12:00:00Z`.
pub fn data_time(at: Timestamp) -> String {
    let text = at.to_string();
    match text.split_once('.') {
        Some((seconds, _)) => format!("{seconds}Z"),
        None => text,
    }
}

/// A request id as Daakey shows it: the same 128 bits as its `req_` id,
/// written as a UUID.
pub fn request_uuid(id: RequestId) -> String {
    id.to_uuid()
}

/// A ticket's reference: `TK-<year opened>-<number, five digits or more>`.
pub fn reference_of(ticket: &Ticket) -> String {
    let year = ticket.created_at.to_string();
    format!("TK-{}-{:05}", &year[..4], ticket.number)
}

/// The agency every success names.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Meta {
    /// The agency's (workspace's) numeric id.
    pub agency_id: i64,
    /// Its code.
    pub agency_code: String,
}

impl From<&KeyWorkspace> for Meta {
    fn from(workspace: &KeyWorkspace) -> Self {
        Self {
            agency_id: workspace.numeric_id,
            agency_code: workspace.code.clone(),
        }
    }
}

/// The agency, and where a page of a list is.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ListMeta {
    /// The agency's numeric id.
    pub agency_id: i64,
    /// Its code.
    pub agency_code: String,
    /// This page, from 1.
    pub current_page: u64,
    /// The last page holding tickets (1 when there are none).
    pub last_page: u64,
    /// Tickets per page.
    pub per_page: u32,
    /// Tickets matching, on every page.
    pub total: u64,
}

/// A success: `{success: true, message, data, meta, request_id, timestamp}`.
#[derive(Debug, Serialize, ToSchema)]
pub struct Envelope<T, M> {
    /// Always `true`.
    pub success: bool,
    /// What happened, for people (`"Message added"`).
    pub message: String,
    /// The result.
    pub data: T,
    /// The agency (and, for a list, the page).
    pub meta: M,
    /// The request's id, as a UUID.
    pub request_id: String,
    /// When the response was made, to the millisecond.
    pub timestamp: String,
}

impl<T, M> Envelope<T, M> {
    /// A success saying `message`.
    pub fn new(message: &str, data: T, meta: M, request_id: RequestId) -> Self {
        Self {
            success: true,
            message: message.to_owned(),
            data,
            meta,
            request_id: request_uuid(request_id),
            timestamp: Timestamp::now().to_string(),
        }
    }
}

/// A refusal: `{success: false, message, errors?, data: null, request_id,
/// timestamp}`.
#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorBody {
    /// Always `false`.
    pub success: bool,
    /// What went wrong: `"Ticket not found"`, `"Validation failed"`, ...
    pub message: String,
    /// For a 422: each field's messages, by its dotted name
    /// (`attachments.0`).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    pub errors: Option<serde_json::Map<String, serde_json::Value>>,
    /// Always `null`.
    #[schema(value_type = Option<Object>)]
    pub data: Option<()>,
    /// The request's id, as a UUID.
    pub request_id: String,
    /// When the refusal was made.
    pub timestamp: String,
}

/// A message of a ticket.
#[derive(Debug, Serialize, ToSchema)]
pub struct WireMessage {
    /// Its integer id, unique across tickets.
    pub id: i64,
    /// Its text.
    pub message: String,
    /// `client` or `support`.
    pub sender: Sender,
    /// The sender's name when they sent it.
    pub sender_name: String,
    /// Its files: each a URL that downloads it with the same bearer key.
    pub attachments: Vec<String>,
    /// When it was sent.
    pub created_at: String,
}

impl WireMessage {
    /// `message` as shown; its files' download URLs start with
    /// `public_url`.
    pub fn of(message: &Message, public_url: &str) -> Self {
        Self {
            id: message.numeric_id,
            message: message.body.clone(),
            sender: message.sender_role.into(),
            sender_name: message.sender_name.clone(),
            attachments: message
                .attachments
                .iter()
                .map(|file| {
                    format!(
                        "{public_url}/api/v2/support/tickets/{}/messages/{}/attachments/{}",
                        message.ticket_id, message.id, file.id
                    )
                })
                .collect(),
            created_at: data_time(message.sent_at),
        }
    }
}

/// A ticket as a list shows it.
#[derive(Debug, Serialize, ToSchema)]
pub struct TicketListRow {
    /// Its number in the agency.
    pub id: i64,
    /// `TK-<year>-<number>`.
    pub reference: String,
    /// Its subject.
    pub subject: String,
    /// Its status.
    pub status: Status,
    /// Its priority.
    pub priority: WirePriority,
    /// Its category, or `null` for a ticket opened through an API that
    /// gave none.
    pub category: Option<String>,
    /// The opening of its latest message (at most 100 characters, then
    /// `...`), or `"[encrypted message]"` for a sealed one.
    pub last_message: String,
    /// When its latest message was sent.
    pub last_message_at: String,
    /// Messages you have not read.
    pub unread_count: i64,
    /// When it was opened.
    pub created_at: String,
}

/// What a list shows of a sealed latest message.
pub const SEALED_PREVIEW: &str = "[encrypted message]";

impl From<&TicketRow> for TicketListRow {
    fn from(row: &TicketRow) -> Self {
        let ticket = &row.ticket;
        let last_message = match &row.last_message {
            MessagePreview::Sealed => SEALED_PREVIEW.to_owned(),
            MessagePreview::Text(text) => match text.char_indices().nth(MessagePreview::CHARS) {
                Some((cut, _)) => format!("{}...", &text[..cut]),
                None => text.clone(),
            },
        };
        Self {
            id: ticket.number,
            reference: reference_of(ticket),
            subject: ticket.subject.clone(),
            status: ticket.status.into(),
            priority: ticket.priority.into(),
            category: ticket.category.as_ref().map(|c| c.as_str().to_owned()),
            last_message,
            last_message_at: data_time(ticket.last_message_at),
            unread_count: row.unread_count,
            created_at: data_time(ticket.created_at),
        }
    }
}

/// The booking a ticket refers to: only its id, which ticketd keeps as
/// given (it holds no booking data).
#[derive(Debug, Serialize, ToSchema)]
pub struct Booking {
    /// The booking's id.
    pub id: i64,
}

/// A ticket with its messages.
#[derive(Debug, Serialize, ToSchema)]
pub struct TicketDetail {
    /// Its number in the agency.
    pub id: i64,
    /// `TK-<year>-<number>`.
    pub reference: String,
    /// Its subject.
    pub subject: String,
    /// Its status.
    pub status: Status,
    /// Its priority.
    pub priority: WirePriority,
    /// Its category, or `null`.
    pub category: Option<String>,
    /// The booking it is about, or `null`.
    pub booking: Option<Booking>,
    /// Its latest messages (at most 500), oldest first.
    pub messages: Vec<WireMessage>,
    /// When it was opened.
    pub created_at: String,
    /// When it last changed.
    pub updated_at: String,
}

impl TicketDetail {
    /// `ticket` with `messages`.
    pub fn new(ticket: &Ticket, messages: Vec<WireMessage>) -> Self {
        Self {
            id: ticket.number,
            reference: reference_of(ticket),
            subject: ticket.subject.clone(),
            status: ticket.status.into(),
            priority: ticket.priority.into(),
            category: ticket.category.as_ref().map(|c| c.as_str().to_owned()),
            booking: ticket.booking_id.map(|id| Booking { id }),
            messages,
            created_at: data_time(ticket.created_at),
            updated_at: data_time(ticket.updated_at),
        }
    }
}

/// An uploaded file.
#[derive(Debug, Serialize, ToSchema)]
pub struct WireUpload {
    /// Its integer id.
    pub id: i64,
    /// What to put in a message's `attachments` (within 24 hours).
    pub url: String,
    /// Its stored name.
    pub filename: String,
    /// The name it was sent with.
    pub original_filename: String,
    /// Its media type.
    pub mime_type: String,
    /// Its size in bytes.
    pub size: u64,
    /// Always `null`: ticketd files uploads by message, not collection.
    #[schema(value_type = Option<String>)]
    pub collection: Option<()>,
    /// Always `null`.
    #[schema(value_type = Option<String>)]
    pub model_type: Option<()>,
    /// Always `null`.
    #[schema(value_type = Option<i64>)]
    pub model_id: Option<()>,
    /// When it was uploaded.
    pub created_at: String,
}

impl WireUpload {
    /// `upload`, whose URL starts with `uploads_url`.
    pub fn of(upload: &Upload, uploads_url: &str) -> Self {
        Self {
            id: upload.numeric_id,
            url: format!("{uploads_url}{}", upload.id),
            filename: upload.filename.clone(),
            original_filename: upload.filename.clone(),
            mime_type: upload.content_type.clone(),
            size: upload.size,
            collection: None,
            model_type: None,
            model_id: None,
            created_at: data_time(upload.created_at),
        }
    }
}

/// `POST /api/v1/client/tickets` (documentation only: the body is read
/// field by field).
#[derive(Debug, Deserialize, ToSchema)]
pub struct CreateTicketRequest {
    /// 1 to 255 characters.
    #[schema(min_length = 1, max_length = 255, pattern = r"\S")]
    pub subject: String,
    /// The first message, 1 to 25,000 characters.
    #[schema(min_length = 1, max_length = 25000, pattern = r"\S")]
    pub message: String,
    /// What it is about: a lowercase token such as `vehicle_issue` or
    /// `billing`.
    #[schema(pattern = "^[a-z][a-z0-9_-]{0,63}$")]
    pub category: String,
    /// `low`, `normal` (the default), `high` or `critical`.
    pub priority: Option<WirePriority>,
    /// The booking it is about.
    #[schema(minimum = 1)]
    pub booking_id: Option<i64>,
    /// URLs from the upload endpoint (at most 10).
    pub attachments: Option<Vec<String>>,
}

/// `POST /api/v1/client/tickets/{ticket}/messages`.
#[derive(Debug, Deserialize, ToSchema)]
pub struct AddMessageRequest {
    /// 1 to 25,000 characters.
    #[schema(min_length = 1, max_length = 25000, pattern = r"\S")]
    pub message: String,
    /// URLs from the upload endpoint (at most 10).
    pub attachments: Option<Vec<String>>,
}
