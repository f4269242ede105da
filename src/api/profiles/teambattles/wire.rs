//! TeamBattles' wire types: what the `teambattles-sdk` models parse, with
//! exactly their JSON types (an integer `ticketNumber`, string or `null`
//! times, enum values spelled as TeamBattles spells them).

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::core::message::Message;
use crate::core::ticket::{Priority, Ticket, TicketStatus};
use crate::core::time::Timestamp;

/// A ticket's status, as TeamBattles spells it (the same five as ticketd's).
#[derive(Debug, Clone, Copy, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    /// Waiting on support.
    Open,
    /// Support is working on it.
    InProgress,
    /// Waiting on you.
    AwaitingResponse,
    /// Support considers it solved.
    Resolved,
    /// Done; replies are refused.
    Closed,
}

impl From<TicketStatus> for Status {
    fn from(status: TicketStatus) -> Self {
        match status {
            TicketStatus::Open => Status::Open,
            TicketStatus::InProgress => Status::InProgress,
            TicketStatus::AwaitingResponse => Status::AwaitingResponse,
            TicketStatus::Resolved => Status::Resolved,
            TicketStatus::Closed => Status::Closed,
        }
    }
}

/// A ticket's priority: ticketd's `normal` is TeamBattles' `medium`.
#[derive(Debug, Clone, Copy, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum WirePriority {
    /// `low`.
    Low,
    /// `medium` (ticketd's `normal`).
    Medium,
    /// `high`.
    High,
    /// `urgent`.
    Urgent,
}

impl From<Priority> for WirePriority {
    fn from(priority: Priority) -> Self {
        match priority {
            Priority::Low => WirePriority::Low,
            Priority::Normal => WirePriority::Medium,
            Priority::High => WirePriority::High,
            Priority::Urgent => WirePriority::Urgent,
        }
    }
}

/// The categories a ticket may be opened with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum CreateCategory {
    /// Account and sign-in.
    Account,
    /// Something does not work.
    TechnicalBug,
    /// Something to add.
    FeatureRequest,
    /// Payments.
    Billing,
    /// Anything else.
    Other,
}

impl CreateCategory {
    /// Every category, in the order the contract lists them.
    pub const ALL: [CreateCategory; 5] = [
        CreateCategory::Account,
        CreateCategory::TechnicalBug,
        CreateCategory::FeatureRequest,
        CreateCategory::Billing,
        CreateCategory::Other,
    ];

    /// Its name.
    pub fn as_str(self) -> &'static str {
        match self {
            CreateCategory::Account => "account",
            CreateCategory::TechnicalBug => "technical_bug",
            CreateCategory::FeatureRequest => "feature_request",
            CreateCategory::Billing => "billing",
            CreateCategory::Other => "other",
        }
    }
}

/// A ticket in a list.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct TicketSummary {
    /// The ticket's id.
    #[schema(example = "tkt_01hxa3b4c5d6e7f8g9h0j1k2m3")]
    pub id: String,
    /// Its number, counting from 1.
    #[schema(example = 42)]
    pub ticket_number: i64,
    /// Its subject.
    pub subject: String,
    /// Its category (`other` for a ticket opened without one).
    #[schema(example = "technical_bug")]
    pub category: String,
    /// Its status.
    pub status: Status,
    /// Its priority.
    pub priority: WirePriority,
    /// When it was opened (ISO 8601).
    #[schema(example = "2026-04-27T12:00:00.000Z")]
    pub created_at: Option<String>,
    /// When anything about it last changed (ISO 8601).
    #[schema(example = "2026-04-27T12:00:00.000Z")]
    pub updated_at: Option<String>,
}

/// The category a ticket is shown with.
fn category_of(ticket: &Ticket) -> String {
    ticket
        .category
        .as_ref()
        .map_or("other", |category| category.as_str())
        .to_owned()
}

impl From<&Ticket> for TicketSummary {
    fn from(ticket: &Ticket) -> Self {
        Self {
            id: ticket.id.to_string(),
            ticket_number: ticket.number,
            subject: ticket.subject.clone(),
            category: category_of(ticket),
            status: ticket.status.into(),
            priority: ticket.priority.into(),
            created_at: Some(ticket.created_at.to_string()),
            updated_at: Some(ticket.updated_at.to_string()),
        }
    }
}

/// A page of your tickets, newest first.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct TicketList {
    /// The tickets.
    pub data: Vec<TicketSummary>,
    /// Pass as `cursor` for the next page; `null` on the last.
    pub next_cursor: Option<String>,
    /// Whether another page follows.
    pub has_more: bool,
    /// When the response was made (ISO 8601).
    pub timestamp: String,
}

