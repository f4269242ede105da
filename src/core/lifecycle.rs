//! The ticket lifecycle: one function from (state, event) to the next state.
//!
//! | event                      | from                                  | to                  |
//! |----------------------------|---------------------------------------|---------------------|
//! | customer opens             |                                       | `open`              |
//! | staff/automation opens     |                                       | `awaiting_response` |
//! | customer replies           | any but `closed`                      | `open`              |
//! | staff/automation replies   | any but `closed`                      | `awaiting_response` |
//! | mark in progress / resolve | any but `closed`                      | `in_progress` / `resolved` |
//! | close                      | any (`closed`: no-op)                 | `closed`            |
//! | reopen                     | `resolved`, `closed` (others: no-op)  | `open`              |
//! | any reply or staff mark    | `closed`                              | refused             |

use crate::core::access::Role;
use crate::core::ticket::TicketStatus;
use crate::core::time::Timestamp;

/// Something that happens to a ticket.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TicketEvent {
    /// A user with this role added a message.
    Replied(Role),
    /// Staff started working on it.
    MarkedInProgress,
    /// Staff consider it solved.
    Resolved,
    /// The owner or staff closed it.
    Closed,
    /// The owner or staff reopened it.
    Reopened,
}

/// A state change the API exposes as `POST /tickets/{id}/actions/{action}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TicketAction {
    /// `close`: the owner or staff.
    Close,
    /// `reopen`: the owner or staff.
    Reopen,
    /// `resolve`: staff and automation only.
    Resolve,
    /// `mark-in-progress`: staff and automation only.
    MarkInProgress,
}

impl TicketAction {
    /// The event the action causes.
    pub fn event(self) -> TicketEvent {
        match self {
            TicketAction::Close => TicketEvent::Closed,
            TicketAction::Reopen => TicketEvent::Reopened,
            TicketAction::Resolve => TicketEvent::Resolved,
            TicketAction::MarkInProgress => TicketEvent::MarkedInProgress,
        }
    }

    /// Whether a user with `role` who can see the ticket may take the action.
    pub fn permitted_for(self, role: Role) -> bool {
        match self {
            TicketAction::Close | TicketAction::Reopen => true,
            TicketAction::Resolve | TicketAction::MarkInProgress => role.is_agent(),
        }
    }
}

/// The part of a ticket the lifecycle governs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LifecycleState {
    /// Current status.
    pub status: TicketStatus,
    /// Set while the ticket is resolved.
    pub resolved_at: Option<Timestamp>,
    /// Set while the ticket is closed.
    pub closed_at: Option<Timestamp>,
}

impl LifecycleState {
    /// The state of a ticket just opened by a user with `role`.
    pub fn opened_by(role: Role) -> Self {
        let status = if role.is_agent() {
            TicketStatus::AwaitingResponse
        } else {
            TicketStatus::Open
        };
        Self::entering(status, Timestamp::from_millis(0))
    }

    fn entering(status: TicketStatus, now: Timestamp) -> Self {
        Self {
            status,
            resolved_at: (status == TicketStatus::Resolved).then_some(now),
            closed_at: (status == TicketStatus::Closed).then_some(now),
        }
    }
}

/// Why an event was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum LifecycleError {
    /// The ticket is closed; it must be reopened first.
    #[error("the ticket is closed; reopen it first")]
    TicketClosed,
}

/// What an event does to a ticket.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transition {
    /// The ticket moves to (or stays in, with a fresh timestamp) this state.
    To(LifecycleState),
    /// Nothing changes (closing a closed ticket, reopening an open one).
    Unchanged,
}

impl Transition {
    /// The state a ticket in `state` is in after the transition.
    pub fn applied_to(self, state: LifecycleState) -> LifecycleState {
        match self {
            Transition::To(next) => next,
            Transition::Unchanged => state,
        }
    }
}

