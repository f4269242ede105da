//! AppHandoff's wire types: UUID ids, snake_case members, `author_type`
//! for who wrote a message, and its error schema.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::core::access::Role;
use crate::core::message::{BodyFormat, Message};

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
