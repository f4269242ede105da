//! AppHandoff's wire types: UUID ids, snake_case members, `author_type`
//! for who wrote a message, and its error schema.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::core::access::Role;
use crate::core::message::{BodyFormat, Message};
use crate::core::ticket::{Priority, Ticket, TicketStatus};

/// Who wrote a message: a person (a customer or staff) or an agent (an
/// automation).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum AuthorType {
    /// A customer or a staff member.
    Human,
    /// An automation.
    Agent,
}

impl From<Role> for AuthorType {
    fn from(role: Role) -> Self {
        match role {
            Role::Customer | Role::Staff => AuthorType::Human,
            Role::Automation => AuthorType::Agent,
        }
    }
}

/// How a body is meant to be rendered.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum WireBodyFormat {
    /// Markdown.
    Markdown,
    /// Plain text.
    Plain,
}

impl WireBodyFormat {
    /// Both formats.
    pub const ALL: [WireBodyFormat; 2] = [WireBodyFormat::Markdown, WireBodyFormat::Plain];

    /// Its wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            WireBodyFormat::Markdown => "markdown",
            WireBodyFormat::Plain => "plain",
        }
    }

    /// The core's format.
    pub fn core(self) -> BodyFormat {
        match self {
            WireBodyFormat::Markdown => BodyFormat::Markdown,
            WireBodyFormat::Plain => BodyFormat::Plain,
        }
    }
}

impl From<BodyFormat> for WireBodyFormat {
    fn from(format: BodyFormat) -> Self {
        match format {
            BodyFormat::Markdown => WireBodyFormat::Markdown,
            BodyFormat::Plain => WireBodyFormat::Plain,
        }
    }
}

/// A message as the post answers it.
#[derive(Debug, Serialize, ToSchema)]
pub struct CreatedMessage {
    /// Its id, as a UUID.
    #[schema(format = "uuid")]
    pub id: String,
    /// `human` or `agent`.
    pub author_type: AuthorType,
    /// The sender's user id, as a UUID.
    #[schema(format = "uuid")]
    pub author_id: Option<String>,
    /// The text, as sent.
    pub body: String,
    /// When it was sent.
    #[schema(format = DateTime)]
    pub created_at: String,
}

impl From<&Message> for CreatedMessage {
    fn from(message: &Message) -> Self {
        Self {
            id: message.id.to_uuid(),
            author_type: message.sender_role.into(),
            author_id: Some(message.sender_id.to_uuid()),
            body: message.body.clone(),
            created_at: message.sent_at.to_string(),
        }
    }
}

/// `201`: `{message}`.
#[derive(Debug, Serialize, ToSchema)]
pub struct MessageCreated {
    /// The message.
    pub message: CreatedMessage,
}

/// A message as a list shows it.
#[derive(Debug, Serialize, ToSchema)]
pub struct ListedMessage {
    /// Its id, as a UUID.
    #[schema(format = "uuid")]
    pub id: String,
    /// `human` or `agent`.
    pub author_type: AuthorType,
    /// The sender's user id, as a UUID.
    #[schema(format = "uuid")]
    pub author_id: Option<String>,
    /// The text, as sent.
    pub body: String,
    /// The client task it belongs to, or `null`.
    #[schema(format = "uuid")]
    pub task_id: Option<String>,
    /// How the body is meant to be rendered.
    pub body_format: Option<WireBodyFormat>,
    /// When it was sent.
    #[schema(format = DateTime)]
    pub created_at: String,
}

impl From<&Message> for ListedMessage {
    fn from(message: &Message) -> Self {
        Self {
            id: message.id.to_uuid(),
            author_type: message.sender_role.into(),
            author_id: Some(message.sender_id.to_uuid()),
            body: message.body.clone(),
            task_id: message.task.map(|task| task.to_uuid()),
            body_format: Some(message.body_format.into()),
            created_at: message.sent_at.to_string(),
        }
    }
}

/// `200`: `{messages}`, oldest first.
#[derive(Debug, Serialize, ToSchema)]
pub struct MessageList {
    /// The messages.
    pub messages: Vec<ListedMessage>,
}

