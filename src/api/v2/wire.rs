//! Wire forms of the core's enumerations, so the OpenAPI document lists
//! their values.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::core::access::Role;
use crate::core::message::BodyFormat;
use crate::core::ticket::{Priority, TicketStatus};

/// A ticket's status.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
#[schema(as = TicketStatus)]
pub enum WireStatus {
    /// Waiting on staff.
    Open,
    /// Staff are working on it.
    InProgress,
    /// Waiting on the customer.
    AwaitingResponse,
    /// Solved; a reply or reopen brings it back.
    Resolved,
    /// Closed; reopen it before replying.
    Closed,
}

impl From<TicketStatus> for WireStatus {
    fn from(status: TicketStatus) -> Self {
        match status {
            TicketStatus::Open => WireStatus::Open,
            TicketStatus::InProgress => WireStatus::InProgress,
            TicketStatus::AwaitingResponse => WireStatus::AwaitingResponse,
            TicketStatus::Resolved => WireStatus::Resolved,
            TicketStatus::Closed => WireStatus::Closed,
        }
    }
}

/// A ticket's priority.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
#[schema(as = TicketPriority)]
pub enum WirePriority {
    /// Can wait.
    Low,
    /// The default.
    Normal,
    /// Soon.
    High,
    /// Now.
    Urgent,
}

impl From<Priority> for WirePriority {
    fn from(priority: Priority) -> Self {
        match priority {
            Priority::Low => WirePriority::Low,
            Priority::Normal => WirePriority::Normal,
            Priority::High => WirePriority::High,
            Priority::Urgent => WirePriority::Urgent,
        }
    }
}

/// The role of a message's sender.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
#[schema(as = SenderRole)]
pub enum WireRole {
    /// The ticket's customer.
    Customer,
    /// A person at the business.
    Staff,
    /// A bot or AI agent acting for the business.
    Automation,
}

impl From<Role> for WireRole {
    fn from(role: Role) -> Self {
        match role {
            Role::Customer => WireRole::Customer,
            Role::Staff => WireRole::Staff,
            Role::Automation => WireRole::Automation,
        }
    }
}

/// How a message body is meant to be rendered.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
#[schema(as = BodyFormat)]
pub enum WireBodyFormat {
    /// Plain text.
    Plain,
    /// CommonMark Markdown.
    Markdown,
}

impl From<BodyFormat> for WireBodyFormat {
    fn from(format: BodyFormat) -> Self {
        match format {
            BodyFormat::Plain => WireBodyFormat::Plain,
            BodyFormat::Markdown => WireBodyFormat::Markdown,
        }
    }
}
