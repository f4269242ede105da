//! [`Support`]: the ticket use cases over a [`Store`].

use std::sync::Arc;

use crate::core::access::{self, Actor, TicketScope};
use crate::core::id::{MessageId, TaskRef, TicketId, UploadId, UserId};
use crate::core::idempotency::ClaimToken;
use crate::core::lifecycle::TicketAction;
use crate::core::message::{BodyFormat, Message, MessageFilter, NewMessage};
use crate::core::page::{MessageCursor, Page, PageRequest, TicketCursor};
use crate::core::text::{MessageBody, Subject};
use crate::core::ticket::{
    Category, NewTicket, Priority, Ticket, TicketFilter, TicketRef, TicketRowQuery, TicketRows,
};
use crate::core::time::Timestamp;
use crate::core::upload::attach::AttachLimits;
use crate::service::ServiceError;
use crate::store::idempotency::Completion;
use crate::store::{Store, StoreError, Written};

/// Where the current time comes from.
pub trait Clock: Send + Sync {
    /// The current time.
    fn now(&self) -> Timestamp;
}

/// The system clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> Timestamp {
        Timestamp::now()
    }
}

/// Where the ids of new tickets, messages and uploads, the tokens of
/// idempotency claims and the nonces of upload URLs come from.
pub trait IdSource: Send + Sync {
    /// An id for a new ticket.
    fn ticket_id(&self) -> TicketId;
    /// An id for a new message.
    fn message_id(&self) -> MessageId;
    /// A token for a new idempotency claim.
    fn claim_token(&self) -> ClaimToken;
    /// An id for a new upload.
    fn upload_id(&self) -> UploadId;
    /// A nonce for a new pre-signed upload URL: never the same twice.
    fn url_nonce(&self) -> u128;
}

/// Fresh random ULIDs.
#[derive(Debug, Clone, Copy, Default)]
pub struct RandomIds;

impl IdSource for RandomIds {
    fn ticket_id(&self) -> TicketId {
        TicketId::generate()
    }

    fn message_id(&self) -> MessageId {
        MessageId::generate()
    }

    fn claim_token(&self) -> ClaimToken {
        ClaimToken::generate()
    }

    fn upload_id(&self) -> UploadId {
        UploadId::generate()
    }

    fn url_nonce(&self) -> u128 {
        // A ULID's 80 random bits beside its time: unique, which is all a
        // nonce needs (the URL's signature is what cannot be guessed).
        ulid::Ulid::new().0
    }
}

/// A message as its sender wrote it, validated, before it has an id or a
/// time.
#[derive(Debug, Clone)]
pub struct Draft {
    /// The text, within the configured limits.
    pub body: MessageBody,
    /// How the text is meant to be rendered.
    pub body_format: BodyFormat,
    /// Whether the sender marked it sensitive.
    pub encrypted: bool,
    /// The sender's uploads to attach, in order.
    pub attachments: Vec<UploadId>,
    /// The client's task it belongs to, if the sender says.
    pub task: Option<TaskRef>,
}

/// A ticket to open, as a request asks for it.
#[derive(Debug, Clone)]
pub struct OpenTicket {
    /// What the ticket is about.
    pub subject: Subject,
    /// How urgent the opener says it is.
    pub priority: Priority,
    /// What it is about, if the opener says.
    pub category: Option<Category>,
    /// An integer the opener's system refers to its subject by.
    pub booking_id: Option<i64>,
    /// The customer the ticket is for, as the request names one (staff and
    /// automation only: see [`access::on_behalf_of`]).
    pub customer: Option<UserId>,
    /// The first message.
    pub first_message: Draft,
}

/// The ticket use cases, shared by every API.
#[derive(Clone)]
pub struct Support {
    store: Arc<dyn Store>,
    clock: Arc<dyn Clock>,
    ids: Arc<dyn IdSource>,
    attach_limits: AttachLimits,
}