/// One validation issue: the field's path (Zod's, joined with dots) and
/// what is wrong.
#[derive(Debug, Serialize, ToSchema)]
pub struct Issue {
    /// The field: `body`, `task_id`, `ticketId`, ...
    pub path: String,
    /// What is wrong with it.
    pub message: String,
}

/// Every refusal: `{error, code, fieldErrors?, issues?, retryAfter?}`.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ErrorBody {
    /// What went wrong, for people.
    pub error: String,
    /// What went wrong, for programs: `VALIDATION_ERROR`, `UNAUTHORIZED`,
    /// `FORBIDDEN`, `NOT_FOUND`, `TICKET_CLOSED`, `RATE_LIMITED`, ...
    pub code: String,
    /// The first message for each field path.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<std::collections::HashMap<String, String>>)]
    pub field_errors: Option<serde_json::Map<String, serde_json::Value>>,
    /// Every validation issue.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub issues: Option<Vec<Issue>>,
    /// For a 429: the seconds until a retry may succeed, as `Retry-After`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub retry_after: Option<u64>,
}

/// `POST .../messages` (documentation only: the body is read field by
/// field).
#[derive(Debug, Deserialize, ToSchema)]
pub struct PostMessageRequest {
    /// 1 to 25,000 characters, counted in UTF-16 code units.
    #[schema(min_length = 1, max_length = 25000, pattern = r"\S")]
    pub body: String,
    /// The client task the message belongs to.
    #[schema(format = "uuid")]
    pub task_id: Option<String>,
    /// `markdown` or `plain` (the default).
    pub body_format: Option<WireBodyFormat>,
}

/// A ticket's `status`, `stage`, `priority` and `blocking` as AppHandoff
/// spells them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Board {
    /// `open` or `closed`.
    pub status: &'static str,
    /// `backlog`, `in_progress`, `validation` or `live`.
    pub stage: &'static str,
    /// `low`, `medium` or `high`.
    pub priority: &'static str,
    /// Whether it blocks work: ticketd's `urgent` priority.
    pub blocking: bool,
}

impl Board {
    /// Where a ticket of `status` and `priority` stands.
    pub fn of(status: TicketStatus, priority: Priority) -> Self {
        let (status, stage) = match status {
            TicketStatus::Open => ("open", "backlog"),
            TicketStatus::InProgress | TicketStatus::AwaitingResponse => ("open", "in_progress"),
            TicketStatus::Resolved => ("open", "validation"),
            TicketStatus::Closed => ("closed", "live"),
        };
        let (priority, blocking) = match priority {
            Priority::Low => ("low", false),
            Priority::Normal => ("medium", false),
            Priority::High => ("high", false),
            Priority::Urgent => ("high", true),
        };
        Self {
            status,
            stage,
            priority,
            blocking,
        }
    }
}

/// A priority as a new ticket names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum WirePriority {
    /// `low`.
    Low,
    /// `medium` (ticketd's `normal`).
    Medium,
    /// `high`.
    High,
}

impl WirePriority {
    /// Every priority.
    pub const ALL: [WirePriority; 3] =
        [WirePriority::Low, WirePriority::Medium, WirePriority::High];

    /// Its wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            WirePriority::Low => "low",
            WirePriority::Medium => "medium",
            WirePriority::High => "high",
        }
    }

    /// The core's priority: a `blocking` ticket is `urgent`.
    pub fn core(self, blocking: bool) -> Priority {
        match (self, blocking) {
            (_, true) => Priority::Urgent,
            (WirePriority::Low, false) => Priority::Low,
            (WirePriority::Medium, false) => Priority::Normal,
            (WirePriority::High, false) => Priority::High,
        }
    }
}

/// What a new ticket asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum RequestType {
    /// `bug`.
    Bug,
    /// `clarification_needed`.
    ClarificationNeeded,
    /// `decision_needed`.
    DecisionNeeded,
    /// `feature_request`.
    FeatureRequest,
}

impl RequestType {
    /// Every request type.
    pub const ALL: [RequestType; 4] = [
        RequestType::Bug,
        RequestType::ClarificationNeeded,
        RequestType::DecisionNeeded,
        RequestType::FeatureRequest,
    ];

