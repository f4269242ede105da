//! What a write does, decided before any SQL runs: both backends read a
//! snapshot of the ticket (its [`Thread`]), call one of these pure
//! functions, and write exactly the records it returns, so the rules
//! (numbering, times that never run backwards, the status a reply leads
//! to) live here once and the backends keep only their dialect's SQL.
//!
//! | write         | the plan decides                                                  |
//! |---------------|-------------------------------------------------------------------|
//! | open a ticket | its customer ([`customer_of_new_ticket`]), its first state and records ([`plan_open`]) |
//! | reply         | the message's `seq` and `sent_at`, the ticket's next state ([`plan_reply`]) |
//! | action        | the action's time and the ticket's next state, if any ([`plan_action`]) |

use crate::core::access::{Actor, Role};
use crate::core::id::{TicketId, UserId};
use crate::core::lifecycle::{self, LifecycleError, LifecycleState, TicketAction, TicketEvent};
use crate::core::message::{Message, NewMessage};
use crate::core::ticket::{NewTicket, Ticket, UserSummary};
use crate::core::time::Timestamp;

/// A ticket as a write finds it: what the lifecycle and the thread need.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Thread {
    /// The ticket.
    pub id: TicketId,
    /// Its lifecycle state.
    pub state: LifecycleState,
    /// How many messages it holds.
    pub message_count: i64,
    /// When its latest message was sent.
    pub last_message_at: Timestamp,
    /// How many files its messages carry.
    pub attachment_count: i64,
    /// The bytes of those files.
    pub attachment_bytes: u64,
}

/// Whose ticket a new ticket is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NewTicketCustomer {
    /// The actor's own (a customer opening a ticket).
    Actor(UserSummary),
    /// The customer with this id, if they are a customer of the actor's
    /// workspace (which the store looks up); otherwise the write fails with
    /// [`crate::store::StoreError::CustomerNotFound`].
    Named(UserId),
}

/// Who a ticket opened by `actor` belongs to. The role rule (whether the
/// actor may name a customer at all) is checked before, by the service
/// ([`crate::core::access::on_behalf_of`]); a ticket without a customer
/// opened by staff is refused here all the same.
///
/// # Errors
/// `None` if `actor` is not a customer and names nobody.
pub fn customer_of_new_ticket(actor: &Actor, new: &NewTicket) -> Option<NewTicketCustomer> {
    match new.on_behalf_of {
        Some(customer) => Some(NewTicketCustomer::Named(customer)),
        None if actor.role == Role::Customer => Some(NewTicketCustomer::Actor(UserSummary {
            id: actor.user_id,
            name: actor.name.clone(),
        })),
        None => None,
    }
}

/// The records opening a ticket writes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OpenPlan {
    /// The ticket as it will be stored.
    pub ticket: Ticket,
    /// Its first message (`seq` 1, sent when the ticket is created).
    pub first_message: Message,
}

/// The ticket `new`, numbered `number` in the actor's workspace and owned
/// by `customer`, with its first message.
pub fn plan_open(actor: &Actor, new: &NewTicket, customer: UserSummary, number: i64) -> OpenPlan {
    let state = LifecycleState::opened_by(actor.role);
    let at = new.first_message.sent_at;
    OpenPlan {
        ticket: Ticket {
            id: new.id,
            workspace_id: actor.workspace_id,
            number,
            subject: new.subject.as_str().to_owned(),
            status: state.status,
            priority: new.priority,
            category: new.category.clone(),
            booking_id: new.booking_id,
            customer,
            created_at: at,
            updated_at: at,
            last_message_at: at,
            message_count: 1,
            resolved_at: None,
            closed_at: None,
        },
        first_message: message_of(actor, new.id, 1, &new.first_message, at),
    }
}

/// What a reply writes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReplyPlan {
    /// The message as it will be stored.
    pub message: Message,
    /// The ticket's state afterwards (unchanged or not, it is written).
    pub next: LifecycleState,
}

/// The reply `new` by `actor` to `thread`: the next position in the thread,
/// a sending time no earlier than the thread's latest message (a thread's
/// times never run backwards, even if clocks do), and the state the
/// lifecycle moves the ticket to.
///
/// # Errors
/// [`LifecycleError::TicketClosed`] if the ticket is closed.
pub fn plan_reply(
    thread: &Thread,
    actor: &Actor,
    new: &NewMessage,
) -> Result<ReplyPlan, LifecycleError> {
    let sent_at = new.sent_at.max(thread.last_message_at);
    let next = lifecycle::transition(thread.state, TicketEvent::Replied(actor.role), sent_at)?
        .applied_to(thread.state);
    let seq = thread.message_count + 1;
    Ok(ReplyPlan {
        message: message_of(actor, thread.id, seq, new, sent_at),
        next,
    })
}

/// What an action writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ActionPlan {
    /// When it takes effect: like a reply, never before the thread's
    /// latest message.
    pub at: Timestamp,
    /// The ticket's new state; `None` if nothing changes.
    pub next: Option<LifecycleState>,
}

/// `action` taken on `thread` at `at`.
///
/// # Errors
/// [`LifecycleError::TicketClosed`] for a staff mark on a closed ticket.
pub fn plan_action(
    thread: &Thread,
    action: TicketAction,
    at: Timestamp,
) -> Result<ActionPlan, LifecycleError> {
    let at = at.max(thread.last_message_at);
    let next = match lifecycle::transition(thread.state, action.event(), at)? {
        lifecycle::Transition::To(next) => Some(next),
        lifecycle::Transition::Unchanged => None,
    };
    Ok(ActionPlan { at, next })
}