impl Support {
    /// The use cases over `store`, with the system clock and random ids.
    pub fn new(store: Arc<dyn Store>) -> Self {
        Self::with(store, Arc::new(SystemClock), Arc::new(RandomIds))
    }

    /// The use cases over `store`, taking times from `clock` and ids from
    /// `ids`.
    pub fn with(store: Arc<dyn Store>, clock: Arc<dyn Clock>, ids: Arc<dyn IdSource>) -> Self {
        Self {
            store,
            clock,
            ids,
            attach_limits: AttachLimits::default(),
        }
    }

    /// The same use cases, with messages attaching files within `limits`.
    #[must_use]
    pub fn with_attach_limits(mut self, limits: AttachLimits) -> Self {
        self.attach_limits = limits;
        self
    }

    /// How many files a message may carry, and what a ticket's may hold.
    pub fn attach_limits(&self) -> AttachLimits {
        self.attach_limits
    }

    /// The store underneath.
    pub fn store(&self) -> &Arc<dyn Store> {
        &self.store
    }

    fn new_message(&self, draft: Draft) -> NewMessage {
        NewMessage {
            id: self.ids.message_id(),
            body: draft.body,
            body_format: draft.body_format,
            encrypted: draft.encrypted,
            sent_at: self.clock.now(),
            attachments: draft.attachments,
            attach_limits: self.attach_limits,
            task: draft.task,
        }
    }

    /// Opens a ticket with its first message, for the actor (a customer) or
    /// for the customer staff or automation name; completes `completion` in
    /// the same transaction.
    ///
    /// # Errors
    /// `OnBehalfOf` if the actor may not open a ticket for whom it named;
    /// `CustomerNotFound` if the named customer is not one of the
    /// workspace's; storage failures.
    pub async fn open_ticket(
        &self,
        actor: &Actor,
        command: OpenTicket,
        completion: Option<Completion<Ticket>>,
    ) -> Result<Written<Ticket>, ServiceError> {
        let on_behalf_of = access::on_behalf_of(actor.role, command.customer)?;
        let new = NewTicket {
            id: self.ids.ticket_id(),
            subject: command.subject,
            priority: command.priority,
            category: command.category,
            booking_id: command.booking_id,
            on_behalf_of,
            first_message: self.new_message(command.first_message),
        };
        super::commit_window::note_write();
        Ok(self.store.create_ticket(actor, new, completion).await?)
    }

    /// Appends the actor's reply to a ticket they can see, moving its
    /// status; completes `completion` in the same transaction.
    ///
    /// # Errors
    /// `NotFound` if the actor cannot see the ticket (`NotOwner` if it is
    /// scoped to its own tickets and the ticket is another user's of its
    /// workspace); `TicketClosed` if it is closed; storage failures.
    pub async fn reply(
        &self,
        actor: &Actor,
        ticket: TicketRef,
        draft: Draft,
        completion: Option<Completion<Message>>,
    ) -> Result<Written<Message>, ServiceError> {
        let new = self.new_message(draft);
        super::commit_window::note_write();
        match self
            .store
            .append_message(actor, ticket, new, completion)
            .await
        {
            Err(StoreError::NotFound) if actor.scope == TicketScope::Own => {
                Err(self.not_owned(actor, ticket).await)
            }
            written => Ok(written?),
        }
    }

    /// Why an actor scoped to its own tickets could not write `ticket`:
    /// `NotOwner` if it is another user's ticket of the actor's workspace,
    /// `NotFound` if there is none there.
    async fn not_owned(&self, actor: &Actor, ticket: TicketRef) -> ServiceError {
        match self
            .store
            .find_ticket(&access::workspace_reader(actor), ticket)
            .await
        {
            Ok(_) => ServiceError::NotOwner,
            Err(StoreError::NotFound) => ServiceError::NotFound,
            Err(other) => other.into(),
        }
    }