    /// Its wire name, which is also the ticket's category.
    pub fn as_str(self) -> &'static str {
        match self {
            RequestType::Bug => "bug",
            RequestType::ClarificationNeeded => "clarification_needed",
            RequestType::DecisionNeeded => "decision_needed",
            RequestType::FeatureRequest => "feature_request",
        }
    }
}

/// A ticket as a list shows it.
#[derive(Debug, Serialize, ToSchema)]
pub struct TicketRow {
    /// Its id, as a UUID.
    #[schema(format = "uuid")]
    pub id: String,
    /// Its project's id, as a UUID.
    #[schema(format = "uuid")]
    pub project_id: String,
    /// Its number in the project.
    pub number: i64,
    /// `HO-<number>-<project code, in lowercase>`.
    #[serde(rename = "ref")]
    pub reference: String,
    /// Its title.
    pub title: String,
    /// What it asks for (the ticket's category), or `null`.
    pub request_type: Option<String>,
    /// The same, by its other name.
    pub category: Option<String>,
    /// `open` or `closed`.
    pub status: String,
    /// `backlog`, `in_progress`, `validation` or `live`.
    pub stage: String,
    /// `low`, `medium` or `high`.
    pub priority: String,
    /// The same, by its other name.
    pub severity: String,
    /// Whether it blocks work.
    pub blocking: bool,
    /// When it was opened.
    #[schema(format = DateTime)]
    pub created_at: String,
    /// When it last changed.
    #[schema(format = DateTime)]
    pub updated_at: Option<String>,
}

impl TicketRow {
    /// `ticket` of the project `project` (its UUID and code).
    pub fn of(ticket: &Ticket, project: &str, code: &str) -> Self {
        let board = Board::of(ticket.status, ticket.priority);
        let category = ticket.category.as_ref().map(|c| c.as_str().to_owned());
        Self {
            id: ticket.id.to_uuid(),
            project_id: project.to_owned(),
            number: ticket.number,
            reference: format!("HO-{}-{}", ticket.number, code.to_ascii_lowercase()),
            title: ticket.subject.clone(),
            request_type: category.clone(),
            category,
            status: board.status.to_owned(),
            stage: board.stage.to_owned(),
            priority: board.priority.to_owned(),
            severity: board.priority.to_owned(),
            blocking: board.blocking,
            created_at: ticket.created_at.to_string(),
            updated_at: Some(ticket.updated_at.to_string()),
        }
    }
}

/// `200`: `{tickets, next_cursor}`.
#[derive(Debug, Serialize, ToSchema)]
pub struct TicketList {
    /// The tickets, most recent activity first.
    pub tickets: Vec<TicketRow>,
    /// The `cursor` of the next page, or `null` after the last.
    pub next_cursor: Option<String>,
}

/// A new ticket as the create answers it.
#[derive(Debug, Serialize, ToSchema)]
pub struct NewTicketView {
    /// Its id, as a UUID.
    #[schema(format = "uuid")]
    pub id: String,
    /// `open`.
    pub status: String,
    /// `backlog`.
    pub stage: String,
    /// Always empty: ticketd keeps no roles.
    pub roles: Vec<String>,
    /// When it was opened.
    #[schema(format = DateTime)]
    pub created_at: String,
}

/// `201`: `{ticket}`.
#[derive(Debug, Serialize, ToSchema)]
pub struct TicketCreated {
    /// The ticket.
    pub ticket: NewTicketView,
}

/// `POST .../tickets` (documentation only: the body is read field by
/// field).
#[derive(Debug, Deserialize, ToSchema)]
pub struct CreateTicketRequest {
    /// 5 to 140 characters.
    #[schema(min_length = 5, max_length = 140, pattern = r"\S")]
    pub title: String,
    /// 10 to 5,000 characters: the ticket's first message.
    #[schema(min_length = 10, max_length = 5000, pattern = r"\S")]
    pub description: String,
    /// What the ticket asks for.
    pub request_type: RequestType,
    /// How urgent it is.
    pub priority: WirePriority,
    /// Whether it blocks work (ticketd keeps it as the `urgent` priority).
    pub blocking: bool,
}