/// The stored form of `new`, sent by `actor` at `sent_at` as message `seq`
/// of `ticket_id`.
fn message_of(
    actor: &Actor,
    ticket_id: TicketId,
    seq: i64,
    new: &NewMessage,
    sent_at: Timestamp,
) -> Message {
    Message {
        // Given by the store as it writes the message.
        numeric_id: 0,
        id: new.id,
        ticket_id,
        seq,
        sent_at,
        body: new.body.as_str().to_owned(),
        body_format: new.body_format,
        encrypted: new.encrypted,
        sender_id: actor.user_id,
        sender_role: actor.role,
        sender_name: actor.name.clone(),
        // The store fills them in as it attaches the uploads.
        attachments: Vec::new(),
        task: new.task,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::access::TicketScope;
    use crate::core::id::{MessageId, WorkspaceId};
    use crate::core::message::BodyFormat;
    use crate::core::text::TextLimits;
    use crate::core::ticket::{Priority, TicketStatus};

    fn actor(role: Role) -> Actor {
        Actor {
            workspace_id: WorkspaceId::generate(),
            user_id: UserId::generate(),
            role,
            name: "Sam".into(),
            scope: TicketScope::ByRole,
        }
    }

    fn new_message(sent_at: i64) -> NewMessage {
        NewMessage {
            id: MessageId::generate(),
            body: TextLimits::default()
                .message("hello".into())
                .expect("a body"),
            body_format: BodyFormat::Plain,
            encrypted: false,
            sent_at: Timestamp::from_millis(sent_at),
            attachments: Vec::new(),
            attach_limits: Default::default(),
            task: None,
        }
    }

    fn thread(status: TicketStatus, count: i64, last: i64) -> Thread {
        Thread {
            id: TicketId::generate(),
            state: LifecycleState {
                status,
                resolved_at: None,
                closed_at: (status == TicketStatus::Closed).then(|| Timestamp::from_millis(1)),
            },
            message_count: count,
            last_message_at: Timestamp::from_millis(last),
            attachment_count: 0,
            attachment_bytes: 0,
        }
    }

    #[test]
    fn a_reply_takes_the_next_seq_and_never_runs_backwards() {
        let customer = actor(Role::Customer);
        let open = thread(TicketStatus::AwaitingResponse, 3, 500);
        let plan = plan_reply(&open, &customer, &new_message(400)).expect("a plan");
        assert_eq!(plan.message.seq, 4);
        assert_eq!(plan.message.sent_at, Timestamp::from_millis(500));
        assert_eq!(plan.message.ticket_id, open.id);
        assert_eq!(plan.message.sender_id, customer.user_id);
        assert_eq!(plan.next.status, TicketStatus::Open);
        let later = plan_reply(&open, &actor(Role::Staff), &new_message(900)).expect("a plan");
        assert_eq!(later.message.sent_at, Timestamp::from_millis(900));
        assert_eq!(later.next.status, TicketStatus::AwaitingResponse);
        let closed = thread(TicketStatus::Closed, 3, 500);
        assert_eq!(
            plan_reply(&closed, &customer, &new_message(900)),
            Err(LifecycleError::TicketClosed)
        );
    }

    #[test]
    fn an_action_changes_the_state_or_nothing() {
        let open = thread(TicketStatus::Open, 1, 500);
        let plan =
            plan_action(&open, TicketAction::Close, Timestamp::from_millis(100)).expect("a plan");
        assert_eq!(plan.at, Timestamp::from_millis(500));
        assert_eq!(
            plan.next.map(|state| state.status),
            Some(TicketStatus::Closed)
        );
        let reopen =
            plan_action(&open, TicketAction::Reopen, Timestamp::from_millis(900)).expect("a plan");
        assert_eq!(reopen.next, None);
        let closed = thread(TicketStatus::Closed, 1, 500);
        assert_eq!(
            plan_action(&closed, TicketAction::Resolve, Timestamp::from_millis(900)),
            Err(LifecycleError::TicketClosed)
        );
    }

    #[test]
    fn a_new_ticket_is_its_customers_with_message_one() {
        let customer = actor(Role::Customer);
        let new = NewTicket {
            id: TicketId::generate(),
            subject: TextLimits::default()
                .subject("Help".into())
                .expect("a subject"),
            priority: Priority::High,
            category: None,
            booking_id: None,
            on_behalf_of: None,
            first_message: new_message(700),
        };
        let Some(NewTicketCustomer::Actor(owner)) = customer_of_new_ticket(&customer, &new) else {
            panic!("a customer's own ticket");
        };
        assert_eq!(customer_of_new_ticket(&actor(Role::Staff), &new), None);
        let plan = plan_open(&customer, &new, owner, 7);
        assert_eq!(plan.ticket.number, 7);
        assert_eq!(plan.ticket.status, TicketStatus::Open);
        assert_eq!(plan.ticket.created_at, Timestamp::from_millis(700));
        assert_eq!(plan.first_message.seq, 1);
        assert_eq!(plan.first_message.ticket_id, new.id);
        let staff = actor(Role::Automation);
        let for_customer = NewTicket {
            on_behalf_of: Some(customer.user_id),
            ..new.clone()
        };
        assert_eq!(
            customer_of_new_ticket(&staff, &for_customer),
            Some(NewTicketCustomer::Named(customer.user_id))
        );
        let owner = UserSummary {
            id: customer.user_id,
            name: "Jane".into(),
        };
        let plan = plan_open(&staff, &for_customer, owner, 8);
        assert_eq!(plan.ticket.status, TicketStatus::AwaitingResponse);
        assert_eq!(plan.first_message.sender_role, Role::Automation);
    }
}