/// A message of a ticket's thread.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ThreadMessage {
    /// The message's id.
    #[schema(example = "tmsg_01hxa3b4c5d6e7f8g9h0j1k2m3")]
    pub id: String,
    /// Its text.
    pub content: String,
    /// Whether the system wrote it (never, here).
    pub is_system: bool,
    /// Whether you wrote it.
    pub is_own_message: bool,
    /// When it was sent (ISO 8601).
    pub created_at: Option<String>,
    /// The storage ids of the images it carries (ticketd's addition).
    pub images: Vec<String>,
}

impl ThreadMessage {
    /// `message` as the user `reader` sees it.
    pub fn of(message: &Message, reader: crate::core::id::UserId) -> Self {
        Self {
            id: message.id.to_string(),
            content: message.body.clone(),
            is_system: false,
            is_own_message: message.sender_id == reader,
            created_at: Some(message.sent_at.to_string()),
            images: message
                .attachments
                .iter()
                .map(|attachment| attachment.id.to_string())
                .collect(),
        }
    }
}

/// One of your tickets, with its thread.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct TicketDetail {
    /// The ticket's id.
    pub id: String,
    /// Its number, counting from 1.
    pub ticket_number: i64,
    /// Its subject.
    pub subject: String,
    /// The text it was opened with.
    pub description: String,
    /// Its category.
    pub category: String,
    /// Its status.
    pub status: Status,
    /// Its priority.
    pub priority: WirePriority,
    /// When it was opened.
    pub created_at: Option<String>,
    /// When anything about it last changed.
    pub updated_at: Option<String>,
    /// When it was resolved, while it is.
    pub resolved_at: Option<String>,
    /// When it was closed, while it is.
    pub closed_at: Option<String>,
    /// The replies after the opening text, oldest first (of a longer
    /// thread, the latest [`super::THREAD_MESSAGES`] within
    /// [`super::THREAD_BYTES`] of text).
    pub messages: Vec<ThreadMessage>,
    /// When the response was made (ISO 8601).
    pub timestamp: String,
}

impl TicketDetail {
    /// `ticket` opened with `description`, with `messages`, as of `now`.
    pub fn new(
        ticket: &Ticket,
        description: String,
        messages: Vec<ThreadMessage>,
        now: Timestamp,
    ) -> Self {
        Self {
            id: ticket.id.to_string(),
            ticket_number: ticket.number,
            subject: ticket.subject.clone(),
            description,
            category: category_of(ticket),
            status: ticket.status.into(),
            priority: ticket.priority.into(),
            created_at: Some(ticket.created_at.to_string()),
            updated_at: Some(ticket.updated_at.to_string()),
            resolved_at: ticket.resolved_at.map(|at| at.to_string()),
            closed_at: ticket.closed_at.map(|at| at.to_string()),
            messages,
            timestamp: now.to_string(),
        }
    }
}

/// A new ticket.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
#[allow(
    dead_code,
    reason = "the request body's schema, read by the handler through Fields"
)]
pub struct CreateTicketRequest {
    /// What it is about, 1 to 150 characters.
    #[schema(min_length = 1, max_length = 150)]
    pub subject: String,
    /// The problem, 1 to 2000 characters.
    #[schema(min_length = 1, max_length = 2000)]
    pub description: String,
    /// What kind of problem it is.
    pub category: CreateCategory,
    /// Storage ids from the image upload URL, at most 10.
    #[schema(max_items = 10)]
    pub images: Option<Vec<String>>,
}

/// The ticket was opened.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct TicketCreated {
    /// Always `true`.
    pub success: bool,
    /// The new ticket's id.
    pub ticket_id: String,
    /// Its number.
    pub ticket_number: i64,
    /// When the response was made (ISO 8601).
    pub timestamp: String,
}

/// A reply.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
#[allow(
    dead_code,
    reason = "the request body's schema, read by the handler through Fields"
)]
pub struct ReplyRequest {
    /// The reply, 1 to 2000 characters.
    #[schema(min_length = 1, max_length = 2000)]
    pub content: String,
    /// Storage ids from the image upload URL, at most 10.
    #[schema(max_items = 10)]
    pub images: Option<Vec<String>>,
}

/// The reply was added.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ReplyCreated {
    /// Always `true`.
    pub success: bool,
    /// The new message's id.
    pub message_id: String,
    /// When the response was made (ISO 8601).
    pub timestamp: String,
}

/// Where to send one image.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct UploadUrl {
    /// `POST` the image's bytes here, with its `Content-Type` and no API
    /// key; it works once, for 15 minutes unless configured otherwise.
    pub upload_url: String,
}

/// The image was stored.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct StoredImage {
    /// Name it in `images` of a new ticket or a reply.
    pub storage_id: String,
}

/// An error.
#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorBody {
    /// What went wrong, for programs (`TICKET_NOT_FOUND`,
    /// `error_invalid_request`, ...).
    pub error: String,
    /// What went wrong, for people.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub details: Option<String>,
}