    /// Takes a lifecycle action on a ticket the actor can see; completes
    /// `completion` in the same transaction.
    ///
    /// # Errors
    /// `ActionNotPermitted` if the actor's role may not take it (checked
    /// before the ticket is looked up); `NotFound`; `TicketClosed` for a
    /// staff mark on a closed ticket; storage failures.
    pub async fn act(
        &self,
        actor: &Actor,
        ticket: TicketRef,
        action: TicketAction,
        completion: Option<Completion<Ticket>>,
    ) -> Result<Written<Ticket>, ServiceError> {
        if !action.permitted_for(actor.role) {
            return Err(ServiceError::ActionNotPermitted(action));
        }
        let at = self.clock.now();
        super::commit_window::note_write();
        Ok(self
            .store
            .apply_action(actor, ticket, action, at, completion)
            .await?)
    }

    /// One ticket the actor can see.
    ///
    /// # Errors
    /// `NotFound` otherwise; storage failures.
    pub async fn find_ticket(
        &self,
        actor: &Actor,
        ticket: TicketRef,
    ) -> Result<Ticket, ServiceError> {
        Ok(self.store.find_ticket(actor, ticket).await?)
    }

    /// One ticket the actor can see, read by them: every message it holds
    /// stops counting as unread to them.
    ///
    /// # Errors
    /// `NotFound` if the actor cannot see it; storage failures.
    pub async fn view_ticket(
        &self,
        actor: &Actor,
        ticket: TicketRef,
    ) -> Result<Ticket, ServiceError> {
        let ticket = self.store.find_ticket(actor, ticket).await?;
        self.store
            .mark_read(actor, ticket.id, ticket.message_count)
            .await?;
        Ok(ticket)
    }

    /// A slice of the tickets the actor can see, by offset, most recent
    /// activity first, with the actor's unread counts, the previews of
    /// their latest messages, and how many match in all.
    ///
    /// # Errors
    /// Storage failures.
    pub async fn list_ticket_rows(
        &self,
        actor: &Actor,
        query: &TicketRowQuery,
    ) -> Result<TicketRows, ServiceError> {
        Ok(self.store.list_ticket_rows(actor, query).await?)
    }

    /// A page of the tickets the actor can see, most recent activity first.
    ///
    /// # Errors
    /// Storage failures.
    pub async fn list_tickets(
        &self,
        actor: &Actor,
        filter: TicketFilter,
        page: PageRequest<TicketCursor>,
    ) -> Result<Page<Ticket, TicketCursor>, ServiceError> {
        Ok(self.store.list_tickets(actor, filter, page).await?)
    }

    /// A page of a visible ticket's messages, oldest first.
    ///
    /// # Errors
    /// `NotFound` if the actor cannot see the ticket; storage failures.
    pub async fn list_messages(
        &self,
        actor: &Actor,
        ticket: TicketRef,
        page: PageRequest<MessageCursor>,
    ) -> Result<Page<Message, MessageCursor>, ServiceError> {
        Ok(self.store.list_messages(actor, ticket, page).await?)
    }

    /// A page of a visible ticket's messages that `filter` keeps, oldest
    /// first.
    ///
    /// # Errors
    /// As [`Support::list_messages`].
    pub async fn list_messages_where(
        &self,
        actor: &Actor,
        ticket: TicketRef,
        filter: MessageFilter,
        page: PageRequest<MessageCursor>,
    ) -> Result<Page<Message, MessageCursor>, ServiceError> {
        Ok(self
            .store
            .list_messages_where(actor, ticket, filter, page)
            .await?)
    }

    /// One message of a visible ticket.
    ///
    /// # Errors
    /// `NotFound` otherwise; storage failures.
    pub async fn find_message(
        &self,
        actor: &Actor,
        ticket: TicketRef,
        message: MessageId,
    ) -> Result<Message, ServiceError> {
        Ok(self.store.find_message(actor, ticket, message).await?)
    }
}