/// Applies `event` at `now` to a ticket in `state`.
///
/// # Errors
/// [`LifecycleError::TicketClosed`] for a reply or staff mark on a closed ticket.
pub fn transition(
    state: LifecycleState,
    event: TicketEvent,
    now: Timestamp,
) -> Result<Transition, LifecycleError> {
    use TicketStatus::{AwaitingResponse, Closed, InProgress, Open, Resolved};

    let target = match (state.status, event) {
        (Closed, TicketEvent::Closed) => return Ok(Transition::Unchanged),
        (_, TicketEvent::Closed) => Closed,
        (Resolved | Closed, TicketEvent::Reopened) => Open,
        (_, TicketEvent::Reopened) => return Ok(Transition::Unchanged),
        (Closed, _) => return Err(LifecycleError::TicketClosed),
        (_, TicketEvent::Replied(role)) if role.is_agent() => AwaitingResponse,
        (_, TicketEvent::Replied(_)) => Open,
        (Resolved, TicketEvent::Resolved) => return Ok(Transition::Unchanged),
        (_, TicketEvent::Resolved) => Resolved,
        (InProgress, TicketEvent::MarkedInProgress) => return Ok(Transition::Unchanged),
        (_, TicketEvent::MarkedInProgress) => InProgress,
    };
    Ok(Transition::To(LifecycleState::entering(target, now)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use TicketStatus::{AwaitingResponse, Closed, InProgress, Open, Resolved};

    const NOW: Timestamp = Timestamp::from_millis(1_777_291_200_000);

    fn state(status: TicketStatus) -> LifecycleState {
        LifecycleState::entering(status, Timestamp::from_millis(1))
    }

    /// (from, event, expected status after; `None` = unchanged; `Err` = refused)
    #[test]
    fn transition_table() {
        let customer = TicketEvent::Replied(Role::Customer);
        let staff = TicketEvent::Replied(Role::Staff);
        let bot = TicketEvent::Replied(Role::Automation);
        let refused = Err(LifecycleError::TicketClosed);
        let table: Vec<(
            TicketStatus,
            TicketEvent,
            Result<Option<TicketStatus>, LifecycleError>,
        )> = vec![
            (Open, customer, Ok(Some(Open))),
            (InProgress, customer, Ok(Some(Open))),
            (AwaitingResponse, customer, Ok(Some(Open))),
            (Resolved, customer, Ok(Some(Open))),
            (Closed, customer, refused),
            (Open, staff, Ok(Some(AwaitingResponse))),
            (InProgress, staff, Ok(Some(AwaitingResponse))),
            (AwaitingResponse, bot, Ok(Some(AwaitingResponse))),
            (Resolved, bot, Ok(Some(AwaitingResponse))),
            (Closed, staff, refused),
            (Closed, bot, refused),
            (Open, TicketEvent::MarkedInProgress, Ok(Some(InProgress))),
            (
                AwaitingResponse,
                TicketEvent::MarkedInProgress,
                Ok(Some(InProgress)),
            ),
            (
                Resolved,
                TicketEvent::MarkedInProgress,
                Ok(Some(InProgress)),
            ),
            (InProgress, TicketEvent::MarkedInProgress, Ok(None)),
            (Closed, TicketEvent::MarkedInProgress, refused),
            (Open, TicketEvent::Resolved, Ok(Some(Resolved))),
            (InProgress, TicketEvent::Resolved, Ok(Some(Resolved))),
            (AwaitingResponse, TicketEvent::Resolved, Ok(Some(Resolved))),
            (Resolved, TicketEvent::Resolved, Ok(None)),
            (Closed, TicketEvent::Resolved, refused),
            (Open, TicketEvent::Closed, Ok(Some(Closed))),
            (InProgress, TicketEvent::Closed, Ok(Some(Closed))),
            (AwaitingResponse, TicketEvent::Closed, Ok(Some(Closed))),
            (Resolved, TicketEvent::Closed, Ok(Some(Closed))),
            (Closed, TicketEvent::Closed, Ok(None)),
            (Resolved, TicketEvent::Reopened, Ok(Some(Open))),
            (Closed, TicketEvent::Reopened, Ok(Some(Open))),
            (Open, TicketEvent::Reopened, Ok(None)),
            (InProgress, TicketEvent::Reopened, Ok(None)),
            (AwaitingResponse, TicketEvent::Reopened, Ok(None)),
        ];
        for (from, event, expected) in table {
            let actual = transition(state(from), event, NOW).map(|t| match t {
                Transition::To(next) => Some(next.status),
                Transition::Unchanged => None,
            });
            assert_eq!(actual, expected, "{from:?} + {event:?}");
        }
    }

    #[test]
    fn timestamps_follow_the_status() {
        let resolved = transition(state(Open), TicketEvent::Resolved, NOW);
        let Ok(Transition::To(resolved)) = resolved else {
            panic!("resolve must change an open ticket: {resolved:?}");
        };
        assert_eq!(
            (resolved.resolved_at, resolved.closed_at),
            (Some(NOW), None)
        );

        let closed = transition(resolved, TicketEvent::Closed, NOW);
        assert!(
            matches!(closed, Ok(Transition::To(s)) if s.closed_at == Some(NOW) && s.resolved_at.is_none())
        );

        let reopened = transition(state(Closed), TicketEvent::Reopened, NOW);
        assert!(
            matches!(reopened, Ok(Transition::To(s)) if s.closed_at.is_none() && s.resolved_at.is_none())
        );
    }

    #[test]
    fn opening_role_sets_the_first_status() {
        assert_eq!(LifecycleState::opened_by(Role::Customer).status, Open);
        assert_eq!(
            LifecycleState::opened_by(Role::Staff).status,
            AwaitingResponse
        );
        assert_eq!(
            LifecycleState::opened_by(Role::Automation).status,
            AwaitingResponse
        );
    }

    #[test]
    fn only_agents_mark_and_resolve() {
        for action in [TicketAction::Close, TicketAction::Reopen] {
            assert!(Role::ALL.into_iter().all(|role| action.permitted_for(role)));
        }
        for action in [TicketAction::Resolve, TicketAction::MarkInProgress] {
            assert!(!action.permitted_for(Role::Customer));
            assert!(action.permitted_for(Role::Staff) && action.permitted_for(Role::Automation));
        }
    }
}
